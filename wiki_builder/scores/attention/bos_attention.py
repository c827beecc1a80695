"""BOS attention: attention to the first position, the attention sink."""

from __future__ import annotations

from typing import Any

from ..base import AttentionMetric
from ..probe import Probe

SINK_THRESHOLD = 0.3  # Gu et al. 2025: a head whose mean attention to the first token exceeds this is a sink head


def bos_attention(pattern: Any, probe: Probe) -> Any:
    """Mean over scored queries q >= 1 of A[q, 0], per head."""
    import torch

    b, q, _ = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe("previous"))
    return pattern[b, :, q, 0].float().mean(dim=0)


METRIC = AttentionMetric(
    id="bos_attention",
    version="1",
    title="BOS attention (sink)",
    compute=bos_attention,
    description=(
        "How much a head attends from each token to the first position (BOS where the model uses one): the "
        "attention sink. Heads with nothing to do park their attention there, so a high value often means a "
        "head is idle on this input. Gu et al. 2025 count a head as a sink head when this exceeds "
        f"{SINK_THRESHOLD}."
    ),
    formula="mean over sequences b and queries q >= 1 of A[b, q, 0]",
    reference=("Xiao et al. 2023, 'Efficient Streaming Language Models with Attention Sinks'; Gu et al. 2025, "
               f"'When Attention Sink Emerges in Language Models' (threshold {SINK_THRESHOLD})"),
    details=(
        "Shared probe (BOS + X + X, T from 10 to 50), the queries of the previous-token score (1 to the end of "
        "X X); position 0 itself is left out (it can only attend to itself). Gu et al. measure the sink on "
        "natural text and per token; here the input is random tokens, so the value shows the sink a head falls "
        "back to when nothing in the context is relevant. For a model without BOS, position 0 is the first "
        "random token."
    ),
    higher_is="more attention on the first token",
)
