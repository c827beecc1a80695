"""The home page's table of mosaics, made from the metrics present (so a metric added to the registry appears
in it without a template change): a row per kind of head behaviour (attention, weights) listing its
metrics, and a table of tasks by measures (mean, resample and zero ablation, their KL forms, direct
logit attribution), instead of one long list of titles."""

from __future__ import annotations

from typing import Any

from .data import KIND_TITLES

_WORDS = {"kl": "KL", "dla": "DLA"}
_MEASURE_ORDER = ("mean_ablation", "resample_ablation", "zero_ablation", "mean_ablation_kl", "resample_ablation_kl",
                  "zero_ablation_kl", "dla")


def measure_label(measure: str) -> str:
    """``resample_ablation_kl`` -> "resample ablation KL", ``dla`` -> "DLA"."""
    return " ".join(_WORDS.get(w, w) for w in measure.split("_") if w)


def _task_title(meta: dict[str, Any]) -> str:
    """A task family's name: the part of an output's title before its first colon ("IOI", "Greater-than")."""
    title = str(meta.get("title") or meta["family"])
    return title.split(":", 1)[0].strip() if ":" in title else str(meta["family"])


def home_tables(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """``behaviours``: [{kind, title, metrics}] for attention, weights and any other non-task kind;
    ``measures``: [(measure, label)] in a fixed order, then any new ones; ``tasks``: [{family, title, cells:
    {measure: metric}}]. A task output's measure is its id less the family's prefix."""
    behaviours: dict[str, dict[str, Any]] = {}
    tasks: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    for meta in metrics:
        kind, fam, mid = meta.get("kind") or "other", str(meta.get("family") or meta["metric"]), meta["metric"]
        if kind == "task" and mid.startswith(fam + "_"):
            measure = mid[len(fam) + 1:]
            row = tasks.setdefault(fam, {"family": fam, "title": _task_title(meta), "cells": {}})
            row["cells"][measure] = meta
            if measure not in seen:
                seen.append(measure)
            continue
        title = KIND_TITLES.get(kind, "Other") if kind != "task" else KIND_TITLES["task"]
        behaviours.setdefault(kind, {"kind": kind, "title": title, "metrics": []})["metrics"].append(meta)
    ordered = [m for m in _MEASURE_ORDER if m in seen] + [m for m in seen if m not in _MEASURE_ORDER]
    return {"behaviours": list(behaviours.values()), "measures": [(m, measure_label(m)) for m in ordered],
            "tasks": sorted(tasks.values(), key=lambda t: t["title"].lower())}
