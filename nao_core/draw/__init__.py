"""Cell drawings as SVG, for the dashboard and ``nao draw``: standard library only, no torch.

``draw_svg(space_name, arch)`` lays the cell out left to right as a layered DAG (see
``layout.py``) and returns SVG text with no external reference (no links, no web fonts, no
``<style>``). Every state is a ``<g class="node" data-node=ID data-kind=input|node|output>``
and every edge a ``<g class="edge" data-op=OP data-from=ID data-to=ID>`` inside one
``<g class="cell" data-cell=NAME>`` per panel, so a test can count them:

======================  ========================================  =============================
space                   nodes                                     edges
======================  ========================================  =============================
``cnn``, ``cnn-large``  2 cells × (h0, h1, h2..h6, out) = 16       per cell: 10 op edges + one
                                                                  ``concat`` edge per loose end
``rnn``                 x_t, h_t-1, s0..s11, h_t = 15             2 ``tanh`` (into s0) + 11
                                                                  activations + 11 ``mean``
``nb201``               n0..n3 = 4                                6 (``none`` ones dashed)
======================  ========================================  =============================
"""

from __future__ import annotations

import hashlib

from nao_core.draw.cells import cnn_graphs, nb201_graphs, rnn_graphs
from nao_core.draw.layout import Graph
from nao_core.draw.svg import document, render
from nao_core.search_space import create_search_space
from nao_core.search_space.base import Arch
from nao_core.search_space.cnn import CnnSpace
from nao_core.search_space.nb201 import Nb201Space
from nao_core.search_space.rnn import RnnSpace


def draw_svg(
    space_name: str, arch: str | Arch, *, title: str | None = None, standalone: bool = True
) -> str:
    """Draw one architecture of a search space.

    Args:
        space_name: A registered space (``list_search_spaces()``).
        arch: The architecture, or its text in any form the space's ``parse`` reads.
        title: A heading drawn above the cells; also the SVG's accessible ``<title>``.
        standalone: True: a complete SVG file (XML declaration, trailing newline), for
            ``nao draw -o cell.svg``. False: the bare ``<svg>`` element, to paste inline
            into an HTML page. Both have ``width``, ``height`` and ``viewBox``; inline, CSS
            ``max-width: 100%; height: auto`` scales the drawing down.

    Returns:
        The SVG text; the same arguments give the same bytes.

    Raises:
        UnknownName: If no space is registered as ``space_name``.
        InvalidArchitecture: If ``arch`` does not parse or does not belong to the space.
    """
    space = create_search_space(space_name)
    arch = space.parse(arch) if isinstance(arch, str) else arch
    space.validate(arch)
    text = space.to_str(arch)
    svg = render(
        _graphs(space, arch),
        title=title or f"{space_name}: {text}",
        heading=title,
        uid="nao-" + hashlib.sha256(f"{space_name}\n{text}\n{title}".encode()).hexdigest()[:10],
    )
    return document(svg) if standalone else svg


def _graphs(space: object, arch: Arch) -> list[Graph]:
    if isinstance(space, CnnSpace):
        return cnn_graphs(space, arch)
    if isinstance(space, RnnSpace):
        return rnn_graphs(arch)
    if isinstance(space, Nb201Space):
        return nb201_graphs(arch)
    raise NotImplementedError(f"no drawing for {type(space).__name__}")  # a new space


__all__ = ["draw_svg"]
