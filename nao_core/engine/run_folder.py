"""The folder of a final training run, shared by the CNN and the language-model trainings:
its file names, the result it records, the check that a resumed folder holds the same run,
and a private RNG so that seeding a run leaves the caller's generators alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nao_core.errors import InvalidConfig

STATE_FILE, MODEL_FILE, RESULT_FILE = "train_state.pt", "model.pt", "result.json"


@dataclass(frozen=True)
class TrainResult:
    """Outcome of ``run_train``; ``status`` is ``"completed"`` or ``"cancelled"``."""

    status: str
    out_dir: str
    epoch: int
    accuracy: float | None = None
    loss: float | None = None
    params: int | None = None
    flops: int | None = None
    checkpoint: str | None = None
    seconds: float = 0.0
    perplexity: float | None = None  # language models ("rnn"): test perplexity
    valid_perplexity: float | None = None
    # Images: ``accuracy`` is the last epoch's; ``best_accuracy`` the best of the evaluated
    # epochs (at ``best_epoch``), the authors' convention (it selects on the split reported).
    best_accuracy: float | None = None
    best_epoch: int | None = None
    # Language models: ``perplexity`` is the test perplexity of the best-validation weights
    # (the authors' convention, selected on valid); ``last_perplexity`` the last epoch's.
    last_perplexity: float | None = None


def forked_rng(dev: torch.device) -> Any:
    """A private copy of torch's global generators: seeding it leaves the caller's alone."""
    devices = [dev.index or 0] if dev.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def check_same_run(path: Path, ident: dict[str, Any]) -> None:
    """Refuse to resume a folder whose run was made with another config (compared as JSON)."""
    if path.is_file() and read_json(path) != json.loads(json.dumps(ident)):
        raise InvalidConfig(
            f"{path.parent} holds a run with another config or architecture; "
            "use a new output folder"
        )
