"""Prefix-matching score (Olsson et al. 2022): attention to the tokens that followed earlier occurrences of the current token."""

from __future__ import annotations

from typing import Any

from ..base import AttentionMetric
from ..probe import PREFIX_COPIES, Probe


def prefix_matching(pattern: Any, probe: Probe) -> Any:
    """Per head: summed attention to every 'token after an earlier occurrence', averaged over queries."""
    import torch

    b, q, k = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe("prefix"))
    n_queries = len(probe.stripe("prefix_queries")[0])
    return pattern[b, :, q, k].float().sum(dim=0) / n_queries


METRIC = AttentionMetric(
    id="prefix_matching",
    version="1",
    title="Prefix matching",
    compute=prefix_matching,
    probe="repeat",
    description=(
        "How much a head attends from a token to the tokens that came right after that token's earlier "
        "occurrences, on a random sequence repeated several times: Olsson et al.'s prefix-matching score, the "
        "attention half of an induction head. Unlike the induction stripe it sums over every earlier copy, so an "
        "induction head that spreads its attention across copies still scores near 1."
    ),
    formula=(f"mean over sequences b and queries q in copies 2..{PREFIX_COPIES} of sum over earlier copies c of "
             "A[b, q, q - (copy(q) - c) T_b + 1]"),
    reference="Olsson et al. 2022, 'In-context Learning and Induction Heads' (prefix matching)",
    details=(
        f"Its own small probe, not the shared one: BOS + {PREFIX_COPIES} copies of X, X uniformly random tokens "
        "without repeats inside X, T from 6 to 25 across a batch of 8 (fixed seed), so that the sequence fits "
        "a 128-token context. The shared two-copy probe stays as it is for the induction, previous- and "
        "duplicate-token scores. As in the reference: several copies, averaged over copies 2..n, summing the "
        "attention to every earlier matching position. Values lie in [0, 1]."
    ),
)
