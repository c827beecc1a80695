"""Induction score: the induction stripe, as in Olsson et al. (2022) and Nanda's mosaic."""

from ..base import AttentionMetric
from ..probe import stripe_mean

METRIC = AttentionMetric(
    id="induction",
    version="1",
    title="Induction (stripe)",
    compute=lambda pattern, probe: stripe_mean(pattern, probe, "induction"),
    description=(
        "How much a head attends from a token in a repeated sequence to the token that came right "
        "after that token's earlier occurrence: the 'induction stripe'. Induction heads complete "
        "patterns [A][B] ... [A] -> [B] and are behind in-context learning."
    ),
    formula="mean over sequences b and queries q in the repeated half of A[b, q, q - T_b + 1]",
    reference="Olsson et al. 2022, 'In-context Learning and Induction Heads'; Neel Nanda's induction mosaic",
    details=(
        "Probe: BOS + X + X with X uniformly random tokens, the period T varying evenly from 10 to 50 "
        "across a batch of 24 (fixed seed). TransformerLens' demos use one fixed period (T = 50); we vary it "
        "so that a head attending to a fixed offset cannot score as an induction head. Values lie in [0, 1]. "
        "Unlike detect_head's 'mul' measure (capped near 0.5), the stripe mean reaches 1."
    ),
)
