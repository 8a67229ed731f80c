"""``nao up``: SQLite + the SQLAlchemy broker, API + one worker, no server needed.

Walks the README's curl flow over real HTTP: token printed at first start, search, top
architectures, training of the best one, download checked against its sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from service_fixtures import start_nao_up, stop, wait_for, wait_succeeded

pytestmark = pytest.mark.slow


def test_nao_up_serves_the_whole_flow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, port = start_nao_up(tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as c:

            def ready() -> bool:
                try:
                    return c.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, "nao up", 0.5)
            token = (home / "token").read_text().strip()
            assert token in (tmp_path / "up.log").read_text()  # printed once at first start
            auth = {"Authorization": f"Bearer {token}"}
            body = {"space": "cnn", "dataset": "digits", "preset": "tiny"}
            assert c.post("/searches", json=body).status_code == 401
            search = c.post("/searches", json=body, headers=auth)
            assert search.status_code == 202
            wait_succeeded(c, search.json()["url"], 180)
            top = c.get("/architectures", params={"top": 10}).json()["data"]
            assert top
            train = c.post("/trainings", json={"architecture_id": top[0]["id"]}, headers=auth)
            trained = wait_succeeded(c, train.json()["url"], 180)
            meta = c.get(f"/checkpoints/{trained['checkpoint_id']}").json()
            blob = c.get(meta["download_url"], headers=auth)
            assert hashlib.sha256(blob.content).hexdigest() == meta["sha256"]
            assert blob.headers["etag"] == f'"{meta["sha256"]}"'
        files = {p.name for p in home.iterdir()}
        assert {"nao.sqlite", "broker.sqlite", "storage", "token"} <= files
    finally:
        stop(proc)
    assert proc.returncode is not None
