"""``nao.export.build(job_id)``: build one export of a model checkpoint (``jobs.export``).

The file and its card are written under the export job's folder (``jobs/<id>/export``) and
recorded as checkpoints of the model's job (``source_id``: the file's model, the card's
file). A re-delivered task whose export is recorded already does nothing, and a file is
recorded with its cards in one transaction, so the route never sees a file without its card.
The card names what the service knows beyond the file: the checkpoint, the architecture's
drawing URL and the search that found the architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Task

from jobs.export import CARD, TASK, find_export
from store import repository
from store.db import session_scope
from store.models import Checkpoint, Job, JobKind, JobStatus
from store.settings import get_settings
from store.storage import job_storage, run_dir, sha256_file
from worker.app import celery_app
from worker.lifecycle import JobTask, db, run_job

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


@celery_app.task(name=TASK, base=JobTask, bind=True)
def run_export(self: Task, job_id: int) -> str:
    return run_job(job_id, _export)


def _export(job: Job) -> tuple[JobStatus, dict[str, Any] | None]:
    from nao_core.export import card_paths, export_checkpoint

    source_id, fmt = int(job.config["checkpoint_id"]), job.config["format"]
    settings = get_settings()
    store = job_storage(settings)
    with db()() as s:
        done = find_export(s, source_id, fmt)
        if done is not None:  # a re-delivered task
            return JobStatus.SUCCEEDED, {"checkpoint_id": done.id, "format": fmt}
        source = repository.get_checkpoint(s, source_id)
        if source is None:
            raise LookupError(f"checkpoint {source_id} is gone")
        key, model_job, arch_id = source.path, source.job_id, source.architecture_id
        context = _context(s, source)
    out = run_dir(settings, job.id, "export") / f"model-{source_id}{SUFFIX[fmt]}"
    result = export_checkpoint(store.local_path(key), fmt, out, context=context)
    with session_scope(db()) as s:
        row = _record(s, out, fmt, model_job, arch_id, source_id)
        for path in card_paths(out):
            _record(s, path, CARD, model_job, arch_id, row.id)
        public = {"checkpoint_id": row.id, "format": fmt, "size": row.size}
    check = result.card["export"]["check"]
    return JobStatus.SUCCEEDED, {**public, "check": check, "parameters": result.card["parameters"]}


def _record(
    s: Any, path: Path, kind: str, job_id: int, arch_id: int | None, source_id: int
) -> Checkpoint:
    row = Checkpoint(
        job_id=job_id,
        architecture_id=arch_id,
        kind=kind,
        source_id=source_id,
        path=job_storage(get_settings()).key_for(path),
        size=path.stat().st_size,
        sha256=sha256_file(path),
    )
    s.add(row)
    s.flush()
    return row


def _context(s: Any, source: Checkpoint) -> dict[str, Any]:
    """What the card says beyond the file: ids and links the service knows."""
    context: dict[str, Any] = {"checkpoint_id": source.id}
    arch = (
        repository.get_architecture(s, source.architecture_id) if source.architecture_id else None
    )
    if arch is not None:
        context["architecture_id"] = arch.id
        context["drawing_url"] = f"/architectures/{arch.id}/drawing.svg"
        search = repository.get_job(s, arch.job_id)
        if search is not None and search.kind == JobKind.SEARCH:
            context["search"] = {
                "id": search.id,
                "url": f"/jobs/{search.id}",
                "space": search.space,
                "dataset": search.dataset,
                "preset": search.preset,
                "method": (search.config or {}).get("method", "nao-ws"),
                "architecture_score": arch.score_supernet
                if arch.score_supernet is not None
                else arch.score_tabular,
            }
    return context
