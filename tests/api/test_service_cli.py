"""The ``nao`` entry point: service commands here, the rest delegated to nao_core.cli."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import options_without_help
from service_fixtures import service_env, wait_for
from sqlalchemy import select

import cli.main
from cli.main import _stop_all, _Supervised, build_parser, main, worker_command
from nao_core.console import verbosity, walk_parsers
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


def test_token_create_list_and_revoke_through_the_cli(tmp_path: Path) -> None:
    """The real ``nao`` command: roles, the table (never a secret), revoking by name and id;
    a revoked token no longer verifies."""
    env = {**os.environ, "NAO_HOME": str(tmp_path), "NAO_DATABASE_URL": ""}

    def nao(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "cli.main", *argv]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)

    assert nao("migrate").returncode == 0
    alice = nao("token", "create", "--name", "alice").stdout.strip()
    ops = nao("token", "create", "--name", "ops", "--admin").stdout.strip()
    listed = nao("token", "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "role", "created", "last", "used", "revoked"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["1", "alice", "user"],
        ["2", "ops", "admin"],
    ]
    assert alice not in listed.stdout
    assert ops not in listed.stdout
    assert hash_token(alice) not in listed.stdout
    revoked = nao("token", "revoke", "alice")
    assert revoked.returncode == 0
    assert revoked.stdout == "revoked token 1 (alice): it is refused from its next request\n"
    again = nao("token", "revoke", "alice")  # by name: only tokens not yet revoked answer
    assert (again.returncode, again.stderr) == (2, "nao: error: no active token named 'alice'\n")
    missing = nao("token", "revoke", "42")
    assert (missing.returncode, missing.stderr) == (2, "nao: error: no token with id 42\n")
    assert nao("token", "revoke", "2").returncode == 0
    rows = [line.split() for line in nao("token", "list").stdout.splitlines()[1:]]
    assert [(len(r), r[-2] != "-") for r in rows] == [(8, True)] * 2  # never used; revoked
    with session_factory(f"sqlite:///{tmp_path / 'nao.sqlite'}")() as s:
        assert verify_token(s, alice) is None
        assert verify_token(s, ops) is None


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
        _stop_all(worker)
    assert worker.proc.poll() is not None


def test_nao_up_stops_both_workers_together() -> None:
    sleepers = [_Supervised([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in "ab"]
    _stop_all(*sleepers)
    assert [w.proc.poll() for w in sleepers] == [-signal.SIGTERM, -signal.SIGTERM]


COMMANDS = [
    "spaces", "arch", "draw", "presets", "data list", "data install", "bench nb201",
    "bench controller", "bench supernet", "bench rnn", "bench quality", "bench nows",
    "bench improve", "bench scoring", "bench api", "bench dashboard", "search", "train", "eval",
    "export", "improve", "predict", "up", "api", "worker", "migrate", "token create",
    "token list", "token revoke",
]  # fmt: skip


def test_nao_help_lists_every_command_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    listed = [line[2:].split("  ")[0] for line in text.split("commands:\n")[1].splitlines()]
    assert listed[: len(COMMANDS)] == COMMANDS
    assert "  bench api         GET /architectures and POST /searches" in text
    assert "  up                embedded service: API + workers on SQLite" in text


def test_every_command_has_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _ in walk_parsers(build_parser()):
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: {' '.join(('nao', *path))} [-h]")


def test_every_option_of_every_command_has_help() -> None:
    assert options_without_help(build_parser()) == []


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["up", "-v"], 1),
        (["-q", "api"], -1),
        (["worker", "--gpus", "0", "-vv"], 2),
        (["token", "create", "--name", "x", "-q"], -1),
        (["-v", "bench", "api", "-v"], 2),
    ],
)
def test_verbosity_goes_after_service_commands_too(argv: list[str], level: int) -> None:
    assert verbosity(build_parser().parse_args(argv)) == level


@pytest.mark.parametrize("command", ["up", "api"])
def test_a_taken_port_is_one_clear_error_before_anything_starts(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("started although the port is taken")

    monkeypatch.setattr(cli.main, "_Supervised", must_not_run)
    monkeypatch.setattr(cli.main, "serve_api", must_not_run)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        home = tmp_path / "home"
        argv = [command, "--port", str(port)] + (["--home", str(home)] if command == "up" else [])
        assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"nao: error: port {port} on 127.0.0.1 is in use; pick another with --port\n"
    assert not home.exists()


def test_nao_up_parser_loads_no_torch() -> None:
    code = "import sys, cli.main; cli.main.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
