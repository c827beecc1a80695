"""Mean attention distance: how far back, in tokens, a head's attention reaches on average."""

from __future__ import annotations

from typing import Any

from ..base import AttentionMetric
from ..probe import Probe, query_rows


def mean_attention_distance(pattern: Any, probe: Probe) -> Any:
    """Mean over scored queries of sum_k A[q, k] (q - k), per head, in tokens."""
    import torch

    rows, q = query_rows(pattern, probe)
    keys = torch.arange(rows.shape[-1], device=rows.device)
    distance = (q[:, None] - keys[None, :]).clamp(min=0).float()  # [n, key]; keys after q have no attention
    return (rows * distance[:, None, :]).sum(dim=-1).mean(dim=0)


METRIC = AttentionMetric(
    id="mean_attention_distance",
    version="1",
    title="Mean attention distance",
    compute=mean_attention_distance,
    description=(
        "How far back a head looks, in tokens: the attention-weighted distance from each query to the keys it "
        "attends to, averaged over queries. Previous-token heads score 1, self-attending heads 0, sinks on BOS "
        "and induction heads on repeated sequences score far more."
    ),
    formula="mean over sequences b and queries q >= 1 of sum_{k <= q} A[b, q, k] (q - k)",
    reference="Dosovitskiy et al. 2021 (ViT 'mean attention distance'); HeadVis 2026",
    details=(
        "Shared probe (BOS + X + X, T from 10 to 50; sequences up to 101 tokens), the queries of the "
        "previous-token score (1 to the end of X X). In tokens, not normalised: a head attending uniformly to "
        "everything before it scores q / 2 on average (about 20 here), and the value depends on the probe's "
        "length, so compare heads on the same probe."
    ),
    higher_is="attention further back",
)
