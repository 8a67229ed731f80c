"""The cached read path of ``GET /architectures`` (api/readcache.py) on Postgres: repeats are
served from the cache, and a commit by any other writer (a worker, psql) drops it at once."""

from __future__ import annotations

from typing import Any

import pytest
from factories import make_architecture, make_job
from service_fixtures import wait_for
from sqlalchemy import update

from api.readcache import ReadCache
from store.db import session_factory, session_scope
from store.models import Architecture

pytestmark = pytest.mark.db


def _top(client: Any, search: int) -> list[float]:
    r = client.get("/architectures", params={"top": 3, "search": search})
    assert r.status_code == 200
    return [a["scores"]["supernet"] for a in r.json()["data"]]


def test_repeats_are_cached_and_a_commit_elsewhere_drops_them(client, pg_service) -> None:
    cache: ReadCache = client.app.state.read_cache
    wait_for(lambda: cache.enabled, 10, "the change listener")
    factory = session_factory(pg_service["NAO_DATABASE_URL"])
    with session_scope(factory) as s:
        job = make_job(s)
        for n in range(5):
            make_architecture(s, job, n=n, score_supernet=n / 10)
        search = job.id

    first = _top(client, search)
    assert first == pytest.approx([0.4, 0.3, 0.2])
    key = f"top=3&search={search}".encode()
    assert cache.get(key) is not None  # the next identical read never reaches the database
    assert _top(client, search) == first

    with session_scope(factory) as s:  # what a worker's upsert does, from another connection
        s.execute(
            update(Architecture)
            .where(Architecture.job_id == search, Architecture.score_supernet == 0.0)
            .values(score_supernet=0.9)
        )
    wait_for(lambda: cache.get(key) is None, 5, "the cache to be dropped", 0.05)
    assert _top(client, search) == pytest.approx([0.9, 0.4, 0.3])


def test_an_entry_computed_across_a_change_is_not_kept() -> None:
    cache = ReadCache(max_entries=2)
    cache.set_enabled(True)
    before = cache.generation
    cache.invalidate()  # a write committed while the query ran
    cache.put(b"q", b"stale", before)
    assert cache.get(b"q") is None
    for i in range(3):
        cache.put(b"k%d" % i, b"v", cache.generation)
    assert cache.get(b"k0") is None  # bounded: the oldest went first
    assert cache.get(b"k2") == b"v"
    cache.set_enabled(False)  # listener gone: nothing is served from memory
    assert cache.get(b"k2") is None


def test_chunked_bodies_are_limited_and_replayed(client, auth) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/searches", content=chunks(), headers=auth)
    assert r.status_code == 422
    assert "exceeds" in r.json()["detail"][0]["msg"]

    def small() -> Any:  # under the limit: read, then replayed to the app whole
        yield b'{"space": "cnn", '
        yield b'"dataset": "digits", "preset": "tiny"}'

    json_headers = {**auth, "Content-Type": "application/json"}
    assert client.post("/searches", content=small(), headers=json_headers).status_code == 202
