"""``export_checkpoint``: a trained model checkpoint -> an ONNX or TorchScript file with its
model card (``FILE.card.json``, ``FILE.card.md``) beside it.

* CNN (``cnn``, ``cnn-large``) -> ONNX through torch's exporter (``dynamo=True``: the
  TorchScript-based one is deprecated), opset ``ONNX_OPSET``, batch axis dynamic; or
  TorchScript (traced). Input: normalised images (B, C, H, W); output: logits.
* RNN language model -> TorchScript: a traced step inside a scripted loop over time, so any
  window length and batch run. ONNX is refused: the exporter unrolls the loop over time at
  the traced window's length.

Every export is checked before it is kept: the written file, run by onnxruntime (ONNX) or
reloaded by TorchScript, must give PyTorch's outputs on a fresh batch (another batch size
than the traced one) within ``TOLERANCE`` x max(1, |outputs|); the card records the gap. The
card is also stored inside the file (ONNX metadata ``nao_model_card``; TorchScript extra file
``nao_model_card.json``). Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nao_core.errors import InvalidConfig
from nao_core.export.card import build_card, card_markdown, count_flops
from nao_core.export.network import (
    ImageClassifier,
    LanguageModelStep,
    LanguageModelWindow,
    load_trained,
)

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 18
TOLERANCE = 1e-4  # outputs of the exported file vs PyTorch, relative to max(1, |outputs|)
CARD_NAME = "nao_model_card"
TRACE_BATCH, CHECK_BATCH, WINDOW = 2, 3, 5  # example sizes: trace on 2, check on 3


class ExportMismatch(InvalidConfig):
    """The exported file computes something else than the PyTorch model."""


@dataclass(frozen=True)
class ExportResult:
    file: str
    card_json: str
    card_markdown: str
    card: dict[str, Any]


def check_format(space: str, fmt: str) -> None:
    """Raise InvalidConfig (naming ``format``) for a format this space cannot export to."""
    if fmt not in FORMATS:
        raise InvalidConfig(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if space == "rnn" and fmt == "onnx":
        raise InvalidConfig(
            "format: an RNN language model exports to torchscript only (the ONNX exporter "
            "unrolls its loop over time at one window length)"
        )


def card_paths(out: str | Path) -> tuple[Path, Path]:
    """``FILE.card.json`` and ``FILE.card.md`` beside ``FILE``."""
    out = Path(out)
    return out.with_name(out.name + ".card.json"), out.with_name(out.name + ".card.md")


def export_checkpoint(
    checkpoint: str | Path,
    fmt: str,
    out: str | Path,
    *,
    context: dict[str, Any] | None = None,
) -> ExportResult:
    """Export the model of ``checkpoint`` to ``out`` in format ``fmt`` (``FORMATS``) and write
    its card beside it (``card_paths``).

    Args:
        checkpoint: A ``model.pt`` written by final training (``kind="model"``).
        fmt: ``"onnx"`` or ``"torchscript"``.
        out: The file to write; its folder is created.
        context: Facts for the card the file does not hold (see ``build_card``).

    Raises:
        MissingData: If ``checkpoint`` is absent or not one of our checkpoints.
        InvalidConfig: If it is not a trained model, or the format does not fit the model.
        ExportMismatch: If the written file's outputs differ from PyTorch's.
    """
    model, ckpt = load_trained(str(checkpoint))
    check_format(ckpt["space"], fmt)
    if fmt == "onnx":
        _require_onnx()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reference, trace_in, check_in, flops = _prepare(model, ckpt)
    with torch.no_grad():
        expected = _as_tuple(reference(*check_in))
    facts: dict[str, Any] = {"format": fmt, "file": out.name}
    if fmt == "onnx":
        facts["opset"] = ONNX_OPSET
        write, run, runtime = _onnx_writer(reference, trace_in), _run_onnx, "onnxruntime"
    else:
        write = _torchscript_writer(reference, trace_in, ckpt["space"] == "rnn")
        run, runtime = _run_torchscript, "torchscript"
    card = build_card(ckpt, model, flops, facts, checkpoint, context)
    with _atomic(out) as tmp:
        embed = write(tmp)
        gap = _gap(expected, run(tmp, check_in))
        scale = max(1.0, max(float(e.abs().max()) for e in expected))
        if not gap <= TOLERANCE * scale:  # NaN too
            raise ExportMismatch(
                f"the {fmt} file's outputs differ from PyTorch's by {gap:.3g} "
                f"(tolerance {TOLERANCE * scale:.3g}); nothing was written"
            )
        card["export"]["check"] = {"runtime": runtime, "batch": CHECK_BATCH, "max_abs_diff": gap}
        embed(tmp, json.dumps(card))  # the card inside the file is the card beside it
    card_json, card_md = card_paths(out)
    _write_text(card_json, json.dumps(card, indent=2) + "\n")
    _write_text(card_md, card_markdown(card))
    logger.info("exported format=%s file=%s max_abs_diff=%.3g", fmt, out, gap)
    return ExportResult(str(out), str(card_json), str(card_md), card)


def _require_onnx() -> None:
    """Fail before any work, naming the install, when the ONNX packages are missing."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InvalidConfig(
                f"format: onnx needs the export extra (pip install 'nao-service[export]'): {exc}"
            ) from None


def _prepare(model: nn.Module, ckpt: dict[str, Any]) -> tuple[nn.Module, Any, Any, Any]:
    """The module to export, its example inputs (traced on, checked on) and its FLOPs."""
    gen = torch.Generator().manual_seed(0)
    if ckpt["space"] == "rnn":
        trace_in, check_in = (_lm_inputs(model, b, gen) for b in (TRACE_BATCH, CHECK_BATCH))
        step = LanguageModelStep(model)
        flops = count_flops(step, trace_in[0][0, :1], trace_in[1][:1])  # one token
        return LanguageModelWindow(step), trace_in, check_in, flops
    args = ckpt["model_args"]
    shape = (args["in_channels"], args["image_size"], args["image_size"])
    reference = ImageClassifier(model)
    trace_in = (torch.randn(TRACE_BATCH, *shape, generator=gen),)
    check_in = (torch.randn(CHECK_BATCH, *shape, generator=gen),)
    return reference, trace_in, check_in, count_flops(reference, torch.zeros(1, *shape))


def _lm_inputs(model: nn.Module, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    vocab, nhid = model.vocab_size, model.nhid  # type: ignore[attr-defined]
    tokens = torch.randint(0, vocab, (WINDOW, batch), generator=gen)
    return tokens, 0.1 * torch.randn(batch, nhid, generator=gen)


def _as_tuple(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _gap(expected: tuple[Tensor, ...], got: tuple[Tensor, ...]) -> float:
    if len(expected) != len(got):
        return float("inf")
    gaps = [(e - g.to(e.dtype)).abs().max().item() for e, g in zip(expected, got, strict=True)]
    return float(max(gaps))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' deprecation notes and progress lines are not the caller's business."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


Embed = Callable[[Path, str], None]  # (file, card JSON): store the card inside the file


def _onnx_writer(module: nn.Module, example: tuple[Tensor, ...]) -> Callable[[Path], Embed]:
    def write(path: Path) -> Embed:
        import onnx

        batch = torch.export.Dim("batch")
        with _quiet():
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes={"images": {0: batch}},
                opset_version=ONNX_OPSET,
                verbose=False,
            )
            program.save(str(path))
        onnx.checker.check_model(onnx.load(str(path)))

        def embed(path: Path, card: str) -> None:
            proto = onnx.load(str(path))
            proto.metadata_props.add(key=CARD_NAME, value=card)
            onnx.save(proto, str(path))

        return embed

    return write


def _run_onnx(path: Path, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    return tuple(torch.from_numpy(o) for o in session.run(None, feeds))


def _torchscript_writer(
    module: nn.Module, example: tuple[Tensor, ...], lm: bool
) -> Callable[[Path], Embed]:
    def write(path: Path) -> Embed:
        with _quiet():
            if lm:
                step = module.step  # type: ignore[union-attr]
                tokens, hidden = example
                traced = torch.jit.trace(step, (tokens[0], hidden))
                scripted = torch.jit.script(LanguageModelWindow(traced))
            else:
                scripted = torch.jit.trace(module, example)
            torch.jit.save(scripted, str(path))

        def embed(path: Path, card: str) -> None:  # the same module again, with the card
            with _quiet():
                torch.jit.save(scripted, str(path), _extra_files={f"{CARD_NAME}.json": card})

        return embed

    return write


def _run_torchscript(path: Path, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    with _quiet(), torch.no_grad():
        return _as_tuple(torch.jit.load(str(path))(*inputs))


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed over it when the block succeeds."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(text)
