"""Sequence-continuation task scores: per-head mean/resample ablation (metric and KL) and direct logit attribution."""

from ..tasks.family import DEFINITIONS, compute_for, example_for, options_used, output_titles
from .base import Metric

METRIC = Metric(
    id="sequence",
    version="2",  # 2: not applicable when the clean-minus-corrupted gap is under 5% of the clean metric
    title="Sequence continuation",
    kind="task",
    compute=compute_for("sequence"),
    outputs=output_titles("sequence", "Sequence continuation"),
    example=example_for("sequence"),
    options=options_used,
    description=(
        "Sequence continuation: '1 2 3 4' -> ' 5', 'one two three four' -> ' five', 'March April May June' -> ' July', "
        "'Monday Tuesday Wednesday Thursday' -> ' Friday'. Each head is ablated on its own and we record the fraction of "
        "the clean-minus-corrupted logit difference (next member against the repeated last member) that is lost, and the "
        "KL to the clean output. Successor heads (GPT-2 small 9.1) should matter here."
    ),
    formula=("metric M = logit(next member) - logit(last shown member) at the last position; "
             "value = (M_clean - M_ablated) / (M_clean - M_corrupted); KL outputs: KL(clean || ablated) / KL(clean || corrupted)"),
    reference="Gould et al. 2023, 'Successor Heads'; Lan and Barez 2023, number-sequence circuits; Conmy et al. 2023 (ACDC)",
    details=(
        "Four sets: digits 0..9, number words one..twenty, months and days (months and days wrap around); a set is used "
        "only if every member is one token with a leading space. Prompts show 4 consecutive members after BOS, the sets "
        "taking turns; 32 prompts. Corruption: 4 random distinct members of the same set. Not applicable when no set "
        "is expressible or the model's accuracy (the next member has the highest logit in its set) is below "
        "chance + 0.4 x (1 - chance). " + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items())
    ),
    higher_is="more of the sequence-continuation behaviour depends on the head",
)
