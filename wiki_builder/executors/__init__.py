"""Where the per-model work runs: in this process (the default) or on a Ray cluster (``--executor ray``).

Both take the same jobs and the same unit of work and report each job's outcome the same way
(:mod:`.base`), so the build does not know which one runs it. Executors import nothing above
the models stage: the work is handed to them as a function.
"""

from __future__ import annotations

from typing import Any

from .base import Executor, Job, Outcome, Work

NAMES = ("local", "ray")


def get(name: str, **kwargs: Any) -> Executor:
    """An executor by name: ``local`` or ``ray`` (``address``, ``resources``, ``console``)."""
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(**kwargs)
    raise ValueError(f"Unknown executor '{name}'. Use one of: {', '.join(NAMES)}.")


__all__ = ["Executor", "Job", "Outcome", "Work", "NAMES", "get"]
