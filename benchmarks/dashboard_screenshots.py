"""Screenshots of every dashboard page for the docs: ``make screenshots`` (or
``python benchmarks/dashboard_screenshots.py --out docs/img``).

Starts ``nao up`` in a fresh home on a free port, runs what the pages show (a digits/tiny
NAO-WS search, a training of its best architecture, NAS-Bench-201 searches by NAO and by
regularized evolution), then saves one PNG per page with Debian's Chromium through Playwright.
Takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 860}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(client: httpx.Client, url: str, timeout: float = 600) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(url).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise SystemExit(f"{url}: {job['status']}: {job['error_message']}")
            return job
        time.sleep(1)
    raise SystemExit(f"{url}: not finished after {timeout} s")


def _jobs(client: httpx.Client) -> dict[str, int]:
    """Run what the pages show; the ids of the jobs to open."""
    search = client.post("/searches", json={"space": "cnn", "dataset": "digits", "preset": "tiny"})
    evo = client.post("/searches", json={"space": "nb201", "method": "evolution", "budget": 100})
    nao = client.post("/searches", json={"space": "nb201", "preset": "nb201", "budget": 100})
    ids = {"search": search.json()["id"], "evolution": evo.json()["id"], "nao": nao.json()["id"]}
    _wait(client, f"/searches/{ids['search']}")
    top = client.get(f"/architectures?search={ids['search']}&top=1&order_by=trained").json()
    ids["architecture"] = top["data"][0]["id"]
    train = client.post("/trainings", json={"architecture_id": ids["architecture"]}).json()
    ids["training"] = train["id"]
    for key in ("training", "evolution", "nao"):
        _wait(client, f"/jobs/{ids[key]}")
    return ids


def _shoot(base: str, token: str, ids: dict[str, int], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    pages = {
        "searches": "/",
        "search": f"/ui/searches/{ids['search']}",
        "search-nb201": f"/ui/searches/{ids['nao']}",
        "architecture": f"/ui/architectures/{ids['architecture']}",
        "training": f"/ui/jobs/{ids['training']}",
        "compare": f"/ui/compare?ids={ids['nao']},{ids['evolution']}",
    }
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(base + "/")
        page.evaluate("t => localStorage.setItem('nao-token', t)", token)
        for name, path in pages.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(1500)  # Plotly's transitions
            saved.append(out / f"dashboard-{name}.png")
            page.screenshot(path=str(saved[-1]))
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder of the PNGs")
    args = p.parse_args(argv)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NAO_")}
        cmd = [sys.executable, "-m", "cli.main", "-q", "up", "--home", home, "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"})
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                for _ in range(120):
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.5)
                token = (Path(home) / "token").read_text().strip()
                client.headers["Authorization"] = f"Bearer {token}"
                ids = _jobs(client)
            for path in _shoot(base, token, ids, Path(args.out)):
                print(path)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
