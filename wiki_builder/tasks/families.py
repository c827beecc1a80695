"""One task score family per row of the task table: the same engine and outputs, the row's prompts and words."""

from __future__ import annotations

from typing import Any

from ..scores.base import NUMBER, MetricOutput, RunContext, TaskMetric
from . import table
from .score import DEFINITIONS, output_titles
from .table import TaskRow

DETAIL_FIELDS = {"metric_ablated": NUMBER, "attribution_estimate": NUMBER, "kl_ablated": NUMBER, "exact": NUMBER}


def family(task: TaskRow) -> TaskMetric:
    """The score family of one task."""

    def compute(bridge: Any, ctx: RunContext) -> dict[str, MetricOutput]:
        from .engine import memory_budget
        from .prompts import for_bridge
        from .score import score_task

        prompts = for_bridge(task.name, bridge, n=int(ctx.options.task_prompts), seed=ctx.seed)
        budget = memory_budget(bridge.cfg.device, ctx.memory_gb) if ctx.memory_gb else None
        return score_task(bridge, prompts, ctx.options.ablation_kinds(), method=ctx.options.method, force=ctx.force_tasks,
                          budget_bytes=budget, seed=ctx.seed).outputs

    def example(bridge: Any) -> list[int] | None:
        from .prompts import for_bridge

        return for_bridge(task.name, bridge, n=1, seed=0, **task.example).example()

    return TaskMetric(
        id=task.name, version=task.version, title=task.title, description=task.description, formula=task.formula,
        reference=task.reference, details=task.details + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items()),
        outputs=output_titles(task.name, task.title), higher_is=task.higher_is, detail_fields=DETAIL_FIELDS,
        compute=compute, example=example,
    )


def families() -> tuple[TaskMetric, ...]:
    """One family per row of the task table, in the table's order."""
    return tuple(family(t) for t in table.TASKS)
