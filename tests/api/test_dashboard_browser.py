"""The dashboard in a real browser (Playwright driving Debian's Chromium), on the embedded
service (`nao up`: SQLite and the local broker) and on Postgres + Redis with a Celery worker.

A user's path: save the token, start a digits/tiny search from the page, watch it finish,
check that the best-so-far plot holds one point per round the search reported, open the top
architecture and count its drawing's nodes, train it from the page and download the
checkpoint. Every request the pages make goes to the service itself.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from service_fixtures import (
    ROOT,
    free_port,
    isolated_service,
    start_worker,
    stop,
    wait_for,
    wait_ready,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium"),
]

SEARCH_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def service(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"base": URL, "token": ...}`` of a running service of each kind."""
    home = tmp_path_factory.mktemp(request.param)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "service.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
    if request.param == "embedded":
        cmd = [sys.executable, "-m", "cli.main", "up", "--home", str(home), "--port", str(port)]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env={**clean, "OMP_NUM_THREADS": "1"},
                                    stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_ready(base, proc, log)
            yield {"base": base, "token": (home / "token").read_text().strip()}
        finally:
            stop(proc)
        return
    from store.db import session_factory, session_scope
    from store.tokens import create_token

    with isolated_service(home, heartbeat_s="1", stale_after_s="30") as env:
        with session_scope(session_factory(env["NAO_DATABASE_URL"])) as s:
            token = create_token(s, "browser")
        worker = start_worker(env, home / "worker.log")
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
        with log.open("wb") as out:
            api = subprocess.Popen(cmd, cwd=ROOT, env={**clean, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_ready(base, api, log)
            yield {"base": base, "token": token}
        finally:
            stop(api)
            stop(worker)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, service: dict[str, str]) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(90_000)  # a loaded 2-core CI machine: patience, not flakes
    pg = context.new_page()
    pg.requested = []  # every URL the page asked for
    pg.errors = []
    pg.on("request", lambda r: pg.requested.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def test_a_search_from_start_to_checkpoint(page: Any, service: dict[str, str], tmp_path: Path):
    base = service["base"]
    page.goto(base + "/")
    page.fill("#token-input", service["token"])
    page.click("#token-save")
    page.wait_for_selector("#token-forget", state="visible")

    page.select_option("#new-search select[name=space]", "cnn")
    page.select_option("#new-search select[name=dataset]", "digits")
    page.fill("#new-search input[name=preset]", "tiny")
    page.click("#start-search")
    page.wait_for_url("**/ui/searches/*")
    search_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#search-head .status.succeeded", timeout=SEARCH_TIMEOUT_MS)

    job = httpx.get(f"{base}/searches/{search_id}").json()
    rounds = job["result"]["rounds"]
    assert rounds >= 1
    page.wait_for_function(
        "n => document.getElementById('best')?.data?.[0]?.x.length === n", arg=rounds
    )

    first = page.locator("#top tbody tr").first
    first.wait_for()
    arch_id = int(first.get_attribute("data-architecture"))
    first.locator("a").first.click()
    page.wait_for_url(f"**/ui/architectures/{arch_id}")
    page.wait_for_selector("#drawing svg")
    assert page.locator("#drawing svg g.node").count() == 16  # 2 cells x (2 in + 5 + out)

    page.click("button.train")
    page.wait_for_url("**/ui/jobs/*")
    page.wait_for_selector("#download", timeout=SEARCH_TIMEOUT_MS)
    training = httpx.get(f"{base}{urlsplit(page.url).path.replace('/ui', '')}").json()
    assert training["status"] == "succeeded"
    assert training["architecture_id"] == arch_id
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "model.pt"
    info.value.save_as(saved)
    meta = httpx.get(f"{base}/checkpoints/{training['checkpoint_id']}").json()
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == meta["sha256"]

    assert not page.errors, page.errors
    foreign = [u for u in page.requested if not u.startswith((base, "blob:", "data:"))]
    assert not foreign, foreign


def test_compare_overlays_the_chosen_searches(page: Any, service: dict[str, str]) -> None:
    base, auth = service["base"], {"Authorization": f"Bearer {service['token']}"}
    ids = []
    for method in ("random", "evolution"):
        body = {"space": "nb201", "method": method, "budget": 30, "seed": 1}
        ids.append(httpx.post(f"{base}/searches", json=body, headers=auth).json()["id"])
    for job_id in ids:
        wait_for(
            lambda j=job_id: httpx.get(f"{base}/searches/{j}").json()["status"] == "succeeded",
            120, f"search {job_id}",
        )  # fmt: skip
    page.goto(f"{base}/ui/compare?ids={ids[0]},{ids[1]}")
    page.wait_for_function("() => document.getElementById('compare')?.data?.length === 2")
    names = page.evaluate("() => document.getElementById('compare').data.map(t => t.name)")
    assert sorted(names) == sorted([f"#{ids[0]} random", f"#{ids[1]} evolution"])
    assert not page.errors, page.errors


def test_served_files_name_no_external_url(service: dict[str, str]) -> None:
    """Our page, script and style sheet name no other host. (Plotly's bundle carries URLs of
    optional map and math assets that these charts never load; the browser test above checks
    that no request leaves the service.)"""
    base = service["base"]
    for path in ("/", "/ui/searches/1", "/ui/assets/app.js", "/ui/assets/app.css"):
        text = httpx.get(base + path).text
        assert "http://" not in text, path
        assert "https://" not in text, path
    assert httpx.get(base + "/ui/assets/plotly.min.js").status_code == 200
    assert httpx.get(base + "/ui/assets/main.py").status_code == 404  # a fixed list of files
