"""Copy score and negative copy score (Wang et al. 2022, the IOI paper).

For each name token n (the lexicon's NAMES that are one token with a leading space):
take the residual stream after layer 0 at n, pass it through head h's OV circuit
(its layer's ln1, W_V, b_V, then W_O), the final norm and the unembedding, and ask
whether n itself is among the five highest logits. The copy score is the fraction of
names for which it is; the negative copy score does the same with -OV. Name-mover heads
copy names (high copy score), negative name movers / copy suppression heads write
minus the name (high negative copy score).

Residual after layer 0: the IOI code reads ``blocks.0.hook_resid_post`` at the name
positions of IOI prompts, which also holds the position embedding and whatever
attention 0 moved in from other tokens. We use the context-free version the reference
describes (embedding + first MLP): ``W_E[n] + MLP0(ln2(W_E[n]))``, no position, no
attention 0, so the score depends on weights alone and applies unchanged to rotary,
parallel-block and attention-only models (see ``_ov.effective_embedding``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import COUNT, FLAG, TOKEN, TOKENS, MetricOutput, WeightsMetric, rows
from . import ov as _ov

TOP_K = 5
MIN_NAMES = 5
N_EXAMPLES = 3
SCREEN = 4096  # vocabulary ids in the screening pass (all of them for vocabularies up to 2 x SCREEN)
CHUNK = 512  # rows per full-vocabulary matmul


def top_k_hits(rows: Any, target: Any, W_U: Any, b_U: Any, k: int, signs: tuple[float, ...],
               example_rows: Any) -> dict[float, tuple[Any, Any]]:
    """For each sign s, whether ``target[i]`` is in the top ``k`` of ``s * rows[i] @ W_U + b_U``, exactly.

    Ties count against the target: it is in the top k when fewer than k + 1 logits are >= its own,
    so a row of equal logits (a zero head) copies nothing. Returns ``{s: (hit [N] bool,
    top-k ids [len(example_rows), k] of the example rows)}``.

    Exact but cheap for big vocabularies: a screening pass computes the logits of a fixed strided
    subset of ``SCREEN`` ids for every row; a row in which k + 1 of those already reach the target's
    logit fails for certain (a subset's count is a lower bound), and only the remaining rows (and
    the example rows) get the full ``[rows, d_vocab]`` logits, in chunks. Most heads are not
    copying heads, so most rows are settled by the screen.
    """
    import torch

    n, vocab = rows.shape[0], W_U.shape[1]
    dev = rows.device
    base_own = (rows * W_U[:, target].T).sum(-1)  # [N], without sign and bias (for the screen only)
    own = {s: s * base_own + b_U[target] for s in signs}
    undecided = {s: torch.ones(n, dtype=torch.bool, device=dev) for s in signs}
    if vocab > 2 * SCREEN:
        sub = torch.arange(0, vocab, -(-vocab // SCREEN), device=dev)
        screen = rows @ W_U[:, sub]  # [N, SCREEN]
        for s in signs:
            # ids clearly above the target (by more than rounding): k + 1 of them settle the row
            margin = 1e-4 * (1.0 + own[s].abs())
            reach = ((s * screen + b_U[sub]) >= (own[s] + margin)[:, None]).sum(-1)
            undecided[s] = reach <= k
        del screen
    need = torch.zeros(n, dtype=torch.bool, device=dev)
    need[example_rows] = True
    for s in signs:
        need |= undecided[s]
    hit = {s: torch.zeros(n, dtype=torch.bool, device=dev) for s in signs}
    top = {s: torch.zeros(len(example_rows), k, dtype=torch.long, device=dev) for s in signs}
    where_example = {int(r): j for j, r in enumerate(example_rows.tolist())}
    todo = need.nonzero().squeeze(-1)
    for start in range(0, len(todo), CHUNK):
        idx = todo[start:start + CHUNK]
        full = rows[idx] @ W_U  # [chunk, d_vocab]
        for s in signs:
            logits = s * full + b_U
            kth = logits.topk(k + 1, dim=-1)
            exact_own = logits.gather(-1, target[idx][:, None]).squeeze(-1)  # read from the same logits as kth
            hit[s][idx] = exact_own > kth.values[:, k]
            for local, r in enumerate(idx.tolist()):
                if r in where_example:
                    top[s][where_example[r]] = kth.indices[local, :k]
        del full
    return {s: (hit[s], top[s]) for s in signs}


def name_tokens(bridge: Any) -> tuple[dict[str, int], list[str]]:
    """(usable names -> token id, names dropped) from ``lexicon.NAMES``."""
    names = list(_ov.lexicon().NAMES)
    usable = _ov.single_tokens(getattr(bridge, "tokenizer", None), names)
    return usable, [n for n in names if n not in usable]


def compute(bridge: Any, ctx: Any) -> dict[str, MetricOutput]:
    import torch

    tok = getattr(bridge, "tokenizer", None)
    usable, dropped = name_tokens(bridge)
    setup: dict[str, Any] = {
        "names_source": "wiki_builder.lexicon.NAMES",
        "names_total": len(usable) + len(dropped),
        "names_used": len(usable),
        "names": list(usable),
        "names_dropped": dropped,
        "tokenization": "' ' + name must be one ordinary token (SentencePiece: the token '▁name')",
        "residual": _ov.residual_formula(bridge, "name"),
        "top_k": TOP_K,
        "ties": "counted against the name",
        "value": "fraction of names in [0, 1] (the IOI paper reports a percentage)",
    }
    post = _ov.latent_attention_reason(bridge) or _ov.post_norm_reason(bridge)
    if post:
        return {oid: _ov.not_applicable(bridge, post, setup) for oid in ("copy_score", "negative_copy_score")}
    if len(usable) < MIN_NAMES:
        reason = (f"Only {len(usable)} of {setup['names_total']} names are single tokens (with a leading space) in this "
                  f"model's tokenizer; at least {MIN_NAMES} are needed.")
        return {oid: _ov.not_applicable(bridge, reason, setup) for oid in ("copy_score", "negative_copy_score")}

    with _ov.no_grad():
        ids = list(usable.values())
        target = torch.as_tensor(ids, device=bridge.W_E.device)
        resid = _ov.effective_embedding(bridge, ids)  # [n, d_model]
        W_V, b_V, W_O = _ov.value_weights(bridge)
        W_U, b_U = _ov.unembed_weights(bridge)
        setup["b_V"] = "per-head value bias applied" if _ov.value_bias_used(b_V) else (
            "zero: none in the checkpoint, or folded into b_O by TransformerLens (see details)")
        n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
        values = {s: np.zeros((n_layers, n_heads)) for s in ("copy_score", "negative_copy_score")}
        details: dict[str, dict[tuple[int, int], dict[str, Any]]] = {s: {} for s in values}
        strs = _ov.TokenStrings(tok)
        n = len(ids)
        n_ex = min(N_EXAMPLES, n)
        norm = lambda x: _ov.final_norm(bridge, x)  # noqa: E731
        rows_target = target.repeat(n_heads)  # row (h, i) -> name i's token
        example_rows = (torch.arange(n_heads, device=target.device)[:, None] * n
                        + torch.arange(n_ex, device=target.device)[None, :]).reshape(-1)
        shared = True
        for layer in range(n_layers):
            outs = _ov.head_outputs(bridge, layer, resid, W_V, b_V, W_O)  # [H, n, d_model]: every head, every name
            pos, neg = norm(outs), norm(-outs)
            # ln_f(-o) = -ln_f(o) for a bias-free norm (what compatibility mode leaves), so both scores share
            # one pass over the vocabulary: logits = ±(ln_f(o) W_U) + b_U. Checked; computed apart otherwise.
            if torch.allclose(neg, -pos, rtol=1e-4, atol=1e-5 * float(pos.abs().max()) + 1e-12):
                res = top_k_hits(pos.reshape(-1, pos.shape[-1]), rows_target, W_U, b_U, TOP_K, (1.0, -1.0), example_rows)
                found = {"copy_score": res[1.0], "negative_copy_score": res[-1.0]}
            else:
                shared = False
                found = {oid: top_k_hits(x.reshape(-1, x.shape[-1]), rows_target, W_U, b_U, TOP_K, (1.0,), example_rows)[1.0]
                         for oid, x in (("copy_score", pos), ("negative_copy_score", neg))}
            for oid, (hit, top) in found.items():
                hits = hit.reshape(n_heads, n).cpu().numpy()
                tops = top.reshape(n_heads, n_ex, TOP_K).cpu().numpy()
                values[oid][layer] = hits.mean(-1)
                for head in range(n_heads):
                    details[oid][(layer, head)] = {
                        "names_copied": int(hits[head].sum()),
                        "names": n,
                        "examples": [{"name": strs(ids[k]), "copied": bool(hits[head, k]),
                                      "top": [strs(int(t)) for t in tops[head, k]]} for k in range(n_ex)],
                    }
        setup["negative_logits"] = "b_U - ln_f(o)·W_U (the final norm is odd)" if shared else "ln_f(-o)·W_U + b_U"
    return {oid: MetricOutput(values=values[oid], details=details[oid], setup=setup) for oid in values}


METRIC = WeightsMetric(
    detail_fields={"names_copied": COUNT, "names": COUNT, "examples": rows(name=TOKEN, copied=FLAG, top=TOKENS)},
    id="copy_score",
    version="1",
    title="Copy score",
    compute=compute,
    outputs={"copy_score": "Copy score (names)", "negative_copy_score": "Negative copy score (names)"},
    description=(
        "Whether a head, attending to a name, writes that name into the logits: the fraction of single-token "
        "names whose own token is among the top five logits when the residual stream at the name is passed "
        "through the head's OV circuit and the unembedding. The negative copy score does the same with "
        "minus the OV circuit. IOI name movers have high copy scores; negative name movers (copy "
        "suppression) have high negative copy scores."
    ),
    formula=(
        "mean over names n of [n ∈ top5(W_U · ln_f(±(ln1(r_n) · W_V[h] + b_V[h]) · W_O[h]) + b_U)], "
        "r_n = W_E[n] + MLP0(ln2(W_E[n])); in [0, 1]"
    ),
    reference="Wang et al. 2022, 'Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small' (copy score, Appendix)",
    details=(
        "Names: wiki_builder.lexicon.NAMES, kept when ' ' + name is one token (for SentencePiece tokenizers, "
        "the token '▁name'); the set-up records how many survived, and fewer than 5 makes the score not "
        "applicable. Residual after layer 0: the IOI code reads blocks.0.hook_resid_post at the names inside "
        "IOI prompts (embedding, position, attention 0 and MLP0); we follow the reference's context-free "
        "'embedding + first MLP', r = W_E[n] + MLP0(ln2(W_E[n])), without position embedding or attention 0, "
        "so that the score depends on weights only and means the same for learned, rotary and parallel-block "
        "(GPT-NeoX) models. Then the head's own layer norm (ln1; the IOI code used layer 1's), W_V, b_V, W_O, "
        "the final norm and W_U + b_U, over the whole vocabulary. Weights are TransformerLens' "
        "compatibility-mode weights with every norm applied, which computes the same as unfolded weights, "
        "except that TransformerLens folds each head's value bias into the layer's output bias: b_V is then "
        "zero here (the IOI code added it; it is a constant vector per head). Ties in the logits count "
        "against the name, so a zero head scores 0. Stored as a fraction in [0, 1]; the paper gives percentages."
    ),
    higher_is="copying (copy_score) or suppressing (negative_copy_score) the attended name",
)
