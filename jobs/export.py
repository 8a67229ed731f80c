"""Exports of a trained model (``GET /checkpoints/{id}/export?format=``), built once per
checkpoint and format by ``nao.export.build`` (``worker.export``) on the ``query`` queue.

An export is three checkpoint rows of the model's job: the file (kind ``onnx`` or
``torchscript``, ``source_id`` = the model checkpoint) and its model card as JSON and as
Markdown (kind ``card``, ``source_id`` = the file's row: a card describes one file). The
checks here run without torch: a checkpoint that is no trained model, or a language model
asked for ONNX, is a 409 before any job exists. Concurrent first requests take the model
checkpoint's row lock (an UPDATE that changes nothing: a row lock on Postgres, the write
lock on SQLite) before they look for a job, so one job is made per checkpoint and format.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from jobs import common
from jobs.errors import Conflict, NotFound
from jobs.kind import Kind
from store import broker, repository
from store.models import FINISHED, Checkpoint, Job, JobKind

TASK = "nao.export.build"
FORMATS = ("onnx", "torchscript")  # nao_core.export.FORMATS, known here without torch
CARD = "card"
CARD_SUFFIXES = (".card.json", ".card.md")


class Export(Kind):
    name = "export"
    row_kind = JobKind.EXPORT
    task = TASK
    queue = broker.QUERY
    runner = "worker.export"

    def create(self, session: Session, body: Any, owner_id: int | None) -> Job:
        raise NotImplementedError("use request")

    def request(
        self, session: Session, checkpoint_id: int, fmt: str, owner_id: int | None
    ) -> tuple[Checkpoint | None, Job | None]:
        """The export of ``checkpoint_id`` in ``fmt`` if it is built (and no job), else the
        job building it: the one queued or running, or a new one owned by ``owner_id``.

        Raises:
            NotFound: No such checkpoint.
            Conflict: It is not a trained model, or the format does not fit the model.
        """
        source = check_source(session, checkpoint_id, fmt)
        built = find_export(session, source.id, fmt)
        if built is not None:
            return built, None
        # the lock, then look again: a concurrent request may have made the job meanwhile
        session.execute(
            update(Checkpoint)
            .where(Checkpoint.id == source.id)
            .values(source_id=Checkpoint.source_id)
        )
        built = find_export(session, source.id, fmt)
        running = None if built else active_job(session, source.id, fmt)
        if built is not None or running is not None:
            session.commit()
            return built, running
        model_job = repository.get_job(session, source.job_id)
        job = Job(
            kind=JobKind.EXPORT,
            space=model_job.space if model_job else None,
            dataset=model_job.dataset if model_job else None,
            config={"checkpoint_id": source.id, "format": fmt},
            request={"checkpoint_id": source.id, "format": fmt},
            created_by=owner_id,
            checkpoint_id=source.id,
            architecture_id=source.architecture_id,
        )
        return None, common.submit(session, job, TASK, self.queue)  # commits: lock released


def check_source(session: Session, checkpoint_id: int, fmt: str) -> Checkpoint:
    """The model checkpoint to export; 404 if unknown, 409 if it cannot be exported so."""
    row = repository.get_checkpoint(session, checkpoint_id)
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    if row.kind != "model":
        raise Conflict(
            f"checkpoint {checkpoint_id} is a {row.kind} checkpoint; only a trained model "
            "(kind model, from POST /trainings) exports"
        )
    job = repository.get_job(session, row.job_id)
    if fmt == "onnx" and job is not None and job.space == "rnn":
        raise Conflict(
            f"checkpoint {checkpoint_id} is an RNN language model: it exports to torchscript "
            "only (the ONNX exporter unrolls its loop over time at one window length)"
        )
    return row


def find_export(session: Session, source_id: int, fmt: str) -> Checkpoint | None:
    stmt = select(Checkpoint).where(Checkpoint.source_id == source_id, Checkpoint.kind == fmt)
    return session.scalar(stmt.limit(1))


def find_card(session: Session, export_id: int, markdown: bool) -> Checkpoint | None:
    """The card row (JSON or Markdown) of an export file's row."""
    suffix = CARD_SUFFIXES[1 if markdown else 0]
    stmt = select(Checkpoint).where(
        Checkpoint.source_id == export_id,
        Checkpoint.kind == CARD,
        Checkpoint.path.endswith(suffix),
    )
    return session.scalar(stmt.limit(1))


def active_job(session: Session, source_id: int, fmt: str) -> Job | None:
    """The unfinished export job of ``source_id`` in ``fmt``, if any (newest first)."""
    stmt = (
        select(Job)
        .where(Job.kind == JobKind.EXPORT, Job.checkpoint_id == source_id)
        .where(Job.status.not_in(FINISHED))
        .order_by(Job.id.desc())
    )
    return next((j for j in session.scalars(stmt) if j.config.get("format") == fmt), None)
