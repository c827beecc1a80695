"""Tasks: prompt builders (one module each), the table that lists them, and the ablation engine.

* :mod:`.table` - one row per task; the families, benchmarks, labels and site read it.
* :mod:`.common` - what a :class:`~.common.Task` is; :mod:`.prompts` - a task's prompts for a model.
* :mod:`.ioi`, :mod:`.greater_than`, :mod:`.sequence`, :mod:`.induction` - the prompt builders.
* :mod:`.engine` - running the ablations: preparation, the exact engine, the reference loop, attribution and DLA.
* :mod:`.score` - from a task to the per-head outputs; :mod:`.families` - one score family per table row.

Importing this package loads no torch; the builders and the engine load it when used.
"""

from .table import TASKS, TaskRow, row

__all__ = ["TASKS", "TaskRow", "row"]
