"""Duplicate-token score: attention to the earlier occurrence of the same token."""

from ..base import AttentionMetric
from ..probe import stripe_mean

METRIC = AttentionMetric(
    id="duplicate_token",
    version="1",
    title="Duplicate token",
    compute=lambda pattern, probe: stripe_mean(pattern, probe, "duplicate"),
    description=(
        "How much a head attends from a token to an earlier occurrence of the same token. Duplicate-token "
        "heads tell later heads 'this token appeared before' (in IOI, that the subject is repeated)."
    ),
    formula="mean over sequences b and queries q in the repeated half of A[b, q, q - T_b]",
    reference="Wang et al. 2022 (IOI): GPT-2 small 0.1 and 3.0",
    details="Same probe as the induction score; random tokens rarely repeat inside X, so the earlier occurrence is unique.",
)
