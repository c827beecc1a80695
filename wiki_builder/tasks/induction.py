"""Induction as a task (ACDC): repeated random tokens, scored on the repeated half.

Clean: ``[BOS] X X`` with ``X`` ``T`` distinct tokens drawn uniformly from the shared probe's
token pool (no special tokens, no rarest or commonest ids). Corrupted: ``[BOS] X' X`` with
``X'`` a random permutation of ``X`` (shuffled tokens): every position sees the same tokens
and the same current token in the repeated half, but the earlier occurrence of each token
is now followed by a different one, so copying from context predicts the wrong token.

Scored positions: the second copy's positions ``T+1 .. 2T-1`` (with BOS at 0), each predicting
the next token of ``X``. Metric: mean ``log p(correct next token)`` over them; the KL outputs
measure ``KL(clean || ablated)`` over the same positions. Accuracy: the fraction of scored
positions whose argmax over the vocabulary is the correct next token (chance ``1/|pool|``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..scores.probe import token_pool
from .common import Task, gather_last, not_expressible, with_bos

T_DEFAULT = 20
T_MIN = 4


class InductionTask(Task):
    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        return gather_last(logits.float().log_softmax(-1), self.labels["next"]).mean(-1)

    def correct(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(-1) == self.labels["next"]).float().mean(-1)

    def direction(self, W_U: torch.Tensor) -> torch.Tensor:
        return W_U[:, self.labels["next"]].permute(1, 2, 0)  # [N, P, d]


def build(tokenizer, n: int = 32, seed: int = 0, bos: int | None = None, n_ctx: int = 1024, d_vocab: int | None = None,
          period: int = T_DEFAULT) -> Task:
    title = "Induction task"
    offset = int(bos is not None)
    t = min(period, (n_ctx - offset) // 2)
    setup = {"task": "induction_task", "seed": seed, "corruption": "first copy shuffled: [BOS] perm(X) X"}
    try:
        pool = token_pool(tokenizer, int(d_vocab or len(tokenizer)))
    except ValueError as exc:
        return not_expressible(InductionTask, "induction_task", title, str(exc), setup)
    setup["token_pool"] = int(len(pool))
    if t < T_MIN or len(pool) < t:
        return not_expressible(InductionTask, "induction_task", title,
                               f"a period of {t} tokens (context {n_ctx}, pool {len(pool)}) is too short for the task (needs {T_MIN})", setup)
    rng = np.random.default_rng(seed)
    clean, corrupted = [], []
    for _ in range(n):
        x = rng.choice(pool, size=t, replace=False)
        perm = rng.permutation(t)
        while t > 1 and (perm == np.arange(t)).all():
            perm = rng.permutation(t)
        clean.append(with_bos(list(x) + list(x), bos))
        corrupted.append(with_bos(list(x[perm]) + list(x), bos))
    tokens = torch.tensor(np.array(clean, dtype=np.int64))
    positions = torch.arange(offset + t, offset + 2 * t - 1)
    setup.update({"n_prompts": n, "period": t, "length": int(tokens.shape[1]), "scored_positions": f"{offset + t}..{offset + 2 * t - 2}"})
    return InductionTask(name="induction_task", title=title, clean=tokens, corrupted=torch.tensor(np.array(corrupted, dtype=np.int64)),
                         positions=positions, labels={"next": tokens[:, positions + 1]},
                         chance=1.0 / len(pool), setup=setup,
                         metric_formula="mean over the repeated half of log p(correct next token)",
                         accuracy_definition="fraction of repeated-half positions whose argmax is the correct next token (chance 1/|pool|)")
