"""Attention entropy: how spread out a head's attention is, 0 for one key, 1 for uniform over every allowed key."""

from __future__ import annotations

from typing import Any

from ..base import AttentionMetric
from ..probe import Probe, query_rows


def attention_entropy(pattern: Any, probe: Probe) -> Any:
    """Mean over scored queries of H(A[q, :q+1]) / log(q + 1), per head."""
    import torch

    rows, q = query_rows(pattern, probe)
    entropy = -torch.special.xlogy(rows, rows).sum(dim=-1)  # [n, head]; keys after q carry 0 and add 0
    return (entropy / torch.log((q + 1).double()).float()[:, None]).mean(dim=0)


METRIC = AttentionMetric(
    id="attention_entropy",
    version="1",
    title="Attention entropy",
    compute=attention_entropy,
    description=(
        "How spread out a head's attention is: the entropy of each query's attention over the positions it may "
        "attend to, divided by its largest possible value, so 0 means every query looks at one token and 1 means "
        "it spreads evenly over all of them. HeadVis and Neuronpedia show it beside the induction and "
        "previous-token scores; sharp heads (previous-token, induction, attention sinks) sit near 0."
    ),
    formula="mean over sequences b and queries q >= 1 of ( -sum_{k <= q} A[b, q, k] log A[b, q, k] ) / log(q + 1)",
    reference="Vig & Belinkov 2019 (attention entropy per head); Anthropic HeadVis 2026 and Neuronpedia head pages",
    details=(
        "Shared probe (BOS + X + X, T from 10 to 50). Queries are positions 1 to the end of X X, as for the "
        "previous-token score: position 0 (BOS where the model has one) is left out because a query with a single "
        "key has entropy 0 by necessity and no maximum to normalise by. BOS counts as a key like any other, so a "
        "head that parks its attention on BOS scores near 0. The maximum, log(q + 1), is that of the uniform "
        "distribution over the q + 1 keys causal attention allows."
    ),
    higher_is="more diffuse attention",
)
