"""What a request may send before the app sees it (api.protocol), against a real `nao api`
over raw sockets: a huge header is a quick 431 while /healthz keeps answering, too many
headers a 431, a large but allowed cookie passes, and a trickled request is a 408."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_fixtures import ROOT, free_port

READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "NAO_HOME": str(home),
        "NAO_REQUEST_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "NAO_API_WORKERS": "1",
    }
    cmd = [sys.executable, "-m", "cli.main", "api", "--port", str(port), "-q"]
    log = (home / "api.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _request(("127.0.0.1", port), _get("/healthz")).startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            assert proc.poll() is None, (home / "api.log").read_text()
            assert time.monotonic() < deadline, "nao api did not start"
            time.sleep(0.1)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _request(addr: tuple[str, int], raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw``, read until the server closes, return what it answered."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(raw)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_huge_header_is_431_quickly_and_healthz_answers_meanwhile(server) -> None:
    answer: dict[str, object] = {}

    def send_huge() -> None:
        t0 = time.monotonic()
        with socket.create_connection(server, timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                for _ in range(64):  # 64 MB of one header value, 1 MB at a time
                    s.sendall(b"a" * (1 << 20))
            except OSError as exc:  # refused and closed before all of it was sent
                answer["send_error"] = exc
            try:
                answer["response"] = _read_all(s)
            except OSError as exc:
                answer["read_error"] = exc
        answer["seconds"] = time.monotonic() - t0

    sender = threading.Thread(target=send_huge)
    sender.start()
    latencies = []
    while sender.is_alive() or not latencies:
        t0 = time.monotonic()
        assert _request(server, _get("/healthz")).startswith(b"HTTP/1.1 200")
        latencies.append(time.monotonic() - t0)
    sender.join()
    assert max(latencies) < 0.5, latencies
    assert answer["seconds"] < 5, answer
    response = answer.get("response", b"")
    assert response.startswith(b"HTTP/1.1 431 "), answer  # the answer arrives despite the flood
    assert b"connection: close" in response.lower()


def test_101_headers_are_431(server) -> None:
    headers = [f"X-H{i}: v" for i in range(100)]  # plus Host and Connection
    assert _request(server, _get("/healthz", *headers)).startswith(b"HTTP/1.1 431 ")
    assert _request(server, _get("/healthz", *headers[:97])).startswith(b"HTTP/1.1 200 ")


def test_a_10kb_cookie_and_a_body_sent_with_its_head_pass(server) -> None:
    cookie = "Cookie: session=" + "c" * 10_000
    assert _request(server, _get("/healthz", cookie)).startswith(b"HTTP/1.1 200 ")
    # head (12 KB) and body (60 KB) in one send: more than the cap, only the head counts
    body = b"x" * 60_000
    head = (
        "POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\nX-Pad: {'p' * 12_000}\r\n\r\n"
    ).encode()
    assert _request(server, head + body).startswith(b"HTTP/1.1 405 ")


def test_the_head_cap_counts_every_byte(server) -> None:
    header = "X-Pad: " + "p" * (17 * 1024)
    assert _request(server, _get("/healthz", header)).startswith(b"HTTP/1.1 431 ")


SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "  # a head that never ends
SLOW_BODY = b'POST /searches HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"space": '


@pytest.mark.parametrize(
    ("partial", "trickle"),
    [(SLOW_HEAD, b"a"), (SLOW_BODY, b" "), (b"", b"")],
    ids=["head", "body", "nothing"],
)
def test_an_incomplete_request_is_408_after_the_read_timeout(server, partial, trickle) -> None:
    with socket.create_connection(server, timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(partial)
        for _ in range(3):  # trickling more does not extend the deadline
            time.sleep(READ_TIMEOUT_S / 4)
            s.sendall(trickle)
        response = _read_all(s)
        elapsed = time.monotonic() - t0
    assert READ_TIMEOUT_S * 0.9 < elapsed < READ_TIMEOUT_S + 2, elapsed
    assert response.startswith(b"HTTP/1.1 408 "), response


def test_nao_api_and_nao_up_serve_with_the_protocol(monkeypatch) -> None:
    import uvicorn

    from api.protocol import HttpProtocol
    from cli import main as cli_main

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert cli_main.main(["api", "--port", str(free_port())]) == 0
    assert calls[-1]["app"] == "api.main:app"
    assert calls[-1]["http"] is HttpProtocol
    # `nao up` serves through the same function
    source = Path(cli_main.__file__).read_text()
    assert source.count("serve_api(args.host, args.port, args.workers") == 2
