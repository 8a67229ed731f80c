"""CNN micro-cell spaces of NAO (nao-spec §1a, §1b).

An architecture is a normal and a reduction cell of B = 5 computed nodes h2..h6. Node i
picks two (input, op) branches with inputs from h0..h(i-1); its output is the sum of the
two branches; the cell outputs the concatenation of its loose ends.

Two op sets share the cell:
  * ``cnn``       — the NAO-WS "small" space: 5 ops, 40 tokens, vocabulary 12.
  * ``cnn-large`` — the 11-op space of NAO without weight sharing (NAONet-A). We encode it
    the same way as the small space (two tokens per branch, ops from token B+2=7), giving a
    vocabulary of 1 + 6 + 11 = 18, the NAO_V2 rule ``1 + (B + 1) + num_ops``. The TF 60-token
    (input, op-type, op-size) encoding of nao-spec §1b is not used: it can decode meaningless
    op/size pairs, ours cannot.

Plain-integer form (the authors' strings): 40 ints, ``x_id x_op y_id y_op`` per node, normal
cell first. In ``cnn-large`` op ids are NAO_V1's 5..15 so that published strings paste as is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nao_core.errors import InvalidArchitecture
from nao_core.search_space.base import SearchSpace, parse_int_list

SMALL_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
LARGE_OPS = (
    "identity",
    "conv_1x1",
    "conv_3x3",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "max_pool_2x2",
    "max_pool_3x3",
    "max_pool_5x5",
    "avg_pool_2x2",
    "avg_pool_3x3",
    "avg_pool_5x5",
)
LARGE_V1_OFFSET = 5  # NAO_V1 numbers the 11 large ops 5..15


class Node(NamedTuple):
    x_input: int
    x_op: int
    y_input: int
    y_op: int

    def branches(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return (self.x_input, self.x_op), (self.y_input, self.y_op)


Cell = tuple[Node, ...]


@dataclass(frozen=True)
class CnnArch:
    normal: Cell
    reduction: Cell

    def cells(self) -> tuple[Cell, Cell]:
        return self.normal, self.reduction


def loose_ends(cell: Cell) -> list[int]:
    """States h0..h(B+1) that no node of the cell reads; the cell concatenates them."""
    used = {i for node in cell for i in (node.x_input, node.y_input)}
    return [s for s in range(len(cell) + 2) if s not in used]


_NODE_RE = re.compile(r"h(\d+)\s*=\s*(\w+)\(h(\d+)\)\s*\+\s*(\w+)\(h(\d+)\)")


class CnnSpace(SearchSpace):
    group = 2

    def __init__(self, name: str, ops: Sequence[str], nodes: int = 5, int_op_offset: int = 0):
        self.name = name
        self.ops = tuple(ops)
        self.nodes = nodes
        self.int_op_offset = int_op_offset
        self.input_offset = 1  # input index p -> token p + 1
        self.op_offset = 1 + nodes + 1  # op o -> token o + B + 2 (7 for B = 5)
        self.vocab_size = self.op_offset + len(self.ops)
        self.length = 2 * 4 * nodes
        self._mask = self._build_mask()

    # --- tokens ----------------------------------------------------------------------------
    def encode(self, arch: CnnArch) -> tuple[int, ...]:
        self.validate(arch)
        out: list[int] = []
        for cell in arch.cells():
            for n in cell:
                out += [n.x_input + self.input_offset, n.x_op + self.op_offset]
                out += [n.y_input + self.input_offset, n.y_op + self.op_offset]
        return tuple(out)

    def decode(self, tokens: Sequence[int]) -> CnnArch:
        toks = self.check_tokens(tokens)
        ints = [
            v - (self.input_offset if t % 2 == 0 else self.op_offset) for t, v in enumerate(toks)
        ]
        return self._from_ints(ints)

    def _from_ints(self, ints: Sequence[int]) -> CnnArch:
        half = 4 * self.nodes
        cells = []
        for c in range(2):
            part = ints[c * half : (c + 1) * half]
            cells.append(tuple(Node(*part[4 * j : 4 * j + 4]) for j in range(self.nodes)))
        arch = CnnArch(normal=cells[0], reduction=cells[1])
        self.validate(arch)
        return arch

    def _build_mask(self) -> np.ndarray:
        mask = np.zeros((self.length, self.vocab_size), dtype=bool)
        for t in range(self.length):
            node = (t % (4 * self.nodes)) // 4
            if t % 2 == 0:  # an input: node j may read h0..h(j+1)
                mask[t, self.input_offset : self.input_offset + node + 2] = True
            else:
                mask[t, self.op_offset :] = True
        return mask

    def token_mask(self) -> np.ndarray:
        return self._mask.copy()

    def symmetries(self) -> list[np.ndarray]:
        # One node per cell has its two branches swapped (NAO_V1 swap augmentation); the
        # identity permutation is not among the choices, as in the authors' code.
        groups = []
        half = 4 * self.nodes
        for c in range(2):
            perms = np.tile(np.arange(self.length), (self.nodes, 1))
            for j in range(self.nodes):
                s = c * half + 4 * j
                perms[j, s : s + 4] = [s + 2, s + 3, s, s + 1]
            groups.append(perms)
        return groups

    # --- validity, sampling, identity ------------------------------------------------------
    def validate(self, arch: CnnArch) -> None:
        if not isinstance(arch, CnnArch):
            raise InvalidArchitecture(f"{self.name}: expected a CnnArch, got {type(arch).__name__}")
        for cname, cell in (("normal", arch.normal), ("reduction", arch.reduction)):
            if len(cell) != self.nodes:
                raise InvalidArchitecture(
                    f"{self.name}: {cname} cell has {len(cell)} nodes, expected {self.nodes}"
                )
            for j, node in enumerate(cell):
                for inp, op in node.branches():
                    if not (isinstance(inp, int) and 0 <= inp < j + 2):
                        raise InvalidArchitecture(
                            f"{self.name}: {cname} node h{j + 2} reads h{inp}; allowed h0..h{j + 1}"
                        )
                    if not (isinstance(op, int) and 0 <= op < len(self.ops)):
                        raise InvalidArchitecture(
                            f"{self.name}: {cname} node h{j + 2} has op {op}; "
                            f"allowed 0..{len(self.ops) - 1}"
                        )

    def sample(self, rng: np.random.Generator) -> CnnArch:
        cells = []
        for _ in range(2):
            nodes = []
            for j in range(self.nodes):
                x, y = rng.integers(0, j + 2, size=2)
                xo, yo = rng.integers(0, len(self.ops), size=2)
                nodes.append(Node(int(x), int(xo), int(y), int(yo)))
            cells.append(tuple(nodes))
        return CnnArch(normal=cells[0], reduction=cells[1])

    def canonical(self, arch: CnnArch) -> CnnArch:
        """Branch order inside a node does not matter (op_x(a) + op_y(b) is a sum)."""

        def sort_cell(cell: Cell) -> Cell:
            return tuple(Node(*min(n.branches()), *max(n.branches())) for n in cell)

        return CnnArch(sort_cell(arch.normal), sort_cell(arch.reduction))

    # --- text ------------------------------------------------------------------------------
    def to_ints(self, arch: CnnArch) -> list[int]:
        out: list[int] = []
        for cell in arch.cells():
            for n in cell:
                out += [
                    n.x_input,
                    n.x_op + self.int_op_offset,
                    n.y_input,
                    n.y_op + self.int_op_offset,
                ]
        return out

    def to_str(self, arch: CnnArch) -> str:
        self.validate(arch)

        def cell_str(cell: Cell) -> str:
            return "; ".join(
                f"h{j + 2}={self.ops[n.x_op]}(h{n.x_input})+{self.ops[n.y_op]}(h{n.y_input})"
                for j, n in enumerate(cell)
            )

        return f"normal: {cell_str(arch.normal)} | reduction: {cell_str(arch.reduction)}"

    def parse(self, text: str) -> CnnArch:
        ints = parse_int_list(text)
        if ints is not None:
            return self._parse_ints(ints)
        parts = [p.strip() for p in text.split("|")]
        if (
            len(parts) != 2
            or not parts[0].startswith("normal:")
            or not parts[1].startswith("reduction:")
        ):
            raise InvalidArchitecture(
                f"{self.name}: expected 'normal: h2=op(hX)+op(hY); ... | reduction: ...' "
                f"or {self.length} integers"
            )
        cells = [self._parse_cell(p.split(":", 1)[1]) for p in parts]
        arch = CnnArch(normal=cells[0], reduction=cells[1])
        self.validate(arch)
        return arch

    def _parse_ints(self, ints: list[int]) -> CnnArch:
        if len(ints) != self.length:
            raise InvalidArchitecture(
                f"{self.name}: expected {self.length} integers, got {len(ints)}"
            )
        shifted = [v - self.int_op_offset if t % 2 else v for t, v in enumerate(ints)]
        for t, v in enumerate(shifted):
            if t % 2 and not 0 <= v < len(self.ops):
                lo = self.int_op_offset
                raise InvalidArchitecture(
                    f"{self.name}: op id {ints[t]} at position {t} is outside "
                    f"{lo}..{lo + len(self.ops) - 1}"
                )
        return self._from_ints(shifted)

    def _parse_cell(self, text: str) -> Cell:
        specs = [s.strip() for s in text.split(";") if s.strip()]
        if len(specs) != self.nodes:
            raise InvalidArchitecture(
                f"{self.name}: a cell needs {self.nodes} nodes, got {len(specs)}"
            )
        nodes = []
        for j, spec in enumerate(specs):
            m = _NODE_RE.fullmatch(spec)
            if m is None or int(m.group(1)) != j + 2:
                raise InvalidArchitecture(
                    f"{self.name}: cannot read node {spec!r}; expected 'h{j + 2}=op(hX)+op(hY)'"
                )
            ops = []
            for name in (m.group(2), m.group(4)):
                if name not in self.ops:
                    raise InvalidArchitecture(
                        f"{self.name}: unknown op {name!r}; known: {', '.join(self.ops)}"
                    )
                ops.append(self.ops.index(name))
            nodes.append(Node(int(m.group(3)), ops[0], int(m.group(5)), ops[1]))
        return tuple(nodes)


def cnn_small() -> CnnSpace:
    return CnnSpace("cnn", SMALL_OPS)


def cnn_large() -> CnnSpace:
    return CnnSpace("cnn-large", LARGE_OPS, int_op_offset=LARGE_V1_OFFSET)
