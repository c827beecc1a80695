"""Per-head ablation on a task: the fast exact engine, the naive reference loop, attribution patching, DLA.

Definitions (per head ``(l, h)``; ``M`` the task metric averaged over the N prompts):

* ablating a head replaces its output ``z`` (``blocks.{l}.attn.hook_z[:, :, h]``, every
  position) with: the mean of ``z`` over the corrupted prompts, per position (**mean**); the
  corrupted prompt's own ``z``, prompt n <- corrupted prompt n (**resample**); zeros (**zero**:
  the head then writes nothing but its share of ``b_O``, which is not per head);
* ``M_abl`` and ``KL_abl = mean_n mean_p KL(p_clean || p_abl)`` at the task's scored positions.

The naive way (TransformerLens' ``patching.get_act_patch_attn_head_out_all_pos``) is one full
forward pass per head: 144 for GPT-2 small, per task and per kind of ablation. The engine gives
the same numbers faster:

1. **One clean run** caches the residual stream entering every block
   (``blocks.{l}.hook_resid_pre``) and the arguments the model passes to each block (attention
   mask, rotary cos/sin, position ids), captured with a forward pre-hook.
2. **Re-run only from the ablated layer**: ``hook_resid_pre`` of layer ``l`` does not depend on
   any head of layer ``l`` or later, so an ablation in layer ``l`` starts from the cached
   residual and runs blocks ``l .. L-1`` only (on average half the blocks). TransformerBridge's
   own ``forward(start_at_layer=k)`` does not save this work: it still executes blocks
   ``0..k-1`` and discards their output (see its docstring), so the engine calls the bridge's
   block modules (``bridge.blocks[l]``) directly with the captured arguments.
3. **No attention recomputed in the ablated layer**: the layer's queries, keys and values come
   from the clean residual, so every head but the ablated one is unchanged, and the attention
   output is affine in ``z``: it is the clean run's output (cached) plus the output projection
   ``o`` of the change of ``z`` (``o(dz) - o(0)``, i.e. ``W_O`` without the bias). The block's
   attention module is swapped for that sum for the call; its norm, MLP and residual
   arithmetic run as usual (parallel attention included).
4. **Many ablations per batch, staircase order**: jobs (head, kind) are sorted by layer; a batch
   starts at the first job's layer and, at each later layer, appends ``N`` rows per job that
   starts there, so rows of all layers' jobs share one call per block. Batches are sized to
   memory (``torch.cuda.mem_get_info`` on CUDA, a fixed budget on the CPU).
5. **Compute only what is scored**: the last block's MLP runs only at the scored positions
   (nothing after it reads the others), and the final norm and unembedding likewise.
6. **Fused GELU**: transformers' Python tanh-GELU (GPT-2's ``gelu_new``, five elementwise
   passes) runs as ``F.gelu(approximate="tanh")``, the same function in one kernel.

The sweep checks three of its own ablations (two in the first layer, sharing a batch, so the
argument expansion is exercised; one in the last layer) prompt by prompt against the model's own
forward pass with the ``hook_z`` patch, which ``prepare`` runs as extra rows of its single forward
pass; if the metric or KL differs by more than ``VERIFY_TOL`` (float32), the caller falls back to
the naive loop and says so.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..common import Task

KINDS = ("mean", "resample", "zero")
VERIFY_TOL = 1e-3  # float32; half-precision models get HALF_VERIFY_TOL (batch-size-dependent rounding)
HALF_VERIFY_TOL = 0.1
CPU_BUDGET_BYTES = 512 << 20  # memory one batch may use on the CPU unless told otherwise
CPU_TOKEN_ROWS = 2048  # rows per batch on the CPU; measured on gpt2-small: with two threads 2048-4096 beat 1024 by
# about 8% and 512 lost 10%; with one thread 1024 and 2048 were level
CUDA_FRACTION = 0.5  # of the free CUDA memory
# transformers' tanh-approximation GELUs written as five elementwise passes in Python (GPT-2's "gelu_new"); the engine
# runs them as F.gelu(approximate="tanh"), the same function in one fused kernel (transformers' own GELUTanh says
# so: "equivalent to NewGELU and FastGELU but much faster", equal up to float rounding). About a fifth of a GPT-2
# block's time on the CPU.
TANH_GELUS = ("NewGELUActivation", "FastGELUActivation")
GLIBC_KEEP_BYTES = 1 << 30  # see keep_freed_memory


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the OS (Linux, CPU).

    The sweep allocates and frees the same activation-sized buffers (tens of MB) batch after
    batch; by default glibc serves each with a fresh ``mmap`` and returns it with ``munmap``,
    so every batch pays page faults to zero them again (about a tenth of the sweep's time on
    gpt2-small, measured). This is the allocator tuning PyTorch's CPU performance guide
    recommends (there: jemalloc or tcmalloc). Peak memory is unchanged; memory freed at the end
    stays with the process (up to ``GLIBC_KEEP_BYTES`` above the heap top) until it exits.
    Returns whether the setting took effect.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, GLIBC_KEEP_BYTES // 2) and libc.mallopt(M_TRIM_THRESHOLD, GLIBC_KEEP_BYTES))


# -- the clean and corrupted runs -----------------------------------------------------------

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


def _first_rows(obj: Any, n: int, total: int) -> Any:
    """``obj`` with every tensor whose leading dimension is the batch (``total`` rows) cut to its first ``n`` rows."""
    if isinstance(obj, torch.Tensor):
        return obj[:n] if obj.dim() >= 1 and obj.shape[0] == total else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_first_rows(o, n, total) for o in obj)
    if isinstance(obj, dict):
        return {k: _first_rows(v, n, total) for k, v in obj.items()}
    return obj


def kl_div(clean_logp: torch.Tensor, logits: torch.Tensor, clean_p: torch.Tensor | None = None) -> torch.Tensor:
    """mean over positions of KL(p_clean || p), per prompt: [..., N, P, V] -> [..., N]."""
    logp = logits.float().log_softmax(-1)
    p = clean_logp.exp() if clean_p is None else clean_p
    return (p * (clean_logp - logp)).sum(-1).mean(-1)


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
            captured[layer] = (rest, kw, by_kw)
            return None

        return pre_hook

    attn_out: dict[int, Any] = {}

    def make_attn_hook(layer: int) -> Callable:
        def attn_hook(module: Any, args: tuple, output: Any) -> None:
            attn_out.setdefault(layer, output)

        return attn_hook

    N = task.n
    check = check_ablations(n_layers, int(bridge.cfg.n_heads))
    # one forward pass where the clean and corrupted prompts have the same length: the clean prompts, the
    # corrupted ones, and one copy of the clean prompts per check ablation (its z patched from the corrupted rows)
    together = tuple(task.corrupted.shape) == tuple(task.clean.shape)
    tokens = torch.cat([task.clean, task.corrupted] + [task.clean] * len(check)) if together else task.clean
    handles = [bridge.blocks[l].register_forward_pre_hook(make_pre_hook(l), with_kwargs=True) for l in range(n_layers)]
    handles += [bridge.blocks[l].attn.register_forward_hook(make_attn_hook(l)) for l in range(n_layers)]
    # the check copies (after the clean and corrupted rows) take their replacement from the corrupted rows of this pass
    patches = _z_patches([[c] for c in check], N, 2, lambda layer, z, kind: replacement(z[N:2 * N], kind)) if together else []
    try:
        with torch.no_grad(), bridge.hooks(fwd_hooks=patches):
            logits, cache = bridge.run_with_cache(tokens, names_filter=_names(n_layers))
    finally:
        for h in handles:
            h.remove()
    if len(captured) != n_layers or len(attn_out) != n_layers:
        raise RuntimeError(f"Captured the inputs of {len(captured)} and the attention outputs of {len(attn_out)} of {n_layers} blocks.")
    pos = task.positions
    z_names = [f"blocks.{l}.attn.hook_z" for l in range(n_layers)]
    if together:
        from transformer_lens.ActivationCache import ActivationCache

        full = cache.cache_dict
        cache = ActivationCache({k: v[:N] for k, v in full.items()}, bridge)
        z_corrupted = [full[name][N:2 * N] for name in z_names]
        clean_logits, corrupted_logits = logits[:N, pos].float(), logits[N:2 * N, pos].float()
        check_logits = logits[2 * N:, pos].float()
        total = int(tokens.shape[0])
        captured = {l: _first_rows(c, N, total) for l, c in captured.items()}
        attn_out = {l: _first_rows(o, N, total) for l, o in attn_out.items()}
    else:
        clean_logits = logits[:, pos].float()
        with torch.no_grad():
            corr_logits, corr_cache = bridge.run_with_cache(task.corrupted, names_filter=z_names)
        corrupted_logits = corr_logits[:, pos].float()
        z_corrupted = [corr_cache[name] for name in z_names]
        del corr_logits
        check_logits = None
    del logits
    runs = TaskRuns(task=task, clean_logits=clean_logits, corrupted_logits=corrupted_logits, cache=cache, z_corrupted=z_corrupted,
                    block_inputs=[captured[l] for l in range(n_layers)], attn_outputs=[attn_out[l] for l in range(n_layers)])
    runs.check_logits = check_logits if together else patched_logits(bridge, runs, [[c] for c in check])
    with torch.no_grad():
        runs.clean_metric = float(task.metric(clean_logits).mean())
        runs.corrupted_metric = float(task.metric(corrupted_logits).mean())
        runs.kl_corrupted = float(kl_div(clean_logits.log_softmax(-1), corrupted_logits).mean())
        runs.accuracy = float(task.correct(clean_logits).mean())
    runs.seconds = time.perf_counter() - start
    runs.cpu_seconds = time.process_time() - cpu_start
    return runs


# -- the exact engine -----------------------------------------------------------------------

@dataclass
class Job:
    layer: int
    head: int
    kind: str


@dataclass
class Sweep:
    """Mean over prompts of the ablated metric and KL, per kind: [n_layers, n_heads] (NaN where not run)."""

    metric: dict[str, np.ndarray] = field(default_factory=dict)
    kl: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def memory_budget(device: Any, override_gb: float | None = None) -> int:
    """Bytes one batch may use: a fixed budget on the CPU, half the free memory on CUDA."""
    if override_gb:
        return int(float(override_gb) * (1 << 30))
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free * CUDA_FRACTION)
    return CPU_BUDGET_BYTES


class ExactEngine:
    """Exact per-head ablation by replaying cached residuals through the bridge's blocks (see module doc)."""

    def __init__(self, bridge: Any, runs: TaskRuns, budget_bytes: int | None = None):
        self.bridge = bridge
        self.runs = runs
        self.task = runs.task
        cfg = bridge.cfg
        self.n_layers, self.n_heads = int(cfg.n_layers), runs.n_heads
        self.N, self.S = (int(x) for x in self.task.clean.shape)
        self.P = int(self.task.positions.numel())
        self.d_vocab = int(cfg.d_vocab)
        self.resid_pre = [runs.cache[f"blocks.{l}.hook_resid_pre"] for l in range(self.n_layers)]
        self.clean_logp = runs.clean_logits.log_softmax(-1)
        self.clean_p = self.clean_logp.exp()
        self.budget = budget_bytes or memory_budget(cfg.device)
        d_model = int(cfg.d_model)
        d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d_model)
        # floats alive per token inside one block call (residual, q/k/v/z, MLP hidden, scores/pattern); the bridge's
        # hook conversions about double it (measured on the CPU), hence the factor 2
        per_token = 2 * (12 * d_model + 4 * d_mlp + 4 * self.n_heads * self.S)
        fits = max(1, self.budget // (4 * self.S * per_token * self.N))  # copies whose activations fit the budget
        if torch.device(cfg.device).type == "cpu":
            fits = min(fits, max(1, CPU_TOKEN_ROWS // (self.N * self.S)))
        self.copies_per_batch = int(fits)
        # the readout holds about 8 floats per logit (logits, log-softmax, the KL's terms, the metric's)
        self.copies_per_readout = int(max(1, min(fits, self.budget // (8 * 4 * self.N * self.P * self.d_vocab))))
        self.verified: float | None = None
        self.check_jobs = [Job(l, h, k) for l, h, k in check_ablations(self.n_layers, self.n_heads)]
        self.tanh_gelus = [m for m in bridge.blocks.modules() if type(m).__name__ in TANH_GELUS]
        self.allocator_tuned = torch.device(cfg.device).type == "cpu" and keep_freed_memory()
        dtype = self.resid_pre[0].dtype
        self.tolerance = VERIFY_TOL if dtype in (torch.float32, torch.float64) else HALF_VERIFY_TOL

    # one block, called the way the model calls it
    def _expand(self, obj: Any, copies: int) -> Any:
        if copies == 1:
            return obj
        if isinstance(obj, torch.Tensor) and obj.dim() >= 2 and obj.shape[0] == self.N:
            return obj.repeat(copies, *([1] * (obj.dim() - 1)))
        if isinstance(obj, tuple):
            return tuple(self._expand(o, copies) for o in obj)
        if isinstance(obj, list):
            return [self._expand(o, copies) for o in obj]
        return obj

    def _block(self, layer: int, x: torch.Tensor, attn_delta: torch.Tensor | None = None) -> torch.Tensor:
        """Block ``layer`` on ``x``; with ``attn_delta`` its attention is not recomputed but taken as clean + delta."""
        rest, kwargs, by_kw = self.runs.block_inputs[layer]
        copies = x.shape[0] // self.N
        rest = self._expand(rest, copies)
        kwargs = {k: self._expand(v, copies) for k, v in kwargs.items()}
        block = self.bridge.blocks[layer]
        with ExitStack() as stack:
            if attn_delta is not None:
                stack.enter_context(_swap_forward(block.attn, self._attn_stub(layer, attn_delta)))
            if layer == self.n_layers - 1:
                stack.enter_context(_swap_forward(block.mlp, self._scored_positions_only(block.mlp)))
            out = block(hidden_states=x, **kwargs) if by_kw else block(x, *rest, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def _attn_delta(self, layer: int, jobs: list[Job], repl: dict) -> torch.Tensor:
        """What each job's ablation adds to the layer's attention output: ``W_O`` applied to its change of ``z``, [J*N, S, d_model]."""
        z = self.runs.z_clean(layer)
        dz = torch.zeros((len(jobs) * self.N, *z.shape[1:]), dtype=z.dtype, device=z.device)
        for i, j in enumerate(jobs):
            dz[i * self.N:(i + 1) * self.N, :, j.head] = repl[(j.kind, layer)][:, :, j.head].to(z.dtype) - z[:, :, j.head]
        o = self.bridge.blocks[layer].attn.o
        flat = dz.flatten(2)
        return o(flat) - o(torch.zeros_like(flat[:1]))  # the output projection is affine: drop its bias

    def _attn_stub(self, layer: int, delta: torch.Tensor) -> Callable:
        """Stands in for the attention module of the ablated layer: its clean output (cached) plus the ablation's delta."""
        clean = self.runs.attn_outputs[layer]
        copies = delta.shape[0] // self.N

        def stub(*args: Any, **kwargs: Any) -> Any:
            if isinstance(clean, tuple):
                return (self._expand(clean[0], copies) + delta,) + tuple(clean[1:])
            return self._expand(clean, copies) + delta

        return stub

    def _scored_positions_only(self, mlp: Any) -> Callable:
        """The last block's MLP run at the scored positions only (nothing after the last block reads the others)."""
        forward = mlp.forward
        pos = self.task.positions

        def stub(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            out = torch.zeros_like(hidden)
            out[:, pos] = forward(hidden[:, pos], *args, **kwargs)
            return out

        return stub

    def _readout(self, x: torch.Tensor, reduce: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Final norm + unembedding at the scored positions, reduced per copy: {name: [copies, N]}."""
        x = x[:, self.task.positions]
        copies = x.shape[0] // self.N
        parts: dict[str, list[torch.Tensor]] = {}
        for c0 in range(0, copies, self.copies_per_readout):
            chunk = x[c0 * self.N:min(copies, c0 + self.copies_per_readout) * self.N]
            logits = self.bridge.unembed(self.bridge.ln_final(chunk)).float()
            out = reduce(logits.view(-1, self.N, self.P, logits.shape[-1]))
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in parts.items()}

    def _reduce(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"metric": self.task.metric(logits), "kl": kl_div(self.clean_logp, logits, self.clean_p)}

    def _check(self, got: dict[str, torch.Tensor]) -> float:
        """Largest difference, prompt by prompt, between the engine's metric and KL for the check ablations
        (``got``: {"metric": [J, N], "kl": [J, N]}) and the model's own patched forward pass (``runs.check_logits``)."""
        ref = self._reduce(self.runs.check_logits.view(len(self.check_jobs), self.N, self.P, -1))
        self.verified = max(float((got[k] - ref[k]).abs().max()) for k in ("metric", "kl"))
        return self.verified

    def verify(self) -> float:
        """Run the check ablations alone and compare them with the model's own forward pass (see :meth:`_check`)."""
        with torch.no_grad():
            return self._check(self.run_jobs(self.check_jobs))

    def run_jobs(self, jobs: list[Job]) -> dict[str, torch.Tensor]:
        """Ablated metric and KL per job and prompt: {"metric": [J, N], "kl": [J, N]} (jobs' order kept)."""
        order = sorted(range(len(jobs)), key=lambda i: (jobs[i].layer, KINDS.index(jobs[i].kind), jobs[i].head))
        results: dict[str, list[torch.Tensor]] = {}
        repl = {(kind, l): self.runs.replacement(kind, l) for kind in {j.kind for j in jobs} for l in {j.layer for j in jobs}}
        with torch.no_grad(), ExitStack() as stack:
            for act in self.tanh_gelus:
                stack.enter_context(_swap_forward(act, _gelu_tanh))
            for b0 in range(0, len(order), self.copies_per_batch):
                batch = [jobs[i] for i in order[b0:b0 + self.copies_per_batch]]
                out = self._run_batch(batch, repl)
                for k, v in out.items():
                    results.setdefault(k, []).append(v)
        stacked = {k: torch.cat(v) for k, v in results.items()}
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return {k: v[inverse.to(v.device)] for k, v in stacked.items()}

    def _run_batch(self, batch: list[Job], repl: dict) -> dict[str, torch.Tensor]:
        x: torch.Tensor | None = None
        for layer in range(batch[0].layer, self.n_layers):
            new = [j for j in batch if j.layer == layer]
            fresh = None
            if new:  # jobs starting here: the clean residual, and the clean attention output plus the ablation's delta
                fresh = self._block(layer, self.resid_pre[layer].repeat(len(new), 1, 1), self._attn_delta(layer, new, repl))
            if x is not None:
                x = self._block(layer, x)
            x = fresh if x is None else (x if fresh is None else torch.cat([x, fresh]))
        return self._readout(x, self._reduce)

    def sweep(self, kinds: tuple[str, ...] | list[str], heads: list[tuple[int, int]] | None = None) -> Sweep:
        """Every head (or the given ones) under each kind of ablation."""
        start = time.perf_counter()
        pairs = heads if heads is not None else [(l, h) for l in range(self.n_layers) for h in range(self.n_heads)]
        jobs = [Job(l, h, k) for k in kinds for (l, h) in pairs]
        index = {(j.layer, j.head, j.kind): i for i, j in enumerate(jobs)}
        extra = [j for j in self.check_jobs if (j.layer, j.head, j.kind) not in index]  # only when heads is a sample
        out = self.run_jobs(jobs + extra)
        index.update({(j.layer, j.head, j.kind): len(jobs) + i for i, j in enumerate(extra)})
        rows = torch.tensor([index[(j.layer, j.head, j.kind)] for j in self.check_jobs])
        self._check({k: v[rows.to(v.device)] for k, v in out.items()})  # the sweep checks itself: sets self.verified
        result = Sweep()
        for kind in kinds:
            result.metric[kind] = np.full((self.n_layers, self.n_heads), np.nan)
            result.kl[kind] = np.full((self.n_layers, self.n_heads), np.nan)
        means = {k: v.mean(-1).double().cpu().numpy() for k, v in out.items()}
        for i, j in enumerate(jobs):
            result.metric[j.kind][j.layer, j.head] = means["metric"][i]
            result.kl[j.kind][j.layer, j.head] = means["kl"][i]
        result.seconds = time.perf_counter() - start
        result.info = {"engine": "exact (cached residuals and attention outputs, blocks from the ablated layer on, staircase batches)",
                       "copies_per_batch": self.copies_per_batch, "batches": math.ceil(len(jobs) / self.copies_per_batch),
                       "memory_budget_mb": round(self.budget / 2**20), "replay_check_max_abs_diff": self.verified,
                       "replay_check_tolerance": self.tolerance, "glibc_keeps_freed_memory": self.allocator_tuned}
        return result


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.gelu(x, approximate="tanh")


@contextmanager
def _swap_forward(module: torch.nn.Module, forward: Callable) -> Iterator[None]:
    """Run ``module`` with another ``forward`` for the duration (hooks on the module still fire)."""
    saved = module.__dict__.get("forward")
    object.__setattr__(module, "forward", forward)  # bridge components forward setattr to the wrapped module
    try:
        yield
    finally:
        if saved is None:
            object.__delattr__(module, "forward")
        else:
            object.__setattr__(module, "forward", saved)


# -- the naive reference loop ---------------------------------------------------------------

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
    from transformer_lens.patching import (generic_activation_patch, get_act_patch_attn_head_out_all_pos,
                                           layer_head_vector_patch_setter, make_df_from_ranges)

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


def ablate_heads(bridge: Any, runs: TaskRuns, heads: list[tuple[int, int]], kind: str = "mean") -> tuple[float, float]:
    """Ablate several heads at once (one forward pass); returns (mean metric, mean KL to clean)."""
    logits = patched_logits(bridge, runs, [[(l, h, kind) for l, h in heads]])
    with torch.no_grad():
        return float(runs.task.metric(logits).mean()), float(kl_div(runs.clean_logits.log_softmax(-1), logits).mean())


# -- attribution patching -------------------------------------------------------------------

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
