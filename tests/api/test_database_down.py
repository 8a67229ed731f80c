"""Postgres stops under a running API: reads and writes answer 503 JSON with Retry-After
(not a plain-text 500), and 200/202 again once it is back, with no restart of the API.

The database is a private Postgres instance on a port of its own (the machine's shared one
is never stopped); the broker is the embedded SQLAlchemy one."""

from __future__ import annotations

import uuid

import pytest
from service_fixtures import service_env

pytestmark = pytest.mark.slow

EVOLUTION = {"space": "nb201", "method": "evolution", "budget": 30, "seed": 0}


def test_the_api_answers_503_while_postgres_is_down_and_recovers(private_pg, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from store.db import session_factory, session_scope
    from store.migrate import upgrade
    from store.tokens import create_token

    home = tmp_path / "home"
    home.mkdir()
    with service_env(
        home=str(home),
        database_url=private_pg.url,
        broker_url="",
        storage_dir=str(home / "storage"),
        queue_prefix=f"d{uuid.uuid4().hex[:8]}.",
        read_cache="false",
    ):
        upgrade(private_pg.url)
        with session_scope(session_factory(private_pg.url)) as s:
            auth = {"Authorization": f"Bearer {create_token(s, 'tests')}"}
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            assert client.get("/jobs").status_code == 200
            assert client.post("/searches", json=EVOLUTION, headers=auth).status_code == 202
            private_pg.stop()
            for answer in (
                client.get("/jobs"),
                client.get("/jobs/1"),
                client.post("/searches", json=EVOLUTION, headers=auth),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"].isdigit()
                assert "database is unavailable" in answer.json()["detail"]
            assert client.get("/readyz").status_code == 503
            private_pg.start()  # the same app: the pool pings and reconnects
            assert client.get("/jobs").json()["count"] == 1
            assert client.post("/searches", json=EVOLUTION, headers=auth).status_code == 202
        session_factory.cache_clear()
