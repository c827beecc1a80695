"""The navigation pages: Markdown for mkdocs (home, find, models, one page per model, metrics, one
page per metric, one mosaic per metric, about, data).

Their large SVG (model heatmaps, mosaics) goes through :class:`.fragments.Fragments`: kept out of
the Markdown, re-made only when its inputs change, and put back after mkdocs.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment
from markupsafe import Markup

from ..store.db import db_path
from ..store.parquet import score_files
from ..workspace import Workspace
from .composition import GRAPH_EDGES, graph_svg, strongest_edges
from .data import ModelStats, SiteData
from .examples import write_archive
from .fragments import Fragments
from .grids import maps_html, mosaic_html, mosaic_overview_html, write_sidecars
from .heatmap import histogram_svg, legend_svg
from .home import home_tables
from .labels import task_name
from .queries import examples
from .query_page import query_context
from .theme import TEMPLATES
from .tokens import chip
from .validation import find_gpt2_small, validation_rows
from .writer import Writer


def render_pages(ws: Workspace, env: Environment, data: SiteData, writer: Writer, *, per_model: dict[str, ModelStats],
                 labels: dict[tuple[str, int, int], list[dict[str, Any]]], n_heads: int, theme: dict[str, Any], chrome: str) -> None:
    """Write every navigation page (and its fragments) into site_src/."""
    metrics_by_id = {m["metric"]: m for m in data.metrics}
    labelled: dict[tuple[str, str], int] = {}
    for (mm, _, _), lab in labels.items():
        for mid in {i["metric"] for x in lab for i in x["items"]}:
            labelled[(mm, mid)] = labelled.get((mm, mid), 0) + 1
    top: dict[str, list[dict[str, Any]]] = {}
    for meta in data.metrics:
        cands = []
        for model in data.models:
            g = data.grids.get((model["model"], meta["metric"]))
            if g is None or not np.isfinite(g).any():
                continue
            l, h = np.unravel_index(np.nanargmax(g), g.shape)
            cands.append({"model": model["model"], "slug": model["slug"], "layer": int(l), "head": int(h), "value": float(g[l, h]),
                          "n_layers": model["n_layers"], "n_heads": model["n_heads"],
                          "mean": float(np.nanmean(g)), "n_labelled": labelled.get((model["model"], meta["metric"]), 0)})
        top[meta["metric"]] = sorted(cands, key=lambda c: -c["value"])
    families: list[dict[str, Any]] = []
    for m in data.models:
        fam = str(m.get("family") or "other")
        if not families or families[-1]["family"] != fam:
            families.append({"family": fam, "models": []})
        families[-1]["models"].append(m)
    ctx: dict[str, Any] = {"models": data.models, "metrics": data.metrics, "absent": data.absent, "top": top,
                           "families": families, "n_heads": n_heads, "theme": theme, "labels_count": len(labels)}
    fragments = Fragments(writer)

    def page(rel: str, template: str, **kw: Any) -> None:
        writer.write(rel, env.get_template(template).render(**ctx, **kw))

    # ---- navigation pages (Markdown, built by mkdocs)
    page("index.md", "index.md.j2", home=home_tables(data.metrics))
    page("find.md", "find.md.j2")
    from ..models.coverage_table import load_coverage

    page("models/index.md", "models.md.j2", coverage=load_coverage())
    page("metrics/index.md", "metrics.md.j2")
    page("mosaics/index.md", "mosaics.md.j2")
    for meta in data.metrics:
        mid, scale = meta["metric"], meta["scale"]
        provs = [p for p in data.provenance if p["metric"] == mid]
        shared, varying = _setup_split(provs)
        values = data.sorted_values[mid]
        legend = Markup(legend_svg(scale=scale, gid=f"g-{mid}"))
        columns = [k for k in varying if all(isinstance((p.get("setup_parsed") or {}).get(k), (int, float, str, bool, type(None)))
                                               and len(str((p.get("setup_parsed") or {}).get(k))) <= 40 for p in provs)][:6]
        page(f"metrics/{mid}.md", "metric.md.j2", metric=meta, legend=legend,
             hist=Markup(histogram_svg(values, scale, label=meta["title"])), provs=provs, shared=shared, varying=columns,
             rest={p["model"]: _setup_json(p.get("setup_parsed"), [k for k in varying if k not in columns]) for p in provs}
             if len(columns) < len(varying) else {}, n_values=values.size)
        members = [m for fam in families for m in fam["models"] if (m["model"], mid) in data.grids]
        h = hashlib.sha1((chrome + repr(scale) + meta["title"]).encode())
        for m in members:
            h.update(f"{m['model']}|{m['slug']}|{m['n_params']}|{m.get('family')}".encode())
            h.update(np.ascontiguousarray(data.grids[(m["model"], mid)]).tobytes())
        grids = fragments.cached(f"mosaics/{mid}.md", h.hexdigest(), lambda meta=meta, members=members: mosaic_html(meta, members, data))
        overview = fragments.cached(f"mosaics/{mid}.md", h.hexdigest(), lambda meta=meta, members=members: mosaic_overview_html(meta, members, data))
        missing = [m for m in data.models if (m["model"], mid) not in data.grids]
        page(f"mosaics/{mid}.md", "mosaic.md.j2", metric=meta, grids=grids, overview=overview, missing=missing, legend=legend)
    for m in data.models:
        name, slug = m["model"], m["slug"]
        st = per_model[name]
        h = hashlib.sha1((chrome + json.dumps(m, default=str, sort_keys=True)).encode())
        for meta in data.metrics:
            if meta["metric"] in st.grids:
                h.update((meta["metric"] + meta["title"] + repr(meta["scale"])).encode())
                h.update(np.ascontiguousarray(st.grids[meta["metric"]]).tobytes())
        maps = fragments.cached(f"models/{slug}.md", h.hexdigest(), lambda m=m, st=st: maps_html(m, st, data))
        provs = [p for p in data.provenance if p["model"] == name]
        model_labelled = sorted(((l, h, lab) for (mm, l, h), lab in labels.items() if mm == name),
                                key=lambda x: (x[2][0]["best_rank"], x[0], x[1]))
        prompts = [{"example": ex, "chips": Markup(" ".join(chip(t) for t in toks[:60]) + (" …" if len(toks) > 60 else ""))}
                   for ex, toks in data.prompts(name)]
        comp = Markup(graph_svg(strongest_edges(data, name), m["n_layers"], m["n_heads"], slug))
        page(f"models/{slug}.md", "model.md.j2", model=m, comp_graph=comp, comp_graph_edges=GRAPH_EDGES, maps=maps, prompts=prompts, tasks=_task_summaries(provs, data),
             fam_prov=_family_provenance(provs), model_labels=model_labelled[:40], n_labelled=len(model_labelled))
    gpt2 = find_gpt2_small(data.models)
    if gpt2 is not None:
        st = per_model[gpt2["model"]]
        vrows = validation_rows(gpt2, st.grids, st.rank, st.bottom)
    else:
        vrows = validation_rows(None, {}, {}, {})
    page("about.md", "about.md.j2", gpt2=gpt2, vrows=vrows, metrics_by_id=metrics_by_id)
    page("data.md", "data.md.j2", columns=data.columns, downloads=_downloads(ws, writer), examples=examples())
    writer.write("head-json.md", "---\ntitle: One head's data as JSON\n---\n" + (TEMPLATES / "head-json.md").read_text(encoding="utf-8"))
    page("query.md", "query.md.j2", columns=data.columns, **query_context(ws, data, writer))
    fragments.finish()
    write_sidecars(writer, data, per_model, chrome)


def _setup_split(provs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Set-up entries shared by every model (shown once) and the keys that vary (shown per model)."""
    setups = [p["setup_parsed"] for p in provs if isinstance(p.get("setup_parsed"), dict)]
    if not setups:
        return {}, []
    keys: list[str] = []
    for s in setups:
        for k in s:
            if k not in keys:
                keys.append(k)
    shared, varying = {}, []
    for k in keys:
        vals = [json.dumps(s.get(k), sort_keys=True, default=str) for s in setups]
        if len(set(vals)) == 1 and all(k in s for s in setups):
            shared[k] = setups[0][k]
        else:
            varying.append(k)
    return shared, varying


def _setup_json(setup: Any, varying: list[str]) -> str:
    """The set-up entries of one model that are not shared by all, as indented JSON."""
    if not isinstance(setup, dict):
        return json.dumps(setup, indent=1, default=str)
    return json.dumps({k: setup[k] for k in varying if k in setup}, indent=1, ensure_ascii=False, default=str)


_HEADLINE = re.compile(r"^(accuracy|chance|threshold|clean_metric|corrupted_metric|kl_corrupted|n_prompts|seed)$")


def _task_summaries(provs: list[dict[str, Any]], data: SiteData) -> list[dict[str, Any]]:
    """Per task family of a model: status, and the scalar numbers of its set-up (accuracy, clean metric...)."""
    out: dict[str, dict[str, Any]] = {}
    for p in provs:
        meta = data.metric(p["metric"]) if p["metric"] in {m["metric"] for m in data.metrics + data.absent} else {}
        if meta.get("kind") != "task":
            continue
        fam = p.get("family") or meta.get("family") or p["metric"]
        t = out.setdefault(fam, {"family": fam, "name": task_name(fam), "status": p.get("status") or "ok",
                                 "reason": p.get("reason") or "", "numbers": {}})
        setup = p.get("setup_parsed") if isinstance(p.get("setup_parsed"), dict) else {}
        for k, v in setup.items():  # the headline numbers; the whole set-up is on the metric's page
            if _HEADLINE.search(k) and (isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, str) and len(v) < 40):
                t["numbers"].setdefault(k, v)
    return list(out.values())


def _family_provenance(provs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for p in provs:
        fam = p.get("family") or p["metric"]
        row = seen.setdefault(fam, dict(p, family=fam, outputs=[]))
        row["outputs"].append(p["metric"])
    return list(seen.values())


def _downloads(ws: Workspace, writer: Writer) -> list[dict[str, Any]]:
    """Put the database and the Parquet files into the site (hard links where the filesystem allows)."""
    files = []
    local = [Path(str(f)) for f in score_files(ws.data) if "://" not in str(f) and Path(str(f)).is_file()]
    local += sorted((ws.data / "scores").glob("*/*.parquet"))  # the tables beside the model files (composition, head_examples)
    db = db_path(ws.data)
    if db.is_file():
        writer.link_or_copy("downloads/wiki.duckdb", db)
        files.append({"href": "downloads/wiki.duckdb", "name": "wiki.duckdb", "size": db.stat().st_size, "what": "the DuckDB database (all tables)"})
    for f in score_files(ws.data):
        p = Path(str(f))
        if "://" in str(f) or not p.is_file():
            continue  # a remote score store: its files stay where they are
        rel = f"downloads/scores/{p.name}"
        writer.link_or_copy(rel, p)
        files.append({"href": rel, "name": p.name, "size": p.stat().st_size, "what": f"scores of {p.stem}"})
    archive = write_archive(ws.site_src, ws.data, [db, *local] if db.is_file() else local, writer)
    return files + ([archive] if archive else [])
