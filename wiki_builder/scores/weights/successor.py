"""Successor score (Gould et al. 2023, "Successor Heads").

For ordinal sets (numbers 1..200 written as digits, number words, ordinals, days,
months, their three-letter prefixes, letters A..Z), each member t that is one token with
a leading space is passed through MLP0 and head h's OV circuit to the unembedding,
``W_U · OV_h · MLP0(W_E[t])``; t succeeds when the highest logit among the members of
t's own set is t's successor (Monday -> Tuesday; months and days wrap around). The score
is the fraction of tokens that succeed, over all sets together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import FLAG, NUMBERS, TEXT, TOKEN, MetricOutput, WeightsMetric, rows
from . import ov as _ov

# The reference's sets, from wiki_builder.lexicon (its "digits" 0..9 repeat numbers 1..9 and are not used).
SETS = ("numbers", "number_words", "ordinals", "days", "months", "day_prefixes", "month_prefixes", "letters")
MIN_ITEMS = 3
EXAMPLE_WORDS = (("number_words", "one"), ("days", "Monday"), ("numbers", "3"), ("months", "January"), ("letters", "A"))


def ordinal_sets(tokenizer: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The usable sets and, for the rest, why they were dropped.

    A used set keeps, in the set's order, its members that are one token with a leading space
    (``members``: word -> id) and the pairs ``(t, successor)`` where both are single tokens
    (``pairs``; succession follows the full list, so a missing member is a gap, not skipped over).
    """
    lex = _ov.lexicon()
    cyclic = set(getattr(lex, "CYCLIC", ()))
    used: dict[str, dict[str, Any]] = {}
    dropped: dict[str, str] = {}
    for name in SETS:
        words = list(lex.SEQUENCES[name])
        members = _ov.single_tokens(tokenizer, words)
        pairs = []
        for i, w in enumerate(words):
            nxt = words[(i + 1) % len(words)] if name in cyclic else (words[i + 1] if i + 1 < len(words) else None)
            if nxt is not None and w in members and nxt in members:
                pairs.append((w, nxt))
        if len(members) < MIN_ITEMS:
            dropped[name] = f"{len(members)} of {len(words)} members are single tokens (need {MIN_ITEMS})"
        elif not pairs:
            dropped[name] = f"{len(members)} of {len(words)} members are single tokens, but no member's successor is"
        else:
            used[name] = {"members": members, "pairs": pairs, "total": len(words), "cyclic": name in cyclic,
                          "missing": [w for w in words if w not in members]}
    return used, dropped


def compute(bridge: Any, ctx: Any) -> dict[str, MetricOutput]:
    import torch

    tok = getattr(bridge, "tokenizer", None)
    sets, dropped = ordinal_sets(tok)
    setup: dict[str, Any] = {
        "sets": {name: {"items": len(s["members"]), "of": s["total"], "scored": len(s["pairs"]), "cyclic": s["cyclic"],
                        "missing": s["missing"][:20] + (["..."] if len(s["missing"]) > 20 else [])}
                 for name, s in sets.items()},
        "dropped": dropped,
        "tokens_scored": sum(len(s["pairs"]) for s in sets.values()),
        "tokenization": "' ' + word must be one ordinary token (SentencePiece: the token '▁word')",
        "input": _ov.residual_formula(bridge, "t"),
        "readout": "ln1 -> W_V, b_V -> W_O -> final norm (normalisation only; its bias, folded into b_U, and b_U are not added) -> W_U restricted to t's set; argmax, ties fail",
    }
    post = _ov.latent_attention_reason(bridge) or _ov.post_norm_reason(bridge)
    if post:
        return {"successor": _ov.not_applicable(bridge, post, setup)}
    if not sets:
        reason = (f"No ordinal set has {MIN_ITEMS} or more single-token members with a successor in this model's "
                  "tokenizer (numbers, number words, ordinals, days, months, their prefixes, letters).")
        return {"successor": _ov.not_applicable(bridge, reason, setup)}

    with _ov.no_grad():
        all_ids = sorted({i for s in sets.values() for i in s["members"].values()})
        col = {i: k for k, i in enumerate(all_ids)}
        resid = _ov.effective_embedding(bridge, all_ids)  # [T, d_model]
        W_V, b_V, W_O = _ov.value_weights(bridge)
        W_U, _ = _ov.unembed_weights(bridge)
        W_U_sets = W_U[:, torch.as_tensor(all_ids, device=W_U.device)]  # only the members' logits are read
        setup["b_V"] = "per-head value bias applied" if _ov.value_bias_used(b_V) else (
            "zero: none in the checkpoint, or folded into b_O by TransformerLens")
        n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
        hits = np.zeros((n_layers, n_heads))
        per_set = {name: np.zeros((n_layers, n_heads)) for name in sets}
        examples: list[tuple[str, str]] = [(s, w) for s, w in EXAMPLE_WORDS if s in sets and w in sets[s]["members"]]
        example_top = {}  # (set, word) -> [L, H] index into the set's members
        for layer in range(n_layers):
            out = _ov.head_outputs(bridge, layer, resid, W_V, b_V, W_O)  # [H, T, d_model]
            logits = _ov.final_norm(bridge, out) @ W_U_sets  # [H, T, T]: input token x set-member logit
            for name, s in sets.items():
                cols = torch.as_tensor([col[i] for i in s["members"].values()], device=logits.device)
                words = list(s["members"])
                sub = logits[:, cols][:, :, cols]  # [H, m, m] within the set
                rows = [words.index(w) for w, _ in s["pairs"]]
                succ = [words.index(n) for _, n in s["pairs"]]
                r = torch.as_tensor(rows, device=logits.device)
                c = torch.as_tensor(succ, device=logits.device)
                block = sub[:, r]  # [H, p, m]
                own = block.gather(-1, c.expand(n_heads, -1).unsqueeze(-1))  # the successor's logit
                ok = ((block >= own).sum(-1) == 1)  # strictly highest: ties fail
                k = ok.double().sum(-1).cpu().numpy()
                hits[layer] += k
                per_set[name][layer] = k / len(rows)
                for sname, w in examples:
                    if sname == name:
                        example_top.setdefault((sname, w), np.zeros((n_layers, n_heads), dtype=int))[layer] = (
                            sub[:, words.index(w)].argmax(-1).cpu().numpy())
        values = hits / setup["tokens_scored"]
        details: dict[tuple[int, int], dict[str, Any]] = {}
        strs = _ov.TokenStrings(tok)
        for layer in range(n_layers):
            for head in range(n_heads):
                ex = []
                for sname, w in examples:
                    words = list(sets[sname]["members"])
                    top_word = words[int(example_top[(sname, w)][layer, head])]
                    nxt = dict(sets[sname]["pairs"]).get(w)
                    ex.append({"input": strs(sets[sname]["members"][w]), "set": sname,
                               "top": strs(sets[sname]["members"][top_word]), "correct": top_word == nxt})
                details[(layer, head)] = {"per_set": {n: round(float(per_set[n][layer, head]), 4) for n in sets},
                                          "examples": ex}
    return {"successor": MetricOutput(values=values, details=details, setup=setup)}


METRIC = WeightsMetric(
    detail_fields={"per_set": NUMBERS, "examples": rows(input=TOKEN, set=TEXT, top=TOKEN, correct=FLAG)},
    id="successor",
    version="1",
    title="Successor (OV)",
    compute=compute,
    description=(
        "Whether a head's OV circuit increments ordinal tokens: attending to ' Monday' it promotes ' Tuesday', "
        "to ' one' ' two', to ' 3' ' 4'. The fraction of members of ordinal sets (numbers, number words, "
        "ordinals, days, months, their prefixes, letters) whose successor gets the highest logit within the "
        "set, reading the token after MLP0 through the head's OV circuit. Successor heads feed greater-than "
        "and sequence-continuation circuits (GPT-2 small 9.1)."
    ),
    formula=(
        "mean over scored tokens t of [succ(t) = argmax_{s ∈ set(t)} (W_U · ln_f((ln1(r_t) · W_V[h] + b_V[h]) · W_O[h]))_s], "
        "r_t = W_E[t] + MLP0(ln2(W_E[t])); in [0, 1]"
    ),
    reference="Gould, Ong, Ogden & Conmy 2023, 'Successor Heads: Recurring, Interpretable Attention Heads In The Wild'",
    details=(
        "Sets (wiki_builder.lexicon): numbers 1..200 as digits, number words one..twenty, ordinals first..tenth, "
        "days and months (both wrap around: Sunday -> Monday, December -> January) and their three-letter "
        "prefixes, letters A..Z. A member is kept when ' ' + word is one token (for SentencePiece tokenizers "
        "the token '▁word'); a set needs 3 such members, and a token is scored when its successor in the full "
        "list is kept too (no succession across gaps); argmax runs over the kept members of its own set, and "
        "ties fail. A token listed in two sets (' May' is a month and a month prefix) is scored in each. The "
        "set-up lists the sets used, their sizes and what was dropped. 'MLP0(W_E[t])' is read as the residual "
        "after MLP0, W_E[t] + MLP0(ln2(W_E[t])). 'Unfolded weights': TransformerLens' compatibility mode folds "
        "the norms' gains into W_V and W_U; applying the head's ln1 and the final norm's normalisation with those "
        "weights computes exactly what the unfolded weights compute along this path. No final-norm bias or b_U "
        "is added (TransformerLens folds the former into the latter), so the readout is the head's own effect "
        "rather than the model's token-frequency prior; b_V is zero where TransformerLens folded it into b_O. The head page shows, for a few inputs (' one', ' Monday', ' 3', ...), the top "
        "member of the set and the accuracy per set."
    ),
)
