"""Left-to-right layered layout of a small cell DAG (Sugiyama, Tagawa & Toda, 1981).

A vertex's rank is 1 + the largest rank of its inputs (inputs: 0); it sits in grid column
2·rank. An edge with an op draws the op as a box in the column just left of its target, so
op labels take part in the layout like vertices and never overlap; the columns an edge
crosses hold zero-width dummy points that reserve its lane. The steps:

1. ranks and chains (source, dummies, op box, target) per edge;
2. order inside each column by barycentre sweeps, keeping the ordering with fewest crossings;
3. y by relaxation: each element is pulled to the mean y of its neighbours, and a column is
   packed in its order with minimum gaps by isotonic regression (pool adjacent violators);
4. x from the column widths; edges leave and enter vertices at ports spread along the side.

Text widths are estimated (no font metrics without a renderer), on the wide side so labels
fit under any common sans-serif font.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

NODE_FONT = 12
CAPTION_FONT = 10
OP_FONT = 11
_GAP_X = 26  # between columns: room for an arrowhead and a bend
_PORT_GAP = 6.0  # between the ends of edges on one side of a vertex
_GAP_Y = 10
_DUMMY_H = 2.0
_OP_H = 18.0
_SWEEPS = 4
_RELAX = 24
_SUB = re.compile(r"_\{([^}]*)\}")


@dataclass(frozen=True)
class Vertex:
    """A cell state. ``label`` and ``caption`` may hold ``_{...}`` subscripts."""

    id: str
    label: str
    kind: str = "node"  # input | node | output
    caption: str = ""  # a second, smaller line
    tip: str = ""


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    op: str
    label: str = ""  # text of the op box on the edge; empty: a bare arrow
    style: str = "solid"  # solid | muted (output wiring) | none (a NAS-Bench-201 zero edge)
    tip: str = ""


@dataclass(frozen=True)
class Graph:
    cell: str
    heading: str
    vertices: tuple[Vertex, ...]
    edges: tuple[Edge, ...]


@dataclass
class Box:
    """A laid-out element: a vertex, an op box or a dummy; (x, y) is its centre."""

    col: int
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True)
class Route:
    edge: Edge
    head: list[tuple[float, float]]  # source port .. op box's left side (or target port)
    box: Box | None = None
    tail: list[tuple[float, float]] = field(default_factory=list)  # op box .. target port


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    vertices: dict[str, Box]
    routes: list[Route]


def split_subscripts(text: str) -> list[tuple[str, bool]]:
    """``"c_{k-2}"`` -> ``[("c", False), ("k-2", True)]``."""
    parts: list[tuple[str, bool]] = []
    pos = 0
    for m in _SUB.finditer(text):
        if m.start() > pos:
            parts.append((text[pos : m.start()], False))
        parts.append((m.group(1), True))
        pos = m.end()
    if pos < len(text):
        parts.append((text[pos:], False))
    return parts


def text_width(text: str, size: float) -> float:
    """Generous width estimate of ``text`` (DejaVu Sans is the widest usual fallback)."""
    width = 0.0
    for part, sub in split_subscripts(text):
        scale = 0.8 if sub else 1.0
        for ch in part:
            if ch in "ijlrtf1 .,:;|!'()[]-":
                em = 0.36
            elif ch in "mwMW":
                em = 0.92
            elif ch.isupper():
                em = 0.72
            else:
                em = 0.63
            width += em * size * scale
    return width


def _vertex_box(v: Vertex, ports: int) -> Box:
    """Wide enough for the label, tall enough to keep ``ports`` arrowheads on a side apart."""
    w = max(text_width(v.label, NODE_FONT), text_width(v.caption, CAPTION_FONT)) + 16
    h = max(36.0 if v.caption else 24.0, _PORT_GAP * (ports - 1) + 12)
    return Box(col=0, w=max(38.0, w), h=h)


def layout(graph: Graph) -> Layout:
    """Place ``graph``'s vertices, op boxes and edge routes; the origin is the top-left."""
    rank: dict[str, int] = {}
    for v in graph.vertices:  # vertices come in topological order
        preds = [rank[e.src] for e in graph.edges if e.dst == v.id]
        rank[v.id] = 1 + max(preds) if preds else 0
    boxes: dict[str, Box] = {}
    for v in graph.vertices:
        ins = sum(e.dst == v.id for e in graph.edges)
        outs = sum(e.src == v.id for e in graph.edges)
        boxes[f"v:{v.id}"] = box = _vertex_box(v, max(ins, outs))
        box.col = 2 * rank[v.id]
    chains = []
    for i, e in enumerate(graph.edges):
        first, last = 2 * rank[e.src], 2 * rank[e.dst]
        stop = last - 1 if e.label else last
        chain = [f"v:{e.src}"]
        for c in range(first + 1, stop):
            chain.append(f"d:{i}:{c}")
            boxes[chain[-1]] = Box(col=c, w=0.0, h=_DUMMY_H)
        if e.label:
            chain.append(f"b:{i}")
            boxes[chain[-1]] = Box(col=stop, w=text_width(e.label, OP_FONT) + 12, h=_OP_H)
        chain.append(f"v:{e.dst}")
        chains.append(chain)
    left: dict[str, list[str]] = {k: [] for k in boxes}
    right: dict[str, list[str]] = {k: [] for k in boxes}
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            right[a].append(b)
            left[b].append(a)
    columns: list[list[str]] = [[] for _ in range(max(b.col for b in boxes.values()) + 1)]
    for key, box in boxes.items():
        columns[box.col].append(key)
    columns = _order(columns, left, right)
    _place_y(columns, boxes, left, right)
    width = _place_x(columns, boxes)
    top = min(b.y - b.h / 2 for b in boxes.values())
    bottom = max(b.y + b.h / 2 for b in boxes.values())
    for b in boxes.values():
        b.y -= top
    routes = _route(graph, chains, boxes)
    return Layout(width, bottom - top, {v.id: boxes[f"v:{v.id}"] for v in graph.vertices}, routes)


def _order(
    columns: list[list[str]], left: dict[str, list[str]], right: dict[str, list[str]]
) -> list[list[str]]:
    """Barycentre sweeps, down then up; column 0 (the inputs) keeps its given order."""

    def resort(col: list[str], nbrs: dict[str, list[str]], other: list[str]) -> list[str]:
        pos = {k: i for i, k in enumerate(other)}

        def centre(item: tuple[int, str]) -> float:
            i, k = item
            ps = [pos[n] for n in nbrs[k]]
            return sum(ps) / len(ps) if ps else float(i)

        return [k for _, k in sorted(enumerate(col), key=centre)]  # stable: ties keep order

    best, best_cross = [c[:] for c in columns], _crossings(columns, right)
    for _ in range(_SWEEPS):
        for c in range(1, len(columns)):
            columns[c] = resort(columns[c], left, columns[c - 1])
        for c in range(len(columns) - 2, 0, -1):
            columns[c] = resort(columns[c], right, columns[c + 1])
        cross = _crossings(columns, right)
        if cross < best_cross:
            best, best_cross = [c[:] for c in columns], cross
    return best


def _crossings(columns: list[list[str]], right: dict[str, list[str]]) -> int:
    total = 0
    for c in range(len(columns) - 1):
        pos = {k: i for i, k in enumerate(columns[c + 1])}
        pairs = [(i, pos[n]) for i, k in enumerate(columns[c]) for n in right[k]]
        total += sum(
            1
            for a, (i1, j1) in enumerate(pairs)
            for i2, j2 in pairs[a + 1 :]
            if (i1 - i2) * (j1 - j2) < 0
        )
    return total


def _place_y(
    columns: list[list[str]],
    boxes: dict[str, Box],
    left: dict[str, list[str]],
    right: dict[str, list[str]],
) -> None:
    for col in columns:
        _pack(col, boxes, [0.0] * len(col))
    for it in range(_RELAX):
        order = range(len(columns)) if it % 2 == 0 else range(len(columns) - 1, -1, -1)
        for c in order:
            want = []
            for k in columns[c]:
                ys = [boxes[n].y for n in left[k] + right[k]]
                want.append(sum(ys) / len(ys) if ys else boxes[k].y)
            _pack(columns[c], boxes, want)


def _gap(a: Box, b: Box) -> float:
    return (a.h + b.h) / 2 + (_GAP_Y * 0.6 if a.w == 0 and b.w == 0 else _GAP_Y)


def _pack(col: list[str], boxes: dict[str, Box], want: list[float]) -> None:
    """Set y as close to ``want`` as the column order and minimum gaps allow (least squares)."""
    offsets = [0.0]
    for a, b in itertools.pairwise(col):
        offsets.append(offsets[-1] + _gap(boxes[a], boxes[b]))
    blocks: list[list[float]] = []  # [sum, count] of pooled targets
    for w, o in zip(want, offsets, strict=True):
        blocks.append([w - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    z = [s / n for s, n in blocks for _ in range(int(n))]
    for k, zi, o in zip(col, z, offsets, strict=True):
        boxes[k].y = zi + o


def _place_x(columns: list[list[str]], boxes: dict[str, Box]) -> float:
    x = 0.0
    for col in columns:
        w = max(boxes[k].w for k in col)
        for k in col:
            boxes[k].x = x + w / 2
            if k.startswith("d:"):  # a dummy becomes a straight lane across its column
                boxes[k].w = w
        x += w + _GAP_X
    return x - _GAP_X


def _ports(n: int, box: Box) -> list[float]:
    """n points spread along a side of ``box``, top to bottom."""
    if n == 1:
        return [box.y]
    span = min(box.h - 10, _PORT_GAP * (n - 1))
    return [box.y - span / 2 + span * i / (n - 1) for i in range(n)]


def _route(graph: Graph, chains: list[list[str]], boxes: dict[str, Box]) -> list[Route]:
    out_port: dict[int, float] = {}
    in_port: dict[int, float] = {}
    for v in graph.vertices:
        key, box = f"v:{v.id}", boxes[f"v:{v.id}"]
        outs = sorted(
            (i for i, ch in enumerate(chains) if ch[0] == key),
            key=lambda i: (boxes[chains[i][1]].y, i),
        )
        ins = sorted(
            (i for i, ch in enumerate(chains) if ch[-1] == key),
            key=lambda i: (boxes[chains[i][-2]].y, i),
        )
        out_port.update(zip(outs, _ports(len(outs), box), strict=True))
        in_port.update(zip(ins, _ports(len(ins), box), strict=True))
    routes = []
    for i, (e, chain) in enumerate(zip(graph.edges, chains, strict=True)):
        src, dst = boxes[chain[0]], boxes[chain[-1]]
        start = (src.x + src.w / 2, out_port[i])
        end = (dst.x - dst.w / 2, in_port[i])
        mids = []
        for k in chain[1:-1]:
            if k.startswith("d:"):
                d = boxes[k]
                mids += [(d.x - d.w / 2, d.y), (d.x + d.w / 2, d.y)] if d.w else [(d.x, d.y)]
        if e.label:
            op = boxes[chain[-2]]
            head = [start, *mids, (op.x - op.w / 2, op.y)]
            routes.append(Route(e, head, op, [(op.x + op.w / 2, op.y), end]))
        else:
            routes.append(Route(e, [start, *mids, end]))
    return routes
