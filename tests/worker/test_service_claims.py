"""The service's claims with real Celery worker processes on Postgres + Redis, fast enough for
every CI run (``make test-service``, the ``service`` tier of ``.ci/run``): a worker killed
with ``kill -9`` mid-search is recovered as a stale job and its search resumes from the
checkpoint without redoing a finished round; a running search cancelled stops at the next
epoch boundary; the candidates of a search without weight sharing fan out over two workers.

Each test starts its own workers (a test kills one), so the tests run in any order. The
settings make the claims quick to observe: a job without a heartbeat for 5 s is stale, the
broker never re-delivers within a test (visibility timeout 300 s: only the reaper brings a
lost job back), and a worker asks for cancellation and reports progress at every epoch."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import (
    assert_rounds_recorded_once,
    isolated_service,
    start_worker,
    stop,
    wait_finished,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.db]

WS = {"space": "cnn", "dataset": "digits", "preset": "tiny"}
STALE_S = 5.0


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with isolated_service(
        tmp_path_factory.mktemp("home"),
        visibility_timeout_s="300",
        heartbeat_s="0.5",
        stale_after_s=str(STALE_S),
        cancel_poll_s="0",
        progress_interval_s="0",
    ) as env:
        yield env


@pytest.fixture
def workers(pg_service: dict[str, str], tmp_path: Path) -> Iterator[list[Any]]:
    """Two ready worker processes; each has ``.log``. A test may kill them."""
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [start_worker(pg_service, log) for log in logs]
    for proc, log in zip(procs, logs, strict=True):
        proc.log = log
    try:
        ready = lambda: all(f.exists() and "ready." in f.read_text(errors="replace") for f in logs)  # noqa: E731
        wait_for(ready, 120, "two workers ready", 0.2)
        yield procs
    finally:
        for proc in procs:  # both shut down at once, then each is waited for
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            stop(proc)


def _holder(job: dict[str, Any], procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker process whose pid the job's row names (``NAME/HOST:PID``)."""
    from store.db import session_factory
    from store.models import Job
    from store.settings import get_settings

    with session_factory(get_settings().resolved_database_url())() as s:
        row = s.get(Job, job["id"])
        assert row is not None
        assert row.worker, job
        pid = int(row.worker.rsplit(":", 1)[1])
    return next(p for p in procs if p.pid == pid)


def _state(client: Any, job: dict[str, Any], procs: list[Any]) -> str:
    """The job and the tails of the workers' logs, for a failure's message."""
    tails = [f"--- {p.log.name}\n{p.log.read_text(errors='replace')[-3000:]}" for p in procs]
    return "\n".join([str(client.get(job["url"]).json()), *tails])


def _metric_steps(client: Any, job_id: int, name: str) -> list[int]:
    rows = client.get(f"/jobs/{job_id}/metrics", params={"name": name}).json()["data"]
    return [m["step"] for m in rows]


def test_kill_9_mid_search_is_recovered_and_resumes_without_redoing_work(
    client, auth, pg_service, workers
) -> None:
    from nao_core.engine.checkpoint import load_checkpoint

    job = client.post("/searches", json={**WS, "budget": 8}, headers=auth).json()
    run_dir = Path(pg_service["NAO_STORAGE_DIR"]) / "jobs" / str(job["id"]) / "search"

    def checkpoint() -> dict[str, Any]:
        path = run_dir / "state.pt"  # replaced atomically: never read half-written
        return load_checkpoint(path) if path.is_file() else {"round": 0}

    try:  # a round finished and checkpointed (its pool scored, the controller's proposals in)
        wait_for(lambda: checkpoint()["round"] >= 1, 180, "round 1 checkpointed", 0.1)
    except AssertionError as exc:
        raise AssertionError(_state(client, job, workers)) from exc
    killed = _holder(job, workers)
    stop(killed, sig_kill=True)
    state = checkpoint()
    saved, rounds = int(state["epoch"]), int(state["round"])
    written = {
        f"pool_round{r}.json": (run_dir / f"pool_round{r}.json").stat().st_mtime_ns
        for r in range(1, rounds + 1)
    }
    assert client.get(job["url"]).json()["status"] == "running"  # nobody knows it died yet

    done = wait_finished(client, job["url"], 180)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2  # one re-queue, by the live worker's reaper
    (survivor,) = [p for p in workers if p is not killed]
    log = survivor.log.read_text(errors="replace")
    assert f"job={job['id']} its worker is gone (no heartbeat); re-queued" in log
    # The second attempt starts from the killed attempt's last checkpoint: epoch saved + 1 ...
    assert re.findall(r"resume run=\S+ epoch=(\d+)", log) == [str(saved)]
    # ... and the rounds it had finished are not scored again (their pool files untouched).
    assert {n: (run_dir / n).stat().st_mtime_ns for n in written} == written
    assert done["rounds"] == 4
    assert_rounds_recorded_once(client, job["id"], pg_service["NAO_STORAGE_DIR"], rounds=4)
    assert _metric_steps(client, job["id"], "lr") == list(range(1, 9))


def test_cancel_stops_a_running_search_at_the_next_epoch_boundary(
    client, auth, pg_service, workers
) -> None:
    job = client.post("/searches", json={**WS, "budget": 200}, headers=auth).json()
    wait_for(lambda: client.get(job["url"]).json()["current"] >= 2, 120, "epoch 2", 0.05)
    before = client.get(job["url"]).json()["current"]
    r = client.post(f"/searches/{job['id']}/cancel", headers=auth)
    after = client.get(job["url"]).json()["current"]
    assert r.status_code == 200
    assert r.json()["status"] in ("cancelling", "cancelled")
    final = wait_finished(client, job["url"], 60, 0.1)
    assert final["status"] == "cancelled", final
    stopped = final["current"]
    # The worker asks at every epoch end (NAO_CANCEL_POLL_S=0), after the epoch's own work
    # (its evaluation round, its checkpoint): the epoch in progress when the cancel was
    # committed finishes, and no other starts. ``current`` is written as an epoch's training
    # ends, before that work, so the stop is at ``before`` (the cancel came during epoch
    # ``before``'s round) or at ``before + 1``, when no epoch ended during the request.
    if before == after:
        assert stopped in (before, before + 1)
    else:
        assert before <= stopped <= after + 1
    assert _metric_steps(client, job["id"], "lr") == list(range(1, stopped + 1))
    from nao_core.engine.checkpoint import load_checkpoint

    run_dir = Path(pg_service["NAO_STORAGE_DIR"]) / "jobs" / str(job["id"]) / "search"
    assert int(load_checkpoint(run_dir / "state.pt")["epoch"]) == stopped
    assert client.post(f"/searches/{job['id']}/cancel", headers=auth).status_code == 409


def test_candidates_fan_out_over_two_workers(client, auth, pg_service, workers) -> None:
    """A search without weight sharing: 4 random candidates, then one controller round; each
    candidate is a task, trained once, and both workers train candidates at the same time."""
    from store.db import session_factory
    from store.models import SearchCandidate
    from store.settings import get_settings

    body = {**WS, "method": "nao", "overrides": {"initial_pool": 4, "rounds": 1}}
    job = client.post("/searches", json=body, headers=auth).json()
    assert job["status"] == "queued", job
    done = wait_finished(client, job["url"], 240)
    assert done["status"] == "succeeded", done
    with session_factory(get_settings().resolved_database_url())() as s:
        rows = s.query(SearchCandidate).filter_by(job_id=job["id"]).all()
    assert len(rows) == done["result"]["candidates"] >= 5
    assert all((c.status, c.attempts) == ("done", 1) for c in rows)
    # Which worker ran each candidate: the one whose log has its task succeeding.
    logs = [p.log.read_text(errors="replace") for p in workers]
    ran = {
        c.pool_id: [i for i, log in enumerate(logs) if f"[{c.task_id}] succeeded" in log]
        for c in rows
    }
    assert all(len(w) == 1 for w in ran.values()), ran  # each candidate ran once
    assert {w[0] for w in ran.values()} == {0, 1}  # both workers trained candidates
    first = [c for c in rows if c.round == 0]
    overlapping = any(
        ran[a.pool_id] != ran[b.pool_id]
        and a.started_at < b.finished_at
        and b.started_at < a.finished_at
        for a in first
        for b in first
    )
    assert overlapping  # at once, not one after the other
