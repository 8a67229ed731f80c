"""Trained models as files other runtimes load: ONNX and TorchScript, each with its model card
(``nao export``; the service's ``GET /checkpoints/{id}/export``)."""

from nao_core.export.build import (
    FORMATS,
    ExportMismatch,
    ExportResult,
    card_paths,
    check_format,
    export_checkpoint,
)
from nao_core.export.card import build_card, card_markdown, count_flops

__all__ = [
    "FORMATS",
    "ExportMismatch",
    "ExportResult",
    "build_card",
    "card_markdown",
    "card_paths",
    "check_format",
    "count_flops",
    "export_checkpoint",
]
