"""Plain-language labels for heads, each with its evidence and threshold.

A label says what sets a head apart within its model, so it needs two things: an absolute floor
(``threshold``: the behaviour is really there), and two relative to the model's own distribution: a
margin over the model's median head (``margin``: most of its heads do not do it as much) and a share
of the model's strongest head (``share``: it is among the heads that do it most). A model whose every
head copies gets no "copying head" label; its one previous-token head does get "previous-token head";
of the heads whose ablation costs a task something, only those close to the costliest are labelled. A label is
shown on a head's page as, e.g., "induction head: stripe 0.91 (>= 0.40), 1st of 48 heads", followed by
the relative evidence ("+0.85 over the model's median head 0.06, needs +0.20"), and is searchable. The rules live here, in one table, so a metric's owner can tune its
threshold in one place; a metric without a rule simply gets no label (its score, rank and
percentile are still on every page). A rule matches a metric id exactly or, with a trailing
``*`` / leading ``*``, by prefix / suffix; task rules name the task from the metric's family, as
the task table's ``label`` column says.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..tasks import table as task_table
from .text import ordinal


@dataclass(frozen=True)
class LabelRule:
    pattern: str  # metric id, or an fnmatch pattern such as "*_dla"
    name: str  # what the head is called; "{task}" is replaced by the task's name
    evidence: str  # what the number is, in words
    threshold: float  # |value| at or beyond which the label applies
    sign: int = +1  # +1: value >= threshold (rank from the top); -1: value <= -threshold (rank from the bottom)
    margin: float | None = None  # how far beyond the model's median head the value must be; None: half the threshold
    share: float = 0.5  # the value must reach this share of the model's most extreme value on its side

    @property
    def needs(self) -> float:
        return self.threshold / 2 if self.margin is None else self.margin


RULES: tuple[LabelRule, ...] = (
    LabelRule("induction", "induction head", "stripe", 0.4),
    LabelRule("prefix_matching", "induction head", "prefix matching", 0.4),
    LabelRule("prev_token", "previous-token head", "attention to the previous token", 0.5),
    LabelRule("duplicate_token", "duplicate-token head", "attention to the earlier copy", 0.4),
    LabelRule("self_attention", "self-attending head", "attention to its own token", 0.5),
    LabelRule("bos_attention", "attention sink", "attention to the first token", 0.3),  # Gu et al. 2025's threshold
    LabelRule("ov_copying", "copying head (OV)", "OV eigenvalue score", 0.7),
    LabelRule("ov_copying", "anti-copying head (OV)", "OV eigenvalue score", 0.7, sign=-1),
    LabelRule("copy_score", "copy head", "copy score", 0.5),
    LabelRule("negative_copy_score", "negative copy head", "negative copy score", 0.5),
    LabelRule("successor", "successor head", "successor score", 0.5),
    # ablation outputs: the fraction of the clean-minus-corrupted task metric lost when the head is ablated
    LabelRule("*_mean_ablation", "important for {task}", "mean ablation loses", 0.1),
    LabelRule("*_resample_ablation", "important for {task}", "resample ablation loses", 0.1),
    LabelRule("*_zero_ablation", "important for {task}", "zero ablation loses", 0.1),
    # direct logit attribution is in logits (the head's share of the task's logit difference)
    LabelRule("*_dla", "writes the answer in {task}", "direct logit attribution", 1.0),
    LabelRule("*_dla", "writes against the answer in {task}", "direct logit attribution", 1.0, sign=-1),
)


def task_names() -> dict[str, str]:
    """Task family id -> how a label names the task ("IOI", "the induction task"), from the task table
    (read at each call, so a task added to the table is named as its row says)."""
    return {t.name: t.label for t in task_table.TASKS}


def task_name(family: str | None) -> str:
    if not family:
        return "the task"
    return task_names().get(family, family.replace("_", " "))


@lru_cache(maxsize=4096)
def rules_for(metric: str) -> tuple[LabelRule, ...]:
    return tuple(r for r in RULES if r.pattern == metric or ("*" in r.pattern and fnmatch.fnmatchcase(metric, r.pattern)))


def model_labels(grids: dict[str, np.ndarray], ranks: dict[str, np.ndarray], bottom: dict[str, np.ndarray],
                 metrics: dict[str, dict[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """Every labelled head of one model -> its labels, merged by name (a head important for IOI under
    two ablations gets one label with two pieces of evidence), best-ranked first."""
    found: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for mid, grid in grids.items():
        rules = rules_for(mid)
        if not rules:
            continue
        meta = metrics.get(mid, {})
        n = int(np.isfinite(grid).sum())
        median = float(np.nanmedian(grid)) if n else 0.0
        extreme = {+1: float(np.nanmax(grid)) if n else 0.0, -1: float(np.nanmin(grid)) if n else 0.0}
        for rule in rules:
            with np.errstate(invalid="ignore"):
                hit = grid >= rule.threshold if rule.sign > 0 else grid <= -rule.threshold
                hit &= (grid - median) * rule.sign >= rule.needs  # and it sets the head apart from the model's typical head
                hit &= grid * rule.sign >= rule.share * extreme[rule.sign] * rule.sign  # among the model's strongest
            if not hit.any():
                continue
            name = rule.name.format(task=task_name(meta.get("family")))
            op = "≥" if rule.sign > 0 else "≤"
            thr = rule.threshold if rule.sign > 0 else -rule.threshold
            for layer, head in zip(*np.nonzero(hit)):
                layer, head = int(layer), int(head)
                v = float(grid[layer, head])
                rank = int((ranks if rule.sign > 0 else bottom)[mid][layer, head])
                where = f"{ordinal(rank)} of {n} heads" if rule.sign > 0 else f"{ordinal(rank)} most negative of {n} heads"
                item = {"metric": mid, "title": meta.get("title", mid), "evidence": rule.evidence, "value": v,
                        "threshold": thr, "op": op, "rank": rank, "n": n, "where": where,
                        "text": f"{rule.evidence} {v:.2f} ({op} {thr:g}), {where}", "median": median,
                        "relative": f"{v - median:+.2f} over the model's median head ({median:.2f}; needs "
                                    f"{rule.sign * rule.needs:+g}), {v / extreme[rule.sign]:.2f} of its strongest "
                                    f"({extreme[rule.sign]:.2f}; needs {rule.share:g})"}
                label = found.setdefault((layer, head), {}).setdefault(name, {"name": name, "items": [], "best_rank": rank})
                label["items"].append(item)
                label["best_rank"] = min(label["best_rank"], rank)
    return {k: sorted(v.values(), key=lambda l: (l["best_rank"], l["name"])) for k, v in found.items()}
