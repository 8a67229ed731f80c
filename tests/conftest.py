from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import PrivatePostgres, isolated_service, under_ci

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# A skip saying one of these names a missing service, tool or data set: under CI it fails.
MISSING = ("not reachable", "not found", "not installed", str(SHARED_DATA))


def pytest_sessionstart(session: pytest.Session) -> None:
    """The random order's seed, first, even under ``-q`` (which hides pytest-randomly's header
    line): ``--randomly-seed=N`` replays a failing order."""
    config = session.config
    seed = getattr(config.option, "randomly_seed", None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    shuffled = config.pluginmanager.has_plugin("randomly") and isinstance(seed, int)
    if reporter is not None and shuffled:
        reporter.write_line(f"random order: --randomly-seed={seed}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under ``CI=true`` a test skipped for a missing service or data set fails: a run that
    skipped the service tests would otherwise pass having tested nothing (a wrong URL, a
    Postgres that did not start). On a developer's laptop such tests still skip."""
    outcome = yield
    report = outcome.get_result()
    if not (under_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if any(m in reason for m in MISSING):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a missing service or data set fails the run: {reason}"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process; each test reads them from its own environment, so
    one test's values (a 120 s stale limit, another database) never reach the next."""
    from store.settings import get_settings
    from worker.settings import get_worker_settings

    get_settings.cache_clear()
    get_worker_settings.cache_clear()
    yield
    get_settings.cache_clear()
    get_worker_settings.cache_clear()


@pytest.fixture(scope="session")
def nb201_table() -> Path:
    """The NAS-Bench-201 table shipped in the package: no test of it needs ../shared."""
    from nao_core.catalog import shipped_table

    return shipped_table("nb201")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # the torch-free parts are tested without it too
        yield
        return
    torch.set_num_threads(2)
    yield


# --- the service (issue #4): Postgres + Redis per test module -----------------------------
@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A started ``PrivatePostgres`` (its own port, stopped and started by the test), removed
    afterwards."""
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Postgres (a fresh, migrated database) + Redis (a unique queue prefix)."""
    with isolated_service(
        tmp_path_factory.mktemp("home"),
        visibility_timeout_s="4",
        heartbeat_s="0.5",  # a killed worker's job is stale after 8 s (worker/recovery.py)
        stale_after_s="8",
        data_dir=str(SHARED_DATA),  # ptb/ and wikitext-2/ for the rnn jobs
    ) as env:
        yield env


@pytest.fixture(scope="module")
def client(pg_service: dict[str, str]) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def token(pg_service: dict[str, str]) -> str:
    """An admin token: it acts on jobs the factories made without an owner, with no cap
    (tests/api/test_token_ownership.py tests the users' limits)."""
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    with session_scope(session_factory(pg_service["NAO_DATABASE_URL"])) as s:
        return create_token(s, "tests", admin=True)


@pytest.fixture(scope="module")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def worker(pg_service: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Celery worker process on the module's service, for the module's tests."""
    from service_fixtures import start_worker, stop

    log = tmp_path_factory.mktemp("logs") / "worker.log"
    proc = start_worker(pg_service, log)
    proc.log = log  # type: ignore[attr-defined]  # tests read what the worker logged
    yield proc
    stop(proc)
