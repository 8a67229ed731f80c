"""Helpers shared by the service tests: a per-run Postgres database, an isolated Redis
broker (unique queue prefix), settings switched through the environment, and real Celery
worker processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("NAO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("NAO_TEST_REDIS", "redis://127.0.0.1:6379/9")


def under_ci() -> bool:
    """``CI=true`` (set by CI, ``.ci/run``): a missing service or data set fails the run."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(reason: str) -> NoReturn:
    """A service or data set a test needs is not there: a skip on a developer's laptop, a
    failure under CI, where a skip would pass a run that tested nothing."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing service or data set fails the run)", False)
    pytest.skip(reason)


def pg_error() -> str | None:
    """Why ``NAO_TEST_PG`` cannot be reached (the exception, so a wrong URL says so), or None."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()


def redis_error(url: str = REDIS) -> str | None:
    """Why the Redis at ``url`` cannot be reached (the exception), or None."""
    try:
        import redis

        return None if redis.Redis.from_url(url, socket_timeout=2).ping() else "no PONG"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()


def pg_available() -> bool:
    return pg_error() is None


def redis_available(url: str = REDIS) -> bool:
    return redis_error(url) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for one test module; dropped afterwards."""
    import psycopg

    if (error := pg_error()) is not None:
        missing(f"PostgreSQL not reachable at {PG_ADMIN} ({error})")
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


def embedded_url(env: dict[str, str]) -> str:
    """The SQLite database of an embedded service's settings."""
    return f"sqlite:///{Path(env['NAO_HOME']) / 'nao.sqlite'}"


@contextmanager
def embedded_service(home: Path, **settings: str) -> Iterator[dict[str, str]]:
    """``nao up``'s settings for the block: everything under ``home`` (SQLite, the SQLAlchemy
    broker), a private queue prefix and fast heartbeats, migrated; ``settings`` add to them."""
    from store.migrate import upgrade
    from worker.settings import get_worker_settings

    home.mkdir(parents=True, exist_ok=True)
    values = {"heartbeat_s": "0.5", "stale_after_s": "8", **settings}
    with service_env(
        home=str(home),
        database_url="",
        broker_url="",
        storage_dir=str(home / "storage"),
        queue_prefix=f"e{uuid.uuid4().hex[:8]}.",
        **values,
    ) as env:
        get_worker_settings.cache_clear()
        upgrade(embedded_url(env))
        yield env
    get_worker_settings.cache_clear()


def start_worker(
    env: dict[str, str], log: Path, queues: str = "gpu,default", name: str | None = None
) -> subprocess.Popen[bytes]:
    """A Celery worker on ``queues`` (before the env's prefix); ``queues="query", name="query"``
    is the query worker ``nao up`` starts."""
    prefix = env.get("NAO_QUEUE_PREFIX", "")
    full = {**os.environ, **env, "OMP_NUM_THREADS": "1", "NAO_TORCH_THREADS": "1"}
    names = ",".join(prefix + q for q in queues.split(","))
    cmd = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo",
           "--concurrency", "1", "-Q", names, "--loglevel", "INFO",
           "--without-heartbeat", "--without-gossip", "--without-mingle"]  # fmt: skip
    if name is not None:
        cmd += ["-n", f"{name}@%h"]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)


def start_nao_up(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``nao up`` (API and its workers) in a process of its own, on a free port, its home under
    ``tmp_path`` and none of this process's NAO_ settings; it logs to ``tmp_path/up.log``."""
    home, port = tmp_path / "home", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "cli.main", "up", "--home", str(home), "--port", str(port)]
    with (tmp_path / "up.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def start_api(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``uvicorn api.main:app`` on ``port`` with ``env``'s settings; ready (``/readyz``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**clean, **env, "OMP_NUM_THREADS": "1"},
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}", proc, log)
    return proc


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``base``'s ``/readyz`` answers 200; the log's tail should ``proc`` exit first."""
    import httpx

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 90, "the service", 0.3)


class PrivateRedis:
    """``redis-server`` on a port of its own (the machine's shared one is never touched),
    killed and started again by the tests. With ``appendonly`` its data survives a restart
    (an append-only file, fsync per write); without, a restart loses every message."""

    def __init__(self, root: Path, appendonly: bool) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server not installed")
        self.root, self.appendonly, self.port = root, appendonly, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else [
            "--appendonly", "no"]  # fmt: skip
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--dir", str(self.root), *aof]  # fmt: skip
        with (self.root / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: redis_available(self.url), 20, "the private Redis", 0.1)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final save."""
        if self.proc is not None:
            stop(self.proc, sig_kill=True)


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a temporary folder (as the ``postgres`` user under root), on
    a port of its own (the machine's shared Postgres is never touched), stopped and started
    again by the tests; ``remove`` stops it for good and deletes its folder."""

    def __init__(self) -> None:
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            missing("initdb/pg_ctl not installed")
        self.root = Path(tempfile.mkdtemp(prefix="nao-pg-"))
        self.data, self.port = self.root / "data", free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "pg.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.as_user, "pg_ctl", "-D", str(self.data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


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


def clear_redis_prefix(prefix: str, url: str = REDIS) -> None:
    import redis

    r = redis.Redis.from_url(url)
    for key in r.scan_iter(f"*{prefix}*"):
        r.delete(key)


@contextmanager
def isolated_service(home: Path, **settings: str) -> Iterator[dict[str, str]]:
    """A fresh, migrated Postgres database and a unique Redis queue prefix, with ``NAO_*``
    settings pointing at them (plus ``settings``; ``broker_url`` another Redis) for the
    block."""
    broker = settings.pop("broker_url", REDIS)
    if (error := redis_error(broker)) is not None:
        missing(f"Redis not reachable at {broker} ({error})")
    from store.migrate import upgrade

    prefix = f"t{uuid.uuid4().hex[:8]}."
    with postgres_database() as url:
        upgrade(url)
        with service_env(
            database_url=url,
            broker_url=broker,
            queue_prefix=prefix,
            home=str(home),
            storage_dir=str(home / "storage"),
            **settings,
        ) as env:
            yield env
        if redis_available(broker):
            clear_redis_prefix(prefix, broker)


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
