"""Which architectures TransformerLens supports does the wiki cover? (``wiki coverage``)

For every architecture in TransformerLens' official model list, and the most common text
architectures of its registry, a tiny stand-in (:func:`wiki_builder.models.standins.tiny_config`:
2 layers, 4 heads, d_model 64, random weights, the GPT-2 tokenizer) is built into a temporary
folder and scored with every family, as ``wiki build`` would. Task families are rightly "not
applicable" on random weights, so one task is also scored with ``force_tasks`` to record which
ablation engine path the model takes (the exact engine, or the naive loop when its replay check
fails). Audio and vision models are refused before loading, with the reason.

A row's ``status``: ``covered`` (loads; no family failed), ``partial`` (some families failed),
``failed`` (the model did not load or every family failed), ``refused`` (not a text model),
``no stand-in`` (no tiny config for it).
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

TOP_REGISTRY = 40  # the most common text architectures of the registry (by model count): 25 asked for, and the tail to 95%
# asked for by name besides those (Falcon, Granite, DeepSeek-V3 are just below the top 25, or in it)
EXTRA = ["FalconForCausalLM", "GraniteForCausalLM", "DeepseekV3ForCausalLM", "GPTBigCodeForCausalLM", "StableLmForCausalLM"]
LEGACY = "TransformerLens-format checkpoint"
# --quick (CI): one family of each path that differs per architecture: the shared probe pass (attention patterns),
# the layer-0 MLP readout (copy_score) and the stacked OV weights (ov_copying); no tasks, no example patterns
QUICK_FAMILIES = ("induction", "prev_token", "duplicate_token", "copy_score", "ov_copying")


def _guess_arch(name: str) -> str:
    """The architecture of an official model that the registry data does not list."""
    low = name.lower()
    if low.startswith(("neelnanda/", "arthurconmy/", "baidicoot/")):
        return LEGACY
    for key, arch in (("gpt-j", "GPTJForCausalLM"), ("gpt-neo", "GPTNeoForCausalLM"), ("llama", "LlamaForCausalLM"),
                      ("wav2vec2", "Wav2Vec2ForPreTraining"), ("qwen/qwen-", "QWenLMHeadModel"), ("santacoder", "GPT2LMHeadModel"),
                      ("gpt2", "GPT2LMHeadModel")):
        if key in low:
            return arch
    return "unknown"


@lru_cache(maxsize=1)
def registry_counts() -> tuple[dict[str, int], dict[str, int], int]:
    """(models per architecture in the official list, models per architecture in the registry, registry total)."""
    from ..models.registry import registry_architectures
    from ..models.resolve import official_names

    arch_of = registry_architectures()
    official, _ = official_names()
    in_official = collections.Counter(arch_of.get(n) or _guess_arch(n) for n in official)
    in_registry = collections.Counter(a for a in arch_of.values() if a)
    return dict(in_official), dict(in_registry), len(arch_of)


def architectures() -> list[str]:
    """Every architecture of the official list, then the registry's most common text architectures."""
    from ..models.registry import modality

    in_official, in_registry, _ = registry_counts()
    out = [a for a, _ in sorted(in_official.items(), key=lambda kv: -kv[1])]
    text = [a for a, _ in sorted(in_registry.items(), key=lambda kv: -kv[1]) if modality(a)[0] == "text"]
    out += [a for a in dict.fromkeys(text[:TOP_REGISTRY] + EXTRA) if a not in out]
    return out


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def check_architecture(arch: str, work: Path, seed: int = 0, engine_check: bool = True, quick: bool = False) -> dict[str, Any]:
    """Build the stand-in of ``arch`` and score it; one row of the coverage table (never raises)."""
    from ..models.registry import modality
    from ..models.standins import build_tiny, tiny_model_type

    in_official, in_registry, _ = registry_counts()
    row: dict[str, Any] = {"architecture": arch, "official_models": in_official.get(arch, 0),
                           "registry_models": in_registry.get(arch, 0), "status": "", "computed": [], "not_applicable": [],
                           "failed": {}, "engine": "", "seconds": 0.0, "reason": ""}
    kind, reason = modality(arch)
    if kind != "text":
        row.update(status="refused", reason=reason)
        return row
    if arch != LEGACY and tiny_model_type(arch) is None:
        row.update(status="no stand-in", reason="transformers has no model class of this name (remote code only): no tiny config")
        return row
    start = time.perf_counter()
    try:
        row.update(_score(arch, work, seed, engine_check, build_tiny, quick))
    except Exception as exc:  # a model that does not load, or fails as a whole: a row, never a crash
        row.update(status="failed", reason=_short(f"{type(exc).__name__}: {exc}".replace(str(work), "<stand-in dir>")))
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _score(arch: str, work: Path, seed: int, engine_check: bool, build_tiny: Any, quick: bool = False) -> dict[str, Any]:
    from ..models.resolve import ModelSpec

    with contextlib.ExitStack() as stack:
        if arch == LEGACY:  # a TransformerLens-format repo in a cache of its own, loaded as the hub id it stands in for
            spec = stack.enter_context(legacy_standin(work, seed))
        else:
            folder = build_tiny(arch, work / "models" / arch, seed=seed)
            spec = ModelSpec(name=f"tiny-{arch}", source="local", location=str(folder))
        return _score_spec(spec, work, seed, engine_check, quick)


@contextlib.contextmanager
def legacy_standin(work: Path, seed: int) -> Iterator[Any]:
    """The tiny TransformerLens-format stand-in in a Hugging Face cache under ``work`` (offline, for this block only)."""
    from huggingface_hub import constants

    from ..models.resolve import ModelSpec
    from ..models.standins import TL_LEGACY_HUB_ID, build_tl_legacy, place_in_hf_cache

    folder = build_tl_legacy(work / "models" / "tl-legacy", seed=seed)
    place_in_hf_cache(folder, work / "hf", TL_LEGACY_HUB_ID)
    saved = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(work / "hf" / "hub"), True
    try:
        yield ModelSpec(name="tiny-tl-legacy", source="hub", location=TL_LEGACY_HUB_ID)
    finally:
        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved


def _score_spec(spec: Any, work: Path, seed: int, engine_check: bool, quick: bool) -> dict[str, Any]:
    from ..build import score_model
    from ..families import registry
    from ..scores.base import BuildOptions, RunContext
    from ..workspace import Workspace

    ws = Workspace(work / "root")
    fams = registry()
    wanted = [f for f in fams if f in QUICK_FAMILIES] if quick else list(fams)
    # few task prompts: on random weights the tasks are not applicable whatever their number
    record = score_model(spec, ws, "cpu", "float32", wanted, RunContext(seed=seed, options=BuildOptions(task_prompts=8),
                                                                        examples=not quick))
    status: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for p in record.provenance:
        fid = p.get("family") or p["metric"]
        if p["status"] == "failed" or status.get(fid) != "failed":
            status[fid] = p["status"]
            reasons[fid] = p.get("reason") or ""
    out: dict[str, Any] = {
        "computed": [f for f, s in status.items() if s == "ok"],
        "not_applicable": [f for f, s in status.items() if s == "not_applicable"],
        "failed": {f: _short(reasons[f]) for f, s in status.items() if s == "failed"},
    }
    na_task = next((reasons[f] for f in out["not_applicable"] if fams[f].kind == "task"), "")
    if engine_check:
        task = next((f for f, m in fams.items() if m.kind == "task"), None)
        if task is not None:
            try:
                forced = score_model(spec, ws, "cpu", "float32", [task],
                                     RunContext(seed=seed, options=BuildOptions(task_prompts=4), force_tasks=True, examples=False))
                setups = [p for p in forced.provenance if p["status"] == "ok"]
                if setups:
                    info = (setups[0].get("setup") or {}).get("engine") or {}
                    text = info.get("engine", "") if isinstance(info, dict) else str(info)
                    out["engine"] = "exact" if text.startswith("exact") else _short(text, 200) if text else "?"
                else:
                    failed = [p for p in forced.provenance if p["status"] != "ok"]
                    out["engine"] = _short(f"{failed[0]['status']}: {failed[0].get('reason')}") if failed else "?"
            except Exception as exc:
                out["engine"] = _short(f"failed: {type(exc).__name__}: {exc}")
    out["status"] = "partial" if out["failed"] else "covered"
    if not out["computed"]:  # nothing scored (every family failed or does not apply): not covered
        out["status"] = "failed"
        first = next((reasons[f] for f in out["not_applicable"]), "")
        out["reason"] = _short(f"no family computed: {first}") if first else "no family computed"
        return out
    if na_task and not out["failed"]:
        out["reason"] = _short(f"tasks not applicable: {na_task}", 120)
    return out


def run_coverage(archs: list[str] | None = None, seed: int = 0, engine_check: bool = True,
                 on_row: Any = None, quick: bool = False) -> dict[str, Any]:
    """Rows for these architectures (all of :func:`architectures` when None), plus the registry share covered."""
    import os

    archs = archs or architectures()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the stand-ins are local folders: nothing to fetch
    rows = []
    with tempfile.TemporaryDirectory(prefix="wiki-coverage-") as tmp:
        for arch in archs:
            row = check_architecture(arch, Path(tmp), seed=seed, engine_check=engine_check and not quick, quick=quick)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return {"rows": rows, **share(rows)}


def merge(stored: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored rows with these architectures' rows replaced (or added), in :func:`architectures` order, and the share."""
    by_arch = {r["architecture"]: r for r in stored}
    by_arch.update({r["architecture"]: r for r in new})
    order = {a: i for i, a in enumerate(architectures())}
    rows = sorted(by_arch.values(), key=lambda r: order.get(r["architecture"], len(order)))
    return {"rows": rows, **share(rows)}


def share(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How much of TransformerLens' registered text models (by model count) use an architecture these rows cover.

    Audio and vision models are refused by design, so they are left out of the denominator
    (``registry_text``); ``registry_total`` still counts every registered model.
    """
    from ..models.registry import modality

    _, in_registry, total = registry_counts()
    text = sum(n for a, n in in_registry.items() if modality(a)[0] == "text")
    covered = sum(r["registry_models"] for r in rows if r["status"] == "covered")
    partial = sum(r["registry_models"] for r in rows if r["status"] == "partial")
    return {"registry_total": total, "registry_text": text, "registry_covered": covered, "registry_partial": partial,
            "registry_share_covered": covered / text if text else 0.0,
            "registry_share_covered_or_partial": (covered + partial) / text if text else 0.0}
