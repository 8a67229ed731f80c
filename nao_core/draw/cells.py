"""Each space's architecture as the graphs to draw: states are vertices, branches are edges.

* CNN micro cell (NAO-WS, nao-spec §1a/§1b): inputs h0 = c_{k-2}, h1 = c_{k-1}; node h2..h6
  sums two branches op(h_x) + op(h_y), one edge each, labelled with the op; the output c_k
  concatenates the loose ends (``loose_ends``: possibly h0/h1 too), one bare edge each.
* Recurrent cell (nao-spec §1c): x_t and h_{t-1} feed s0 (a tanh highway step over both);
  s_i = act(s_p) is one edge labelled with the activation; h_t is the mean of s1..s11 (the
  stand-alone model ``models/rnn.py``; the search supernet also averages s0), one bare edge
  each.
* NAS-Bench-201: nodes 0..3, six edges each labelled with its op; a ``none`` edge is drawn
  dashed and faint, not omitted, so that every cell has six edges.
"""

from __future__ import annotations

from nao_core.draw.layout import Edge, Graph, Vertex
from nao_core.search_space.cnn import Cell, CnnArch, CnnSpace, loose_ends
from nao_core.search_space.nb201 import EDGE_SOURCES, EDGE_TARGETS, NB201_OPS, Nb201Arch
from nao_core.search_space.rnn import ACTIVATIONS, RnnArch


def cnn_graphs(space: CnnSpace, arch: CnnArch) -> list[Graph]:
    return [
        _cnn_cell(space, arch.normal, "normal", "normal cell"),
        _cnn_cell(space, arch.reduction, "reduction", "reduction cell"),
    ]


def _cnn_cell(space: CnnSpace, cell: Cell, name: str, heading: str) -> Graph:
    vertices = [
        Vertex("h0", "h0", "input", "c_{k-2}", "h0: the output of cell k-2"),
        Vertex("h1", "h1", "input", "c_{k-1}", "h1: the output of cell k-1"),
    ]
    edges = []
    for j, node in enumerate(cell):
        h = f"h{j + 2}"
        terms = []
        for inp, op in node.branches():
            op_name = space.ops[op]
            terms.append(f"{op_name}(h{inp})")
            edges.append(Edge(f"h{inp}", h, op_name, op_name, tip=f"{op_name}: h{inp} → {h}"))
        vertices.append(Vertex(h, h, tip=f"{h} = {' + '.join(terms)}"))
    ends = [f"h{s}" for s in loose_ends(cell)]
    out_tip = f"c_k = concat({', '.join(ends)})"
    vertices.append(Vertex("out", "c_{k}", "output", "concat", out_tip))
    edges += [Edge(s, "out", "concat", style="muted", tip=f"{s} → concat") for s in ends]
    return Graph(name, heading, tuple(vertices), tuple(edges))


def rnn_graphs(arch: RnnArch) -> list[Graph]:
    vertices = [
        Vertex("x_t", "x_{t}", "input", tip="x_t: the embedded input word"),
        Vertex("h_t-1", "h_{t-1}", "input", tip="h_{t-1}: the previous hidden state"),
        Vertex("s0", "s0", caption="tanh", tip="s0 = tanh highway step over [x_t; h_{t-1}]"),
    ]
    edges = [
        Edge("x_t", "s0", "tanh", tip="x_t → s0"),
        Edge("h_t-1", "s0", "tanh", tip="h_{t-1} → s0"),
    ]
    for i, (p, a) in enumerate(arch.nodes, start=1):
        act = ACTIVATIONS[a]
        vertices.append(Vertex(f"s{i}", f"s{i}", tip=f"s{i} = {act} highway step over s{p}"))
        edges.append(Edge(f"s{p}", f"s{i}", act, act, tip=f"{act}: s{p} → s{i}"))
    n = len(arch.nodes)
    vertices.append(Vertex("h_t", "h_{t}", "output", "mean", f"h_t = mean(s1..s{n})"))
    edges += [
        Edge(f"s{i}", "h_t", "mean", style="muted", tip=f"s{i} → mean") for i in range(1, n + 1)
    ]
    return [Graph("recurrent", "recurrent cell", tuple(vertices), tuple(edges))]


def nb201_graphs(arch: Nb201Arch) -> list[Graph]:
    kinds = ("input", "node", "node", "output")
    captions = ("input", "", "", "output")
    tips = ["node 0: the cell input"] + [f"node {i} = the sum of its {i} edges" for i in (1, 2)]
    tips.append("node 3 = the sum of its 3 edges: the cell output")
    vertices = [Vertex(f"n{i}", str(i), kinds[i], captions[i], tips[i]) for i in range(4)]
    edges = []
    for op, s, t in zip(arch.ops, EDGE_SOURCES, EDGE_TARGETS, strict=True):
        name = NB201_OPS[op]
        style = "none" if name == "none" else "solid"
        edges.append(Edge(f"n{s}", f"n{t}", name, name, style, tip=f"{name}: {s} → {t}"))
    return [Graph("cell", "NAS-Bench-201 cell", tuple(vertices), tuple(edges))]
