"""Controller queries and warm starts, the API's side (torch-free, no worker), on the embedded
service (SQLite, the SQLAlchemy broker) and on Postgres + Redis: every bad request is refused
before a job exists (409 for a search without a controller or an architecture of another
space, 422 naming the field), a good one becomes a ``query`` job on the ``query`` queue, and a
search's controllers are listed with their rounds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from factories import make_architecture, make_job
from service_fixtures import embedded_service, embedded_url, isolated_service, service_env

from nao_core.config import to_dict
from nao_core.presets import get_preset
from nao_core.search_space import create_search_space
from store.models import Checkpoint, JobKind, JobStatus

pytestmark = [pytest.mark.db]

NB201_NAO = {"method": "tabular", "strategy": "nao", "table": "nb201", "budget": 20, "seed": 0,
             "signal": "c10_valid_acc_200ep", "report": "c10_test_acc_200ep",
             "strategy_config": to_dict(get_preset("nao/nb201"))}  # fmt: skip


def _arch(space: str, seed: int) -> str:
    s = create_search_space(space)
    return s.to_str(s.sample(np.random.default_rng(seed)))


def _controller(db: Any, job_id: int, round: int) -> Checkpoint:
    data = f"controller {job_id} {round}".encode()
    row = Checkpoint(job_id=job_id, kind="controller", round=round, path=f"jobs/{job_id}/c.pt",
                     size=len(data), sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    db.add(row)
    db.flush()
    return row


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def pg_service(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Overrides conftest's for this module (its ``client``, ``token`` and ``auth`` follow):
    the embedded service's settings, then Postgres + Redis."""
    home = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        with embedded_service(Path(home)) as env:
            yield {**env, "NAO_DATABASE_URL": embedded_url(env)}
    else:
        with isolated_service(home) as env:
            yield env


@pytest.fixture(scope="module")
def rows(pg_service: dict[str, str]) -> dict[str, int]:
    """A tabular NAO search with controllers of rounds 1 and 2, one still without any, a
    random search, a NAO-WS cnn search with a controller; an architecture of each."""
    from store.db import session_factory, session_scope

    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as db:
        nao = make_job(db, space="nb201", dataset="cifar10", config=NB201_NAO)
        fresh = make_job(db, space="nb201", dataset="cifar10", config=NB201_NAO,
                         status=JobStatus.RUNNING)  # fmt: skip
        rnd = make_job(db, space="nb201", dataset="cifar10",
                       config={**NB201_NAO, "strategy": "random"})  # fmt: skip
        cnn = make_job(db, space="cnn", dataset="digits", config={"optim": {"epochs": 2}})
        for job, round in ((nao, 1), (nao, 2), (cnn, 1)):
            _controller(db, job.id, round)
        a = make_architecture(db, nao, arch=_arch("nb201", 0), score_tabular=90.0)
        b = make_architecture(db, nao, n=1, arch=_arch("nb201", 1), score_tabular=91.0)
        r = make_architecture(db, rnd, arch=_arch("nb201", 2), score_tabular=80.0)
        f = make_architecture(db, fresh, arch=_arch("nb201", 3), score_tabular=80.0)
        c = make_architecture(db, cnn, arch=_arch("cnn", 0), score_supernet=0.5)
        return {"nao": nao.id, "fresh": fresh.id, "random": rnd.id, "cnn": cnn.id,
                "a": a.id, "b": b.id, "r": r.id, "f": f.id, "c": c.id}  # fmt: skip


def _query_jobs(pg_service: dict[str, str]) -> int:
    from sqlalchemy import func, select

    from store.db import session_factory
    from store.models import Job

    with session_factory(pg_service["NAO_DATABASE_URL"])() as s:
        return int(s.scalar(select(func.count()).where(Job.kind == JobKind.QUERY)) or 0)


def _refused(client: Any, pg_service: dict[str, str], path: str, body: Any, auth: Any) -> Any:
    before = _query_jobs(pg_service)
    r = client.post(path, json=body, headers=auth)
    assert r.status_code in (404, 409, 422), r.text
    assert _query_jobs(pg_service) == before  # no job, no worker slot
    return r


def _fields(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [".".join(str(p) for p in d["loc"]) for d in r.json()["detail"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 0}, "body.n"),
        ({"n": 101}, "body.n"),
        ({"n": "5"}, "body.n"),
        ({"step_sizes": [0]}, "body.step_sizes.0"),
        ({"step_sizes": []}, "body.step_sizes"),
        ({"round": 7}, "body.round"),
        ({"nope": 1}, "body.nope"),
    ],
)
def test_improve_refuses_bad_fields(client, auth, pg_service, rows, body, field) -> None:
    r = _refused(client, pg_service, f"/architectures/{rows['a']}/improve", body, auth)
    assert field in _fields(r)


def test_improve_needs_a_controller_of_the_same_space(client, auth, pg_service, rows) -> None:
    def improve(arch: str, **body: Any) -> Any:
        return _refused(client, pg_service, f"/architectures/{rows[arch]}/improve", body, auth)

    r = improve("r")
    assert r.status_code == 409
    assert r.json()["detail"] == f"search {rows['random']} has no controller (method random)"
    r = improve("f")
    assert r.status_code == 409
    assert "no controller checkpoint yet" in r.json()["detail"]
    r = improve("c", search_id=rows["nao"])
    assert r.status_code == 409
    assert "of space 'cnn'" in r.json()["detail"]
    assert "'nb201'" in r.json()["detail"]
    assert improve("a", search_id=10**12).status_code == 404
    assert _refused(client, pg_service, "/architectures/999999/improve", {}, auth).status_code == (
        404
    )
    assert client.post(f"/architectures/{rows['a']}/improve", json={}).status_code == 401


def test_predictions_check_every_arch(client, auth, pg_service, rows) -> None:
    def predict(**body: Any) -> Any:
        return _refused(client, pg_service, "/predictions", {"search_id": rows["nao"], **body},
                        auth)  # fmt: skip

    assert "body.archs" in _fields(predict(archs=[rows["a"]] * 1001))
    assert "body.archs.999" in _fields(predict(archs=[_arch("nb201", 0)] * 999 + [""]))  # 90 kB
    assert "body.archs" in _fields(predict(archs=[]))
    assert "body.archs.1" in _fields(predict(archs=[rows["a"], "not an arch"]))
    assert "body.archs.0" in _fields(predict(archs=[10**12]))
    assert "body.k" in _fields(predict(archs=[rows["a"]], k=0))
    assert "body.extra" in _fields(predict(archs=[rows["a"]], extra=True))
    other = predict(archs=[rows["a"], _arch("cnn", 1)])
    assert other.status_code == 409
    assert other.json()["detail"].startswith("archs.1: an architecture of space 'cnn'")
    by_id = predict(archs=[rows["c"]])
    assert by_id.status_code == 409
    assert "archs.0: architecture" in by_id.json()["detail"]
    rnd = _refused(client, pg_service, "/predictions",
                   {"search_id": rows["random"], "archs": [rows["r"]]}, auth)  # fmt: skip
    assert rnd.status_code == 409
    assert "method random" in rnd.json()["detail"]


def test_interpolations_check_both_ends(client, auth, pg_service, rows) -> None:
    def interpolate(**body: Any) -> Any:
        full = {"search_id": rows["nao"], "from": rows["a"], "to": rows["b"], **body}
        return _refused(client, pg_service, "/interpolations", full, auth)

    assert "body.steps" in _fields(interpolate(steps=1))
    assert "body.steps" in _fields(interpolate(steps=101))
    assert "body.to" in _fields(interpolate(to="garbage"))
    assert "body.from" in _fields(interpolate(**{"from": 10**12}))
    assert interpolate(to=_arch("cnn", 2)).status_code == 409


def test_a_good_query_is_a_job_on_the_query_queue(client, auth, pg_service, rows) -> None:
    """Nothing serves the query queue here: the wait runs out and the answer is the job."""
    text = _arch("nb201", 5)
    with service_env(query_wait_s="0.3"):
        body = {"search_id": rows["nao"], "from": rows["a"], "to": text, "steps": 5}
        r = client.post("/interpolations", json=body, headers=auth)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == job["url"] == f"/jobs/{job['id']}"
    assert job["kind"] == "query"
    assert job["status"] == "queued"
    assert job["space"] == "nb201"
    assert job["dataset"] == "cifar10"
    cfg = job["config"]
    assert cfg["operation"] == "interpolate"
    assert cfg["search_id"] == rows["nao"]
    assert cfg["round"] == 2  # the latest controller
    assert cfg["from"]["architecture_id"] == rows["a"]
    assert cfg["to"] == {"arch": text, "architecture_id": None}
    if pg_service.get("NAO_BROKER_URL", "").startswith("redis"):
        broker = redis.Redis.from_url(pg_service["NAO_BROKER_URL"])
        assert broker.llen(pg_service["NAO_QUEUE_PREFIX"] + "query") >= 1
    assert client.get(job["url"]).json()["kind"] == "query"
    with service_env(query_wait_s="0"):
        r = client.post(f"/architectures/{rows['a']}/improve", json={"round": 1, "n": 3},
                        headers=auth)  # fmt: skip
    assert r.status_code == 202, r.text
    assert r.json()["config"]["round"] == 1
    assert r.json()["architecture_id"] == rows["a"]


def test_a_search_lists_its_controllers(client, rows) -> None:
    r = client.get(f"/jobs/{rows['nao']}/checkpoints", params={"kind": "controller"})
    assert r.status_code == 200
    assert [(c["kind"], c["round"]) for c in r.json()["data"]] == [("controller", 1),
                                                                   ("controller", 2)]  # fmt: skip
    assert client.get(f"/jobs/{rows['random']}/checkpoints").json()["count"] == 0
    assert client.get("/jobs/999999/checkpoints").status_code == 404


def _search(client: Any, auth: Any, body: dict[str, Any]) -> Any:
    return client.post("/searches", json=body, headers=auth)


def test_warm_start_is_checked_and_recorded(client, auth, rows) -> None:
    nb = {"space": "nb201", "budget": 20}
    r = _search(client, auth, {**nb, "warm_start": {"search_id": rows["nao"], "pool": True}})
    assert r.status_code == 202, r.text
    warm = r.json()["config"]["warm_start"]
    assert warm["search_id"] == rows["nao"]
    assert warm["pool"] is True
    assert warm["round"] == 2
    r = _search(client, auth, {**nb, "warm_start": {"search_id": rows["nao"], "round": 1}})
    assert r.json()["config"]["warm_start"]["round"] == 1
    assert r.json()["config"]["warm_start"]["pool"] is False

    def refused(warm: dict[str, Any], body: dict[str, Any] = nb) -> Any:
        r = _search(client, auth, {**body, "warm_start": warm})
        assert r.status_code in (409, 422), r.text
        return r

    assert "body.warm_start.search_id" in _fields(refused({"search_id": 10**12}))
    assert "body.warm_start.round" in _fields(refused({"search_id": rows["nao"], "round": 9}))
    assert "body.warm_start.nope" in _fields(refused({"search_id": rows["nao"], "nope": 1}))
    assert "body.warm_start" in _fields(
        refused({"search_id": rows["nao"]}, {**nb, "method": "random"})
    )
    shape = {**nb, "overrides": {"controller.hidden_size": 64}}
    r = refused({"search_id": rows["nao"]}, shape)
    assert r.status_code == 409
    assert "controller.hidden_size 96 != 64" in r.json()["detail"]
    for source, why in (
        ("random", "has no controller (method random)"),
        ("fresh", "is running, not succeeded"),
        ("cnn", "searched space 'cnn', not 'nb201'"),
    ):
        r = refused({"search_id": rows[source]})
        assert r.status_code == 409
        assert r.json()["detail"] == f"warm_start.search_id: search {rows[source]} {why}"
