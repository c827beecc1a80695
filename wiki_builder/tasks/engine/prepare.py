"""The clean and corrupted runs every per-head ablation starts from, and what the ablation methods share.

Definitions (per head ``(l, h)``; ``M`` the task metric averaged over the N prompts):

* ablating a head replaces its output ``z`` (``blocks.{l}.attn.hook_z[:, :, h]``, every
  position) with: the mean of ``z`` over the corrupted prompts, per position (**mean**); the
  corrupted prompt's own ``z``, prompt n <- corrupted prompt n (**resample**); zeros (**zero**:
  the head then writes nothing but its share of ``b_O``, which is not per head);
* ``M_abl`` and ``KL_abl = mean_n mean_p KL(p_clean || p_abl)`` at the task's scored positions.

:func:`prepare` runs the clean prompts once, caching the residual stream entering every block
(``blocks.{l}.hook_resid_pre``), every head's ``z``, the attention outputs and the arguments the
model passes to each block (attention mask, rotary cos/sin, position ids, captured with a forward
pre-hook), which is what the exact engine (:mod:`.exact`) replays from; and the corrupted prompts,
whose ``z`` the replacements are made of. In the same forward pass it runs the model's own
``hook_z``-patched forward for three check ablations (:func:`check_ablations`) as extra rows, the
numbers the exact engine must reproduce before its sweep is trusted. :func:`patched_logits` is
that patched forward on its own; the reference loop (:mod:`.reference`) is built on it too, so it
lives here, below both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..common import Task

KINDS = ("mean", "resample", "zero")


def check_ablations(n_layers: int, n_heads: int) -> list[tuple[int, int, str]]:
    """The ablations the engine is checked on: two in the first layer (they share the engine's batch rows,
    so its expansion of the block arguments is exercised) and one in the last."""
    return [(0, 0, "mean"), (0, n_heads - 1, "resample"), (n_layers - 1, n_heads - 1, "resample")]


@dataclass
class TaskRuns:
    """What one clean and one corrupted forward pass give, for every later computation."""

    task: Task
    clean_logits: torch.Tensor  # [N, P, V] float32 at the scored positions
    corrupted_logits: torch.Tensor  # [N, P, V]
    cache: Any  # ActivationCache of the clean run: hook_z, hook_resid_pre, ln_final.hook_scale, last resid_post
    z_corrupted: list[torch.Tensor]  # per layer [N, S, H, d_head]
    block_inputs: list[tuple[tuple, dict, bool]]  # per layer: (args after the hidden state, kwargs, hidden state passed by keyword)
    attn_outputs: list[Any]  # per layer: what the attention module returned on the clean prompts (tensor or tuple)
    check_logits: torch.Tensor | None = None  # [len(check) * N, P, V]: the model's own forward with each CHECK ablation
    clean_metric: float = 0.0
    corrupted_metric: float = 0.0
    kl_corrupted: float = 0.0
    accuracy: float = 0.0
    seconds: float = 0.0  # wall-clock seconds of the two runs
    cpu_seconds: float = 0.0  # this process's CPU seconds for them

    @property
    def gap(self) -> float:
        return self.clean_metric - self.corrupted_metric

    @property
    def n_layers(self) -> int:
        return len(self.z_corrupted)

    @property
    def n_heads(self) -> int:
        return int(self.z_corrupted[0].shape[2])

    def z_clean(self, layer: int) -> torch.Tensor:
        return self.cache[f"blocks.{layer}.attn.hook_z"]

    def replacement(self, kind: str, layer: int) -> torch.Tensor:
        """What replaces the layer's z under this kind of ablation: [N or 1, S, H, d_head]."""
        return replacement(self.z_corrupted[layer], kind)


def replacement(z_corrupted: torch.Tensor, kind: str) -> torch.Tensor:
    """From the corrupted prompts' z [N, S, H, d_head], what replaces z under ``kind``: [N or 1, S, H, d_head]."""
    if kind == "mean":
        return z_corrupted.float().mean(0, keepdim=True).to(z_corrupted.dtype)
    if kind == "resample":
        return z_corrupted
    if kind == "zero":
        return torch.zeros_like(z_corrupted[:1])
    raise ValueError(f"Unknown ablation kind '{kind}'. Use one of {KINDS}.")


def _is_cache(obj: Any) -> bool:
    return obj is not None and "Cache" in type(obj).__name__


def _strip(obj: Any) -> Any:
    return None if _is_cache(obj) else obj


def _names(n_layers: int) -> list[str]:
    names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    return names + ["ln_final.hook_scale", f"blocks.{n_layers - 1}.hook_resid_post"]


def _z_patches(groups: list[list[tuple[int, int, str]]], N: int, first_copy: int,
               source: Callable[[int, torch.Tensor, str], torch.Tensor]) -> list[tuple[str, Callable]]:
    """``hook_z`` hooks that ablate, in copy ``first_copy + g`` of the prompts (``N`` rows each), every
    ``(layer, head, kind)`` of ``groups[g]``; ``source(layer, z, kind)`` gives the replacement [N or 1, S, H, d_head]."""
    by_layer: dict[int, list[tuple[int, int, str]]] = {}
    for g, group in enumerate(groups):
        for layer, head, kind in group:
            by_layer.setdefault(layer, []).append((first_copy + g, head, kind))

    def make_hook(layer: int, items: list[tuple[int, int, str]]) -> Callable:
        def hook(z: torch.Tensor, hook: Any) -> torch.Tensor:
            repl = {kind: source(layer, z, kind) for kind in {kind for _, _, kind in items}}  # before any row changes
            for c, head, kind in items:
                z[c * N:(c + 1) * N, :, head] = repl[kind][:, :, head].to(z.dtype).expand(N, -1, -1)
            return z

        return hook

    return [(f"blocks.{l}.attn.hook_z", make_hook(l, items)) for l, items in by_layer.items()]


def _first_rows(obj: Any, n: int, total: int, copy: bool = False) -> Any:
    """``obj`` with every tensor whose leading dimension is the batch (``total`` rows) cut to its first ``n`` rows
    (``copy``: as copies, so that the rest of the batch is not kept alive by views of it)."""
    if isinstance(obj, torch.Tensor):
        if obj.dim() >= 1 and obj.shape[0] == total and n < total:
            return obj[:n].clone() if copy else obj[:n]
        return obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_first_rows(o, n, total, copy) for o in obj)
    if isinstance(obj, dict):
        return {k: _first_rows(v, n, total, copy) for k, v in obj.items()}
    return obj


def _row_cache(bridge: Any, names: list[str], rows: Callable[[str], int]) -> tuple[dict[str, torch.Tensor], list[tuple[str, Callable]]]:
    """Hooks that cache each named activation like ``run_with_cache`` (under every name of its hook point, as
    ``run_with_cache`` does), but only its first ``rows(name)`` rows, copied when the hook fires: the rest of
    the batch is freed as the pass goes on instead of being kept to the end by views."""
    points = dict(getattr(bridge, "hook_dict", {}) or {})
    names_of: dict[int, list[str]] = {}
    for key, point in points.items():
        names_of.setdefault(id(point), []).append(key)
    store: dict[str, torch.Tensor] = {}

    def make(name: str, n: int) -> Callable:
        keys = names_of.get(id(points[name]), [name]) if name in points else [name]

        def hook(t: Any, hook: Any) -> None:
            t = t[0] if isinstance(t, tuple) else t
            kept = t.detach()[:n].clone() if n < t.shape[0] else t.detach()
            for key in keys:
                store[key] = kept
            return None

        return hook

    return store, [(name, make(name, rows(name))) for name in names]


def _at(logits: torch.Tensor, rows: slice, pos: torch.Tensor | None) -> torch.Tensor:
    """Rows of the logits as float32, at ``pos`` (None: the logits are only the scored positions already; then
    float32 logits give views, which together keep the pass's logits, no more)."""
    return (logits[rows] if pos is None else logits[rows, pos]).float()


def _run_scored(bridge: Any, tokens: torch.Tensor, pos: torch.Tensor, fwd_hooks: list) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The pass's logits at the scored positions only where the model can (transformers' ``logits_to_keep``:
    the unembedding runs on those positions, each row's logits computed exactly as in the full pass); the
    full logits otherwise. Returns ``(logits, pos)`` with ``pos`` None when the logits are already cut."""
    S = int(tokens.shape[1])
    if int(pos.numel()) < S:
        logits = bridge.run_with_hooks(tokens, fwd_hooks=fwd_hooks, return_type="logits", logits_to_keep=pos)
        if logits.dim() == 3 and logits.shape[1] == pos.numel():
            return logits, None
        if logits.dim() == 3 and logits.shape[1] == S:  # the model ignored logits_to_keep
            return logits, pos
        raise RuntimeError(f"Unexpected logits of shape {tuple(logits.shape)} for {S} positions, {int(pos.numel())} scored.")
    return bridge.run_with_hooks(tokens, fwd_hooks=fwd_hooks, return_type="logits"), pos


def kl_div(clean_logp: torch.Tensor, logits: torch.Tensor, clean_p: torch.Tensor | None = None) -> torch.Tensor:
    """mean over positions of KL(p_clean || p), per prompt: [..., N, P, V] -> [..., N]."""
    logp = logits.float().log_softmax(-1)
    p = clean_logp.exp() if clean_p is None else clean_p
    return (p * (clean_logp - logp)).sum(-1).mean(-1)


KL_PROMPTS = 4  # prompts per step of _kl_by_prompts


def _kl_by_prompts(clean_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``kl_div(clean_logits.log_softmax(-1), logits)``, ``KL_PROMPTS`` prompts at a time: each prompt's value is
    computed by the same per-prompt steps as in one call (softmaxes and sums over the vocabulary, a mean over
    positions), with five ``[KL_PROMPTS, P, V]`` temporaries alive instead of five ``[N, P, V]`` ones
    (0.6 GiB for the induction task on gpt2-medium)."""
    n = int(clean_logits.shape[0])
    return torch.cat([kl_div(clean_logits[i:i + KL_PROMPTS].log_softmax(-1), logits[i:i + KL_PROMPTS])
                      for i in range(0, n, KL_PROMPTS)])


@dataclass
class Screening:
    """The task's clean and corrupted numbers from plain forward passes: enough to tell whether the model does it."""

    clean_metric: float
    corrupted_metric: float
    kl_corrupted: float
    accuracy: float
    seconds: float

    @property
    def gap(self) -> float:
        return self.clean_metric - self.corrupted_metric


def screen(bridge: Any, task: Task) -> Screening:
    """Clean and corrupted prompts in two plain passes (logits at the scored positions, nothing cached).

    A model that does not do the task is told apart here for a fraction of :func:`prepare`'s cost: prepare
    runs clean, corrupted and check copies in one batch and keeps every layer's clean activations (on the
    gpt2-medium stand-in, induction: 116 s and 1.9 GiB above the weights, for a task found not applicable).
    The numbers are the same quantities prepare computes, on a different batch shape, so they may differ from
    its own in the last float digits; a model that passes is decided again on prepare's numbers."""
    start = time.perf_counter()
    task.to(bridge.cfg.device)
    with torch.no_grad():
        logits, at = _run_scored(bridge, task.clean, task.positions, [])
        clean_logits = _at(logits, slice(None), at)
        del logits
        logits, at = _run_scored(bridge, task.corrupted, task.positions, [])
        corrupted_logits = _at(logits, slice(None), at)
        del logits
        out = Screening(clean_metric=float(task.metric(clean_logits).mean()),
                        corrupted_metric=float(task.metric(corrupted_logits).mean()),
                        kl_corrupted=float(_kl_by_prompts(clean_logits, corrupted_logits).mean()),
                        accuracy=float(task.correct(clean_logits).mean()), seconds=0.0)
    out.seconds = time.perf_counter() - start
    return out


def prepare(bridge: Any, task: Task) -> TaskRuns:
    """Run the clean prompts (caching what the engine needs) and the corrupted prompts."""
    start, cpu_start = time.perf_counter(), time.process_time()
    device = bridge.cfg.device
    task.to(device)
    n_layers = int(bridge.cfg.n_layers)
    captured: dict[int, tuple[tuple, dict, bool]] = {}

    def make_pre_hook(layer: int) -> Callable:
        def pre_hook(module: Any, args: tuple, kwargs: dict) -> None:
            if layer in captured:
                return None
            if args:
                rest, by_kw = tuple(_strip(a) for a in args[1:]), False
            else:
                rest, by_kw = (), True
            kw = {k: _strip(v) for k, v in kwargs.items() if not (by_kw and k == "hidden_states")}
            if "use_cache" in kw:
                kw["use_cache"] = False
            captured[layer] = _first_rows((rest, kw, by_kw), N, total, copy=True)
            return None

        return pre_hook

    attn_out: dict[int, Any] = {}

    def make_attn_hook(layer: int) -> Callable:
        def attn_hook(module: Any, args: tuple, output: Any) -> None:
            if layer not in attn_out:
                attn_out[layer] = _first_rows(output, N, total, copy=True)

        return attn_hook

    N = task.n
    check = check_ablations(n_layers, int(bridge.cfg.n_heads))
    # one forward pass where the clean and corrupted prompts have the same length: the clean prompts, the
    # corrupted ones, and one copy of the clean prompts per check ablation (its z patched from the corrupted rows)
    together = tuple(task.corrupted.shape) == tuple(task.clean.shape)
    tokens = torch.cat([task.clean, task.corrupted] + [task.clean] * len(check)) if together else task.clean
    total = int(tokens.shape[0])
    z_names = [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    # Of this pass the later computations need the clean rows (and the corrupted rows' z): only those are kept,
    # copied as each hook fires, so the pass holds one layer's activations of the whole batch, not every layer's.
    z_rows = set(z_names)
    saved, save_hooks = _row_cache(bridge, _names(n_layers), lambda name: 2 * N if together and name in z_rows else N)
    handles = [bridge.blocks[l].register_forward_pre_hook(make_pre_hook(l), with_kwargs=True) for l in range(n_layers)]
    handles += [bridge.blocks[l].attn.register_forward_hook(make_attn_hook(l)) for l in range(n_layers)]
    # the check copies (after the clean and corrupted rows) take their replacement from the corrupted rows of this pass
    patches = _z_patches([[c] for c in check], N, 2, lambda layer, z, kind: replacement(z[N:2 * N], kind)) if together else []
    pos = task.positions
    try:
        with torch.no_grad():
            logits, at = _run_scored(bridge, tokens, pos, patches + save_hooks)
    finally:
        for h in handles:
            h.remove()
    if len(captured) != n_layers or len(attn_out) != n_layers:
        raise RuntimeError(f"Captured the inputs of {len(captured)} and the attention outputs of {len(attn_out)} of {n_layers} blocks.")
    from transformer_lens.ActivationCache import ActivationCache

    cache = ActivationCache({k: v[:N] for k, v in saved.items()}, bridge)
    if together:
        z_corrupted = [saved[name][N:2 * N] for name in z_names]
        clean_logits, corrupted_logits = _at(logits, slice(0, N), at), _at(logits, slice(N, 2 * N), at)
        check_logits = _at(logits, slice(2 * N, None), at)
    else:
        clean_logits = _at(logits, slice(None), at)
        del logits
        with torch.no_grad():
            corr_logits, corr_cache = bridge.run_with_cache(task.corrupted, names_filter=z_names)
        corrupted_logits = corr_logits[:, pos].float()
        z_corrupted = [corr_cache[name] for name in z_names]
        del corr_logits
        check_logits = None
        logits = None
    del logits
    runs = TaskRuns(task=task, clean_logits=clean_logits, corrupted_logits=corrupted_logits, cache=cache, z_corrupted=z_corrupted,
                    block_inputs=[captured[l] for l in range(n_layers)], attn_outputs=[attn_out[l] for l in range(n_layers)])
    runs.check_logits = check_logits if together else patched_logits(bridge, runs, [[c] for c in check])
    with torch.no_grad():
        runs.clean_metric = float(task.metric(clean_logits).mean())
        runs.corrupted_metric = float(task.metric(corrupted_logits).mean())
        runs.kl_corrupted = float(_kl_by_prompts(clean_logits, corrupted_logits).mean())
        runs.accuracy = float(task.correct(clean_logits).mean())
    runs.seconds = time.perf_counter() - start
    runs.cpu_seconds = time.process_time() - cpu_start
    return runs


def patched_logits(bridge: Any, runs: TaskRuns, groups: list[list[tuple[int, int, str]]]) -> torch.Tensor:
    """One forward pass of the model on the clean prompts, once per group, with the group's heads ablated.

    ``groups[g]`` lists ``(layer, head, kind)``; copy ``g`` of the prompts (rows ``g*N .. g*N+N-1``)
    gets its ``hook_z`` slices replaced. Returns the logits at the scored positions, float32,
    ``[len(groups) * N, P, V]``.
    """
    task = runs.task
    hooks = _z_patches(groups, task.n, 0, lambda layer, z, kind: runs.replacement(kind, layer))
    tokens = task.clean.repeat(len(groups), 1) if len(groups) > 1 else task.clean
    with torch.no_grad():
        logits = bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits[:, task.positions].float()


@dataclass
class Sweep:
    """Mean over prompts of the ablated metric and KL, per kind: [n_layers, n_heads] (NaN where not run)."""

    metric: dict[str, np.ndarray] = field(default_factory=dict)
    kl: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
