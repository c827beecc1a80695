"""Stand-ins: a real architecture at its real shape, random weights, the real tokenizer.

No machine of ours may reach the Hugging Face hub, so no pretrained weights can be had; the
tokenizers can (``../shared/tokenizers``). A stand-in shows what a build of the real model
would do with its vocabulary (which names, years and ordinals are single tokens, how every
prompt is split) and with its size (parameters, seconds, peak memory), though not its scores.

* :func:`build_standin` makes a model directory from a transformers config: random init with a
  fixed seed, ``save_pretrained`` in safetensors, and the tokenizer files copied beside it.
* :func:`place_in_hf_cache` puts such a directory into a Hugging Face cache under a hub id
  (``HF_HOME/hub/models--ORG--NAME/snapshots/<rev>/`` + ``refs/main``), so that
  ``HF_HUB_OFFLINE=1 wiki build --models gpt2-small`` takes the user's own code path: a
  TransformerLens name, resolved and loaded from the cache.
* :data:`SHAPES` names the real shapes: ``REAL_SHAPES`` keys are hub ids.

Plain transformers and torch; nothing from the stages above ``models``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")
REVISION = "0000000000000000000000000000000000standin"  # the snapshot folder name (40 characters, like a commit)


@dataclass(frozen=True)
class Shape:
    """A real model's shape: its hub id, the config to build, and the tokenizer folder it uses."""

    hub_id: str
    config_class: str  # a transformers config class name
    kwargs: dict[str, Any] = field(default_factory=dict)
    tokenizer: str = "gpt2"  # a folder name under ../shared/tokenizers
    n_params: int | None = None  # the real model's parameter count (tied embeddings counted once), when known

    def config(self):
        import transformers

        return getattr(transformers, self.config_class)(**self.kwargs)


# GPT-2 and Pythia shapes as their hub configs give them (transformers' GPT2Config() defaults are GPT-2 small).
SHAPES: dict[str, Shape] = {
    "gpt2": Shape("gpt2", "GPT2Config", {}, "gpt2", n_params=124_439_808),
    "gpt2-medium": Shape("gpt2-medium", "GPT2Config", {"n_layer": 24, "n_head": 16, "n_embd": 1024}, "gpt2",
                         n_params=354_823_168),
    "EleutherAI/pythia-70m": Shape("EleutherAI/pythia-70m", "GPTNeoXConfig", {
        "vocab_size": 50304, "hidden_size": 512, "num_hidden_layers": 6, "num_attention_heads": 8,
        "intermediate_size": 2048, "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000,
        "use_parallel_residual": True, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
        "layer_norm_eps": 1e-5, "hidden_act": "gelu"}, "gpt-neox-20b", n_params=70_426_624),
    "EleutherAI/pythia-160m": Shape("EleutherAI/pythia-160m", "GPTNeoXConfig", {
        "vocab_size": 50304, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "max_position_embeddings": 2048, "rotary_pct": 0.25, "rotary_emb_base": 10000,
        "use_parallel_residual": True, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
        "layer_norm_eps": 1e-5, "hidden_act": "gelu"}, "gpt-neox-20b", n_params=162_322_944),
}
REAL_SHAPES = tuple(SHAPES)


def tokenizers_dir() -> Path | None:
    """``shared/tokenizers`` beside the checkout (or ``$HEADWIKI_SHARED/tokenizers``), if present."""
    env = os.environ.get("HEADWIKI_SHARED")
    here = Path(__file__).resolve()
    candidates = ([Path(env)] if env else []) + [Path.cwd().parent / "shared", here.parents[3] / "shared"]
    for c in candidates:
        if (c / "tokenizers").is_dir():
            return c / "tokenizers"
    return None


def build_standin(config: Any, tokenizer_dir: str | Path, out_dir: str | Path, seed: int = 0,
                  init: Callable[[Any], None] | None = None, architecture: str | None = None) -> Path:
    """Write a randomly initialised model for ``config`` to ``out_dir`` with the tokenizer of ``tokenizer_dir``.

    The weights come from transformers' own initialisation under ``torch.manual_seed(seed)``
    (``init`` may change them afterwards); they are saved as safetensors. Every tokenizer file
    present in ``tokenizer_dir`` is copied. ``architecture`` (a transformers model class name, e.g.
    ``BertForMaskedLM``) is built instead of the config's causal-LM class. Returns ``out_dir``.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config) if architecture else AutoModelForCausalLM.from_config(config)
    model.eval()
    if init is not None:
        init(model)
    model.save_pretrained(out, safe_serialization=True)
    del model
    src = Path(tokenizer_dir)
    copied = [f for f in TOKENIZER_FILES if (src / f).is_file()]
    if "tokenizer.json" not in copied:
        raise FileNotFoundError(f"{src} has no tokenizer.json")
    for f in copied:
        shutil.copyfile(src / f, out / f)
    return out


def place_in_hf_cache(model_dir: str | Path, hf_home: str | Path, hub_id: str, revision: str = REVISION) -> Path:
    """Copy ``model_dir``'s files into the cache at ``hf_home`` as hub id ``hub_id``; returns the snapshot folder.

    Layout: ``hf_home/hub/models--ORG--NAME/snapshots/<revision>/<files>`` and ``refs/main``
    holding the revision, which is what ``huggingface_hub`` reads with ``HF_HUB_OFFLINE=1``
    (set ``HF_HOME=hf_home``). Files are hard-linked when possible.
    """
    repo = Path(hf_home) / "hub" / ("models--" + hub_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    for f in Path(model_dir).iterdir():
        if not f.is_file():
            continue
        target = snap / f.name
        if target.exists():
            target.unlink()
        try:
            os.link(f, target)
        except OSError:
            shutil.copyfile(f, target)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snap


def make_standin(hub_id: str, out_dir: str | Path, hf_home: str | Path | None = None, seed: int = 0,
                 tokenizers: str | Path | None = None) -> Path:
    """Build the named real shape into ``out_dir`` (and place it in ``hf_home``'s cache when given)."""
    shape = SHAPES[hub_id]
    base = Path(tokenizers) if tokenizers else tokenizers_dir()
    if base is None:
        raise FileNotFoundError("shared/tokenizers was not found; set HEADWIKI_SHARED to the folder that holds it")
    out = Path(out_dir)
    if not (out / "config.json").is_file():
        build_standin(shape.config(), base / shape.tokenizer, out, seed=seed)
    if hf_home is not None:
        place_in_hf_cache(out, hf_home, hub_id)
    return out


# --- tiny stand-ins of every architecture -----------------------------------------------------------------------
# One model per architecture at a tiny shape (2 layers, 4 heads, d_model 64) with the GPT-2 tokenizer's vocabulary:
# enough for TransformerLens to load it and for every score family to run (or say why it does not apply).

# architecture (the config's ``architectures[0]``) -> transformers model_type
TINY_MODEL_TYPES: dict[str, str] = {
    "GPT2LMHeadModel": "gpt2", "GPTNeoForCausalLM": "gpt_neo", "GPTJForCausalLM": "gptj", "GPTNeoXForCausalLM": "gpt_neox",
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text", "PhiForCausalLM": "phi", "Phi3ForCausalLM": "phi3", "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3", "OlmoForCausalLM": "olmo", "Olmo2ForCausalLM": "olmo2", "Olmo3ForCausalLM": "olmo3",
    "StableLmForCausalLM": "stablelm", "GPTBigCodeForCausalLM": "gpt_bigcode", "OPTForCausalLM": "opt",
    "BloomForCausalLM": "bloom", "BertForMaskedLM": "bert", "T5ForConditionalGeneration": "t5",
    "MixtralForCausalLM": "mixtral", "OlmoeForCausalLM": "olmoe", "Qwen3MoeForCausalLM": "qwen3_moe", "GptOssForCausalLM": "gpt_oss",
    "FalconForCausalLM": "falcon", "DeepseekV3ForCausalLM": "deepseek_v3", "GraniteForCausalLM": "granite",
    "ApertusForCausalLM": "apertus", "Qwen3_5ForCausalLM": "qwen3_5_text", "Qwen3NextForCausalLM": "qwen3_next",
    "NemotronHForCausalLM": "nemotron_h", "GraniteMoeHybridForCausalLM": "granitemoehybrid", "FalconH1ForCausalLM": "falcon_h1", "CodeGenForCausalLM": "codegen", "MPTForCausalLM": "mpt",
    "DeepseekV2ForCausalLM": "deepseek_v2", "MT5ForConditionalGeneration": "mt5", "MarianMTModel": "marian",
}
# architectures (as registries spell them) whose transformers class is spelled otherwise
TINY_CLASS = {"MPTForCausalLM": "MptForCausalLM"}
TINY = {"vocab_size": 50257, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "intermediate_size": 128, "max_position_embeddings": 512, "head_dim": 16}
# per model_type: what else a tiny config needs (MoE sizes, encoder-decoder and layer-type lists, tokens)
TINY_EXTRA: dict[str, dict[str, Any]] = {
    "gpt2": {"n_inner": 128}, "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": 16},
    "gptj": {"rotary_dim": 8, "n_inner": 128}, "gpt_bigcode": {"n_inner": 128}, "opt": {"ffn_dim": 128, "word_embed_proj_dim": 64},
    "phi": {"partial_rotary_factor": 0.5}, "gpt_neox": {"rotary_pct": 0.25},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "olmoe": {"num_experts": 4, "num_experts_per_tok": 2},
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "decoder_sparse_step": 1},
    "gpt_oss": {"num_local_experts": 4, "num_experts_per_tok": 2, "layer_types": ["sliding_attention", "full_attention"],
                "sliding_window": 16},
    "deepseek_v3": {"n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "n_shared_experts": 1,
                    "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1, "q_lora_rank": 32, "kv_lora_rank": 16,
                    "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16},
    "t5": {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
           "decoder_start_token_id": 50256, "pad_token_id": 50256},
    "mt5": {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
            "decoder_start_token_id": 50256, "pad_token_id": 50256},
    "bert": {"pad_token_id": 0}, "marian": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
                                            "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
                                            "pad_token_id": 50256, "decoder_start_token_id": 50256, "decoder_vocab_size": 50257}, "falcon": {"new_decoder_architecture": False, "multi_query": True, "parallel_attn": True},
    # hybrids: layer 0 without attention (Mamba or linear attention), layer 1 with it
    "nemotron_h": {"layers_block_type": ["linear_attention", "full_attention"], "mamba_num_heads": 4, "mamba_head_dim": 16,
                   "ssm_state_size": 16, "n_groups": 1, "mamba_n_groups": 1},
    "qwen3_5_text": {"layer_types": ["linear_attention", "full_attention"], "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                     "linear_key_head_dim": 16, "linear_value_head_dim": 16},
    "qwen3_next": {"layer_types": ["linear_attention", "full_attention"], "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "linear_key_head_dim": 16, "linear_value_head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2,
                   "moe_intermediate_size": 64, "shared_expert_intermediate_size": 64},
    "deepseek_v2": {"n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "n_shared_experts": 1,
                    "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1, "q_lora_rank": 32, "kv_lora_rank": 16,
                    "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16},
    "granitemoehybrid": {"layer_types": ["mamba", "attention"], "position_embedding_type": "rope", "num_local_experts": 4, "num_experts_per_tok": 2,
                         "mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 16, "mamba_n_groups": 1, "mamba_expand": 1},
    "falcon_h1": {"mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 16, "mamba_n_groups": 1, "mamba_d_ssm": 64},
    "gemma2": {"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 16},
    "gemma3_text": {"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 16},
}


# other spellings of the tiny sizes, for configs that take neither TINY's names nor an attribute_map to them
TINY_ALIASES: dict[str, tuple[str, ...]] = {
    "hidden_size": ("n_embd", "d_model", "dim", "model_dim"),
    "num_hidden_layers": ("n_layer", "n_layers", "num_layers", "encoder_layers", "decoder_layers", "num_decoder_layers"),
    "num_attention_heads": ("n_head", "n_heads", "num_heads", "encoder_attention_heads", "decoder_attention_heads"),
    "num_key_value_heads": ("num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "intermediate_size": ("n_inner", "ffn_dim", "d_ff", "ffn_hidden_size", "encoder_ffn_dim", "decoder_ffn_dim",
                          "moe_intermediate_size", "shared_expert_intermediate_size"),
    "head_dim": ("d_kv", "kv_channels", "attention_head_dim"),
    "max_position_embeddings": ("n_positions", "max_seq_len", "seq_length"),
}
# mixture-of-experts sizes, set on whichever of these a config takes
TINY_MOE = {"num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_k": 2,
            "n_group": 1, "topk_group": 1}
# the transformers model classes an architecture name is looked up in (causal LM first)
_MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
             "MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_MAPPING_NAMES")


def tiny_model_type(architecture: str) -> str | None:
    """The transformers model_type of ``architecture``: from :data:`TINY_MODEL_TYPES`, else from transformers'
    auto mappings (model_type -> model class name), matched case-insensitively (``MPTForCausalLM`` is ``MptForCausalLM``)."""
    if architecture in TINY_MODEL_TYPES:
        return TINY_MODEL_TYPES[architecture]
    from transformers.models.auto import modeling_auto

    want = architecture.lower()
    for name in _MAPPINGS:
        for model_type, cls in getattr(modeling_auto, name, {}).items():
            classes = cls if isinstance(cls, (tuple, list)) else (cls,)
            if any(c.lower() == want for c in classes):
                return model_type
    return None


def tiny_class(architecture: str) -> str:
    """The transformers class that builds ``architecture`` (its own spelling)."""
    if architecture in TINY_CLASS:
        return TINY_CLASS[architecture]
    import transformers

    if hasattr(transformers, architecture):
        return architecture
    want = architecture.lower()
    return next((n for n in dir(transformers) if n.lower() == want), architecture)


def tiny_architectures() -> list[str]:
    """Every architecture :func:`tiny_config` has a hand-checked entry for (others are derived, see :func:`tiny_model_type`)."""
    return list(TINY_MODEL_TYPES)


def tiny_config(architecture: str, vocab_size: int = 50257) -> Any:
    """A transformers config of ``architecture`` at a tiny shape: 2 layers, 4 heads, d_model 64 (the GPT-2 vocabulary)."""
    import inspect

    from transformers import CONFIG_MAPPING, AutoConfig

    model_type = tiny_model_type(architecture)
    if model_type is None or model_type not in CONFIG_MAPPING:
        raise KeyError(f"No tiny config for '{architecture}': transformers has no model class of that name")
    cls = CONFIG_MAPPING[model_type]
    amap = dict(getattr(cls, "attribute_map", {}) or {})
    params = set(inspect.signature(cls.__init__).parameters)
    fields = set(getattr(cls, "__dataclass_fields__", {}) or {})
    kwargs: dict[str, Any] = {}
    for key, value in {**TINY, "vocab_size": vocab_size}.items():
        native = amap.get(key, key)
        if native in params or native in fields:
            kwargs[native] = value
    if architecture not in TINY_MODEL_TYPES:  # derived: the other spellings of the sizes, and small expert counts
        for key, names in TINY_ALIASES.items():
            for native in names:
                if (native in params or native in fields) and native not in kwargs:
                    kwargs[native] = TINY[key] if key != "intermediate_size" or "moe" not in native and "expert" not in native else 64
        for native, value in TINY_MOE.items():
            if native in params or native in fields:
                kwargs[native] = value
    kwargs.update(TINY_EXTRA.get(model_type, {}))
    kwargs.setdefault("bos_token_id", vocab_size - 1)
    kwargs.setdefault("eos_token_id", vocab_size - 1)
    kwargs.setdefault("tie_word_embeddings", False)
    config = AutoConfig.for_model(model_type, **kwargs)
    config.architectures = [architecture]
    return config


def build_tiny(architecture: str, out_dir: str | Path, tokenizer_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The tiny stand-in of ``architecture`` in ``out_dir`` (built once; the GPT-2 tokenizer beside it)."""
    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    if tokenizer_dir is None:
        base = tokenizers_dir()
        if base is None:
            raise FileNotFoundError("shared/tokenizers was not found; set HEADWIKI_SHARED to the folder that holds it")
        tokenizer_dir = base / "gpt2"
    config = tiny_config(architecture)
    check_tiny(config, tiny_class(architecture))
    return build_standin(config, tokenizer_dir, out, seed=seed, architecture=tiny_class(architecture))


TINY_MAX_PARAMS = 40_000_000  # the GPT-2 vocabulary's embedding and unembedding at d_model 64 are 6.4M


def check_tiny(config: Any, class_name: str) -> int:
    """The parameter count of ``config`` (built on the meta device, no memory); raises when it is not tiny.

    A derived config whose sizes sit in attributes the generic sizing does not know (nested encoder and
    decoder configs, say) keeps the real model's sizes: refused here before any weights are allocated.
    """
    import torch
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, class_name)(config)
    n = sum(p.numel() for p in model.parameters())
    if n > TINY_MAX_PARAMS:
        raise ValueError(f"the tiny config of {class_name} has {n / 1e6:.0f}M parameters: its sizes are set on attributes "
                         "the generic sizing does not know (e.g. nested encoder/decoder configs); it needs a TINY_EXTRA entry")
    return n


# --- TransformerLens-format checkpoints (NeelNanda/*, ArthurConmy/*, Baidicoot/*) ---------------------------------
# Those repos hold a TransformerLens config.json (no model_type) and a ``*final.pth`` state dict with
# HookedTransformer's property keys ("blocks.0.attn.W_Q", per-head shapes). A tiny one in that format, placed in a
# Hugging Face cache under such a hub id, is loaded by the wiki through TransformerLens' own legacy loader.

TL_LEGACY_HUB_ID = "NeelNanda/GELU-2L512W-C4-Code"  # the stand-in's hub id: a real official model of that format
TL_LEGACY_CONFIG = {"d_model": 64, "n_layers": 2, "d_mlp": 256, "d_head": 16, "n_heads": 4, "n_ctx": 512, "d_vocab": 50257,
                    "act_fn": "gelu", "attn_only": False, "normalization_type": "LN", "positional_embedding_type": "standard"}


def tl_legacy_state_dict(cfg: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Random weights under HookedTransformer's property keys and shapes (what ``*final.pth`` holds)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d, h, dh, m, v, n = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_mlp"], cfg["d_vocab"], cfg["n_ctx"]

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, generator=g) * 0.02

    sd = {"embed.W_E": rand(v, d), "pos_embed.W_pos": rand(n, d), "ln_final.w": torch.ones(d), "ln_final.b": torch.zeros(d),
          "unembed.W_U": rand(d, v), "unembed.b_U": torch.zeros(v)}
    for layer in range(cfg["n_layers"]):
        p = f"blocks.{layer}."
        sd.update({p + "ln1.w": torch.ones(d), p + "ln1.b": torch.zeros(d),
                   p + "attn.W_Q": rand(h, d, dh), p + "attn.W_K": rand(h, d, dh), p + "attn.W_V": rand(h, d, dh),
                   p + "attn.W_O": rand(h, dh, d), p + "attn.b_Q": torch.zeros(h, dh), p + "attn.b_K": torch.zeros(h, dh),
                   p + "attn.b_V": torch.zeros(h, dh), p + "attn.b_O": torch.zeros(d)})
        if not cfg["attn_only"]:
            sd.update({p + "ln2.w": torch.ones(d), p + "ln2.b": torch.zeros(d), p + "mlp.W_in": rand(d, m),
                       p + "mlp.b_in": torch.zeros(m), p + "mlp.W_out": rand(m, d), p + "mlp.b_out": torch.zeros(d)})
    return sd


def build_tl_legacy(out_dir: str | Path, hub_id: str = TL_LEGACY_HUB_ID, tokenizer_dir: str | Path | None = None,
                    seed: int = 0) -> Path:
    """A tiny TransformerLens-format repo in ``out_dir``: TL config.json, ``model_final.pth``, the GPT-2 tokenizer.

    The config's ``tokenizer_name`` is ``hub_id`` itself, so the tokenizer is read from the same cached repo.
    """
    import json

    import torch

    out = Path(out_dir)
    if (out / "model_final.pth").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        base = tokenizers_dir()
        if base is None:
            raise FileNotFoundError("shared/tokenizers was not found; set HEADWIKI_SHARED to the folder that holds it")
        tokenizer_dir = base / "gpt2"
    cfg = {**TL_LEGACY_CONFIG, "tokenizer_name": hub_id}
    (out / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    torch.save(tl_legacy_state_dict(cfg, seed), out / "model_final.pth")
    for f in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / f).is_file():
            shutil.copyfile(Path(tokenizer_dir) / f, out / f)
    return out
