"""Head pages: one HTML page per head, rendered straight from the data (no mkdocs).

Speed matters here (10,000+ pages), so everything a model's heads share is computed once per
model (formatted values, ranks, percentiles, the token labels of each attention prompt), and
the per-head tables are assembled with f-strings; the jinja2 template only lays out the page.

A head page holds only what depends on its own model (scores, ranks within the model, labels,
attention patterns, details, task bars), so adding a model leaves every other model's pages as
they are. What depends on every built model (rank and percentile across all models, similar
heads in other models) is in a small sidecar script per layer beside the pages, ``L<l>.x.js``
(``window.HW_XL = {...}``), which headwiki.js puts into the page; a ``<script src>`` works from
a web server and straight from disk alike. Adding a model rewrites those sidecars (under a
kilobyte per head, one file per layer), not the pages. A metric's per-head details are shown as
its family declares them (:mod:`.details`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment
from markupsafe import Markup, escape

from ..scores.base import fields_to_json
from .composition import head_links, links_html
from .data import KIND_TITLES, ModelStats, SiteData, parse_json, percentile, rank_desc, similar_heads
from .details import details_html
from .examples import clean, corpus_note, examples_script, examples_stub, head_json, read_composition, read_examples
from .heatmap import attention_axes, attention_svg, fmt_many, nice_ceiling
from .labels import task_name
from .text import ordinal
from .theme import environment
from .writer import RenderStats, Writer, write_file

HEADS_PER_JOB = 600
PARALLEL_FROM = 1500  # head pages to render before a pool of worker processes pays off


def bar_html(v: float, lo: float = -1.0, hi: float = 1.0) -> str:
    """A horizontal bar for ``v`` on the axis [lo, hi], zero marked; values beyond are clipped and marked »."""
    if v is None or not np.isfinite(v) or hi <= lo:
        return ""
    c = max(lo, min(hi, v))
    zero = (0.0 - lo) / (hi - lo) * 100.0 if lo < 0 < hi else (0.0 if lo >= 0 else 100.0)
    pos = (c - lo) / (hi - lo) * 100.0
    left, width = min(zero, pos), abs(pos - zero)
    sign = "pos" if v >= 0 else "neg"
    clipped = "»" if v > hi or v < lo else ""
    return (f'<b class="hw-bar" style="--z:{zero:.0f}%" title="axis {lo:g} to {hi:g}"><i class="{sign}" '
            f'style="left:{left:.1f}%;width:{width:.1f}%"></i></b>{clipped}')


class CrossModel:
    """Ranks and percentiles of every head across all built models, and similar heads in other models."""

    def __init__(self, data: SiteData, labels_of: dict[tuple[str, int, int], list[str]]) -> None:
        self.data = data
        self.n_models = len(data.models)
        self.n_heads = sum(m["n_layers"] * m["n_heads"] for m in data.models)
        self.similar = similar_heads(data)
        self.labels_of = labels_of
        self.slug = {m["model"]: m["slug"] for m in data.models}

    def model_ranks(self, grids: dict[str, np.ndarray]) -> dict[str, tuple[list[int], list[float], int]]:
        """Per metric: rank and percentile across all models of every head of one model (flat), and N."""
        out = {}
        for mid, g in grids.items():
            sv = self.data.sorted_values[mid]
            flat = g.ravel()
            ok = np.isfinite(flat)
            ranks = np.where(ok, rank_desc(sv, np.nan_to_num(flat)), 0).tolist()
            pcts = np.round(np.where(ok, percentile(sv, np.nan_to_num(flat)), -1.0), 1).tolist()
            out[mid] = (ranks, pcts, int(sv.size))
        return out

    def sidecar(self, model: str, layer: int, n_heads: int, ranks: dict[str, tuple[list[int], list[float], int]]) -> str:
        """The cross-model part of one layer's head pages, as a script that sets ``window.HW_XL``:
        {models, heads, h: {head: {g: {metric: [rank, percentile, N]}, s: [similar heads]}}}."""
        per_head = {}
        for head in range(n_heads):
            i = layer * n_heads + head
            g = {mid: [r[i], p[i], n] for mid, (r, p, n) in ranks.items() if r[i]}
            sim = [[other, self.slug[other], l, h, round(dist, 2), ", ".join(self.labels_of.get((other, l, h), [])[:3])]
                   for other, l, h, dist in self.similar.get((model, layer, head), [])]
            per_head[head] = {"g": g, "s": sim}
        payload = {"models": self.n_models, "heads": self.n_heads, "h": per_head}
        return "window.HW_XL=" + json.dumps(payload, ensure_ascii=True, separators=(",", ":")) + ";\n"


class ModelHeads:
    """Everything one model's head pages share, computed once."""

    def __init__(self, data: SiteData, model: dict[str, Any], st: ModelStats, cross: CrossModel | None) -> None:
        self.data = data
        self.model = model
        self.st = st
        self.cross = cross
        self.metrics = [m for m in data.metrics if m["metric"] in st.grids]
        self.title = {m["metric"]: str(escape(m["title"])) for m in self.metrics}
        # under a task's heading, "IOI: mean ablation" reads as "mean ablation"
        self.short = {m["metric"]: str(escape(m["title"].split(": ", 1)[-1])) for m in self.metrics}
        self.cross_ranks = cross.model_ranks(st.grids) if cross is not None else {}
        # task bars: on an axis from the model's own values (a round number at or above its largest
        # |value| for that metric), so that adding another model never changes this model's pages
        self.axis = {}
        for m in self.metrics:
            g = st.grids[m["metric"]]
            top = nice_ceiling(float(np.nanmax(np.abs(g)))) if np.isfinite(g).any() else 1.0
            self.axis[m["metric"]] = (-top if np.nanmin(g) < 0 else 0.0, top)
        self._strings: tuple[dict[str, list[str]], ...] | None = None
        self._examples: list[tuple[str, Any, np.ndarray, int]] | None = None
        self._texts: dict[tuple[int, int], list[dict[str, Any]]] | None = None  # head_examples, read on first use
        self._composition: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] | None = None
        self.note = corpus_note(data.provenance, model["model"])  # the corpus pass: status and corpus
        self._links: dict[tuple[int, int], dict[str, list[Any]]] | None = None
        self.groups: list[tuple[str, list[str]]] = []
        for m in self.metrics:
            title = KIND_TITLES.get(m["kind"], m["kind"].title())
            if not self.groups or self.groups[-1][0] != title:
                self.groups.append((title, []))
            self.groups[-1][1].append(m["metric"])
        self.tasks: list[tuple[str, list[str]]] = []
        for m in self.metrics:
            if m["kind"] != "task":
                continue
            if not self.tasks or self.tasks[-1][0] != m["family"]:
                self.tasks.append((m["family"], []))
            self.tasks[-1][1].append(m["metric"])

    def strings(self) -> tuple[dict[str, list[str]], ...]:
        """Formatted values, ranks and percentiles of every head (flat), made on first use."""
        if self._strings is None:
            st = self.st
            self._strings = ({mid: fmt_many(g) for mid, g in st.grids.items()},
                             {mid: [ordinal(r) if r else "n/a" for r in st.rank[mid].ravel().tolist()] for mid in st.grids},
                             {mid: [f"{p:.1f}" if p == p else "n/a" for p in st.pct[mid].ravel().tolist()] for mid in st.grids})
        return self._strings

    def examples(self) -> list[tuple[str, Any, np.ndarray, int]]:
        """(title, axes, patterns [L, H, Q, Q], number of tokens) per prompt, read on first use."""
        if self._examples is None:
            self._examples = [(ex["example"], attention_axes(ex["tokens"], ex["example"]), ex["patterns"], len(ex["tokens"]))
                              for ex in self.data.examples(self.model["model"])]
        return self._examples

    def sidecar(self, layer: int) -> str:
        return self.cross.sidecar(self.model["model"], layer, self.model["n_heads"], self.cross_ranks)

    def context(self, layer: int, head: int) -> dict[str, Any]:
        """The model-local HTML blocks of one head's page (the cross-model cells are filled from its sidecar)."""
        i = layer * self.model["n_heads"] + head
        values, ranks, pcts = self.strings()
        rows = []
        for title, mids in self.groups:
            rows.append(f'<tbody><tr class="hw-group"><th colspan="6">{title}</th></tr>')
            for mid in mids:
                rows.append(f'<tr><td><a href="../../metrics/{mid}.html">{self.title[mid]}</a></td><td>{values[mid][i]}</td>'
                            f'<td>{ranks[mid][i]}</td><td>{pcts[mid][i]}</td><td data-x="{mid}">–</td><td>–</td></tr>')
            rows.append("</tbody>")
        tasks = []
        for family, mids in self.tasks:
            trs = "".join(f'<tr><td>{self.short[mid]}</td><td class="hw-r">{values[mid][i]}</td>'
                          f'<td>{bar_html(float(self.st.grids[mid][layer, head]), *self.axis[mid])}</td></tr>' for mid in mids)
            tasks.append(f'<h3>{escape(task_name(family))}</h3><table class="hw-bars">{trs}</table>')
        det = self.data.details.get(self.model["model"], {}).get((layer, head), {})
        details = []
        for mid, d in sorted(det.items(), key=lambda kv: (0 if self._meta(kv[0]).get("kind") == "weights" else 1, kv[0])):
            title = self.title.get(mid) or escape(mid)
            meta = self._meta(mid)
            fields = meta.get("detail_fields") or {}
            # a weights family that declares which tokens its OV circuit promotes
            note = "<br><small>what its OV circuit promotes</small>" if meta.get("kind") == "weights" and "promotes" in fields else ""
            details.append(f'<tr><th><a href="../../metrics/{escape(mid)}.html">{title}</a>{note}</th><td>{details_html(d, fields)}</td></tr>')
        if details:
            details = ['<table class="hw-details">', *details, "</table>"]
        attn = []
        for title, axes, patterns, n_tokens in self.examples():
            pat = patterns[layer, head]
            if np.isfinite(pat).any():
                attn.append({"title": title, "svg": Markup(attention_svg(axes, pat)), "n_tokens": n_tokens})
        if self._links is None:  # the composition table's strongest readers and writers of every head, read once
            self._links = head_links(self.data, self.model["model"])
        return {"scores_html": Markup("".join(rows)), "tasks_html": Markup("".join(tasks)), "details_html": Markup("".join(details)),
                "attn": attn, "composition_html": Markup(links_html(self._links.get((layer, head)))),
                "examples_html": Markup(examples_stub(self.texts().get((layer, head), []), self.note, f"L{layer}H{head}"))}

    def texts(self) -> dict[tuple[int, int], list[dict[str, Any]]]:
        """Every head's examples on text (``head_examples``), read once per model."""
        if self._texts is None:
            self._texts = read_examples(self.data.con, self.model["model"]) if "head_examples" in self.data.tables else {}
        return self._texts

    def json_doc(self, layer: int, head: int, labels: list[dict[str, Any]]) -> str:
        """The head's data as one JSON document, written beside its page (docs/head-json.md)."""
        if self._composition is None:
            self._composition = read_composition(self.data.con, self.model["model"]) if "composition" in self.data.tables else {}
        st = self.st
        scores = dict(zip(st.grids, clean([float(g[layer, head]) for g in st.grids.values()])))
        ranks = {mid: {"rank": int(st.rank[mid][layer, head]) or None, "of": st.n[mid],
                       "percentile": clean([float(st.pct[mid][layer, head])])[0]} for mid in st.grids}
        det = {mid: parse_json(d) for mid, d in self.data.details.get(self.model["model"], {}).get((layer, head), {}).items()}
        return head_json(self.model, layer, head, scores=scores, ranks=ranks, labels=[l["name"] for l in labels], details=det,
                         examples=self.texts().get((layer, head), []), note=self.note,
                         composition=self._composition.get((layer, head)) if "composition" in self.data.tables else None)

    def _meta(self, mid: str) -> dict[str, Any]:
        try:
            return self.data.metric(mid)
        except KeyError:
            return {}


def model_key(data: SiteData, model: dict[str, Any], grids: dict[str, np.ndarray], chrome: str) -> str:
    """A hash of everything a model's head pages are rendered from (nothing in them depends on other models)."""
    h = hashlib.sha1(chrome.encode())
    h.update(json.dumps(model, default=str, sort_keys=True).encode())
    for mid in sorted(grids):
        meta = data.metric(mid)
        h.update(json.dumps([mid, meta.get("title"), meta.get("kind"), meta.get("family"), meta.get("version"),
                             fields_to_json(meta.get("detail_fields") or {})], sort_keys=True).encode())
        h.update(np.ascontiguousarray(grids[mid]).tobytes())
    for (l, hh), d in sorted(data.details.get(model["model"], {}).items()):
        h.update(f"{l},{hh}".encode())
        for mid in sorted(d):
            h.update(mid.encode() + b"\x00" + str(d[mid]).encode())
    if "attention_examples" in data.tables:
        row = data.con.execute("SELECT count(*), bit_xor(hash(example, layer, head, tokens, pattern)) FROM attention_examples WHERE model = ?",
                               [model["model"]]).fetchall()[0]
        h.update(repr(row).encode())
    if "composition" in data.tables:
        row = data.con.execute("SELECT count(*), bit_xor(hash(src_layer, src_head, dst_layer, dst_head, kind, value)) FROM composition "
                               "WHERE model = ?", [model["model"]]).fetchall()[0]
        h.update(repr(row).encode())
    if "head_examples" in data.tables:  # the examples on the page, and the corpus they come from
        row = data.con.execute("SELECT count(*), bit_xor(hash(layer, head, kind, rank, tokens, attention, value)) FROM head_examples "
                               "WHERE model = ?", [model["model"]]).fetchall()[0]
        h.update(repr(row).encode())
    h.update(json.dumps(corpus_note(data.provenance, model["model"]), default=str, sort_keys=True).encode())
    return h.hexdigest()


def neighbours(m: dict[str, Any], layer: int, head: int) -> list[dict[str, Any]]:
    out = []
    for rel, (l, h) in (("previous head", (layer, head - 1)), ("next head", (layer, head + 1)),
                        ("layer above", (layer - 1, head)), ("layer below", (layer + 1, head))):
        if 0 <= l < m["n_layers"] and 0 <= h < m["n_heads"]:
            out.append({"rel": rel, "layer": l, "head": h})
    return out


def render_heads(job: dict[str, Any], data: SiteData | None = None, env: Any = None) -> list[tuple[str, str, int, bool]]:
    """Render and write some head pages of one model; returns (path under site_src, sha1, bytes,
    written) per page: a page whose file already holds the same bytes is not rewritten.

    Runs in the renderer's process, or in a worker process of a pool (``data`` None: the job
    carries the model's numbers, and the worker opens its own read-only database connection
    for the attention patterns)."""
    from ..store.db import connect_readonly

    m = job["model"]
    own = data is None
    if own:
        data = SiteData(models=[m], metrics=job["metrics"], absent=[], grids={}, provenance=job.get("provenance", []),
                        details={m["model"]: job["details"]}, tables=set(job["tables"]))
        if {"attention_examples", "composition", "head_examples"} & data.tables:
            data.con = connect_readonly(job["data_dir"])
    try:
        mh = ModelHeads(data, m, job["stats"], None)
        template = (env or environment()).get_template("head.html.j2")
        root = job["root"]
        out = []
        for layer, head in job["heads"]:
            html = template.render(model=m, slug=m["slug"], layer=layer, head=head, theme=job["theme"], root="../../",
                                   labels=job["labels"].get((layer, head), []), neighbours=neighbours(m, layer, head),
                                   **mh.context(layer, head))
            out.append(_write_if_changed(root, f"heads/{m['slug']}/L{layer}H{head}.html", html.encode("utf-8")))
            out.append(_write_if_changed(root, f"heads/{m['slug']}/L{layer}H{head}.json",
                                         mh.json_doc(layer, head, job["labels"].get((layer, head), [])).encode("utf-8")))
            if mh.texts().get((layer, head)):  # the page's examples, put in by this script (the page stays small)
                out.append(_write_if_changed(root, f"heads/{m['slug']}/L{layer}H{head}.ex.js",
                                             examples_script(mh.texts()[(layer, head)]).encode("utf-8")))
        return out
    finally:
        if own:
            data.close()


def _write_if_changed(root: Path, rel: str, raw: bytes) -> tuple[str, str, int, bool]:
    path = root / rel
    try:
        same = path.stat().st_size == len(raw) and path.read_bytes() == raw
    except OSError:
        same = False
    if not same:
        write_file(path, raw)
    return rel, hashlib.sha1(raw).hexdigest(), len(raw), not same


def render_head_pages(data: SiteData, writer: Writer, env: Environment, *, per_model: dict[str, ModelStats],
                      labels: dict[tuple[str, int, int], list[dict[str, Any]]], cross: CrossModel, chrome: str,
                      theme: dict[str, Any], data_dir: Path) -> None:
    """Every model's head pages and their cross-model sidecars. A page whose inputs (``model_key``)
    are those of the page already there is kept without rendering."""
    stats: RenderStats = writer.stats
    jobs: list[dict[str, Any]] = []
    for m in data.models:
        name, slug = m["model"], m["slug"]
        st = per_model[name]
        key = model_key(data, m, st.grids, chrome)
        mh = ModelHeads(data, m, st, cross)
        todo = []
        for layer in range(m["n_layers"]):
            writer.write(f"heads/{slug}/L{layer}.x.js", mh.sidecar(layer))
            for head in range(m["n_heads"]):
                rel = f"heads/{slug}/L{layer}H{head}"
                old = writer.entry(f"{rel}.html")
                companions = [f"{rel}.json", *([f"{rel}.ex.js"] if writer.entry(f"{rel}.ex.js") else [])]
                if old.get("own") == key and (writer.root / f"{rel}.html").is_file() \
                        and all(writer.entry(c) and (writer.root / c).is_file() for c in companions):
                    for page in (f"{rel}.html", *companions):
                        writer.keep_as_is(page)
                    stats.heads_unchanged += 1
                    stats.head_bytes.append(int(old.get("size") or 0))
                else:
                    todo.append((layer, head))
        model_labels_ = {(l, h): lab for (mm, l, h), lab in labels.items() if mm == name}
        for i in range(0, len(todo), HEADS_PER_JOB):
            jobs.append({"model": m, "key": key, "heads": todo[i:i + HEADS_PER_JOB], "stats": st, "labels": model_labels_,
                         "metrics": [meta for meta in data.metrics if meta["metric"] in st.grids], "theme": theme,
                         "details": data.details.get(name, {}), "tables": sorted(data.tables), "data_dir": data_dir,
                         "provenance": [p for p in data.provenance if p.get("model") == name and p.get("metric") == "head_examples"],
                         "root": writer.root})
    for job, results in _run_jobs(jobs, data, env):
        for rel, sha, size, written in results:
            if rel.endswith((".json", ".ex.js")):  # the head's data and examples beside its page: not pages
                writer.record(rel, sha, written, own=job["key"])
                continue
            writer.record(rel, sha, written, own=job["key"], size=str(size))
            stats.heads_rendered += 1
            stats.head_bytes.append(size)


def render_workers() -> int:
    """Worker processes for head pages: $HEADWIKI_RENDER_WORKERS, else one per CPU but one (at most 8)
    on machines with four or more CPUs, and none (render in this process) on smaller ones, where
    starting workers costs about what they save."""
    env = os.environ.get("HEADWIKI_RENDER_WORKERS", "").strip()
    if env.isdigit():
        return max(1, int(env))
    cpus = os.cpu_count() or 1
    return min(cpus - 1, 8) if cpus >= 4 else 1


def _run_jobs(jobs: list[dict[str, Any]], data: SiteData, env: Environment) -> Iterator[tuple[dict[str, Any], list[tuple[str, str, int, bool]]]]:
    """Render head pages, in this process or (for many pages, with several CPUs) in a process pool."""
    workers = min(render_workers(), len(jobs))
    if workers <= 1 or sum(len(j["heads"]) for j in jobs) < PARALLEL_FROM:
        for job in jobs:
            yield job, render_heads(job, data, env)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds a DuckDB connection (and, inside `wiki build`, torch's thread pools)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(render_heads, job): job for job in jobs}
        for fut, job in futures.items():
            yield job, fut.result()
