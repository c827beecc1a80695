"""The exact engine: every head's ablation, the same numbers as one full forward pass per head, faster.

The naive way (:mod:`.reference`, TransformerLens'
``patching.get_act_patch_attn_head_out_all_pos``) is one full forward pass per head: 144 for
GPT-2 small, per task and per kind of ablation. Starting from the clean run that
:func:`.prepare.prepare` cached, the engine saves most of that work:

1. **Re-run only from the ablated layer**: ``hook_resid_pre`` of layer ``l`` does not depend on
   any head of layer ``l`` or later, so an ablation in layer ``l`` starts from the cached
   residual and runs blocks ``l .. L-1`` only (on average half the blocks). TransformerBridge's
   own ``forward(start_at_layer=k)`` does not save this work: it still executes blocks
   ``0..k-1`` and discards their output (see its docstring), so the engine calls the bridge's
   block modules (``bridge.blocks[l]``) directly with the captured arguments.
2. **No attention recomputed in the ablated layer**: the layer's queries, keys and values come
   from the clean residual, so every head but the ablated one is unchanged, and the attention
   output is affine in ``z``: it is the clean run's output (cached) plus the output projection
   ``o`` of the change of ``z`` (``o(dz) - o(0)``, i.e. ``W_O`` without the bias). The block's
   attention module is swapped for that sum for the call; its norm, MLP and residual
   arithmetic run as usual (parallel attention included).
3. **Many ablations per batch, staircase order**: jobs (head, kind) are sorted by layer; a batch
   starts at the first job's layer and, at each later layer, appends ``N`` rows per job that
   starts there, so rows of all layers' jobs share one call per block. Batches are sized to
   memory (``torch.cuda.mem_get_info`` on CUDA, a fixed budget on the CPU).
4. **Compute only what is scored**: the last block's MLP runs only at the scored positions
   (nothing after it reads the others), and the final norm and unembedding likewise.
5. **Fused GELU**: transformers' Python tanh-GELU (GPT-2's ``gelu_new``, five elementwise
   passes) runs as ``F.gelu(approximate="tanh")``, the same function in one kernel.

The sweep checks three of its own ablations (two in the first layer, sharing a batch, so the
argument expansion is exercised; one in the last layer) prompt by prompt against the model's own
forward pass with the ``hook_z`` patch, which ``prepare`` ran as extra rows of its single forward
pass; if the metric or KL differs by more than ``VERIFY_TOL`` (float32), the caller falls back to
the naive loop and says so.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .prepare import KINDS, Sweep, TaskRuns, check_ablations, kl_div

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
    stays with the process (up to ``GLIBC_KEEP_BYTES`` above the heap top) until it exits, or until
    the runner hands it back between families (``models.frugal.release_freed_memory``).
    Returns whether the setting took effect (it stays for the next models: ``models.frugal.tune_malloc``).
    """
    from ...models.frugal import tune_malloc

    return tune_malloc(GLIBC_KEEP_BYTES // 2, GLIBC_KEEP_BYTES)


@dataclass
class Job:
    layer: int
    head: int
    kind: str


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
