"""Induction task scores: per-head mean/resample ablation (metric and KL) and direct logit attribution."""

from ..tasks.family import DEFINITIONS, compute_for, example_for, options_used, output_titles
from .base import Metric

METRIC = Metric(
    id="induction_task",
    version="2",  # 2: not applicable when the clean-minus-corrupted gap is under 5% of the clean metric
    title="Induction task",
    kind="task",
    compute=compute_for("induction_task"),
    outputs=output_titles("induction_task", "Induction task"),
    example=example_for("induction_task"),
    options=options_used,
    description=(
        "Induction as a task: on a random token sequence repeated twice, the model predicts the second copy from the "
        "first. Each head is ablated on its own and we record how much of the clean-minus-corrupted log-probability of "
        "the correct next tokens is lost, and the KL divergence to the clean output on the repeated half (ACDC's "
        "induction metric). Induction heads and the previous-token heads they compose with lose most."
    ),
    formula=("metric M = mean over the repeated half of log p(correct next token); value = (M_clean - M_ablated) / "
             "(M_clean - M_corrupted); KL outputs: mean over the repeated half of KL(clean || ablated) / KL(clean || corrupted)"),
    reference="Olsson et al. 2022, 'In-context Learning and Induction Heads'; Conmy et al. 2023 (ACDC), induction task",
    details=(
        "Clean: BOS + X + X, X 20 distinct tokens from the shared probe's pool (no special, rarest or commonest ids); "
        "32 prompts, fixed seed. Corruption: BOS + X' + X with X' a random permutation of X (shuffled tokens), so the "
        "current tokens of the scored half are unchanged but what followed each of them earlier is not. Scored "
        "positions: the second copy's first T-1 tokens. Not applicable when the model's accuracy (argmax = correct next "
        "token) is below chance + 0.4 x (1 - chance), chance = 1/|pool|. " + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items())
    ),
    higher_is="more of the induction behaviour depends on the head",
)
