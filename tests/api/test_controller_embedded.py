"""``nao up`` (SQLite, the SQLAlchemy broker) answers controller queries: its query worker
serves the ``query`` queue beside the main worker, over real HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from service_fixtures import start_nao_up, stop, wait_for, wait_succeeded

from nao_core.search_space import create_search_space

pytestmark = pytest.mark.slow


def test_nao_up_answers_controller_queries(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, port = start_nao_up(tmp_path)
    space = create_search_space("nb201")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:

            def ready() -> bool:
                try:
                    return c.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, "nao up", 0.5)
            auth = {"Authorization": f"Bearer {(home / 'token').read_text().strip()}"}
            body = {"space": "nb201", "method": "nao", "budget": 15, "seed": 0}
            search = wait_succeeded(c, c.post("/searches", json=body, headers=auth).json()["url"])
            ckpts = c.get(f"/jobs/{search['id']}/checkpoints").json()["data"]
            assert [(k["kind"], k["round"]) for k in ckpts] == [("controller", 1)]
            blob = c.get(ckpts[0]["download_url"], headers=auth)
            assert hashlib.sha256(blob.content).hexdigest() == ckpts[0]["sha256"]
            ranked = {"top": 2, "search": search["id"], "order_by": "tabular"}
            top = c.get("/architectures", params=ranked).json()["data"]
            r = c.post(f"/architectures/{top[0]['id']}/improve", json={"n": 3}, headers=auth)
            assert r.status_code == 200, r.text
            proposals = r.json()["proposals"]
            assert len({p["canonical_hash"] for p in proposals}) == len(proposals) >= 1
            for p in proposals:
                space.parse(p["arch"])
            every = c.get("/architectures", params={**ranked, "top": 100}).json()["data"]
            first = next(a for a in every if a["round"] == 0)  # the controller was fitted on it
            r = c.post("/predictions", headers=auth,
                       json={"search_id": search["id"], "archs": [first["id"]]})  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["measured"] == first["scores"]["tabular"]
            r = c.post("/interpolations", headers=auth,
                       json={"search_id": search["id"], "from": top[0]["id"], "to": top[1]["id"],
                             "steps": 4})  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["path"]
            bad = c.post(f"/architectures/{top[0]['id']}/improve", json={"n": 0}, headers=auth)
            assert bad.status_code == 422
            rnd = {"space": "nb201", "method": "random", "budget": 5}
            rnd = wait_succeeded(c, c.post("/searches", json=rnd, headers=auth).json()["url"])
            arch = c.get("/architectures", params={"search": rnd["id"], "order_by": "tabular",
                                                   "top": 1}).json()["data"][0]  # fmt: skip
            r = c.post(f"/architectures/{arch['id']}/improve", json={}, headers=auth)
            assert r.status_code == 409
            assert "method random" in r.json()["detail"]
            queries = c.get("/jobs", params={"limit": 100}).json()["data"]
            assert sum(j["kind"] == "query" for j in queries) == 3  # the refused ones: none
    finally:
        stop(proc)
