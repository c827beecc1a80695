"""TransformerLens' official model list, with sizes and families, for ``--models all``.

Sizes come, in order of preference, from a config in the local Hugging Face cache (exact:
the model is built on the meta device), from the size written in the name ("pythia-70m",
"Llama-2-7b"), from the layer and width written in the name ("SoLU_6L768W"), or from a
short table of well-known models whose names carry no size. Only the first is exact; the
``size_source`` field says which was used.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .resolve import display_name, official_names

_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([mMbB])(?![A-Za-z])")
_LAYERS_WIDTH = re.compile(r"(\d+)L(\d+)W")
_EXPERTS = re.compile(r"(\d+)x(\d+(?:\.\d+)?)([bB])")

# Models whose names do not carry their size (parameter counts from their model cards).
KNOWN_SIZES = {
    "gpt2": 124e6, "gpt2-medium": 355e6, "gpt2-large": 774e6, "gpt2-xl": 1.56e9, "distilgpt2": 82e6,
    "ai-forever/mGPT": 1.42e9, "ArthurConmy/redwood_attn_2l": 7e6, "Baidicoot/Othello-GPT-Transformer-Lens": 25e6,
    "bigcode/santacoder": 1.1e9, "facebook/hubert-base-ls960": 95e6, "facebook/wav2vec2-base": 95e6,
    "facebook/wav2vec2-large": 317e6, "google-bert/bert-base-cased": 109e6, "google-bert/bert-base-uncased": 110e6,
    "google-bert/bert-large-cased": 334e6, "google-bert/bert-large-uncased": 335e6, "google-t5/t5-small": 60e6,
    "google-t5/t5-base": 223e6, "google-t5/t5-large": 738e6, "microsoft/phi-1": 1.42e9, "microsoft/phi-1_5": 1.42e9,
    "allenai/OLMoE-1B-7B-0924": 6.9e9, "NeelNanda/Attn-Only-2L512W-Shortformer-6B-big-lr": 2 * 4 * 512 * 512 + 2 * 48262 * 512,
    "microsoft/phi-2": 2.78e9, "microsoft/Phi-3-mini-4k-instruct": 3.82e9, "microsoft/phi-4": 14.7e9, "mistralai/Mistral-Nemo-Base-2407": 12.2e9,
}
# Old SoLU models: layers -> d_model (TransformerLens' configs for the v*_old checkpoints).
_OLD_SOLU_WIDTH = {1: 1024, 2: 736, 4: 512, 6: 768, 8: 1024, 10: 1280, 12: 1536}
_NEEL_VOCAB = 48262

FAMILY_OF_ARCH = {
    "GPT2LMHeadModel": "gpt2", "GPTNeoXForCausalLM": "gpt-neox", "LlamaForCausalLM": "llama", "GPTNeoForCausalLM": "gpt-neo",
    "OPTForCausalLM": "opt", "GPTJForCausalLM": "gpt-j", "MistralForCausalLM": "mistral", "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "Gemma2ForCausalLM": "gemma2", "GemmaForCausalLM": "gemma",
    "Gemma3ForCausalLM": "gemma3", "PhiForCausalLM": "phi", "Phi3ForCausalLM": "phi3", "BloomForCausalLM": "bloom",
    "BertForMaskedLM": "bert", "T5ForConditionalGeneration": "t5", "OlmoForCausalLM": "olmo", "Olmo2ForCausalLM": "olmo2",
}


# The largest vocabulary of a family's official models (the memory estimate scales with it); others assume a large one.
FAMILY_VOCAB = {"gpt2": 50257, "gpt-neox": 50304, "gpt-neo": 50257, "gpt-j": 50400, "opt": 50272, "bloom": 250880,
                "bert": 30522, "t5": 32128, "phi": 51200, "pythia": 50304}


@dataclass(frozen=True)
class RegistryEntry:
    official: str  # the hub id
    name: str  # display name (TransformerLens' first alias)
    family: str
    architecture: str
    n_params: float
    size_source: str  # "cache" | "name" | "layers-width" | "table" | "unknown"

    def memory_bytes(self, dtype: str = "float32") -> int:
        """The build's memory estimate (``models.memory.need_bytes``); the vocabulary is not known here, so a
        large one is assumed: the estimate from the config (once it is cached) is the same or lower."""
        from .memory import need_bytes

        return need_bytes(self.n_params, dtype, FAMILY_VOCAB.get(self.family)) if self.n_params == self.n_params else 0


@lru_cache(maxsize=1)
def _architectures() -> dict[str, str]:
    """Architecture per hub id, from TransformerLens' own registry data."""
    import transformer_lens.tools.model_registry as reg

    path = Path(reg.__file__).parent / "data" / "supported_models.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {m["model_id"]: m.get("architecture_id", "") for m in data.get("models", [])}


def model_family(arch: str, official: str = "") -> str:
    """A model's family ("gpt2", "gpt-neox", "llama", ...) from its architecture, else from its hub id."""
    if arch in FAMILY_OF_ARCH:
        return FAMILY_OF_ARCH[arch]
    if arch:
        return arch.replace("ForCausalLM", "").replace("LMHeadModel", "").lower()
    base = official.split("/")[-1].lower()
    if "solu" in base or "gelu" in base or "attn_only" in base:
        return "neel-toy"
    if "gpt2" in base:
        return "gpt2"
    return re.split(r"[-_]", base)[0] or "unknown"


def _cached_params(official: str) -> float | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    path = try_to_load_from_cache(official, "config.json")
    if not isinstance(path, str):
        return None
    try:
        from transformers import AutoConfig

        from .memory import count_params

        return float(count_params(AutoConfig.from_pretrained(str(Path(path).parent))))
    except Exception:
        return None


def size_of(official: str) -> tuple[float, str]:
    """Parameter count and where it came from."""
    cached = _cached_params(official)
    if cached:
        return cached, "cache"
    if official in KNOWN_SIZES:
        return KNOWN_SIZES[official], "table"
    base = official.split("/")[-1]
    base = re.sub(r"(\d)_(\d)", r"\1.\2", base)  # Qwen-1_8B is 1.8B
    base = re.sub(r"(\d)([bB])(\d)(?!\d)", r"\1.\3\2", base)  # bloom-1b7 is 1.7B
    base = base.replace("_", "-")
    experts = _EXPERTS.search(base)
    if experts:  # Mixtral-8x7B: shared attention, so about 46.7B rather than 56B
        return int(experts.group(1)) * float(experts.group(2)) * 1e9 * 0.83, "name"
    m = _SIZE.search(base)
    if m:
        scale = {"k": 1e3, "m": 1e6, "b": 1e9}[m.group(2).lower()]
        return float(m.group(1)) * scale, "name"
    lw = _LAYERS_WIDTH.search(official)
    old = re.search(r"SoLU_(\d+)L_v\d+_old", official)
    if lw or old:
        layers = int((lw or old).group(1))
        width = int(lw.group(2)) if lw else _OLD_SOLU_WIDTH.get(layers, 1024)
        per_layer = 4 * width * width if "Attn_Only" in official else 12 * width * width
        return float(layers * per_layer + 2 * _NEEL_VOCAB * width), "layers-width"
    if "gpt2-medium" in base:
        return 355e6, "name"
    if "gpt2-small" in base:
        return 124e6, "name"
    return float("nan"), "unknown"


def registry_entries() -> list[RegistryEntry]:
    """Every official model, ordered small to large (unknown sizes last)."""
    names, _ = official_names()
    archs = _architectures()
    out = []
    for official in names:
        n, source = size_of(official)
        arch = archs.get(official, "")
        out.append(RegistryEntry(official, display_name(official), model_family(arch, official), arch, n, source))
    return sorted(out, key=lambda e: (e.n_params != e.n_params, e.n_params, e.name))


def select(entries: list[RegistryEntry], max_params: float | None = None, family: str | None = None,
           pattern: str | None = None) -> list[RegistryEntry]:
    """Filter by size, family (comma-separated) and a name pattern (glob, or substring)."""
    out = entries
    if max_params is not None:
        out = [e for e in out if e.n_params == e.n_params and e.n_params <= max_params]
    if family:
        wanted = {f.strip().lower() for f in family.split(",") if f.strip()}
        out = [e for e in out if e.family.lower() in wanted]
    if pattern:
        pat = pattern.lower()
        glob = any(c in pat for c in "*?[")
        out = [e for e in out if any((fnmatch.fnmatch(n.lower(), pat) if glob else pat in n.lower()) for n in (e.name, e.official))]
    return out


# Architectures that take audio or images: the wiki scores text models only, so these are refused before loading.
_AUDIO = re.compile(r"Hubert|Wav2Vec2|Whisper|Speech|Audio|Wavlm|Encodec|Asr", re.I)
_VISION = re.compile(r"ViT|CLIP|Siglip|ForImage|Vision|Llava|Idefics|Florence|Glm4v|Emu3|Blip|Pixtral|Mistral3ForCond", re.I)
# image-text models whose class names do not say so
_IMAGE_TEXT = {"Gemma3ForConditionalGeneration", "Gemma4ForConditionalGeneration", "Gemma4UnifiedForConditionalGeneration",
               "Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration", "Llama4ForConditionalGeneration",
               "Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration", "Gemma3nForConditionalGeneration"}


def modality(architecture: str) -> tuple[str, str]:
    """("text", "") for a text model; else ("audio" | "vision", why the wiki does not score it)."""
    if _AUDIO.search(architecture or ""):
        return "audio", f"{architecture} is an audio model: the wiki's scores need text tokens (it is refused before loading)"
    if architecture in _IMAGE_TEXT or _VISION.search(architecture or ""):
        return "vision", f"{architecture} takes images: the wiki scores text-only models (it is refused before loading)"
    return "text", ""


def registry_architectures() -> dict[str, str]:
    """Architecture per hub id, for every model in TransformerLens' registry."""
    return dict(_architectures())
