"""create_app(): the FastAPI instance, its routers, error handlers and body-size limit."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from api.errors import NaoError, handle_nao_error
from api.routes import architectures, checkpoints, health, jobs, search_spaces
from api.settings import get_settings
from nao_core.errors import NaoCoreError

logger = logging.getLogger(__name__)


class BodyLimit(BaseHTTPMiddleware):
    """Refuse bodies over ``max_body_bytes`` with a 422 naming the body, before parsing."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        limit = get_settings().max_body_bytes
        length = request.headers.get("content-length")
        too_big = length is not None and length.isdigit() and int(length) > limit
        if not too_big and request.method in ("POST", "PUT", "PATCH") and length is None:
            too_big = len(await request.body()) > limit
        if too_big:
            detail = [{"loc": ["body"], "msg": f"body exceeds {limit} bytes", "type": "too_long"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await call_next(request)


async def _core_error(_request: Request, exc: Exception) -> JSONResponse:
    detail = [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def create_app() -> FastAPI:
    app = FastAPI(
        title="NAO Service", version="0.1.0", description="Neural Architecture Optimization"
    )
    app.add_middleware(BodyLimit)
    app.add_exception_handler(NaoError, handle_nao_error)
    app.add_exception_handler(NaoCoreError, _core_error)
    for module in (health, jobs, architectures, checkpoints, search_spaces):
        app.include_router(module.router)
    return app


app = create_app()
