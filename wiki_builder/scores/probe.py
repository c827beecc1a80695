"""The shared probe: one batch of repeated random tokens, one forward pass.

Each sequence is ``[BOS] X X R`` where ``X`` is ``T`` uniformly random tokens and ``R``
random padding up to a common length. ``T`` varies across the batch (evenly from
``t_min`` to ``t_max``), so a head that attends to a fixed offset cannot pass for an
induction head (the pitfall noted in the reference). Padding sits after the scored
positions, so under causal attention it changes nothing we measure.

Index arrays for each attention-pattern score are built here once; a score is then a
gather and a mean over ``pattern[b, :, q, k]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..models.tokens import bos_id


@dataclass
class ProbeConfig:
    batch: int = 24
    t_min: int = 10
    t_max: int = 50
    seed: int = 0

    def fit(self, n_ctx: int, has_bos: bool) -> ProbeConfig:
        """Shrink periods so that ``[BOS] X X`` fits the model's context."""
        room = (n_ctx - int(has_bos)) // 2
        t_max = min(self.t_max, room)
        t_min = min(self.t_min, t_max)
        return ProbeConfig(self.batch, t_min, t_max, self.seed)


@dataclass
class Probe:
    tokens: Any  # torch.LongTensor [batch, length]
    periods: np.ndarray  # [batch]
    offset: int  # 1 when a BOS token leads each sequence
    config: ProbeConfig
    pool_size: int
    index: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def stripe(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.index[name]


def token_pool(tokenizer: Any, d_vocab: int) -> np.ndarray:
    """Token ids to sample from: no special or byte-fallback tokens, no rarest or commonest ids.

    BPE vocabularies are roughly ordered by merge frequency, so for large vocabularies we
    keep the band from 2% to 50% of the id range; small word-level vocabularies keep
    every ordinary word.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = np.arange(d_vocab)
    if d_vocab > 5000:
        ids = ids[(ids >= int(d_vocab * 0.02)) & (ids < int(d_vocab * 0.5))]
    vocab = tokenizer.convert_ids_to_tokens(ids.tolist()) if tokenizer is not None else [None] * len(ids)
    keep = [
        i for i, tok in zip(ids.tolist(), vocab)
        if i not in special and tok is not None and not re.fullmatch(r"<.*>|\[.*\]", str(tok))
    ]
    if len(keep) < 8:
        raise ValueError(f"Only {len(keep)} ordinary tokens in the vocabulary: too few to build a random-token probe.")
    return np.array(keep, dtype=np.int64)


def build_probe(bridge: Any, config: ProbeConfig | None = None) -> Probe:
    """Build the probe batch for a model (deterministic for a given seed)."""
    import torch

    cfg = bridge.cfg
    tokenizer = getattr(bridge, "tokenizer", None)
    bos = bos_id(bridge)
    has_bos = bos is not None
    conf = (config or ProbeConfig()).fit(int(cfg.n_ctx), has_bos)
    rng = np.random.default_rng(conf.seed)
    pool = token_pool(tokenizer, int(cfg.d_vocab))
    periods = np.linspace(conf.t_min, conf.t_max, conf.batch).round().astype(np.int64)
    offset = int(has_bos)
    length = offset + 2 * int(periods.max())
    rows = []
    for t in periods:
        x = rng.choice(pool, size=int(t), replace=len(pool) < t)
        pad = rng.choice(pool, size=length - offset - 2 * int(t))
        rows.append(np.concatenate([[bos] if has_bos else [], x, x, pad]).astype(np.int64))
    tokens = torch.tensor(np.stack(rows))
    probe = Probe(tokens=tokens, periods=periods, offset=offset, config=conf, pool_size=len(pool))
    probe.index = _indices(periods, offset, length)
    return probe


def _indices(periods: np.ndarray, offset: int, length: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out: dict[str, list[list[int]]] = {"induction": [[], [], []], "duplicate": [[], [], []], "previous": [[], [], []]}
    for b, t in enumerate(periods.tolist()):
        second = range(offset + t, offset + 2 * t)  # query positions in the repeated half
        for q in second:
            for key, k in (("induction", q - t + 1), ("duplicate", q - t)):
                out[key][0].append(b)
                out[key][1].append(q)
                out[key][2].append(k)
        for q in range(1, offset + 2 * t):  # previous token, over the scored region
            out["previous"][0].append(b)
            out["previous"][1].append(q)
            out["previous"][2].append(q - 1)
    return {k: tuple(np.array(v, dtype=np.int64) for v in lists) for k, lists in out.items()}


def stripe_mean(pattern: Any, probe: Probe, name: str) -> Any:
    """Mean over the stripe's (batch, query, key) cells of ``pattern[b, h, q, k]``, per head."""
    import torch

    b, q, k = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe(name))
    return pattern[b, :, q, k].float().mean(dim=0)
