"""SVG text for laid-out cell graphs: panels stacked top to bottom, edges under vertices.

Styling is carried by presentation attributes only, never a ``<style>`` element: inline in
an HTML page a ``<style>`` would restyle the whole page. Marker ids carry a per-drawing
prefix so that several drawings can share one page.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from nao_core.draw.layout import (
    CAPTION_FONT,
    NODE_FONT,
    OP_FONT,
    Box,
    Graph,
    Route,
    Vertex,
    layout,
    split_subscripts,
    text_width,
)

SVG_NS = "http://www.w3.org/2000/svg"
FONT_FAMILY = "Helvetica, Arial, 'DejaVu Sans', 'Liberation Sans', sans-serif"
_MARGIN = 16.0
_TITLE_FONT = 14
_HEADING_FONT = 12
_INK = "#1f2937"
_VERTEX_COLOURS = {  # kind -> (fill, stroke)
    "input": ("#dbeafe", "#2563eb"),
    "node": ("#fef3c7", "#b45309"),
    "output": ("#dcfce7", "#15803d"),
}
_EDGE_STYLES = {  # style -> (stroke, extra attributes)
    "solid": ("#4b5563", {}),
    "muted": ("#9ca3af", {}),
    "none": ("#c4c8cf", {"stroke-dasharray": "4 3"}),
}


def num(v: float) -> str:
    """Short, stable number text: one decimal, no trailing ``.0``."""
    s = f"{v:.1f}"
    s = s[:-2] if s.endswith(".0") else s
    return "0" if s == "-0" else s


def render(graphs: Sequence[Graph], *, title: str, heading: str | None, uid: str) -> str:
    """One ``<svg>`` element (no XML declaration) drawing ``graphs`` one below the other."""
    layouts = [layout(g) for g in graphs]
    y = _MARGIN
    placed = []
    heading_baseline = y + _TITLE_FONT
    if heading:
        y = heading_baseline + 10
    for g, lay in zip(graphs, layouts, strict=True):
        y += _HEADING_FONT
        placed.append((g, lay, y))
        y += 8 + lay.height + 20
    height = y - 20 + _MARGIN
    width = (
        max(
            [lay.width for lay in layouts]
            + [text_width(heading or "", _TITLE_FONT) + 10]
            + [text_width(g.heading, _HEADING_FONT) for g in graphs]
        )
        + 2 * _MARGIN
    )
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NS,
            "width": num(width),
            "height": num(height),
            "viewBox": f"0 0 {num(width)} {num(height)}",
            "role": "img",
            "font-family": FONT_FAMILY,
            "font-size": str(NODE_FONT),
            "fill": _INK,
        },
    )
    ET.SubElement(svg, "title").text = title
    _markers(ET.SubElement(svg, "defs"), uid)
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "#ffffff"})
    if heading:
        _text(svg, heading, _MARGIN, heading_baseline, _TITLE_FONT, bold=True)
    for g, lay, top in placed:
        cell = ET.SubElement(svg, "g", {"class": "cell", "data-cell": g.cell})
        cell.text = cell.tail = "\n"
        _text(cell, g.heading, _MARGIN, top, _HEADING_FONT, bold=True)
        origin = (_MARGIN, top + 8)
        for route in lay.routes:
            _edge(cell, route, origin, uid)
        for v in g.vertices:
            _vertex(cell, v, lay.vertices[v.id], origin)
    return ET.tostring(svg, encoding="unicode")


def _markers(defs: ET.Element, uid: str) -> None:
    for style, (colour, _) in _EDGE_STYLES.items():
        marker = ET.SubElement(
            defs,
            "marker",
            {
                "id": f"{uid}-{style}",
                "viewBox": "0 0 10 10",
                "refX": "10",
                "refY": "5",
                "markerWidth": "7",
                "markerHeight": "7",
                "markerUnits": "userSpaceOnUse",
                "orient": "auto",
            },
        )
        ET.SubElement(marker, "path", {"d": "M0,1 L10,5 L0,9 z", "fill": colour})


def _text(
    parent: ET.Element,
    text: str,
    x: float,
    baseline: float,
    size: float,
    *,
    bold: bool = False,
    anchor: str = "start",
    colour: str | None = None,
) -> ET.Element:
    attrs = {"x": num(x), "y": num(baseline), "font-size": num(size)}
    if anchor != "start":
        attrs["text-anchor"] = anchor
    if bold:
        attrs["font-weight"] = "bold"
    if colour:
        attrs["fill"] = colour
    el = ET.SubElement(parent, "text", attrs)
    last: ET.Element | None = None
    for part, sub in split_subscripts(text):
        if sub:  # dy moves the baseline for the rest of the line: move it back after
            last = ET.SubElement(el, "tspan", {"dy": num(size * 0.3), "font-size": num(size * 0.8)})
            last.text = part
        elif last is None:
            el.text = (el.text or "") + part
        else:
            last = ET.SubElement(el, "tspan", {"dy": num(-size * 0.3)})
            last.text = part
    return el


def _group(parent: ET.Element, attrs: dict[str, str], tip: str) -> ET.Element:
    """A ``<g>`` on its own line, with ``tip`` as its hover text."""
    g = ET.SubElement(parent, "g", attrs)
    g.tail = "\n"
    if tip:
        ET.SubElement(g, "title").text = tip
    return g


def _rect(parent: ET.Element, b: Box, origin: tuple[float, float], attrs: dict[str, str]) -> None:
    x, y = b.x - b.w / 2 + origin[0], b.y - b.h / 2 + origin[1]
    box = {"x": num(x), "y": num(y), "width": num(b.w), "height": num(b.h)}
    ET.SubElement(parent, "rect", {**box, **attrs})


def _path(points: list[tuple[float, float]], dx: float, dy: float) -> str:
    """Cubic segments leaving and entering every point horizontally."""
    (x0, y0), *rest = [(x + dx, y + dy) for x, y in points]
    d = [f"M{num(x0)},{num(y0)}"]
    for x1, y1 in rest:
        if abs(y1 - y0) < 0.05:
            d.append(f"L{num(x1)},{num(y1)}")
        else:
            mx = (x0 + x1) / 2
            d.append(f"C{num(mx)},{num(y0)} {num(mx)},{num(y1)} {num(x1)},{num(y1)}")
        x0, y0 = x1, y1
    return " ".join(d)


def _edge(parent: ET.Element, route: Route, origin: tuple[float, float], uid: str) -> None:
    e = route.edge
    colour, extra = _EDGE_STYLES[e.style]
    g = _group(
        parent, {"class": "edge", "data-op": e.op, "data-from": e.src, "data-to": e.dst}, e.tip
    )
    stroke = {"fill": "none", "stroke": colour, "stroke-width": "1.3", **extra}
    dx, dy = origin
    arrow = {"marker-end": f"url(#{uid}-{e.style})"}
    ET.SubElement(
        g, "path", {"d": _path(route.head, dx, dy), **stroke, **({} if route.box else arrow)}
    )
    if route.box is None:
        return
    ET.SubElement(g, "path", {"d": _path(route.tail, dx, dy), **stroke, **arrow})
    b = route.box
    _rect(g, b, origin, {"rx": "3", "fill": "#ffffff", "stroke": colour, **extra})
    _text(
        g,
        e.label,
        b.x + dx,
        b.y + dy + OP_FONT * 0.35,
        OP_FONT,
        anchor="middle",
        colour="#6b7280" if e.style == "none" else None,
    )


def _vertex(parent: ET.Element, v: Vertex, b: Box, origin: tuple[float, float]) -> None:
    dx, dy = origin
    fill, stroke = _VERTEX_COLOURS[v.kind]
    g = _group(parent, {"class": "node", "data-node": v.id, "data-kind": v.kind}, v.tip)
    _rect(g, b, origin, {"rx": "6", "fill": fill, "stroke": stroke, "stroke-width": "1.3"})
    cx, cy = b.x + dx, b.y + dy
    if v.caption:
        _text(g, v.label, cx, cy - 1, NODE_FONT, anchor="middle", bold=True)
        _text(g, v.caption, cx, cy + 12, CAPTION_FONT, anchor="middle", colour="#4b5563")
    else:
        _text(g, v.label, cx, cy + NODE_FONT * 0.35, NODE_FONT, anchor="middle", bold=True)


def document(svg: str) -> str:
    """A standalone SVG file's text."""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{svg}\n'


__all__ = ["document", "render"]
