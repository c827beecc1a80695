"""Benchmark the site at scale: a synthetic wiki of ~70 real model shapes (10,000+ heads), then a
full build, a no-op rebuild, and adding one model (``wiki site-bench``).

The synthetic data goes through the store exactly as a real build's does: one
:class:`~wiki_builder.store.parquet.ModelRecord` per model (its ``models`` row; one score row per
head and output of every registered family, ``families.outputs()``, with per-head details shaped
as the family declares them in ``detail_fields``; provenance rows with set-ups and task
accuracies; attention patterns on the probe and on one prompt per task family; every head's 20 examples on text,
``head_examples``), written with
``store.write_record`` and loaded with ``store.rebuild_db`` / ``store.sync_model``. So the site
renders from the real schema. Values are drawn to look like real scores: most heads near zero, a
few strong ones in plausible layers, signed metrics on both sides; tokens include hostile strings
(markup, Markdown, control and bidi characters). Nothing here needs torch. Prints build times and
page sizes (max / median KB, total MB, and the largest page of each kind against its limit).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..families import outputs, registry
from ..models.resolve import slugify
from ..scores.base import Detail, Metric
from ..store import ModelRecord, connect_readonly, rebuild_db, score_files, sync_model, write_record
from .page_sizes import largest_pages
from .page_sizes import report as report_pages

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

WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "he", "she", "it", "Mary", "John", "one", "two", "three",
         "four", "Monday", "Tuesday", "January", "February", "war", "year", "17", "32", "store", "drink", "gave",
         "<script>alert(1)</script>", "**bold**", "[x](javascript:alert(1))", "&amp;", "\u202e", "\x07", "|"]

def metric_catalogue() -> list[tuple[str, Metric, str]]:
    """Every registered metric output: (output id, its family, its title)."""
    return [(oid, fam, title) for oid, (fam, title) in outputs().items()]


def _values(rng: np.random.Generator, mid: str, kind: str, L: int, H: int) -> np.ndarray:
    """Plausible scores: most heads near zero, a few strong ones where such heads usually sit."""
    depth = (np.arange(L)[:, None] + 0.5) / L * np.ones((1, H))
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


SET_NAMES = ("digits", "number words", "ordinals", "days", "months", "letters")


def _detail_keys(oid: str, fam: Metric) -> list[str]:
    """The declared keys a real build stores for this output. Task outputs follow the engine (exact
    method): an ablation output has the ablated metric and the attribution estimate, its KL output
    the ablated KL, the DLA output nothing; other families store every key they declare."""
    if fam.kind == "task":
        if oid.endswith("_dla"):
            return []
        keys = ["kl_ablated"] if oid.endswith("_kl") else ["metric_ablated", "attribution_estimate"]
        return [k for k in keys if k in fam.detail_fields]
    return list(fam.detail_fields)


def _fake(rng: np.random.Generator, d: Detail, value: float) -> Any:
    """A synthetic value of one declared kind."""
    word = lambda: WORDS[int(rng.integers(0, len(WORDS)))]  # noqa: E731
    if d.kind == "token":
        return word()
    if d.kind == "tokens":
        return [word() for _ in range(5)]
    if d.kind == "token_scores":
        return [[word(), round(float(x), 3)] for x in np.sort(rng.exponential(2, 5))[::-1]]
    if d.kind == "number":
        return round(float(value) * float(rng.uniform(0.5, 1.5)), 4)
    if d.kind == "count":
        return int(rng.integers(0, 40))
    if d.kind == "flag":
        return bool(rng.random() < 0.3)
    if d.kind == "text":
        return SET_NAMES[int(rng.integers(0, len(SET_NAMES)))]
    if d.kind == "numbers":
        return {s: round(float(rng.random() * abs(value) * 1.5), 3) for s in SET_NAMES}
    if d.kind == "rows":
        return [{k: _fake(rng, c, value) for k, c in d.columns.items()} for _ in range(5)]
    return None


def _examples(rng: np.random.Generator, L: int, H: int) -> list[dict[str, Any]]:
    """Attention patterns [L, H, Q, Q] (causal, peaked rows) on the prompts a real build shows: the
    repeated-random-tokens probe and one prompt per task family, named by the family's title."""
    names = ["repeated random tokens"] + [m.title for m in registry().values() if m.kind == "task"]
    out = []
    for name in names:
        q = int(rng.integers(9, 22))
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


def composition_table(name: str, L: int, H: int, d_model: int) -> Any:
    """Every ordered pair of heads in different layers, three kinds each, as the composition family stores them:
    values near 0 after the baseline (about 1/sqrt(d_model)) is subtracted, a few strong links. Drawn from the
    model's own generator, so the other synthetic data stays as it was."""
    import zlib

    from ..store.parquet import table_of

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    sl, sh, dl, dh = (a.ravel() for a in np.meshgrid(np.arange(L), np.arange(H), np.arange(L), np.arange(H), indexing="ij"))
    keep = sl < dl
    n = int(keep.sum())
    base = 1 / np.sqrt(d_model)
    cols = {"src_layer": np.tile(sl[keep], 3), "src_head": np.tile(sh[keep], 3), "dst_layer": np.tile(dl[keep], 3),
            "dst_head": np.tile(dh[keep], 3), "kind": np.repeat(np.array(["q", "k", "v"]), n),
            "value": rng.normal(0, 0.02, 3 * n) + (rng.random(3 * n) < 0.01) * rng.uniform(0.05, 0.4, 3 * n),
            "baseline": np.full(3 * n, base)}
    return table_of("composition", name, "composition", cols)


def head_examples_table(name: str, L: int, H: int) -> Any:
    """Every head's examples on text as the corpus pass stores them (``build.examples_table``): 5 contexts by
    strongest attention, 5 by output norm, one per decile, each 8 to 44 tokens with peaked attention; drawn from
    the model's own generator, so the other synthetic data stays as it was."""
    import zlib

    from ..build import examples_table
    from ..scores.corpus import KINDS

    rng = np.random.default_rng(zlib.crc32(b"examples:" + name.encode()))
    rows = []
    for layer in range(L):
        for head in range(H):
            for kind, n in zip(KINDS, (5, 5, 10)):
                for rank in range(1, n + 1):
                    q = int(rng.integers(4, 40))
                    after = int(rng.integers(0, 5))
                    toks = ["<bos>"] + [WORDS[i] for i in rng.integers(0, len(WORDS), q + after)]
                    logits = rng.normal(0, 1.0, q + 1) + rng.exponential(3.0, q + 1) * (rng.random(q + 1) < 0.15)
                    p = np.exp(logits - logits.max())
                    p /= p.sum()
                    rows.append({"layer": layer, "head": head, "kind": kind, "rank": rank, "decile": rank - 1 if kind == "decile" else None,
                                 "document": int(rng.integers(0, 64)), "start": 0, "query_position": q, "tokens": toks,
                                 "token_ids": [int(i) for i in rng.integers(0, 50000, len(toks))],
                                 "attention": np.round(p, 4).tolist(),
                                 "value": float(p[1:].max()) if kind == "max_attention" else float(rng.uniform(0, 20))})
    return examples_table(name, rows)


def model_record(rng: np.random.Generator, spec: tuple, built_at: str) -> ModelRecord:
    """One synthetic model as the builder stores it (``build.score_model``): its row, its scores with
    details, one provenance row per output (with the reason where it does not apply), its examples."""
    name, family, arch, L, H, kv, d_model, n_params, d_vocab, n_ctx = spec
    model = {"model": name, "n_layers": L, "n_heads": H, "n_kv_heads": kv, "d_model": d_model, "d_head": d_model // H,
             "d_vocab": d_vocab, "n_ctx": n_ctx, "n_params": n_params, "architecture": arch,
             "positional_embedding": "rotary" if family in ("neox", "llama", "qwen2", "gemma", "phi") else "standard",
             "family": family, "source": "hub", "location": name, "description": f"Synthetic benchmark model with the shape of {name}."}
    common = {"model": name, "transformer_lens_version": "4.0.0", "torch_version": "2.6.0", "builder_version": "0.1.0",
              "git_revision": "bench", "device": "cuda", "dtype": "float32", "seed": 0, "built_at": built_at}
    rows, provenance = [], []
    for oid, fam, _title in metric_catalogue():
        prov = {**common, "metric": oid, "family": fam.id, "metric_version": fam.version}
        reason = ""
        if fam.kind == "task" and family == "toy-embedded" and fam.id in ("ioi", "greater_than"):
            reason = "the tokenizer cannot express the task's prompts as single tokens"
        elif "_zero_ablation" in oid:
            reason = "zero ablation was not requested (run with the option ablation=zero)"
        if reason:  # as the builder does: a provenance row with the reason, no scores
            provenance.append({**prov, "status": "not_applicable", "reason": reason, "setup": {}, "seconds": 0.0})
            continue
        v = _values(rng, oid, fam.kind, L, H)
        keys = _detail_keys(oid, fam)
        for layer in range(L):
            for head in range(H):
                detail = {k: _fake(rng, fam.detail_fields[k], v[layer, head]) for k in keys}
                rows.append({"model": name, "layer": layer, "head": head, "metric": oid, "value": float(v[layer, head]),
                             "metric_version": fam.version, "detail": json.dumps(detail) if detail else None})
        if fam.kind == "attention":
            setup = {"probe": "BOS + X + X, X uniformly random tokens", "batch": 24, "t_min": 10, "t_max": 50, "seed": 0,
                     "length": 101, "token_pool": d_vocab // 2, "bos": True}
        elif fam.kind == "task":
            setup = {"n_prompts": 32, "seed": 0, "accuracy": round(float(rng.uniform(0.3, 1.0)), 3),
                     "clean_metric": round(float(rng.uniform(0.5, 4.0)), 3), "corrupted_metric": round(float(rng.uniform(-0.5, 0.5)), 3)}
        else:
            setup = {"detail_top_k": 5, "seed": 0}
        provenance.append({**prov, "status": "ok", "reason": "", "setup": setup, "seconds": round(float(rng.uniform(0.1, 30)), 2)})
    provenance.append({**common, "metric": "head_examples", "family": "head_examples", "metric_version": "1", "status": "ok", "reason": "",
                       "seconds": 1.0, "setup": {"corpus": {"name": "NeelNanda/pile-10k", "source": "hub", "sha256": "0" * 64,
                                                            "documents": 64, "tokens": 4096}}})
    tables = {"composition": composition_table(name, L, H, d_model)} if L > 1 else {}
    return ModelRecord(model=model, rows=rows, provenance=provenance, examples=_examples(rng, L, H),
                       tables={**tables, "head_examples": head_examples_table(name, L, H)})


def make_database(root: Path, n_models: int | None = None, seed: int = 0, parquet: bool = True) -> dict[str, Any]:
    """Write ``root/data/wiki.duckdb`` (and, with ``parquet``, one Parquet file per model, as a build
    does) with synthetic scores for the first ``n_models`` shapes (all by default)."""
    data_dir = Path(root) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    specs = MODELS[:n_models] if n_models else MODELS
    rng = np.random.default_rng(seed)
    built_at = dt.datetime(2026, 1, 1).isoformat()
    records = [model_record(rng, spec, built_at) for spec in specs]
    if parquet:
        for rec in records:
            write_record(data_dir, slugify(rec.model["model"]), rec)
    rebuild_db(data_dir, records)
    return {"models": len(specs), "heads": sum(s[3] * s[4] for s in specs), "metrics": len(outputs())}


def add_model(root: Path, spec: tuple = EXTRA_MODEL, seed: int = 1, parquet: bool = True) -> None:
    """Add one model to an existing synthetic wiki, as `wiki build --models X` does: its Parquet file, then its rows."""
    data_dir = Path(root) / "data"
    rec = model_record(np.random.default_rng(seed), spec, dt.datetime(2026, 1, 2).isoformat())
    if parquet:
        write_record(data_dir, slugify(rec.model["model"]), rec)
    sync_model(data_dir, rec)


def _reopen(root: Path, n_models: int | None, parquet: bool) -> dict[str, Any]:
    """Back to the generated state of a previous run: the database rebuilt from its Parquet files
    without the model that run added (generated afresh when there are no Parquet files)."""
    data_dir = root / "data"
    extra = [f for f in score_files(data_dir) if Path(f).name == f"{slugify(EXTRA_MODEL[0])}.parquet"]
    for f in extra:
        Path(f).unlink()
    if not score_files(data_dir):
        return make_database(root, n_models=n_models, parquet=parquet)
    rebuild_db(data_dir)
    con = connect_readonly(data_dir)
    try:
        n_models_now, n_heads = con.execute("SELECT count(*), sum(n_layers * n_heads) FROM models").fetchone()
        n_metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    finally:
        con.close()
    return {"models": int(n_models_now), "heads": int(n_heads or 0), "metrics": int(n_metrics)}


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
            shape = _reopen(root, n_models, parquet)
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
        results["head_json"] = hj = _sizes(sorted((ws.site if mkdocs else ws.site_src).glob("heads/*/*.json")))
        out(f"  head JSON files: {hj['n']:,}, max {hj['max_kb']:.1f} KB, median {hj['median_kb']:.1f} KB, total {hj['total_mb']:.1f} MB")
        out(f"  mkdocs pages: {npg['n']:,}, max {npg['max_kb']:.1f} KB, median {npg['median_kb']:.1f} KB, total {npg['total_mb']:.1f} MB")
        if mkdocs:  # the built pages (the Markdown of a --no-mkdocs run holds no grids yet)
            results["largest"] = {r.kind: {"page": r.page, "kb": r.bytes / 1024, "ok": r.ok} for r in largest_pages(ws.site)}
            report_pages(ws.site, out)
            results["pages_ok"] = all(v["ok"] for k, v in results["largest"].items() if k != "head")
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
        ok_nav = results.get("pages_ok", True)
        out(f"targets: full build < 60 s: {'PASS' if ok_time else 'FAIL'}; head pages < 50 KB: {'PASS' if ok_size else 'FAIL'}"
            + (f"; navigation pages < 1 MB: {'PASS' if ok_nav else 'FAIL'}" if mkdocs else ""))
        results["pass"] = ok_time and ok_size and ok_nav
        return results
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif keep:
            out(f"kept {root}")
