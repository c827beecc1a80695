"""Benchmark the site at scale: a synthetic score database of ~70 real model shapes (10,000+ heads),
then a full build, a no-op rebuild, and adding one model.

    python -m wiki_builder.site_bench [--root DIR] [--keep] [--models N] [--no-mkdocs]
    wiki site-bench [...]

The database has the same tables the builder writes (``store.db.SCHEMA``): every registered
metric id plus the ones the score families in progress will produce (OV copying, copy scores,
successor, and the IOI, greater-than, sequence and induction-task outputs), per-head detail
JSON (the tokens an OV circuit promotes), provenance with set-ups and task accuracies, and
attention patterns on five short prompts per model. Values are drawn to look like real scores:
most heads near zero, a few strong ones in plausible layers, signed metrics on both sides.
Nothing here needs torch. Prints build times and page sizes (max / median KB, total MB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# (name, family, architecture, n_layers, n_heads, n_kv_heads, d_model, n_params, d_vocab, n_ctx)
MODELS: list[tuple[str, str, str, int, int, int, int, int, int, int]] = [
    ("distilgpt2", "gpt2", "GPT2LMHeadModel", 6, 12, 12, 768, 82_000_000, 50257, 1024),
    ("gpt2-small", "gpt2", "GPT2LMHeadModel", 12, 12, 12, 768, 124_000_000, 50257, 1024),
    ("gpt2-medium", "gpt2", "GPT2LMHeadModel", 24, 16, 16, 1024, 355_000_000, 50257, 1024),
    ("gpt2-large", "gpt2", "GPT2LMHeadModel", 36, 20, 20, 1280, 774_000_000, 50257, 1024),
    ("gpt2-xl", "gpt2", "GPT2LMHeadModel", 48, 25, 25, 1600, 1_558_000_000, 50257, 1024),
    *[(f"stanford-gpt2-small-{c}", "gpt2", "GPT2LMHeadModel", 12, 12, 12, 768, 124_000_000, 50257, 1024) for c in "abcde"],
    ("pythia-14m", "neox", "GPTNeoXForCausalLM", 6, 4, 4, 128, 14_000_000, 50304, 2048),
    ("pythia-31m", "neox", "GPTNeoXForCausalLM", 6, 8, 8, 256, 31_000_000, 50304, 2048),
    ("pythia-70m", "neox", "GPTNeoXForCausalLM", 6, 8, 8, 512, 70_000_000, 50304, 2048),
    ("pythia-70m-deduped", "neox", "GPTNeoXForCausalLM", 6, 8, 8, 512, 70_000_000, 50304, 2048),
    ("pythia-160m", "neox", "GPTNeoXForCausalLM", 12, 12, 12, 768, 160_000_000, 50304, 2048),
    ("pythia-160m-deduped", "neox", "GPTNeoXForCausalLM", 12, 12, 12, 768, 160_000_000, 50304, 2048),
    ("pythia-410m", "neox", "GPTNeoXForCausalLM", 24, 16, 16, 1024, 410_000_000, 50304, 2048),
    ("pythia-410m-deduped", "neox", "GPTNeoXForCausalLM", 24, 16, 16, 1024, 410_000_000, 50304, 2048),
    ("pythia-1b", "neox", "GPTNeoXForCausalLM", 16, 8, 8, 2048, 1_000_000_000, 50304, 2048),
    ("pythia-1.4b", "neox", "GPTNeoXForCausalLM", 24, 16, 16, 2048, 1_400_000_000, 50304, 2048),
    ("pythia-2.8b", "neox", "GPTNeoXForCausalLM", 32, 32, 32, 2560, 2_800_000_000, 50304, 2048),
    ("opt-125m", "opt", "OPTForCausalLM", 12, 12, 12, 768, 125_000_000, 50272, 2048),
    ("opt-350m", "opt", "OPTForCausalLM", 24, 16, 16, 1024, 350_000_000, 50272, 2048),
    ("opt-1.3b", "opt", "OPTForCausalLM", 24, 32, 32, 2048, 1_300_000_000, 50272, 2048),
    ("gpt-neo-125M", "gpt_neo", "GPTNeoForCausalLM", 12, 12, 12, 768, 125_000_000, 50257, 2048),
    ("gpt-neo-1.3B", "gpt_neo", "GPTNeoForCausalLM", 24, 16, 16, 2048, 1_300_000_000, 50257, 2048),
    *[(f"attn-only-{n}l", "toy", "HookedTransformer", n, 8, 8, 512, 1_000_000 * n + 25_000_000, 48262, 1024) for n in (1, 2, 3, 4)],
    *[(f"gelu-{n}l", "toy", "HookedTransformer", n, 8, 8, 512, 3_000_000 * n + 25_000_000, 48262, 1024) for n in (1, 2, 3, 4)],
    *[(f"solu-{n}l", "toy", "HookedTransformer", n, 8, 8, 512, 3_000_000 * n + 25_000_000, 48262, 1024) for n in (1, 2, 3, 4)],
    ("solu-6l", "toy", "HookedTransformer", 6, 12, 12, 768, 42_000_000, 48262, 1024),
    ("solu-8l", "toy", "HookedTransformer", 8, 16, 16, 1024, 101_000_000, 48262, 1024),
    ("solu-10l", "toy", "HookedTransformer", 10, 20, 20, 1280, 197_000_000, 48262, 1024),
    ("solu-12l", "toy", "HookedTransformer", 12, 24, 24, 1536, 340_000_000, 48262, 1024),
    *[(f"tiny-stories-{s}", "tinystories", "GPTNeoForCausalLM", 8, 16, 16, d, p, 50257, 2048)
      for s, d, p in (("1M", 64, 1_000_000), ("3M", 128, 3_000_000), ("8M", 256, 8_000_000), ("28M", 512, 28_000_000))],
    ("tiny-stories-33M", "tinystories", "GPTNeoForCausalLM", 4, 16, 16, 768, 33_000_000, 50257, 2048),
    ("tiny-stories-1L-21M", "tinystories", "GPTNeoForCausalLM", 1, 16, 16, 1024, 21_000_000, 50257, 2048),
    ("tiny-stories-2L-33M", "tinystories", "GPTNeoForCausalLM", 2, 16, 16, 1024, 33_000_000, 50257, 2048),
    *[(f"tiny-stories-instruct-{s}", "tinystories", "GPTNeoForCausalLM", 8, 16, 16, d, p, 50257, 2048)
      for s, d, p in (("1M", 64, 1_000_000), ("3M", 128, 3_000_000), ("8M", 256, 8_000_000), ("28M", 512, 28_000_000))],
    ("tiny-stories-instruct-33M", "tinystories", "GPTNeoForCausalLM", 4, 16, 16, 768, 33_000_000, 50257, 2048),
    ("tiny-stories-instruct-1L-21M", "tinystories", "GPTNeoForCausalLM", 1, 16, 16, 1024, 21_000_000, 50257, 2048),
    ("tiny-stories-instruct-2L-33M", "tinystories", "GPTNeoForCausalLM", 2, 16, 16, 1024, 33_000_000, 50257, 2048),
    ("stories260K", "llama", "LlamaForCausalLM", 5, 8, 4, 64, 260_000, 512, 512),
    ("Llama-3.2-1B", "llama", "LlamaForCausalLM", 16, 32, 8, 2048, 1_240_000_000, 128256, 131072),
    ("Qwen2.5-0.5B", "qwen2", "Qwen2ForCausalLM", 24, 14, 2, 896, 494_000_000, 151936, 32768),
    ("gemma-2b", "gemma", "GemmaForCausalLM", 18, 8, 1, 2048, 2_506_000_000, 256000, 8192),
    ("phi-1", "phi", "PhiForCausalLM", 24, 32, 32, 2048, 1_420_000_000, 51200, 2048),
    *[(f"toy-{a}-{i}", "toy-embedded", "GPT2LMHeadModel", 2 + i % 3, 4, 4, 64, 200_000 + 50_000 * i, 512, 256)
      for i, a in enumerate(("gpt2", "llama", "neox", "attn", "mlp", "tiny"))],
]
EXTRA_MODEL = ("gpt2-small-retrained", "gpt2", "GPT2LMHeadModel", 12, 12, 12, 768, 124_000_000, 50257, 1024)

TASKS = {"ioi": "IOI", "greater_than": "Greater-than", "sequence": "Sequence continuation", "induction_task": "Induction task"}
TASK_OUTPUTS = {"mean_ablation": "mean ablation", "resample_ablation": "resample ablation",
                "mean_ablation_kl": "mean ablation (KL)", "resample_ablation_kl": "resample ablation (KL)", "dla": "direct logit attribution"}
PLANNED_WEIGHTS = {
    "ov_copying": ("OV copying (eigenvalues)", "Re(Σλ)/Σ|λ| of W_E·W_OV·W_U", "Elhage et al. 2021"),
    "copy_score": ("Copy score", "fraction of names in the top 5 logits through OV", "Wang et al. 2022"),
    "negative_copy_score": ("Negative copy score", "the copy score through -OV", "Wang et al. 2022"),
    "successor": ("Successor", "fraction of ordinal tokens whose successor is the argmax", "Gould et al. 2023"),
}
WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "he", "she", "it", "Mary", "John", "one", "two", "three",
         "four", "Monday", "Tuesday", "January", "February", "war", "year", "17", "32", "store", "drink", "gave",
         "<script>alert(1)</script>", "**bold**", "[x](javascript:alert(1))", "&amp;", "\u202e", "\x07", "|"]


def metric_catalogue() -> list[dict[str, Any]]:
    """Every registered metric output, plus the planned ones not registered yet."""
    out: dict[str, dict[str, Any]] = {}
    try:
        from ..families import outputs

        for oid, (m, title) in outputs().items():
            out[oid] = {"metric": oid, "family": m.id, "version": m.version, "title": title, "kind": m.kind,
                        "description": m.description, "formula": m.formula, "reference": m.reference, "details": m.details}
    except Exception:  # noqa: BLE001 - a half-written metric module must not stop the benchmark
        pass
    for oid, (title, formula, ref) in PLANNED_WEIGHTS.items():
        out.setdefault(oid, {"metric": oid, "family": oid, "version": "1", "title": title, "kind": "weights",
                             "description": f"{title} (synthetic benchmark values).", "formula": formula, "reference": ref, "details": ""})
    for fam, tname in TASKS.items():
        for suffix, otitle in TASK_OUTPUTS.items():
            oid = f"{fam}_{suffix}"
            out.setdefault(oid, {"metric": oid, "family": fam, "version": "1", "title": f"{tname}: {otitle}", "kind": "task",
                                 "description": f"{tname}, {otitle} per head (synthetic benchmark values).",
                                 "formula": "", "reference": "", "details": ""})
    for name in ("induction", "prev_token", "duplicate_token"):
        out.setdefault(name, {"metric": name, "family": name, "version": "1", "title": name.replace("_", " ").title(), "kind": "attention",
                              "description": "", "formula": "", "reference": "", "details": ""})
    return list(out.values())


def _values(rng: np.random.Generator, metric: dict[str, Any], L: int, H: int) -> np.ndarray:
    """Plausible scores: most heads near zero, a few strong ones where such heads usually sit."""
    depth = (np.arange(L)[:, None] + 0.5) / L * np.ones((1, H))
    mid, kind = metric["metric"], metric["kind"]
    base = rng.beta(0.6, 12, size=(L, H))
    strong = rng.random((L, H))
    if mid == "induction":
        v = base + (strong < 0.06 * (depth > 0.25)) * rng.uniform(0.3, 0.95, (L, H))
    elif mid == "prev_token":
        v = base + (strong < 0.08 * (depth < 0.5)) * rng.uniform(0.4, 0.98, (L, H))
    elif mid == "duplicate_token":
        v = base + (strong < 0.04) * rng.uniform(0.3, 0.9, (L, H))
    elif mid == "ov_copying":
        v = np.tanh(rng.normal(0.3 * depth, 0.5, (L, H)))
    elif kind == "weights":
        v = base + (strong < 0.05) * rng.uniform(0.3, 1.0, (L, H))
    elif mid.endswith("_kl"):
        v = rng.exponential(0.02, (L, H)) + (strong < 0.03) * rng.exponential(0.5, (L, H))
    elif mid.endswith("_dla"):  # logits
        v = rng.normal(0, 0.1, (L, H)) + (strong < 0.04) * rng.normal(0, 2.0, (L, H))
    elif kind == "task":
        v = rng.normal(0, 0.02, (L, H)) + (strong < 0.04) * rng.normal(0, 0.4, (L, H))
    else:
        v = base
    return np.clip(v, -6.0, 6.0) if kind == "task" else np.clip(v, -1.0, 1.0)


def _examples(rng: np.random.Generator, L: int, H: int) -> list[dict[str, Any]]:
    """Five short prompts per model, attention patterns [L, H, Q, Q] with causal, peaked rows."""
    prompts = {"repeated random tokens": 17, "IOI": 16, "Greater-than": 13, "Sequence continuation": 9, "Induction task": 21}
    out = []
    for name, q in prompts.items():
        toks = ["<bos>"] + [WORDS[i] for i in rng.integers(0, len(WORDS), q - 1)]
        logits = rng.normal(0, 1.0, (L, H, q, q)) + rng.exponential(2.5, (L, H, q, q)) * (rng.random((L, H, q, q)) < 0.12)
        logits[..., 0] += 2.0  # attention sinks on BOS
        mask = np.triu(np.ones((q, q), dtype=bool), 1)
        logits[..., mask] = -np.inf
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        out.append({"example": name, "tokens": toks, "patterns": p.astype(np.float32)})
    return out


def _model_rows(rng: np.random.Generator, spec: tuple, metrics: list[dict[str, Any]], built_at: str) -> dict[str, Any]:
    name, family, arch, L, H, kv, d_model, n_params, d_vocab, n_ctx = spec
    model = {"model": name, "n_layers": L, "n_heads": H, "n_kv_heads": kv, "d_model": d_model, "d_head": d_model // H,
             "d_vocab": d_vocab, "n_ctx": n_ctx, "n_params": n_params, "architecture": arch,
             "positional_embedding": "rotary" if family in ("neox", "llama", "qwen2", "gemma", "phi") else "standard",
             "family": family, "source": "hub", "location": name, "description": f"Synthetic benchmark model with the shape of {name}."}
    scores, provenance = [], []
    for m in metrics:
        reason = ""
        if m["kind"] == "task" and family == "toy-embedded" and m["family"] in ("ioi", "greater_than"):
            reason = "the tokenizer cannot express the task's prompts as single tokens"
        elif "_zero_ablation" in m["metric"]:
            reason = "zero ablation was not requested (run with the option ablation=zero)"
        if reason:  # as the builder does: a provenance row with the reason, no scores
            provenance.append({"model": name, "metric": m["metric"], "family": m["family"], "metric_version": m["version"],
                               "status": "not_applicable", "reason": reason, "setup": json.dumps({}), "seconds": 0.0})
            continue
        v = _values(rng, m, L, H)
        for layer in range(L):
            for head in range(H):
                detail = None
                if m["metric"] == "ov_copying":
                    detail = json.dumps({"ov_only": round(float(v[layer, head]) * 0.8, 4), "promotes": [
                        {"input": w, "top": [[WORDS[int(i)], round(float(x), 3)] for i, x in
                                             zip(rng.integers(0, len(WORDS), 5), np.sort(rng.exponential(2, 5))[::-1])]}
                        for w in ("␣the", "␣one", "␣Mary", "␣war", "␣17")]})
                elif m["metric"] == "successor":
                    detail = json.dumps({"per_set": {s: round(float(rng.random() * v[layer, head] * 1.5), 3)
                                                     for s in ("digits", "number words", "ordinals", "days", "months", "letters")}})
                scores.append((name, layer, head, m["metric"], float(v[layer, head]), m["version"], detail))
        setup: dict[str, Any]
        if m["kind"] == "attention":
            setup = {"probe": "BOS + X + X, X uniformly random tokens", "batch": 24, "t_min": 10, "t_max": 50, "seed": 0,
                     "length": 101, "token_pool": d_vocab // 2, "bos": True}
        elif m["kind"] == "task":
            setup = {"n_prompts": 100, "seed": 0, "accuracy": round(float(rng.uniform(0.3, 1.0)), 3),
                     "clean_metric": round(float(rng.uniform(0.5, 4.0)), 3), "corrupted_metric": round(float(rng.uniform(-0.5, 0.5)), 3)}
        else:
            setup = {"detail_top_k": 5, "seed": 0}
        provenance.append({"model": name, "metric": m["metric"], "family": m["family"], "metric_version": m["version"],
                           "status": "ok", "reason": "", "setup": json.dumps(setup), "seconds": round(float(rng.uniform(0.1, 30)), 2)})
    common = {"transformer_lens_version": "4.0.0", "torch_version": "2.6.0", "builder_version": "0.1.0", "git_revision": "bench",
              "device": "cuda", "dtype": "float32", "seed": 0, "built_at": built_at}
    for p in provenance:
        p.update(common)
    return {"model": model, "scores": scores, "provenance": provenance, "examples": _examples(rng, L, H)}


def _insert(con: Any, rec: dict[str, Any]) -> None:
    import pyarrow as pa

    from ..store.db import MODEL_COLUMNS, PROVENANCE_COLUMNS

    name = rec["model"]["model"]
    for table in ("models", "scores", "provenance", "attention_examples"):
        con.execute(f"DELETE FROM {table} WHERE model = ?", [name])
    cols = list(MODEL_COLUMNS)
    con.execute(f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [rec["model"].get(c) for c in cols])
    s = rec["scores"]
    scores_t = pa.table({"model": [r[0] for r in s], "layer": pa.array([r[1] for r in s], pa.int32()), "head": pa.array([r[2] for r in s], pa.int32()),  # noqa: F841
                         "metric": [r[3] for r in s], "value": pa.array([r[4] for r in s], pa.float64()), "metric_version": [r[5] for r in s],
                         "detail": pa.array([r[6] for r in s], pa.string())})
    con.execute("INSERT INTO scores SELECT model, layer, head, metric, value, metric_version, detail FROM scores_t")
    pcols = [c for c in PROVENANCE_COLUMNS]
    con.executemany(f"INSERT INTO provenance ({', '.join(pcols)}) VALUES ({', '.join('?' * len(pcols))})",
                    [[p.get(c) for c in pcols] for p in rec["provenance"]])
    rows: dict[str, list] = {"model": [], "example": [], "layer": [], "head": [], "tokens": [], "pattern": []}
    for ex in rec["examples"]:
        pats = ex["patterns"]
        L, H = pats.shape[:2]
        for layer in range(L):
            for head in range(H):
                rows["model"].append(name)
                rows["example"].append(ex["example"])
                rows["layer"].append(layer)
                rows["head"].append(head)
                rows["tokens"].append(ex["tokens"])
                rows["pattern"].append(pats[layer, head].ravel())
    ex_t = pa.table({"model": rows["model"], "example": rows["example"], "layer": pa.array(rows["layer"], pa.int32()),  # noqa: F841
                     "head": pa.array(rows["head"], pa.int32()), "tokens": pa.array(rows["tokens"], pa.list_(pa.string())),
                     "pattern": pa.array([list(map(float, p)) for p in rows["pattern"]], pa.list_(pa.float32()))})
    con.execute("INSERT INTO attention_examples SELECT model, example, layer, head, tokens, pattern FROM ex_t")


def _refresh(con: Any, metrics: list[dict[str, Any]]) -> None:
    con.execute("DELETE FROM metrics")
    for m in metrics:
        con.execute("INSERT INTO metrics (metric, family, version, title, kind, description, formula, reference, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [m["metric"], m["family"], m["version"], m["title"], m["kind"], m["description"], m["formula"], m["reference"], m["details"]])
    present = [r[0] for r in con.execute("SELECT DISTINCT metric FROM scores ORDER BY metric").fetchall()]
    cols = "".join(f', max(value) FILTER (WHERE metric = \'{m}\') AS "{m}"' for m in present if m.replace("_", "").isalnum())
    con.execute(f"CREATE OR REPLACE VIEW head_scores AS SELECT model, layer, head{cols} FROM scores GROUP BY model, layer, head ORDER BY model, layer, head")


def _write_parquet(data_dir: Path, rec: dict[str, Any]) -> None:
    from ..models.resolve import slugify
    from ..store.parquet import ModelRecord, write_record

    rows = [{"model": r[0], "layer": r[1], "head": r[2], "metric": r[3], "value": r[4], "metric_version": r[5], "detail": r[6]} for r in rec["scores"]]
    prov = [dict(p, setup=json.loads(p["setup"])) for p in rec["provenance"]]
    write_record(data_dir, slugify(rec["model"]["model"]), ModelRecord(model=rec["model"], rows=rows, provenance=prov, examples=rec["examples"]))


def make_database(root: Path, n_models: int | None = None, seed: int = 0, parquet: bool = True) -> dict[str, Any]:
    """Write ``root/data/wiki.duckdb`` (and Parquet files) with synthetic scores for the model list."""
    import duckdb

    from ..store.db import SCHEMA, db_path

    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = db_path(data_dir)
    path.unlink(missing_ok=True)
    metrics = metric_catalogue()
    specs = MODELS[:n_models] if n_models else MODELS
    rng = np.random.default_rng(seed)
    built_at = dt.datetime(2026, 1, 1).isoformat()
    con = duckdb.connect(str(path))
    try:
        con.execute(SCHEMA)
        for spec in specs:
            rec = _model_rows(rng, spec, metrics, built_at)
            _insert(con, rec)
            if parquet:
                _write_parquet(data_dir, rec)
        _refresh(con, metrics)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"models": len(specs), "heads": sum(s[3] * s[4] for s in specs), "metrics": len(metrics)}


def add_model(root: Path, spec: tuple = EXTRA_MODEL, seed: int = 1, parquet: bool = True) -> None:
    """Add one model to an existing synthetic database (what `wiki build --models X` does to it)."""
    import duckdb

    from ..store.db import db_path

    metrics = metric_catalogue()
    rec = _model_rows(np.random.default_rng(seed), spec, metrics, dt.datetime(2026, 1, 2).isoformat())
    con = duckdb.connect(str(db_path(root / "data")))
    try:
        con.begin()
        _insert(con, rec)
        _refresh(con, metrics)
        con.commit()
        con.execute("CHECKPOINT")
    finally:
        con.close()
    if parquet:
        _write_parquet(root / "data", rec)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (mkdocs, render workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _sizes(paths: list[Path]) -> dict[str, float]:
    sizes = [p.stat().st_size for p in paths]
    if not sizes:
        return {"n": 0, "max_kb": 0.0, "median_kb": 0.0, "total_mb": 0.0}
    return {"n": len(sizes), "max_kb": max(sizes) / 1024, "median_kb": statistics.median(sizes) / 1024, "total_mb": sum(sizes) / 2**20}


def run(root: Path | None = None, n_models: int | None = None, keep: bool = False, mkdocs: bool = True, parquet: bool = True,
        reuse: bool = False, out=print) -> dict[str, Any]:
    from ..site.render import build_site, render_markdown
    from ..workspace import open_workspace

    tmp = None
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="headwiki-site-bench-"))
        root = tmp
    root = Path(root).resolve()
    results: dict[str, Any] = {"root": str(root)}
    try:
        t = time.perf_counter()
        if reuse and (root / "data" / "wiki.duckdb").is_file():
            import duckdb

            con = duckdb.connect(str(root / "data" / "wiki.duckdb"))
            try:  # back to the generated state: drop the model a previous run added
                con.execute("DELETE FROM models WHERE model = ?", [EXTRA_MODEL[0]])
                for table in ("scores", "provenance", "attention_examples"):
                    con.execute(f"DELETE FROM {table} WHERE model = ?", [EXTRA_MODEL[0]])
                n_models_now, n_heads = con.execute("SELECT count(*), sum(n_layers * n_heads) FROM models").fetchone()
                n_metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
            finally:
                con.close()
            shape = {"models": n_models_now, "heads": int(n_heads), "metrics": n_metrics}
        else:
            shape = make_database(root, n_models=n_models, parquet=parquet)
        results["generate_s"] = time.perf_counter() - t
        results.update(shape)
        out(f"synthetic database: {shape['models']} models, {shape['heads']:,} heads, {shape['metrics']} metrics "
            f"({results['generate_s']:.1f} s to {'open' if reuse else 'generate'}) in {root}")
        ws = open_workspace(root)
        # 1. full build
        shutil.rmtree(ws.site_src, ignore_errors=True)
        shutil.rmtree(ws.site, ignore_errors=True)
        ws.site_src.mkdir()
        t, c = time.perf_counter(), _cpu()
        stats = render_markdown(ws)
        results["render_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if mkdocs:
            build_site(ws)
        results["mkdocs_s"] = time.perf_counter() - t
        results["full_s"] = results["render_s"] + results["mkdocs_s"]
        results["full_cpu_s"] = _cpu() - c
        heads = sorted((ws.site if mkdocs else ws.site_src).glob("heads/*/*.html"))
        results["head_pages"] = _sizes(heads)
        nav = [p for p in (ws.site if mkdocs else ws.site_src).rglob("*.html" if mkdocs else "*.md") if "heads" not in p.parts]
        results["nav_pages"] = _sizes(nav)
        hp, npg = results["head_pages"], results["nav_pages"]
        out(f"full build: {results['full_s']:.1f} s (render {results['render_s']:.1f} s: {stats.heads_rendered:,} head pages rendered, "
            f"{stats.written:,} files written; mkdocs {results['mkdocs_s']:.1f} s); CPU time {results['full_cpu_s']:.1f} s "
            f"on {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} before")
        out(f"  head pages: {hp['n']:,}, max {hp['max_kb']:.1f} KB, median {hp['median_kb']:.1f} KB, total {hp['total_mb']:.1f} MB")
        out(f"  mkdocs pages: {npg['n']:,}, max {npg['max_kb']:.1f} KB, median {npg['median_kb']:.1f} KB, total {npg['total_mb']:.1f} MB")
        # 2. nothing changed
        t = time.perf_counter()
        stats = render_markdown(ws)
        results["noop_render_s"] = time.perf_counter() - t
        results["noop"] = {"written": stats.written, "rendered": stats.heads_rendered}
        out(f"rebuild with nothing changed: render {results['noop_render_s']:.1f} s, {stats.written} files written, "
            f"{stats.heads_rendered} head pages rendered")
        # 3. add one model
        add_model(root, parquet=parquet)
        t = time.perf_counter()
        stats = render_markdown(ws)
        results["add_render_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if mkdocs:
            build_site(ws)
        results["add_mkdocs_s"] = time.perf_counter() - t
        results["add"] = {"rendered": stats.heads_rendered, "unchanged": stats.heads_unchanged, "written": stats.written}
        out(f"add one model ({EXTRA_MODEL[3] * EXTRA_MODEL[4]} heads): render {results['add_render_s']:.1f} s "
            f"({stats.heads_rendered} head pages rendered, {stats.heads_unchanged:,} unchanged; {stats.written:,} files written, "
            f"most of them the small cross-model sidecars), mkdocs {results['add_mkdocs_s']:.1f} s")
        ok_time = results["full_s"] < 60
        ok_size = results["head_pages"]["max_kb"] < 50
        out(f"targets: full build < 60 s: {'PASS' if ok_time else 'FAIL'}; head pages < 50 KB: {'PASS' if ok_size else 'FAIL'}")
        results["pass"] = ok_time and ok_size
        return results
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif keep:
            out(f"kept {root}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wiki_builder.site_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=None, help="Build here (default: a temporary folder, removed afterwards).")
    ap.add_argument("--models", type=int, default=None, help=f"Use the first N of the {len(MODELS)} model shapes.")
    ap.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    ap.add_argument("--no-mkdocs", action="store_true", help="Render only; skip mkdocs.")
    ap.add_argument("--no-parquet", action="store_true", help="Do not write Parquet files (faster data generation).")
    ap.add_argument("--reuse", action="store_true", help="With --root: reuse the database a previous run generated there.")
    ap.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    a = ap.parse_args(argv)
    res = run(a.root, a.models, keep=a.keep, mkdocs=not a.no_mkdocs, parquet=not a.no_parquet, reuse=a.reuse)
    if a.json:
        print(json.dumps(res, indent=1, default=str))
    return 0 if res.get("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
