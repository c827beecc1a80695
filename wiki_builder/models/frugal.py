"""Load and process a model's weights holding about one copy of them at a time.

What ``TransformerBridge.boot_transformers`` + ``enable_compatibility_mode()`` hold, left alone
(measured on the gpt2-medium stand-in, 1.42 GB of float32 weights; GiB below):

* the checkpoint memory-mapped: every weight points into the file, whose pages stay resident
  (and count in the process's memory) as long as any tensor of it lives;
* ``ProcessWeights.process_weights`` copies the whole state dict three times
  (``fold_layer_norm``, ``center_unembed`` and ``fold_value_biases`` each begin with
  ``{k: v.clone() ...}``) while the model still holds the originals: at the peak the originals,
  one full copy and the next one being made (5.4 GiB for 1.32 GiB of weights);
* afterwards the processed weights replace the model's, except GPT-2's and GPT-NeoX's fused
  ``c_attn``/``query_key_value`` weight, which TransformerLens splits into separate Q/K/V and
  then never reads again (its state dict filters it out as stale), yet keeps alive.

:func:`frugal_processing` changes none of the arithmetic, only when memory is freed:

1. the checkpoint is read with ``pread`` into ordinary memory instead of being memory-mapped
   (:func:`read_not_mapped`), so a weight, once replaced, is really gone;
2. when processing starts, the model's parameters that the state dict holds hand their data to
   it (they become same-shaped zero-stride placeholders): the dict holds the only reference;
3. the three copying steps consume their input as they copy it (:class:`_Consumed`): each
   original is dropped as soon as its copy exists, so two full copies never coexist;
4. after processing, every placeholder must have been replaced by a processed weight, except
   the stale fused QKV weights, which stay placeholders (their memory is freed). Anything else
   left behind raises :class:`NotReplaced` and the caller loads the model the ordinary way.

Peak while processing: about the weights once plus the processed copy of whatever a step is
working on, instead of three times the weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator
from typing import Any

COPYING_STEPS = ("fold_layer_norm", "center_unembed", "fold_value_biases")


class NotReplaced(RuntimeError):
    """A weight handed to processing was not given back to the model: load it the ordinary way."""


@contextlib.contextmanager
def read_not_mapped() -> Iterator[None]:
    """While active, transformers reads safetensors checkpoints on the CPU with ``pread`` (no mmap)."""
    try:
        import transformers.modeling_utils as mu
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    original = getattr(mu, "safe_open", None)
    if original is None:
        yield
        return

    @functools.wraps(original)
    def safe_open(filename: Any, framework: str = "pt", device: Any = "cpu", backend: Any = None, **kwargs: Any) -> Any:
        if backend in (None, "mmap") and str(device) == "cpu":
            try:
                return original(filename, framework=framework, device=device, backend="pread", **kwargs)
            except TypeError:  # a safetensors without the backend argument
                pass
        if backend is None:
            return original(filename, framework=framework, device=device, **kwargs)
        return original(filename, framework=framework, device=device, backend=backend, **kwargs)

    mu.safe_open = safe_open
    try:
        yield
    finally:
        mu.safe_open = original


class _Consumed(dict):
    """A state dict that gives up each entry as it is read by ``items()``: the copy loop
    ``{k: v.clone() for k, v in d.items()}`` then frees each original once its copy is made."""

    def items(self):  # type: ignore[override]
        for key in list(self.keys()):
            yield key, self.pop(key)


def _placeholder(t: Any) -> Any:
    """A tensor of ``t``'s shape, dtype and device that owns one element (zero strides)."""
    import torch

    return torch.zeros((), dtype=t.dtype, device=t.device).expand(t.shape)


def _is_placeholder(t: Any) -> bool:
    return t.numel() > 1 and all(s == 0 for s in t.stride())


def _stale_fused_qkv(name: str) -> bool:
    """TransformerLens' split-QKV bridges keep the fused weight under ``...attn.qkv...``; it filters it
    out of every state dict (``JointQKVAttentionBridge._filter_qkv_state_dict``) and never reads it again."""
    return ".qkv." in f".{name}."


@contextlib.contextmanager
def frugal_processing(bridge: Any) -> Iterator[None]:
    """While active, ``bridge.enable_compatibility_mode()`` processes the weights frugally (module doc)."""
    from transformer_lens.weight_processing import ProcessWeights

    originals = {name: ProcessWeights.__dict__.get(name) for name in ("process_weights", *COPYING_STEPS)}
    if any(v is None for v in originals.values()):  # another TransformerLens: process the ordinary way
        yield
        return
    handed: dict[str, Any] = {}  # parameter name -> the parameter, now a placeholder
    state = {"inside": False}

    def consuming(step: str):
        fn = originals[step].__func__

        def run(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
            if not state["inside"] or type(state_dict) is not dict:
                return fn(state_dict, *args, **kwargs)
            moved = _Consumed(state_dict)
            state_dict.clear()  # the caller's name for it is rebound to the result; nothing else reads it
            return fn(moved, *args, **kwargs)

        return staticmethod(run)

    def process_weights(state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        storages = {v.untyped_storage().data_ptr() for v in state_dict.values() if hasattr(v, "untyped_storage")}
        for name, param in bridge.named_parameters():
            if param.untyped_storage().data_ptr() in storages and param.numel() > 1:
                param.data = _placeholder(param)
                handed[name] = param
        state["inside"] = True
        try:
            return originals["process_weights"].__func__(state_dict, *args, **kwargs)
        finally:
            state["inside"] = False

    ProcessWeights.process_weights = staticmethod(process_weights)
    for step in COPYING_STEPS:
        setattr(ProcessWeights, step, consuming(step))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(ProcessWeights, name, fn)
    live = dict(bridge.named_parameters())
    left = [n for n, p in live.items() if _is_placeholder(p) and not _stale_fused_qkv(n)]
    if left:
        raise NotReplaced(f"{len(left)} weight(s) were not replaced by processed ones, e.g. {left[0]}")


# -- glibc's allocator -----------------------------------------------------------------------------
# By default glibc serves a block of more than its "mmap threshold" with its own mmap (returned to the
# system when freed) and smaller ones from its heap (kept by the process when freed, for reuse). The
# threshold moves up to the largest block freed so far, at most 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX on
# 64-bit). Loading a model allocates and frees every weight two or three times in blocks of 1-32 MiB;
# from the heap, what is freed is not reused in order and the process grows by up to the weights'
# size again (measured: a load peak of 3.3-4.2 GiB for gpt2-medium, varying from run to run, against
# 2.5 GiB with every block of 1 MiB or more mmapped).

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LOAD_MMAP_THRESHOLD = 1 << 20
# where glibc's own threshold settles in a long run; a setting (mallopt) stops it moving, so after the
# load it is set here, or where a later stage asked for (tune_malloc)
_steady = {"mmap": 32 << 20, "trim": None}


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc(mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """Set glibc's mmap (and trim) threshold for the rest of the process; False where there is no glibc."""
    libc = _libc()
    if libc is None:
        return False
    _steady.update(mmap=int(mmap_threshold), trim=trim_threshold)
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)))
    if trim_threshold is not None:
        ok = bool(libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))) and ok
    return ok


@contextlib.contextmanager
def blocks_returned(threshold: int = LOAD_MMAP_THRESHOLD) -> Iterator[None]:
    """While active, every block of ``threshold`` bytes or more is mmapped, so that it goes back to the system
    as soon as it is freed; afterwards the steady threshold (above) is set again."""
    libc = _libc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, int(threshold))
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, _steady["mmap"])


def _forget_pattern(module: Any, args: Any, output: Any) -> None:
    module._pattern = None


def forget_patterns(bridge: Any) -> int:
    """Make every attention bridge drop, when its call returns, the pattern it keeps of that call.

    TransformerLens' split-QKV attention bridges store their last ``[batch, heads, pos, pos]`` pattern
    in ``_pattern`` (``_process_output``) and read it nowhere; kept, one per layer, they add up over a
    pass: 0.4 GiB during a task's clean-and-corrupted pass on gpt2-medium, held until the next pass.
    A forward hook clears it once ``hook_pattern`` and the module's output have had it. Returns the
    number of modules hooked."""
    n = 0
    for module in bridge.modules():
        if hasattr(module, "_pattern"):
            module.register_forward_hook(_forget_pattern)
            n += 1
    return n


def no_mkl_buffer_cache() -> None:
    """Switch off MKL's memory manager, which keeps the buffers of every large matrix product for reuse and
    never hands them back: on the CPU it held 0.7-1.2 GiB more than the tensors alive during a task's
    clean-and-corrupted pass on gpt2-medium (measured: +2.65 GiB over the weights with it, +1.93 without;
    the time the same within noise). MKL reads ``MKL_DISABLE_FAST_MM`` when it allocates, so setting it
    now works for the rest of the process; a value already set (MKL_DISABLE_FAST_MM=0) is left alone."""
    import os

    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")


def release_freed_memory() -> None:
    """Garbage-collect, then hand freed memory back to the system: glibc's ``malloc_trim`` (the free pages
    inside its heap, not only at its top) and CUDA's cached blocks."""
    import gc

    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
