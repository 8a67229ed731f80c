"""A search's stored controllers, read by the workers: a query's, and a warm start's.

Each round of a search that fits a controller leaves a ``controller`` checkpoint
(``worker.progress.record_controller``); ``load_controller`` reads one back as a
``nao_core.controller.bundle.ControllerBundle``, kept per process (a query worker answers
many questions of the same controller) and keyed by the file's sha256, so a round rewritten
after a re-delivery is read again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from store import repository
from store.models import Job
from store.settings import get_settings
from store.storage import job_storage
from worker.lifecycle import db

_BUNDLES: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (key, sha256) -> bundle
_KEEP = 8  # bundles kept per process


def load_controller(checkpoint_id: int) -> Any:
    """The controller bundle of a stored checkpoint."""
    from nao_core.controller.bundle import load_bundle

    with db()() as s:
        ckpt = repository.get_checkpoint(s, checkpoint_id)
        if ckpt is None:
            raise LookupError(f"controller checkpoint {checkpoint_id} is gone")
        entry = (ckpt.path, ckpt.sha256)
    cached = _BUNDLES.get(entry)
    if cached is not None:
        _BUNDLES.move_to_end(entry)
        return cached
    bundle = load_bundle(job_storage(get_settings()).local_path(entry[0]))
    _BUNDLES[entry] = bundle
    while len(_BUNDLES) > _KEEP:
        _BUNDLES.popitem(last=False)
    return bundle


def warm_start(job: Job) -> tuple[Any, bool]:
    """The bundle a search starts from and whether it takes that search's pool too
    (``jobs.query.warm_start`` recorded both in the job's config); (None, False) for none."""
    warm = (job.config or {}).get("warm_start")
    if not warm:
        return None, False
    return load_controller(int(warm["checkpoint_id"])), bool(warm["pool"])
