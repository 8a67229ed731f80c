"""Jobs belong to the token that created them (``job.created_by``).

Only the owner or an admin token cancels a job or starts a sweep on a search; reading is
everyone's (``NAO_PRIVATE_READS`` makes it every token's). A token that is not an admin holds
at most ``NAO_MAX_ACTIVE_JOBS_PER_TOKEN`` jobs queued or running; the next one is a 429 that
frees up as soon as one of them finishes or is cancelled.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.errors import Forbidden, TooManyJobs
from store import repository
from store.models import ApiToken, Job, TokenRole
from store.settings import get_settings

RETRY_AFTER_S = 60  # a job takes minutes to hours: a client polls no faster than this


def _is_admin(session: Session, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)  # the request's own row: no query
    return token is not None and token.role == TokenRole.ADMIN


def check_owner(session: Session, job: Job, caller_id: int, action: str) -> None:
    """Refuse (403) ``action`` on ``job`` unless ``caller_id`` created it or is an admin."""
    if job.created_by == caller_id or _is_admin(session, caller_id):
        return
    what = f"{job.kind} {job.id}"
    if job.created_by is None:
        raise Forbidden(f"{what} has no owner token; only an admin token may {action} it")
    raise Forbidden(f"{what} belongs to another token; only its owner or an admin may {action} it")


def check_capacity(session: Session, owner_id: int | None, adding: int = 1) -> None:
    """Refuse (429) ``adding`` jobs that would take the token ``owner_id`` past the cap.

    The token's row is locked first (Postgres), so two requests of one token count one
    after the other and cannot both take the last place.
    """
    if owner_id is None:
        return
    owner = session.scalar(select(ApiToken).where(ApiToken.id == owner_id).with_for_update())
    if owner is None or owner.role == TokenRole.ADMIN:
        return
    cap = get_settings().max_active_jobs_per_token
    held = repository.count_unfinished_jobs(session, owner_id)
    if held + adding > cap:
        asked = "another job" if adding == 1 else f"{adding} more jobs"
        raise TooManyJobs(
            f"token {owner.name!r} has {held} jobs queued or running and may hold {cap} "
            f"(NAO_MAX_ACTIVE_JOBS_PER_TOKEN); {asked} would pass that cap: retry when one "
            "finishes, or cancel one",
            RETRY_AFTER_S,
        )
