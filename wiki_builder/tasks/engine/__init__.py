"""Per-head ablation on a task, one concern per module (each imports only :mod:`.prepare` below it).

* :mod:`.prepare` - the clean and corrupted runs every method starts from, and what the methods share;
* :mod:`.exact` - the exact engine: the same numbers as one forward pass per head, much faster;
* :mod:`.reference` - TransformerLens' per-head patching loop, the reference and the fallback;
* :mod:`.attribution` - attribution patching (first-order estimates) and direct logit attribution.
"""

from .attribution import attribution_estimates, head_dla, pearson
from .exact import TANH_GELUS, ExactEngine, Job, keep_freed_memory, memory_budget
from .prepare import Screening, Sweep, TaskRuns, check_ablations, patched_logits, prepare, screen
from .reference import ablate_heads, naive_sweep

__all__ = ["TANH_GELUS", "ExactEngine", "Job", "Sweep", "TaskRuns", "ablate_heads", "attribution_estimates", "check_ablations",
           "head_dla", "keep_freed_memory", "memory_budget", "naive_sweep", "patched_logits", "pearson", "prepare",
           "Screening", "screen"]
