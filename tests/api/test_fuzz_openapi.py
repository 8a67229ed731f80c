"""The service fuzzed from its own OpenAPI document (schemathesis: coverage, fuzzing and
stateful phases, authenticated), on the embedded backend and on Postgres + Redis: no server
error, and every answer matches the documented status codes, schemas and media types.

No worker runs: accepted jobs stay queued, which is all the API's contract covers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_fixtures import ROOT, isolated_service, stop, wait_for

pytestmark = pytest.mark.slow
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
CHECKS = ",".join(
    ("not_a_server_error", "response_schema_conformance", "status_code_conformance",
     "content_type_conformance")
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fuzz(env: dict[str, str], token: str, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _up(base), 60, "the API", 0.5)
        run = subprocess.run(
            [SCHEMATHESIS, "run", f"{base}/openapi.json", "-H", f"Authorization: Bearer {token}",
             "--checks", CHECKS, "--max-examples", "25", "--seed", "1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        stop(api)
    assert run.returncode == 0, run.stdout[-6000:]
    assert " passed" in run.stdout


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.skipif(SCHEMATHESIS is None, reason="pip install schemathesis")
def test_fuzz_the_embedded_service(tmp_path: Path) -> None:
    from store.db import session_factory, session_scope
    from store.migrate import upgrade
    from store.tokens import create_token

    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'nao.sqlite'}"
    upgrade(url)
    with session_scope(session_factory(url)) as s:
        token = create_token(s, "fuzz", admin=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
    _fuzz({**env, "NAO_HOME": str(home)}, token, tmp_path)


@pytest.mark.skipif(SCHEMATHESIS is None, reason="pip install schemathesis")
def test_fuzz_the_service_on_postgres(tmp_path: Path) -> None:
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    with isolated_service(tmp_path / "home") as env:
        with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
            token = create_token(s, "fuzz", admin=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
        _fuzz({**clean, **env}, token, tmp_path)
