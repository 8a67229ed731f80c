"""Final training of one architecture (``POST /trainings``): a stored architecture, an
architecture string with its space, or a named one (``naonet-a``, …), trained with preset
``train/<name>`` (``train-rnn/<name>`` for rnn) plus overrides by ``nao.train.final``
(``worker.training``), which resumes from its run folder."""

from __future__ import annotations

from sqlalchemy.orm import Session

from jobs import common, limits
from jobs.errors import InvalidInput, NotFound
from jobs.kind import Kind
from jobs.requests import TrainingCreate
from nao_core.config import to_dict
from nao_core.errors import InvalidArchitecture, UnknownName
from nao_core.search_space import create_search_space
from nao_core.search_space.named import get_named_arch
from store import repository
from store.models import Job, JobKind

# Final training builds CNNs of both cell spaces and language models.
SPACES = ("cnn", "cnn-large", "rnn")


class Training(Kind):
    name = "train"
    row_kind = JobKind.TRAIN
    task = "nao.train.final"
    runner = "worker.training"

    def create(self, session: Session, body: TrainingCreate, owner_id: int | None) -> Job:
        arch_row = None
        if body.architecture_id is not None:
            arch_row = repository.get_architecture(session, body.architecture_id)
            if arch_row is None:
                raise NotFound(f"architecture {body.architecture_id} not found")
            space, arch = arch_row.space, arch_row.arch
        elif body.arch_name is not None:
            try:
                space, parsed = get_named_arch(body.arch_name)
            except UnknownName as exc:
                raise InvalidInput("arch_name", str(exc)) from None
            arch = create_search_space(space).to_str(parsed)
        else:
            common.check_space(body.space)
            common.check_runnable(body.space, SPACES, "final training")
            space = body.space
            try:
                s = create_search_space(space)
                arch = s.to_str(s.parse(body.arch or ""))
            except InvalidArchitecture as exc:
                raise InvalidInput("arch", str(exc)) from None
        dataset = body.dataset or (arch_row.dataset if arch_row else None)
        common.check_dataset(dataset, space)
        cfg = common.space_preset("train", space, body.preset, dataset)
        cfg = common.apply(cfg, body.overrides, "overrides")
        if dataset is not None:
            cfg = common.apply(cfg, {"data.dataset": dataset}, "dataset")
        if body.seed is not None:
            cfg = common.apply(cfg, {"seed": body.seed}, "seed")
        where = limits.sources(body.overrides)
        if dataset is not None:
            where["data.dataset"] = "dataset" if body.dataset else "architecture_id"
        limits.check_config(cfg, {**where, "seed": "seed"}, space)
        common.check_installed(cfg.data.dataset)
        job = Job(
            kind=JobKind.TRAIN,
            space=space,
            dataset=cfg.data.dataset,
            preset=body.preset,
            config={"space": space, "arch": arch, "train": to_dict(cfg)},
            request=body.model_dump(),
            created_by=owner_id,
            architecture_id=arch_row.id if arch_row else None,
        )
        return common.submit(session, job, self.task, self.queue)
