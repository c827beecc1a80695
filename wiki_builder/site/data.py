"""Read the database once and compute what the pages share: grids, ranks, percentiles, scales, neighbours.

Everything comes out of ``data/wiki.duckdb`` through one read-only connection. Attention
examples (the largest table) are read model by model as Arrow, so memory stays at one model's
patterns. Metrics are rendered generically: whatever ids are in ``scores`` appear, grouped by
the ``metrics`` table's kind and family; an id the ``metrics`` table does not describe still
appears, under its own id. What a metric's per-head details mean comes from the ``metrics``
table's ``detail_fields`` column (``meta["detail_fields"]``, see :mod:`.details`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.resolve import slugify
from ..scores.base import DetailFields, fields_from_json
from ..store.db import connect_readonly
from .heatmap import Scale, scale_for

KIND_ORDER = {"attention": 0, "weights": 1, "task": 2}
KIND_TITLES = {"attention": "Attention patterns", "weights": "Weights (OV and QK circuits)", "task": "Tasks (ablation and attribution)"}


@dataclass
class SiteData:
    models: list[dict[str, Any]]  # ordered by family, then size, then name
    metrics: list[dict[str, Any]]  # present metrics, ordered by kind, family, id; each with "scale"
    absent: list[dict[str, Any]]  # described in `metrics` but with no scores yet
    grids: dict[tuple[str, str], np.ndarray]  # (model, metric) -> [n_layers, n_heads], NaN where missing
    provenance: list[dict[str, Any]]
    details: dict[str, dict[tuple[int, int], dict[str, str]]]  # model -> (layer, head) -> metric -> detail JSON (text)
    sorted_values: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> all finite values, ascending
    tables: set[str] = field(default_factory=set)
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # table -> [(column, type)]
    con: Any = None

    def model_grids(self, model: str) -> dict[str, np.ndarray]:
        return {m["metric"]: self.grids[(model, m["metric"])] for m in self.metrics if (model, m["metric"]) in self.grids}

    def metric(self, mid: str) -> dict[str, Any]:
        return self._by_id[mid]

    def __post_init__(self) -> None:
        self._by_id = {m["metric"]: m for m in self.metrics + self.absent}

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None

    def prompts(self, model: str) -> list[tuple[str, list[str]]]:
        """The prompts this model's head pages show: (name, tokens)."""
        if "attention_examples" not in self.tables:
            return []
        rows = self.con.execute("SELECT example, tokens FROM attention_examples WHERE model = ? AND layer = 0 AND head = 0 ORDER BY rowid",
                                [model]).fetchall()
        return [(str(name), [str(t) for t in (toks or [])]) for name, toks in rows]

    def examples(self, model: str) -> list[dict[str, Any]]:
        """This model's attention examples: [{"example", "tokens", "patterns" [L, H, Q, Q] float32}]."""
        if "attention_examples" not in self.tables:
            return []
        t = self.con.sql("SELECT example, layer, head, tokens, pattern FROM attention_examples WHERE model = ? "
                         "ORDER BY rowid", params=[model]).to_arrow_table()
        if t.num_rows == 0:
            return []
        shape = next((m["n_layers"], m["n_heads"]) for m in self.models if m["model"] == model)
        names = t.column("example").to_pylist()
        layers = t.column("layer").to_numpy()
        heads = t.column("head").to_numpy()
        pats = t.column("pattern").combine_chunks()
        offsets = pats.offsets.to_numpy()
        flat = pats.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        toks = t.column("tokens").combine_chunks()
        out: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(names):
            n = int(offsets[i + 1] - offsets[i])
            q = int(round(n ** 0.5))
            ex = out.get(name)
            if ex is None:
                ex = out[name] = {"example": name, "tokens": [str(x) for x in (toks[i].as_py() or [])],
                                  "patterns": np.full((*shape, q, q), np.nan, dtype=np.float32)}
            if q * q == n and ex["patterns"].shape[-1] == q:
                ex["patterns"][layers[i], heads[i]] = flat[offsets[i]:offsets[i + 1]].reshape(q, q)
        return list(out.values())


def _rows(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def parse_json(raw: Any) -> Any:
    """A JSON column's value (a detail, a set-up) parsed; anything that is not JSON text comes back as it is."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def detail_fields(raw: Any) -> DetailFields:
    """The ``metrics`` table's ``detail_fields`` column: what each key of the metric's details means
    ({} when the column is absent, empty or unreadable: the details are then shown as plain text)."""
    try:
        parsed = parse_json(raw)
        return fields_from_json(parsed) if isinstance(parsed, dict) else {}
    except (KeyError, TypeError, AttributeError):
        return {}


def model_order(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(models, key=lambda m: (str(m.get("family") or "~"), m.get("n_params") or 0, m["model"]))


def load(data_dir: Any) -> SiteData:
    """Everything the pages need (but attention examples, read per model)."""
    con = connect_readonly(data_dir)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    columns: dict[str, list[tuple[str, str]]] = {}
    for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                "ORDER BY table_name, ordinal_position").fetchall():
        columns.setdefault(t, []).append((c, ty))
    models = model_order(_rows(con, "SELECT * FROM models")) if "models" in tables else []
    for m in models:
        m["slug"] = slugify(m["model"])
    shape = {m["model"]: (int(m["n_layers"]), int(m["n_heads"])) for m in models}
    described = {r["metric"]: r for r in _rows(con, "SELECT * FROM metrics")} if "metrics" in tables else {}
    for r in described.values():
        r["detail_fields"] = detail_fields(r.get("detail_fields"))

    grids: dict[tuple[str, str], np.ndarray] = {}
    details: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    if "scores" in tables:
        has_detail = any(c == "detail" for c, _ in columns.get("scores", []))
        arr = con.sql("SELECT model, metric, layer, head, value FROM scores ORDER BY model, metric").fetchnumpy()
        mod, met, lay, hea, val = arr["model"], arr["metric"], arr["layer"], arr["head"], arr["value"]
        if len(mod):
            key = np.char.add(np.char.add(mod.astype(str), "\x00"), met.astype(str))
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            ends = np.r_[starts[1:], len(key)]
            for s, e in zip(starts.tolist(), ends.tolist()):
                model, metric = str(mod[s]), str(met[s])
                if model not in shape:
                    continue
                g = np.full(shape[model], np.nan)
                ok = (lay[s:e] < shape[model][0]) & (hea[s:e] < shape[model][1])
                g[lay[s:e][ok], hea[s:e][ok]] = np.asarray(val[s:e], dtype=float)[ok]
                grids[(model, metric)] = g
        if has_detail:
            # kept as JSON text: parsed only for the head pages that are rendered
            for model, layer, head, metric, detail in con.execute(
                    "SELECT model, layer, head, metric, detail FROM scores WHERE detail IS NOT NULL AND detail NOT IN ('{}', '[]', 'null')").fetchall():
                details.setdefault(model, {}).setdefault((int(layer), int(head)), {})[metric] = detail
    provenance = _rows(con, "SELECT * FROM provenance ORDER BY model, metric") if "provenance" in tables else []
    for p in provenance:
        setup = p.get("setup")
        p["setup_parsed"] = parse_json(setup) if isinstance(setup, str) else (setup or {})

    present = sorted({metric for (_, metric) in grids})
    sorted_values: dict[str, np.ndarray] = {}
    metrics = []
    for mid in present:
        meta = dict(described.get(mid) or {"metric": mid, "family": mid, "version": "?", "title": mid, "kind": "other",
                                            "description": "", "formula": "", "reference": "", "details": "", "detail_fields": {}})
        meta.setdefault("family", mid)
        meta["family"] = meta.get("family") or mid
        meta["kind"] = meta.get("kind") or "other"
        meta["title"] = meta.get("title") or mid
        values = np.concatenate([g.ravel() for (model, metric), g in grids.items() if metric == mid])
        finite = np.sort(values[np.isfinite(values)])
        sorted_values[mid] = finite
        meta["scale"] = scale_for(finite)
        meta["n_values"] = int(finite.size)
        meta["n_models"] = sum(1 for (model, metric) in grids if metric == mid)
        metrics.append(meta)
    metrics.sort(key=lambda m: (KIND_ORDER.get(m["kind"], 9), m["family"], m["metric"]))
    absent = [dict(v, scale=Scale("sequential", 0, 1), n_values=0, n_models=0) for k, v in sorted(described.items()) if k not in present]
    return SiteData(models=models, metrics=metrics, absent=absent, grids=grids, provenance=provenance, details=details,
                    sorted_values=sorted_values, tables=tables, columns=columns, con=con)


# ---------------------------------------------------------------- ranks and percentiles


def rank_desc(sorted_asc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rank of each value among ``sorted_asc`` (1 = highest; ties share the best rank)."""
    return 1 + (len(sorted_asc) - np.searchsorted(sorted_asc, values, side="right"))


def rank_asc(sorted_asc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rank from the bottom (1 = most negative)."""
    return 1 + np.searchsorted(sorted_asc, values, side="left")


def percentile(sorted_asc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Percentile: the share of the *other* values that are lower (0..100; 100 = the highest, 0 = the lowest)."""
    n = len(sorted_asc)
    lo = np.searchsorted(sorted_asc, values, side="left")
    return 100.0 * lo / max(n - 1, 1)


@dataclass
class ModelStats:
    """Within-model ranks and percentiles of every head, per metric."""

    grids: dict[str, np.ndarray]
    rank: dict[str, np.ndarray]
    bottom: dict[str, np.ndarray]
    pct: dict[str, np.ndarray]
    n: dict[str, int]


def model_stats(grids: dict[str, np.ndarray]) -> ModelStats:
    rank, bottom, pct, n = {}, {}, {}, {}
    for mid, g in grids.items():
        finite = np.sort(g[np.isfinite(g)])
        rank[mid] = np.where(np.isfinite(g), rank_desc(finite, np.nan_to_num(g, nan=-np.inf)), 0)
        bottom[mid] = np.where(np.isfinite(g), rank_asc(finite, np.nan_to_num(g, nan=np.inf)), 0)
        pct[mid] = np.where(np.isfinite(g), percentile(finite, np.nan_to_num(g)), np.nan)
        n[mid] = int(finite.size)
    return ModelStats(grids, rank, bottom, pct, n)


# ---------------------------------------------------------------- similar heads across models


def score_matrix(data: SiteData) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Every head as a vector of its scores: each metric divided by its standard deviation over all
    heads, missing values set to the metric's median, and each family weighted 1/sqrt(outputs) so
    that a task with four outputs does not outvote a single attention score."""
    index: list[tuple[str, int, int]] = []
    for m in data.models:
        for layer in range(m["n_layers"]):
            for head in range(m["n_heads"]):
                index.append((m["model"], layer, head))
    fam_size: dict[str, int] = {}
    for meta in data.metrics:
        fam_size[meta["family"]] = fam_size.get(meta["family"], 0) + 1
    X = np.zeros((len(index), len(data.metrics)), dtype=np.float32)
    offsets, pos = {}, 0
    for m in data.models:
        offsets[m["model"]] = pos
        pos += m["n_layers"] * m["n_heads"]
    for j, meta in enumerate(data.metrics):
        sv = data.sorted_values[meta["metric"]]
        med = float(np.median(sv)) if sv.size else 0.0
        std = float(sv.std()) if sv.size > 1 else 1.0
        std = std if std > 1e-9 else 1.0
        w = 1.0 / np.sqrt(fam_size[meta["family"]])
        col = np.full(len(index), med, dtype=np.float64)
        for m in data.models:
            g = data.grids.get((m["model"], meta["metric"]))
            if g is None:
                continue
            o = offsets[m["model"]]
            col[o:o + g.size] = np.where(np.isfinite(g.ravel()), g.ravel(), med)
        X[:, j] = (col - med) / std * w
    return X, index


def similar_heads(data: SiteData, k: int = 5, chunk: int = 2048) -> dict[tuple[str, int, int], list[tuple[str, int, int, float]]]:
    """For each head, the ``k`` nearest heads in *other* models by Euclidean distance of score vectors."""
    if not data.metrics or len(data.models) < 2:
        return {}
    X, index = score_matrix(data)
    names = [m["model"] for m in data.models]
    sizes = [m["n_layers"] * m["n_heads"] for m in data.models]
    model_id = np.repeat(np.arange(len(names)), sizes)
    sq = (X ** 2).sum(1)
    XT = np.ascontiguousarray(X.T)
    out: dict[tuple[str, int, int], list[tuple[str, int, int, float]]] = {}
    kk = min(k, len(index) - 1)
    bounds = np.r_[0, np.cumsum(sizes)]
    for start in range(0, len(index), chunk):
        stop = min(start + chunk, len(index))
        d2 = X[start:stop] @ XT
        d2 *= -2.0
        d2 += sq[start:stop, None]
        d2 += sq[None, :]
        for r, mi in enumerate(model_id[start:stop].tolist()):  # a head's own model is not "another model"
            d2[r, bounds[mi]:bounds[mi + 1]] = np.inf
        if kk <= 0:
            continue
        part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
        for row in range(stop - start):
            cand = part[row]
            cand = cand[np.argsort(d2[row, cand], kind="stable")]
            out[index[start + row]] = [(*index[c], float(np.sqrt(max(d2[row, c], 0.0)))) for c in cand.tolist() if np.isfinite(d2[row, c])]
    return out
