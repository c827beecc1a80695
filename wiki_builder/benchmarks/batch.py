"""``wiki bench-batch``: seconds per model and the share of the device's peak throughput that
the whole batch job (``wiki build``'s scoring of one model: every family, examples included) uses.

Models are random-init GPT-2s of gpt2-small and gpt2-medium shape with a synthetic 50,257-word
tokenizer, saved as local Hugging Face directories and scored through the same
``build.score_model`` as ``wiki build``. Floating-point operations are counted by
``torch.utils.flop_counter.FlopCounterMode`` around the scoring (matmuls and attention; the
elementwise work it does not count is small next to them). The peak is measured on the spot
with a large matmul in the dtype the forward passes use, and, for GPUs whose dense tensor-core
peak is published, that figure is printed beside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

# Dense (no sparsity) peaks from the vendors' data sheets, TFLOP/s.
PUBLISHED_PEAK = {
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
}


def measured_peak(device: str, dtype: str, seconds: float = 1.0) -> float:
    """TFLOP/s of a large square matmul on this device, in this dtype."""
    import torch

    n = 4096 if device.startswith("cuda") else 1024
    t = getattr(torch, dtype)
    a = torch.randn(n, n, device=device, dtype=t)
    b = torch.randn(n, n, device=device, dtype=t)
    for _ in range(2):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if device.startswith("cuda") and count % 10 == 0:
            torch.cuda.synchronize()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e12


def published_peak(device: str, dtype: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    for key, peaks in PUBLISHED_PEAK.items():
        if key in name:
            return peaks.get(dtype)
    return None


def make_model_dir(shape: str, root: Path, seed: int) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from .ablation import SHAPES, VOCAB_SIZE, synthetic_tokenizer

    out = root / f"random-{shape}"
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB_SIZE, **SHAPES[shape])).save_pretrained(out)
    synthetic_tokenizer(out)
    return out


def run_batch_bench(shapes: list[str], device: str, dtype: str, seed: int, console: Any,
                    task_prompts: int = 32) -> list[dict[str, Any]]:
    import torch
    from rich.table import Table
    from torch.utils.flop_counter import FlopCounterMode

    from ..build import score_model
    from ..families import registry
    from ..models.load import pick_device, resolve_dtype
    from ..models.resolve import ModelSpec
    from ..scores.base import BuildOptions, RunContext
    from ..workspace import Workspace

    dev = pick_device(device)
    policy = resolve_dtype(dtype, dev)
    forward_dtype = "bfloat16" if policy == "mixed-bf16" else policy
    peak = measured_peak(dev, forward_dtype)
    vendor = published_peak(dev, forward_dtype)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        for shape in shapes:
            path = make_model_dir(shape, Path(tmp), seed)
            spec = ModelSpec(name=f"random-{shape}", source="local", location=str(path))
            if dev.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            counter = FlopCounterMode(display=False)
            start = time.perf_counter()
            with counter:
                record = score_model(spec, ws, dev, policy, list(registry()),
                                     RunContext(seed=seed, options=BuildOptions(task_prompts=task_prompts), force_tasks=True))
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            flops = counter.get_total_flops()
            achieved = flops / seconds / 1e12
            rows.append({"shape": shape, "n_params": record.model["n_params"], "seconds": seconds, "tflop": flops / 1e12,
                         "achieved_tflops": achieved, "measured_peak_tflops": peak, "share_of_measured": achieved / peak,
                         "published_peak_tflops": vendor, "share_of_published": achieved / vendor if vendor else None,
                         "gpu_peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else None})
    name = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    table = Table("model", "params", f"seconds ({task_prompts} prompts/task)", "TFLOP", "TFLOP/s", "share of measured peak", "share of published peak",
                  title=f"wiki build, one model end to end, on {name}, {policy} (forward {forward_dtype}); "
                        f"measured matmul peak {peak:.2f} TFLOP/s" + (f", published {vendor:g}" if vendor else ""))
    for r in rows:
        table.add_row(r["shape"], f"{r['n_params'] / 1e6:.0f}M", f"{r['seconds']:.1f}", f"{r['tflop']:.2f}", f"{r['achieved_tflops']:.3f}",
                      f"{100 * r['share_of_measured']:.1f}%", "n/a" if r["share_of_published"] is None else f"{100 * r['share_of_published']:.2f}%")
    console.print(table)
    return rows
