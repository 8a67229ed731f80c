"""What a careless or hostile caller sends is answered 4xx, never 500: ids past 64 bits, NaN
and Infinity in JSON bodies; and every timestamp carries its timezone on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

BIG = 2**63 + 1  # one past the database's 64-bit ids


@pytest.mark.parametrize(
    "path",
    [
        f"/searches/{BIG}", f"/jobs/{BIG}", f"/jobs/{BIG}/metrics", f"/jobs/{BIG}/series",
        f"/architectures/{BIG}", f"/architectures/{BIG}/drawing.svg", f"/architectures/{BIG}/jobs",
        f"/checkpoints/{BIG}", f"/sweeps/{BIG}", f"/searches/{BIG}/rounds",
        f"/searches/{BIG}/lineage", f"/searches/{BIG}/candidates", f"/architectures?search={BIG}",
    ],
)  # fmt: skip
def test_ids_past_64_bits_are_refused_not_a_500(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] in ("path", "query")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/sweeps/{BIG}/cancel", None),
        (f"/jobs/{BIG}/cancel", None),
        ("/trainings", {"architecture_id": BIG}),
        ("/evaluations", {"checkpoint_id": BIG}),
        ("/sweeps", {"search_id": BIG, "grid": {"optim.lr_max": [0.1]}}),
    ],
)
def test_ids_past_64_bits_in_posts(client, auth, path: str, body: dict | None) -> None:
    r = client.post(path, json=body, headers=auth)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"space": "cnn", "seed": NaN}', "seed"),
        ('{"space": "cnn", "budget": Infinity}', "budget"),
        ('{"space": "cnn", "max_gpu_hours": -Infinity}', "max_gpu_hours"),
        ('{"space": "cnn", "overrides": {"optim.lr_max": NaN}}', "overrides"),
    ],
)
def test_nan_and_infinity_are_422_naming_the_field(client, auth, raw: str, field: str) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    r = client.post("/searches", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_timestamps_carry_their_zone_on_postgres(client, auth) -> None:
    body = {"space": "nb201", "method": "random", "budget": 3}
    job = client.post("/searches", json=body, headers=auth).json()
    read = client.get(f"/searches/{job['id']}").json()
    assert read["created_at"].endswith(("Z", "+00:00")), read["created_at"]


def test_timestamps_carry_their_zone_on_sqlite(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from service_fixtures import service_env

    from api.main import create_app
    from store.db import session_factory, session_scope
    from store.migrate import upgrade
    from store.models import Job

    url = f"sqlite:///{tmp_path / 'nao.sqlite'}"
    upgrade(url)
    with session_scope(session_factory(url)) as s:
        job = Job(kind="search", space="nb201", dataset="cifar10", config={}, request={})
        s.add(job)
        s.flush()
        job_id = job.id
    with service_env(database_url=url, home=str(tmp_path)), TestClient(create_app()) as c:
        read = c.get(f"/searches/{job_id}").json()
        listed = c.get("/searches").json()["data"][0]
    for stamp in (read["created_at"], listed["created_at"]):
        assert stamp.endswith(("Z", "+00:00")), stamp
