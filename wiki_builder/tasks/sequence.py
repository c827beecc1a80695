"""Sequence continuation: "1 2 3 4" -> " 5", "one two three four" -> " five", months, days.

Four ordered sets from ``lexicon``: digits 0..9, number words one..twenty, months and days
(months and days wrap around: December -> January). Each prompt shows ``K = 4`` consecutive
members, each as its own token with a leading space (" 1 2 3 4"), after BOS; a set is used
only when every member is a single token. The next member is the answer.

Metric: ``logit(next member) - logit(last shown member)`` at the last position (the model
should move on rather than repeat). Corruption: ``K`` random distinct members of the same
set in random order (the metric keeps the clean labels). Accuracy: the fraction of prompts
whose next member has the highest logit among its set's members (chance ``1/|set|``).
"""

from __future__ import annotations

import random

import torch

from .. import lexicon as L
from ..models.tokens import single_tokens
from .common import Task, decode, gather_last, not_expressible, with_bos

SETS = {"digits": L.DIGITS, "number_words": L.NUMBER_WORDS, "months": L.MONTHS, "days": L.DAYS}
CYCLIC = {"months", "days"}
K = 4


class SequenceTask(Task):
    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        return (gather_last(logits, self.labels["next"]) - gather_last(logits, self.labels["last"])).mean(-1)

    def correct(self, logits: torch.Tensor) -> torch.Tensor:
        members = self.labels["members"]  # [N, M] ids of the prompt's set, padded with -1
        mask = members >= 0
        lg = logits.gather(-1, members.clamp(min=0)[:, None, :].expand(logits.shape[0], logits.shape[1], -1))
        lg = lg.masked_fill(~mask[:, None, :], float("-inf"))
        best = members.gather(-1, lg.argmax(-1))  # [N, P]
        return (best == self.labels["next"][:, None]).float().mean(-1)

    def direction(self, W_U: torch.Tensor) -> torch.Tensor:
        return (W_U[:, self.labels["next"]] - W_U[:, self.labels["last"]]).T[:, None, :]

    def dla_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.labels["next"], self.labels["last"]


def runs(members: list[str], cyclic: bool) -> list[list[str]]:
    """Every K+1 consecutive members (the last one is the answer)."""
    m = len(members)
    if cyclic:
        return [[members[(s + i) % m] for i in range(K + 1)] for s in range(m)]
    return [members[s:s + K + 1] for s in range(m - K)]


def build(tokenizer, n: int = 32, seed: int = 0, bos: int | None = None, n_ctx: int = 1024,
          d_vocab: int | None = None) -> Task:
    title = "Sequence continuation"
    found = {name: single_tokens(tokenizer, words, distinct=False) for name, words in SETS.items()}
    ok = {name: ids for name, ids in found.items() if len(ids) == len(SETS[name])}
    setup = {"task": "sequence", "seed": seed, "shown_members": K,
             "sets": {name: f"{len(found[name])}/{len(SETS[name])}" + ("" if name in ok else " (not all single tokens: unused)") for name in SETS},
             "corruption": f"{K} random distinct members of the same set"}
    if not ok or K + 1 + 1 > n_ctx:
        return not_expressible(SequenceTask, "sequence", title,
                               "no set (digits, number words, months, days) has every member as a single token (' ' + word)", setup)
    rng = random.Random(seed)
    pools = {name: runs(SETS[name], name in CYCLIC) for name in ok}
    for p in pools.values():
        rng.shuffle(p)
    order = sorted(ok)
    clean, corrupted, nxt, last, members, used = [], [], [], [], [], {name: 0 for name in ok}
    width = max(len(SETS[name]) for name in ok)
    i = 0
    while len(clean) < n:
        name = order[i % len(order)]
        run = pools[name][(used[name]) % len(pools[name])]
        used[name] += 1
        i += 1
        ids = ok[name]
        clean.append(with_bos([ids[w] for w in run[:K]], bos))
        corrupted.append(with_bos([ids[w] for w in rng.sample(SETS[name], K)], bos))
        nxt.append(ids[run[K]])
        last.append(ids[run[K - 1]])
        row = [ids[w] for w in SETS[name]]
        members.append(row + [-1] * (width - len(row)))
    S = len(clean[0])
    m_t = torch.tensor(members)
    chance = float((1.0 / (m_t >= 0).sum(-1).float()).mean())
    setup.update({"n_prompts": len(clean), "length": S, "prompts_per_set": used,
                  "distinct_prompts_per_set": {name: len(pools[name]) for name in ok},
                  "examples": [decode(tokenizer, clean[0][int(bos is not None):]) + " ->" + decode(tokenizer, [nxt[0]]),
                               decode(tokenizer, corrupted[0][int(bos is not None):])]})
    return SequenceTask(name="sequence", title=title, clean=torch.tensor(clean), corrupted=torch.tensor(corrupted),
                        positions=torch.tensor([S - 1]),
                        labels={"next": torch.tensor(nxt), "last": torch.tensor(last), "members": m_t},
                        chance=chance, setup=setup,
                        metric_formula="logit(next member) - logit(last shown member) at the last position",
                        accuracy_definition="fraction of prompts whose next member has the highest logit among its set's members "
                                            "(chance 1/|set|, averaged over prompts)")
