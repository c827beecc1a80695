"""Estimate a model's memory from its config before loading it, and what this machine has free.

Loading a model that cannot fit takes minutes and then kills the process (or the whole
batch); refusing it up front keeps the other models going and says what would be needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .resolve import ModelSpec

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# The HF weights, the bridge's processed copies (compatibility mode folds and centres weights)
# and scratch space: measured on the embedded models and gpt2-shaped models at about 2x the weights.
OVERHEAD = 2.5


class InsufficientMemory(RuntimeError):
    pass


@dataclass
class MemoryEstimate:
    n_params: int
    need_bytes: int
    weight_bytes: int


def _config(spec: ModelSpec, location: str):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(location)


def count_params(config) -> int:
    """Exact parameter count from a config, building the model on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate(spec: ModelSpec, location: str, dtype: str, probe_tokens: int = 24 * 101) -> MemoryEstimate:
    """Weights times overhead, plus activations of the probe pass (one layer's patterns at a time)."""
    cfg = _config(spec, location)
    n_params = count_params(cfg)
    b = BYTES[dtype]
    d_model = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 768)
    n_heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 12)
    vocab = getattr(cfg, "vocab_size", 50257)
    seq = 101
    activations = probe_tokens * (d_model * 16 + vocab) * 4 + 24 * n_heads * seq * seq * 4 * 4
    weights = n_params * b
    return MemoryEstimate(n_params=n_params, weight_bytes=weights, need_bytes=int(weights * OVERHEAD + activations))


def available_bytes(device: str) -> int:
    """Free memory where the model will live: the GPU's free memory, or the host's MemAvailable."""
    override = os.environ.get("HEADWIKI_MEMORY_LIMIT_GB")
    if override:
        return int(float(override) * 2**30)
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_fits(spec: ModelSpec, location: str, device: str, dtype: str) -> MemoryEstimate:
    est = estimate(spec, location, dtype)
    have = available_bytes(device)
    if est.need_bytes > have:
        raise InsufficientMemory(
            f"'{spec.name}' needs about {est.need_bytes / 2**30:.1f} GiB on {device} ({est.n_params / 1e6:.0f}M parameters in {dtype}), "
            f"and only {have / 2**30:.1f} GiB is free. Use a machine with more memory, a GPU (--device cuda), "
            "or half precision (--dtype bfloat16)."
        )
    return est


# -- measured peak memory ------------------------------------------------------------------------

def current_rss() -> int:
    """This process's resident memory now, in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak(device: str = "cpu") -> bool:
    """Start a new peak: the kernel's RSS high-water mark (Linux, ``5`` to ``/proc/self/clear_refs``) and
    CUDA's peak allocation. False when the kernel's mark could not be reset (then the peak is the process's)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_peak(device: str = "cpu") -> int:
    """The peak since :func:`reset_peak`: ``torch.cuda.max_memory_allocated`` on a GPU, else the RSS
    high-water mark (``VmHWM`` of /proc/self/status; ``ru_maxrss`` elsewhere), in bytes."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
