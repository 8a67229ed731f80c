"""Controller queries: improve an architecture, predict scores, interpolate between two.

A search that trains a controller (NAO-WS, NAO without weight sharing, NAO over a table)
keeps it after every round as a ``controller`` checkpoint (``worker.progress``). A query asks
that controller something: the request is checked here without torch (the search exists and
trains a controller, it has a controller checkpoint, every architecture parses in the
search's space), which picks the checkpoint; then a ``query`` job row is committed and
``nao.query`` is sent to the ``query`` queue, which a light worker serves apart from the
searches (``worker.query`` runs it). An invalid request never becomes a job.

The row's config holds everything the worker needs: ``{"operation", "search_id",
"checkpoint_id", "round", ...}`` with the architectures as texts of the space (and their ids
where they were given by id). The result the worker writes is what the API answers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from jobs import common
from jobs.errors import Conflict, InvalidInput, NotFound
from jobs.kind import Kind
from jobs.requests import ImproveCreate, InterpolationCreate, PredictionCreate, WarmStart
from nao_core.errors import InvalidArchitecture
from nao_core.search_space import create_search_space, list_search_spaces
from store import broker, repository
from store.models import Architecture, Checkpoint, Job, JobKind, JobStatus

TASK = "nao.query"
# The methods whose searches fit a controller each round.
CONTROLLER_METHODS = ("nao-ws", "nao")


def search_method(job: Job) -> str:
    """``nao-ws``, ``nao``, ``random`` or ``evolution``: how the search chose its archs."""
    cfg = job.config or {}
    if cfg.get("method") == "tabular":
        return str(cfg.get("strategy"))
    return str(cfg.get("method") or "nao-ws")


def get_search(session: Session, search_id: int) -> Job:
    job = repository.get_job(session, search_id)
    if job is None or job.kind != JobKind.SEARCH:
        raise NotFound(f"search {search_id} not found")
    return job


def check_controller(search: Job, where: str = "") -> None:
    """409 unless ``search`` trains a controller."""
    method = search_method(search)
    if method not in CONTROLLER_METHODS:
        raise Conflict(f"{where}search {search.id} has no controller (method {method})")


def pick_checkpoint(
    session: Session, search: Job, round: int | None, field: str = "round", where: str = ""
) -> Checkpoint:
    """The search's controller after ``round`` (None: its latest): 409 while it has none yet,
    422 naming ``field`` for a round it has not recorded."""
    ckpt = repository.controller_checkpoint(session, search.id, round)
    if ckpt is not None:
        return ckpt
    rounds = [c.round for c in repository.list_checkpoints(session, search.id, "controller")]
    if not rounds:
        raise Conflict(
            f"{where}search {search.id} has no controller checkpoint yet ({search.status}; "
            "one is stored after each round)"
        )
    known = ", ".join(str(r) for r in rounds)
    raise InvalidInput(field, f"search {search.id} has no controller of round {round}; has {known}")


def _other_space(text: str, space: str) -> str | None:
    """The first other space ``text`` parses in, if any."""
    for name in list_search_spaces():
        if name == space:
            continue
        try:
            create_search_space(name).parse(text)
        except InvalidArchitecture:
            continue
        return name
    return None


def arch_text(text: str, space: str, search_id: int, field: str) -> str:
    """``text`` in the canonical text form of ``space``: 409 if it is an architecture of
    another space, 422 naming ``field`` if it is none."""
    s = create_search_space(space)
    try:
        return s.to_str(s.parse(text))
    except InvalidArchitecture as exc:
        other = _other_space(text, space)
        if other is not None:
            raise Conflict(
                f"{field}: an architecture of space {other!r}; search {search_id} searched "
                f"space {space!r}"
            ) from None
        raise InvalidInput(field, str(exc)) from None


def check_row_space(row: Architecture, search: Job, field: str) -> None:
    if row.space != search.space:
        raise Conflict(
            f"{field}: architecture {row.id} is of space {row.space!r}; search {search.id} "
            f"searched space {search.space!r}"
        )


def resolve(
    session: Session, refs: list[int | str], search: Job, field: str
) -> list[dict[str, Any]]:
    """Each reference (an id or a text) as ``{"arch": text, "architecture_id": id | None}``,
    every error naming ``field`` (``field.i`` for a list)."""
    space = str(search.space)
    rows = repository.architectures_by_id(session, [r for r in refs if isinstance(r, int)])
    out = []
    for i, ref in enumerate(refs):
        where = f"{field}.{i}" if field == "archs" else field
        if isinstance(ref, int):
            row = rows.get(ref)
            if row is None:
                raise InvalidInput(where, f"architecture {ref} not found")
            check_row_space(row, search, where)
            out.append({"arch": row.arch, "architecture_id": row.id})
        else:
            out.append({"arch": arch_text(ref, space, search.id, where), "architecture_id": None})
    return out


def origin_search_id(session: Session, row: Architecture) -> int:
    """The search an architecture came from: its own job, or the search a query proposed it
    with; 409 for an architecture no search found (a training's own)."""
    job = repository.get_job(session, row.job_id)
    if job is not None and job.kind == JobKind.QUERY:
        return int(job.config["search_id"])
    if job is None or job.kind != JobKind.SEARCH:
        raise Conflict(f"architecture {row.id} was not found by a search; give search_id")
    return job.id


class Query(Kind):
    name = "query"
    row_kind = JobKind.QUERY
    task = TASK
    queue = broker.QUERY
    runner = "worker.query"

    def create(self, session: Session, body: Any, owner_id: int | None) -> Job:
        """A prediction or an interpolation (an improvement names its architecture apart:
        ``improve``)."""
        if isinstance(body, PredictionCreate):
            return self.predict(session, body, owner_id)
        if isinstance(body, InterpolationCreate):
            return self.interpolate(session, body, owner_id)
        raise TypeError(f"a query is a prediction or an interpolation, not {type(body).__name__}")

    def _submit(
        self,
        session: Session,
        search: Job,
        ckpt: Checkpoint,
        config: dict[str, Any],
        body: Any,
        owner_id: int | None,
        architecture_id: int | None = None,
    ) -> Job:
        job = Job(
            kind=JobKind.QUERY,
            space=search.space,
            dataset=search.dataset,
            config={
                "search_id": search.id,
                "checkpoint_id": ckpt.id,
                "round": ckpt.round,
                **config,
            },
            request=body.model_dump(by_alias=True),
            created_by=owner_id,
            architecture_id=architecture_id,
            checkpoint_id=ckpt.id,
        )
        return common.submit(session, job, TASK, self.queue)

    def improve(
        self, session: Session, arch_id: int, body: ImproveCreate, owner_id: int | None
    ) -> Job:
        row = repository.get_architecture(session, arch_id)
        if row is None:
            raise NotFound(f"architecture {arch_id} not found")
        search_id = body.search_id or origin_search_id(session, row)
        search = get_search(session, search_id)
        check_controller(search)
        check_row_space(row, search, "architecture")
        ckpt = pick_checkpoint(session, search, body.round)
        config = {
            "operation": "improve",
            "arch": row.arch,
            "n": body.n,
            "step_sizes": body.step_sizes,
            "neighbours": body.neighbours,
            "evaluate": body.evaluate,
        }
        return self._submit(session, search, ckpt, config, body, owner_id, row.id)

    def predict(self, session: Session, body: PredictionCreate, owner_id: int | None) -> Job:
        search = get_search(session, body.search_id)
        check_controller(search)
        ckpt = pick_checkpoint(session, search, body.round)
        archs = resolve(session, list(body.archs), search, "archs")
        config = {"operation": "predict", "archs": archs, "k": body.k}
        return self._submit(session, search, ckpt, config, body, owner_id)

    def interpolate(self, session: Session, body: InterpolationCreate, owner_id: int | None) -> Job:
        search = get_search(session, body.search_id)
        check_controller(search)
        ckpt = pick_checkpoint(session, search, body.round)
        (a,) = resolve(session, [body.from_], search, "from")
        (b,) = resolve(session, [body.to], search, "to")
        config = {"operation": "interpolate", "from": a, "to": b, "steps": body.steps}
        return self._submit(session, search, ckpt, config, body, owner_id)


# --- warm start: a new search from a finished one's controller ---------------------------------


# What shapes a controller's weights: a warm start needs the same (nao_core's check_warm_start).
SHAPE_FIELDS = ("hidden_size", "mlp_layers", "mlp_hidden_size")


def controller_config(job: Job) -> dict[str, Any]:
    """The controller section of a search's stored config, whatever its method."""
    cfg = job.config or {}
    if cfg.get("method") == "tabular":
        return dict((cfg.get("strategy_config") or {}).get("controller") or {})
    if cfg.get("method") == "nao":
        return dict(cfg["search"].get("controller") or {})
    return dict(cfg.get("controller") or {})


def warm_start(
    session: Session,
    body: WarmStart | None,
    space: str,
    method: str,
    controller: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The ``warm_start`` entry of a new search's config, or None: the source search exists
    and has succeeded, searched the same space, trains a controller of the shape of the new
    search's ``controller`` config and has stored one (of ``round``, if given); the new
    search's ``method`` trains one too."""
    if body is None:
        return None
    field = "warm_start.search_id"
    if method not in CONTROLLER_METHODS:
        raise InvalidInput("warm_start", f"method {method!r} has no controller to start from")
    source = repository.get_job(session, body.search_id)
    if source is None or source.kind != JobKind.SEARCH:
        raise InvalidInput(field, f"search {body.search_id} not found")
    where = f"{field}: "
    if source.status != JobStatus.SUCCEEDED:
        raise Conflict(f"{where}search {source.id} is {source.status}, not succeeded")
    if source.space != space:
        raise Conflict(f"{where}search {source.id} searched space {source.space!r}, not {space!r}")
    check_controller(source, where)
    theirs = controller_config(source)
    differ = [
        f"controller.{k} {theirs.get(k)} != {controller.get(k)}"
        for k in SHAPE_FIELDS
        if controller is not None and theirs.get(k) != controller.get(k)
    ]
    if differ:
        raise Conflict(
            f"{where}search {source.id}'s controller has another shape ({'; '.join(differ)}); "
            "set the same with overrides"
        )
    ckpt = pick_checkpoint(session, source, body.round, "warm_start.round", where)
    return {
        "search_id": source.id,
        "pool": body.pool,
        "round": ckpt.round,
        "checkpoint_id": ckpt.id,
        "dataset": source.dataset,
    }
