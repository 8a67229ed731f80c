"""The API's own documentation: /docs and /redoc work offline (assets installed with the
package, no CDN), Authorize knows the bearer scheme, and every route documents its errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_server(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    urls += re.findall(r"""url: ?['"]([^'"]+)['"]""", html)
    assert urls, html
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in html.lower()


def test_the_bearer_scheme_is_declared(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_every_mutation_and_download_asks_for_the_token(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        # an export is a download that may start the job building it
        needs = method == "POST" or path.endswith(("/download", "/export", "/card", "/card.md"))
        assert bool(op.get("security")) == needs, (method, path)
        if needs:
            assert "401" in op["responses"], (method, path)


def test_every_route_documents_the_errors_it_can_answer(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        codes = set(op["responses"])
        if "{" in path:
            assert "404" in codes, (method, path)
        if path.endswith("/cancel"):
            assert "409" in codes, (method, path)
        if method == "POST" and not path.endswith("/cancel"):
            assert {"422", "503"} <= codes, (method, path)
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]


def test_the_download_is_declared_as_bytes(spec: dict[str, Any]) -> None:
    ok = spec["paths"]["/checkpoints/{checkpoint_id}/download"]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["application/octet-stream"]
