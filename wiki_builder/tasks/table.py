"""The table of tasks: one row per task, read by the task score families, the benchmarks, the labels and the site.

Adding a task is one prompt-builder module in this package (a ``build(tokenizer, n, seed, bos,
n_ctx, d_vocab)`` that returns a :class:`~wiki_builder.tasks.common.Task`) plus one row here.
This module is plain data: importing it loads neither torch nor the builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Applicability: a model "does" a task when its clean accuracy is at least this far from
# chance towards perfect: accuracy >= chance + ACCURACY_MARGIN * (1 - chance).
ACCURACY_MARGIN = 0.4


@dataclass(frozen=True)
class TaskRow:
    name: str  # the family id and the prefix of its output ids (ioi -> ioi_mean_ablation, ...)
    builder: str  # module whose build() makes the prompts: a name in wiki_builder.tasks, or a full dotted path
    title: str  # "IOI"; outputs are titled "IOI: mean ablation, ..."
    label: str  # how a label names it: "important for IOI", "writes the answer in greater-than"
    description: str
    formula: str
    reference: str
    details: str  # the set-up; the shared definitions of the outputs are appended by the family
    higher_is: str
    version: str = "2"  # 2: not applicable when the clean-minus-corrupted gap is under 5% of the clean metric
    example: dict[str, Any] = field(default_factory=dict)  # builder options for the head pages' short example prompt


TASKS: tuple[TaskRow, ...] = (
    TaskRow(
        name="greater_than",
        builder="greater_than",
        title="Greater-than",
        label="greater-than",
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
            "chance + 0.4 x (1 - chance). "
        ),
        higher_is="more of the greater-than behaviour depends on the head",
    ),
    TaskRow(
        name="induction_task",
        builder="induction",
        title="Induction task",
        label="the induction task",
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
            "token) is below chance + 0.4 x (1 - chance), chance = 1/|pool|. "
        ),
        higher_is="more of the induction behaviour depends on the head",
        example={"period": 8},  # short, like the probe's example
    ),
    TaskRow(
        name="ioi",
        builder="ioi",
        title="IOI",
        label="IOI",
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
            "is below 0.7 (chance 0.5 + 0.4 x (1 - chance)). "
        ),
        higher_is="more of the IOI behaviour depends on the head",
    ),
    TaskRow(
        name="sequence",
        builder="sequence",
        title="Sequence continuation",
        label="sequence continuation",
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
            "chance + 0.4 x (1 - chance). "
        ),
        higher_is="more of the sequence-continuation behaviour depends on the head",
    ),
)

def row(name: str) -> TaskRow:
    """A task's row, by name (read from ``TASKS`` at each call, so a test may extend the table)."""
    for t in TASKS:
        if t.name == name:
            return t
    raise KeyError(f"Unknown task '{name}'. Known: {', '.join(t.name for t in TASKS)}")
