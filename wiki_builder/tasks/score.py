"""From a task to the wiki's per-head outputs: what the ``task_*`` score families share.

For a task ``t`` the outputs are (``k`` in mean, resample and, on request, zero):

* ``t_{k}_ablation`` = ``(M_clean - M_abl) / (M_clean - M_corrupted)``: the fraction of the
  clean-minus-corrupted metric that ablating the head loses (0 = no effect, 1 = as bad as the
  corrupted prompts; negative = ablation helps, above 1 = worse than corrupted);
* ``t_{k}_ablation_kl`` = ``KL_abl / KL_corrupted`` with ``KL_x = mean_n mean_p KL(p_clean || p_x)``
  at the scored positions: the same fraction for the KL divergence to the clean output (0 at the
  clean run by definition);
* ``t_dla``: the head's direct logit attribution on the metric's logit direction (logits).

``M`` is the task metric averaged over the prompts. Zero ablation (``BuildOptions.ablation``
containing "zero") sets the head's ``z`` to 0 at every position. ``BuildOptions.method`` is
"exact" (default) or "attribution" (gradient estimate of the ablation outputs; exact numbers are
then computed for a sample of heads only, to report the correlation).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..scores.base import METHODS, MetricOutput, not_applicable
from .table import ACCURACY_MARGIN

if TYPE_CHECKING:  # pragma: no cover
    from .common import Task

SUFFIXES: dict[str, str] = {
    "mean_ablation": "mean ablation, fraction of the metric lost",
    "resample_ablation": "resample ablation, fraction of the metric lost",
    "zero_ablation": "zero ablation, fraction of the metric lost",
    "mean_ablation_kl": "mean ablation, KL to clean as a fraction of the corrupted KL",
    "resample_ablation_kl": "resample ablation, KL to clean as a fraction of the corrupted KL",
    "zero_ablation_kl": "zero ablation, KL to clean as a fraction of the corrupted KL",
    "dla": "direct logit attribution (logits)",
}
SAMPLE_PER_LAYER = 2  # heads per layer checked exactly under method="attribution"
MIN_GAP = 1e-4  # clean minus corrupted metric below this: the fractions would divide by ~0
# ... and below this share of |M_clean| they would be mostly noise: a greater-than gap of 0.003 (clean 0.364,
# corrupted 0.361) gives "fractions lost" up to 10
MIN_GAP_FRACTION = 0.05
MIN_KL = 1e-6  # nats

DEFINITIONS = {
    "fraction_lost": "(M_clean - M_ablated) / (M_clean - M_corrupted), M the task metric averaged over prompts",
    "kl_fraction": "KL_ablated / KL_corrupted, KL_x = mean over prompts and scored positions of KL(p_clean || p_x)",
    "mean": "the head's z (every position) replaced by its mean over the corrupted prompts, per position",
    "resample": "the head's z replaced by its value on the paired corrupted prompt",
    "zero": "the head's z set to 0 at every position (its output z @ W_O vanishes; b_O is shared and stays)",
    "dla": "mean over prompts and scored positions of (z_h @ W_O[h], centred for LayerNorm, / final-norm scale) . direction",
    "gap": f"the fractions need M_clean - M_corrupted > max({MIN_GAP:g}, {MIN_GAP_FRACTION:g} x |M_clean|); "
           "below that the task is marked not applicable",
}


def output_titles(task: str, title: str) -> dict[str, str]:
    return {f"{task}_{suffix}": f"{title}: {text}" for suffix, text in SUFFIXES.items()}


def _r(x: Any, digits: int = 6) -> Any:
    if x is None:
        return None
    return float(f"{float(x):.{digits}g}")


def model_does_task(task: Task, runs: Any) -> tuple[bool, str]:
    if runs.accuracy < task.threshold:
        return False, (f"the model does not do the task: clean accuracy {runs.accuracy:.3f} is below the threshold {task.threshold:.3f} "
                       f"(chance {task.chance:.3f} + {ACCURACY_MARGIN} x (1 - chance); accuracy = {task.accuracy_definition})")
    if not runs.gap > MIN_GAP:
        return False, (f"the corruption does not lower the metric (clean {runs.clean_metric:.4g}, corrupted {runs.corrupted_metric:.4g}): "
                       f"the model's answer does not depend on what the corruption changes ({task.setup.get('corruption', '')})")
    if not runs.gap > MIN_GAP_FRACTION * abs(runs.clean_metric):
        return False, (f"the corruption lowers the metric by only {runs.gap:.3g} (clean {runs.clean_metric:.4g}, corrupted "
                       f"{runs.corrupted_metric:.4g}; at least {MIN_GAP_FRACTION:.0%} of the clean value is needed): fractions "
                       "of so small a gap would be mostly noise")
    if not runs.kl_corrupted > MIN_KL:
        return False, f"the corrupted output does not differ from the clean one (KL {runs.kl_corrupted:.2g} nats)"
    return True, ""


@dataclass
class TaskScore:
    outputs: dict[str, MetricOutput]
    setup: dict[str, Any] = field(default_factory=dict)
    runs: Any = None  # engine.TaskRuns, or engine.Screening when the plain passes already ruled the task out
    exact: Any = None  # engine.Sweep


def score_task(bridge: Any, task: Task, kinds: list[str], method: str = "exact", force: bool = False,
               budget_bytes: int | None = None, seed: int = 0) -> TaskScore:
    """Every head's outputs for one task. ``force`` skips the does-the-model-do-it check (for ``wiki bench``)."""
    from . import engine as A

    if method not in METHODS:
        raise ValueError(f"Unknown method '{method}'. Use one of {', '.join(METHODS)}.")
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    shape = (n_layers, n_heads)
    ids = output_titles(task.name, task.title)
    setup: dict[str, Any] = {**task.setup, "metric": task.metric_formula, "accuracy_definition": task.accuracy_definition,
                             "ablation_kinds": kinds, "method": method, "definitions": DEFINITIONS}
    if not task.applicable:
        return TaskScore({oid: not_applicable(shape, task.reason, setup) for oid in ids}, setup)
    start = time.perf_counter()
    if not force:  # most models do few tasks: tell that from two plain passes before prepare's heavier one
        screened = A.screen(bridge, task)
        ok, reason = model_does_task(task, screened)
        if not ok:
            setup.update({"accuracy": _r(screened.accuracy, 4), "chance": _r(task.chance, 4), "threshold": _r(task.threshold, 4),
                          "clean_metric": _r(screened.clean_metric), "corrupted_metric": _r(screened.corrupted_metric),
                          "kl_corrupted": _r(screened.kl_corrupted)})
            return TaskScore({oid: not_applicable(shape, reason, setup) for oid in ids}, setup, runs=screened)
    runs = A.prepare(bridge, task)
    setup.update({"accuracy": _r(runs.accuracy, 4), "chance": _r(task.chance, 4), "threshold": _r(task.threshold, 4),
                  "clean_metric": _r(runs.clean_metric), "corrupted_metric": _r(runs.corrupted_metric),
                  "kl_corrupted": _r(runs.kl_corrupted)})
    ok, reason = model_does_task(task, runs)
    if not ok and not force:
        return TaskScore({oid: not_applicable(shape, reason, setup) for oid in ids}, setup, runs=runs)
    gap, kl_corr = runs.gap, runs.kl_corrupted
    estimates, est_seconds = A.attribution_estimates(bridge, runs, kinds)
    est_fraction = {k: -v / gap for k, v in estimates.items()}
    if method == "exact":
        heads = None
    else:
        rng = random.Random(seed)
        heads = [(l, h) for l in range(n_layers) for h in sorted(rng.sample(range(n_heads), min(SAMPLE_PER_LAYER, n_heads)))]
    engine = A.ExactEngine(bridge, runs, budget_bytes=budget_bytes)
    try:  # the sweep checks three of its ablations against the model's own forward pass (engine.verified)
        sweep, check, failure = engine.sweep(kinds, heads), engine.verified, ""
    except Exception as exc:  # noqa: BLE001 - any failure of the replay means: use the reference loop
        sweep, check, failure = None, math.inf, f" ({type(exc).__name__}: {exc})"
    if sweep is None or not check <= engine.tolerance:
        sweep = A.naive_sweep(bridge, runs, kinds, heads)
        sweep.info["engine"] = f"naive TransformerLens loop (the engine's replay check differed by {check:.2e} > {engine.tolerance}{failure})"
    exact_fraction = {k: (runs.clean_metric - sweep.metric[k]) / gap for k in kinds}
    setup["engine"] = sweep.info
    setup["attribution_vs_exact_pearson"] = {k: _r(A.pearson(est_fraction[k], exact_fraction[k]), 4) for k in kinds}
    setup["attribution_seconds"] = round(est_seconds, 3)
    if heads is not None:
        setup["attribution_checked_heads"] = len(heads)
    dla = A.head_dla(bridge, runs)
    setup["seconds"] = round(time.perf_counter() - start, 3)
    outputs: dict[str, MetricOutput] = {}
    for kind in ("mean", "resample", "zero"):
        oid, kid = f"{task.name}_{kind}_ablation", f"{task.name}_{kind}_ablation_kl"
        if kind not in kinds:
            why = "zero ablation was not requested (run with the option ablation=zero)"
            outputs[oid] = not_applicable(shape, why, setup)
            outputs[kid] = not_applicable(shape, why, setup)
            continue
        if method == "exact":
            values = exact_fraction[kind]
            details = {(l, h): {"metric_ablated": _r(sweep.metric[kind][l, h]), "attribution_estimate": _r(est_fraction[kind][l, h], 4)}
                       for l in range(n_layers) for h in range(n_heads)}
            outputs[oid] = MetricOutput(values=values, details=details, setup=setup)
            kl_values = sweep.kl[kind] / kl_corr
            outputs[kid] = MetricOutput(values=kl_values, setup=setup,
                                        details={(l, h): {"kl_ablated": _r(sweep.kl[kind][l, h])} for l in range(n_layers) for h in range(n_heads)})
        else:
            values = est_fraction[kind]
            details = {(l, h): {"exact": _r(exact_fraction[kind][l, h], 4)} for (l, h) in heads or []}
            outputs[oid] = MetricOutput(values=values, details=details, setup=setup)
            outputs[kid] = not_applicable(shape, "method=attribution: KL(clean || ablated) has no first-order term at the clean run, "
                                                 "so attribution patching gives no estimate", setup)
    outputs[f"{task.name}_dla"] = MetricOutput(values=dla, setup=setup)
    return TaskScore(outputs, setup, runs=runs, exact=sweep)
