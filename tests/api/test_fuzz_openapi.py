"""The service fuzzed from its own OpenAPI document (schemathesis: coverage, fuzzing and
stateful phases, authenticated), on the embedded backend and on Postgres + Redis: no server
error, and every answer matches the documented status codes, schemas and media types.

No worker runs: accepted jobs stay queued, which is all the API's contract covers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from service_fixtures import free_port, isolated_service, start_api, stop

pytestmark = pytest.mark.slow
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
CHECKS = ",".join(
    ("not_a_server_error", "response_schema_conformance", "status_code_conformance",
     "content_type_conformance")
)  # fmt: skip


def _fuzz(env: dict[str, str], token: str, tmp_path: Path) -> None:
    port = free_port()
    api = start_api(env, port, tmp_path / "api.log")
    try:
        run = subprocess.run(
            [SCHEMATHESIS, "run", f"http://127.0.0.1:{port}/openapi.json",
             "-H", f"Authorization: Bearer {token}",
             "--checks", CHECKS, "--max-examples", "25", "--seed", "1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        stop(api)
    assert run.returncode == 0, run.stdout[-6000:]
    assert " passed" in run.stdout


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
    _fuzz({"NAO_HOME": str(home)}, token, tmp_path)


@pytest.mark.skipif(SCHEMATHESIS is None, reason="pip install schemathesis")
def test_fuzz_the_service_on_postgres(tmp_path: Path) -> None:
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    with isolated_service(tmp_path / "home") as env:
        with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
            token = create_token(s, "fuzz", admin=True)
        _fuzz(env, token, tmp_path)
