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
# The estimate, calibrated on the real-size stand-ins (`wiki bench-memory`, with and without --force-tasks;
# numbers in docs/benchmarks.md) so that it is never below a measured peak:
RUNTIME_BYTES = 768 << 20  # Python, torch, transformers, TransformerLens and a tokenizer before any weight (0.5-0.6 GiB)
WEIGHTS_FACTOR = 2.0  # the weights once, processing's copy of the step in hand, allocator slack (measured 1.5-1.9x)
SCORED_POSITIONS = 20  # the most positions a task scores (induction_task: its second repeat)
# float32 logits at the scored positions that live together while a task is scored: clean, corrupted and three
# check copies from prepare's one pass, the engine's log-probabilities and probabilities, readout temporaries
LOGIT_COPIES = 14
ENGINE_BATCH_BYTES = 512 << 20  # one ablation batch on the CPU (tasks.engine.exact.CPU_BUDGET_BYTES)
UNKNOWN_VOCAB = 152_064  # vocabulary assumed when the shape is not known (Qwen's; most vocabularies are smaller)


def need_bytes(n_params: float, dtype: str = "float32", d_vocab: int | None = None, task_prompts: int = 32) -> int:
    """Memory a full build of one model needs: the runtime, the weights with their processing, and the
    vocabulary-sized logits that scoring a task keeps (these, not the weights, dominate small models)."""
    logits = LOGIT_COPIES * task_prompts * SCORED_POSITIONS * int(d_vocab or UNKNOWN_VOCAB) * 4
    return int(RUNTIME_BYTES + WEIGHTS_FACTOR * n_params * BYTES[dtype] + logits + ENGINE_BATCH_BYTES)


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
    import transformers
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:  # encoder-only and encoder-decoder models (BERT, T5, Marian): the config's own class
            arch = (getattr(config, "architectures", None) or [""])[0]
            model = getattr(transformers, arch)(config) if hasattr(transformers, arch) else transformers.AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate(spec: ModelSpec, location: str, dtype: str) -> MemoryEstimate:
    """:func:`need_bytes` from the model's config (exact parameter count, its own vocabulary)."""
    cfg = _config(spec, location)
    n_params = count_params(cfg)
    text = getattr(cfg, "get_text_config", lambda: cfg)()
    vocab = getattr(text, "vocab_size", None) or getattr(cfg, "vocab_size", None)
    return MemoryEstimate(n_params=n_params, weight_bytes=n_params * BYTES[dtype], need_bytes=need_bytes(n_params, dtype, vocab))


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
