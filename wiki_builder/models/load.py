"""Load a resolved model through TransformerLens 4's ``TransformerBridge``.

Every model, embedded, local or from the hub, goes through
``TransformerBridge.boot_transformers`` so that the hooks and weight accessors the
metrics use are TransformerLens' own. ``enable_compatibility_mode()`` gives
HookedTransformer numerics (folded layer norms, ``W_Q``/``W_O`` per head) that the
published metric code assumes.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .resolve import ModelSpec

DTYPES = ("auto", "float32", "float16", "bfloat16", "mixed-bf16")
# What each --dtype means for the weights as loaded and for the forward passes.
#   float32 / float16 / bfloat16: everything in that dtype (weight-based scores upcast to float32).
#   mixed-bf16: weights loaded in float32; the OV (weight-based) scores are computed from them, then
#               the model is cast to bfloat16 for the attention-pattern and task forward passes.
#   auto: float32 on the CPU, mixed-bf16 on a GPU.


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    spec: ModelSpec
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    device: str
    dtype: str
    info: dict[str, Any] = field(default_factory=dict)


def pick_device(device: str = "auto") -> str:
    """``auto`` means CUDA when present, else CPU; anything else is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"--device {device} was asked for, but this machine has no CUDA GPU. Use --device cpu or --device auto.")
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ModelLoadError("--device mps was asked for, but MPS is not available here. Use --device cpu or --device auto.")
        return device
    raise ModelLoadError(f"Unknown device '{device}'. Use auto, cpu, cuda, cuda:N or mps.")


def resolve_dtype(dtype: str, device: str) -> str:
    """Turn ``auto`` into a concrete policy for the device the model will run on."""
    check_dtype(dtype)
    if dtype != "auto":
        return dtype
    return "mixed-bf16" if pick_device(device).startswith("cuda") else "float32"


def load_dtype(policy: str) -> str:
    """The dtype the weights are loaded in, under a policy."""
    return "float32" if policy in ("mixed-bf16", "auto") else policy


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype '{dtype}'. Use one of: {', '.join(DTYPES)}.")
    return dtype


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub endpoint, so an offline machine fails in seconds, not minutes."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_hub_access() -> None:
    """Switch huggingface_hub to offline mode when the hub cannot be reached.

    Without this, transformers retries the unreachable hub for about 30 seconds per file
    before looking in the local cache.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False") :
        return
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import sys

        if "huggingface_hub" in sys.modules:  # already imported: its constant was read at import time
            from huggingface_hub import constants

            constants.HF_HUB_OFFLINE = True


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub_error(spec: ModelSpec, exc: BaseException) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load '{spec.name}' ({spec.location}) from the Hugging Face hub: the hub could not be "
        f"reached and the model is not in the local cache ({hub_cache_dir()}).\n"
        "To build it without internet, either\n"
        f"  - pass a local Hugging Face-format directory: wiki build --models ./path/to/{spec.location.split('/')[-1]}\n"
        f"  - or copy a populated cache here (made elsewhere with `huggingface-cli download {spec.location}`) and point "
        "HF_HOME or HF_HUB_CACHE at it, with HF_HUB_OFFLINE=1.\n"
        f"(underlying error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    )


TL_LEGACY_PREFIXES = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")


def is_tl_legacy(spec: ModelSpec) -> bool:
    """A hub repo in TransformerLens' own checkpoint format (config.json without model_type, ``*final.pth``),
    loaded through ``transformer_lens.model_bridge.sources.tl_legacy``."""
    return spec.source == "hub" and spec.location.startswith(TL_LEGACY_PREFIXES)


@contextlib.contextmanager
def cached_repo_listing():
    """Offline, let ``HfApi.list_repo_files`` answer from the local cache.

    TransformerLens' legacy loader lists a repo's files to find ``*final.pth``; that is a hub
    call, which fails with ``HF_HUB_OFFLINE=1`` even when the whole repo is cached. Online,
    nothing changes.
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    if not constants.HF_HUB_OFFLINE:
        yield
        return
    original = HfApi.list_repo_files

    def from_cache(self: Any, repo_id: str, *args: Any, **kwargs: Any) -> list[str]:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
        return sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file())

    HfApi.list_repo_files = from_cache
    try:
        yield
    finally:
        HfApi.list_repo_files = original


def model_directory(spec: ModelSpec, work_dir: Path | None = None) -> str:
    """The name or directory to hand to ``boot_transformers``; converts llama2.c on first use."""
    if spec.source != "llama2c":
        return spec.location
    from .llama2c import convert_llama2c

    src = Path(spec.location)
    target = (work_dir or Path("data")) / "converted" / spec.slug
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        convert_llama2c(src / "stories260K.bin", src / "tok512.bin", target)
    return str(target)


def refuse_non_text(spec: ModelSpec, where: str) -> None:
    """Refuse audio and vision models before any weights are read (the wiki's scores need text tokens)."""
    import json

    from .registry import modality, registry_architectures

    archs: list[str] = []
    config = Path(where) / "config.json"
    if config.is_file():
        try:
            archs = list(json.loads(config.read_text(encoding="utf-8")).get("architectures") or [])
        except (OSError, ValueError):
            archs = []
    elif spec.source == "hub":
        archs = [a for a in [registry_architectures().get(spec.location, "")] if a]
    for arch in archs:
        kind, reason = modality(arch)
        if kind != "text":
            raise ModelLoadError(f"'{spec.name}' is not scored: {reason}.")


def load_model(spec: ModelSpec, device: str = "auto", dtype: str = "float32", work_dir: Path | None = None) -> LoadedModel:
    """Boot a model with TransformerBridge in eval mode, on the chosen device and dtype."""
    dev = pick_device(device)
    dtype = resolve_dtype(dtype, dev)
    if spec.source == "hub":
        prepare_hub_access()
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    where = model_directory(spec, work_dir)
    refuse_non_text(spec, where)
    from .memory import MemoryEstimate, check_fits

    legacy = is_tl_legacy(spec)
    try:
        # TransformerLens-format repos have no config transformers reads: sized after loading (they are small)
        estimate = MemoryEstimate(0, 0, 0) if legacy else check_fits(spec, where, dev, load_dtype(dtype))
    except OSError as exc:
        if spec.source == "hub":
            raise _hub_error(spec, exc) from exc
        raise ModelLoadError(f"Could not read the config of '{spec.name}' at {where}: {exc}") from exc
    except ValueError as exc:  # transformers: unknown model_type / architecture
        raise ModelLoadError(f"'{spec.name}' at {where} has a config transformers cannot use: {exc}") from exc
    from .frugal import (
        NotReplaced,
        blocks_returned,
        forget_patterns,
        frugal_processing,
        no_mkl_buffer_cache,
        read_not_mapped,
        release_freed_memory,
    )

    no_mkl_buffer_cache()

    def boot(frugal: bool) -> Any:
        try:
            if legacy:
                from transformer_lens.model_bridge.sources.tl_legacy import boot as boot_tl_legacy

                with cached_repo_listing():
                    return boot_tl_legacy(spec.location, device=dev, dtype=getattr(torch, load_dtype(dtype)))
            with read_not_mapped() if frugal else contextlib.nullcontext():
                return TransformerBridge.boot_transformers(where, device=dev, dtype=getattr(torch, load_dtype(dtype)))
        except OSError as exc:
            if spec.source == "hub":
                raise _hub_error(spec, exc) from exc
            raise ModelLoadError(f"Could not load '{spec.name}' from {where}: {exc}") from exc
        except Exception as exc:  # unsupported architectures and broken configs surface here
            raise ModelLoadError(f"TransformerLens could not load '{spec.name}' from {where}: {type(exc).__name__}: {exc}") from exc

    # One copy of the weights at a time (see models/frugal.py); the same numbers as the ordinary way,
    # which is the fallback should processing leave a weight of this architecture behind.
    with blocks_returned():
        bridge = boot(frugal=True)
        try:
            with frugal_processing(bridge):
                bridge.enable_compatibility_mode()
        except NotReplaced:
            del bridge
            gc.collect()
            bridge = boot(frugal=False)
            bridge.enable_compatibility_mode()
    forget_patterns(bridge)
    release_freed_memory()
    bridge.eval()
    if spec.source == "embedded":
        # the zoo is trained with <bos> at position 0 whatever the architecture; TransformerLens
        # defaults to no BOS for GPT-NeoX models (Pythia), which would put them off their training data
        bridge.cfg.default_prepend_bos = True
    cfg = bridge.cfg
    n_params = estimate.n_params  # from the checkpoint's config: tied embedding and unembedding counted once
    if legacy:
        n_params = sum(p.numel() for p in bridge.parameters())
    info = {
        "n_layers": int(cfg.n_layers),
        "n_heads": int(cfg.n_heads),
        "n_kv_heads": int(getattr(cfg, "n_key_value_heads", None) or cfg.n_heads),
        "d_model": int(cfg.d_model),
        "d_head": int(cfg.d_head),
        "d_vocab": int(cfg.d_vocab),
        "n_ctx": int(cfg.n_ctx),
        "n_params": int(n_params),
        "architecture": str(getattr(cfg, "architecture", "") or ""),
        "positional_embedding": str(getattr(cfg, "positional_embedding_type", "") or ""),
        "estimated_memory_bytes": int(estimate.need_bytes),
    }
    return LoadedModel(spec=spec, bridge=bridge, device=dev, dtype=dtype, info=info)
