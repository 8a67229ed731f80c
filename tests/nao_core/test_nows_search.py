"""NAO without weight sharing (nao-spec §5) on the real digits data: the pure steps a
distributed runner calls, their idempotence, budgets, resumption and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nao_core.cli import main
from nao_core.config import NaoSearchConfig, apply_overrides
from nao_core.engine import NullCallback
from nao_core.errors import InvalidConfig
from nao_core.presets import get_preset
from nao_core.search.nows import (
    CANDIDATES_PHASE,
    NaoSearch,
    RoundNotScored,
    evaluate_candidate,
    read_result,
    run_nao_search,
)
from nao_core.search_space import create_search_space


@pytest.fixture(scope="module")
def tiny() -> NaoSearchConfig:
    return get_preset("nao-search/tiny")


@pytest.fixture(scope="module")
def finished(tiny: NaoSearchConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    run = tmp_path_factory.mktemp("nows") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: threads only contend on a shared 2-core machine
    try:
        run_nao_search(tiny, run_dir=run, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return run


def test_presets_follow_the_spec() -> None:
    paper = get_preset("nao-search/paper")
    assert paper.space == "cnn-large"
    assert paper.initial_pool == 1000
    assert paper.candidate.optim.epochs == 25
    assert (paper.candidate.model.layers, paper.candidate.model.channels) == (3, 32)
    assert paper.candidate.data.eval_split == "valid"
    assert paper.step_sizes == (10.0, 20.0, 30.0)
    assert (paper.controller.top_seeds, paper.controller.new_archs) == (100, 300)
    assert isinstance(get_preset("nao-search/small"), NaoSearchConfig)


def test_config_rejects_scoring_on_the_test_split(tiny: NaoSearchConfig) -> None:
    with pytest.raises(InvalidConfig, match="eval_split"):
        apply_overrides(tiny, {"candidate.data.eval_split": "test"})


def test_search_runs_its_rounds_and_reports_pool_and_top(
    finished: Path, tiny: NaoSearchConfig
) -> None:
    result = read_result(finished)
    assert result is not None
    assert result.status == "completed"
    assert result.rounds == tiny.rounds + 1
    assert len(result.pool) == result.candidates >= tiny.initial_pool + 1
    assert all(e["score_source"] == "trained" for e in result.pool)
    scores = [e["score"] for e in result.top]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == max(e["score"] for e in result.pool)
    assert {e["round"] for e in result.pool} <= set(range(tiny.rounds + 1))
    assert len({e["arch"] for e in result.pool}) == len(result.pool)  # nothing trained twice
    for r in range(result.rounds):
        assert (finished / f"pool_round{r}.json").is_file()


def test_proposals_keep_their_step_size_and_prediction(
    finished: Path, tiny: NaoSearchConfig
) -> None:
    search = NaoSearch.open(tiny, finished)
    assert search.done
    proposals = [e for e in search.pool.entries if e.round > 0]
    assert proposals
    for e in search.pool.entries:
        if e.round == 0:
            assert (e.parent, e.step_size, e.predicted) == (None, None, None)
        else:
            assert search.pool.by_id(e.parent).round < e.round  # type: ignore[arg-type]
            assert e.step_size in tiny.step_sizes
            assert e.predicted is not None
            assert math.isfinite(e.predicted)
    first = search.round_points(0)  # evaluation point 1: the random pool, no controller yet
    assert len(first) == tiny.initial_pool
    assert all(p["predicted"] is None for p in first)
    later = [p for r in range(1, tiny.rounds + 1) for p in search.round_points(r)]
    assert {p["pool_id"] for p in later} == {e.id for e in proposals}
    for p in later:
        entry = search.pool.by_id(p["pool_id"])
        assert (p["predicted"], p["measured"]) == (entry.predicted, entry.score)


def test_a_state_file_from_before_step_sizes_still_loads(
    finished: Path, tiny: NaoSearchConfig, tmp_path: Path
) -> None:
    from nao_core.engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(finished / "state.pt")
    for entry in state["pool"]["entries"]:
        del entry["step_size"], entry["predicted"]
    shutil.copy(finished / "config.json", tmp_path / "config.json")
    save_checkpoint(tmp_path / "state.pt", state)
    old = NaoSearch.open(tiny, tmp_path)
    assert old.done
    assert all(e.step_size is None and e.predicted is None for e in old.pool.entries)
    assert [e.id for e in old.pool.entries] == [
        e.id for e in NaoSearch.open(tiny, finished).pool.entries
    ]
    assert all(p["predicted"] is None for p in old.round_points(1))


def test_a_finished_search_returns_its_result(finished: Path, tiny: NaoSearchConfig) -> None:
    again = run_nao_search(tiny, run_dir=finished, device="cpu")
    assert again.pool == read_result(finished).pool  # type: ignore[union-attr]
    with pytest.raises(InvalidConfig):
        run_nao_search(replace(tiny, seed=1), run_dir=finished, device="cpu")


def test_steps_in_any_order_reach_the_same_pool(
    finished: Path, tiny: NaoSearchConfig, tmp_path: Path
) -> None:
    """What a distributed runner does: candidates in reverse order, the state re-opened from
    disk between steps, a repeated ``finish_round``; same pool as the one-process run."""
    while not (search := NaoSearch.open(tiny, tmp_path)).done:
        plan = search.plan_round()
        if plan:
            with pytest.raises(RoundNotScored):
                search.finish_round(search.round)
        for c in reversed(plan):
            # the one-process run's folder of the same id: same arch, so a cached result
            folder = finished / "candidates" / search.candidate_dir(c.id).name
            assert json.loads((folder / "config.json").read_text())["arch"] == c.arch
            out = evaluate_candidate(tiny, c.arch, folder, device="cpu")
            search.record(c.id, out.score)  # type: ignore[arg-type]
        r = search.round
        search.finish_round(r)
        search.save()
        assert NaoSearch.open(tiny, tmp_path).finish_round(r) == search.plan_round()  # no-op
    expected = {(e["id"], e["arch"], e["score"]) for e in read_result(finished).pool}  # type: ignore[union-attr]
    got = {(e["id"], e["arch"], e["score"]) for e in read_result(tmp_path).pool}  # type: ignore[union-attr]
    assert got == expected


def test_pseudo_labels_resume_to_the_same_pool(tiny: NaoSearchConfig, tmp_path: Path) -> None:
    """Pseudo-labels draw unseen archs from the search's generator: a run re-opened from disk
    between steps must draw the same ones and reach the one-process run's pool."""
    import torch

    cfg = apply_overrides(tiny, {"controller.pseudo_labels": 20, "controller.pseudo_epochs": 2})
    one, steps = tmp_path / "one", tmp_path / "steps"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_nao_search(cfg, run_dir=one, device="cpu")
        while not (search := NaoSearch.open(cfg, steps)).done:
            for c in search.plan_round():
                folder = one / "candidates" / search.candidate_dir(c.id).name
                assert json.loads((folder / "config.json").read_text())["arch"] == c.arch
                out = evaluate_candidate(cfg, c.arch, folder, device="cpu")  # cached result
                search.record(c.id, out.score)  # type: ignore[arg-type]
            search.finish_round(search.round)
            search.save()
    finally:
        torch.set_num_threads(threads)
    expected = {(e["id"], e["arch"], e["score"]) for e in read_result(one).pool}  # type: ignore[union-attr]
    got = {(e["id"], e["arch"], e["score"]) for e in read_result(steps).pool}  # type: ignore[union-attr]
    assert got == expected
    assert len(expected) > cfg.initial_pool  # the controller's rounds added candidates


def test_evaluate_candidate_is_idempotent(finished: Path, tiny: NaoSearchConfig) -> None:
    folder = sorted((finished / "candidates").iterdir())[0]
    arch = json.loads((folder / "config.json").read_text())["arch"]
    first = json.loads((folder / "candidate.json").read_text())
    again = evaluate_candidate(tiny, arch, folder, device="cpu")
    assert again.score == first["score"]
    assert again.score == max(json.loads((folder / "scores.json").read_text()).values())


def _reuse_candidates(finished: Path, run: Path) -> None:
    """Copy the trained candidates: same seed, same ids and archs, so none trains again."""
    shutil.copytree(finished / "candidates", run / "candidates")


def test_candidate_budget_caps_the_search(
    finished: Path, tiny: NaoSearchConfig, tmp_path: Path
) -> None:
    _reuse_candidates(finished, tmp_path)
    cfg = replace(tiny, max_candidates=7)
    result = run_nao_search(cfg, run_dir=tmp_path, device="cpu")
    assert result.candidates == 7
    assert result.rounds == 2


class _Rounds(NullCallback):
    """The evaluation points a run scores and the candidates it trains; with ``stop_after``,
    stops once that point is scored (the state is saved with the round closed)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.scored: list[int] = []
        self.planned: list[int] = []
        self.stop_after = stop_after

    def on_phase(self, name: str, total: int) -> None:
        if name == CANDIDATES_PHASE:
            self.planned.append(total)

    def on_pool_scored(self, round, pool) -> None:
        self.scored.append(round)

    def should_stop(self) -> bool:
        return self.stop_after is not None and self.stop_after in self.scored


def test_a_stopped_search_resumes_at_its_next_round(
    finished: Path, tiny: NaoSearchConfig, tmp_path: Path
) -> None:
    """Resumed, not started over: the run after the stop closes only the rounds after the one
    saved and plans no candidate of the closed rounds (a restart from scratch reaches the
    same pool from the cached candidates, so the pool alone cannot tell the two apart)."""
    _reuse_candidates(finished, tmp_path)
    first = _Rounds(stop_after=1)
    assert run_nao_search(tiny, run_dir=tmp_path, device="cpu", callback=first).status == (
        "cancelled"
    )
    assert first.scored == [1]
    again = _Rounds()
    result = run_nao_search(tiny, run_dir=tmp_path, device="cpu", callback=again)
    assert result.status == "completed"
    assert again.scored == list(range(2, tiny.rounds + 2))
    assert sum(again.planned) == result.candidates - tiny.initial_pool
    expected = {(e["id"], e["arch"], e["score"]) for e in read_result(finished).pool}  # type: ignore[union-attr]
    assert {(e["id"], e["arch"], e["score"]) for e in result.pool} == expected


def test_cli_method_nao_resumes(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _reuse_candidates(finished, tmp_path)
    args = ["search", "--method", "nao", "--space", "cnn", "--preset", "tiny", "--out"]
    argv = [*args, str(tmp_path), "--set", "rounds=0", "--device", "cpu"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["rounds"] == 1
    assert first["candidates"] == 6
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["top"] == first["top"]


@pytest.mark.slow
def test_rnn_search_scores_by_best_valid_log_perplexity(tmp_path: Path) -> None:
    cfg = apply_overrides(
        get_preset("nao-search-rnn/tiny"),
        {"initial_pool": 3, "rounds": 1, "controller.new_archs": 2},
    )
    ptb = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb"
    if not ptb.is_dir():
        pytest.skip(f"PTB not found at {ptb}")
    result = run_nao_search(cfg, run_dir=tmp_path / "run", data_dir=ptb, device="cpu")
    assert result.status == "completed"
    assert 4 <= result.candidates <= 5
    for entry in result.pool:
        folder = tmp_path / "run" / "candidates" / f"{entry['id']:06d}"
        scores = json.loads((folder / "scores.json").read_text()).values()
        assert entry["score"] == max(scores) < 0  # -log perplexity: higher is better
        assert 1.0 < math.exp(-entry["score"]) < 1e5  # a perplexity


def test_a_diverging_candidate_ranks_last_instead_of_failing(
    tiny: NaoSearchConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny, {"candidate.optim.lr_max": 1e12, "candidate.optim.grad_clip": 0.0})
    arch = create_search_space(cfg.space).to_str(
        create_search_space(cfg.space).sample(np.random.default_rng(0))
    )
    out = evaluate_candidate(cfg, arch, tmp_path / "c", device="cpu")
    assert out.diverged
    assert out.status == "completed"
    assert out.score == 0.0  # no correct answer: below every candidate that trained
    again = evaluate_candidate(cfg, arch, tmp_path / "c", device="cpu")
    assert again == out  # recorded: a redelivered task does not train it again
