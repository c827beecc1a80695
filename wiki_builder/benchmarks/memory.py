"""Memory and time of the user's own command on real-size stand-ins.

Builds the stand-ins (real config, real tokenizer, random weights; ``models.standins``), puts them in
a Hugging Face cache under their hub ids, and runs ``HF_HUB_OFFLINE=1 wiki build --models ...`` as a
separate process, exactly as a user would. The build records each model's peak memory (and each
family's) in ``runs`` and ``provenance``; this reads them back and sets them beside the estimate
``wiki models`` gives and the fp32 weight bytes, so both targets are checked on numbers, not guesses:
the estimate never below the measured peak, and the peak at most ``WEIGHTS_FACTOR`` x the weights.

``force_tasks`` (benchmark only) scores the tasks on the random weights, which rightly do none of
them, so that the ablation engine's time and memory at real size are measured too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# TransformerLens name -> hub id of the stand-in it resolves to
MODELS = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "pythia-70m": "EleutherAI/pythia-70m",
          "pythia-160m": "EleutherAI/pythia-160m"}
WEIGHTS_FACTOR = 3.0  # target: the build's peak at most this many times the fp32 weight bytes


@dataclass
class ModelMemory:
    model: str
    n_params: int
    seconds: float
    peak: int
    estimate: int
    status: str
    families: list[dict] = field(default_factory=list)  # family, seconds, peak, status

    @property
    def weight_bytes(self) -> int:
        return 4 * self.n_params


@dataclass
class MemoryReport:
    command: str
    wall_seconds: float
    exit_code: int
    models: list[ModelMemory]

    def problems(self) -> list[str]:
        """Every model whose peak exceeds its estimate, and gpt2-medium's peak over the weights target."""
        out = [f"{m.model}: measured peak {m.peak / 2**30:.2f} GiB above its estimate {m.estimate / 2**30:.2f} GiB"
               for m in self.models if m.peak > m.estimate]
        out += [f"{m.model}: peak {m.peak / m.weight_bytes:.2f}x the fp32 weights (target <= {WEIGHTS_FACTOR:g}x)"
                for m in self.models if m.model == "gpt2-medium" and m.peak > WEIGHTS_FACTOR * m.weight_bytes]
        return out


def prepare(names: list[str], work: Path) -> Path:
    """Build the named stand-ins once (kept in ``work`` for the next run) and return the HF_HOME holding them."""
    from ..models.standins import make_standin

    hf_home = work / "hf_home"
    for name in names:
        hub_id = MODELS[name]
        make_standin(hub_id, work / "standins" / hub_id.replace("/", "--"), hf_home=hf_home)
    return hf_home


def run(names: list[str], work: Path, force_tasks: bool = False, task_prompts: int = 32,
        metrics: str | None = None) -> MemoryReport:
    """Run the user's command on the stand-ins in a fresh root and read back what it measured."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"No stand-in for {', '.join(unknown)}: choose from {', '.join(MODELS)}.")
    work.mkdir(parents=True, exist_ok=True)
    hf_home = prepare(names, work)
    root = work / f"root-{os.getpid()}-{int(time.time())}"
    args = ["build", "--models", ",".join(names), "--root", str(root), "--no-site", "--task-prompts", str(task_prompts)]
    if metrics:
        args += ["--metrics", metrics]
    if force_tasks:
        args.append("--force-tasks")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    cmd = [sys.executable, "-c", "from wiki_builder.cli import app; app()", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if not (root / "data" / "wiki.duckdb").exists():
        raise RuntimeError(f"The build wrote no database (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    models = read_back(root / "data" / "wiki.duckdb", names)
    shown = "HF_HUB_OFFLINE=1 wiki " + " ".join(a if a != str(root) else "<tmp>" for a in args)
    return MemoryReport(command=shown, wall_seconds=wall, exit_code=proc.returncode, models=models)


def read_back(db: Path, names: list[str]) -> list[ModelMemory]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = []
        for name in names:
            run_row = con.execute("SELECT seconds, peak_memory_bytes, estimated_memory_bytes, status FROM runs "
                                  "WHERE model = ? ORDER BY started_at DESC LIMIT 1", [name]).fetchone()
            n_params = con.execute("SELECT n_params FROM models WHERE model = ?", [name]).fetchone()
            fams = con.execute("SELECT family, max(seconds), max(peak_memory_bytes), min(status) FROM provenance "
                               "WHERE model = ? GROUP BY family ORDER BY min(rowid)", [name]).fetchall()
            if run_row is None:
                continue
            out.append(ModelMemory(model=name, n_params=int(n_params[0]) if n_params else 0, seconds=float(run_row[0] or 0),
                                   peak=int(run_row[1] or 0), estimate=int(run_row[2] or 0), status=str(run_row[3]),
                                   families=[{"family": f, "seconds": float(s or 0), "peak": int(p or 0), "status": st}
                                             for f, s, p, st in fams]))
        return out
    finally:
        con.close()


def as_json(report: MemoryReport) -> str:
    return json.dumps({"command": report.command, "wall_seconds": report.wall_seconds, "exit_code": report.exit_code,
                       "models": [{**m.__dict__, "weight_bytes": m.weight_bytes} for m in report.models],
                       "problems": report.problems()}, indent=2)
