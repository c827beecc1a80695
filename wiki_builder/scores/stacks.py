"""Which attention layers a model has, in which stack, and what that means for the families.

Decoder-only models have one stack of causal self-attention layers, ``blocks.{l}.attn`` (hybrids
such as Qwen3.5 only in some layers: the others are Mamba or linear-attention layers and have no
heads). Encoder-only models (BERT) have one stack of bidirectional self-attention layers.
Encoder-decoder models (T5, MT5, Marian) have two: the encoder's bidirectional self-attention
(``encoder_blocks.{i}.attn``) and the decoder's causal self-attention (``decoder_blocks.{j}.self_attn``);
the decoder's cross-attention reads the encoder's output, not the sequence itself, and is not
scored. Their heads are numbered as one list, encoder layers first: layer ``E + j`` is decoder
layer ``j`` (the order of TransformerLens' stacked weights).
"""

from __future__ import annotations

from typing import Any

ENCODER_TYPES = {"bert", "roberta", "distilbert", "electra", "xlm-roberta", "albert", "deberta", "deberta-v2", "modernbert"}


def _config(bridge: Any) -> Any:
    return getattr(getattr(bridge, "original_model", None), "config", None)


def _has(bridge: Any, name: str) -> bool:
    try:
        return getattr(bridge, name, None) is not None
    except Exception:  # noqa: BLE001 - bridges raise their own errors for components they lack
        return False


def model_kind(bridge: Any) -> str:
    """``decoder``, ``encoder`` (bidirectional, e.g. BERT) or ``encoder-decoder`` (T5, Marian)."""
    config = _config(bridge)
    if _has(bridge, "encoder_blocks") or getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    arch = ((getattr(config, "architectures", None) or [""])[0]) if config is not None else ""
    if getattr(config, "model_type", "") in ENCODER_TYPES or arch.endswith("ForMaskedLM"):
        return "encoder"
    return "decoder"


def attention_sites(bridge: Any) -> list[tuple[int, str, str]]:
    """``(layer as numbered in the scores, hook prefix of its self-attention, stack)`` for every scored layer."""
    kind = model_kind(bridge)
    if kind == "encoder-decoder":
        enc, dec = len(bridge.encoder_blocks), len(bridge.decoder_blocks)
        return ([(i, f"encoder_blocks.{i}.attn", "encoder") for i in range(enc)]
                + [(enc + j, f"decoder_blocks.{j}.self_attn", "decoder") for j in range(dec)])
    stack = "encoder" if kind == "encoder" else "decoder"
    out = []
    for layer in range(int(bridge.cfg.n_layers)):
        try:
            attn = getattr(bridge.blocks[layer], "attn", None)
        except Exception:  # noqa: BLE001 - a block without that component
            attn = None
        if attn is not None:
            out.append((layer, f"blocks.{layer}.attn", stack))
    return out


def n_rows(bridge: Any) -> int:
    """How many layers the scores have: the model's layers, or encoder + decoder layers."""
    if model_kind(bridge) == "encoder-decoder":
        return len(bridge.encoder_blocks) + len(bridge.decoder_blocks)
    return int(bridge.cfg.n_layers)


def last_residual_hook(bridge: Any) -> str:
    """The hook on the residual stream after the last block the probe pass runs through."""
    if model_kind(bridge) == "encoder-decoder":
        return f"decoder_blocks.{len(bridge.decoder_blocks) - 1}.hook_resid_post"
    return f"blocks.{int(bridge.cfg.n_layers) - 1}.hook_resid_post"


def stacks_text(bridge: Any) -> str:
    """The stacks on a model page ("" for an ordinary decoder-only model)."""
    kind = model_kind(bridge)
    if kind == "encoder-decoder":
        enc, dec = len(bridge.encoder_blocks), len(bridge.decoder_blocks)
        return (f"encoder: layers 0-{enc - 1} (bidirectional self-attention); decoder: layers {enc}-{enc + dec - 1} "
                f"(causal self-attention of decoder layers 0-{dec - 1}; cross-attention not scored)")
    if kind == "encoder":
        return f"encoder: layers 0-{int(bridge.cfg.n_layers) - 1} (bidirectional self-attention)"
    rank = getattr(_config(bridge), "kv_lora_rank", None)
    if rank:
        return (f"decoder: layers 0-{int(bridge.cfg.n_layers) - 1}, multi-head latent attention: a head is one of the "
                f"{int(bridge.cfg.n_heads)} query heads of a layer, with its own query, key and value up-projections from "
                f"one {int(rank)}-wide key-value latent shared by all heads (its attention pattern is its own)")
    sites = attention_sites(bridge)
    if len(sites) < int(bridge.cfg.n_layers):
        return (f"decoder: attention in layers {', '.join(str(s[0]) for s in sites) or 'none'} of {int(bridge.cfg.n_layers)} "
                "(the others are Mamba or linear-attention layers, without heads)")
    return ""


def task_reason(bridge: Any) -> str:
    """Why the next-token tasks do not apply to this model, or ``""``."""
    kind = model_kind(bridge)
    if kind == "encoder":
        return ("an encoder-only masked language model: it predicts a masked token from both sides, not the next token, "
                "and the tasks measure next-token logits (its self-attention heads are scored by the attention and weights families)")
    if kind == "encoder-decoder":
        return ("an encoder-decoder model: the tasks measure a decoder-only model's next-token logit on one prompt, and "
                "here the prompt would be split between the encoder's input and the decoder's (the self-attention heads "
                "of both stacks are scored by the attention families)")
    return ""


def weights_reason(bridge: Any) -> str:
    """Why the weights families do not apply to this model, or ``""``."""
    if model_kind(bridge) == "encoder-decoder":
        return ("an encoder-decoder model: the weights families read one residual stream from the embedding to the "
                "unembedding, and the encoder's heads reach the unembedding only through the decoder's cross-attention")
    return ""
