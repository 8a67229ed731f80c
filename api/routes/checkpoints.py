"""Checkpoint metadata and downloads (streamed; Content-Length, ETag = sha256, Range)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Id, ReadAccess, SessionDep, SettingsDep, TokenDep
from api.errors import responses
from api.present import checkpoint_public
from api.schemas import CheckpointPublic
from jobs.errors import NotFound
from store import repository
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
    store = DirectoryStorage(settings.resolved_storage_dir())
    size, etag = row.size, f'"{row.sha256}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="checkpoint-{row.id}.pt"',
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
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        store.open_range(row.path, start, end),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


@router.head("/checkpoints/{checkpoint_id}/download", responses=responses(401, 404, 416))
def head_checkpoint(
    checkpoint_id: Id, request: Request, session: SessionDep, settings: SettingsDep, token: TokenDep
) -> Response:
    """The download's headers (size, ETag, ranges) without its body: what ``curl -I`` asks."""
    return download_checkpoint(checkpoint_id, request, session, settings, token)
