"""The dashboard: one HTML page, its script and style sheet, and Plotly's bundle, all served by
this process from files installed with the package (no CDN, no build step). The page reads
the same JSON endpoints as any client; ``/`` and every ``/ui/...`` path answer the page, which
routes in the browser."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "dashboard"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
CACHE = {"Cache-Control": "no-cache"}  # revalidated by ETag: an upgrade shows at once


@cache
def _page() -> str:
    return (STATIC / "index.html").read_text()


@cache
def plotly_bundle() -> Path:
    """Plotly's minified bundle from the installed ``plotly`` package (found, not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed: pip install plotly")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@router.get("/ui/assets/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_bundle(), media_type="text/javascript")


@router.get("/ui/assets/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:  # a fixed list: no path a client sends reaches the filesystem
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=CACHE)


# After the assets: the catch-all must not answer for them.
@router.get("/")
@router.get("/ui")
@router.get("/ui/{path:path}")
def page(path: str = "") -> HTMLResponse:
    return HTMLResponse(_page(), headers=CACHE)
