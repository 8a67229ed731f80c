"""Cancelling a sweep as a whole: every unfinished run stops, finished runs keep their results,
and the sweep settles at once (no worker ever runs a sweep row)."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_architecture, make_job

from nao_core.search_space import create_search_space
from store import repository
from store.db import session_factory, session_scope
from store.models import JobKind, JobStatus


@pytest.fixture
def search_id(pg_service: dict[str, str]) -> int:
    space = create_search_space("cnn")
    archs = space.sample_many(np.random.default_rng(7), 2)
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        search = make_job(s)
        for n, arch in enumerate(archs):
            make_architecture(s, search, n=n, arch=space.to_str(arch), score_trained=0.5 + n)
        return search.id


def _sweep(client, auth, search_id: int) -> dict:
    body = {"search_id": search_id, "top_k": 2, "grid": {"optim.lr_max": [0.05, 0.1]}}
    r = client.post("/sweeps", json=body, headers=auth)
    assert r.status_code == 202, r.text
    return r.json()


def _finish(pg_service: dict[str, str], job_id: int, accuracy: float) -> None:
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        repository.update_job(s, job_id, status=JobStatus.SUCCEEDED, result={"accuracy": accuracy})


def test_cancel_stops_every_unfinished_run_and_keeps_the_finished(
    client, auth, pg_service, search_id
) -> None:
    sweep = _sweep(client, auth, search_id)
    runs = [r["job_id"] for r in sweep["runs"]]
    assert len(runs) == 4
    assert sweep["status"] == "running"
    _finish(pg_service, runs[0], 0.9)  # one run done before the cancel
    r = client.post(f"/sweeps/{sweep['id']}/cancel", headers=auth)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "cancelled"
    status = {x["job_id"]: x["status"] for x in done["runs"]}
    assert status[runs[0]] == "succeeded"
    assert {status[j] for j in runs[1:]} == {"cancelled"}  # queued runs stop at once
    assert done["best"]["job_id"] == runs[0]  # the finished run keeps its rank
    again = client.post(f"/sweeps/{sweep['id']}/cancel", headers=auth)
    assert again.status_code == 409
    assert "already cancelled" in again.text
    assert client.get(f"/sweeps/{sweep['id']}").json()["status"] == "cancelled"


def test_generic_job_cancel_of_a_sweep_cancels_its_runs(
    client, auth, pg_service, search_id
) -> None:
    sweep = _sweep(client, auth, search_id)
    r = client.post(f"/jobs/{sweep['id']}/cancel", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"  # not "cancelling": nothing would settle it
    runs = client.get(f"/sweeps/{sweep['id']}").json()["runs"]
    assert {x["status"] for x in runs} == {"cancelled"}


def test_cancel_errors(client, auth, pg_service) -> None:
    assert client.post("/sweeps/987654/cancel", headers=auth).status_code == 404
    assert client.post("/sweeps/1/cancel").status_code == 401
    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        train = make_job(s, kind=JobKind.TRAIN, status=JobStatus.QUEUED)
        train_id = train.id
    assert client.post(f"/sweeps/{train_id}/cancel", headers=auth).status_code == 404
