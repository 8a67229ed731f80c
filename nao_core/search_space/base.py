"""The interface every search space implements, and the pieces they share.

A space turns architectures into fixed-length token sequences for the controller and back.
The controller never needs to know what an architecture means; it only needs
  * ``length`` tokens per architecture, grouped ``group`` at a time by the encoder,
  * ``token_mask()``: which tokens are legal at every decoding step (so a greedy decode
    under the mask always yields a valid architecture),
  * ``symmetries()``: token permutations that describe the same architecture (swap
    augmentation, nao-spec §2.1).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from nao_core.errors import InvalidArchitecture

Arch = Any  # each space has its own frozen, hashable arch type

_MAX_MISSES = 1000  # draws of known archs in a row before ``sample_unseen`` gives up


class SearchSpace(ABC):
    name: str
    length: int  # tokens per architecture
    vocab_size: int  # including token 0 = <sos>
    group: int  # consecutive tokens the encoder concatenates into one step

    # --- arch <-> tokens -------------------------------------------------------------------
    @abstractmethod
    def encode(self, arch: Arch) -> tuple[int, ...]:
        """Arch -> ``length`` tokens in 1..vocab_size-1."""

    @abstractmethod
    def decode(self, tokens: Sequence[int]) -> Arch:
        """Tokens -> arch; raises InvalidArchitecture for a sequence outside the space."""

    # --- arch <-> text ---------------------------------------------------------------------
    @abstractmethod
    def to_str(self, arch: Arch) -> str:
        """Human-readable form that ``parse`` reads back to the same arch."""

    @abstractmethod
    def parse(self, text: str) -> Arch:
        """Read ``to_str`` output or the space's plain-integer form; raise InvalidArchitecture."""

    # --- sampling and identity -------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch:
        """One architecture drawn as the authors' ``generate_arch`` draws it."""

    @abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise InvalidArchitecture unless ``arch`` belongs to this space."""

    def canonical(self, arch: Arch) -> Arch:
        """The representative of ``arch``'s equivalence class (default: itself)."""
        return arch

    def canonical_key(self, arch: Arch) -> str:
        """Stable string identity used for de-duplication (pool, database)."""
        return self.to_str(self.canonical(arch))

    def canonical_hash(self, arch: Arch) -> str:
        return hashlib.sha256(f"{self.name}:{self.canonical_key(arch)}".encode()).hexdigest()

    def one_token_edits(self, arch: Arch) -> list[Arch]:
        """Every architecture one legal token away from ``arch`` (a mutation's whole range); a
        token legal at its position but not with the rest of the arch is left out."""
        tokens = list(self.encode(arch))
        mask = self.token_mask()
        out = []
        for t in range(self.length):
            for v in np.flatnonzero(mask[t]):
                if v != tokens[t]:
                    try:
                        out.append(self.decode([*tokens[:t], int(v), *tokens[t + 1 :]]))
                    except InvalidArchitecture:
                        continue
        return out

    # --- controller support ----------------------------------------------------------------
    @abstractmethod
    def token_mask(self) -> np.ndarray:
        """Bool array (length, vocab_size): token v is legal at decoding step t."""

    def symmetries(self) -> list[np.ndarray]:
        """Groups of equivalent-token permutations, each an int array (k, length).

        Augmentation applies one permutation drawn from every group; permutations of
        different groups touch disjoint positions. Default: no symmetry.
        """
        return []

    def sample_many(self, rng: np.random.Generator, n: int) -> list[Arch]:
        return [self.sample(rng) for _ in range(n)]

    def sample_unseen(
        self, rng: np.random.Generator, n: int, known: Collection[str] = ()
    ) -> list[Arch]:
        """Up to ``n`` distinct random architectures whose canonical keys are not in ``known``;
        fewer when ``_MAX_MISSES`` draws in a row hit known ones (the space is nearly used up)."""
        out: list[Arch] = []
        keys: set[str] = set()
        misses = 0
        while len(out) < n and misses < _MAX_MISSES:
            arch = self.sample(rng)
            key = self.canonical_key(arch)
            if key in known or key in keys:
                misses += 1
                continue
            keys.add(key)
            out.append(arch)
            misses = 0
        return out

    def _legal(self) -> np.ndarray:
        """``token_mask()`` built once: ``decode`` runs for thousands of rows per round."""
        cached = self.__dict__.get("_legal_cache")
        if cached is None:
            cached = self.__dict__["_legal_cache"] = self.token_mask()
        return cached

    def check_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Length and mask check shared by every ``decode``."""
        toks = tuple(int(t) for t in tokens)
        if len(toks) != self.length:
            raise InvalidArchitecture(
                f"{self.name}: expected {self.length} tokens, got {len(toks)}"
            )
        mask = self._legal()
        for t, v in enumerate(toks):
            if not (0 <= v < self.vocab_size) or not mask[t, v]:
                raise InvalidArchitecture(f"{self.name}: token {v} is not allowed at position {t}")
        return toks


def parse_int_list(text: str) -> list[int] | None:
    """``"0 1 0 4 ..."`` (spaces or commas) -> ints, or None when the text is not such a list."""
    parts = text.replace(",", " ").split()
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    return [int(p) for p in parts]
