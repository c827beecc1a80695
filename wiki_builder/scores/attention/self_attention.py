"""Self-attention score: attention from each token to its own position."""

from __future__ import annotations

from typing import Any

from ..base import AttentionMetric
from ..probe import Probe


def self_attention(pattern: Any, probe: Probe) -> Any:
    """Mean over scored queries q >= 1 of A[q, q], per head."""
    import torch

    b, q, _ = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe("previous"))
    return pattern[b, :, q, q].float().mean(dim=0)


METRIC = AttentionMetric(
    id="self_attention",
    version="1",
    title="Self-attention",
    compute=self_attention,
    description=(
        "How much a head attends from each token to that same token. A self-attending head moves the current "
        "token's own information (often with a transformation) rather than reading context; HeadVis and "
        "Neuronpedia report it for every head."
    ),
    formula="mean over sequences b and queries q >= 1 of A[b, q, q]",
    reference="Anthropic HeadVis 2026 and Neuronpedia head pages ('self' attention); Clark et al. 2019",
    details=(
        "Shared probe (BOS + X + X, T from 10 to 50), the queries of the previous-token score (1 to the end of "
        "X X). Position 0 is left out: with one key it attends to itself by necessity."
    ),
)
