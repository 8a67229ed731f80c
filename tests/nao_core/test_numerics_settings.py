"""The settings behind the spec-faithful paper presets and reproducible runs: controller
attention, MLP init and token grouping; pool tie-breaking; deterministic kernels; the
provenance of a run's numerics; last- and best-epoch figures of final training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nao_core.config import ControllerConfig, InvalidConfig, apply_overrides
from nao_core.controller import Controller, fit_controller
from nao_core.presets import get_preset, train_preset
from nao_core.search.pool import ArchPool
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch
from nao_core.train import run_train
from nao_core.utils.determinism import deterministic_mode
from nao_core.utils.provenance import numerics, provenance

PTB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ptb"


pytestmark = pytest.mark.usefixtures("one_thread")


def _tokens(space_name: str, n: int, seed: int = 0) -> tuple[object, torch.Tensor]:
    space = create_search_space(space_name)
    archs = space.sample_many(np.random.default_rng(seed), n)
    return space, torch.tensor([space.encode(a) for a in archs])


# --- controller ----------------------------------------------------------------------------------


def test_dot_attention_has_no_query_projection_and_folds_like_the_plain_readout() -> None:
    space, tokens = _tokens("rnn", 12)
    torch.manual_seed(0)
    ctrl = Controller(space, ControllerConfig(attention="dot", mlp_init_range=0.04))
    general = Controller(space, ControllerConfig())
    assert ctrl.decoder.attn_in is None
    names = {n for n, _ in ctrl.named_parameters()}
    assert "decoder.attn_in.weight" not in names
    assert "decoder.attn_in.weight" in {n for n, _ in general.named_parameters()}
    ctrl.eval()
    with torch.no_grad():
        _, folded = ctrl(tokens)
        greedy_folded = ctrl.reconstruct(tokens)
        ctrl.decoder.fold_attention = False
        _, plain = ctrl(tokens)
        greedy_plain = ctrl.reconstruct(tokens)
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=1e-4)
    assert torch.equal(greedy_folded, greedy_plain)


def test_dot_attention_scores_are_plain_dot_products() -> None:
    space, tokens = _tokens("rnn", 4)
    torch.manual_seed(1)
    ctrl = Controller(space, ControllerConfig(attention="dot")).eval()
    ctrl.decoder.fold_attention = False
    with torch.no_grad():
        memory, _emb = ctrl.encoder(tokens)
        h = torch.randn(4, 3, ctrl.cfg.hidden_size)
        weights = torch.softmax(torch.bmm(h, memory.transpose(1, 2)), dim=-1)
        context = torch.bmm(weights, memory)
        want = ctrl.decoder.classifier(
            torch.tanh(ctrl.decoder.attn_out(torch.cat([context, h], dim=-1)))
        )
        torch.testing.assert_close(ctrl.decoder._readout(h, memory), want)


def test_mlp_init_range_draws_uniform_weights_and_zero_biases() -> None:
    space = create_search_space("rnn")
    ctrl = Controller(space, ControllerConfig(mlp_layers=4, mlp_init_range=0.04))
    linears = [m for m in ctrl.predictor.mlp if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5
    for lin in linears:
        assert float(lin.weight.detach().abs().max()) <= 0.04
        assert float(lin.weight.detach().std()) > 0.01  # spread over the range, not all zero
        assert torch.count_nonzero(lin.bias) == 0
    default = Controller(space, ControllerConfig(mlp_layers=4))
    first = next(m for m in default.predictor.mlp if isinstance(m, torch.nn.Linear))
    assert torch.count_nonzero(first.bias) > 0  # PyTorch's default init


def test_token_group_one_reads_one_token_per_encoder_step() -> None:
    space, tokens = _tokens("rnn", 6)
    paired = Controller(space, ControllerConfig())
    single = Controller(space, ControllerConfig(token_group=1))
    assert paired.group == space.group == 2
    assert single.group == 1
    assert single.encoder.rnn.embedding.embedding_dim == 96  # E = H = 96 (TF NAO RNN EPD)
    memory, _ = single.encoder(tokens)
    assert memory.shape == (6, 22, 96)
    assert paired.encoder(tokens)[0].shape == (6, 11, 96)
    report, _ = fit_controller(
        single, tokens, np.arange(6.0), generator=torch.Generator().manual_seed(0), epochs=2
    )
    assert np.isfinite(report.loss)
    with pytest.raises(InvalidConfig, match="token_group"):
        Controller(space, ControllerConfig(token_group=5))  # 22 tokens are not groups of 5
    with pytest.raises(InvalidConfig, match=r"controller\.attention"):
        ControllerConfig(attention="bahdanau")  # type: ignore[arg-type]


# --- pool ties -----------------------------------------------------------------------------------


def _tied_pool(seed_archs: int = 0) -> tuple[ArchPool, list[str]]:
    space = create_search_space("cnn")
    pool = ArchPool(space)
    archs = space.sample_unseen(np.random.default_rng(seed_archs), 30, set())
    pool.extend([pool.make_entry(a, round=0) for a in archs])  # type: ignore[misc]
    pool.set_scores([0.5] * 10 + [0.25] * 20, "supernet", 1)
    return pool, [space.canonical_key(a) for a in archs]


def _order(pool: ArchPool) -> list[str]:
    return [pool.space.canonical_key(e.arch) for e in pool.entries]


def test_ties_are_broken_by_a_seeded_random_key_not_by_age() -> None:
    pool, keys = _tied_pool()
    pool.sort("age")
    assert _order(pool) == keys  # the stable sort: older first among equals
    orders = []
    for seed in (0, 0, 1):
        pool, _ = _tied_pool()
        pool.sort("random", seed)
        orders.append(_order(pool))
    assert orders[0] == orders[1]  # the same seed: the same order, every run and resume
    assert orders[0] != orders[2]  # another seed: another order
    assert set(orders[0][:10]) == set(keys[:10])  # scores still decide first
    assert orders[0][:10] != keys[:10]  # but not age among the tied


def test_the_tie_key_changes_with_the_evaluation_point() -> None:
    pool, _ = _tied_pool()
    pool.sort("random", 0)
    first = _order(pool)
    pool.set_scores([0.5] * 30, "supernet", 2)
    pool.sort("random", 0)
    pool2, _ = _tied_pool()
    pool2.set_scores([0.5] * 30, "supernet", 3)
    pool2.sort("random", 0)
    assert _order(pool) != _order(pool2)
    assert first != _order(pool)


# --- deterministic kernels and provenance --------------------------------------------------------


def test_deterministic_mode_sets_the_flags_and_restores_them(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        inside = numerics(torch.device("cpu"))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    assert inside["deterministic_algorithms"] is True
    assert inside["cublas_workspace_config"] == ":4096:8"
    with deterministic_mode(False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_provenance_names_every_numerics_setting() -> None:
    cfg = get_preset("search/paper")
    prov = provenance(torch.device("cpu"), 7, cfg, "fp32")
    num = prov["numerics"]
    for key in (
        "device_kind", "device_name", "cpu_capability", "torch", "cuda", "cudnn", "precision",
        "torch_threads", "interop_threads", "data_loader_workers", "deterministic",
        "deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark",
        "cublas_workspace_config", "tf32_matmul", "tf32_cudnn", "float32_matmul_precision",
        "controller_replicas", "controller_intra_op_threads", "controller_precision", "seed",
    ):  # fmt: skip
        assert key in num, key
    assert num["device_kind"] == "cpu"
    assert num["torch_threads"] == 1
    assert num["precision"] == "fp32"
    assert num["controller_replicas"] == 2
    assert num["deterministic"] is False
    assert num["seed"] == 7
    json.dumps(prov)  # stored as JSON in result files


# --- final training: last and best epoch ---------------------------------------------------------


def test_final_training_reports_the_last_and_the_best_epoch(tmp_path) -> None:
    cfg = apply_overrides(
        train_preset("cnn", "tiny"),
        ["optim.epochs=3", "data.train_limit=320", "deterministic=true"],
    )
    space, arch = get_named_arch("naonet-b")
    result = run_train(arch, space, cfg, out_dir=tmp_path, device="cpu")
    assert result.accuracy is not None
    assert result.best_accuracy is not None
    assert result.best_accuracy >= result.accuracy
    assert 1 <= result.best_epoch <= 3
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["best_accuracy"] == result.best_accuracy
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["metrics"]["best_eval_acc"] == result.best_accuracy
    assert prov["metrics"]["best_eval_epoch"] == result.best_epoch
    assert prov["numerics"]["deterministic"] is True
    assert prov["numerics"]["deterministic_algorithms"] is True  # recorded as it ran
    assert not torch.are_deterministic_algorithms_enabled()  # and restored after


@pytest.mark.skipif(not PTB.is_dir(), reason=f"PTB not found at {PTB}")
def test_lm_training_reports_the_last_epochs_perplexity_too(tmp_path) -> None:
    cfg = apply_overrides(train_preset("rnn", "tiny"), ["optim.epochs=2"])
    _, arch = get_named_arch("nao-ws-rnn")
    result = run_train(arch, "rnn", cfg, out_dir=tmp_path, data_dir=PTB, device="cpu")
    assert result.perplexity is not None
    assert result.last_perplexity is not None
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["metrics"]["last_epoch_test_ppl"] == result.last_perplexity
    assert "last_epoch_valid_ppl" in prov["metrics"]
