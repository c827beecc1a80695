"""Render the wiki from the database into site_src/; ``build_site`` then builds site/ with mkdocs.

Two kinds of page, for speed at scale (10,000+ heads):

* **Navigation pages** (home, find, models, one page per model, metrics, one page per metric,
  one mosaic per metric, about, data) are Markdown written into ``site_src/`` (:mod:`.pages`)
  and built by mkdocs-material: a few hundred pages, with the theme's navigation and search.
  Their large SVG (model heatmaps, mosaics) is kept out of Markdown and put back after mkdocs
  (:mod:`.fragments`): Python-Markdown and the search indexer are slow on megabytes of raw SVG.
* **Head pages** are rendered straight to HTML by our own jinja2 template (:mod:`.heads`) into
  ``site_src/heads/<model>/L<layer>H<head>.html``; they use the theme's CSS and link back into
  the mkdocs pages. mkdocs-material spends tens of milliseconds per page (theme, navigation,
  search index), minutes for 10,000 pages; our template takes about a millisecond. mkdocs
  skips them and ``build_site`` (:mod:`.mkdocs_build`) hard-links them into ``site/``.

Head search is our own: ``heads-index.js`` (every model's shape and every labelled head's
labels, a few hundred KB for 10,000 heads) and a few lines of JS on ``find.html`` that parse
"gpt2-small 9.1", "L9H1" or "induction pythia". Putting 10,000 head pages into the theme's
lunr index would make every reader's browser download and index megabytes on its first search,
and lunr's tokenizer does not know that "9.1" and "L9H1" name the same head. The theme's own
search still covers the navigation pages (mosaics and SVG excluded).

Incremental (:mod:`.writer`): a file whose content is unchanged is not rewritten, and a head
page whose inputs are unchanged is not rendered at all. Head pages hold only model-local
content; what depends on all models (ranks and percentiles across models, similar heads in
other models) is in a small sidecar script per layer (``L<l>.x.js``). So adding a model renders
that model's head pages, rewrites the sidecars (one file per layer), and leaves every other
head page alone.

The entry points: ``render_markdown(ws)`` (returns ``RenderStats``) and ``build_site(ws)``
(raises ``SiteBuildError``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..workspace import Workspace
from .data import ModelStats, SiteData, load, model_stats
from .heads import CrossModel, render_head_pages
from .labels import model_labels
from .mkdocs_build import SiteBuildError, build_site
from .pages import render_pages
from .theme import ASSETS, code_hash, environment, site_theme
from .writer import RenderStats, Writer

__all__ = ["RenderStats", "SiteBuildError", "build_site", "render_markdown"]


def render_markdown(ws: Workspace) -> RenderStats:
    """Write site_src/ from the database: Markdown navigation pages, HTML head pages, the head
    search index, assets and downloads. Returns what changed."""
    start = time.perf_counter()
    stats = RenderStats()
    out = ws.site_src
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(out, stats)
    data = load(ws.data)
    try:
        _render_all(ws, data, writer)
    finally:
        data.close()
    writer.finish()
    stats.seconds = time.perf_counter() - start
    return stats


def _render_all(ws: Workspace, data: SiteData, writer: Writer) -> None:
    env = environment()
    theme = site_theme(ws)
    chrome = code_hash() + json.dumps(theme, sort_keys=True)
    metrics_by_id = {m["metric"]: m for m in data.metrics}

    # Within-model statistics and labels for every head (labels feed the search index, the
    # model pages and the "similar heads" lists).
    per_model: dict[str, ModelStats] = {}
    labels: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for m in data.models:
        st = model_stats(data.model_grids(m["model"]))
        per_model[m["model"]] = st
        for (layer, head), lab in model_labels(st.grids, st.rank, st.bottom, metrics_by_id).items():
            labels[(m["model"], layer, head)] = lab
    cross = CrossModel(data, {k: [l["name"] for l in v] for k, v in labels.items()})

    # head pages (and each head's JSON beside its page) first: the data page offers them in the build's archive
    render_head_pages(data, writer, env, per_model=per_model, labels=labels, cross=cross, chrome=chrome, theme=theme,
                      data_dir=ws.data)
    render_pages(ws, env, data, writer, per_model=per_model, labels=labels, n_heads=cross.n_heads, theme=theme, chrome=chrome)
    writer.write("heads-index.js", _search_index(data, labels, cross.slug))
    for asset in sorted(ASSETS.iterdir()):
        if asset.is_file():
            writer.write(f"assets/{asset.name}", asset.read_text(encoding="utf-8"))


def _search_index(data: SiteData, labels: dict[tuple[str, int, int], list[dict[str, Any]]], slugs: dict[str, str]) -> str:
    """``heads-index.js``: every model's shape and every labelled head's labels, for find.html."""
    label_vocab: dict[str, int] = {}
    per_slug: dict[str, dict[str, list[int]]] = {}
    for (name, layer, head), lab in labels.items():
        ids = [label_vocab.setdefault(l["name"], len(label_vocab)) for l in lab]
        per_slug.setdefault(slugs[name], {})[f"L{layer}H{head}"] = ids
    index = {"models": [{"m": m["model"], "s": m["slug"], "f": m.get("family") or "", "L": m["n_layers"], "H": m["n_heads"],
                         "p": m.get("n_params") or 0} for m in data.models],
             "labels": list(label_vocab), "h": per_slug}
    return "window.HW_HEADS=" + json.dumps(index, ensure_ascii=True, separators=(",", ":")) + ";\n"
