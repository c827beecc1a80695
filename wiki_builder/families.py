"""The built-in score families, listed in one place.

A family is one module with ``METRIC`` (attention and weights scores in :mod:`.scores`), listed in
``SCORES`` below, or one row of the task table (:mod:`.tasks.table`). ``register`` adds one at run
time (a plugin). Importing this module loads no torch.
"""

from __future__ import annotations

from functools import lru_cache

from .scores.attention import (
    attention_entropy,
    bos_attention,
    duplicate_token,
    induction,
    mean_attention_distance,
    prefix_matching,
    prev_token,
    self_attention,
)
from .scores.base import Metric
from .scores.weights import composition, copy_score, ov_copying, successor
from .tasks import families as task_families

# Attention and weights families; the task families follow, one per row of tasks.table.TASKS.
SCORES: tuple[Metric, ...] = (
    attention_entropy.METRIC,
    bos_attention.METRIC,
    composition.METRIC,
    copy_score.METRIC,
    duplicate_token.METRIC,
    induction.METRIC,
    mean_attention_distance.METRIC,
    ov_copying.METRIC,
    prefix_matching.METRIC,
    prev_token.METRIC,
    self_attention.METRIC,
    successor.METRIC,
)

_extra: list[Metric] = []


def register(metric: Metric) -> Metric:
    """Add a family that is not built in (a plugin, or a test's throwaway metric) to this process's registry."""
    if metric.id in registry() and registry()[metric.id] is not metric:
        raise ValueError(f"A score family with the id '{metric.id}' is already registered.")
    if metric.id not in registry():
        _extra.append(metric)
        registry.cache_clear()
    return metric


def unregister(metric_id: str) -> None:
    _extra[:] = [m for m in _extra if m.id != metric_id]
    registry.cache_clear()


@lru_cache(maxsize=1)
def registry() -> dict[str, Metric]:
    """Every family by id, built-ins first."""
    found: dict[str, Metric] = {}
    for metric in (*SCORES, *task_families.families(), *_extra):
        if metric.id in found:
            raise RuntimeError(f"Two score families use the id '{metric.id}'.")
        found[metric.id] = metric
    return found


def outputs() -> dict[str, tuple[Metric, str]]:
    """Every stored metric id (an output of some family) -> (family, title)."""
    return {oid: (m, title) for m in registry().values() for oid, title in m.output_ids.items()}


def get(metric_id: str) -> Metric:
    metrics = registry()
    if metric_id not in metrics:
        raise KeyError(f"Unknown metric '{metric_id}'. Known: {', '.join(metrics)}")
    return metrics[metric_id]


def select(ids: list[str] | None = None) -> list[Metric]:
    """The families with these ids (all when None), in registry order."""
    reg = registry()
    if ids is None:
        return list(reg.values())
    unknown = [i for i in ids if i not in reg]
    if unknown:
        raise KeyError(f"Unknown metric(s): {', '.join(unknown)}. Known: {', '.join(reg)}.")
    return [m for m in reg.values() if m.id in ids]
