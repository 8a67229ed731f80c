"""Checkpoint metadata and downloads (streamed; Content-Length, ETag = sha256, Range), and a
trained model's exports: ONNX / TorchScript files and their model cards, built once by an
``export`` job (``jobs.export``) and then served like any checkpoint."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import Id, ReadAccess, SessionDep, SettingsDep, TokenDep
from api.errors import responses
from api.present import checkpoint_public, job_public
from api.schemas import CheckpointPublic, JobPublic
from jobs import export as exports
from jobs.errors import NotFound, ServiceError
from store import repository
from store.db import session_factory
from store.models import Checkpoint
from store.settings import Settings, get_settings
from store.storage import DirectoryStorage

router = APIRouter(tags=["checkpoints"], dependencies=[ReadAccess])
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/checkpoints/{checkpoint_id}", responses=responses(404))
def get_checkpoint(checkpoint_id: Id, session: SessionDep) -> CheckpointPublic:
    row = repository.get_checkpoint(session, checkpoint_id)
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    return checkpoint_public(row)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole file; ValueError if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise ValueError(header)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(size - int(m.group(2)), 0), size - 1
    if start > end or start >= size:
        raise ValueError(header)
    return start, end


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110: ``*`` or any listed tag (weak or strong) matches the file's tag."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get(
    "/checkpoints/{checkpoint_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The file; `Range` gives 206 with part of it, `If-None-Match` 304",
        },
        **responses(401, 404, 416),
    },
)
def download_checkpoint(
    checkpoint_id: Id, request: Request, session: SessionDep, settings: SettingsDep, _t: TokenDep
) -> Response:
    row = repository.get_checkpoint(session, checkpoint_id)
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    return serve_file(row, request, settings, f"checkpoint-{row.id}.pt")


def serve_file(
    row: Checkpoint,
    request: Request,
    settings: Settings,
    filename: str,
    media_type: str = "application/octet-stream",
    disposition: str = "attachment",
) -> Response:
    """A stored file as a download: ETag (its sha256), ``If-None-Match``, ``Range``."""
    store = DirectoryStorage(settings.resolved_storage_dir())
    size, etag = row.size, f'"{row.sha256}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    try:
        span = _parse_range(request.headers.get("range"), size)
    except ValueError:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is not None and request.headers.get("if-range") not in (None, etag):
        span = None  # the file changed since the partial download: send all of it
    start, end = span or (0, size - 1)
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":  # the headers a GET would send, no body
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        store.open_range(row.path, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


@router.head("/checkpoints/{checkpoint_id}/download", responses=responses(401, 404, 416))
def head_checkpoint(
    checkpoint_id: Id, request: Request, session: SessionDep, settings: SettingsDep, token: TokenDep
) -> Response:
    """The download's headers (size, ETag, ranges) without its body: what ``curl -I`` asks."""
    return download_checkpoint(checkpoint_id, request, session, settings, token)


# --- exports ----------------------------------------------------------------------------
_EXPORT = exports.Export()
ExportFormat = Annotated[
    Literal["onnx", "torchscript"],
    Query(alias="format", description="onnx (CNN) or torchscript (CNN, RNN language model)"),
]
_SUFFIX = {"onnx": "onnx", "torchscript": "pt"}
_FIRST_POLL_S, _MAX_POLL_S, RETRY_AFTER_S = 0.05, 0.5, 5
EXPORT_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobPublic, "description": "Not built within NAO_QUERY_WAIT_S: the job"},
    **responses(401, 404, 416, 429, 503),
    409: {
        "model": responses(409)[409]["model"],
        "description": "Not a trained model, or a language model asked for onnx",
    },
    500: {"model": responses(409)[409]["model"], "description": "The export job failed"},
}


class ExportFailed(ServiceError):
    """The export's job failed in the worker: the server could not build the file."""


def _built(source_id: int, fmt: str, job_id: int) -> int | str | None:
    """The export's row id once built; the job's failure text once it ended without one."""
    with session_factory(get_settings().resolved_database_url())() as s:
        row = exports.find_export(s, source_id, fmt)
        if row is not None:
            return row.id
        job = repository.get_job(s, job_id)
        if job is None or repository.is_finished(job.status):
            why = f"{job.error_type}: {job.error_message}" if job and job.error_type else ""
            return f"export job {job_id} {job.status if job else 'vanished'} {why}".strip()
        return None


async def _wait_built(source_id: int, fmt: str, job_id: int, wait_s: float) -> int | None:
    """Poll from the event loop (no thread or connection held in between) until the export
    is built (its row id) or ``wait_s`` ran out (None)."""
    deadline, delay = time.monotonic() + wait_s, _FIRST_POLL_S
    while True:
        got = await run_in_threadpool(_built, source_id, fmt, job_id)
        if isinstance(got, str):
            raise ExportFailed(got)
        if got is not None or time.monotonic() >= deadline:
            return got
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, _MAX_POLL_S)


async def _exported(
    checkpoint_id: int, fmt: str, request: Request, session: Any, token_id: int, card: str | None
) -> Response:
    """The export (or with ``card`` "json"/"md" its card) served; 202 with the job while it
    is being built."""

    def submit() -> tuple[int | None, int | None, JobPublic | None]:
        built, job = _EXPORT.request(session, checkpoint_id, fmt, token_id)
        out = (built.id if built else None, job.id if job else None, job and job_public(job))
        session.close()  # no connection held while waiting
        return out

    built_id, job_id, queued = await run_in_threadpool(submit)
    if built_id is None:
        assert job_id is not None
        assert queued is not None
        built_id = await _wait_built(checkpoint_id, fmt, job_id, get_settings().query_wait_s)
        if built_id is None:
            headers = {"Location": queued.url, "Retry-After": str(RETRY_AFTER_S)}
            return JSONResponse(queued.model_dump(mode="json"), status_code=202, headers=headers)
    return await run_in_threadpool(_serve_export, built_id, checkpoint_id, fmt, request, card)


def _serve_export(
    built_id: int, source_id: int, fmt: str, request: Request, card: str | None
) -> Response:
    settings = get_settings()
    with session_factory(settings.resolved_database_url())() as s:
        row = repository.get_checkpoint(s, built_id)
        if row is not None and card is not None:
            row = exports.find_card(s, built_id, markdown=card == "md")
        if row is None:
            raise NotFound(f"the {fmt} export of checkpoint {source_id} is gone")
        s.expunge(row)
    name = f"checkpoint-{source_id}.{_SUFFIX[fmt]}"
    if card == "json":
        return serve_file(row, request, settings, f"{name}.card.json", "application/json", "inline")
    if card == "md":
        media = "text/markdown; charset=utf-8"
        return serve_file(row, request, settings, f"{name}.card.md", media, "inline")
    return serve_file(row, request, settings, name)


@router.get(
    "/checkpoints/{checkpoint_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The file; `Range` gives 206 with part of it, `If-None-Match` 304",
        },
        **EXPORT_ANSWERS,
    },
)
async def export_checkpoint(
    checkpoint_id: Id, fmt: ExportFormat, request: Request, session: SessionDep, token: TokenDep
) -> Response:
    """The trained model as an ONNX or TorchScript file, built on the first request (an
    ``export`` job on the query queue, waited for up to NAO_QUERY_WAIT_S, else 202 with the
    job and ``Retry-After``), then served like a checkpoint. Its model card:
    ``/checkpoints/{id}/card?format=...`` (JSON) and ``/card.md`` (Markdown)."""
    return await _exported(checkpoint_id, fmt, request, session, token.id, None)


@router.get(
    "/checkpoints/{checkpoint_id}/card",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "The model card"},
        **EXPORT_ANSWERS,
    },
)
async def export_card(
    checkpoint_id: Id,
    request: Request,
    session: SessionDep,
    token: TokenDep,
    fmt: ExportFormat = "torchscript",
) -> Response:
    """The model card (JSON) of the checkpoint's export in ``format``, built with it."""
    return await _exported(checkpoint_id, fmt, request, session, token.id, "json")


@router.get(
    "/checkpoints/{checkpoint_id}/card.md",
    response_class=Response,
    responses={
        200: {"content": {"text/markdown": {}}, "description": "The model card"},
        **EXPORT_ANSWERS,
    },
)
async def export_card_markdown(
    checkpoint_id: Id,
    request: Request,
    session: SessionDep,
    token: TokenDep,
    fmt: ExportFormat = "torchscript",
) -> Response:
    """The model card of the checkpoint's export in ``format``, as Markdown for people."""
    return await _exported(checkpoint_id, fmt, request, session, token.id, "md")
