"""NAO-WS on PTB with the tiny preset: the RNN supernet evaluator, the search end to end,
exact resume, RNN configs, presets and named cells."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from core_helpers import EpochLog, StopAfter, one_thread

from nao_core.config import (
    RnnSearchConfig,
    RnnTrainConfig,
    SearchConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    to_dict,
)
from nao_core.data.corpus import load_corpus
from nao_core.engine import NullCallback
from nao_core.errors import InvalidConfig, MissingData, UnknownName
from nao_core.evaluator.rnn import RnnSupernetEvaluator, ppl_from_score
from nao_core.presets import search_preset, train_preset
from nao_core.search.ws import SearchResult, run_search
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PTB = DATA / "ptb"
EPOCHS = 4  # eval every 2: rounds at 2 and 4, one controller round

# Only the tests that read the corpus skip without it (and fail under CI: tests/conftest.py).
needs_ptb = pytest.mark.skipif(not PTB.is_dir(), reason=f"PTB not found at {PTB}")


@pytest.fixture(scope="module")
def cfg() -> RnnSearchConfig:
    return apply_overrides(search_preset("rnn", "tiny"), [f"optim.epochs={EPOCHS}"])


@pytest.fixture(scope="module")
def full_run(cfg, tmp_path_factory) -> tuple[SearchResult, Path]:
    run_dir = tmp_path_factory.mktemp("rnn-ws") / "run"
    with one_thread():
        result = run_search(cfg, run_dir=run_dir, data_dir=DATA, device="cpu")
    return result, run_dir


@needs_ptb
def test_evaluator_trains_and_scores_the_same_arch_the_same(cfg) -> None:
    one_epoch = apply_overrides(cfg, ["optim.epochs=1"])
    corpus = load_corpus("ptb", PTB, train_limit=4_000, eval_limit=1_000)
    torch.manual_seed(0)
    evaluator = RnnSupernetEvaluator(one_epoch, corpus, torch.device("cpu"))
    space, rng = create_search_space("rnn"), np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(2)]
    seen: list[dict[str, float]] = []
    with one_thread():
        evaluator.train(
            start_epoch=0,
            sample=lambda: archs[0],
            callback=NullCallback(),
            epoch_end=lambda epoch, metrics: seen.append(metrics),
        )
        scores = evaluator.score([archs[0], archs[1], archs[0]])
    assert len(seen) == 1
    assert math.isfinite(seen[0]["train_loss"])
    assert all(math.isfinite(s) and s < 0 for s in scores)
    assert scores[0] == scores[2]  # same fixed windows, eval mode
    assert scores[0] != scores[1]
    assert evaluator.last_ppl == pytest.approx([ppl_from_score(s) for s in scores])
    assert evaluator.last_ppl[0] < corpus.vocab_size  # learnt something in one epoch


@needs_ptb
def test_search_end_to_end(full_run, cfg) -> None:
    result, run_dir = full_run
    assert result.status == "completed"
    assert (result.epoch, result.rounds) == (EPOCHS, 2)
    assert len(result.pool) == cfg.pool_size
    scores = [e["score"] for e in result.pool]
    assert all(math.isfinite(s) and s < 0 for s in scores)  # -log(ppl)
    assert scores == sorted(scores, reverse=True)
    assert any(e["round"] > 0 for e in result.pool)  # controller proposals made it in
    space = create_search_space("rnn")
    for e in result.pool:
        space.validate(space.parse(e["arch"]))
    assert len(result.top) == cfg.rerank.top_k
    assert all(r["score_source"] == "rerank" for r in result.top)
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "state.pt",
        "result.json",
        "pool_round1.json",
        "pool_round2.json",
    }


@needs_ptb
def test_stopped_search_resumes_to_the_same_result(full_run, cfg, tmp_path) -> None:
    result, _ = full_run
    with one_thread():
        stopped = run_search(
            cfg, run_dir=tmp_path, data_dir=DATA, device="cpu", callback=StopAfter(3)
        )
        assert (stopped.status, stopped.epoch) == ("cancelled", 3)
        log = EpochLog()
        resumed = run_search(cfg, run_dir=tmp_path, data_dir=PTB, device="cpu", callback=log)
    assert resumed.status == "completed"
    assert log.epochs == [4]  # resumed after epoch 3, not trained again from scratch
    assert resumed.pool == result.pool  # same archs, ids, parents and bit-identical scores
    assert resumed.top == result.top


def test_missing_corpus_names_the_file_folder_and_source(cfg, tmp_path) -> None:
    with pytest.raises(MissingData, match=r"train\.txt") as err:
        run_search(cfg, run_dir=tmp_path / "run", data_dir=tmp_path, device="cpu")
    assert str(tmp_path / "ptb") in str(err.value)
    assert "simple-examples" in str(err.value)
    wt2 = apply_overrides(cfg, ["data.dataset=wikitext2"])
    with pytest.raises(MissingData, match="wikitext-2"):
        run_search(wt2, run_dir=tmp_path / "run2", data_dir=tmp_path, device="cpu")


def test_cnn_config_cannot_search_the_rnn_space(tmp_path) -> None:
    cnn = apply_overrides(search_preset("cnn", "tiny"), ["space=rnn"])
    with pytest.raises(InvalidConfig, match="RNN search config"):
        run_search(cnn, run_dir=tmp_path, device="cpu")


@pytest.mark.parametrize("size", ["paper", "small", "tiny"])
def test_presets_resolve_per_space(size: str) -> None:
    s, t = search_preset("rnn", size), train_preset("rnn", size)
    assert isinstance(s, RnnSearchConfig)
    assert isinstance(t, RnnTrainConfig)
    assert from_dict(RnnSearchConfig, to_dict(s)) == s
    assert from_dict(RnnTrainConfig, to_dict(t)) == t
    assert isinstance(search_preset("cnn", size), SearchConfig)
    assert isinstance(train_preset("cnn-large", size), TrainConfig)
    assert search_preset("rnn", f"search-rnn/{size}") == s


def test_preset_errors() -> None:
    with pytest.raises(UnknownName, match="nb201"):
        search_preset("nb201", "tiny")
    with pytest.raises(UnknownName, match="known: paper, small, tiny"):
        search_preset("rnn", "huge")
    with pytest.raises(UnknownName):
        train_preset("rnn", "train/tiny")  # a CNN preset for the RNN space


def test_paper_presets_follow_the_spec() -> None:
    s = search_preset("rnn", "paper")
    assert (s.supernet.nhid, s.data.batch_size, s.data.bptt) == (300, 256, 35)
    assert (s.optim.lr, s.optim.weight_decay, s.optim.grad_clip, s.optim.asgd) == (
        0.25, 5e-7, 10.0, "off",
    )  # fmt: skip
    assert (s.optim.epochs, s.eval_every, s.pool_size, s.seed) == (1000, 200, 1000, 1267)
    m = s.supernet
    assert (m.dropout, m.dropouth, m.dropoutx, m.dropouti, m.dropoute) == (0.75, 0.25, 0.75, 0.2, 0)
    assert (s.controller.mlp_layers, s.controller.encoder_dropout) == (4, 0.1)
    assert (s.controller.reset_optimizer, s.controller.swap_augment) == (False, False)
    assert s.average_s0
    t = train_preset("rnn", "paper")
    assert (t.model.nhid, t.data.batch_size, t.data.eval_batch_size, t.data.test_batch_size) == (
        850, 64, 10, 1,
    )  # fmt: skip
    assert (t.optim.lr, t.optim.grad_clip, t.optim.weight_decay, t.optim.epochs) == (
        20.0, 0.25, 8e-7, 4000,
    )  # fmt: skip
    assert (t.optim.asgd, t.optim.nonmono) == ("nt", 5)
    w = train_preset("rnn", "paper", dataset="wikitext2")
    assert (w.data.dataset, w.model.nhid, w.model.dropouth, w.optim.weight_decay) == (
        "wikitext2", 700, 0.15, 5e-7,
    )  # fmt: skip
    assert w.optim.epochs == 2000


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("supernet.dropouth=1.5", "dropouth: must be in"),
        ("data.dataset='cifar10'", "data.dataset: must be one of"),
        ("data.bptt=0", "data.bptt: must be > 0"),
        ("optim.asgd='maybe'", "optim.asgd: must be one of"),
        ("rerank.optim.nonmono=-1", "optim.nonmono: must be >= 0"),
        ("controller.nope=1", "controller.nope: unknown key 'nope'"),
        ("space='cnn'", "space: an RNN search config"),
    ],
)
def test_bad_rnn_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        apply_overrides(search_preset("rnn", "tiny"), [override])


def test_named_rnn_cells() -> None:
    space = create_search_space("rnn")
    name, ws = get_named_arch("nao-ws-rnn")
    assert name == "rnn"
    assert " ".join(map(str, space.encode(ws))) == (
        "1 13 2 13 3 14 2 14 5 13 5 13 5 13 8 13 9 14 2 12 5 13"
    )
    name, nao = get_named_arch("nao-rnn")
    assert name == "rnn"
    assert nao.nodes[-1] == (1, 3)  # identity(s1): id 2 in NAO/rnn's mapping, 3 in ours
    assert space.to_str(nao).endswith("s11=identity(s1)")
