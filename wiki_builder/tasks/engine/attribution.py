"""Cheap per-head estimates from the clean run: attribution patching and direct logit attribution.

Attribution patching is a first-order estimate of each ablation from one forward and one
backward pass (``method=attribution`` scores with it; the exact numbers are compared with it);
DLA is each head's direct contribution to the task's logit direction, read off the clean cache.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .prepare import TaskRuns


def attribution_estimates(bridge: Any, runs: TaskRuns, kinds: tuple[str, ...] | list[str]) -> tuple[dict[str, np.ndarray], float]:
    """First-order estimate of ``M_abl - M_clean`` per head and kind, and the seconds it took.

    Uses TransformerLens' ``attribution_patching.cache_activation_and_gradient`` for one
    batched forward + backward on the clean prompts (``d mean_n M_n / d z``), then
    ``estimate = sum_{n, pos, d} (z_replacement - z_clean) * grad`` for each head. Its
    ``attribution_patch`` is not called directly because it loops over prompts one at a time,
    patches only towards a second token sequence (no mean or zero replacement), and hands
    the metric single-prompt logits without saying which prompt (the task metrics need each
    prompt's own answer tokens). The KL to the clean output has zero gradient at the clean
    run, so it has no first-order estimate.
    """
    from transformer_lens.tools.analysis.attribution_patching import cache_activation_and_gradient

    start = time.perf_counter()
    task = runs.task
    n_layers = runs.n_layers
    names = [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    # An upstream cached point makes the backward reach the hook_z points (without one their
    # backward hooks never fire on a TransformerBridge).
    if "hook_embed" in bridge.hook_dict:
        names = ["hook_embed"] + names
    with torch.enable_grad():
        gc = cache_activation_and_gradient(bridge, task.clean, lambda logits: task.metric(logits[:, task.positions].float()).mean(),
                                           names_filter=names)
    out: dict[str, np.ndarray] = {}
    for kind in kinds:
        est = np.zeros((n_layers, runs.n_heads))
        for l in range(n_layers):
            grad = gc.gradients.get(f"blocks.{l}.attn.hook_z")
            if grad is None:
                raise RuntimeError(f"No gradient reached blocks.{l}.attn.hook_z.")
            z = runs.z_clean(l)
            delta = runs.replacement(kind, l).float() - z.float()
            est[l] = (delta * grad.float()).sum(dim=(0, 1, 3)).double().cpu().numpy()
        out[kind] = est
    return out, time.perf_counter() - start


# -- direct logit attribution ---------------------------------------------------------------

def head_dla(bridge: Any, runs: TaskRuns) -> np.ndarray:
    """Each head's direct contribution to the task's logit direction, mean over prompts and scored positions.

    Where the direction is a difference of two tokens per prompt at the last position (IOI,
    sequences), TransformerLens' ``tools.analysis.direct_logit_attribution`` (unit="head") does
    it from the clean cache. Its ``answer_tokens`` are token ids, so a direction that is a mean
    over a set of tokens (greater-than: years above YY minus years at or below) or one read at
    many positions with a different answer at each (the induction task) is computed here the
    same way: the head's output ``z @ W_O`` at the scored positions, centred for LayerNorm and
    divided by the final norm's cached scale (as ``ActivationCache.apply_ln_to_stack``), dotted
    with the direction built from ``W_U``.
    """
    task = runs.task
    n_layers, n_heads = runs.n_layers, runs.n_heads
    tokens = getattr(task, "dla_tokens", lambda: None)()
    last = task.positions.numel() == 1 and int(task.positions[0]) == task.clean.shape[1] - 1
    if tokens is not None and last:
        from transformer_lens.tools.analysis import direct_logit_attribution

        with torch.no_grad():
            res = direct_logit_attribution(bridge, answer_tokens=tokens[0], incorrect_tokens=tokens[1], unit="head", pos=-1, cache=runs.cache)
        values = res.attribution[: n_layers * n_heads].float().mean(-1)
        return values.reshape(n_layers, n_heads).double().cpu().numpy()
    with torch.no_grad():
        direction = task.direction(bridge.W_U.float())  # [N, P, d]
        scale = runs.cache["ln_final.hook_scale"][:, task.positions].float()  # [N, P, 1]
        centre = str(getattr(bridge.cfg, "normalization_type", "")) in ("LN", "LNPre")
        out = np.zeros((n_layers, n_heads))
        W_O = bridge.W_O
        for l in range(n_layers):
            z = runs.z_clean(l)[:, task.positions].float()  # [N, P, H, dh]
            head_out = torch.einsum("nphd,hdm->nphm", z, W_O[l].float())
            if centre:
                head_out = head_out - head_out.mean(-1, keepdim=True)
            head_out = head_out / scale[:, :, None, :]
            out[l] = torch.einsum("nphm,npm->h", head_out, direction).double().cpu().numpy() / (z.shape[0] * z.shape[1])
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
