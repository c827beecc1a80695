"""Previous-token score: mean attention from each token to the one before it."""

from ..base import AttentionMetric
from ..probe import stripe_mean

METRIC = AttentionMetric(
    id="prev_token",
    version="1",
    title="Previous token",
    compute=lambda pattern, probe: stripe_mean(pattern, probe, "previous"),
    description=(
        "How much a head attends from each token to the token immediately before it. Previous-token "
        "heads feed induction heads (K-composition) by copying 'what came before me' into the residual stream."
    ),
    formula="mean over sequences b and queries q >= 1 of A[b, q, q - 1]",
    reference="Elhage et al. 2021; Wang et al. 2022 (IOI) list GPT-2 small 2.2 and 4.11",
    details="Same probe as the induction score; queries range over BOS, both copies of X (padding is not scored).",
)
