"""Evaluation of a stored checkpoint (``POST /evaluations``) by ``nao.eval.checkpoint``
(``worker.evaluation``): test accuracy, parameters and FLOPs, or perplexity for LMs."""

from __future__ import annotations

from sqlalchemy.orm import Session

from jobs import common
from jobs.errors import InvalidInput, NotFound
from jobs.kind import Kind
from jobs.requests import EvaluationCreate
from store import repository
from store.models import Job, JobKind


class Evaluation(Kind):
    name = "eval"
    row_kind = JobKind.EVAL
    task = "nao.eval.checkpoint"
    runner = "worker.evaluation"

    def create(self, session: Session, body: EvaluationCreate, owner_id: int | None) -> Job:
        ckpt = repository.get_checkpoint(session, body.checkpoint_id)
        if ckpt is None:
            raise NotFound(f"checkpoint {body.checkpoint_id} not found")
        source = repository.get_job(session, ckpt.job_id)
        dataset = source.dataset if source else None
        common.check_dataset(body.dataset)
        if body.dataset is not None and body.dataset != dataset:
            raise InvalidInput("dataset", f"the checkpoint was trained on {dataset!r}")
        if dataset is not None:
            common.check_installed(dataset)
        job = Job(
            kind=JobKind.EVAL,
            space=source.space if source else None,
            dataset=dataset,
            config={"checkpoint_id": ckpt.id, "split": body.split},
            request=body.model_dump(),
            created_by=owner_id,
            checkpoint_id=ckpt.id,
            architecture_id=ckpt.architecture_id,
        )
        return common.submit(session, job, self.task, self.queue)
