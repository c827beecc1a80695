"""Greater-than task scores: per-head mean/resample ablation (metric and KL) and direct logit attribution."""

from ..tasks.family import DEFINITIONS, compute_for, example_for, options_used, output_titles
from .base import Metric

METRIC = Metric(
    id="greater_than",
    version="2",  # 2: not applicable when the clean-minus-corrupted gap is under 5% of the clean metric
    title="Greater-than",
    kind="task",
    compute=compute_for("greater_than"),
    outputs=output_titles("greater_than", "Greater-than"),
    example=example_for("greater_than"),
    options=options_used,
    description=(
        "Greater-than: after 'The war lasted from the year 1732 to the year 17' a model should put its probability on "
        "two-digit years above 32. Each head is ablated on its own and we record the fraction of the clean-minus-"
        "corrupted probability difference that is lost, and the KL to the clean output. In GPT-2 small the circuit runs "
        "through heads 5.1, 5.5, 6.9, 7.10, 8.8, 8.11 and 9.1 and MLPs 8-11."
    ),
    formula=("metric M = sum_{y > YY} p(y) - sum_{y <= YY} p(y) over the two-digit tokens at the last position; "
             "value = (M_clean - M_ablated) / (M_clean - M_corrupted); KL outputs: KL(clean || ablated) / KL(clean || corrupted)"),
    reference="Hanna, Liu and Variengien 2023, 'How does GPT-2 compute greater-than?'; Conmy et al. 2023 (ACDC)",
    details=(
        "A year is a century token (11..17) followed by its own two-digit token: GPT-2's BPE spells it '1732' (' 17' + '32'), "
        "a word-level tokenizer '17 32'; the builder checks the tokenization of every prompt. YY in 02..98, nouns from "
        "lexicon.GREATER_THAN_NOUNS (single tokens); 32 prompts. Corruption: YY -> 01. The DLA direction is the mean "
        "unembedding of the years above YY minus that of the years at or below YY. Not applicable when fewer than 20 start "
        "years can be written, or when the model's accuracy (its most likely two-digit token is above YY) is below "
        "chance + 0.4 x (1 - chance). " + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items())
    ),
    higher_is="more of the greater-than behaviour depends on the head",
)
