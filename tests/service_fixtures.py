"""Helpers shared by the service tests: a per-run Postgres database, an isolated Redis
broker (unique queue prefix), settings switched through the environment, and real Celery
worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("NAO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("NAO_TEST_REDIS", "redis://127.0.0.1:6379/9")


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_timeout=2).ping())
    except Exception:
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for one test module; dropped afterwards."""
    import psycopg

    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    name = f"nao_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        from store.db import session_factory

        session_factory.cache_clear()  # drop pooled connections before DROP DATABASE
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def service_env(**values: str) -> Iterator[dict[str, str]]:
    """Set ``NAO_*`` variables (and reset the cached settings) for the block."""
    from store.settings import get_settings

    env = {f"NAO_{k.upper()}": v for k, v in values.items()}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    prefix = env.get("NAO_QUEUE_PREFIX", "")
    full = {**os.environ, **env, "OMP_NUM_THREADS": "1", "NAO_TORCH_THREADS": "1"}
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo",
           "--concurrency", "1", "-Q", f"{prefix}gpu,{prefix}default", "--loglevel", "INFO",
           "--without-heartbeat", "--without-gossip", "--without-mingle"]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], sig_kill: bool = False) -> None:
    if proc.poll() is None:
        proc.kill() if sig_kill else proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


FINISHED = {"succeeded", "failed", "cancelled"}


def wait_finished(client: Any, url: str, timeout: float = 120, every: float = 0.5) -> Any:
    """Poll the job at ``url`` until it has finished; its final JSON."""
    return wait_for(
        lambda: (j := client.get(url).json())["status"] in FINISHED and j, timeout, url, every
    )


def wait_succeeded(client: Any, url: str, timeout: float = 120) -> Any:
    job = wait_finished(client, url, timeout)
    assert job["status"] == "succeeded", job
    return job


def clear_redis_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS)
    for key in r.scan_iter(f"*{prefix}*"):
        r.delete(key)


@contextmanager
def isolated_service(home: Path, **settings: str) -> Iterator[dict[str, str]]:
    """A fresh, migrated Postgres database and a unique Redis queue prefix, with ``NAO_*``
    settings pointing at them (plus ``settings``) for the block."""
    if not redis_available():
        pytest.skip("Redis not reachable")
    from store.migrate import upgrade

    prefix = f"t{uuid.uuid4().hex[:8]}."
    with postgres_database() as url:
        upgrade(url)
        with service_env(
            database_url=url,
            broker_url=REDIS,
            queue_prefix=prefix,
            home=str(home),
            storage_dir=str(home / "storage"),
            **settings,
        ) as env:
            yield env
        clear_redis_prefix(prefix)


def assert_rounds_recorded_once(client: Any, job_id: int, storage_dir: str, rounds: int) -> None:
    """A finished NAO-WS search recorded each of its ``rounds`` exactly once: one pool_best
    point per round, and one architecture row per arch its pool files ever held."""
    metrics = client.get(f"/jobs/{job_id}/metrics", params={"name": "pool_best"}).json()
    assert [m["step"] for m in metrics["data"]] == list(range(1, rounds + 1))
    run_dir = Path(storage_dir) / "jobs" / str(job_id) / "search"
    seen = {
        e["arch"]
        for r in range(1, rounds + 1)
        for e in json.loads((run_dir / f"pool_round{r}.json").read_text())
    }
    rows = client.get(
        "/architectures", params={"top": 1000, "search": job_id, "order_by": "supernet"}
    ).json()["data"]
    assert {a["arch"] for a in rows} == seen
    assert len(rows) == len(seen)
