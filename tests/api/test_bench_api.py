"""``nao bench api`` end to end at a toy size (the real run uses 1,000,000 rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_fixtures import REDIS, postgres_database, redis_available

from cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.db]


def test_bench_api_writes_its_figures(tmp_path: Path) -> None:
    if not redis_available():
        pytest.skip("Redis not reachable")
    out = tmp_path / "bench.json"
    with postgres_database() as url:
        argv = ["bench", "api", "--database-url", url, "--broker-url", REDIS, "--rows", "500"]
        argv += ["--requests", "100", "--posts", "20", "--clients", "5", "--json", str(out)]
        assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["rows"] == 500
    reads = data["get_architectures_top10"]
    assert reads["requests"] == 100
    assert reads["errors"] == 0
    assert data["post_searches"]["errors"] == 0
    assert reads["p50_ms"] <= reads["p99_ms"]
