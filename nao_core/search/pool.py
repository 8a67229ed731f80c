"""The architecture pool of a weight-sharing search (nao-spec §4.1 "Schedule").

A pool holds ``PoolEntry``s: an architecture with a stable integer id, the round it entered
(0 = the random seed pool, r = proposed by the controller after evaluation point r), the id
of the seed it was improved from, the step size that reached it, the controller's latest
prediction for it and its latest score. ``sort`` orders best first (unscored
entries last); ``replace_worst`` drops the tail for the controller's proposals, so the pool
keeps its size (NAO_V1).

Ties: scores on a few hundred validation images move in steps of 1/500, so many architectures
tie. ``tie_break="random"`` (the default) orders tied entries by a key hashed from the search
seed, the evaluation point and the architecture: random, the same on every run and resume,
drawn from no generator, and new at every evaluation point. ``"age"`` keeps them in pool
order, which favours the older members (the stable sort of the authors' code).

De-duplication is by canonical form (branch order inside a node does not matter) against
every architecture the pool has *ever* held, not only the current one (nao-spec §8 item 5,
§9): an architecture the search discarded cannot come back and waste a slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nao_core.search_space.base import Arch, SearchSpace


@dataclass
class PoolEntry:
    """One architecture of the pool.

    Attributes:
        id: Unique within the search, in order of entry.
        arch: The architecture.
        round: Evaluation point after which it entered (0 = random seed).
        parent: Id of the seed the controller moved to reach it (None for random ones).
        score: Latest score, higher is better (None until first scored).
        score_source: What produced ``score``: ``"supernet"`` (one-shot accuracy on the fixed
            valid batches) or ``"rerank"`` (stand-alone short training).
        scored_round: Evaluation point of ``score``.
        step_size: The step size eta that moved the parent's embedding to it (None for random
            ones).
        predicted: The controller's latest prediction for it, on the controller's normalised
            scale (higher better): what it believed when it proposed the architecture, then
            before each later evaluation point. None until a controller has been fitted.
    """

    id: int
    arch: Arch
    round: int
    parent: int | None = None
    score: float | None = None
    score_source: str | None = None
    scored_round: int | None = None
    step_size: float | None = None
    predicted: float | None = None

    def to_dict(self, space: SearchSpace) -> dict[str, Any]:
        return {
            "id": self.id,
            "arch": space.to_str(self.arch),
            "score": self.score,
            "score_source": self.score_source,
            "scored_round": self.scored_round,
            "round": self.round,
            "parent": self.parent,
            "step_size": self.step_size,
            "predicted": self.predicted,
        }

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> PoolEntry:
        return cls(
            id=int(data["id"]),
            arch=space.parse(data["arch"]),
            round=int(data["round"]),
            parent=data["parent"],
            score=data["score"],
            score_source=data["score_source"],
            scored_round=data["scored_round"],
            step_size=data.get("step_size"),  # absent from run files written before them
            predicted=data.get("predicted"),
        )


class ArchPool:
    """Entries in pool order plus the canonical keys of every architecture ever added."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.entries: list[PoolEntry] = []
        self.seen: set[str] = set()
        self._next_id = 0

    def __len__(self) -> int:
        return len(self.entries)

    def archs(self) -> list[Arch]:
        return [e.arch for e in self.entries]

    def known(self, arch: Arch) -> bool:
        return self.space.canonical_key(arch) in self.seen

    def make_entry(
        self,
        arch: Arch,
        round: int,
        parent: int | None = None,
        *,
        step_size: float | None = None,
        predicted: float | None = None,
    ) -> PoolEntry | None:
        """A new entry for ``arch`` (marked as seen), or None when it was seen before.

        The entry is not placed in the pool; ``extend`` or ``replace_worst`` does that.
        """
        key = self.space.canonical_key(arch)
        if key in self.seen:
            return None
        self.seen.add(key)
        entry = PoolEntry(
            self._next_id, arch, round, parent, step_size=step_size, predicted=predicted
        )
        self._next_id += 1
        return entry

    def extend(self, entries: Iterable[PoolEntry]) -> None:
        self.entries.extend(entries)

    def set_scores(self, scores: list[float], source: str, round: int) -> None:
        for entry, score in zip(self.entries, scores, strict=True):
            entry.score, entry.score_source, entry.scored_round = float(score), source, round

    def sort(self, tie_break: str = "age", seed: int = 0) -> None:
        """Best first; unscored entries last; ties by a seeded random key (``"random"``) or in
        pool order (``"age"``, a stable sort); see the module docstring."""
        if tie_break == "random":
            self.entries.sort(
                key=lambda e: (e.score is None, -(e.score or 0.0), self._tie_key(e, seed))
            )
        else:
            self.entries.sort(key=lambda e: (e.score is None, -(e.score or 0.0)))

    def _tie_key(self, entry: PoolEntry, seed: int) -> bytes:
        text = f"{seed}:{entry.scored_round}:{self.space.canonical_key(entry.arch)}"
        return hashlib.blake2b(text.encode(), digest_size=8).digest()

    def top(self, k: int) -> list[PoolEntry]:
        return self.entries[:k]

    def by_id(self, entry_id: int) -> PoolEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def replace_worst(self, new: list[PoolEntry]) -> None:
        """Drop the last ``len(new)`` entries of the (sorted) pool and append ``new``."""
        keep = max(len(self.entries) - len(new), 0)
        self.entries = self.entries[:keep] + new

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_dict(self.space) for e in self.entries]

    def state_dict(self) -> dict[str, Any]:
        return {"entries": self.to_json(), "seen": sorted(self.seen), "next_id": self._next_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [PoolEntry.from_dict(self.space, d) for d in state["entries"]]
        self.seen = set(state["seen"])
        self._next_id = int(state["next_id"])
