"""Admission limits: what one job may ask for, checked on its resolved config.

A request's preset, overrides and own fields resolve to a ``nao_core`` config; before a job
row is written, every size in it is held to the server's ``NAO_MAX_*`` settings (epochs,
channels, hidden sizes, layers, batch sizes, candidates) and every name in it to the known
names (a dataset is a catalog name, never a path). A violation is a 422 naming the request
field the value came from (``budget``, ``overrides.supernet.channels``) and the setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from jobs.errors import InvalidInput
from nao_core.config import CORPUS_NAMES, DATASET_NAMES, IMAGE_DATASET_NAMES, is_corpus
from store.settings import get_settings

# Config field (its last dotted part) -> the setting that bounds it.
LIMITED = {
    "epochs": "max_epochs",
    "pseudo_epochs": "max_epochs",
    "channels": "max_channels",
    "nhid": "max_hidden",
    "hidden_size": "max_hidden",
    "mlp_hidden_size": "max_hidden",
    "layers": "max_layers",
    "mlp_layers": "max_layers",
    "batch_size": "max_batch_size",
    "eval_batch_size": "max_batch_size",
    "test_batch_size": "max_batch_size",
    "pool_size": "max_candidates",
    "initial_pool": "max_candidates",
    "new_archs": "max_candidates",
    "top_seeds": "max_candidates",
    "pseudo_labels": "max_candidates",
    "random_per_round": "max_candidates",
    "population_size": "max_candidates",
    "max_candidates": "max_candidates",
    "top_k": "max_candidates",
}
# An override key ending in one of these would point the job at the server's filesystem.
_PATH_WORDS = ("dir", "path", "file", "root", "url")


def limit(setting: str) -> tuple[float, str]:
    """The value of ``setting`` and its variable: ``(512, "NAO_MAX_CHANNELS")``."""
    return getattr(get_settings(), setting), f"NAO_{setting.upper()}"


def _at_most(most: float, var: str) -> str:
    return (
        f"must be <= {most:g} ({var})" if isinstance(most, float) else f"must be <= {most} ({var})"
    )


def sources(overrides: Mapping[str, Any], prefix: str = "overrides") -> dict[str, str]:
    """Config key -> request field, for the keys a request's ``overrides`` set."""
    return {key: f"{prefix}.{key}" for key in overrides}


def field_of(key: str, where: Mapping[str, str]) -> str:
    """The request field that set config ``key``: its own key or a section above it; a value
    no field of the request set came from the preset."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        field = where.get(".".join(parts[:n]))
        if field is not None:
            return field
    return "preset"


def check_override_names(overrides: Mapping[str, Any], prefix: str = "overrides") -> None:
    """No override names a folder, file or URL (the server's come from its settings), and
    every name it sets is a known one, even where a field of the request replaces it."""
    for key, value in overrides.items():
        field = f"{prefix}.{key}"
        if key.rsplit(".", 1)[-1].lower().endswith(_PATH_WORDS):
            raise InvalidInput(
                field,
                "a job cannot set a directory, path or URL; the server reads its data from "
                "NAO_DATA_DIR and writes to NAO_STORAGE_DIR",
            )
        if isinstance(value, Mapping):
            check_override_names(value, field)
        elif key.rsplit(".", 1)[-1] == "dataset":
            check_dataset_name(value, field)
        elif isinstance(value, str) and _is_path(value):
            raise InvalidInput(field, "must be a name, not a path")


def _is_path(value: str) -> bool:
    return "/" in value or "\\" in value or ".." in value or value.startswith("~")


def _leaves(cfg: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{key}.")
        else:
            yield key, value


def check_config(cfg: Any, where: Mapping[str, str], space: str | None = None) -> None:
    """Hold every size of ``cfg`` to its ``NAO_MAX_*`` setting and every name to the known
    names; ``where`` maps config keys to the request fields that set them (``field_of``)."""
    for key, value in _leaves(cfg):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in LIMITED and isinstance(value, int) and not isinstance(value, bool):
            most, var = limit(LIMITED[leaf])
            if value > most:
                raise InvalidInput(field_of(key, where), _at_most(most, var))
        elif leaf == "dataset":
            check_dataset_name(value, field_of(key, where), space)
        elif isinstance(value, str) and _is_path(value):
            raise InvalidInput(field_of(key, where), "must be a name, not a path")


def check_dataset_name(dataset: Any, field: str, space: str | None = None) -> None:
    """``dataset`` is a known name (``DATASET_NAMES``) of the kind ``space`` runs on."""
    if dataset not in DATASET_NAMES:
        known = ", ".join(DATASET_NAMES)
        raise InvalidInput(field, f"unknown dataset {dataset!r}; known: {known}")
    if space is not None and is_corpus(dataset) != (space == "rnn"):
        fits = CORPUS_NAMES if space == "rnn" else IMAGE_DATASET_NAMES
        raise InvalidInput(field, f"space {space!r} runs on {', '.join(fits)}, not on {dataset!r}")


def check_candidates(cfg: Any, where: Mapping[str, str]) -> None:
    """A search without weight sharing trains ``initial_pool + rounds x new_archs``
    candidates at most (``max_candidates`` caps it); that total is held to
    ``NAO_MAX_CANDIDATES`` too, named by the first field of the request that set a term."""
    total = cfg.initial_pool + cfg.rounds * cfg.controller.new_archs
    if cfg.max_candidates:
        total = min(total, cfg.max_candidates)
    most, var = limit("max_candidates")
    if total > most:
        keys = ("max_candidates", "rounds", "controller.new_archs", "initial_pool")
        named = [field_of(k, where) for k in keys]
        field = next((f for f in named if f != "preset"), "preset")
        raise InvalidInput(
            field,
            f"the search would train up to {total} candidates (initial_pool + rounds x "
            f"new_archs); {_at_most(most, var)}: set budget",
        )


def check_gpu_hours(hours: float | None) -> None:
    most, var = limit("max_gpu_hours")
    if hours is not None and hours > most:
        raise InvalidInput("max_gpu_hours", _at_most(most, var))
