"""The ``nao`` command: one parser tree, the service's commands here and the method's
from ``nao_core.cli.add_commands``; ``nao --help`` lists them all.

nao up [--home DIR] [--port N]     embedded service: SQLite + local broker, API + one worker
                                   (and a light one for controller queries)
nao api [--port N] [--workers N]   the API alone under uvicorn (production; NAO_API_WORKERS)
nao worker [--gpus 0,1]            Celery worker(s): one process per GPU, or one on the CPU
nao worker --queues query          a CPU worker for controller queries (improve, predict, ...)
nao migrate [up|down]              Alembic upgrade head / downgrade base
nao token create --name N [--admin] create an API token; it is printed once
nao token list | revoke ID|NAME    the tokens (never their secrets); refuse one from now on
nao bench api [--json OUT]         GET /architectures and POST /searches latency/throughput
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nao_core.cli import add_commands, report_error, run
from nao_core.console import finish_parser, top_parser, verbosity

QUERY_QUEUE = "query"  # store.broker.QUERY: controller queries, served apart from searches

if TYPE_CHECKING:
    from store.settings import Settings


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
        token = create_token(s, args.name, admin=args.admin)
    print(token)
    return 0


def _token_list(_args: argparse.Namespace) -> int:
    from store.db import session_factory
    from store.tokens import list_tokens

    def when(t: datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M") if t else "-"

    with session_factory(_settings().resolved_database_url())() as s:
        rows = [
            (str(t.id), t.name, t.role, when(t.created_at), when(t.last_used_at),
             when(t.revoked_at))
            for t in list_tokens(s)
        ]  # fmt: skip
    head = ("id", "name", "role", "created", "last used", "revoked")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from store.db import session_factory, session_scope
    from store.tokens import TokenNotFound, revoke_token

    try:
        with session_scope(session_factory(_settings().resolved_database_url())) as s:
            row = revoke_token(s, args.token)
            name, token_id = row.name, row.id
    except TokenNotFound as exc:
        return report_error(str(exc))
    print(f"revoked token {token_id} ({name}): it is refused from its next request")
    return 0


def worker_command(queues: str, pool: str = "solo", log_level: str = "info") -> list[str]:
    s = _settings()
    names = ",".join(s.queue(q) for q in queues.split(","))
    return [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker",
        "--pool", pool, "--concurrency", "1", "-Q", names, "--loglevel", log_level.upper(),
    ]  # fmt: skip


def _log_level(args: argparse.Namespace) -> str:
    """uvicorn's and Celery's log level for ``-q`` / none / ``-v``."""
    return {-1: "warning", 0: "info"}.get(min(verbosity(args), 1), "debug")


def port_error(host: str, port: int) -> str | None:
    """Why the API could not listen on ``host:port``, or None when it can. The port is bound
    and released at once (with SO_REUSEADDR, as uvicorn binds it, so a closed connection's
    TIME_WAIT is no conflict); uvicorn binds it again a moment later."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is in use; pick another with --port"
        return f"cannot listen on {host} port {port}: {exc.strerror or exc}"
    return None


def _worker(args: argparse.Namespace) -> int:
    """One worker, or with ``--gpus 0,1`` one worker process per GPU, each seeing only its
    own (CUDA_VISIBLE_DEVICES) and named ``gpuN@host``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cmd = worker_command(args.queues, args.pool, _log_level(args))
    if not args.gpus:
        return subprocess.call(cmd)
    procs = [
        subprocess.Popen(
            [*cmd, "-n", f"gpu{gpu}@%h"],
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
    may use, on uvloop, and httptools through ``api.protocol`` (header caps, read timeout)."""
    import uvicorn

    from api.protocol import HttpProtocol

    n = workers or _settings().api_workers
    uvicorn.run(
        "api.main:app", host=host, port=port, workers=n, log_level=log_level, http=HttpProtocol
    )


def _api(args: argparse.Namespace) -> int:
    if error := port_error(args.host, args.port):
        return report_error(error)
    serve_api(args.host, args.port, args.workers, _log_level(args))
    return 0


def _up(args: argparse.Namespace) -> int:
    if error := port_error(args.host, args.port):  # before anything starts or says it runs
        return report_error(error)
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
            token = create_token(s, "embedded", admin=True)  # the operator's own
            print(f"API token (shown once, also saved to {home / 'token'}): {token}", flush=True)
            (home / "token").write_text(token + "\n")
            (home / "token").chmod(0o600)
    worker = _Supervised(worker_command("gpu,default", log_level=_log_level(args)))
    # Controller queries are waited for by their caller: a worker of their own, so they
    # never queue behind a search (a controller on the CPU, a few MB).
    queries = _Supervised(
        [*worker_command(QUERY_QUEUE, log_level=_log_level(args)), "-n", "query@%h"]
    )
    # uvicorn re-raises SIGTERM after its shutdown; make that an exception so the worker
    # is stopped below instead of being orphaned.
    signal.signal(signal.SIGTERM, _raise_exit)
    print(f"NAO service at http://{args.host}:{args.port} (home {home})", flush=True)
    try:
        serve_api(args.host, args.port, args.workers, _log_level(args))
    finally:
        # A second TERM (an impatient supervisor) must not cut this short and orphan a worker.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_all(worker, queries)
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

    def terminate(self) -> None:
        self._stopping.set()
        self.proc.terminate()

    def wait(self) -> None:
        """Wait for a warm shutdown; kill the worker if it has not exited in 30 s."""
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stop_all(*workers: _Supervised) -> None:
    """Ask every worker to stop first, then wait: they shut down side by side."""
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()


def build_parser() -> argparse.ArgumentParser:
    """Every command of ``nao``: the method's (``nao_core.cli``), then the service's."""
    p, sub = top_parser("NAO: Neural Architecture Optimization (Luo et al., 2018) as a service")
    bench = add_commands(sub)
    _add_service_benches(bench)
    _add_serve_commands(sub)
    _add_admin_commands(sub)
    return finish_parser(p)


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8000, help="TCP port of the API (default: 8000)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)"
    )
    p.add_argument("--workers", type=int, default=None, help="API processes (NAO_API_WORKERS)")


def _add_serve_commands(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="embedded service: API + workers on SQLite")
    up.add_argument(
        "--home",
        default=os.environ.get("NAO_HOME", "~/.nao"),
        help="folder of the database, the broker's files, the artifacts and the token "
        "(default: $NAO_HOME, else ~/.nao)",
    )
    _add_serve_options(up)
    up.set_defaults(func=_up)
    a = sub.add_parser("api", help="the API alone (uvicorn), e.g. in front of Postgres/Redis")
    _add_serve_options(a)
    a.set_defaults(func=_api)
    w = sub.add_parser("worker", help="a Celery worker")
    w.add_argument(
        "--queues",
        default="gpu,default",
        help="queues to take jobs from (default: gpu,default; 'query': a CPU worker that "
        "answers controller queries: improve, predict, interpolate)",
    )
    w.add_argument("--pool", default="solo", help="solo (one job at a time) or prefork")
    w.add_argument("--gpus", default="", help="e.g. 0,1: one worker process per GPU")
    w.set_defaults(func=_worker)


def _add_admin_commands(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("migrate", help="run the database migrations")
    m.add_argument(
        "direction",
        nargs="?",
        choices=["up", "down"],
        default="up",
        help="up: upgrade to the latest schema (default); down: downgrade to an empty database",
    )
    m.set_defaults(func=_migrate)
    tokens = sub.add_parser("token", help="API tokens")
    t = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = t.add_parser("create", help="create an API token; it is printed once")
    c.add_argument("--name", required=True, help="what the token is for, e.g. ci or alice")
    c.add_argument(
        "--admin",
        action="store_true",
        help="cancel any job and hold any number (default: only its own jobs, at most "
        "NAO_MAX_ACTIVE_JOBS_PER_TOKEN of them unfinished)",
    )
    c.set_defaults(func=_token)
    ls = t.add_parser("list", help="every token: id, name, role, created, last used, revoked")
    ls.set_defaults(func=_token_list)
    r = t.add_parser("revoke", help="refuse a token from its next request on")
    r.add_argument("token", metavar="ID|NAME", help="the token's id, or its name if unique")
    r.set_defaults(func=_token_revoke)


def _add_service_benches(bench: argparse._SubParsersAction) -> None:
    """The service's benchmarks, next to the method's under ``nao bench``."""
    from cli import bench_api, bench_dashboard

    for name, module, help in (
        ("api", bench_api, "GET /architectures and POST /searches latency and throughput"),
        ("dashboard", bench_dashboard, "server time of every dashboard page, up to 1M archs"),
    ):
        b = bench.add_parser(name, help=f"{help} (Postgres)")
        module.add_arguments(b)
        b.set_defaults(func=module.command)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
