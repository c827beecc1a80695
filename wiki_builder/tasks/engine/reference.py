"""The reference: TransformerLens' per-head activation patching, one full forward pass per head.

Slow, but it is the library's own definition of the ablation, so it is what the exact engine
(:mod:`.exact`) is tested against and what scoring falls back to when the engine's replay check
fails; :func:`ablate_heads` ablates several heads at once the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .prepare import Sweep, TaskRuns, kl_div, patched_logits


@contextmanager
def _quiet_tqdm() -> Iterator[None]:
    """TransformerLens' patching loop draws a tqdm bar per sweep; keep the CLI's output clean."""
    import transformer_lens.patching as tlp

    original = tlp.tqdm
    tlp.tqdm = lambda it, *a, **k: it
    try:
        yield
    finally:
        tlp.tqdm = original


def naive_sweep(bridge: Any, runs: TaskRuns, kinds: tuple[str, ...] | list[str], heads: list[tuple[int, int]] | None = None) -> Sweep:
    """The reference: TransformerLens' per-head activation patching, one full forward pass per head.

    ``patching.get_act_patch_attn_head_out_all_pos(model, tokens, cache, metric)`` runs the model
    on ``tokens`` and, for one head at a time, overwrites ``hook_z[:, :, head]`` with the same
    slice of ``cache``. Our ablation is that with the clean prompts as ``tokens`` and, as
    ``cache``, the replacement (the corrupted run's z, its mean, or zeros); the metric mapping
    evaluates the task metric and the KL on each patched forward (``reduce="mean"``).
    """
    from transformer_lens.patching import (
        generic_activation_patch,
        get_act_patch_attn_head_out_all_pos,
        layer_head_vector_patch_setter,
        make_df_from_ranges,
    )

    start = time.perf_counter()
    task = runs.task
    n_layers, n_heads, N = runs.n_layers, runs.n_heads, task.n
    clean_logp = runs.clean_logits.log_softmax(-1)
    metrics = {"metric": lambda logits: task.metric(logits[:, task.positions].float()),
               "kl": lambda logits: kl_div(clean_logp, logits[:, task.positions])}
    result = Sweep()
    for kind in kinds:
        cache = {f"blocks.{l}.attn.hook_z": runs.replacement(kind, l).expand(N, -1, -1, -1) for l in range(n_layers)}
        with torch.no_grad(), _quiet_tqdm():
            if heads is None:
                res = get_act_patch_attn_head_out_all_pos(bridge, task.clean, cache, metrics, reduce="mean")
                values = res.values.double().cpu().numpy()  # [metric, layer, head]
                result.metric[kind], result.kl[kind] = values[0], values[1]
            else:
                import pandas as pd

                df = pd.DataFrame(heads, columns=["layer", "head"]) if heads else make_df_from_ranges([0, 0], ["layer", "head"])
                res = generic_activation_patch(bridge, task.clean, cache, metrics, patch_setter=layer_head_vector_patch_setter,
                                               activation_name="z", index_df=df, reduce="mean")
                values = res.values.double().cpu().numpy()  # [metric, row]
                result.metric[kind] = np.full((n_layers, n_heads), np.nan)
                result.kl[kind] = np.full((n_layers, n_heads), np.nan)
                for i, (l, h) in enumerate(heads):
                    result.metric[kind][l, h], result.kl[kind][l, h] = values[0, i], values[1, i]
    result.seconds = time.perf_counter() - start
    result.info = {"engine": "naive: transformer_lens.patching, one full forward pass per head"}
    return result


def ablate_heads(bridge: Any, runs: TaskRuns, heads: list[tuple[int, int]], kind: str = "mean") -> tuple[float, float]:
    """Ablate several heads at once (one forward pass); returns (mean metric, mean KL to clean)."""
    logits = patched_logits(bridge, runs, [[(l, h, kind) for l, h in heads]])
    with torch.no_grad():
        return float(runs.task.metric(logits).mean()), float(kl_div(runs.clean_logits.log_softmax(-1), logits).mean())
