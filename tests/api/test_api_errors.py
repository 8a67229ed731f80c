"""Auth, validation, 404 and 409 against the real Postgres + Redis (no worker needed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from store.db import session_factory, session_scope
from store.models import Job, JobStatus

GOOD = {"space": "cnn", "dataset": "digits", "preset": "tiny"}


def _field(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.text
    return [".".join(str(p) for p in d["loc"]) for d in resp.json()["detail"]]


def test_post_search_queues_a_job(client, auth, pg_service) -> None:
    r = client.post("/searches", json=GOOD, headers=auth)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued"
    assert r.headers["location"] == job["url"] == f"/searches/{job['id']}"
    assert job["config"]["data"]["dataset"] == "digits"
    queue = pg_service["NAO_QUEUE_PREFIX"] + "gpu"
    assert redis.Redis.from_url(pg_service["NAO_BROKER_URL"]).llen(queue) >= 1
    got = client.get(job["url"]).json()
    assert got["id"] == job["id"]
    listed = client.get("/searches").json()
    assert job["id"] in [j["id"] for j in listed["data"]]
    assert listed["count"] >= 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/searches", GOOD),
        ("/trainings", {"arch_name": "naonet-a"}),
        ("/evaluations", {"checkpoint_id": 1}),
        ("/searches/1/cancel", None),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer nao_wrong", "Basic abc", "Bearer "])
def test_mutations_need_a_valid_token(client, path, body, header) -> None:
    headers = {"Authorization": header} if header else {}
    r = client.post(path, json=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "space": "nope"}, "body.space"),
        ({**GOOD, "dataset": "imagenet"}, "body.dataset"),
        ({**GOOD, "preset": "huge"}, "body.preset"),
        ({**GOOD, "seed": -1}, "body.seed"),
        ({**GOOD, "seed": "3"}, "body.seed"),
        ({**GOOD, "budget": 0}, "body.budget"),
        ({**GOOD, "budget": 10**9}, "body.budget"),
        ({**GOOD, "overrides": {"pool_size": 1}}, "body.overrides.pool_size"),
        ({**GOOD, "overrides": {"optim.lr_max": "fast"}}, "body.overrides.optim.lr_max"),
        ({**GOOD, "overrides": {"no.such.key": 1}}, "body.overrides.no.such.key"),
        ({**GOOD, "overrides": {"seed": 1}}, "body.overrides.seed"),
        ({**GOOD, "overrides": [1, 2]}, "body.overrides"),
        ({**GOOD, "extra": 1}, "body.extra"),
        ({"dataset": "digits"}, "body.space"),
        ({**GOOD, "space": "../../etc"}, "body.space"),
        ({**GOOD, "space": "nb201"}, "body.dataset"),  # nb201: the signal column decides
    ],
)
def test_bad_search_inputs_name_the_field(client, auth, body, field) -> None:
    assert field in _field(client.post("/searches", json=body, headers=auth))


NB201_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"arch": "not an arch"}, "body.arch"),
        ({"arch": "1 2 3"}, "body.arch"),
        ({"arch": "1 2 3", "space": "rnn"}, "body.arch"),
        ({"arch": NB201_ARCH, "space": "nb201"}, "body.space"),  # a space without training
        ({"arch_name": "naonet-z"}, "body.arch_name"),
        ({"arch_name": "naonet-a", "arch": "1"}, "body"),
        ({}, "body"),
        ({"arch_name": "naonet-a", "preset": "nope"}, "body.preset"),
        ({"arch_name": "naonet-a", "dataset": "mnist"}, "body.dataset"),
        (
            {"arch_name": "naonet-a", "overrides": {"optim.epochs": -1}},
            "body.overrides.optim.epochs",
        ),
        ({"architecture_id": 0}, "body.architecture_id"),
        ({"arch": "x" * 5000}, "body.arch"),
    ],
)
def test_bad_training_inputs_name_the_field(client, auth, body, field) -> None:
    assert field in _field(client.post("/trainings", json=body, headers=auth))


def test_bad_evaluation_inputs(client, auth) -> None:
    assert "body.checkpoint_id" in _field(client.post("/evaluations", json={}, headers=auth))
    r = client.post("/evaluations", json={"checkpoint_id": "x"}, headers=auth)
    assert "body.checkpoint_id" in _field(r)
    assert client.post("/evaluations", json={"checkpoint_id": 999}, headers=auth).status_code == 404


def test_malformed_and_oversized_bodies(client, auth) -> None:
    r = client.post(
        "/searches", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    big = {**GOOD, "overrides": {"x": "y" * 100_000}}
    r = client.post("/searches", json=big, headers=auth)
    assert _field(r) == ["body"]
    assert "exceeds" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "path",
    [
        "/searches/987654",
        "/trainings/987654",
        "/evaluations/987654",
        "/jobs/987654",
        "/jobs/987654/metrics",
        "/architectures/987654",
        "/checkpoints/987654",
    ],
)
def test_unknown_ids_are_404(client, path) -> None:
    assert client.get(path).status_code == 404


def test_unknown_ids_in_bodies_and_cancels_are_404(client, auth) -> None:
    assert (
        client.post("/trainings", json={"architecture_id": 987654}, headers=auth).status_code == 404
    )
    assert client.post("/searches/987654/cancel", headers=auth).status_code == 404
    r = client.get("/checkpoints/987654/download", headers=auth)
    assert r.status_code == 404


def test_cancel_queued_then_finished_is_409(client, auth, pg_service) -> None:
    job = client.post("/searches", json=GOOD, headers=auth).json()
    r = client.post(f"/searches/{job['id']}/cancel", headers=auth)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert client.post(f"/searches/{job['id']}/cancel", headers=auth).status_code == 409
    other = client.post("/searches", json=GOOD, headers=auth).json()
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        row = s.get(Job, other["id"])
        assert row is not None
        row.status = JobStatus.SUCCEEDED
    r = client.post(f"/jobs/{other['id']}/cancel", headers=auth)
    assert r.status_code == 409
    assert "succeeded" in r.json()["detail"]


def test_search_url_does_not_serve_other_kinds(client, auth) -> None:
    job = client.post("/trainings", json={"arch_name": "naonet-a"}, headers=auth).json()
    assert job["url"] == f"/trainings/{job['id']}"
    assert client.get(f"/searches/{job['id']}").status_code == 404
    assert client.get(f"/jobs/{job['id']}").status_code == 200


def test_health_ready_and_docs(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": True, "broker": True}
    assert "/searches" in client.get("/openapi.json").json()["paths"]
    assert "cnn" in client.get("/catalog").json()["spaces"]
