"""Inline SVG for the site: layer-by-head heatmaps (model pages, mosaics), attention patterns
(head pages), histograms (metric pages), and their colour scales.

Every SVG is one line with no blank lines, so Markdown passes it through as raw HTML. Text in
them that can come from a model (model names, tokens) is escaped here; tokens also go through
``tokens.visible`` so control and bidi characters show as marks.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from markupsafe import escape

from . import tokens as tok

# viridis, sampled at 9 stops
_VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]
# diverging red (negative) - white - blue (positive), as in the RdBu plots of the interpretability literature
_RDBU = ["#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac"]
NAN_COLOUR = "#cccccc"


def _rgb(h: str) -> list[int]:
    return [int(h[k:k + 2], 16) for k in (1, 3, 5)]


_VIRIDIS_RGB = [_rgb(c) for c in _VIRIDIS]
_RDBU_RGB = [_rgb(c) for c in _RDBU]


def _interp(stops: list[list[int]], t: float) -> str:
    pos = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    frac = pos - i
    a, b = stops[i], stops[i + 1]
    return "#" + "".join(f"{round(x + (y - x) * frac):02x}" for x, y in zip(a, b))


_LUTS: dict[str, list[str]] = {}


def _lut(kind: str) -> list[str]:
    if kind not in _LUTS:
        stops = _RDBU_RGB if kind == "diverging" else _VIRIDIS_RGB
        _LUTS[kind] = [_interp(stops, i / 255) for i in range(256)]
    return _LUTS[kind]


def colour(value: float, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """Viridis colour for a value, linearly between stops."""
    if value is None or not np.isfinite(value):
        return NAN_COLOUR
    t = 0.0 if vmax <= vmin else (value - vmin) / (vmax - vmin)
    return _interp(_VIRIDIS_RGB, t)


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= x."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    e = math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**e >= x * (1 - 1e-9):
            return float(m * 10**e)
    return float(10 ** (e + 1))


@dataclass(frozen=True)
class Scale:
    """A colour scale shared by every grid of one metric (model pages and the mosaic)."""

    kind: str  # "sequential" (viridis, vmin..vmax) or "diverging" (red - white - blue around 0)
    vmin: float
    vmax: float

    def colour(self, value: float) -> str:
        if value is None or not np.isfinite(value):
            return NAN_COLOUR
        if self.kind == "diverging":
            return _interp(_RDBU_RGB, 0.5 + 0.5 * value / self.vmax if self.vmax > 0 else 0.5)
        return colour(value, self.vmin, self.vmax)

    def colours(self, values: np.ndarray) -> list[str]:
        """Colours for many values at once (a 256-step lookup table)."""
        lut = _lut(self.kind)
        v = np.asarray(values, dtype=float).ravel()
        if self.kind == "diverging":
            t = 0.5 + 0.5 * v / self.vmax if self.vmax > 0 else np.full_like(v, 0.5)
        else:
            t = (v - self.vmin) / (self.vmax - self.vmin) if self.vmax > self.vmin else np.zeros_like(v)
        idx = np.clip(np.rint(np.nan_to_num(t, nan=0.0) * 255), 0, 255).astype(int)
        return [lut[i] if ok else NAN_COLOUR for i, ok in zip(idx.tolist(), np.isfinite(v).tolist())]

    def describe(self) -> str:
        if self.kind == "diverging":
            return f"diverging scale from {self.vmin:g} (red) through 0 (white) to {self.vmax:g} (blue); values beyond are clipped"
        return f"sequential scale from {self.vmin:g} to {self.vmax:g}{'; values beyond are clipped' if self.vmax != 1 or self.vmin != 0 else ''}"


def scale_for(values: np.ndarray) -> Scale:
    """Choose one scale for a metric from all of its values across all models.

    Values in [0, 1] (attention-pattern scores, fractions) get viridis on [0, 1]. Signed
    values (OV eigenvalue scores, direct logit attribution, ablation effects) get a diverging
    scale symmetric around 0, up to a round number near the 99.5th percentile of |value| so that
    one outlier does not wash out every other head. Other positive values: viridis from 0.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Scale("sequential", 0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    if lo >= -1e-9 and hi <= 1 + 1e-9:
        return Scale("sequential", 0.0, 1.0)
    if lo < -1e-9:
        m = nice_ceiling(float(np.quantile(np.abs(v), 0.995)))
        return Scale("diverging", -m, m)
    return Scale("sequential", 0.0, nice_ceiling(float(np.quantile(v, 0.995))))


def fmt(v: float | None, digits: int = 3) -> str:
    """A number as what it is: an integer (a seed, a count) as an integer, a measurement with ``digits`` decimals."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}"


def fmt_many(values: np.ndarray, digits: int = 3) -> list[str]:
    return [f"{x:.{digits}f}" if x == x and abs(x) != float("inf") else "n/a" for x in np.asarray(values, dtype=float).ravel().tolist()]


def heatmap_svg(values: np.ndarray, href: Callable[[int, int], str], label: str, model: str,
                vmin: float = 0.0, vmax: float = 1.0, cell: int = 18, scale: Scale | None = None,
                axes: bool = True, tip_model: bool = True, tip_label: bool = True, href_base: str | None = None) -> str:
    """A layer-by-head grid: rows are layers (top = layer 0), columns are heads. Each cell links
    to its head page and carries its value as a tooltip (``<title>``). ``href_base`` (a folder URL
    ending in "/") is a faster way to say ``href = base + "L{l}H{h}.html"``."""
    scale = scale or Scale("sequential", vmin, vmax)
    n_layers, n_heads = values.shape
    left, top = (34, 16) if axes else (0, 0)
    width, height = left + n_heads * cell + (4 if axes else 0), top + n_layers * cell + (4 if axes else 0)
    m = escape(model)
    lab = escape(label)
    parts = [f'<svg class="hw-heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{lab} by layer and head for {m}">']
    if axes:
        step = 1 if n_heads <= 16 else 4
        for h in range(0, n_heads, step):
            parts.append(f'<text x="{left + h * cell + cell / 2:g}" y="11" font-size="9" text-anchor="middle">{h}</text>')
    gap = 1 if cell >= 6 else 0
    size = cell - gap
    lstep = 1 if n_layers <= 24 or cell >= 12 else 4
    prefix = f"{m} " if tip_model else ""
    tip = f" {lab}:" if tip_label else ""
    colours = scale.colours(values)
    texts = fmt_many(values)
    base = escape(href_base) if href_base is not None else None
    i = 0
    for layer in range(n_layers):
        y = top + layer * cell
        if axes and layer % lstep == 0:
            parts.append(f'<text x="{left - 4}" y="{y + cell * 0.7:g}" font-size="9" text-anchor="end">L{layer}</text>')
        for h in range(n_heads):
            url = f"{base}L{layer}H{h}.html" if base is not None else escape(href(layer, h))
            parts.append(f'<a href="{url}"><rect x="{left + h * cell}" y="{y}" width="{size}" height="{size}" '
                         f'fill="{colours[i]}"><title>{prefix}L{layer}H{h}{tip} {texts[i]}</title></rect></a>')
            i += 1
    parts.append("</svg>")
    return "".join(parts)


def legend_svg(vmin: float = 0.0, vmax: float = 1.0, width: int = 160, scale: Scale | None = None, gid: str = "hwg") -> str:
    """A colour bar with its end values (and 0 in the middle for a diverging scale)."""
    scale = scale or Scale("sequential", vmin, vmax)
    stops_list = _RDBU if scale.kind == "diverging" else _VIRIDIS
    stops = "".join(f'<stop offset="{i / (len(stops_list) - 1):.3f}" stop-color="{c}"/>' for i, c in enumerate(stops_list))
    mid = f'<text x="{22 + width / 2:g}" y="26" font-size="10" text-anchor="middle">0</text>' if scale.kind == "diverging" else ""
    return (f'<svg class="hw-legend" xmlns="http://www.w3.org/2000/svg" width="{width + 70}" height="30" role="img" '
            f'aria-label="colour scale from {scale.vmin:g} to {scale.vmax:g}">'
            f'<defs><linearGradient id="{gid}">{stops}</linearGradient></defs>'
            f'<text x="18" y="13" font-size="10" text-anchor="end">{scale.vmin:g}</text><rect x="22" y="3" width="{width}" height="12" fill="url(#{gid})"/>'
            f'<text x="{width + 26}" y="13" font-size="10">{scale.vmax:g}</text>{mid}'
            f'<rect x="{width + 50}" y="3" width="12" height="12" fill="{NAN_COLOUR}"><title>not applicable / missing</title></rect></svg>')


ATTN_MAX_TOKENS = 40
ATTN_CELL, ATTN_LEFT, ATTN_TOP = 14, 96, 96


@dataclass(frozen=True)
class AttentionAxes:
    """What every head of a model shares on one prompt: the token labels (rendered once)."""

    n: int
    opening: str
    labels: str


def attention_axes(tokens: list[str], title: str) -> AttentionAxes:
    n = min(len(tokens), ATTN_MAX_TOKENS)
    cell, left, top = ATTN_CELL, ATTN_LEFT, ATTN_TOP
    size = n * cell
    width, height = left + size + 4, top + size + 4
    toks_attr = escape(json.dumps([tok.visible(t, 40) for t in tokens[:n]], ensure_ascii=False))
    opening = (f'<svg class="hw-attn" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'role="img" aria-label="attention pattern on {escape(title)}" data-n="{n}" data-cell="{cell}" data-left="{left}" data-top="{top}" '
               f'data-t="{toks_attr}"')
    labels = [tok.html(t, 12) for t in tokens[:n]]
    # query labels down the left; key labels along the top, written at -60 degrees: inside a group
    # rotated by -60 degrees, the point x along the top edge is at (x / 2, x * sin 60)
    parts = ['<g text-anchor="end">']
    parts += [f'<text x="{left - 4}" y="{top + i * cell + cell * 0.72:g}">{lab}</text>' for i, lab in enumerate(labels)]
    parts.append(f'</g><g transform="translate({left},{top - 4}) rotate(-60)">')
    parts += [f'<text x="{(i + 0.45) * cell / 2:.1f}" y="{(i + 0.45) * cell * 0.866:.1f}">{lab}</text>' for i, lab in enumerate(labels)]
    parts.append("</g>")
    parts.append(f'<g transform="translate({left},{top}) scale({cell})"><rect x="-0.05" y="-0.05" width="{n + 0.1:g}" height="{n + 0.1:g}" fill="none" stroke="#ddd" stroke-width="0.05"/>')
    return AttentionAxes(n, opening, "".join(parts))


ATTN_LEVELS = 21  # attention drawn in steps of 0.05 (exact values are in data-v)


def _attn_palette() -> bytes:
    lo, hi = _rgb("#fafafa"), _rgb("#1f4e9c")
    return b"".join(bytes(round(a + (b - a) * i / (ATTN_LEVELS - 1)) for a, b in zip(lo, hi)) for i in range(ATTN_LEVELS))


_PALETTE = _attn_palette()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def palette_png(levels: np.ndarray, palette: bytes = _PALETTE) -> bytes:
    """An 8-bit palette PNG of a small 2-D array of palette indices (one pixel per cell)."""
    h, w = levels.shape
    raw = np.zeros((h, w + 1), dtype=np.uint8)  # each row starts with filter type 0
    raw[:, 1:] = levels
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + _png_chunk(b"PLTE", palette) + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def attention_svg(tokens: list[str] | AttentionAxes, pattern: np.ndarray, title: str = "") -> str:
    """One head's attention pattern on a short prompt: rows are queries, columns are keys, both
    labelled with their tokens. The cells are one small palette PNG (a pixel per cell, white to
    blue in steps of 0.05, drawn pixelated), which keeps a page with five prompts well under
    50 KB and is fast to make; the exact values ride along in ``data-v`` (hundredths as bytes, row-major, base64)
    for the hover read-out in headwiki.js."""
    axes = tokens if isinstance(tokens, AttentionAxes) else attention_axes(tokens, title)
    n = min(axes.n, pattern.shape[0])
    p = np.asarray(pattern, dtype=np.float32)[:n, :n]
    p = np.clip(np.nan_to_num(p, nan=0.0) if not np.isfinite(p).all() else p, 0.0, 1.0)
    hundredths = base64.b64encode((p * 100 + 0.5).astype(np.uint8).tobytes()).decode("ascii")
    levels = (p * (ATTN_LEVELS - 1) + 0.5).astype(np.uint8)
    png = base64.b64encode(palette_png(levels)).decode("ascii")
    return "".join([axes.opening, ' data-v="', hundredths, '">', axes.labels,
                    f'<image width="{n}" height="{n}" preserveAspectRatio="none" style="image-rendering:pixelated" '
                    f'href="data:image/png;base64,{png}"/></g></svg>'])


def histogram_svg(values: np.ndarray, scale: Scale, bins: int = 40, width: int = 480, height: int = 120, label: str = "") -> str:
    """Distribution of one metric over every head of every model, bars coloured by the metric's scale."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return ""
    lo, hi = (scale.vmin, scale.vmax)
    lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    if hi <= lo:
        hi = lo + 1
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    left, bottom = 40, 18
    plot_w, plot_h = width - left - 8, height - bottom - 6
    bw = plot_w / bins
    parts = [f'<svg class="hw-hist" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="distribution of {escape(label)} over all heads">']
    for i, c in enumerate(counts.tolist()):
        if not c:
            continue
        # log-scaled bar height: most heads sit near 0, the interesting ones are few
        hgt = plot_h * math.log1p(c) / math.log1p(top)
        mid = (edges[i] + edges[i + 1]) / 2
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{6 + plot_h - hgt:.1f}" width="{max(bw - 1, 1):.1f}" height="{hgt:.1f}" '
                     f'fill="{scale.colour(mid)}"><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c} head{"s" if c != 1 else ""}</title></rect>')
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="10">{lo:g}</text>'
                 f'<text x="{width - 8}" y="{height - 4}" font-size="10" text-anchor="end">{hi:g}</text>'
                 f'<text x="{left - 4}" y="14" font-size="10" text-anchor="end">{top}</text>'
                 + (f'<text x="{left - 4}" y="{6 + plot_h}" font-size="10" text-anchor="end">1</text>' if top > 1 else "")
                 + '</svg>')
    return "".join(parts)
