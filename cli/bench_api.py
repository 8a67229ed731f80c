"""``nao bench api``: latency and throughput of the service's hot paths over real HTTP.

Fills Postgres with ``--rows`` architectures (COPY, once; re-runs reuse them), starts the API
under uvicorn with ``--server-workers`` processes, then measures with ``--clients`` concurrent
keep-alive connections, closed loop (a raw asyncio HTTP/1.1 client, on uvloop when installed,
so the load generator takes little of the cores it shares with the server):

* GET /architectures?top=10 (ordered by supernet score): p50/p99 latency and reads/s;
* POST /searches: jobs/s (queued on a private queue that no worker consumes; purged after).

Targets (issue #4, 2 cores): p99 <= 25 ms and >= 500 reads/s. Reads are served from the API's
read cache (``api.readcache``) after the first one; ``--no-read-cache`` measures the database
path instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_PREFIX = "bench."


# The bench's searches: spaces and datasets as a real database mixes them; every row has a
# supernet score, half a predictor score, 2 % a trained score, the nb201 rows a tabular one.
SEARCHES = [
    (space, dataset)
    for space, dataset in (
        ("cnn", "cifar10"),
        ("cnn", "cifar100"),
        ("cnn-large", "cifar10"),
        ("rnn", "ptb"),
        ("nb201", "cifar10"),
    )
    for _ in range(4)
]


def _fill(url: str, rows: int, seed: int = 0) -> list[int]:
    """Ensure the bench's searches hold ``rows`` architectures in all; returns their ids."""
    import psycopg

    from store.migrate import upgrade

    upgrade(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM job WHERE preset = 'bench' ORDER BY id")]
        for space, dataset in SEARCHES[len(ids) :]:
            row = conn.execute(
                "INSERT INTO job (kind, status, space, dataset, preset, config, request, progress,"
                " current, total, rounds, attempts, created_at, updated_at) VALUES ('search',"
                " 'succeeded', %s, %s, 'bench', '{}', '{}', 1, 0, 0, 0, 0, now(), now())"
                " RETURNING id",
                (space, dataset),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        have = conn.execute(
            "SELECT count(*) FROM architecture WHERE job_id = ANY(%s)", (ids,)
        ).fetchone()
        start = int(have[0]) if have else 0
        rng = random.Random(seed + start)
        cols = (
            "job_id, space, dataset, arch, canonical_hash, round, score_supernet,"
            " score_predictor, score_trained, score_tabular, created_at"
        )
        with conn.cursor().copy(f"COPY architecture ({cols}) FROM STDIN") as copy:
            for i in range(start, rows):
                k = i % len(ids)
                space, dataset = SEARCHES[k]
                score = rng.random()
                copy.write_row((
                    ids[k], space, dataset, f"bench-{i}", f"{i:064x}", i % 5, score,
                    score + rng.gauss(0, 0.05) if i % 2 else None,
                    score if i % 50 == 0 else None,
                    score * 100 if space == "nb201" else None, "now",
                ))  # fmt: skip
        conn.execute("ANALYZE architecture")
    return ids


def query_mix(job_ids: list[int], n: int, seed: int = 0) -> list[str]:
    """``n`` distinct ``GET /architectures`` query strings as clients send them: by search,
    space or dataset or none, ordered by any score source, paged."""
    rng, out = random.Random(seed), set()
    while len(out) < n:
        params = [f"top={rng.choice((10, 10, 10, 50, 100))}"]
        params.append(
            f"order_by={rng.choice(('supernet', 'supernet', 'predictor', 'trained', 'tabular'))}"
        )
        if rng.random() < 0.5:
            params.append(f"search={rng.choice(job_ids)}")
        elif rng.random() < 0.5:
            space, dataset = rng.choice(SEARCHES)
            params.append(f"space={space}")
            if rng.random() < 0.5:
                params.append(f"dataset={dataset}")
        params.append(f"offset={rng.choice((0, 0, 0, 10, 50, 100, 1000))}")
        out.add("/architectures?" + "&".join(params))
    return sorted(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Conn:
    """One keep-alive HTTP/1.1 connection: a prepared request, the response read by
    Content-Length. A raw client so the load generator costs little of the shared cores."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("response without Content-Length")
        await self.reader.readexactly(length)
        return status


def _raw_request(
    base: str, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None
) -> bytes:
    host = base.split("://", 1)[1]
    body = b"" if json_body is None else json.dumps(json_body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if json_body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _load(
    base: str,
    method: str,
    path: str | list[str],
    clients: int,
    total: int,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """``clients`` connections, each sending its next request when the last one answered
    (closed loop), until ``total`` requests were timed; several paths are sent in turn."""
    host, port = base.split("://", 1)[1].split(":")
    paths = [path] if isinstance(path, str) else path
    raws = [_raw_request(base, method, p, json_body, headers) for p in paths]
    latencies: list[float] = []
    errors = 0
    left = total

    async def one() -> None:
        nonlocal left, errors
        conn = _Conn(*await asyncio.open_connection(host, int(port)))
        try:
            while left > 0:
                left -= 1
                raw = raws[left % len(raws)]
                t0 = time.perf_counter()
                try:
                    status = await conn.request(raw)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 599  # the server dropped the connection: an error, reconnect
                    conn.writer.close()
                    conn = _Conn(*await asyncio.open_connection(host, int(port)))
                latencies.append(time.perf_counter() - t0)
                errors += status >= 400
        finally:
            conn.writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def _drive(coro: Any) -> dict[str, float]:
    """Run the load on uvloop when it is installed (a cheaper event loop for the client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("the API server exited")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API server did not start")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from store.db import session_factory, session_scope
    from store.settings import get_settings
    from store.tokens import create_token

    settings = get_settings()
    url = args.database_url or settings.resolved_database_url()
    if not url.startswith("postgresql"):
        raise SystemExit("nao bench api needs Postgres: set NAO_DATABASE_URL or --database-url")
    t0 = time.perf_counter()
    job_ids = _fill(url, args.rows)
    fill_s = time.perf_counter() - t0
    with session_scope(session_factory(url)) as s:
        token = create_token(s, "bench", admin=True)  # no per-token cap on the timed posts
    port = _free_port()
    env = {
        **os.environ,
        "NAO_DATABASE_URL": url,
        "NAO_QUEUE_PREFIX": BENCH_PREFIX,
        "NAO_BROKER_URL": args.broker_url or settings.resolved_broker_url(),
        "NAO_READ_CACHE": "true" if args.read_cache else "false",
    }
    # served as `nao api` serves it: httptools through api.protocol (header caps, read timeout)
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
           "--http", "api.protocol:HttpProtocol", "--workers", str(args.server_workers),
           "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        path = f"/architectures?top=10&search={job_ids[0]}"
        _drive(_load(base, "GET", path, args.clients, min(200, args.requests)))  # warm-up
        reads = _drive(_load(base, "GET", path, args.clients, args.requests))
        mix = None
        if args.mix:
            paths = query_mix(job_ids, args.mix)
            mix = _drive(_load(base, "GET", paths, args.mix_clients, max(args.requests, args.mix)))
        body = {"space": "cnn", "dataset": "digits", "preset": "tiny"}
        headers = {"Authorization": f"Bearer {token}"}
        post = _load(
            base, "POST", "/searches", args.clients, args.posts, json_body=body, headers=headers
        )
        posts = _drive(post)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        _purge(url, env["NAO_BROKER_URL"])
    return {
        "rows": args.rows,
        "fill_seconds": fill_s,
        "clients": args.clients,
        "server_workers": args.server_workers,
        "read_cache": args.read_cache,
        "cpus": os.cpu_count(),
        "get_architectures_top10": reads,
        "query_mix": None
        if mix is None
        else {**mix, "queries": args.mix, "clients": args.mix_clients},
        "post_searches": posts,
        "targets": {"p99_ms": 25, "reads_per_s": 500},
        "meets_targets": reads["p99_ms"] <= 25 and reads["per_s"] >= 500,
    }


def _purge(db_url: str, broker_url: str) -> None:
    """Cancel the jobs the bench queued and drop its queue: no worker should ever run them."""
    from sqlalchemy import text

    from store.db import session_factory, session_scope

    with session_scope(session_factory(db_url)) as s:
        s.execute(
            text("UPDATE job SET status = 'cancelled' WHERE status = 'queued' AND kind = 'search'")
        )
    if broker_url.startswith("redis"):
        import redis

        r = redis.Redis.from_url(broker_url)
        for key in r.scan_iter(f"*{BENCH_PREFIX}*"):
            r.delete(key)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="architectures in the database (filled once)"
    )
    p.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections")
    p.add_argument("--requests", type=int, default=5000, help="GET requests timed")
    p.add_argument("--posts", type=int, default=1000, help="POST /searches timed")
    p.add_argument("--server-workers", type=int, default=2, help="uvicorn processes")
    p.add_argument("--database-url", default=None, help="Postgres (default: NAO_DATABASE_URL)")
    p.add_argument("--broker-url", default=None, help="default: NAO_BROKER_URL")
    p.add_argument(
        "--no-read-cache",
        dest="read_cache",
        action="store_false",
        help="serve every read from the database (NAO_READ_CACHE=false): the uncached path",
    )
    p.add_argument(
        "--mix",
        type=int,
        default=0,
        help="also time this many distinct query strings in turn (filters, order_by, paging)",
    )
    p.add_argument("--mix-clients", type=int, default=10, help="connections for the mix")
    p.add_argument("--json", default=None, help="also write the figures to this file")


def command(args: argparse.Namespace) -> int:
    text = json.dumps(run(args), indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0
