"""Tokens with owners and roles: a job belongs to the token that created it; only its owner
or an admin cancels it or starts a sweep on it (403 otherwise); a user token holds at most
NAO_MAX_ACTIVE_JOBS_PER_TOKEN unfinished jobs (429 with Retry-After); a revoked token is
refused at its next request; NAO_PRIVATE_READS=true puts every read behind a token."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from factories import make_architecture, make_job
from service_fixtures import service_env

from nao_core.search_space import create_search_space
from store import repository
from store.db import session_factory, session_scope
from store.models import Job, JobStatus
from store.tokens import create_token, revoke_token, verify_token

CAP = 3


@pytest.fixture(scope="module")
def capped(pg_service: dict[str, str]) -> Iterator[None]:
    with service_env(max_active_jobs_per_token=str(CAP)):
        yield


def _url(pg_service: dict[str, str]) -> str:
    return pg_service["NAO_DATABASE_URL"]


def _token(pg_service: dict[str, str], name: str, admin: bool = False) -> dict[str, str]:
    with session_scope(session_factory(_url(pg_service))) as s:
        return {"Authorization": f"Bearer {create_token(s, name, admin=admin)}"}


def _train(client, headers: dict[str, str]):
    space = create_search_space("cnn")
    arch = space.to_str(space.sample(np.random.default_rng(0)))
    body = {"arch": arch, "space": "cnn", "dataset": "digits", "preset": "tiny"}
    return client.post("/trainings", json=body, headers=headers)


def _job(pg_service: dict[str, str], job_id: int) -> Job:
    with session_factory(_url(pg_service))() as s:
        job = repository.get_job(s, job_id)
        assert job is not None
        return job


def test_a_job_records_its_token_and_only_the_owner_or_an_admin_cancels_it(
    client, pg_service, capped
) -> None:
    alice, bob = _token(pg_service, "alice"), _token(pg_service, "bob")
    admin = _token(pg_service, "ops", admin=True)
    first, second = _train(client, alice), _train(client, alice)
    assert first.status_code == second.status_code == 202, first.text
    with session_factory(_url(pg_service))() as s:
        alice_id = repository.get_job(s, first.json()["id"]).created_by
    assert alice_id is not None
    refused = client.post(f"/trainings/{first.json()['id']}/cancel", headers=bob)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"train {first.json()['id']} belongs to another token; only its owner or an admin "
        "may cancel it"
    )
    assert _job(pg_service, first.json()["id"]).status == JobStatus.QUEUED
    own = client.post(f"/jobs/{first.json()['id']}/cancel", headers=alice)
    assert own.status_code == 200, own.text
    assert own.json()["status"] == "cancelled"
    by_admin = client.post(f"/trainings/{second.json()['id']}/cancel", headers=admin)
    assert by_admin.status_code == 200, by_admin.text
    with session_scope(session_factory(_url(pg_service))) as s:
        orphan = make_job(s, status=JobStatus.QUEUED).id  # made before jobs had owners
    no_owner = client.post(f"/searches/{orphan}/cancel", headers=alice)
    assert no_owner.status_code == 403
    assert "has no owner token; only an admin token may cancel it" in no_owner.text
    assert client.post(f"/searches/{orphan}/cancel", headers=admin).status_code == 200


@pytest.fixture
def owned_search(pg_service: dict[str, str]) -> tuple[int, dict[str, str]]:
    """A succeeded search with two scored architectures, and its owner's header."""
    space = create_search_space("cnn")
    archs = space.sample_many(np.random.default_rng(3), 2)
    headers = _token(pg_service, "owner")
    with session_scope(session_factory(_url(pg_service))) as s:
        row = verify_token(s, headers["Authorization"].removeprefix("Bearer "))
        assert row is not None
        search = make_job(s, created_by=row.id)
        for n, arch in enumerate(archs):
            make_architecture(s, search, n=n, arch=space.to_str(arch), score_trained=0.5 + n)
        return search.id, headers


def test_only_the_searchs_owner_or_an_admin_starts_a_sweep_on_it(
    client, pg_service, capped, owned_search
) -> None:
    search_id, owner = owned_search
    other = _token(pg_service, "other")
    admin = _token(pg_service, "ops2", admin=True)
    body = {"search_id": search_id, "top_k": 1, "grid": {"optim.lr_max": [0.05]}}
    refused = client.post("/sweeps", json=body, headers=other)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"search {search_id} belongs to another token; only its owner or an admin may start "
        "a sweep on it"
    )
    mine = client.post("/sweeps", json=body, headers=owner)
    assert mine.status_code == 202, mine.text
    sweep = mine.json()
    run = _job(pg_service, sweep["runs"][0]["job_id"])
    assert (
        run.created_by
        == _job(pg_service, sweep["id"]).created_by
        == _job(pg_service, search_id).created_by
    )  # the sweep and its runs are the caller's
    assert client.post(f"/sweeps/{sweep['id']}/cancel", headers=other).status_code == 403
    assert client.post(f"/sweeps/{sweep['id']}/cancel", headers=owner).status_code == 200
    assert client.post("/sweeps", json=body, headers=admin).status_code == 202
    too_many = {**body, "top_k": 2, "grid": {"optim.lr_max": [0.01, 0.02]}}  # 4 runs > 3
    capped_out = client.post("/sweeps", json=too_many, headers=owner)
    assert capped_out.status_code == 429, capped_out.text
    assert "4 more jobs would pass that cap" in capped_out.json()["detail"]


def test_the_cap_answers_429_with_retry_after_and_frees_up(client, pg_service, capped) -> None:
    carol = _token(pg_service, "carol")
    jobs = [_train(client, carol) for _ in range(CAP)]
    assert [r.status_code for r in jobs] == [202] * CAP
    refused = _train(client, carol)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.json()["detail"] == (
        f"token 'carol' has {CAP} jobs queued or running and may hold {CAP} "
        "(NAO_MAX_ACTIVE_JOBS_PER_TOKEN); another job would pass that cap: retry when one "
        "finishes, or cancel one"
    )
    assert client.post(f"/jobs/{jobs[0].json()['id']}/cancel", headers=carol).status_code == 200
    assert _train(client, carol).status_code == 202  # a cancelled job frees its place
    assert _train(client, carol).status_code == 429
    with session_scope(session_factory(_url(pg_service))) as s:  # a worker finishes one
        repository.update_job(s, jobs[1].json()["id"], status=JobStatus.SUCCEEDED)
    assert _train(client, carol).status_code == 202
    admin = _token(pg_service, "ops3", admin=True)
    assert all(_train(client, admin).status_code == 202 for _ in range(CAP + 1))  # no cap


def test_a_revoked_token_is_refused_at_its_next_request(client, pg_service, capped) -> None:
    dave = _token(pg_service, "dave")
    job = _train(client, dave)
    assert job.status_code == 202
    with session_scope(session_factory(_url(pg_service))) as s:
        revoke_token(s, "dave")
    refused = client.post(f"/jobs/{job.json()['id']}/cancel", headers=dave)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "invalid or revoked token"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert _train(client, dave).status_code == 401
    assert _job(pg_service, job.json()["id"]).created_by is not None  # its jobs keep the owner


def test_private_reads_need_a_token_but_the_dashboard_and_probes_do_not(client, pg_service) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    reader = _token(pg_service, "reader")
    reads = ["/jobs", "/searches", "/architectures?top=5", "/catalog", "/jobs/1/series"]
    assert all(client.get(p).status_code in (200, 404) for p in reads)  # open by default
    with service_env(private_reads="true"), TestClient(create_app()) as private:
        for path in reads * 2:  # twice: a cached answer must not skip the check
            r = private.get(path)
            assert r.status_code == 401, path
            assert r.json()["detail"] == "missing bearer token"
            assert private.get(path, headers=reader).status_code in (200, 404), path
        assert private.get("/jobs", headers={"Authorization": "Bearer nao_x"}).status_code == 401
        for public in ["/", "/ui/searches", "/ui/assets/app.js", "/healthz", "/openapi.json"]:
            assert private.get(public).status_code == 200, public


def test_openapi_names_403_and_429_where_they_can_happen(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method, codes in [
        ("/trainings", "post", {"429"}),
        ("/searches", "post", {"429"}),
        ("/evaluations", "post", {"429"}),
        ("/sweeps", "post", {"403", "429"}),
        ("/jobs/{job_id}/cancel", "post", {"403"}),
        ("/sweeps/{sweep_id}/cancel", "post", {"403"}),
    ]:
        assert codes <= set(paths[path][method]["responses"]), (path, method)
