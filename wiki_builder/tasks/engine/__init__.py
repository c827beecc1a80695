"""The task-ablation engine (being split into its parts)."""

from .exact import (TANH_GELUS, ExactEngine, Job, Sweep, TaskRuns, ablate_heads, attribution_estimates, head_dla,  # noqa: F401
                    keep_freed_memory, memory_budget, naive_sweep, patched_logits, pearson, prepare)
