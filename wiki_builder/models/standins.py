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
    "NemotronHForCausalLM": "nemotron_h", "CodeGenForCausalLM": "codegen", "MPTForCausalLM": "mpt",
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
    "nemotron_h": {"layers_block_type": ["attention", "mlp"]},  # a hybrid: one attention layer, one MLP layer
    "gemma2": {"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 16},
    "gemma3_text": {"layer_types": ["sliding_attention", "full_attention"], "sliding_window": 16},
}


def tiny_architectures() -> list[str]:
    """Every architecture :func:`tiny_config` knows."""
    return list(TINY_MODEL_TYPES)


def tiny_config(architecture: str, vocab_size: int = 50257) -> Any:
    """A transformers config of ``architecture`` at a tiny shape: 2 layers, 4 heads, d_model 64 (the GPT-2 vocabulary)."""
    import inspect

    from transformers import CONFIG_MAPPING, AutoConfig

    if architecture not in TINY_MODEL_TYPES:
        raise KeyError(f"No tiny config for '{architecture}'. Known: {', '.join(TINY_MODEL_TYPES)}")
    model_type = TINY_MODEL_TYPES[architecture]
    cls = CONFIG_MAPPING[model_type]
    amap = dict(getattr(cls, "attribute_map", {}) or {})
    params = set(inspect.signature(cls.__init__).parameters)
    fields = set(getattr(cls, "__dataclass_fields__", {}) or {})
    kwargs: dict[str, Any] = {}
    for key, value in {**TINY, "vocab_size": vocab_size}.items():
        native = amap.get(key, key)
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
    return build_standin(tiny_config(architecture), tokenizer_dir, out, seed=seed,
                         architecture=TINY_CLASS.get(architecture, architecture))
