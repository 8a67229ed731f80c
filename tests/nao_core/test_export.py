"""Exports: ONNX and TorchScript files that compute what the PyTorch model computes, and the
model card beside them (``nao_core.export``, ``nao export``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from nao_core.cli import main
from nao_core.config import apply_overrides, to_dict
from nao_core.data.digits import DIGITS_MEAN, DIGITS_STD
from nao_core.engine.checkpoint import load_checkpoint, save_checkpoint
from nao_core.errors import InvalidConfig
from nao_core.export import export_checkpoint
from nao_core.models import CnnNetwork, count_flops, count_parameters
from nao_core.models.rnn import rnn_dropouts
from nao_core.presets import get_preset, train_preset
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch
from nao_core.train import load_model, run_train
from nao_core.train_rnn import build_lm

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


pytestmark = pytest.mark.usefixtures("one_thread")


def _named(name: str) -> tuple[str, str]:
    space, arch = get_named_arch(name)
    s = create_search_space(space)
    return space, s.to_str(s.parse(arch) if isinstance(arch, str) else arch)


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory) -> Path:
    """A CIFAR-shaped (3x32x32) NAONet-B with an aux head, drop path and dropout, its batch
    norm statistics set by a few training-mode passes, saved as final training saves one."""
    torch.set_num_threads(1)
    space, arch = _named("naonet-b")
    args = {"layers": 1, "channels": 8, "num_classes": 10, "in_channels": 3, "image_size": 32,
            "keep_prob": 0.8, "drop_path_keep_prob": 0.9, "use_aux_head": True}  # fmt: skip
    net = CnnNetwork(create_search_space(space).parse(arch), space, **args)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 32, 32, generator=gen))
        net.classifier.weight.mul_(0.1)  # logits of a trained net's size (~6, not ~150)
    cfg = apply_overrides(get_preset("train/tiny"), {"data.dataset": "cifar10"})
    path = tmp_path_factory.mktemp("cnn") / "model.pt"
    save_checkpoint(path, {
        "kind": "model", "config": to_dict(cfg), "space": space, "arch": arch,
        "dataset": "cifar10", "model_args": args,
        "input": {"shape": [3, 32, 32], "mean": CIFAR_MEAN, "std": CIFAR_STD},
        "metrics": {"eval_acc": 0.61, "eval_loss": 1.1}, "provenance": {"seed": 0},
        "model": net.state_dict(),
    })  # fmt: skip
    return path


@pytest.fixture(scope="module")
def cnn_onnx(cnn_checkpoint, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx") / "naonet-b.onnx"
    return export_checkpoint(cnn_checkpoint, "onnx", out, context={"checkpoint_id": 7})


def _pytorch_logits(checkpoint: Path, images: torch.Tensor) -> np.ndarray:
    """The logits of the model as ``nao eval`` rebuilds it (channels_last on a CPU)."""
    model, _ = load_model(checkpoint, "cpu")
    with torch.no_grad():
        logits, aux = model(images)
    assert aux is None  # eval mode: no aux head
    return logits.numpy()


def test_onnx_matches_pytorch_on_any_batch(cnn_checkpoint, cnn_onnx) -> None:
    session = ort.InferenceSession(cnn_onnx.file, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images"
    assert inp.shape[1:] == [3, 32, 32]
    assert isinstance(inp.shape[0], str)  # the batch axis is dynamic
    gen = torch.Generator().manual_seed(5)
    for batch in (1, 8):
        images = torch.randn(batch, 3, 32, 32, generator=gen)
        (got,) = session.run(None, {"images": images.numpy()})
        expected = _pytorch_logits(cnn_checkpoint, images)
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert cnn_onnx.card["export"]["check"]["max_abs_diff"] <= 1e-4


def test_onnx_file_carries_its_card(cnn_onnx) -> None:
    proto = onnx.load(cnn_onnx.file)
    onnx.checker.check_model(proto)
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["nao_model_card"]) == cnn_onnx.card
    assert Path(cnn_onnx.card_json).name == "naonet-b.onnx.card.json"
    assert json.loads(Path(cnn_onnx.card_json).read_text()) == cnn_onnx.card


def test_card_contents(cnn_checkpoint, cnn_onnx) -> None:
    card = cnn_onnx.card
    model, ckpt = load_model(cnn_checkpoint, "cpu")
    assert card["model"]["space"] == "cnn"
    assert card["model"]["arch"] == ckpt["arch"]
    assert card["model"]["arch_hash"]
    assert card["model"]["drawing_command"].startswith("nao draw cnn ")
    assert card["parameters"] == count_parameters(model)  # no aux head
    # FlopCounterMode counts a multiply-add as 2 FLOPs; the training report counts MACs
    assert card["flops"]["total"] == 2 * count_flops(model, (3, 32, 32))
    assert card["flops"]["per"] == "image"
    (images,) = card["export"]["inputs"]
    assert images["shape"] == ["batch", 3, 32, 32]
    assert images["normalisation"]["mean"] == CIFAR_MEAN
    assert images["normalisation"]["std"] == CIFAR_STD
    assert card["export"]["outputs"][0]["shape"] == ["batch", 10]
    assert card["dataset"]["name"] == "cifar10"
    assert card["dataset"]["reported_on"] == "test"
    assert card["metrics"] == {"split": "test", "accuracy": 0.61, "loss": 1.1}
    assert card["training"] == ckpt["config"]
    assert card["source"]["checkpoint_id"] == 7
    assert card["search"] is None
    soft = card["software"]
    assert soft["torch"] == str(torch.__version__)
    assert soft["onnx"] == onnx.__version__
    assert soft["nao"]
    md = Path(cnn_onnx.card_markdown).read_text()
    assert ckpt["arch"] in md
    assert f"{card['parameters']:,}" in md
    assert "onnxruntime" in md


def test_torchscript_matches_pytorch(cnn_checkpoint, tmp_path) -> None:
    result = export_checkpoint(cnn_checkpoint, "torchscript", tmp_path / "net.pt")
    extra = {"nao_model_card.json": ""}
    scripted = torch.jit.load(result.file, _extra_files=extra)
    assert json.loads(extra["nao_model_card.json"]) == result.card
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = scripted(images).numpy()
    np.testing.assert_allclose(got, _pytorch_logits(cnn_checkpoint, images), rtol=0, atol=1e-4)
    assert Path(result.card_markdown).is_file()


def test_rnn_language_model_exports_to_torchscript(tmp_path) -> None:
    _, arch = _named("nao-ws-rnn")
    cfg = train_preset("rnn", "tiny")
    args = {"vocab_size": 60, "nhid": 16, "dropouts": asdict(rnn_dropouts(cfg.model))}
    net = build_lm(create_search_space("rnn").parse(arch), args, torch.device("cpu"))
    save_checkpoint(tmp_path / "lm.pt", {
        "kind": "model", "config": to_dict(cfg), "space": "rnn", "arch": arch,
        "dataset": "ptb", "vocab_size": 60, "vocab_hash": "0123abcd", "model_args": args,
        "metrics": {"valid_ppl": 41.5, "test_ppl": 39.0}, "model": net.state_dict(),
    })  # fmt: skip
    result = export_checkpoint(tmp_path / "lm.pt", "torchscript", tmp_path / "lm.ts")
    scripted = torch.jit.load(result.file)
    net.eval()
    gen = torch.Generator().manual_seed(3)
    for steps, batch in ((1, 1), (13, 4)):  # any window length and batch
        tokens = torch.randint(0, 60, (steps, batch), generator=gen)
        hidden = torch.randn(batch, 16, generator=gen)
        with torch.no_grad():
            logits, new_hidden = scripted(tokens, hidden)
            ref_logits, ref_hidden, _ = net(tokens, hidden)
        torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(new_hidden, ref_hidden, rtol=0, atol=1e-5)
    card = result.card
    assert card["model"]["task"] == "word-level language model"
    assert card["metrics"]["valid_ppl"] == 41.5
    assert card["flops"]["per"] == "token"
    assert card["flops"]["total"] > 2 * 16 * 60  # at least the decoder's multiply-adds
    assert [i["name"] for i in card["export"]["inputs"]] == ["tokens", "hidden"]
    with pytest.raises(InvalidConfig, match="torchscript only"):
        export_checkpoint(tmp_path / "lm.pt", "onnx", tmp_path / "lm.onnx")
    assert not (tmp_path / "lm.onnx").exists()


def test_trained_digits_model_through_the_cli(tmp_path, capsys) -> None:
    """The whole path: a real (short) final training, then ``nao export``."""
    space, arch = _named("naonet-b")
    cfg = apply_overrides(get_preset("train/tiny"), ["optim.epochs=1", "data.train_limit=256"])
    result = run_train(arch, space, cfg, out_dir=tmp_path / "run", device="cpu")
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["input"] == {"shape": [1, 8, 8], "mean": list(DIGITS_MEAN),
                             "std": list(DIGITS_STD)}  # fmt: skip
    out = tmp_path / "digits.pt"
    args = ["export", "--checkpoint", result.checkpoint, "--format", "torchscript"]
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"] == str(out)
    assert summary["check"]["max_abs_diff"] <= 1e-4
    card = json.loads((tmp_path / "digits.pt.card.json").read_text())
    assert card["metrics"]["accuracy"] == result.accuracy
    assert card["export"]["inputs"][0]["normalisation"]["mean"] == list(DIGITS_MEAN)
    assert (tmp_path / "digits.pt.card.md").is_file()
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        got = torch.jit.load(str(out))(images).numpy()
    np.testing.assert_allclose(got, _pytorch_logits(Path(result.checkpoint), images), atol=1e-4)


def test_what_cannot_be_exported_is_refused(cnn_checkpoint, tmp_path, capsys) -> None:
    state = tmp_path / "controller.pt"
    save_checkpoint(state, {"kind": "controller", "model": {}})
    out = tmp_path / "x.onnx"
    with pytest.raises(InvalidConfig, match="not a trained model"):
        export_checkpoint(state, "onnx", out)
    assert main(["export", "--checkpoint", str(state), "--format", "onnx", "--out", str(out)]) == 2
    assert "not a trained model" in capsys.readouterr().err
    bad = ["export", "--checkpoint", str(cnn_checkpoint), "--format", "tflite", "--out", str(out)]
    assert main(bad) == 2
    assert "format: unknown format 'tflite'" in capsys.readouterr().err
    missing = ["export", "--checkpoint", str(tmp_path / "none.pt"), "--format", "onnx",
               "--out", str(out)]  # fmt: skip
    assert main(missing) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
