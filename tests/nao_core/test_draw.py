"""Cell drawings: what the SVG contains is what the architecture says, and it reads cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from nao_core.draw import draw_svg
from nao_core.errors import InvalidArchitecture, UnknownName
from nao_core.search_space import create_search_space, list_search_spaces
from nao_core.search_space.cnn import CnnArch, loose_ends
from nao_core.search_space.named import get_named_arch, list_named_archs
from nao_core.search_space.nb201 import EDGE_SOURCES, EDGE_TARGETS, NB201_OPS, Nb201Arch
from nao_core.search_space.rnn import ACTIVATIONS, RnnArch

NS = "http://www.w3.org/2000/svg"
SAMPLED = [(name, seed) for name in list_search_spaces() for seed in range(4)]


def sampled(name: str, seed: int) -> object:
    return create_search_space(name).sample(np.random.default_rng(seed))


def expected(name: str, arch: object) -> tuple[int, Counter[tuple[str, str, str]]]:
    """Node count and the multiset of (from, to, op) edges the architecture implies."""
    edges: Counter[tuple[str, str, str]] = Counter()
    if isinstance(arch, CnnArch):
        ops = create_search_space(name).ops
        for cell in arch.cells():
            for j, node in enumerate(cell):
                for inp, op in node.branches():
                    edges[(f"h{inp}", f"h{j + 2}", ops[op])] += 1
            for s in loose_ends(cell):
                edges[(f"h{s}", "out", "concat")] += 1
        return 2 * (2 + 5 + 1), edges
    if isinstance(arch, RnnArch):
        edges[("x_t", "s0", "tanh")] += 1
        edges[("h_t-1", "s0", "tanh")] += 1
        for i, (p, a) in enumerate(arch.nodes, start=1):
            edges[(f"s{p}", f"s{i}", ACTIVATIONS[a])] += 1
            edges[(f"s{i}", "h_t", "mean")] += 1
        return 2 + 12 + 1, edges
    assert isinstance(arch, Nb201Arch)
    for op, s, t in zip(arch.ops, EDGE_SOURCES, EDGE_TARGETS, strict=True):
        edges[(f"n{s}", f"n{t}", NB201_OPS[op])] += 1
    return 4, edges


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{{{NS}}}g") if g.get("class") == cls]


def check_drawing(name: str, arch: object) -> None:
    svg = draw_svg(name, arch)
    root = ET.fromstring(svg.split("\n", 1)[1])  # after the XML declaration
    assert root.tag == f"{{{NS}}}svg"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    n_nodes, edges = expected(name, arch)
    assert len(groups(root, "node")) == n_nodes
    drawn = Counter(
        (g.get("data-from"), g.get("data-to"), g.get("data-op")) for g in groups(root, "edge")
    )
    assert drawn == edges
    assert "http" not in svg.replace(NS, "")
    assert "<style" not in svg
    assert "href" not in svg
    defined = {m.get("id") for m in root.iter(f"{{{NS}}}marker")}
    assert set(re.findall(r"url\(#([^)]+)\)", svg)) <= defined
    check_no_overlap(root)


def check_no_overlap(root: ET.Element) -> None:
    """Node boxes and op boxes stay apart and inside the canvas."""
    width, height = float(root.get("width")), float(root.get("height"))
    for cell in groups(root, "cell"):
        rects = []
        for g in cell.iter(f"{{{NS}}}g"):
            for r in g.findall(f"{{{NS}}}rect"):
                x, y = float(r.get("x")), float(r.get("y"))
                w, h = float(r.get("width")), float(r.get("height"))
                assert x >= 0
                assert y >= 0
                assert x + w <= width
                assert y + h <= height
                rects.append((x, y, x + w, y + h))
        for i, a in enumerate(rects):
            for b in rects[i + 1 :]:
                apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                assert apart, (a, b)


@pytest.mark.parametrize(("name", "seed"), SAMPLED)
def test_sampled_architectures(name: str, seed: int) -> None:
    check_drawing(name, sampled(name, seed))


@pytest.mark.parametrize("arch_name", list_named_archs())
def test_named_architectures(arch_name: str) -> None:
    name, arch = get_named_arch(arch_name)
    check_drawing(name, arch)


@pytest.mark.parametrize("name", list_search_spaces())
def test_text_and_arch_give_the_same_drawing_every_time(name: str) -> None:
    space = create_search_space(name)
    arch = sampled(name, 7)
    svg = draw_svg(name, arch, title="T")
    assert draw_svg(name, space.to_str(arch), title="T") == svg
    assert draw_svg(name, arch, title="T") == svg
    inline = draw_svg(name, arch, title="T", standalone=False)
    assert svg == f'<?xml version="1.0" encoding="UTF-8"?>\n{inline}\n'
    assert inline.startswith("<svg ")


def test_every_op_appears_on_an_edge() -> None:
    for name in ("cnn", "cnn-large"):
        space = create_search_space(name)
        drawn = set()
        for seed in range(30):
            root = ET.fromstring(draw_svg(name, sampled(name, seed), standalone=False))
            drawn |= {g.get("data-op") for g in groups(root, "edge")}
        assert set(space.ops) <= drawn


def test_nb201_none_edges_are_dashed_and_kept() -> None:
    svg = draw_svg("nb201", "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|")
    root = ET.fromstring(svg.split("\n", 1)[1])
    edges = groups(root, "edge")
    assert [g.get("data-op") for g in edges].count("none") == 4
    for g in edges:
        dashed = any(p.get("stroke-dasharray") for p in g.iter(f"{{{NS}}}path"))
        assert dashed == (g.get("data-op") == "none")


def test_text_is_escaped_and_ids_differ_between_drawings() -> None:
    a = draw_svg("nb201", sampled("nb201", 0), title='<b>&"x"</b>', standalone=False)
    root = ET.fromstring(a)
    assert root.find(f"{{{NS}}}title").text == '<b>&"x"</b>'
    assert "<b>" not in a
    b = draw_svg("nb201", sampled("nb201", 1), standalone=False)
    ids = [{m.get("id") for m in ET.fromstring(s).iter(f"{{{NS}}}marker")} for s in (a, b)]
    assert not ids[0] & ids[1]  # two drawings can share one HTML page


def test_bad_input_raises() -> None:
    with pytest.raises(UnknownName):
        draw_svg("no-such-space", "0 1")
    with pytest.raises(InvalidArchitecture):
        draw_svg("cnn", "normal: nonsense")
    with pytest.raises(InvalidArchitecture):
        draw_svg("cnn", " ".join(["0"] * 39))
    with pytest.raises(InvalidArchitecture):
        draw_svg("rnn", sampled("cnn", 0))
    with pytest.raises(InvalidArchitecture):
        draw_svg("nb201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(InvalidArchitecture):
        draw_svg("rnn", RnnArch(((1, 0),) * 11))


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "from nao_core.draw import draw_svg\n"
        "draw_svg('cnn', '0 1 0 4 2 2 1 3 1 0 2 0 2 3 1 3 1 2 0 4 "
        "1 1 0 3 2 3 2 3 1 0 0 1 0 4 2 4 2 3 2 3')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
