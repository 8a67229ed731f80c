"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020): 4 nodes, 6 edges, 5 ops per edge.

Arch strings are exactly the benchmark's: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` with the
edges in the order 0→1, 0→2, 1→2, 0→3, 1→3, 2→3. Op ids follow the benchmark's table
(``ops_code``): 0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3.

Tokens: one per edge, op id + 1 (vocabulary 6, length 6, no grouping). Every edge has a fixed
source node, so there are no symmetric branches to swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nao_core.errors import InvalidArchitecture
from nao_core.search_space.base import SearchSpace

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGE_SOURCES = (0, 0, 1, 0, 1, 2)  # source node of each edge, in string order
EDGE_TARGETS = (1, 2, 2, 3, 3, 3)


@dataclass(frozen=True)
class Nb201Arch:
    ops: tuple[int, ...]  # 6 op ids in edge order


class Nb201Space(SearchSpace):
    name = "nb201"
    length = 6
    vocab_size = 1 + len(NB201_OPS)
    group = 1

    def encode(self, arch: Nb201Arch) -> tuple[int, ...]:
        self.validate(arch)
        return tuple(o + 1 for o in arch.ops)

    def decode(self, tokens: Sequence[int]) -> Nb201Arch:
        return Nb201Arch(tuple(v - 1 for v in self.check_tokens(tokens)))

    def token_mask(self) -> np.ndarray:
        mask = np.ones((self.length, self.vocab_size), dtype=bool)
        mask[:, 0] = False
        return mask

    def validate(self, arch: Nb201Arch) -> None:
        if not isinstance(arch, Nb201Arch):
            raise InvalidArchitecture(f"nb201: expected an Nb201Arch, got {type(arch).__name__}")
        if len(arch.ops) != 6 or not all(
            isinstance(o, int) and 0 <= o < len(NB201_OPS) for o in arch.ops
        ):
            raise InvalidArchitecture(f"nb201: expected 6 op ids in 0..4, got {arch.ops}")

    def sample(self, rng: np.random.Generator) -> Nb201Arch:
        return Nb201Arch(tuple(int(o) for o in rng.integers(0, len(NB201_OPS), size=6)))

    def to_str(self, arch: Nb201Arch) -> str:
        self.validate(arch)
        edges = [f"{NB201_OPS[o]}~{s}" for o, s in zip(arch.ops, EDGE_SOURCES, strict=True)]
        return f"|{edges[0]}|+|{edges[1]}|{edges[2]}|+|{edges[3]}|{edges[4]}|{edges[5]}|"

    def parse(self, text: str) -> Nb201Arch:
        text = text.strip()
        nodes = text.split("+")
        shape_error = InvalidArchitecture(
            "nb201: expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with ops " + ", ".join(NB201_OPS)
        )
        if len(nodes) != 3:
            raise shape_error
        ops: list[int] = []
        for target, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise shape_error
            edges = node[1:-1].split("|")
            if len(edges) != target:
                raise shape_error
            for source, edge in enumerate(edges):
                name, _, src = edge.partition("~")
                if name not in NB201_OPS:
                    raise InvalidArchitecture(
                        f"nb201: unknown op {name!r}; known: {', '.join(NB201_OPS)}"
                    )
                if src != str(source):
                    raise InvalidArchitecture(
                        f"nb201: edge {edge!r} into node {target} must read node {source}"
                    )
                ops.append(NB201_OPS.index(name))
        return Nb201Arch(tuple(ops))

    def from_ops_code(self, code: str) -> Nb201Arch:
        """The table's ``ops_code`` column: 6 digits, one op id per edge."""
        if len(code) != 6 or not code.isdigit():
            raise InvalidArchitecture(f"nb201: ops_code must be 6 digits, got {code!r}")
        arch = Nb201Arch(tuple(int(c) for c in code))
        self.validate(arch)
        return arch
