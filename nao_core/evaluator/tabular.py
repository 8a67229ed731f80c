"""Look architectures up in a table: a CSV (gzipped or not) with ``arch_str`` and metric columns.

Any tabulated benchmark of that shape can be searched; NAS-Bench-201 is the one we ship a test
for. The table is read once with the standard ``csv`` module; every column except
``arch_str`` that parses as a number is a metric.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from nao_core.errors import InvalidArchitecture, InvalidConfig, MissingData
from nao_core.search_space.base import Arch, SearchSpace


class TabularEvaluator:
    def __init__(self, path: str | Path, space: SearchSpace, signal: str) -> None:
        self.path = Path(path)
        self.space = space
        self.keys, self.columns = _read_table(self.path, space)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.signal = signal
        self.check_column(signal)

    def check_column(self, name: str) -> None:
        if name not in self.columns:
            raise InvalidConfig(
                f"column {name!r} is not a numeric column of {self.path}; "
                f"known: {', '.join(sorted(self.columns))}"
            )

    def metric(self, arch: Arch, column: str) -> float:
        self.check_column(column)
        key = self.space.canonical_key(arch)
        if key not in self.index:
            raise InvalidArchitecture(f"{self.space.to_str(arch)} is not in {self.path}")
        return float(self.columns[column][self.index[key]])

    def evaluate(self, arch: Arch) -> float:
        return self.metric(arch, self.signal)

    def best(self, column: str) -> float:
        self.check_column(column)
        return float(np.max(self.columns[column]))


def _read_table(path: Path, space: SearchSpace) -> tuple[list[str], dict[str, np.ndarray]]:
    if not path.is_file():
        raise MissingData(
            f"table {path} not found: give the path of a CSV (or .csv.gz) with an 'arch_str' "
            "column, e.g. the NAS-Bench-201 accuracy table nb201_accuracy_table.csv.gz"
        )
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    if reader.fieldnames is None or "arch_str" not in reader.fieldnames:
        raise InvalidConfig(f"{path}: no 'arch_str' column")
    rows = list(reader)
    keys = [space.canonical_key(space.parse(r["arch_str"])) for r in rows]
    columns: dict[str, np.ndarray] = {}
    for name in reader.fieldnames:
        if name == "arch_str":
            continue
        try:
            columns[name] = np.array([float(r[name]) for r in rows])
        except (TypeError, ValueError):
            continue  # a text column
    return keys, columns
