"""The model card of an export: what the file is, how to feed it and how good it is.

``build_card`` gathers it from the model checkpoint (arch, config, metrics, provenance), the
rebuilt network (parameters; FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``,
which ships with torch) and what the caller knows beyond the file (the service: the drawing's
URL, the search the architecture came from, the checkpoint's id). ``card_markdown`` renders
it for people. The JSON keys are the contract; the Markdown follows them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shlex
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nao_core.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from nao_core.data.digits import DIGITS_MEAN, DIGITS_STD
from nao_core.models import count_parameters
from nao_core.search_space import create_search_space

CARD_FORMAT = "nao-model-card/1"
# Checkpoints written before they carried their input's statistics: the dataset's constants.
_NORMALISATION = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "digits": (DIGITS_MEAN, DIGITS_STD),
}


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> dict[str, Any]:
    """FLOPs of one forward pass (a multiply-add is 2), total and by operator."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*inputs)
    by_op = counter.get_flop_counts().get("Global", {})
    return {
        "total": int(counter.get_total_flops()),
        "by_operator": {str(op).removeprefix("aten."): int(n) for op, n in by_op.items()},
        "counter": "torch.utils.flop_counter.FlopCounterMode (matmuls and convolutions)",
    }


def software_versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "nao": version("nao-service"),
        "torch": str(torch.__version__),
        "onnx": version("onnx"),
        "onnxscript": version("onnxscript"),
        "onnxruntime": version("onnxruntime"),
        "python": platform.python_version(),
    }


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_input(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Shape and normalisation of a CNN's input: from the checkpoint, else the dataset's."""
    args = ckpt["model_args"]
    stats = ckpt.get("input") or {}
    mean, std = stats.get("mean"), stats.get("std")
    if mean is None and ckpt.get("dataset") in _NORMALISATION:
        mean, std = _NORMALISATION[ckpt["dataset"]]
    size = args["image_size"]
    return {
        "name": "images",
        "shape": ["batch", args["in_channels"], size, size],
        "dtype": "float32",
        "layout": "NCHW",
        "normalisation": {
            "mean": None if mean is None else [float(v) for v in mean],
            "std": None if std is None else [float(v) for v in std],
            "formula": "x = (pixel / 255 - mean) / std per channel, pixels 0..255",
        },
    }


def _cnn_io(ckpt: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    classes = ckpt["model_args"]["num_classes"]
    out = {
        "name": "logits",
        "shape": ["batch", classes],
        "dtype": "float32",
        "meaning": f"unnormalised scores of the {classes} classes of {ckpt.get('dataset')} "
        "(index = the dataset's label); softmax gives probabilities",
    }
    return [image_input(ckpt)], [out]


def _lm_io(ckpt: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    vocab, nhid = ckpt["model_args"]["vocab_size"], ckpt["model_args"]["nhid"]
    words = (
        f"word ids of the {ckpt.get('dataset')} vocabulary ({vocab} words, hash "
        f"{ckpt.get('vocab_hash')}: nao_core.data.corpus builds it from the corpus files)"
    )
    inputs = [
        {"name": "tokens", "shape": ["time", "batch"], "dtype": "int64", "meaning": words},
        {
            "name": "hidden",
            "shape": ["batch", nhid],
            "dtype": "float32",
            "meaning": "the state carried from the previous window; zeros at a text's start",
        },
    ]
    outputs = [
        {
            "name": "logits",
            "shape": ["time", "batch", vocab],
            "dtype": "float32",
            "meaning": "unnormalised scores of the next word at every step",
        },
        {"name": "hidden", "shape": ["batch", nhid], "dtype": "float32", "meaning": "new state"},
    ]
    return inputs, outputs


def _dataset(ckpt: dict[str, Any]) -> dict[str, Any]:
    data = ckpt["config"]["data"]
    if ckpt["space"] == "rnn":
        return {
            "name": ckpt.get("dataset"),
            "splits": "the corpus's own train / valid / test files",
            "train_limit": data.get("train_limit"),
            "eval_limit": data.get("eval_limit"),
        }
    return {
        "name": ckpt.get("dataset"),
        "splits": (
            "train: the first train_portion of the official training set, permuted with "
            "split_seed (only its first train_limit images when > 0); valid: the rest of it; "
            "test: the official test set"
        ),
        "train_portion": data["train_portion"],
        "split_seed": data["split_seed"],
        "train_limit": data["train_limit"],
        "reported_on": data["eval_split"],
    }


def _metrics(ckpt: dict[str, Any]) -> dict[str, Any]:
    m = ckpt.get("metrics") or {}
    if ckpt["space"] == "rnn":
        keys = ("valid_ppl", "test_ppl", "valid_loss", "test_loss")
        return {k: m.get(k) for k in keys}
    split = ckpt["config"]["data"]["eval_split"]
    return {"split": split, "accuracy": m.get("eval_acc"), "loss": m.get("eval_loss")}


def build_card(
    ckpt: dict[str, Any],
    model: nn.Module,
    flops: dict[str, Any],
    export: dict[str, Any],
    source: str | Path,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of one export.

    Args:
        ckpt: The model checkpoint (``kind="model"``).
        model: Its rebuilt network (parameters are counted on it, without an aux head).
        flops: ``count_flops`` of one image (CNN) or one token (LM).
        export: The file's facts: ``format``, ``file``, ``opset``, ``check`` (the parity test).
        source: The checkpoint file (its sha256 is recorded).
        context: What the caller knows beyond the file: ``checkpoint_id``, ``drawing_url``,
            ``search`` (id, url, ...), ``architecture_id``.
    """
    context = context or {}
    space, arch = ckpt["space"], ckpt["arch"]
    s = create_search_space(space)
    lm = space == "rnn"
    inputs, outputs = _lm_io(ckpt) if lm else _cnn_io(ckpt)
    return {
        "format": CARD_FORMAT,
        "model": {
            "task": "word-level language model" if lm else "image classification",
            "space": space,
            "arch": arch,
            "arch_hash": s.canonical_hash(s.parse(arch)),
            "architecture_id": context.get("architecture_id"),
            "drawing_url": context.get("drawing_url"),
            "drawing_command": f"nao draw {space} {shlex.quote(arch)} -o arch.svg",
            "model_args": ckpt["model_args"],
        },
        "export": {**export, "inputs": inputs, "outputs": outputs},
        "parameters": count_parameters(model),
        "flops": {"per": "token" if lm else "image", **flops},
        "dataset": _dataset(ckpt),
        "metrics": _metrics(ckpt),
        "training": ckpt["config"],
        "source": {
            "checkpoint_id": context.get("checkpoint_id"),
            "sha256": sha256_of(source),
        },
        "search": context.get("search"),
        "trained_with": ckpt.get("provenance"),
        "software": software_versions(),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: the facts a person reads first, then the full JSON."""
    m, ex, ds = card["model"], card["export"], card["dataset"]
    title = f"{m['task'].capitalize()}: {m['space']} architecture {m['arch_hash'][:12]}"
    lines = [f"# {title}", "", f"Exported as **{ex['format']}** (`{ex['file']}`).", ""]
    lines += ["## Architecture", "", "```", m["arch"], "```", ""]
    if m["drawing_url"]:
        lines.append(f"Drawing: {m['drawing_url']}")
    lines += [f"Draw it: `{m['drawing_command']}`", ""]
    flops = card["flops"]
    lines += [
        "## Size",
        "",
        f"- Parameters: {card['parameters']:,}",
        f"- FLOPs per {flops['per']}: {flops['total']:,}, counted by {flops['counter']}",
        "",
        "## Input and output",
        "",
    ]
    for io in ex["inputs"] + ex["outputs"]:
        kind = "input" if io in ex["inputs"] else "output"
        shape = " x ".join(str(d) for d in io["shape"])
        what = io.get("meaning", "")
        lines.append(f"- {kind} `{io['name']}`: {io['dtype']} ({shape}) {what}".rstrip())
        norm = io.get("normalisation")
        if norm:
            lines.append(
                f"  - normalisation: {norm['formula']}; mean {norm['mean']}, std {norm['std']}"
            )
    lines += ["", "## Data and results", "", f"- Dataset: {ds['name']}; {ds['splits']}"]
    lines += [f"- {k}: {_fmt(v)}" for k, v in card["metrics"].items()]
    check = ex.get("check") or {}
    if check:
        lines.append(
            f"- Export check: outputs of {check['runtime']} within {check['max_abs_diff']:.2e} "
            f"of PyTorch's on a batch of {check['batch']}"
        )
    search = card.get("search")
    lines += ["", "## Provenance", ""]
    lines.append(f"- Search: {json.dumps(search) if search else 'not known'}")
    lines.append(f"- Source checkpoint sha256: {card['source']['sha256']}")
    soft = ", ".join(f"{k} {v}" for k, v in card["software"].items() if v)
    lines += [f"- Software: {soft}", ""]
    lines += ["## Training config", "", "```json", json.dumps(card["training"], indent=2), "```"]
    return "\n".join(lines) + "\n"
