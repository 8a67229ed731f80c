"""The ``nao`` command: service commands here, everything else in ``nao_core.cli``.

nao up [--home DIR] [--port N]     embedded service: SQLite + local broker, API + one worker
nao api [--port N] [--workers N]   the API alone under uvicorn (production; NAO_API_WORKERS)
nao worker [--gpus 0,1]            Celery worker(s): one process per GPU, or one on the CPU
nao migrate [up|down]              Alembic upgrade head / downgrade base
nao token create --name NAME       create an API token; it is printed once
nao bench api [--json OUT]         GET /architectures and POST /searches latency/throughput
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store.settings import Settings

SERVICE_COMMANDS = {"up", "api", "worker", "migrate", "token"}


def _settings() -> Settings:
    from store.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _migrate(args: argparse.Namespace) -> int:
    from store.migrate import downgrade, upgrade

    url = _settings().resolved_database_url()
    (upgrade if args.direction == "up" else downgrade)(url)
    return 0


def _token(args: argparse.Namespace) -> int:
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    with session_scope(session_factory(_settings().resolved_database_url())) as s:
        token = create_token(s, args.name)
    print(token)
    return 0


def worker_command(queues: str, pool: str = "solo") -> list[str]:
    s = _settings()
    names = ",".join(s.queue(q) for q in queues.split(","))
    return [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker",
        "--pool", pool, "--concurrency", "1", "-Q", names, "--loglevel", "INFO",
    ]  # fmt: skip


def _worker(args: argparse.Namespace) -> int:
    """One worker, or with ``--gpus 0,1`` one worker process per GPU, each seeing only its
    own (CUDA_VISIBLE_DEVICES) and named ``gpuN@host``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.gpus:
        return subprocess.call(worker_command(args.queues, args.pool))
    procs = [
        subprocess.Popen(
            [*worker_command(args.queues, args.pool), "-n", f"gpu{gpu}@%h"],
            env={**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "NAO_DEVICE": "cuda"},
        )
        for gpu in args.gpus.split(",")
    ]
    try:
        return max(p.wait() for p in procs)
    finally:
        for p in procs:
            p.terminate()


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def serve_api(host: str, port: int, workers: int | None, log_level: str = "info") -> None:
    """uvicorn with ``workers`` processes (default ``NAO_API_WORKERS``): one per core the API
    may use. uvloop and httptools are picked up when installed (they are dependencies)."""
    import uvicorn

    n = workers or _settings().api_workers
    uvicorn.run("api.main:app", host=host, port=port, workers=n, log_level=log_level)


def _api(args: argparse.Namespace) -> int:
    serve_api(args.host, args.port, args.workers)
    return 0


def _up(args: argparse.Namespace) -> int:
    home = Path(args.home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["NAO_HOME"] = str(home)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # One local worker: a job whose worker died is taken back within about a minute.
    os.environ.setdefault("NAO_HEARTBEAT_S", "5")
    os.environ.setdefault("NAO_STALE_AFTER_S", "30")
    settings = _settings()
    from store.db import session_factory, session_scope
    from store.migrate import upgrade
    from store.tokens import create_token, has_tokens

    upgrade(settings.resolved_database_url())
    with session_scope(session_factory(settings.resolved_database_url())) as s:
        if not has_tokens(s):
            token = create_token(s, "embedded")
            print(f"API token (shown once, also saved to {home / 'token'}): {token}", flush=True)
            (home / "token").write_text(token + "\n")
            (home / "token").chmod(0o600)
    worker = _Supervised(worker_command("gpu,default"))
    # uvicorn re-raises SIGTERM after its shutdown; make that an exception so the worker
    # is stopped below instead of being orphaned.
    signal.signal(signal.SIGTERM, _raise_exit)
    print(f"NAO service at http://{args.host}:{args.port} (home {home})", flush=True)
    try:
        serve_api(args.host, args.port, args.workers)
    finally:
        worker.stop()
    return 0


class _Supervised:
    """The embedded worker, started again whenever it dies (a crash, an OOM kill, kill -9);
    its lost job is then re-queued by the worker's reaper (worker.recovery)."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd, self.proc = cmd, subprocess.Popen(cmd)
        self._stopping = threading.Event()
        threading.Thread(target=self._watch, name="nao-up-worker", daemon=True).start()

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.proc.poll() is not None and not self._stopping.is_set():
                print(f"worker exited ({self.proc.returncode}); restarting it", flush=True)
                self.proc = subprocess.Popen(self.cmd)

    def stop(self) -> None:
        self._stopping.set()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nao", description="NAO service commands")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="embedded service: API + one worker on SQLite")
    up.add_argument("--home", default=os.environ.get("NAO_HOME", "~/.nao"))
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--workers", type=int, default=None, help="API processes (NAO_API_WORKERS)")
    up.set_defaults(func=_up)
    a = sub.add_parser("api", help="the API alone (uvicorn), e.g. in front of Postgres/Redis")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--workers", type=int, default=None, help="API processes (NAO_API_WORKERS)")
    a.set_defaults(func=_api)
    w = sub.add_parser("worker", help="a Celery worker")
    w.add_argument("--queues", default="gpu,default")
    w.add_argument("--pool", default="solo", help="solo (one job at a time) or prefork")
    w.add_argument("--gpus", default="", help="e.g. 0,1: one worker process per GPU")
    w.set_defaults(func=_worker)
    m = sub.add_parser("migrate", help="run the database migrations")
    m.add_argument("direction", nargs="?", choices=["up", "down"], default="up")
    m.set_defaults(func=_migrate)
    t = sub.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    c = t.add_parser("create", help="create a token; it is printed once")
    c.add_argument("--name", required=True)
    c.set_defaults(func=_token)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["bench", "api"]:
        from cli import bench_api

        return bench_api.main(argv[2:])
    if not argv or argv[0] not in SERVICE_COMMANDS:
        from nao_core.cli import main as core_main

        return core_main(argv)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
