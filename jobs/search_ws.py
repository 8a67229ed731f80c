"""Weight-sharing search (NAO-WS, ``"method": "nao-ws"``, the default for cnn and rnn).

The request becomes a ``SearchConfig`` (``RnnSearchConfig`` for rnn): preset
``search/<name>`` (``search-rnn/<name>``) plus overrides; the row's config is that config (plus
``warm_start``, where the request asked for one: ``jobs.query.warm_start``), and
``nao.search.run`` (``worker.search_ws``) runs it, resuming from its run folder.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from jobs import common, query
from jobs.errors import InvalidInput
from jobs.kind import Kind
from jobs.requests import SearchCreate
from nao_core.config import to_dict
from store.models import Job, JobKind

# The spaces with a supernet: nao_core.evaluator.supernet builds the cnn and rnn ones.
SPACES = ("cnn", "rnn")


def check_trained_search(body: SearchCreate) -> SearchCreate:
    """What every search that trains networks (nao-ws, nao) asks of a request; fills in the
    defaults (method nao-ws, preset tiny)."""
    if body.method not in (None, "nao-ws", "nao"):
        raise InvalidInput(
            "method", f"space {body.space!r} is searched with nao-ws or nao, not {body.method!r}"
        )
    for field in ("table", "signal", "report"):
        if getattr(body, field) is not None:
            raise InvalidInput(field, "only used by tabular spaces (nb201)")
    return body.model_copy(
        update={"method": body.method or "nao-ws", "preset": body.preset or "tiny"}
    )


class WeightSharingSearch(Kind):
    name = "search-ws"
    row_kind = JobKind.SEARCH
    task = "nao.search.run"
    runner = "worker.search_ws"

    def accepts(self, body: SearchCreate) -> bool:
        return True  # the registry asks it last: it names the methods a space takes

    def create(self, session: Session, body: SearchCreate, owner_id: int | None) -> Job:
        body = check_trained_search(body)
        if body.max_parallel is not None or body.max_gpu_hours is not None:
            raise InvalidInput("method", "max_parallel and max_gpu_hours need method 'nao'")
        common.check_runnable(body.space, SPACES, "weight-sharing search")
        common.check_dataset(body.dataset, body.space)
        assert body.preset is not None
        cfg = common.space_preset("search", body.space, body.preset)
        cfg = common.apply_search_request(cfg, body, "data.dataset", "optim.epochs")
        common.check_installed(cfg.data.dataset)
        ctrl = to_dict(cfg.controller)
        warm = query.warm_start(session, body.warm_start, body.space, "nao-ws", ctrl)
        job = Job(
            kind=JobKind.SEARCH,
            space=body.space,
            dataset=cfg.data.dataset,
            preset=body.preset,
            # the search's config, plus where it starts from (the worker takes that key off)
            config={**to_dict(cfg), **({"warm_start": warm} if warm else {})},
            request=body.model_dump(),
            created_by=owner_id,
        )
        assert self.task is not None
        return common.submit(session, job, self.task, self.queue)
