"""Run the score families on a loaded model.

All ``attention`` metrics share one forward pass over the probe: a hook on each layer's
``hook_pattern`` hands that layer's pattern to every metric and keeps only one number per
head, so memory stays at one layer's pattern however many metrics there are. ``weights``
and ``task`` families are called once each with the bridge and a ``RunContext``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.frugal import release_freed_memory
from ..models.memory import read_peak, reset_peak
from .base import AttentionMetric, Metric, MetricOutput, RunContext, not_applicable
from .probe import PREFIX_COPIES, Probe, ProbeConfig, RepeatConfig, build_probe, build_repeat_probe
from .stacks import attention_sites, last_residual_hook, n_rows, task_reason, weights_reason


@dataclass
class ScoreResult:
    outputs: dict[str, MetricOutput]  # output id -> values and explanations
    seconds: dict[str, float]  # family id -> seconds
    family_of: dict[str, str] = field(default_factory=dict)  # output id -> family id
    examples: list[dict[str, Any]] = field(default_factory=list)  # attention patterns on short prompts
    failed: dict[str, str] = field(default_factory=dict)  # family id -> "ErrorType: message", for families that raised
    errors: dict[str, BaseException] = field(default_factory=dict)  # family id -> the exception it raised
    peaks: dict[str, int] = field(default_factory=dict)  # family id -> peak memory while it ran (bytes)
    peak_before: int = 0  # peak memory before the first family (the load), bytes

    def fail(self, family_id: str, exc: BaseException) -> None:
        """Record a family as failed and drop whatever outputs it had produced."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.failed[family_id] = f"{type(exc).__name__}: {text}"[:2000]
        self.errors[family_id] = exc
        for oid in [o for o, f in self.family_of.items() if f == family_id]:
            self.outputs.pop(oid, None)
            self.family_of.pop(oid, None)
        self.seconds.pop(family_id, None)

    @property
    def values(self) -> dict[str, np.ndarray]:
        return {k: o.values for k, o in self.outputs.items() if o.applicable}


class _ProbeDone(Exception):
    """Raised by the probe pass's last hook: everything the attention metrics need has been seen."""


def attention_layers(bridge: Any) -> list[int]:
    """The layers whose block has self-attention, in the scores' numbering (see ``scores/stacks.py``).

    Every layer, except in hybrids (Qwen3.5, Qwen3-Next, Granite hybrid) whose other layers are Mamba
    or linear-attention layers: those have no attention pattern and no heads, and get NaN scores.
    """
    return [row for row, _, _ in attention_sites(bridge)]


def attention_scores(bridge: Any, metrics: list[Metric], probe: Probe) -> dict[str, np.ndarray]:
    """One forward pass; every attention metric scored layer by layer inside the hooks."""
    import torch

    n_layers, n_heads = n_rows(bridge), int(bridge.cfg.n_heads)
    sites = attention_sites(bridge)
    layers = [row for row, _, _ in sites]
    out = {m.id: np.zeros((n_layers, n_heads), dtype=np.float64) for m in metrics}
    for m in metrics:
        out[m.id][[l for l in range(n_layers) if l not in layers]] = np.nan
    seen: set[int] = set()

    def make_hook(layer: int) -> Callable:
        def hook(pattern: torch.Tensor, hook: Any) -> None:
            seen.add(layer)
            for metric in metrics:
                out[metric.id][layer] = metric.compute(pattern.detach(), probe).double().cpu().numpy()
            return None

        return hook

    finite: list[bool] = []

    def last_residual(resid: torch.Tensor, hook: Any) -> None:
        # Patterns can look finite (NaN scores masked to 0) while the model's activations are not. Checked on
        # the residual stream after the last block; then the pass stops: the unembedding would only make the
        # logits, [batch, pos, d_vocab], by far the largest tensors of the pass (about three logits-sized tensors
        # live inside the bridge: 1.3 GiB of the pass's 1.6 GiB above the weights on GPT-2 small, measured).
        finite.append(bool(torch.isfinite(resid).all()))
        raise _ProbeDone

    hooks = [(f"{prefix}.hook_pattern", make_hook(layer)) for layer, prefix, _ in sites]
    hooks.append((last_residual_hook(bridge), last_residual))
    with torch.no_grad():
        try:
            bridge.run_with_hooks(probe.tokens.to(bridge.cfg.device), fwd_hooks=hooks, return_type=None)
        except _ProbeDone:
            pass
    if not finite:
        raise RuntimeError(f"The probe pass did not reach the end of the last block ({last_residual_hook(bridge)} never fired).")
    if not finite[0]:
        raise FloatingPointError("The model's activations are not finite: NaN or infinite values in its residual stream on the probe.")
    if len(seen) != len(layers):
        raise RuntimeError(f"Attention patterns were seen for {len(seen)} of {len(layers)} layers.")
    return out


def repeat_probe_scores(bridge: Any, metrics: list[AttentionMetric], result: ScoreResult, seed: int,
                        on_metric: Callable[[str], None] | None = None) -> None:
    """The families that read the several-copies probe: their own small forward pass, failing together."""
    if not metrics:
        return
    start = time.perf_counter()
    try:
        probe = build_repeat_probe(bridge, RepeatConfig(seed=seed))
        values = attention_scores(bridge, metrics, probe)
        for m in metrics:
            check_finite(m.id, MetricOutput(values=values[m.id]), attention_layers(bridge))
    except Exception as exc:
        for m in metrics:
            result.fail(m.id, exc)
        return
    finally:
        release_freed_memory()
    c = probe.config
    setup = {"probe": f"BOS + {PREFIX_COPIES} copies of X, X uniformly random tokens", "copies": PREFIX_COPIES, "batch": c.batch,
             "t_min": c.t_min, "t_max": c.t_max, "seed": c.seed, "length": int(probe.tokens.shape[1]), "token_pool": probe.pool_size,
             "bos": bool(probe.offset), "compute_dtype": compute_dtype(bridge, metrics[0])}
    layers = attention_layers(bridge)
    if len(layers) < n_rows(bridge):
        setup["attention_layers"] = layers
    elapsed = time.perf_counter() - start
    for m in metrics:
        result.outputs[m.id] = MetricOutput(values=values[m.id], setup=setup)
        result.family_of[m.id] = m.id
        result.seconds[m.id] = elapsed / len(metrics)
        if on_metric:
            on_metric(m.id)


EXAMPLE_PERIOD = 8


def capture_examples(bridge: Any, prompts: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Every head's attention pattern on a few short prompts, for the head pages."""
    import torch

    n_layers = n_rows(bridge)
    sites = attention_sites(bridge)
    layers = [row for row, _, _ in sites]
    out = []
    for name, ids in prompts.items():
        store: dict[int, np.ndarray] = {}

        def make_hook(layer: int, store: dict[int, np.ndarray]) -> Callable:
            def hook(pattern: torch.Tensor, hook: Any) -> None:
                store[layer] = pattern[0].detach().float().cpu().numpy()

            return hook

        hooks = [(f"{prefix}.hook_pattern", make_hook(layer, store)) for layer, prefix, _ in sites]
        tokens = torch.tensor([ids], device=bridge.cfg.device)
        with torch.no_grad():
            bridge.run_with_hooks(tokens, fwd_hooks=hooks, return_type=None)
        strs = [str(t) for t in bridge.tokenizer.convert_ids_to_tokens(ids)] if bridge.tokenizer is not None else [str(i) for i in ids]
        blank = np.full_like(store[layers[0]], np.nan)  # a layer without attention (hybrids)
        out.append({"example": name, "tokens": strs, "patterns": np.stack([store.get(l, blank) for l in range(n_layers)])})
    return out


def example_prompts(bridge: Any, families: list[Metric], seed: int) -> dict[str, list[int]]:
    """The repeated-random-tokens probe in small, plus one prompt per task family that has one."""
    probe = build_probe(bridge, ProbeConfig(batch=1, t_min=EXAMPLE_PERIOD, t_max=EXAMPLE_PERIOD, seed=seed))
    prompts = {"repeated random tokens": probe.tokens[0].tolist()}
    for m in families:
        if m.kind == "task":
            ids = m.example(bridge)
            if ids:
                prompts[m.title] = list(ids)
    return prompts


def compute_dtype(bridge: Any, metric: Metric) -> str:
    """The dtype a family's numbers were computed in: weights families upcast to float32."""
    model_dtype = str(next(bridge.parameters()).dtype).replace("torch.", "")
    return "float32" if metric.kind == "weights" else model_dtype


def keep_only_layers(out: MetricOutput, layers: list[int]) -> None:
    """NaN for the layers without attention, their details dropped, and the attention layers in the setup."""
    absent = [l for l in range(out.values.shape[0]) if l not in layers]
    out.values = out.values.astype(np.float64)
    out.values[absent] = np.nan
    for key in [k for k in out.details if isinstance(k, tuple) and k and k[0] in absent]:
        del out.details[key]
    out.setup["attention_layers"] = list(layers)


def check_finite(output_id: str, out: MetricOutput, layers: list[int] | None = None) -> None:
    """Every head of these layers (all when None) has a finite score."""
    values = out.values if layers is None else out.values[layers]
    if out.applicable and not np.all(np.isfinite(values)):
        raise FloatingPointError(f"Metric '{output_id}' produced NaN or infinite values: the model's activations are not finite.")


def compute_scores(
    bridge: Any,
    families: list[Metric],
    probe_config: ProbeConfig | None = None,
    on_metric: Callable[[str], None] | None = None,
    ctx: RunContext | None = None,
) -> ScoreResult:
    """Score every head of a model for these families (see :func:`wiki_builder.families.select`).

    A family that raises does not stop the others: it is recorded in ``ScoreResult.failed`` (with
    the exception in ``errors``) and every other family is still computed. The attention families
    share one forward pass, so an error there fails all of them.
    """
    chosen = list(families)
    ctx = ctx or RunContext(seed=(probe_config.seed if probe_config else 0))
    result = ScoreResult(outputs={}, seconds={})
    device = str(getattr(bridge.cfg, "device", "cpu") or "cpu")
    result.peak_before = read_peak(device)

    def run_family(m: Metric) -> None:
        reset_peak(device)  # each family's own peak: what it holds on top of the model while it runs
        try:
            compute_family(m)
        except Exception as exc:  # one family failing must not lose the others
            result.fail(m.id, exc)
            return
        finally:
            result.peaks[m.id] = read_peak(device)
            release_freed_memory()  # what the family no longer needs goes back before the next one starts
        if on_metric:
            on_metric(m.id)

    layers = attention_layers(bridge)
    n_layers = n_rows(bridge)
    no_heads = ("" if layers else "TransformerLens exposes no attention layer of this model (no block has an 'attn' component: "
                "its adapter wraps every layer as one opaque mixer), so there are no heads to score")
    skipped = {"weights": weights_reason(bridge), "task": task_reason(bridge)}

    def compute_family(m: Metric) -> None:
        start = time.perf_counter()
        reason = no_heads or skipped.get(m.kind, "")
        if reason:
            outs: dict[str, MetricOutput] = {oid: not_applicable((n_layers, int(bridge.cfg.n_heads)), reason, {})
                                             for oid in m.output_ids}
        else:
            outs = m.compute(bridge, ctx)
        missing = set(m.output_ids) - set(outs)
        if missing:
            raise RuntimeError(f"Metric family '{m.id}' did not return {sorted(missing)}.")
        used = m.options_used(ctx.options)
        for oid, out in outs.items():
            out.setup.setdefault("compute_dtype", compute_dtype(bridge, m))
            if used is not None:
                out.setup["options"] = used
            if layers and len(layers) < n_layers:  # a hybrid: only its attention layers have heads
                keep_only_layers(out, layers)
            check_finite(oid, out, layers)
        for oid, out in outs.items():
            result.outputs[oid] = out
            result.family_of[oid] = m.id
        result.seconds[m.id] = time.perf_counter() - start

    # Weight-based families first, from the weights as loaded (float32 under the mixed policy);
    # then, under --dtype mixed-bf16, the model is cast once and every forward pass runs in bfloat16.
    for m in chosen:
        if m.kind == "weights":
            run_family(m)
    forward = ctx.forward_dtype
    if forward:
        import torch

        bridge.to(getattr(torch, forward))
    attention = [m for m in chosen if isinstance(m, AttentionMetric) and m.probe == "shared"]
    if attention and not layers:
        for m in attention:
            run_family(m)
        attention = []
    if attention:
        start = time.perf_counter()
        reset_peak(device)
        try:
            probe = build_probe(bridge, probe_config or ProbeConfig(seed=ctx.seed))
            values = attention_scores(bridge, attention, probe)
            for m in attention:
                check_finite(m.id, MetricOutput(values=values[m.id]), layers)
        except Exception as exc:  # the attention families share one forward pass: they fail together
            for m in attention:
                result.fail(m.id, exc)
            attention = []
        for m in [m for m in chosen if isinstance(m, AttentionMetric)]:
            result.peaks[m.id] = read_peak(device)  # one shared pass: one peak for all of them
        release_freed_memory()
    if attention:
        c = probe.config
        setup = {"probe": "BOS + X + X, X uniformly random tokens", "batch": c.batch, "t_min": c.t_min, "t_max": c.t_max,
                 "seed": c.seed, "length": int(probe.tokens.shape[1]), "token_pool": probe.pool_size, "bos": bool(probe.offset),
                 "compute_dtype": compute_dtype(bridge, attention[0])}
        if len(layers) < n_layers:
            setup["attention_layers"] = list(layers)
        elapsed = time.perf_counter() - start
        for m in attention:
            result.outputs[m.id] = MetricOutput(values=values[m.id], setup=setup)
            result.family_of[m.id] = m.id
            result.seconds[m.id] = elapsed / len(attention)
            if on_metric:
                on_metric(m.id)
    repeated = [m for m in chosen if isinstance(m, AttentionMetric) and m.probe == "repeat"]
    if not layers:
        for m in repeated:
            run_family(m)
        repeated = []
    repeat_probe_scores(bridge, repeated, result, probe_config.seed if probe_config else ctx.seed, on_metric)
    for m in chosen:
        if m.kind == "task":
            run_family(m)
    if ctx.examples and layers and len(result.failed) < len(chosen):
        try:
            result.examples = capture_examples(bridge, example_prompts(bridge, [m for m in chosen if m.id not in result.failed], ctx.seed))
        except Exception:  # the example patterns are an illustration: without them the scores still stand
            result.examples = []
    return result
