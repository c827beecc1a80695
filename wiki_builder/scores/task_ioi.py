"""IOI task scores: per-head mean/resample ablation (metric and KL) and direct logit attribution."""

from ..tasks.family import DEFINITIONS, compute_for, example_for, options_used, output_titles
from .base import Metric

METRIC = Metric(
    id="ioi",
    version="2",  # 2: not applicable when the clean-minus-corrupted gap is under 5% of the clean metric
    title="IOI",
    kind="task",
    compute=compute_for("ioi"),
    outputs=output_titles("ioi", "IOI"),
    example=example_for("ioi"),
    options=options_used,
    description=(
        "Indirect object identification: in 'When Mary and John went to the store, John gave a drink to', the "
        "model should say ' Mary'. Each head is ablated on its own (its output at every position replaced by its "
        "mean over corrupted prompts, or by the corrupted prompt's own output) and we record how much of the "
        "clean-minus-corrupted logit difference is lost, and how far the output distribution moves (KL). Name "
        "movers, S-inhibition and induction/duplicate heads of the IOI circuit lose a large fraction; the direct "
        "logit attribution shows which heads write the answer themselves (negative for negative name movers)."
    ),
    formula=("metric M = logit(IO) - logit(S) at the last position; value = (M_clean - M_ablated) / (M_clean - M_corrupted); "
             "KL outputs: KL(clean || ablated) / KL(clean || corrupted)"),
    reference="Wang et al. 2022, 'Interpretability in the Wild' (IOI); Conmy et al. 2023 (ACDC) for the ABC corruption and KL",
    details=(
        "Prompts: lexicon.IOI_TEMPLATES whose token length is the most common one with single-token names, places, objects "
        "and verbs; ABBA and BABA alternate; 32 prompts, fixed seed. Corruption (ACDC's ABC): the names A, B and S replaced "
        "by three random distinct names; resample ablation pairs prompt n with corrupted prompt n. The task is marked not "
        "applicable when the tokenizer has fewer than 8 single-token names, or the model's accuracy (logit(IO) > logit(S)) "
        "is below 0.7 (chance 0.5 + 0.4 x (1 - chance)). " + "; ".join(f"{k}: {v}" for k, v in DEFINITIONS.items())
    ),
    higher_is="more of the IOI behaviour depends on the head",
)
