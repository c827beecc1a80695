"""Layer-by-head grids on the navigation pages (model pages and mosaics), light at any registry size.

A grid cell is a link with a tooltip (about 120 bytes), so a page that drew every grid inline
would grow with the registry: 35 metrics of a 48x25 model, or one metric over 67 models, is
megabytes. A page whose grids hold more than ``INLINE_CELLS`` cells in all draws none of them
inline: each grid is a placeholder of its final size, and its SVG sits in a small sidecar script
``heads/<model>/grid-<metric>.js`` (one per model and metric, shared by the model page and the
mosaic) that ``assets/hwgrids.js`` loads when the placeholder comes near the screen. A script,
not a fetch of JSON: it loads from ``file://`` too, and from any static host, and nothing leaves the site.

Mosaics of many models open on an overview: every model as a thumbnail (a palette PNG, a pixel
per head, drawn pixelated), grouped by family, small enough for the whole registry to fit a laptop
screen; a thumbnail links to that model's full-size grid further down the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
from markupsafe import escape

from .data import KIND_TITLES, ModelStats, SiteData
from .heatmap import NAN_COLOUR, Scale, _lut, _rgb, heatmap_svg, legend_svg, palette_png
from .text import human, prose
from .writer import Writer

INLINE_CELLS = 2000  # at most this many cells drawn inline on one page (about 250 KB); beyond, every grid loads lazily
OVERVIEW_MODELS = 6  # a mosaic of this many models or more opens on the overview
OVERVIEW_AREA = 120_000  # px^2 the overview's thumbnails may cover in all (a laptop screen is about 1440 x 900)


def cell_size(n_layers: int, n_heads: int) -> int:
    """The full-size cell in px: large for small models (a 2 x 4 grid is no speck), never under 13 px (readable and hoverable)."""
    if n_heads <= 4 and n_layers <= 8:
        return 32
    return 18 if n_heads <= 16 and n_layers <= 24 else 13


def _geometry(n_layers: int, n_heads: int) -> tuple[int, int]:
    """Width and height of ``heatmap_svg`` with axes at ``cell_size`` (the placeholder's size)."""
    cell = cell_size(n_layers, n_heads)
    return 34 + n_heads * cell + 4, 16 + n_layers * cell + 4


def grid_svg(values: np.ndarray, meta: dict[str, Any], m: dict[str, Any]) -> str:
    """One model's full-size grid for one metric: axes, a link and a tooltip per cell, the metric's shared scale."""
    return heatmap_svg(values, None, meta["title"], m["model"], scale=meta["scale"], cell=cell_size(m["n_layers"], m["n_heads"]),
                       tip_model=False, tip_label=False, href_base=f"../heads/{m['slug']}/")


def sidecar_rel(slug: str, mid: str) -> str:
    return f"heads/{slug}/grid-{mid}.js"


def _sidecar_key(values: np.ndarray, meta: dict[str, Any], m: dict[str, Any], chrome: str) -> str:
    h = hashlib.sha1((chrome + meta["title"] + repr(meta["scale"]) + m["slug"] + m["model"]).encode())
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_sidecar(writer: Writer, values: np.ndarray, meta: dict[str, Any], m: dict[str, Any], chrome: str) -> None:
    """Write (or keep, when its inputs are unchanged) the script that holds one grid's SVG."""
    rel = sidecar_rel(m["slug"], meta["metric"])
    key = _sidecar_key(values, meta, m, chrome)
    if writer.entry(rel).get("key") == key and (writer.root / rel).is_file():
        writer.keep_as_is(rel)
        return
    name = json.dumps(f"{m['slug']}/{meta['metric']}")
    svg = json.dumps(grid_svg(values, meta, m), ensure_ascii=True)
    writer.write(rel, f"(window.HW_GRIDS=window.HW_GRIDS||{{}})[{name}]={svg};\n", key=key)


def _grid(values: np.ndarray, meta: dict[str, Any], m: dict[str, Any], lazy: bool) -> str:
    """The grid itself (inline) or its placeholder (lazy): same size either way."""
    if not lazy:
        return grid_svg(values, meta, m)
    w, h = _geometry(m["n_layers"], m["n_heads"])
    mid, slug = meta["metric"], m["slug"]
    return (f'<div class="hw-lazy" style="width:{w}px;height:{h}px" data-grid="{escape(slug)}/{escape(mid)}" '
            f'data-src="../{escape(sidecar_rel(slug, mid))}"><span>{m["n_layers"]} × {m["n_heads"]} heads: the grid loads as it comes into view (with JavaScript)</span></div>')


def model_is_lazy(m: dict[str, Any], st: ModelStats) -> bool:
    return m["n_layers"] * m["n_heads"] * len(st.grids) > INLINE_CELLS


def mosaic_is_lazy(members: list[dict[str, Any]]) -> bool:
    return sum(m["n_layers"] * m["n_heads"] for m in members) > INLINE_CELLS


def maps_html(m: dict[str, Any], st: ModelStats, data: SiteData) -> str:
    """A model page's heatmaps: one per metric, grouped by kind, each on the metric's shared scale."""
    lazy = model_is_lazy(m, st)
    parts, kind = ['<div class="hw-maps">'], None
    for meta in data.metrics:
        g = st.grids.get(meta["metric"])
        if g is None:
            continue
        if meta["kind"] != kind:
            kind = meta["kind"]
            parts.append(f'<h3 class="hw-kind">{escape(KIND_TITLES.get(kind, kind))}</h3>')
        mid = meta["metric"]
        parts.append(f'<figure class="hw-map" id="map-{escape(mid)}"><figcaption><a href="../metrics/{mid}.html">{escape(meta["title"])}</a> · '
                     f'<a href="../mosaics/{mid}.html">all models</a></figcaption>' + _grid(g, meta, m, lazy)
                     + legend_svg(scale=meta["scale"], gid=f"g-{mid}") + "</figure>")
    parts.append("</div>")
    return "".join(parts)


def thumbnail_uri(values: np.ndarray, scale: Scale) -> str:
    """A grid as a palette PNG, a pixel per head (the scale's 255 steps, grey where missing), as a data URI."""
    lut = _lut(scale.kind)
    palette = b"".join(bytes(_rgb(lut[round(i * 255 / 254)])) for i in range(255)) + bytes(_rgb(NAN_COLOUR))
    v = np.asarray(values, dtype=float)
    if scale.kind == "diverging":
        t = 0.5 + 0.5 * v / scale.vmax if scale.vmax > 0 else np.full_like(v, 0.5)
    else:
        t = (v - scale.vmin) / (scale.vmax - scale.vmin) if scale.vmax > scale.vmin else np.zeros_like(v)
    levels = np.clip(np.rint(np.nan_to_num(t, nan=0.0) * 254), 0, 254).astype(np.uint8)
    levels[~np.isfinite(v)] = 255
    return "data:image/png;base64," + base64.b64encode(palette_png(levels, palette)).decode("ascii")


def overview_px(members: list[dict[str, Any]]) -> int:
    """Pixels per head in the overview: as large as lets every thumbnail fit ``OVERVIEW_AREA`` (2 to 8)."""
    cells = sum(m["n_layers"] * m["n_heads"] for m in members) or 1
    return int(min(8, max(2, (OVERVIEW_AREA / cells) ** 0.5)))


def families_of(members: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for m in members:
        fam = str(m.get("family") or "other")
        if not out or out[-1][0] != fam:
            out.append((fam, []))
        out[-1][1].append(m)
    return out


def _anchor(prefix: str, name: str) -> str:
    return prefix + "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def mosaic_overview_html(meta: dict[str, Any], members: list[dict[str, Any]], data: SiteData) -> str:
    """Every model as a thumbnail linking to its full-size grid below, grouped by family; empty for a few models."""
    if len(members) < OVERVIEW_MODELS and not mosaic_is_lazy(members):
        return ""
    px = overview_px(members)
    parts = [f'<p class="hw-overview-note">Overview of the {len(members)} models at {px} px per head: click a model for its full-size '
             'grid below (a link and a value per head), or a family for its section.</p>', f'<div class="hw-overview" data-px="{px}">']
    for fam, models in families_of(members):
        parts.append(f'<div class="hw-ov-family"><a class="hw-ov-name" href="#{_anchor("f-", fam)}">{prose(fam)}</a><div class="hw-ov-models">')
        for m in models:
            uri = thumbnail_uri(data.grids[(m["model"], meta["metric"])], meta["scale"])
            tip = f'{m["model"]}: {m["n_layers"]} layers × {m["n_heads"]} heads; click for the full-size grid'
            parts.append(f'<a class="hw-thumb" href="#{_anchor("m-", m["slug"])}" title="{escape(tip)}" style="--w:{max(m["n_heads"] * px, 32)}px">'
                         f'<img alt="{escape(m["model"])}" '
                         f'width="{m["n_heads"] * px}" height="{m["n_layers"] * px}" src="{uri}"><span>{prose(m["model"])}</span></a>')
        parts.append("</div></div>")
    parts.append("</div>")
    return "".join(parts)


def mosaic_html(meta: dict[str, Any], members: list[dict[str, Any]], data: SiteData) -> str:
    """Every model's full-size grid for one metric, a section per family (in model order: family, then size)."""
    lazy = mosaic_is_lazy(members)
    parts = ['<div class="hw-mosaic">']
    for fam, models in families_of(members):
        parts.append(f'<h2 id="{_anchor("f-", fam)}">{prose(fam)}</h2><div class="hw-grid">')
        for m in models:
            g = data.grids[(m["model"], meta["metric"])]
            parts.append(f'<figure id="{_anchor("m-", m["slug"])}"><figcaption><a href="../models/{m["slug"]}.html">{prose(m["model"])}</a> '
                         f'<small>{m["n_layers"]}×{m["n_heads"]} · {human(m.get("n_params"))}</small></figcaption>{_grid(g, meta, m, lazy)}</figure>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def lazy_pairs(data: SiteData, per_model: dict[str, ModelStats]) -> list[tuple[str, str]]:
    """The (model, metric) grids some page loads lazily: each gets a sidecar script."""
    out: set[tuple[str, str]] = set()
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for m in data.models:
        st = per_model[m["model"]]
        if model_is_lazy(m, st):
            out.update((m["model"], mid) for mid in st.grids)
        for mid in st.grids:
            by_metric.setdefault(mid, []).append(m)
    for mid, members in by_metric.items():
        if mosaic_is_lazy(members):
            out.update((m["model"], mid) for m in members)
    return sorted(out)


def write_sidecars(writer: Writer, data: SiteData, per_model: dict[str, ModelStats], chrome: str) -> int:
    """Every sidecar script the lazy pages need; returns how many."""
    models = {m["model"]: m for m in data.models}
    pairs = lazy_pairs(data, per_model)
    for model, mid in pairs:
        write_sidecar(writer, data.grids[(model, mid)], data.metric(mid), models[model], chrome)
    return len(pairs)
