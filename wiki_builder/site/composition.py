"""Composition on the pages: a head's strongest readers and writers (head pages) and a layered graph of a
model's strongest links (model pages), both from the ``composition`` table (one row per ordered pair of heads
in different layers and kind; ``value`` is the score minus the random-matrix baseline)."""

from __future__ import annotations

from typing import Any

from markupsafe import escape

TOP_PER_HEAD = 5
GRAPH_EDGES = 24
KIND_NAMES = {"q": "Q", "k": "K", "v": "V"}
KIND_COLOURS = {"q": "#1f77b4", "k": "#d62728", "v": "#2ca02c"}

Link = tuple[int, int, str, float]  # (layer, head, kind, value)


def has_composition(data: Any, model: str) -> bool:
    if "composition" not in data.tables or data.con is None:
        return False
    return bool(data.con.execute("SELECT count(*) FROM composition WHERE model = ?", [model]).fetchone()[0])


def head_links(data: Any, model: str, k: int = TOP_PER_HEAD) -> dict[tuple[int, int], dict[str, list[Link]]]:
    """Per head: the ``k`` strongest heads it reads from (``from``) and that read from it (``to``), any kind."""
    out: dict[tuple[int, int], dict[str, list[Link]]] = {}
    if "composition" not in data.tables or data.con is None:
        return out
    for side, me, other in (("from", "dst", "src"), ("to", "src", "dst")):
        # max_by(..., k): a top-k per head in one hash aggregation (a window over millions of pairs sorts them all)
        rows = data.con.execute(
            f"SELECT {me}_layer, {me}_head, max_by(struct_pack(l := {other}_layer, h := {other}_head, k := kind, v := value), value, ?) "
            f"FROM composition WHERE model = ? GROUP BY ALL", [k, model]).fetchall()
        for ml, mh, top in rows:
            links = sorted(((int(t["l"]), int(t["h"]), str(t["k"]), float(t["v"])) for t in top), key=lambda x: (-x[3], x[0], x[1], x[2]))
            out.setdefault((int(ml), int(mh)), {"from": [], "to": []})[side] = links
    return out


def links_html(links: dict[str, list[Link]] | None) -> str:
    """The head page's two lists, each head linked to its page (same folder)."""
    if not links:
        return ""

    def items(rows: list[Link]) -> str:
        if not rows:
            return "<li>none: no head in another layer on this side</li>"
        return "".join(f'<li><a href="L{l}H{h}.html">L{l}H{h}</a> <small>{KIND_NAMES.get(kind, escape(kind))}-composition</small> '
                       f'{value:+.3f}</li>' for l, h, kind, value in rows)

    return (f'<div class="hw-comp"><div><h3>Reads from</h3><ol>{items(links.get("from", []))}</ol></div>'
            f'<div><h3>Read by</h3><ol>{items(links.get("to", []))}</ol></div></div>')


def strongest_edges(data: Any, model: str, n: int = GRAPH_EDGES) -> list[tuple[int, int, int, int, str, float]]:
    if "composition" not in data.tables or data.con is None:
        return []
    rows = data.con.execute("SELECT src_layer, src_head, dst_layer, dst_head, kind, value FROM composition WHERE model = ? AND value > 0 "
                            "ORDER BY value DESC, src_layer, src_head, dst_layer, dst_head, kind LIMIT ?", [model, n]).fetchall()
    return [(int(a), int(b), int(c), int(d), str(kind), float(v)) for a, b, c, d, kind, v in rows]


def graph_svg(edges: list[tuple[int, int, int, int, str, float]], n_layers: int, n_heads: int, slug: str) -> str:
    """A layered graph of the strongest compositions (above the baseline): layer 0 at the top, heads left to right; only the heads
    on an edge are drawn, each a link to its page; edge colour is the kind, width the value."""
    if not edges:
        return ""
    gap_x = max(16.0, min(48.0, 640.0 / max(n_heads, 1)))
    gap_y = 56.0
    left, top = 44.0, 18.0
    width = left + gap_x * n_heads + 12
    height = top + gap_y * (n_layers - 1) + 24

    def pos(layer: int, head: int) -> tuple[float, float]:
        return left + gap_x * (head + 0.5), top + gap_y * layer

    vmax = max(v for *_, v in edges) or 1.0
    parts = [f'<svg class="hw-comp-graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="strongest compositions between heads">']
    layers = sorted({e[0] for e in edges} | {e[2] for e in edges})
    for layer in layers:
        y = top + gap_y * layer
        parts.append(f'<text x="4" y="{y + 4:.0f}" font-size="11">L{layer}</text>')
    for sl, sh, dl, dh, kind, v in edges:
        (x1, y1), (x2, y2) = pos(sl, sh), pos(dl, dh)
        w = 0.8 + 3.2 * max(v, 0.0) / vmax
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{KIND_COLOURS.get(kind, "#777")}" '
                     f'stroke-width="{w:.1f}" stroke-opacity="0.7"><title>L{sl}H{sh} → L{dl}H{dh}: '
                     f'{KIND_NAMES.get(kind, escape(kind))}-composition {v:+.3f}</title></line>')
    nodes = sorted({(e[0], e[1]) for e in edges} | {(e[2], e[3]) for e in edges})
    for layer, head in nodes:
        x, y = pos(layer, head)
        parts.append(f'<a href="../heads/{escape(slug)}/L{layer}H{head}.html"><circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#fff" '
                     f'stroke="#333"><title>L{layer}H{head}</title></circle><text x="{x:.1f}" y="{y + 17:.1f}" font-size="9" '
                     f'text-anchor="middle">{head}</text></a>')
    parts.append("</svg>")
    legend = " ".join(f'<span style="color:{KIND_COLOURS[k]}">━ {KIND_NAMES[k]}</span>' for k in ("q", "k", "v"))
    return "".join(parts) + f'<p class="hw-comp-legend">{legend}</p>'
