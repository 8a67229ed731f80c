"""``nao bench dashboard``: the server time of every dashboard page, on a small database and
again with a million architectures in it.

The database gets a finished NAO-WS search as the dashboard shows it at paper scale (a
600-architecture pool over 5 evaluation points: 1,800 architectures with lineage, 3,000
predicted-vs-measured rows, 10,000 metric points), a training of its best architecture (10,000
metric points and a checkpoint row), and then ``--rows`` more architectures in another search
(COPY, as ``nao bench api`` fills it). Each page is the set of JSON requests its script makes;
a page's time is the sum of its requests' times, in process (FastAPI's TestClient: server
time plus about a millisecond of client), median of ``--repeats``. The ratio compares the
large database against the small one measured in the same process.

Target: every page <= 300 ms at 1,000,000 architectures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

TARGET_MS = 300.0
POOL, ROUNDS, NEW_PER_ROUND, POINTS = 600, 5, 300, 10_000


def _seed_search(url: str, seed: int = 0) -> tuple[int, int, int, int]:
    """A paper-scale finished search and a training of its best: the ids of the search, the
    architecture, the training and its checkpoint."""
    import numpy as np
    from sqlalchemy import insert

    from nao_core.search_space import create_search_space
    from store.db import session_factory, session_scope
    from store.models import Architecture, Checkpoint, Job, Metric, PoolRound, utcnow

    rng = random.Random(seed)
    with session_scope(session_factory(url)) as s:
        search = Job(
            kind="search",
            status="succeeded",
            space="cnn",
            dataset="cifar10",
            preset="bench-ui",
            config={"optim": {"epochs": 150}},
            request={},
            progress=1.0,
            rounds=ROUNDS,
            result={"rounds": ROUNDS, "epochs": 150, "top": []},
            started_at=utcnow(),
            finished_at=utcnow(),
        )
        s.add(search)
        s.flush()
        archs, pool = [], list(range(POOL))
        for pool_id in range(POOL):
            archs.append({"pool_id": pool_id, "round": 0, "parent_id": None, "step_size": None})
        pools = [pool]  # the members at each evaluation point
        next_id = POOL
        for r in range(1, ROUNDS):
            for _ in range(NEW_PER_ROUND):
                parent = rng.choice(pool[:100])
                archs.append(
                    {
                        "pool_id": next_id,
                        "round": r,
                        "parent_id": parent,
                        "step_size": float(rng.randint(1, 10)),
                    }
                )
                next_id += 1
            pool = pool[NEW_PER_ROUND:] + list(range(next_id - NEW_PER_ROUND, next_id))
            pools.append(pool)
        score = {a["pool_id"]: rng.random() for a in archs}
        space, draws = create_search_space("cnn"), np.random.default_rng(seed)
        rows = [
            {
                **a,
                "job_id": search.id,
                "space": "cnn",
                "dataset": "cifar10",
                "arch": space.to_str(space.sample(draws)),
                "canonical_hash": f"ui{search.id}-{a['pool_id']}",
                "score_supernet": score[a["pool_id"]],
                "created_at": utcnow(),
            }
            for a in archs
        ]
        s.execute(insert(Architecture), rows)
        rounds = [
            {
                "job_id": search.id,
                "round": r,
                "pool_id": pool_id,
                "predicted": None if r == 1 else score[pool_id] + rng.gauss(0, 0.1),
                "measured": score[pool_id],
            }
            for r, members in enumerate(pools, start=1)
            for pool_id in members
        ]
        s.execute(insert(PoolRound), rounds)
        best = max(score, key=score.__getitem__)
        arch = s.query(Architecture).filter_by(job_id=search.id, pool_id=best).one()
        arch.score_trained = 0.97
        training = Job(
            kind="train",
            status="succeeded",
            space="cnn",
            dataset="cifar10",
            preset="bench-ui",
            config={},
            request={},
            progress=1.0,
            architecture_id=arch.id,
            started_at=utcnow(),
            finished_at=utcnow(),
            result={"accuracy": 0.97, "params": 3_000_000},
        )
        s.add(training)
        s.flush()
        ckpt = Checkpoint(
            job_id=training.id,
            architecture_id=arch.id,
            kind="model",
            path="jobs/bench/model.pt",
            size=1,
            sha256="0" * 64,
        )
        s.add(ckpt)
        s.flush()
        training.checkpoint_id = ckpt.id
        names = ("train_loss", "train_acc", "eval_loss", "eval_acc")
        for job in (search, training):
            steps = POINTS // len(names)
            s.execute(
                insert(Metric),
                [
                    {
                        "job_id": job.id,
                        "name": n,
                        "step": i,
                        "value": rng.random(),
                        "created_at": utcnow(),
                    }
                    for n in names
                    for i in range(1, steps + 1)
                ],
            )
        s.execute(
            insert(Metric),
            [
                {
                    "job_id": search.id,
                    "name": "pool_best",
                    "step": r,
                    "value": 0.5 + r / 10,
                    "created_at": utcnow(),
                }
                for r in range(1, ROUNDS + 1)
            ],
        )
        return search.id, arch.id, training.id, ckpt.id


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _analyze(url: str) -> int:
    """Fresh planner statistics; returns the architectures in the database."""
    with psycopg_connect(url) as c:
        c.execute("ANALYZE")
        return int(c.execute("SELECT count(*) FROM architecture").fetchone()[0])


def _pages(
    search: int, arch: int, training: int, ckpt: int, top: list[int]
) -> dict[str, list[str]]:
    """The JSON requests each page's script makes (api/dashboard/app.js)."""
    return {
        "searches": ["/catalog", "/searches?limit=50", "/jobs?limit=100"],
        "search": [
            f"/searches/{search}",
            f"/jobs/{search}/series?points=1000",
            f"/searches/{search}/rounds",
            f"/searches/{search}/lineage?top=10",
            f"/architectures?search={search}&top=10&order_by=trained",
            *[f"/architectures/{a}/jobs" for a in top],
            *[f"/architectures/{a}/drawing.svg?inline=true" for a in top],
        ],
        "architecture": [
            f"/architectures/{arch}",
            f"/searches/{search}/lineage?top=1",
            f"/architectures/{arch}/drawing.svg?inline=true",
            f"/architectures/{arch}/jobs",
        ],
        "job": [
            f"/jobs/{training}",
            f"/jobs/{training}/series?points=1000",
            f"/checkpoints/{ckpt}",
        ],
        "compare": ["/searches?limit=200", f"/jobs/{search}/series?points=1000"],
    }


def _time_pages(client: Any, pages: dict[str, list[str]], repeats: int) -> dict[str, float]:
    out = {}
    for page, paths in pages.items():
        for path in paths:  # warm-up: first-request costs are not a page's
            client.get(path)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for path in paths:
                r = client.get(path)
                assert r.status_code in (200, 404), (path, r.status_code, r.text[:200])
            samples.append((time.perf_counter() - t0) * 1000)
        out[page] = statistics.median(samples)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from cli.bench_api import _fill
    from store.migrate import upgrade
    from store.settings import get_settings

    url = args.database_url or get_settings().resolved_database_url()
    if not url.startswith("postgresql"):
        raise SystemExit("nao bench dashboard needs Postgres: NAO_DATABASE_URL or --database-url")
    os.environ["NAO_DATABASE_URL"] = url  # the app under test reads the same database
    os.environ["NAO_READ_CACHE"] = "false"  # time the database path, not cached answers
    get_settings.cache_clear()
    upgrade(url)
    search, arch, training, ckpt = _seed_search(url)
    small_rows = _analyze(url)  # fresh statistics, as _fill leaves them for the large run
    with TestClient(create_app()) as client:
        top = [
            a["id"]
            for a in client.get(f"/architectures?search={search}&top=10&order_by=supernet").json()[
                "data"
            ]
        ]
        pages = _pages(search, arch, training, ckpt, top)
        small = _time_pages(client, pages, args.repeats)
        t0 = time.perf_counter()
        _fill(url, args.rows)
        fill_s = time.perf_counter() - t0
        large = _time_pages(client, pages, args.repeats)
    with psycopg_connect(url) as c:
        total = c.execute("SELECT count(*) FROM architecture").fetchone()[0]
    rows = {
        page: {
            "small_ms": small[page],
            "large_ms": large[page],
            "ratio": large[page] / small[page],
            "requests": len(pages[page]),
        }
        for page in pages
    }
    return {
        "architectures_small": small_rows,
        "architectures_large": total,
        "fill_seconds": fill_s,
        "pool": POOL,
        "rounds": ROUNDS,
        "metric_points_per_job": POINTS,
        "pages": rows,
        "target_ms": TARGET_MS,
        "meets_target": all(r["large_ms"] <= TARGET_MS for r in rows.values()),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="architectures added for the large run"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed loads of each page (median)")
    p.add_argument("--database-url", default=None, help="Postgres (default: NAO_DATABASE_URL)")
    p.add_argument("--json", default=None, help="also write the figures to this file")


def command(args: argparse.Namespace) -> int:
    out = run(args)
    print(
        f"architectures: small {out['architectures_small']:,}, large {out['architectures_large']:,}"
    )
    print(f"{'page':<14}{'requests':>9}{'small ms':>10}{'large ms':>10}{'ratio':>8}  target 300 ms")
    for page, r in out["pages"].items():
        mark = "ok" if r["large_ms"] <= TARGET_MS else "OVER"
        print(
            f"{page:<14}{r['requests']:>9}{r['small_ms']:>10.1f}{r['large_ms']:>10.1f}"
            f"{r['ratio']:>8.2f}  {mark}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0
