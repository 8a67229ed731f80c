"""Recurrent-cell space of NAO for language models (nao-spec §1c).

Node i = 1..11 reads one predecessor s_p (p < i) and applies a highway step with activation
a: [c | g] = s_p W_i, s_i = s_p + sigmoid(c) * (act(g) - s_p). Node 0 mixes x_t and h_{t-1}.

Activation ids — the two repositories disagree (nao-spec §8.16). We adopt the **NAO-WS/rnn
mapping** everywhere: 0 tanh, 1 relu, 2 sigmoid, 3 identity. The text form names the
activation, so it is unambiguous; plain-integer strings are read in the NAO-WS mapping, and
a cell published in the NAO/rnn mapping (2 identity, 3 sigmoid) is converted with
``from_nao_mapping``.

Tokens: predecessor p -> p + 1 (1..11), activation a -> a + 12 (12..15); 22 tokens, vocab 16.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nao_core.errors import InvalidArchitecture
from nao_core.search_space.base import SearchSpace, parse_int_list

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
NAO_TO_WS_ACTIVATION = {0: 0, 1: 1, 2: 3, 3: 2}  # NAO/rnn id -> our (NAO-WS) id


@dataclass(frozen=True)
class RnnArch:
    nodes: tuple[tuple[int, int], ...]  # (predecessor, activation) for s1..s11


_NODE_RE = re.compile(r"s(\d+)\s*=\s*(\w+)\(s(\d+)\)")


class RnnSpace(SearchSpace):
    group = 2

    def __init__(self, nodes: int = 11, name: str = "rnn") -> None:
        self.name = name
        self.nodes = nodes
        self.act_offset = nodes + 1  # 12 for 11 nodes
        self.vocab_size = self.act_offset + len(ACTIVATIONS)
        self.length = 2 * nodes
        mask = np.zeros((self.length, self.vocab_size), dtype=bool)
        for t in range(self.length):
            if t % 2 == 0:  # node t//2+1 reads s0..s(t//2)
                mask[t, 1 : t // 2 + 2] = True
            else:
                mask[t, self.act_offset :] = True
        self._mask = mask

    def encode(self, arch: RnnArch) -> tuple[int, ...]:
        self.validate(arch)
        return tuple(v for p, a in arch.nodes for v in (p + 1, a + self.act_offset))

    def decode(self, tokens: Sequence[int]) -> RnnArch:
        toks = self.check_tokens(tokens)
        return self._from_ints(
            [v - (1 if t % 2 == 0 else self.act_offset) for t, v in enumerate(toks)]
        )

    def _from_ints(self, ints: Sequence[int]) -> RnnArch:
        arch = RnnArch(tuple((int(ints[2 * i]), int(ints[2 * i + 1])) for i in range(self.nodes)))
        self.validate(arch)
        return arch

    def token_mask(self) -> np.ndarray:
        return self._mask.copy()

    def validate(self, arch: RnnArch) -> None:
        if not isinstance(arch, RnnArch):
            raise InvalidArchitecture(
                f"{self.name}: expected an RnnArch, got {type(arch).__name__}"
            )
        if len(arch.nodes) != self.nodes:
            raise InvalidArchitecture(
                f"{self.name}: expected {self.nodes} nodes, got {len(arch.nodes)}"
            )
        for i, (p, a) in enumerate(arch.nodes, start=1):
            if not (isinstance(p, int) and 0 <= p < i):
                raise InvalidArchitecture(f"{self.name}: s{i} reads s{p}; allowed s0..s{i - 1}")
            if not (isinstance(a, int) and 0 <= a < len(ACTIVATIONS)):
                raise InvalidArchitecture(f"{self.name}: s{i} has activation {a}; allowed 0..3")

    def sample(self, rng: np.random.Generator) -> RnnArch:
        return RnnArch(
            tuple(
                (int(rng.integers(0, i)), int(rng.integers(0, len(ACTIVATIONS))))
                for i in range(1, self.nodes + 1)
            )
        )

    def to_ints(self, arch: RnnArch) -> list[int]:
        return [v for node in arch.nodes for v in node]

    def to_str(self, arch: RnnArch) -> str:
        self.validate(arch)
        return "; ".join(f"s{i}={ACTIVATIONS[a]}(s{p})" for i, (p, a) in enumerate(arch.nodes, 1))

    def parse(self, text: str) -> RnnArch:
        ints = parse_int_list(text)
        if ints is not None:
            if len(ints) != self.length:
                raise InvalidArchitecture(
                    f"{self.name}: expected {self.length} integers, got {len(ints)}"
                )
            return self._from_ints(ints)
        specs = [s.strip() for s in text.split(";") if s.strip()]
        if len(specs) != self.nodes:
            raise InvalidArchitecture(
                f"{self.name}: expected {self.nodes} nodes 's1=act(s0); ...', got {len(specs)}"
            )
        nodes = []
        for i, spec in enumerate(specs, start=1):
            m = _NODE_RE.fullmatch(spec)
            if m is None or int(m.group(1)) != i:
                raise InvalidArchitecture(
                    f"{self.name}: cannot read {spec!r}; expected 's{i}=act(sP)'"
                )
            if m.group(2) not in ACTIVATIONS:
                raise InvalidArchitecture(
                    f"{self.name}: unknown activation {m.group(2)!r}; "
                    f"known: {', '.join(ACTIVATIONS)}"
                )
            nodes.append((int(m.group(3)), ACTIVATIONS.index(m.group(2))))
        arch = RnnArch(tuple(nodes))
        self.validate(arch)
        return arch

    def from_nao_mapping(self, ints: Sequence[int]) -> RnnArch:
        """A 22-int cell written in the NAO/rnn activation mapping (2 identity, 3 sigmoid)."""
        converted = [NAO_TO_WS_ACTIVATION[v] if t % 2 else v for t, v in enumerate(ints)]
        return self._from_ints(converted)
