"""Searches over a tabulated benchmark (``"space": "nb201"``): validate, create, enqueue.

Torch-free. A table is a *name*, found by ``nao_core.catalog``: a copy under the data
directory (``NAO_DATA_DIR``) when there is one, else the copy shipped in the package; no path a
user sends reaches the filesystem. Its columns are
checked by reading the CSV header and first row only (gzip + csv from the standard library).
The job row stores ``{"method": "tabular", "strategy": "nao" | "random" | "evolution",
"table", "signal", "report", "budget", "seed", "strategy_config"}`` and is enqueued as
``nao.search.tabular`` on the CPU queue; the worker is ``worker.search_tabular``. A run is
deterministic from its seed, so a lost worker's job is simply sent again.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from jobs import common, limits, query
from jobs.errors import InvalidInput
from jobs.kind import Kind
from jobs.requests import SearchCreate
from nao_core import catalog
from nao_core.config import to_dict
from store import broker
from store.models import Job, JobKind
from store.redact import redact_paths
from store.settings import get_settings

TASK = "nao.search.tabular"
METHODS = ("nao", "random", "evolution")
DEFAULT_SIGNAL = "c10_valid_acc_200ep"
DEFAULT_REPORT = "c10_test_acc_200ep"


@dataclass(frozen=True)
class Table:
    space: str
    size: int  # architectures in the table (the largest budget)


TABLES: dict[str, Table] = {"nb201": Table("nb201", 15_625)}
# The space's default table, and the dataset a signal column belongs to (its prefix).
DEFAULT_TABLE = {"nb201": "nb201"}
_DATASETS = (("c100_", "cifar100"), ("c10_", "cifar10"), ("in16_", "imagenet16-120"))
SPACES = tuple(DEFAULT_TABLE)


def table_path(name: str, data_dir: Path | None) -> Path:
    """The file of table ``name``: the data directory's copy, else the shipped one."""
    return catalog.table_path(name, data_dir)


def dataset_of(signal: str, table: str) -> str:
    for prefix, dataset in _DATASETS:
        if signal.startswith(prefix):
            return dataset
    return table


def numeric_columns(path: Path) -> list[str]:
    """Columns other than ``arch_str`` whose first value parses as a number."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:  # type: ignore[operator]
        reader = csv.reader(f)
        header, first = next(reader, []), next(reader, [])
    out = []
    for name, value in zip(header, first, strict=False):
        try:
            float(value)
        except ValueError:
            continue
        if name != "arch_str":
            out.append(name)
    return out


def check_table(space: str, name: str | None) -> tuple[str, Path, list[str]]:
    name = name or DEFAULT_TABLE[space]
    known = sorted(t for t, v in TABLES.items() if v.space == space)
    if name not in known:
        raise InvalidInput(
            "table", f"unknown table {name!r} for space {space!r}; known: {', '.join(known)}"
        )
    path = table_path(name, get_settings().resolved_data_dir())
    if not path.is_file():
        missing = redact_paths(str(path))
        raise InvalidInput("table", f"table {name!r} is not installed: {missing} is missing")
    try:
        columns = numeric_columns(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = redact_paths(str(exc))
        raise InvalidInput("table", f"table {name!r} cannot be read: {why}") from None
    return name, path, columns


def check_column(field: str, value: str, columns: list[str]) -> None:
    if value not in columns:
        raise InvalidInput(
            field, f"{value!r} is not a numeric column of the table; known: {', '.join(columns)}"
        )


def strategy_config(method: str, preset: str | None, overrides: dict[str, Any]) -> Any:
    """The strategy's preset (``<method>/<preset>``, default ``nb201``) with ``overrides``."""
    if not common.preset_names(method):  # random search has no settings
        if preset is not None:
            raise InvalidInput("preset", f"method {method!r} has no presets")
        if overrides:
            key = next(iter(overrides))
            raise InvalidInput(f"overrides.{key}", f"method {method!r} has no settings")
        return None
    cfg = common.preset(method, preset or "nb201")
    try:
        cfg = common.apply(cfg, overrides, "overrides")
    except InvalidInput as exc:  # a check of the config names its section: nao., evolution.
        field = exc.field.replace(f"overrides.{method}.", "overrides.", 1)
        raise InvalidInput(field, exc.reason) from None
    limits.check_config(cfg, limits.sources(overrides))
    return cfg


class TabularSearch(Kind):
    name = "search-tabular"
    row_kind = JobKind.SEARCH
    method = "tabular"
    task = TASK
    queue = broker.CPU  # table look-ups and a small controller
    runner = "worker.search_tabular"

    def accepts(self, body: SearchCreate) -> bool:
        return body.space in SPACES  # before method "nao": NAO over the table

    def create(self, session: Session, body: SearchCreate, owner_id: int | None) -> Job:
        method = body.method or "nao"
        if method not in METHODS:
            raise InvalidInput(
                "method",
                f"space {body.space!r} is searched with {', '.join(METHODS)}, not {method!r}",
            )
        for field in ("max_parallel", "max_gpu_hours"):
            if getattr(body, field) is not None:
                raise InvalidInput(field, f"not used by a search of space {body.space!r}")
        name, _path, columns = check_table(body.space, body.table)
        signal = body.signal or DEFAULT_SIGNAL
        report = body.report or DEFAULT_REPORT
        check_column("signal", signal, columns)
        check_column("report", report, columns)
        dataset = dataset_of(signal, name)
        if body.dataset is not None and body.dataset != dataset:
            raise InvalidInput(
                "dataset", f"the table's column {signal!r} is measured on {dataset!r}, not on "
                f"{body.dataset!r}; pick the dataset with 'signal'",
            )  # fmt: skip
        budget = body.budget if body.budget is not None else 150
        size = TABLES[name].size
        if not 1 <= budget <= size:
            raise InvalidInput("budget", f"must be in 1..{size} (the architectures in the table)")
        cfg = strategy_config(method, body.preset, body.overrides)
        ctrl = to_dict(cfg).get("controller") if cfg is not None else None
        warm = query.warm_start(session, body.warm_start, body.space, method, ctrl)
        job = Job(
            kind=JobKind.SEARCH,
            space=body.space,
            dataset=dataset,
            preset=(body.preset or "nb201") if cfg is not None else None,
            config={
                "method": self.method,
                "strategy": method,
                "table": name,
                "signal": signal,
                "report": report,
                "budget": budget,
                "seed": body.seed if body.seed is not None else 0,
                "strategy_config": to_dict(cfg) if cfg is not None else None,
                **({"warm_start": warm} if warm else {}),
            },
            request=body.model_dump(),
            created_by=owner_id,
            total=budget,
        )
        return common.submit(session, job, TASK, self.queue)
