"""``wiki bench``: the task-ablation suite against TransformerLens' naive per-head loop.

On random-init GPT-2 models of gpt2-small and gpt2-medium shape (transformers' ``GPT2Config``
defaults, and ``n_embd=1024, n_layer=24, n_head=16``), booted with
``TransformerBridge.boot_transformers(name, hf_model=..., tokenizer=...)`` and put in
compatibility mode as ``wiki build`` does, with a synthetic word-level tokenizer of 50,257
words that contains the lexicon's words (so every task's prompts can be built):

* **engine**: the full suite as ``wiki build`` runs it: for every task (IOI, greater-than,
  sequence continuation, induction), the clean and corrupted runs, mean and resample ablation of
  every head (metric and KL) with the exact engine, the attribution-patching estimate and DLA.
  A random model does none of the tasks, so the applicability check is skipped (forced).
* **naive**: ``transformer_lens.patching`` (``generic_activation_patch`` with the
  ``attn.hook_z`` head setter, i.e. ``get_act_patch_attn_head_out_all_pos``), one full forward
  pass per head, task and kind, with the same metric mapping (task metric and KL). Its cost per
  head does not depend on the head, so by default it runs on a sample of heads spread over the
  layers and the full loop's time is extrapolated (``--naive-heads 0`` runs every head).

It checks that both give the same ablated metric and KL (max |diff| < 1e-4 on the CPU), and
prints times, the ratio, the peak memory and the correlation of attribution patching with
exact ablation.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks.table import TASKS

SHAPES: dict[str, dict[str, int]] = {
    "gpt2-small": {},  # GPT2Config defaults: 12 layers, 12 heads, d_model 768
    "gpt2-medium": {"n_embd": 1024, "n_layer": 24, "n_head": 16},
    "tiny": {"n_embd": 64, "n_layer": 2, "n_head": 4},  # --quick, for CI
}
VOCAB_SIZE = 50257
TOLERANCE = {"cpu": 1e-4, "cuda": 1e-3}
KINDS = ("mean", "resample")


def synthetic_tokenizer(directory: Path, size: int = VOCAB_SIZE):
    """A word-level tokenizer of ``size`` words: the lexicon's words, then filler words w<i>; BOS is the last id (as GPT-2's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from .. import lexicon as L

    words: list[str] = []
    for group in (L.NAMES, L.IOI_PLACES, L.IOI_OBJECTS, L.IOI_VERBS, L.GREATER_THAN_NOUNS, L.DIGITS, L.NUMBERS, L.TWO_DIGIT,
                  L.CENTURIES, L.NUMBER_WORDS, L.ORDINALS, L.MONTHS, L.DAYS, L.MONTH_PREFIXES, L.DAY_PREFIXES, L.LETTERS, L.FILLER,
                  " ".join(L.IOI_TEMPLATES + [L.GREATER_THAN_TEMPLATE]).replace("{", " {").split()):
        words.extend(w for w in group if not w.startswith("{"))
    words = ["<unk>"] + list(dict.fromkeys(words))
    words += [f"w{i}" for i in range(size - 1 - len(words))]
    vocab = {w: i for i, w in enumerate(words)}
    vocab["<|endoftext|>"] = size - 1
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<unk>", pad_token="<|endoftext|>")
    fast.save_pretrained(directory)
    # TransformerBridge re-reads the tokenizer from its name_or_path, so it must come from disk
    return PreTrainedTokenizerFast.from_pretrained(directory)


def random_bridge(shape: str, device: str, seed: int, tokenizer: Any):
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB_SIZE, **SHAPES[shape])
    model = GPT2LMHeadModel(cfg).eval()
    bridge = TransformerBridge.boot_transformers(f"random-{shape}", hf_model=model, tokenizer=tokenizer, device=device)
    bridge.enable_compatibility_mode()
    bridge.eval()
    return bridge


class PeakMemory:
    """Peak resident memory of this process during a block, and CUDA's peak.

    On Linux the kernel's own high-water mark is reset on entry (``5`` to ``/proc/self/clear_refs``)
    and read on exit (``VmHWM``), so nothing runs beside the timed work. Elsewhere a thread samples
    the RSS every 50 ms: sampling every few ms cost the engine's two OpenMP threads about a tenth
    of their speed (measured), more than it cost the naive loop.
    """

    POLL_SECONDS = 0.05

    def __init__(self, device: str):
        self.device = device
        self.peak = self.base = 0
        self.cuda_peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kernel_peak = False  # the kernel's high-water mark was reset on entry

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @staticmethod
    def _reset_high_water_mark() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _high_water_mark() -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return None

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL_SECONDS):
            self.peak = max(self.peak, self.rss())

    @staticmethod
    def release() -> None:
        """Give freed heap memory back to the OS, so that the next block's RSS growth is its own."""
        import ctypes
        import gc

        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> PeakMemory:
        import torch

        self.release()
        self.base = self.peak = self.rss()
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        self._kernel_peak = self._reset_high_water_mark() and self._high_water_mark() is not None
        if not self._kernel_peak:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, self.rss(), (self._high_water_mark() or 0) if self._kernel_peak else 0)
        self.cuda_peak = torch.cuda.max_memory_allocated() if self.device.startswith("cuda") else None

    def describe(self) -> str:
        text = f"peak RSS {self.peak / 2**20:.0f} MiB (+{(self.peak - self.base) / 2**20:.0f} MiB)"
        if self.cuda_peak is not None:
            text += f", CUDA peak {self.cuda_peak / 2**20:.0f} MiB"
        return text


def sample_heads(n_layers: int, n_heads: int, k: int, seed: int) -> list[tuple[int, int]]:
    """``k`` heads spread evenly over the layers (all heads when k <= 0 or k >= n_layers * n_heads)."""
    total = n_layers * n_heads
    if k <= 0 or k >= total:
        return [(l, h) for l in range(n_layers) for h in range(n_heads)]
    rng = random.Random(seed)
    layers = np.linspace(0, n_layers - 1, k).round().astype(int)
    return sorted({(int(l), rng.randrange(n_heads)) for l in layers})


def bench_shape(shape: str, device: str, seed: int, n_prompts: int, tokenizer: Any, naive_heads: int, budget_gb: float | None,
                console: Any) -> dict[str, Any]:
    import torch

    from ..models.tokens import bos_id
    from ..tasks import engine as A
    from ..tasks.prompts import build_task
    from ..tasks.score import score_task

    t0 = time.perf_counter()
    bridge = random_bridge(shape, device, seed, tokenizer)
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    console.print(f"[bold]{shape}[/]: {n_layers} layers x {n_heads} heads, d_model {bridge.cfg.d_model}, vocab {bridge.cfg.d_vocab} "
                  f"(random init, booted in {time.perf_counter() - t0:.1f}s)", highlight=False)
    # every task of the table, with its short example's builder options (the induction task's period 8)
    tasks = [build_task(t.name, bridge.tokenizer, n=n_prompts, seed=seed, bos=bos_id(bridge), n_ctx=int(bridge.cfg.n_ctx),
                        d_vocab=int(bridge.cfg.d_vocab), **t.example) for t in TASKS]
    missing = [t.name for t in tasks if not t.applicable_prompts]
    if missing:
        raise RuntimeError(f"The synthetic tokenizer could not express {missing}: {[t.reason for t in tasks if not t.applicable_prompts]}")
    budget = A.memory_budget(device, budget_gb)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    # engine: the full suite, as wiki build runs it (forced: a random model does no task)
    scores = {}
    with PeakMemory(device) as engine_mem:
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        for task in tasks:
            scores[task.name] = score_task(bridge, task, list(KINDS), method="exact", force=True, budget_bytes=budget, seed=seed)
        sync()
        engine_wall, engine_cpu = time.perf_counter() - wall, time.process_time() - cpu
    # naive: TransformerLens' per-head loop on the same prompts (and the same clean and corrupted runs)
    heads = sample_heads(n_layers, n_heads, naive_heads, seed)
    every = len(heads) == n_layers * n_heads
    max_diff = 0.0
    with PeakMemory(device) as naive_mem:
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        for task in tasks:
            sc = scores[task.name]
            sweep = A.naive_sweep(bridge, sc.runs, KINDS, None if every else heads)
            for kind in KINDS:
                for (l, h) in heads:
                    max_diff = max(max_diff, abs(sweep.metric[kind][l, h] - sc.exact.metric[kind][l, h]),
                                   abs(sweep.kl[kind][l, h] - sc.exact.kl[kind][l, h]))
        sync()
        loop_wall, loop_cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = (n_layers * n_heads) / len(heads)  # the naive cost per head does not depend on the head
    prep_wall = sum(scores[t.name].runs.seconds for t in tasks)  # clean + corrupted runs: the naive loop needs them too
    prep_cpu = sum(scores[t.name].runs.cpu_seconds for t in tasks)
    naive_wall, naive_cpu = prep_wall + loop_wall * scale, prep_cpu + loop_cpu * scale
    tol = TOLERANCE["cuda" if device.startswith("cuda") else "cpu"]
    corr = {t.name: scores[t.name].setup.get("attribution_vs_exact_pearson") for t in tasks}
    res = {
        "shape": shape, "n_layers": n_layers, "n_heads": n_heads, "d_model": int(bridge.cfg.d_model), "device": device,
        "threads": torch.get_num_threads(), "prompts": n_prompts,
        "prompt_lengths": {t.name: int(t.clean.shape[1]) for t in tasks},
        "naive_forward_passes": len(TASKS) * len(KINDS) * n_layers * n_heads,
        "engine_wall_s": round(engine_wall, 2), "engine_cpu_s": round(engine_cpu, 2),
        "naive_heads_run": len(heads), "naive_extrapolated": not every,
        "naive_measured_wall_s": round(prep_wall + loop_wall, 2), "naive_wall_s": round(naive_wall, 2), "naive_cpu_s": round(naive_cpu, 2),
        "ratio_wall": round(naive_wall / engine_wall, 2), "ratio_cpu": round(naive_cpu / max(engine_cpu, 1e-9), 2),
        "max_abs_diff": float(max_diff), "tolerance": tol, "agree": bool(max_diff < tol),
        "engine_memory": engine_mem.describe(), "naive_memory": naive_mem.describe(),
        "engine_peak_rss_mb": round(engine_mem.peak / 2**20), "naive_peak_rss_mb": round(naive_mem.peak / 2**20),
        "engine_cuda_peak_mb": None if engine_mem.cuda_peak is None else round(engine_mem.cuda_peak / 2**20),
        "naive_cuda_peak_mb": None if naive_mem.cuda_peak is None else round(naive_mem.cuda_peak / 2**20),
        "attribution_vs_exact_pearson": corr,
        "copies_per_batch": {t.name: scores[t.name].exact.info.get("copies_per_batch") for t in tasks},
        "replay_check": max(scores[t.name].exact.info.get("replay_check_max_abs_diff") or 0.0 for t in tasks),
    }
    del bridge, scores
    PeakMemory.release()
    return res


def run_bench(shapes: list[str], device: str, seed: int, n_prompts: int, console: Any, naive_heads: int = 12,
              threads: int = 0, budget_gb: float | None = None) -> dict:
    """Time the full suite against the naive per-head loop for each shape; returns the numbers it printed."""
    import torch

    from ..models.load import pick_device

    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise ValueError(f"Unknown shape(s) {unknown}. Known: {', '.join(SHAPES)}")
    dev = pick_device(device)
    if threads > 0:
        torch.set_num_threads(threads)
    console.print(f"wiki bench: device {dev}, {torch.get_num_threads()} CPU thread(s), {n_prompts} prompt(s) per task, tasks "
                  f"{', '.join(t.name for t in TASKS)}, ablations {', '.join(KINDS)} (metric + KL), plus attribution patching and DLA", highlight=False)
    results = []
    with tempfile.TemporaryDirectory(prefix="wiki-bench-") as tmp:
        tokenizer = synthetic_tokenizer(Path(tmp) / "tokenizer")
        for shape in shapes:
            r = bench_shape(shape, dev, seed, n_prompts, tokenizer, naive_heads, budget_gb, console)
            results.append(r)
            how = (f"extrapolated from {r['naive_heads_run']} of {r['n_layers'] * r['n_heads']} heads, {r['naive_measured_wall_s']:.1f}s measured"
                   if r["naive_extrapolated"] else "every head")
            corr = ", ".join(f"{t} " + "/".join("-" if v is None else f"{v:.2f}" for v in (c or {}).values()) for t, c in r["attribution_vs_exact_pearson"].items())
            head = "CPU time" if dev == "cpu" else "wall"
            ratio = r["ratio_cpu"] if dev == "cpu" else r["ratio_wall"]
            console.print(f"  engine (full suite): {r['engine_wall_s']:.1f}s wall, {r['engine_cpu_s']:.1f}s CPU", highlight=False)
            console.print(f"  naive loop ({r['naive_forward_passes']} forward passes; {how}): {r['naive_wall_s']:.1f}s wall, "
                          f"{r['naive_cpu_s']:.1f}s CPU", highlight=False)
            console.print(f"  ratio: [bold]{ratio:.1f}x[/] ({head}; wall-clock {r['ratio_wall']:.1f}x)", highlight=False)
            console.print(f"  agreement: max |diff| {r['max_abs_diff']:.2e} over {r['naive_heads_run']} heads x {len(TASKS)} tasks x "
                          f"{len(KINDS)} kinds (metric and KL) -> {'OK' if r['agree'] else 'MISMATCH'} (tolerance {r['tolerance']:g}); "
                          f"replay check {r['replay_check']:.1e}", highlight=False)
            console.print(f"  memory: engine {r['engine_memory']}; naive {r['naive_memory']}", highlight=False)
            console.print(f"  attribution patching vs exact (Pearson r over heads, mean/resample): {corr}", highlight=False)
    return {"device": dev, "seed": seed, "prompts": n_prompts, "results": results}
