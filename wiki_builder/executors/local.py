"""Run the jobs one after another in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..faults import storage_error
from .base import Job, Outcome, Work


class LocalExecutor:
    def run(self, jobs: list[Job], work: Work, on_start: Callable[[Job], None],
            on_family: Callable[[str], None], on_done: Callable[[Job, Outcome], None]) -> None:
        for job in jobs:
            on_start(job)
            start = time.perf_counter()
            if not job.todo:
                on_done(job, Outcome(ok=True, seconds=0.0))
                continue
            try:
                result = work(job, on_family)
            except Exception as exc:  # one model failing must not stop the others
                if storage_error(exc):
                    raise  # but a full disk or a read-only folder would fail them all: stop, nothing half-stored
                on_done(job, Outcome(ok=False, seconds=time.perf_counter() - start, error=str(exc), error_type=type(exc).__name__))
                continue
            on_done(job, Outcome(ok=True, seconds=time.perf_counter() - start, result=result))
