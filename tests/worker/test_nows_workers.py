"""Searches without weight sharing through real Celery worker processes (Postgres + Redis):
one candidate per task, gathered per round in the database; 1 vs 2 workers, kill -9 of a
worker in mid-round, cancellation, and the API's validation of ``"method": "nao"``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import (
    isolated_service,
    start_worker,
    stop,
    wait_finished,
    wait_for,
)

pytestmark = [pytest.mark.db]  # each test that runs workers is slow; the validation is not

SEARCH = {"space": "cnn", "dataset": "digits", "preset": "tiny", "method": "nao"}


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """As conftest's, with a visibility timeout above a tiny candidate (a few seconds) so
    that only a killed worker's message is re-delivered."""
    with isolated_service(tmp_path_factory.mktemp("home"), visibility_timeout_s="12") as env:
        yield env


def _ready(logs: list[Path]) -> None:
    """Wait until every worker listens, so wall times count the search, not the start-up."""
    wait_for(
        lambda: all(f.is_file() and "ready." in f.read_text(errors="replace") for f in logs),
        120,
        "workers ready",
        0.2,
    )


def _run(client: Any, auth: dict[str, str], logs: list[Path]) -> dict[str, Any]:
    _ready(logs)
    began = time.monotonic()
    job = client.post("/searches", json=SEARCH, headers=auth).json()
    done = wait_finished(client, job["url"], 600)
    done["wall_s"] = time.monotonic() - began
    return done


def _pool(client: Any, job_id: int) -> set[tuple[int | None, int, str, float | None]]:
    rows = client.get(
        "/architectures", params={"top": 1000, "search": job_id, "order_by": "trained"}
    ).json()["data"]
    return {(a["pool_id"], a["round"], a["arch"], a["scores"]["trained"]) for a in rows}


def _rounds(client: Any, job_id: int) -> list[dict[str, Any]]:
    return client.get(f"/searches/{job_id}/candidates").json()["rounds"]


def _learned(client: Any, job_id: int) -> dict[str, Any]:
    """``/rounds`` and ``/lineage`` of a finished tiny search (6 random candidates, then 2
    controller rounds of up to 3), checked, without the ids that differ between runs."""
    rounds = client.get(f"/searches/{job_id}/rounds").json()["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]  # point r + 1 = round r's candidates
    assert rounds[0]["count"] == 6
    assert rounds[0]["calibration"] is None  # the random pool: no controller yet
    for r in rounds[1:]:  # from the first controller round on: each proposal's prediction
        cal = r["calibration"]
        assert 1 <= cal["count"] == r["count"] <= 3
        assert sorted(p["measured"] for p in cal["points"]) == sorted(r["scores"])
    lineage = client.get(f"/searches/{job_id}/lineage").json()
    proposals = lineage["proposals"]
    assert len(proposals) == sum(r["count"] for r in rounds[1:])
    for p in proposals:
        assert p["round"] in (1, 2)
        assert p["parent_pool_id"] is not None
        assert p["parent_architecture_id"] is not None
        assert p["step_size"] in (1.0, 2.0, 3.0)  # the tiny preset's step sizes
        assert p["predicted"] is not None
        assert p["score_source"] == "trained"
    assert sum(b["proposed"] for b in lineage["by_step_size"]) == len(proposals)
    assert sum(b["proposed"] for b in lineage["by_seed"]) == len(proposals)
    in_top = sum(a["parent_pool_id"] is not None for a in lineage["top"])
    assert sum(b["in_top"] for b in lineage["by_step_size"]) == in_top
    for p in proposals:
        del p["architecture_id"], p["parent_architecture_id"]
    for b in lineage["by_seed"]:
        del b["parent_architecture_id"]
    return {
        "rounds": rounds,
        "proposals": proposals,
        "by_step_size": lineage["by_step_size"],
        "by_seed": lineage["by_seed"],
    }


def _timings(**values: float) -> None:
    path = os.environ.get("NAO_NOWS_TIMINGS")
    if path:
        old = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
        Path(path).write_text(json.dumps({**old, **values}, indent=2))


def test_api_validates_method_nao(client, auth) -> None:
    bad = [
        {**SEARCH, "space": "nb201"},
        {**SEARCH, "space": "rnn"},  # digits is no corpus
        {**SEARCH, "preset": "nope"},
        {**SEARCH, "budget": 1},
        {**SEARCH, "max_parallel": 0},
        {**SEARCH, "method": "nao-ws", "max_parallel": 2},
        {**SEARCH, "overrides": {"candidate.data.eval_split": "test"}},
    ]
    for body in bad:
        assert client.post("/searches", json=body, headers=auth).status_code == 422, body


@pytest.fixture(scope="module")
def reference(client, auth, pg_service, tmp_path_factory) -> dict[str, Any]:
    """The search on one worker, which the two-worker, kill -9 and sweep tests compare against
    or build on; run once per module by whichever of them comes first."""
    log = tmp_path_factory.mktemp("reference") / "w1.log"
    one = start_worker(pg_service, log)
    try:
        ref = _run(client, auth, [log])
    finally:
        stop(one)
    assert ref["status"] == "succeeded", ref
    pool = _pool(client, ref["id"])
    assert len(pool) == ref["result"]["candidates"]
    return {
        **ref,
        "pool": pool,
        "candidate_rounds": _rounds(client, ref["id"]),
        "learned": _learned(client, ref["id"]),
    }


@pytest.mark.slow
def test_one_and_two_workers_give_the_same_search(
    client, auth, pg_service, tmp_path, reference
) -> None:
    ref = reference
    logs = [tmp_path / f"w2{i}.log" for i in range(2)]
    two = [start_worker(pg_service, log) for log in logs]
    try:
        par = _run(client, auth, logs)
    finally:
        for w in two:
            stop(w)
    assert par["status"] == "succeeded", par
    assert par["result"]["candidates"] == ref["result"]["candidates"]
    assert par["rounds"] == ref["rounds"] == 3
    assert _rounds(client, par["id"]) == ref["candidate_rounds"]
    assert _pool(client, par["id"]) == ref["pool"]  # the same archs, scores and round structure
    assert par["result"]["top"] == ref["result"]["top"]
    assert _learned(client, par["id"]) == ref["learned"]
    metrics = client.get(f"/jobs/{par['id']}/metrics", params={"name": "pool_best"}).json()
    assert [m["step"] for m in metrics["data"]] == [1, 2, 3]
    _timings(one_worker_s=ref["wall_s"], two_workers_s=par["wall_s"])


@pytest.mark.slow
def test_kill_9_mid_round_changes_nothing(client, auth, pg_service, tmp_path, reference) -> None:
    a, b = (start_worker(pg_service, tmp_path / f"k{i}.log") for i in range(2))
    fresh = None
    try:
        job = client.post("/searches", json=SEARCH, headers=auth).json()

        def running() -> bool:
            rounds = _rounds(client, job["id"])
            return bool(rounds) and rounds[0]["running"] >= 1 and rounds[0]["done"] >= 1

        wait_for(running, 300, "a candidate running in round 0", 0.1)
        stop(a, sig_kill=True)
        fresh = start_worker(pg_service, tmp_path / "k2.log")
        done = wait_finished(client, job["url"], 600)
    finally:
        for w in (a, b, fresh):
            if w is not None:
                stop(w)
    assert done["status"] == "succeeded", done
    assert done["rounds"] == 3
    assert _rounds(client, job["id"]) == reference["candidate_rounds"]
    assert _pool(client, job["id"]) == reference["pool"]
    assert _learned(client, job["id"]) == reference["learned"]


@pytest.mark.slow
def test_cancel_stops_queued_and_running_candidates(client, auth, pg_service, tmp_path) -> None:
    worker = start_worker(pg_service, tmp_path / "c.log")
    try:
        body = {**SEARCH, "max_parallel": 1, "overrides": {"candidate.optim.epochs": 400}}
        job = client.post("/searches", json=body, headers=auth).json()

        def first_epoch() -> bool:
            rounds = _rounds(client, job["id"])
            return bool(rounds) and rounds[0]["running"] == 1

        wait_for(first_epoch, 300, "a running candidate", 0.2)
        rounds = _rounds(client, job["id"])[0]
        assert rounds["queued"] + rounds["running"] <= 1  # max_parallel
        assert rounds["pending"] == 5
        r = client.post(f"/searches/{job['id']}/cancel", headers=auth)
        assert r.status_code == 200
        assert r.json()["status"] in ("cancelling", "cancelled")
        final = wait_finished(client, job["url"], timeout=120)
    finally:
        stop(worker)
    assert final["status"] == "cancelled"
    rounds = _rounds(client, job["id"])
    assert rounds[0]["running"] == rounds[0]["queued"] == rounds[0]["pending"] == 0
    assert rounds[0]["cancelled"] == 6
    assert client.post(f"/searches/{job['id']}/cancel", headers=auth).status_code == 409


@pytest.mark.slow
def test_sweep_trains_the_top_archs_over_a_grid_and_ranks_them(
    client, auth, pg_service, tmp_path, reference
) -> None:
    body = {"search_id": reference["id"], "top_k": 2, "grid": {"optim.lr_max": [0.05, 0.1]}}
    bad = [
        {**body, "grid": {"optim.nope": [1]}},
        {**body, "grid": {"optim.lr_max": [-1.0]}},
        {**body, "grid": {"optim.lr_max": [0.05, 0.05]}},
    ]
    for b in bad:
        assert client.post("/sweeps", json=b, headers=auth).status_code == 422, b
    assert (
        client.post("/sweeps", json={**body, "search_id": 99999}, headers=auth).status_code == 404
    )
    params = {"top": 2, "search": reference["id"], "order_by": "trained"}
    top = {a["id"] for a in client.get("/architectures", params=params).json()["data"]}
    worker = start_worker(pg_service, tmp_path / "s.log")
    try:
        sweep = client.post("/sweeps", json=body, headers=auth)
        assert sweep.status_code == 202
        url = sweep.json()["url"]
        assert len(sweep.json()["runs"]) == 4
        done = wait_finished(client, url, 600)
    finally:
        stop(worker)
    assert done["status"] == "succeeded"
    accs = [r["accuracy"] for r in done["runs"]]
    assert None not in accs
    assert accs == sorted(accs, reverse=True)
    assert [r["rank"] for r in done["runs"]] == [1, 2, 3, 4]
    assert done["best"] == done["runs"][0]
    assert {r["architecture_id"] for r in done["runs"]} == top
    after = {a["id"] for a in client.get("/architectures", params=params).json()["data"]}
    assert after == top  # the runs did not overwrite the search's scores


@pytest.mark.slow
def test_max_gpu_hours_ends_the_search_after_the_round_that_passes_it(
    client, auth, pg_service, tmp_path
) -> None:
    worker = start_worker(pg_service, tmp_path / "g.log")
    try:
        body = {**SEARCH, "max_gpu_hours": 1e-9}  # the first round's candidates pass it
        job = client.post("/searches", json=body, headers=auth).json()
        done = wait_finished(client, job["url"], timeout=300)
    finally:
        stop(worker)
    assert done["status"] == "succeeded", done
    rounds = _rounds(client, job["id"])
    assert len(rounds) == 1  # the tiny preset runs 3 rounds without the limit
    assert done["result"]["candidates"] == rounds[0]["done"] == 6
    assert done["result"]["gpu_hours"] > 1e-9
