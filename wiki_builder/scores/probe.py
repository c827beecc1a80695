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


def query_rows(pattern: Any, probe: Probe, name: str = "previous") -> tuple[Any, Any]:
    """The attention rows ``[n, head, key]`` of a stripe's queries, and those queries' positions ``[n]``.

    The ``previous`` stripe's queries are every position from 1 to the end of ``X X``: each has at
    least two keys to choose from (position 0 has one: itself), and padding is never a query."""
    import torch

    b, q, _ = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe(name))
    return pattern[b, :, q, :].float(), q


PREFIX_COPIES = 4


@dataclass
class RepeatConfig:
    """The prefix-matching probe: ``[BOS] X X X X`` (``copies`` copies), ``T`` from ``t_min`` to ``t_max``."""

    batch: int = 8
    t_min: int = 6
    t_max: int = 25
    copies: int = PREFIX_COPIES
    seed: int = 0


def build_repeat_probe(bridge: Any, config: RepeatConfig | None = None) -> Probe:
    """A small batch of ``copies`` repeats of a random sequence, separate from the shared probe (whose
    two-copy batch the induction, previous- and duplicate-token scores read and must keep as it is).

    Index ``prefix`` holds, for every query in copies 2..n, one ``(b, q, k)`` cell per earlier copy:
    ``k`` is the position right after that copy's occurrence of the query's token; ``prefix_queries``
    holds each such query once (``k = q``), to count them."""
    import torch

    cfg = bridge.cfg
    bos = bos_id(bridge)
    offset = int(bos is not None)
    conf = config or RepeatConfig()
    room = (int(cfg.n_ctx) - offset) // conf.copies
    t_max = max(1, min(conf.t_max, room))
    t_min = max(1, min(conf.t_min, t_max))
    rng = np.random.default_rng([conf.seed, conf.copies])
    pool = token_pool(getattr(bridge, "tokenizer", None), int(cfg.d_vocab))
    periods = np.linspace(t_min, t_max, conf.batch).round().astype(np.int64)
    length = offset + conf.copies * int(periods.max())
    rows = []
    for t in periods:
        x = rng.choice(pool, size=int(t), replace=len(pool) < t)
        pad = rng.choice(pool, size=length - offset - conf.copies * int(t))
        rows.append(np.concatenate([[bos] if offset else [], *([x] * conf.copies), pad]).astype(np.int64))
    probe = Probe(tokens=torch.tensor(np.stack(rows)), periods=periods, offset=offset,
                  config=ProbeConfig(conf.batch, t_min, t_max, conf.seed), pool_size=len(pool))
    probe.index = _repeat_indices(periods, offset, conf.copies)
    return probe


def _repeat_indices(periods: np.ndarray, offset: int, copies: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out: dict[str, list[list[int]]] = {"prefix": [[], [], []], "prefix_queries": [[], [], []]}
    for b, t in enumerate(periods.tolist()):
        for c in range(1, copies):
            for i in range(t):
                q = offset + c * t + i
                for key, ks in (("prefix", [offset + e * t + i + 1 for e in range(c)]), ("prefix_queries", [q])):
                    for k in ks:
                        out[key][0].append(b)
                        out[key][1].append(q)
                        out[key][2].append(k)
    return {k: tuple(np.array(v, dtype=np.int64) for v in lists) for k, lists in out.items()}


def stripe_mean(pattern: Any, probe: Probe, name: str) -> Any:
    """Mean over the stripe's (batch, query, key) cells of ``pattern[b, h, q, k]``, per head."""
    import torch

    b, q, k = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe(name))
    return pattern[b, :, q, k].float().mean(dim=0)
