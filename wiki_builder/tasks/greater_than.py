"""Greater-than (Hanna et al. 2023).

"The war lasted from the year 1732 to the year 17" -> a two-digit token YY' > 32. A year is
a century token followed by its own two-digit token, spelt the way the tokenizer itself
spells " 1732" (:func:`spelling_of_year`): GPT-2's and Pythia's BPE write it " 17" + "32", so
the prompt is the paper's, "... the year 1732 to ..."; the zoo's word-level tokenizer has no
" 1732" and writes years as two words, "... the year 17 32 to ..."; a tokenizer that splits
digits one by one gets the task marked not applicable (never a different prompt). The
builder encodes the whole prompt as text and checks that the year's last two digits really
are their own token at the expected place. Centuries come from ``lexicon.CENTURIES`` (11..17), YY from 02..98, nouns from
``lexicon.GREATER_THAN_NOUNS`` (single tokens only).

Metric: ``sum_{y > YY} p(y) - sum_{y <= YY} p(y)`` over the two-digit tokens y = 00..99 (those
the tokenizer has), p the softmax over the whole vocabulary at the last position.
Corruption: YY replaced by 01. Accuracy: the fraction of prompts whose most likely
two-digit token is greater than YY (chance: the mean share of two-digit tokens above YY).
"""

from __future__ import annotations

import random

import torch

from .. import lexicon as L
from ..models.tokens import encode, single_token, single_tokens
from .common import Task, decode, not_expressible, with_bos

YY_MIN, YY_MAX = 2, 98
MIN_YEARS = 20


class GreaterThanTask(Task):
    def _two_digit(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.float().softmax(-1)
        return probs[..., self.labels["year_ids"]]  # [..., N, P, 100]

    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        p = self._two_digit(logits)
        sign = self.labels["sign"][:, None, :].to(p.dtype)  # [N, 1, 100]: +1 above YY, -1 at or below
        return (p * sign).sum(-1).mean(-1)

    def correct(self, logits: torch.Tensor) -> torch.Tensor:
        lg = logits[..., self.labels["year_ids"]]
        best = self.labels["year_values"][lg.argmax(-1)]  # [N, P]
        return (best > self.labels["yy"][:, None]).float().mean(-1)

    def direction(self, W_U: torch.Tensor) -> torch.Tensor:
        """Mean unembedding of the years above YY minus that of the years at or below."""
        cols = W_U[:, self.labels["year_ids"]]  # [d, 100]
        above = (self.labels["sign"] > 0).to(cols.dtype)  # [N, 100]
        below = 1.0 - above
        d = above @ cols.T / above.sum(-1, keepdim=True).clamp(min=1) - below @ cols.T / below.sum(-1, keepdim=True).clamp(min=1)
        return d[:, None, :]


PAPER_YEAR = ("17", "32")  # Hanna et al.'s example year, 1732
PAPER_PROMPT = "The war lasted from the year 1732 to the year 17"


def spelling_of_year(tokenizer) -> tuple[str, list[str]]:
    """The spelling the tokenizer itself produces for " 1732": (form, the tokens it gives).

    The rule, the same for every tokenizer, so that none silently switches spelling:

    * 'joined' when ``" 1732"`` encodes as [``" 17"``, ``"32"``]: a century token then a
      two-digit token (GPT-2's and GPT-NeoX's byte-level BPE). Years are written "1732".
    * 'separated' when ``" 1732"`` is not in the vocabulary at all (it encodes to the unknown
      token) and ``" 17 32"`` encodes as two word tokens [``"17"``, ``"32"``]: a word-level
      tokenizer whose corpus writes years as two words (the embedded zoo). Years are written "17 32".
    * '' otherwise, e.g. a tokenizer that splits digits one by one (" 1732" -> "1" "7" "3" "2"):
      a year has no two-digit token, and the task is not applicable (no other prompt is tried).
    """
    c, yy = PAPER_YEAR
    ids = encode(tokenizer, f" {c}{yy}")
    shown = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)] if hasattr(tokenizer, "convert_ids_to_tokens") else [str(i) for i in ids]
    century = single_token(tokenizer, c)
    if century is not None and ids == [century, single_token(tokenizer, yy, space=False)]:
        return "joined", shown
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and int(unk) in ids and century is not None and encode(tokenizer, f" {c} {yy}") == [century, single_token(tokenizer, yy)]:
        return "separated", shown
    return "", shown


def year_spelling(tokenizer) -> tuple[str, dict[str, int], dict[str, int], list[tuple[str, str]]]:
    """How this tokenizer writes a year: (form, centuries, two-digit token per YY, valid (C, YY) pairs).

    ``form`` comes from :func:`spelling_of_year` (the tokenizer's own spelling of " 1732");
    the pairs are the (C, YY) whose year, written that way, is [century, two-digit token].
    '' and no pairs when the tokenizer writes " 1732" any other way.
    """
    centuries = single_tokens(tokenizer, L.CENTURIES, distinct=False)
    form, _ = spelling_of_year(tokenizer)
    if not form:
        return "", centuries, {}, []
    tokens = single_tokens(tokenizer, L.TWO_DIGIT, space=(form == "separated"), distinct=False)
    pairs = [(c, yy) for c, cid in centuries.items() for yy, tok in tokens.items()
             if encode(tokenizer, f" {c}{yy}" if form == "joined" else f" {c} {yy}") == [cid, tok]]
    return form, centuries, tokens, pairs


def build(tokenizer, n: int = 32, seed: int = 0, bos: int | None = None, n_ctx: int = 1024,
          d_vocab: int | None = None) -> Task:
    title = "Greater-than"
    form, centuries, years, pairs = year_spelling(tokenizer)
    nouns = single_tokens(tokenizer, L.GREATER_THAN_NOUNS, distinct=False)
    setup = {"task": "greater_than", "seed": seed, "year_spelling": form or "none", "centuries": f"{len(centuries)}/{len(L.CENTURIES)}",
             "two_digit_tokens": f"{len(years)}/{len(L.TWO_DIGIT)}", "year_pairs": f"{len(pairs)}/{len(L.CENTURIES) * len(L.TWO_DIGIT)}", "nouns": f"{len(nouns)}/{len(L.GREATER_THAN_NOUNS)}",
             "corruption": "YY replaced by 01"}
    if form:
        paper = PAPER_PROMPT if form == "joined" else PAPER_PROMPT.replace(" 1732 ", " 17 32 ")
        ids = encode(tokenizer, paper)
        setup["paper_prompt"] = paper
        setup["paper_prompt_tokens"] = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    if not form:
        _, shown = spelling_of_year(tokenizer)
        setup["paper_year_tokens"] = shown
        return not_expressible(GreaterThanTask, "greater_than", title,
                               f"the tokenizer writes ' 1732' as {len(shown)} tokens {shown}, not as a century token and a two-digit "
                               "token: no single token holds a year's last two digits, and Hanna et al.'s metric is over the "
                               "two-digit tokens", setup)
    valid = set(pairs)
    starts = [(c, yy) for c, yy in pairs if YY_MIN <= int(yy) <= YY_MAX and (c, "01") in valid]
    if not nouns or len({yy for _, yy in starts}) < MIN_YEARS:
        return not_expressible(GreaterThanTask, "greater_than", title,
                               f"the tokenizer writes {len(centuries)} of {len(L.CENTURIES)} centuries and {len(years)} of 100 two-digit numbers as "
                               f"[century, two digits] tokens and {len(nouns)} nouns as single tokens; the task needs a century, a noun, "
                               f"{MIN_YEARS} start years YY in {YY_MIN:02d}..{YY_MAX:02d} (with '01' for the corruption)", setup)
    sep = "" if form == "joined" else " "
    rng = random.Random(seed)
    clean, corrupted, yys, texts = [], [], [], []
    dropped = 0
    for _ in range(n * 4):
        if len(clean) == n:
            break
        noun = rng.choice(list(nouns))
        c, yy = rng.choice(starts)
        rows = []
        for y in (yy, "01"):
            text = L.GREATER_THAN_TEMPLATE.format(NOUN=noun, C=c, YY="{YY}").replace(" {YY}", sep + y)
            ids = encode(tokenizer, text)
            rows.append((text, ids))
        (text, ids), (_, cids) = rows
        # the year must be [century, YY] and the prompt must end on the century token
        pos = [k for k in range(len(ids) - 1) if ids[k] == centuries[c] and ids[k + 1] == years[yy]]
        cpos = [k for k in range(len(cids) - 1) if cids[k] == centuries[c] and cids[k + 1] == years["01"]]
        if not pos or not cpos or pos != cpos or ids[-1] != centuries[c] or len(ids) != len(cids) or len(ids) + 1 > n_ctx:
            dropped += 1
            continue
        clean.append(with_bos(ids, bos))
        corrupted.append(with_bos(cids, bos))
        yys.append(int(yy))
        texts.append(text)
    if len(clean) < min(2, n):
        return not_expressible(GreaterThanTask, "greater_than", title, "too few greater-than prompts could be built", setup)
    length = max(set(len(r) for r in clean), key=[len(r) for r in clean].count)
    keep = [i for i, r in enumerate(clean) if len(r) == length]
    dropped += len(clean) - len(keep)
    clean, corrupted, yys, texts = [clean[i] for i in keep], [corrupted[i] for i in keep], [yys[i] for i in keep], [texts[i] for i in keep]
    values = sorted(int(y) for y in years)
    year_ids = torch.tensor([years[f"{v:02d}"] for v in values])
    year_values = torch.tensor(values)
    yy_t = torch.tensor(yys)
    sign = torch.where(year_values[None, :] > yy_t[:, None], 1, -1)
    chance = float(((year_values[None, :] > yy_t[:, None]).float().mean(-1)).mean())
    setup.update({"n_prompts": len(clean), "length": length, "dropped_prompts": dropped,
                  "yy_range": f"{YY_MIN:02d}..{YY_MAX:02d}", "examples": [texts[0], decode(tokenizer, corrupted[0][int(bos is not None):])]})
    return GreaterThanTask(name="greater_than", title=title, clean=torch.tensor(clean), corrupted=torch.tensor(corrupted),
                           positions=torch.tensor([length - 1]),
                           labels={"yy": yy_t, "year_ids": year_ids, "year_values": year_values, "sign": sign},
                           chance=chance, setup=setup,
                           metric_formula="sum_{y > YY} p(y) - sum_{y <= YY} p(y) over the two-digit tokens, at the last position",
                           accuracy_definition="fraction of prompts whose most likely two-digit token is greater than YY "
                                               "(chance: mean share of two-digit tokens above YY)")
