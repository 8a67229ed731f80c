"""``nao search --method nao``: a search without weight sharing in one process (resumable)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from nao_core.config import NaoSearchConfig, apply_overrides
from nao_core.engine import LoggingCallback
from nao_core.errors import InvalidConfig
from nao_core.presets import get_preset
from nao_core.search.nows import run_nao_search


def resolve_config(args: argparse.Namespace) -> NaoSearchConfig:
    """The ``nao-search/<preset>`` config with ``--space``, ``--dataset`` and ``--set``."""
    family = "nao-search-rnn" if args.space == "rnn" else "nao-search"
    name = args.preset if "/" in args.preset else f"{family}/{args.preset}"
    cfg = get_preset(name)
    if not isinstance(cfg, NaoSearchConfig):
        raise InvalidConfig(f"preset {name!r} is not a search without weight sharing")
    named = {"space": args.space, "candidate.data.dataset": args.dataset}
    cfg = apply_overrides(cfg, {k: v for k, v in named.items() if v is not None})
    return apply_overrides(cfg, args.set or [])


def run_search_command(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run_nao_search(
        cfg,
        run_dir=args.out,
        data_dir=args.data_dir,
        device=args.device,
        callback=LoggingCallback(),
    )
    summary = {k: v for k, v in asdict(result).items() if k != "pool"}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0 if result.status == "completed" else 3
