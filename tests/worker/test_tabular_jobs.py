"""Searches over the NAS-Bench-201 table through a real Celery worker on Postgres + Redis:
every queried architecture is a row scored by the table, ranked by ``order_by=tabular``; a
re-run of the same job adds no rows; cancellation stops a running search."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import isolated_service, wait_finished, wait_for

pytestmark = [pytest.mark.db]

EVOLUTION = {"space": "nb201", "method": "evolution", "budget": 30, "seed": 0}


@pytest.fixture(scope="module")
def table(nb201_table: Path) -> dict[str, dict[str, float]]:
    with gzip.open(nb201_table, "rt", newline="") as f:
        return {
            r["arch_str"]: {k: float(v) for k, v in r.items() if k.endswith("acc_200ep")}
            for r in csv.DictReader(f)
        }


def _archs(client: Any, job_id: int) -> list[dict[str, Any]]:
    params = {"top": 1000, "search": job_id, "order_by": "tabular"}
    return client.get("/architectures", params=params).json()["data"]


def test_a_lost_tabular_search_is_requeued_on_its_own_task(tmp_path: Path) -> None:
    """In a service of its own that no worker serves (the module's worker would take the
    messages, whatever the order of the tests): the reaper re-sends the tabular task to the
    CPU queue."""
    import json
    from datetime import timedelta

    import redis
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from api.main import create_app
    from store.db import session_factory, session_scope
    from store.models import Job, JobStatus, utcnow
    from store.tokens import create_token
    from worker.recovery import requeue_stale_jobs

    with isolated_service(tmp_path / "home") as env, TestClient(create_app()) as client:
        with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
            auth = {"Authorization": f"Bearer {create_token(s, 'tests', admin=True)}"}
        job = client.post("/searches", json=EVOLUTION, headers=auth).json()
        with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
            old = utcnow() - timedelta(hours=1)
            s.execute(
                update(Job)
                .where(Job.id == job["id"])
                .values(status=JobStatus.RUNNING, worker="gone:1", heartbeat_at=old, updated_at=old)
            )
        assert job["id"] in requeue_stale_jobs()
        broker = redis.Redis.from_url(env["NAO_BROKER_URL"])
        queued = broker.lrange(env["NAO_QUEUE_PREFIX"] + "default", 0, -1)
    sent = [json.loads(m)["headers"] for m in queued]
    mine = [h for h in sent if h["argsrepr"] == f"[{job['id']}]"]
    assert [h["task"] for h in mine] == ["nao.search.tabular"] * 2


def test_evolution_search_records_every_query(client, auth, worker, table) -> None:
    job = client.post("/searches", json=EVOLUTION, headers=auth).json()
    done = wait_finished(client, job["url"], 120, 0.25)
    assert done["status"] == "succeeded", done
    assert done["current"] == done["total"] == 30
    assert done["progress"] == 1.0
    rows = _archs(client, job["id"])
    assert len(rows) == 30
    assert len({r["canonical_hash"] for r in rows}) == 30
    signal = "c10_valid_acc_200ep"
    for r in rows:
        assert r["space"] == "nb201"
        assert r["dataset"] == "cifar10"
        assert r["scores"]["tabular"] == pytest.approx(table[r["arch"]][signal])
    top = client.get(
        "/architectures", params={"top": 10, "search": job["id"], "order_by": "tabular"}
    ).json()["data"]
    assert [r["id"] for r in top] == [r["id"] for r in rows[:10]]
    scores = [r["scores"]["tabular"] for r in top]
    assert scores == sorted(scores, reverse=True)
    best = done["result"]["best"]
    assert done["result"]["method"] == "evolution"
    assert done["result"]["queries"] == 30
    assert best["arch"] == top[0]["arch"]
    assert best["architecture_id"] == top[0]["id"]
    assert best["signal"] == pytest.approx(table[best["arch"]][signal])
    assert best["report"] == pytest.approx(table[best["arch"]]["c10_test_acc_200ep"])
    assert done["best"]["id"] == top[0]["id"]  # GET /searches/{id} shows the best so far
    metrics = client.get(f"/jobs/{job['id']}/metrics", params={"name": "best_signal"}).json()
    series = [(m["step"], m["value"]) for m in metrics["data"]]
    assert series[-1] == (30, pytest.approx(best["signal"]))
    assert [v for _, v in series] == sorted(v for _, v in series)


def test_a_rerun_adds_no_rows(client, auth, pg_service, worker) -> None:
    """A re-delivered task runs the search again from its seed: the same rows, no more."""
    from store import repository
    from store.db import session_factory
    from worker.search_tabular import _search

    job = wait_finished(
        client, client.post("/searches", json=EVOLUTION, headers=auth).json()["url"], 120, 0.25
    )
    first = _archs(client, job["id"])
    with session_factory(pg_service["NAO_DATABASE_URL"])() as s:
        row = repository.get_job(s, job["id"])
        s.expunge(row)
    status, result = _search(row)
    assert status == "succeeded"
    assert result == job["result"]
    again = _archs(client, job["id"])
    assert [(a["id"], a["arch"]) for a in again] == [(a["id"], a["arch"]) for a in first]


def test_nao_search_over_the_table(client, auth, worker, table) -> None:
    """NAO's published preset: 10 random, then rounds of 5 proposals; what its controller
    learned is served by ``/rounds`` (point r + 1 = round r's queries) and ``/lineage``."""
    body = {"space": "nb201", "method": "nao", "preset": "nb201-paper", "budget": 20, "seed": 0}
    done = wait_finished(
        client, client.post("/searches", json=body, headers=auth).json()["url"], 300, 0.25
    )
    assert done["status"] == "succeeded", done
    assert done["result"]["method"] == "nao"
    assert done["result"]["queries"] == 20
    numerics = done["result"]["numerics"]  # what the controller's numbers depended on
    assert numerics["seed"] == 0
    assert numerics["device_kind"] == "cpu"
    assert numerics["controller_replicas"] == 2  # the preset's value, not the host's
    rows = _archs(client, done["id"])
    assert len(rows) == 20
    assert rows[0]["arch"] == done["result"]["best"]["arch"]
    signal = "c10_valid_acc_200ep"
    assert rows[0]["scores"]["tabular"] == pytest.approx(table[rows[0]["arch"]][signal])
    by_pool = {r["pool_id"]: r for r in rows}
    assert sorted(by_pool) == list(range(1, 21))  # pool id = query number
    assert {by_pool[i]["round"] for i in range(1, 11)} == {0}
    assert {by_pool[i]["round"] for i in range(11, 21)} == {1, 2}

    rounds = client.get(f"/searches/{done['id']}/rounds").json()["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert sum(r["count"] for r in rounds) == 20
    assert rounds[0]["count"] == 10
    assert rounds[0]["calibration"] is None  # the random pool: no controller yet
    for r in rounds:
        assert r["best"] == r["scores"][0] == max(r["scores"])
    for r in rounds[1:]:  # from the first controller round on: its proposals
        cal = r["calibration"]
        assert cal is not None
        assert cal["count"] >= 1
        for point in cal["points"]:
            arch = by_pool[point["pool_id"]]
            assert arch["round"] == r["round"] - 1
            assert point["measured"] == pytest.approx(table[arch["arch"]][signal])

    lineage = client.get(f"/searches/{done['id']}/lineage").json()
    proposals = lineage["proposals"]
    points = [p for r in rounds[1:] for p in r["calibration"]["points"]]
    assert sorted(p["pool_id"] for p in proposals) == sorted(p["pool_id"] for p in points)
    for p in proposals:
        assert p["round"] in (1, 2)
        assert p["parent_pool_id"] < p["pool_id"]
        assert by_pool[p["parent_pool_id"]]["round"] < p["round"]
        assert p["parent_architecture_id"] == by_pool[p["parent_pool_id"]]["id"]
        assert p["step_size"] is not None
        assert p["step_size"] >= 1.0
        assert p["predicted"] is not None  # the proposing controller's belief
        assert p["score_source"] == "tabular"
    assert sum(b["proposed"] for b in lineage["by_step_size"]) == len(proposals)
    assert sum(b["proposed"] for b in lineage["by_seed"]) == len(proposals)
    in_top = sum(a["parent_pool_id"] is not None for a in lineage["top"])
    assert sum(b["in_top"] for b in lineage["by_step_size"]) == in_top
    assert sum(b["in_top"] for b in lineage["by_seed"]) == in_top


def test_cancel_stops_a_running_search(client, auth, worker) -> None:
    body = {"space": "nb201", "method": "random", "budget": 15625, "seed": 1}
    job = client.post("/searches", json=body, headers=auth).json()
    wait_for(lambda: client.get(job["url"]).json()["current"] > 0, 60, "first queries", 0.05)
    assert client.post(f"/searches/{job['id']}/cancel", headers=auth).status_code == 200
    done = wait_finished(client, job["url"], 120, 0.25)
    assert done["status"] == "cancelled", done
    assert 0 < len(_archs(client, job["id"])) < 15625
