"""What the controller learned: ``GET /searches/{id}/rounds`` and ``/lineage``, on rows made by
hand, on a 600-architecture pool over 5 rounds, and on a real NAO-WS search run by a worker."""

from __future__ import annotations

import logging
import time

import pytest
from factories import make_architecture, make_job
from service_fixtures import wait_succeeded
from sqlalchemy import insert

from store import repository
from store.db import session_factory, session_scope
from store.models import Architecture, JobKind, PoolRound

pytestmark = pytest.mark.db
logger = logging.getLogger(__name__)

# pool id: (round entered, parent pool id, step size, supernet score, trained score)
POOL = {
    0: (0, None, None, 0.5, None),
    1: (0, None, None, 0.45, None),
    2: (0, None, None, 0.2, None),
    3: (0, None, None, 0.1, None),
    4: (1, 0, 1.0, 0.6, 0.7),
    5: (1, 1, 2.0, 0.3, None),
}
ROUND_1 = {0: (None, 0.4), 1: (None, 0.3), 2: (None, 0.2), 3: (None, 0.1)}  # no fit yet
ROUND_2 = {0: (0.9, 0.5), 1: (0.2, 0.45), 4: (0.8, 0.6), 5: (0.1, 0.3)}  # one pair discordant


def _rows(points: dict[int, tuple[float | None, float]]) -> list[dict]:
    return [{"pool_id": p, "predicted": a, "measured": b} for p, (a, b) in points.items()]


@pytest.fixture(scope="module")
def ids(pg_service: dict[str, str]) -> dict[str, int]:
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        search, empty = make_job(s), make_job(s)
        arch = {}
        for pool_id, (rnd, parent, step, supernet, trained) in POOL.items():
            row = make_architecture(
                s,
                search,
                n=pool_id,
                pool_id=pool_id,
                round=rnd,
                parent_id=parent,
                step_size=step,
                score_supernet=supernet,
                score_trained=trained,
            )
            arch[pool_id] = row.id
        for _ in range(2):  # replayed after a re-delivery: recorded once
            repository.record_pool_round(s, search.id, 1, _rows(ROUND_1))
            repository.record_pool_round(s, search.id, 2, _rows(ROUND_2))
        train = make_job(s, kind=JobKind.TRAIN)
        return {"search": search.id, "empty": empty.id, "train": train.id} | {
            f"arch{p}": a for p, a in arch.items()
        }


def test_rounds_give_scores_and_calibration(client, ids) -> None:
    r = client.get(f"/searches/{ids['search']}/rounds")
    assert r.status_code == 200
    body = r.json()
    assert body["job_id"] == ids["search"]
    first, second = body["rounds"]
    assert first == {
        "round": 1,
        "count": 4,
        "best": 0.4,
        "median": pytest.approx(0.25),
        "scores": [0.4, 0.3, 0.2, 0.1],
        "calibration": None,
    }
    assert (second["round"], second["count"], second["best"]) == (2, 4, 0.6)
    assert second["scores"] == [0.6, 0.5, 0.45, 0.3]
    cal = second["calibration"]
    assert cal["count"] == 4
    assert cal["kendall_tau"] == pytest.approx(4 / 6)  # 5 concordant, 1 discordant of 6
    assert cal["pairwise_accuracy"] == pytest.approx(5 / 6)
    assert {p["pool_id"]: (p["predicted"], p["measured"]) for p in cal["points"]} == ROUND_2


def test_lineage_joins_parents_and_counts_the_top(client, ids) -> None:
    r = client.get(f"/searches/{ids['search']}/lineage", params={"top": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["proposals"] == [
        {
            "architecture_id": ids["arch4"],
            "pool_id": 4,
            "round": 1,
            "parent_pool_id": 0,
            "parent_architecture_id": ids["arch0"],
            "step_size": 1.0,
            "predicted": 0.8,  # round 2's prediction: the proposing controller's
            "score": 0.7,
            "score_source": "trained",
        },
        {
            "architecture_id": ids["arch5"],
            "pool_id": 5,
            "round": 1,
            "parent_pool_id": 1,
            "parent_architecture_id": ids["arch1"],
            "step_size": 2.0,
            "predicted": 0.1,
            "score": 0.3,
            "score_source": "supernet",
        },
    ]
    # trained scores first, then the supernet's
    assert [(a["pool_id"], a["score_source"]) for a in body["top"]] == [
        (4, "trained"),
        (0, "supernet"),
        (1, "supernet"),
    ]
    assert body["top"][1]["parent_pool_id"] is None
    assert body["top"][1]["predicted"] is None  # random: round 1 had no prediction
    assert body["by_step_size"] == [
        {"step_size": 1.0, "proposed": 1, "in_top": 1},
        {"step_size": 2.0, "proposed": 1, "in_top": 0},
    ]
    assert body["by_seed"] == [
        {"parent_pool_id": 0, "parent_architecture_id": ids["arch0"], "proposed": 1, "in_top": 1},
        {"parent_pool_id": 1, "parent_architecture_id": ids["arch1"], "proposed": 1, "in_top": 0},
    ]


def test_a_search_without_rows_answers_empty(client, ids) -> None:
    assert client.get(f"/searches/{ids['empty']}/rounds").json() == {
        "job_id": ids["empty"],
        "rounds": [],
    }
    lineage = client.get(f"/searches/{ids['empty']}/lineage").json()
    assert lineage == {
        "job_id": ids["empty"],
        "proposals": [],
        "top": [],
        "by_step_size": [],
        "by_seed": [],
    }


@pytest.mark.parametrize("path", ["rounds", "lineage"])
def test_unknown_searches_and_other_jobs_are_404(client, ids, path) -> None:
    for job_id in (ids["train"], 987654):
        r = client.get(f"/searches/{job_id}/{path}")
        assert r.status_code == 404
        assert r.json() == {"detail": f"search {job_id} not found"}


@pytest.mark.parametrize("top", [0, 101])
def test_lineage_top_is_bounded(client, ids, top) -> None:
    r = client.get(f"/searches/{ids['search']}/lineage", params={"top": top})
    assert r.status_code == 422


def test_routes_are_documented(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/searches/{job_id}/rounds", "/searches/{job_id}/lineage"):
        get = paths[path]["get"]
        assert get["tags"] == ["searches"]
        assert {"200", "404"} <= set(get["responses"])
        assert "security" not in get  # read-only, no token


def test_a_paper_sized_search_answers_whole(client, pg_service) -> None:
    """A pool of 600 over 5 rounds (300 proposals after each of the first 4): every round
    and every proposal comes back; the times are logged (the benchmark comes separately)."""
    pool, rounds, new = 600, 5, 300
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        job = make_job(s)
        archs = [
            {
                "job_id": job.id,
                "space": "cnn",
                "dataset": "digits",
                "arch": f"a{i}",
                "canonical_hash": f"{i:064d}",
                "pool_id": i,
                "round": 0 if i < pool else 1 + (i - pool) // new,
                "parent_id": None if i < pool else (i * 7) % 100,
                "step_size": None if i < pool else float(1 + i % 51),
                "score_supernet": (i * 37 % 1000) / 1000,
            }
            for i in range(pool + (rounds - 1) * new)
        ]
        s.execute(insert(Architecture), archs)
        # round r scores the pool of the moment: 600 ids ending with round r-1's proposals
        points = [
            {
                "job_id": job.id,
                "round": r,
                "pool_id": i,
                "predicted": None if r == 1 else ((i * 13) % 1000) / 1000,
                "measured": (i * 37 % 1000) / 1000,
            }
            for r in range(1, rounds + 1)
            for i in range((r - 1) * new, (r - 1) * new + pool)
        ]
        s.execute(insert(PoolRound), points)
        job_id = job.id
    begin = time.perf_counter()
    body = client.get(f"/searches/{job_id}/rounds").json()
    middle = time.perf_counter()
    lineage = client.get(f"/searches/{job_id}/lineage", params={"top": 100}).json()
    end = time.perf_counter()
    logger.info("rounds=%.0fms lineage=%.0fms", 1000 * (middle - begin), 1000 * (end - middle))
    assert [r["count"] for r in body["rounds"]] == [pool] * rounds
    assert body["rounds"][0]["calibration"] is None
    assert all(len(r["calibration"]["points"]) == pool for r in body["rounds"][1:])
    assert all(-1.0 <= r["calibration"]["kendall_tau"] <= 1.0 for r in body["rounds"][1:])
    assert len(lineage["proposals"]) == (rounds - 1) * new
    assert len(lineage["top"]) == 100
    assert sum(b["proposed"] for b in lineage["by_step_size"]) == (rounds - 1) * new
    assert sum(b["proposed"] for b in lineage["by_seed"]) == (rounds - 1) * new
    assert sum(b["in_top"] for b in lineage["by_seed"]) == sum(
        a["parent_pool_id"] is not None for a in lineage["top"]
    )


@pytest.mark.slow
def test_a_real_search_records_its_rounds_and_lineage(client, auth, worker) -> None:
    body = {"space": "cnn", "dataset": "digits", "preset": "tiny", "budget": 6}
    search = client.post("/searches", json=body, headers=auth).json()
    done = wait_succeeded(client, search["url"], timeout=300)
    assert done["rounds"] == 3  # evaluation points at epochs 2, 4 and 6
    pool_size = done["config"]["pool_size"]

    rounds = client.get(f"/searches/{search['id']}/rounds").json()["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert [r["count"] for r in rounds] == [pool_size] * 3
    assert rounds[0]["calibration"] is None
    for r in rounds:
        assert r["scores"] == sorted(r["scores"], reverse=True)
        assert r["best"] == r["scores"][0]
    for r in rounds[1:]:
        cal = r["calibration"]
        assert cal["count"] == pool_size
        assert -1.0 <= cal["kendall_tau"] <= 1.0
        assert 0.0 <= cal["pairwise_accuracy"] <= 1.0
        assert sorted(p["measured"] for p in cal["points"]) == sorted(r["scores"])

    lineage = client.get(f"/searches/{search['id']}/lineage").json()
    proposals = lineage["proposals"]
    assert proposals
    for p in proposals:
        assert p["parent_pool_id"] is not None
        assert p["parent_architecture_id"] is not None
        assert p["step_size"] is not None
        assert p["predicted"] is not None  # every proposal was scored at the next point
        assert p["round"] in (1, 2)
    assert sum(b["proposed"] for b in lineage["by_step_size"]) == len(proposals)
    assert sum(b["proposed"] for b in lineage["by_seed"]) == len(proposals)
    top = lineage["top"]
    assert 1 <= len(top) <= 10
    assert top[0]["score_source"] == "trained"  # the reranked ones lead
    in_top = sum(a["parent_pool_id"] is not None for a in top)
    assert sum(b["in_top"] for b in lineage["by_step_size"]) == in_top
