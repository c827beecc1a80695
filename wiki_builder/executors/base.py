"""The one interface both executors implement: run jobs through a unit of work, report each outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models.resolve import ModelSpec


@dataclass(frozen=True)
class Job:
    """One model and the score families still to compute for it (empty: everything is stored)."""

    spec: ModelSpec
    todo: tuple[str, ...]


@dataclass
class Outcome:
    ok: bool
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)  # what the work returned (the written file's path, device)
    error: str = ""
    error_type: str = ""


# The unit of work: computes and stores one job; returns {"path": ..., "device": ...}. It must be picklable
# (a module-level function, or functools.partial of one) for Ray. The second argument is called with a
# family id as each family finishes, or is None where progress cannot be reported (a remote worker).
Work = Callable[[Job, Callable[[str], None] | None], dict[str, Any]]


class Executor(Protocol):
    def run(self, jobs: list[Job], work: Work, on_start: Callable[[Job], None],
            on_family: Callable[[str], None], on_done: Callable[[Job, Outcome], None]) -> None:
        """Run every job with a non-empty ``todo`` through ``work``; call ``on_done`` for every job (skipped ones too)."""
        ...
