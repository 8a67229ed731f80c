"""The ``nao`` entry point: service commands here, the rest delegated to nao_core.cli."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from service_fixtures import service_env, wait_for
from sqlalchemy import select

from cli.main import _Supervised, main, worker_command
from store.db import session_factory
from store.models import ApiToken
from store.tokens import hash_token, verify_token


def test_migrate_then_token_create_prints_it_once_and_stores_a_hash(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'nao.sqlite'}"
    with service_env(database_url=url, home=str(tmp_path)):
        assert main(["migrate"]) == 0
        assert main(["token", "create", "--name", "ci"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("nao_")
    assert len(token) > 40
    with session_factory(url)() as s:
        rows = s.scalars(select(ApiToken)).all()
        assert [(r.name, r.token_hash) for r in rows] == [("ci", hash_token(token))]
        assert token not in {r.token_hash for r in rows}
        assert verify_token(s, token) is not None
        assert verify_token(s, token + "x") is None


def test_other_commands_go_to_nao_core(capsys) -> None:
    assert main(["spaces"]) == 0
    assert "cnn" in capsys.readouterr().out


def test_worker_command_uses_the_queue_prefix(tmp_path: Path) -> None:
    with service_env(queue_prefix="p.", home=str(tmp_path)):
        cmd = worker_command("gpu,default")
    assert cmd[cmd.index("-Q") + 1] == "p.gpu,p.default"
    assert cmd[cmd.index("--concurrency") + 1] == "1"


def test_nao_up_restarts_its_worker_when_it_dies() -> None:
    worker = _Supervised([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first = worker.proc
        os.kill(first.pid, signal.SIGKILL)  # what the embedded recovery test does mid-search
        wait_for(lambda: worker.proc is not first, 10, "the worker to be started again")
        assert worker.proc.poll() is None
    finally:
        worker.stop()
    assert worker.proc.poll() is not None
