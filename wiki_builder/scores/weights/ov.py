"""Shared pieces of the OV-circuit families (``ov_copying``, ``copy_score``, ``successor``).

Everything here reads the bridge's TransformerLens-style accessors in compatibility mode
(``enable_compatibility_mode()``, done by ``models.load``). Those weights are *processed*:

* layer norms are folded: each norm's gain (and bias) sits in the weights that read it
  (``W_V`` holds ln1's gain, ``W_in`` ln2's, ``W_U`` ln_final's), and the norm modules
  (``blocks[l].ln1``, ``ln2``, ``ln_final``) only normalise (centre and scale for
  LayerNorm, scale for RMSNorm);
* for LayerNorm models, writing weights (``W_E``, ``W_O``, ``W_out``) and ``W_U`` are
  centred, which changes nothing the model computes (every reader normalises first);
* value biases are folded into the layer's output bias: ``b_O += sum_h b_V[h] W_O[h]``,
  and ``b_V`` becomes zero. TransformerLens rewrites the wrapped Hugging Face module in
  place, so the per-head ``b_V`` cannot be read back from ``bridge.original_model``.

As long as the normalisations are applied where the model applies them, folded and
unfolded weights compute the same function, so "unfolded weights" in the reference is
honoured by applying ``ln2`` before MLP0, the head's ``ln1`` before ``W_V`` and the
final norm before ``W_U``. The one thing that is lost is the per-head value bias (a
constant vector per head, independent of the input); where the bridge exposes a
non-zero ``b_V`` (compatibility mode without ``fold_value_biases``) it is used.

GQA (n_key_value_heads < n_heads): the bridge's stacked ``W_V`` has one slice per
*key/value* head (``[n_layers, n_kv_heads, d_model, d_head]``); ``bridge.OV`` (a
``FactoredMatrix``) repeats them with ``repeat_interleave`` so query head ``h`` uses
key/value head ``h // (n_heads // n_kv_heads)``, as Hugging Face's ``repeat_kv`` does.
We take ``W_V`` and ``W_O`` from ``bridge.OV.A`` / ``bridge.OV.B`` for that reason.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...models.tokens import SPM_SPACE, single_tokens
from .. import base


def no_grad():
    import torch

    return torch.no_grad()


def lexicon() -> Any:
    """The word lists (names, ordinal sets, filler words) the weight scores read."""
    from ... import lexicon as lex

    return lex


# ---------------------------------------------------------------- tokens


def token_str(tokenizer: Any, i: int) -> str:
    """A readable token string, with its leading space shown as a space."""
    if tokenizer is None:
        return str(i)
    raw = tokenizer.convert_ids_to_tokens(int(i))
    try:
        s = tokenizer.decode([int(i)])
    except Exception:  # noqa: BLE001 - any tokenizer quirk: fall back to the raw token
        s = str(raw)
    if isinstance(raw, str) and raw[:1] in (SPM_SPACE, "\u0120") and not s.startswith(" "):
        s = " " + s
    return s


class TokenStrings:
    """``token_str`` with a memo, for the many repeated look-ups of the head pages' details."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.memo = tokenizer, {}

    def __call__(self, i: int) -> str:
        if i not in self.memo:
            self.memo[i] = token_str(self.tokenizer, i)
        return self.memo[i]


def ordinary_inputs(bridge: Any, n: int = 5) -> list[int]:
    """``n`` fixed input tokens for the head pages: the first plain words of the lexicon's FILLER list
    that are single tokens, topped up with evenly spaced ids from the probe's ordinary-token pool."""
    tok = getattr(bridge, "tokenizer", None)
    chosen: list[int] = []
    try:
        words = list(lexicon().FILLER)
    except Exception:  # noqa: BLE001 - lexicon missing or incomplete: use the pool only
        words = []
    for i in single_tokens(tok, words).values():
        if len(chosen) == n:
            break
        chosen.append(i)
    if len(chosen) < n:
        from ..probe import token_pool

        try:
            pool = token_pool(tok, int(bridge.cfg.d_vocab)).tolist()
        except ValueError:
            pool = list(range(int(bridge.cfg.d_vocab)))
        pool = [p for p in pool if p not in chosen]
        # prefer whole words with a leading space (" house"), then any alphabetic token of 3+ letters
        words_ = [p for p in pool if re.fullmatch(r" [A-Za-z]{3,}", token_str(tok, p))]
        alpha = [p for p in pool if p not in words_ and re.fullmatch(r" ?[A-Za-z]{3,}", token_str(tok, p))]
        for group in (words_, alpha, [p for p in pool if p not in words_ and p not in alpha]):
            need = n - len(chosen)
            if need <= 0 or not group:
                continue
            idx = np.unique(np.linspace(0, len(group) - 1, num=min(need, len(group))).round().astype(int))
            chosen += [int(group[k]) for k in idx]
    return chosen[:n]


# ---------------------------------------------------------------- weights


def value_weights(bridge: Any) -> tuple[Any, Any, Any]:
    """``(W_V, b_V, W_O)`` per query head: ``[L, H, d_model, d_head]``, ``[L, H, d_head]``, ``[L, H, d_head, d_model]``.

    ``W_V`` and ``W_O`` are ``bridge.OV``'s factors (a FactoredMatrix whose ``A`` already repeats
    GQA key/value heads up to one per query head), kept in the model's dtype; callers upcast one
    layer at a time. ``b_V`` (float32) is zeros when the bridge has none (bias-free models) or has
    folded it into ``b_O`` (compatibility mode's default).
    """
    import torch

    if len(attention_blocks(bridge)) < int(bridge.cfg.n_layers):
        # hybrids: the bridge's stacks hold the attention layers only (index i is not layer i)
        W_V, W_O = per_layer_value_weights(bridge)
    else:
        ov = bridge.OV
        W_V, W_O = ov.A.detach(), ov.B.detach()
    n_layers, n_heads = W_V.shape[0], W_V.shape[1]
    b_V = torch.zeros(n_layers, n_heads, W_V.shape[-1], device=W_V.device)
    try:
        raw = bridge.b_V if W_V is not None and len(attention_blocks(bridge)) == n_layers else None
    except Exception:  # noqa: BLE001 - TransformerLens raises for bias-free projections
        raw = None
    if raw is not None:
        raw = raw.detach().float()
        if raw.shape[1] != n_heads:  # one per key/value head: repeat as bridge.OV does for W_V
            raw = raw.repeat_interleave(n_heads // raw.shape[1], dim=1)
        b_V = raw.to(W_V.device)
    return W_V, b_V, W_O


def attention_blocks(bridge: Any) -> list[int]:
    """The layers whose block has an attention component (all of them except in hybrids)."""
    out = []
    for layer in range(int(bridge.cfg.n_layers)):
        try:
            if getattr(bridge.blocks[layer], "attn", None) is not None:
                out.append(layer)
        except Exception:  # noqa: BLE001 - a block without that component
            continue
    return out


def per_layer_value_weights(bridge: Any) -> tuple[Any, Any]:
    """``(W_V, W_O)`` stacked from each attention block's own accessors (key/value heads repeated up to one per
    query head), zeros for a layer whose block has no attention (Mamba or linear-attention layers of hybrids)."""
    import torch

    found = {}
    for layer in range(int(bridge.cfg.n_layers)):
        attn = getattr(bridge.blocks[layer], "attn", None)
        if attn is not None:
            found[layer] = (attn.W_V.detach(), attn.W_O.detach())
    if not found:
        raise AttributeError("no block of this model has an attention component")
    v0, o0 = next(iter(found.values()))
    n_heads = o0.shape[0]
    zeros = (torch.zeros((n_heads, *v0.shape[1:]), dtype=v0.dtype, device=v0.device), torch.zeros_like(o0))
    W_V, W_O = [], []
    for layer in range(int(bridge.cfg.n_layers)):
        v, o = found.get(layer, zeros)
        W_V.append(v.repeat_interleave(n_heads // v.shape[0], dim=0) if v.shape[0] != n_heads else v)
        W_O.append(o)
    return torch.stack(W_V), torch.stack(W_O)


def value_bias_used(b_V: Any) -> bool:
    return bool(b_V.abs().max() > 0)


def _module_call(module: Any, x: Any) -> Any:
    """Call a bridge component on float32 activations, in the module's own dtype."""
    dtype = next((p.dtype for p in module.parameters()), x.dtype)
    return module(x.to(dtype)).float()


def normalize(module: Any, x: Any) -> Any:
    """Apply a (folded) norm module to ``[..., d_model]``; identity when the model has none."""
    if module is None:
        return x
    shape = x.shape
    return _module_call(module, x.reshape(-1, shape[-1])).reshape(shape)


def has_mlp0(bridge: Any) -> bool:
    return getattr(bridge.blocks[0], "mlp", None) is not None


def embedding_norm(bridge: Any) -> Any:
    """The norm applied to the token embedding before layer 0 (BLOOM's ``embed_ln``), or None."""
    try:
        return getattr(bridge, "embed_ln", None)
    except Exception:  # noqa: BLE001 - a bridge without that component may raise its own error
        return None


def residual_formula(bridge: Any, t: str) -> str:
    """The layer-0 residual :func:`effective_embedding` computes, written out for token ``t``."""
    e = f"embed_ln(W_E[{t}])" if embedding_norm(bridge) is not None else f"W_E[{t}]"
    return f"{e} + MLP0(ln2({e}))" if has_mlp0(bridge) else f"{e} (no MLP in layer 0)"


def effective_embedding(bridge: Any, ids: list[int]) -> Any:
    """The residual stream after layer 0 at a lone token, without attention 0 and positions:
    ``W_E[t] + MLP0(ln2(W_E[t]))`` (``W_E[t]`` alone for attention-only models).

    For sequential blocks (GPT-2, Llama) the attention output is left out of MLP0's input; for
    parallel blocks (GPT-NeoX, GPT-J) MLP0 reads ``ln2`` of the embedding anyway, so the same
    formula is exactly the model's MLP0 path.
    """
    import torch

    W_E = bridge.W_E.detach()
    e = W_E[torch.as_tensor(ids, device=W_E.device)].float()
    e = normalize(embedding_norm(bridge), e)  # BLOOM normalises the embedding before layer 0
    block = bridge.blocks[0]
    mlp = getattr(block, "mlp", None)
    if mlp is None:
        return e
    return e + mlp_output(mlp, normalize(getattr(block, "ln2", None), e))


_ACTIVATIONS = ("activation_fn", "act_fn", "act", "activation")


def mlp_output(mlp: Any, x: Any) -> Any:
    """Layer 0's MLP (or mixture of experts) alone on ``[n, d_model]``, however the architecture wraps it.

    Most bridges call the Hugging Face MLP module directly. Mixture-of-experts blocks (Mixtral,
    OLMoE, Qwen3-MoE, gpt-oss) want ``[batch, seq, d_model]`` and may return ``(hidden,
    router_logits)``: the router and experts run on the tokens as one sequence and the hidden part
    is kept. BLOOM's and MPT's MLPs add their ``residual`` argument to the output: it gets zeros. OPT's bridge
    has no MLP module to call (fc1 and fc2 sit on the decoder layer): ``out(act(in(x)))`` with the
    layer's own activation.
    """
    import torch

    original = getattr(mlp, "original_component", None)
    kind = type(original).__name__
    if "MoE" in type(mlp).__name__:
        dtype = next((p.dtype for p in mlp.parameters()), x.dtype)
        out = mlp(x.to(dtype)[None])
        out = out[0] if isinstance(out, tuple) else out
        return out.reshape(x.shape).float()
    if kind in ("BloomMLP", "MptMLP"):
        dtype = next((p.dtype for p in mlp.parameters()), x.dtype)
        xd = x.to(dtype)
        return original(xd, torch.zeros_like(xd)).float()
    children = dict(mlp.named_children())
    if original is not None and "in" in children and "out" in children and not kind.endswith(("MLP", "Mlp")):
        act = next((getattr(original, a) for a in _ACTIVATIONS if callable(getattr(original, a, None))), None)
        if act is None:
            raise NotImplementedError(f"{kind}: no MLP module and no activation found to run layer 0's MLP alone")
        dtype = next((p.dtype for p in mlp.parameters()), x.dtype)
        return children["out"](act(children["in"](x.to(dtype)))).float()
    return _module_call(mlp, x)


def latent_attention_reason(bridge: Any) -> str:
    """Why a weights-only OV readout does not exist for this model (multi-head latent attention), or ``""``."""
    config = getattr(getattr(bridge, "original_model", None), "config", None)
    rank = getattr(config, "kv_lora_rank", None)
    if not rank:
        return ""
    return (f"multi-head latent attention (DeepSeek): a head here is one of the {int(bridge.cfg.n_heads)} query heads; each has "
            f"its own query, key and value up-projections, all reading one shared {int(rank)}-wide key-value latent that is "
            "RMS-normalised between the down- and the up-projection. Its attention pattern is scored like any head's, but there "
            "is no per-head linear W_V W_O (OV circuit) to read from the weights (TransformerLens exposes none)")


_POST_NORM_TYPES = {"bert", "roberta", "distilbert", "electra", "xlm-roberta", "marian", "bart", "blenderbot", "pegasus"}


def post_norm_reason(bridge: Any) -> str:
    """Why the OV readout ``W_E -> MLP0 -> ln1, OV -> final norm -> W_U`` is not what this model computes, or ``""``.

    In post-norm blocks (BERT; OPT-350m) every sublayer's output is added to the residual and the
    sum is normalised again, so a head's output reaches the unembedding only through later norms
    that mix it with the rest of the residual; there is no direct path to read weights-only.
    """
    config = getattr(getattr(bridge, "original_model", None), "config", None)
    if config is None:
        return ""
    post = getattr(config, "do_layer_norm_before", True) is False or getattr(config, "normalize_before", True) is False
    post = post or getattr(config, "model_type", "") in _POST_NORM_TYPES
    if not post:
        return ""
    return (f"{getattr(config, 'model_type', 'this model')} normalises after each sublayer (post-norm: "
            "LayerNorm(x + sublayer(x))), so a head's output reaches the unembedding only through norms that mix it "
            "with the rest of the residual: the direct embedding -> OV -> unembedding readout is not what the model computes")


def head_outputs(bridge: Any, layer: int, x: Any, W_V: Any, b_V: Any, W_O: Any) -> Any:
    """Every head's output in ``layer`` when it attends only to residual vectors ``x`` ``[n, d_model]``:
    ``(ln1(x) W_V[h] + b_V[h]) W_O[h]``, all heads at once -> ``[H, n, d_model]``."""
    import torch

    xn = normalize(getattr(bridge.blocks[layer], "ln1", None), x)
    v = torch.einsum("nd,hde->hne", xn, W_V[layer].float()) + b_V[layer][:, None, :]
    return torch.einsum("hne,hem->hnm", v, W_O[layer].float())


def final_norm(bridge: Any, o: Any) -> Any:
    return normalize(getattr(bridge, "ln_final", None), o)


def unembed_weights(bridge: Any) -> tuple[Any, Any]:
    """``(W_U [d_model, d_vocab], b_U [d_vocab])``, float32 (``b_U`` zeros when absent)."""
    import torch

    W_U = bridge.W_U.detach().float()
    try:
        b_U = bridge.b_U
    except Exception:  # noqa: BLE001
        b_U = None
    b_U = torch.zeros(W_U.shape[1], device=W_U.device) if b_U is None else b_U.detach().float()
    return W_U, b_U


def not_applicable(bridge: Any, reason: str, setup: dict[str, Any]) -> Any:
    return base.not_applicable((int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)), reason, setup)
