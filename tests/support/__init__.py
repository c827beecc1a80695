"""Shared by the tests (the only module they share): paths, the CLI runner, required models, broken models.

Importable as ``support`` because pyproject.toml's ``[tool.pytest.ini_options] pythonpath`` names tests/.
Submodules: ``support.constructed`` and ``support.constructed_ov`` (hand-written GPT-2s whose answers are
known by construction), ``support.sitekit`` (the site and browser tests' wikis and web server).

Tiers (pytest markers, registered in pyproject.toml; every test carries exactly one):
``unit`` (seconds; hand-built models only, no ``wiki build``), ``integration`` (the embedded zoo,
stories260K, real builds and CLI subprocess builds), ``browser`` (headless Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WIKI = [sys.executable, "-m", "wiki_builder.cli"]
EMBEDDED = REPO / "wiki_builder" / "models" / "embedded"
ZOO_NAMES = ["toy-gpt2", "toy-neox", "toy-llama"]  # the embedded zoo: every member ships with the package
SHARED = Path(os.environ.get("HEADWIKI_SHARED") or REPO.parent / "shared")
STORIES = SHARED / "models" / "stories260K"

# The attention families are quick and enough to exercise every write path.
FAST = ["--metrics", "induction,prev_token,duplicate_token"]


def run_wiki(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([*WIKI, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"wiki {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def embedded_dir(name: str) -> Path:
    """The shipped zoo model's directory. A missing one is a failure, never a skip: it ships with the package."""
    d = EMBEDDED / name
    assert (d / "config.json").is_file() and (d / "model.safetensors").is_file(), (
        f"embedded model {name!r} is missing from {d}: it ships with the package (restore it from git, "
        f"or retrain it with `python -m wiki_builder.zoo.train --model {name}`)")
    return d


def stories260k() -> tuple[Path, Path]:
    """The llama2.c stories260K checkpoint and tokenizer, kept read-only in the shared data folder beside the
    checkout (../shared/models/stories260K, or $HEADWIKI_SHARED/models/stories260K). Missing is a failure."""
    ckpt, tok = STORIES / "stories260K.bin", STORIES / "tok512.bin"
    assert ckpt.is_file() and tok.is_file(), (
        f"stories260K checkpoint not found at {STORIES} (stories260K.bin and tok512.bin): the tests need it; "
        "put the shared data folder beside the checkout or set HEADWIKI_SHARED to it")
    return ckpt, tok


def broken_models(tmp_path: Path, constructed_dir: Path) -> tuple[dict[str, str], list[Path]]:
    """Three models that must fail, each with the text its error must contain: NaN weights, an unknown
    architecture, a corrupt weights file."""
    import torch
    from safetensors.torch import load_file, save_file

    nan = tmp_path / "nan-model"
    shutil.copytree(constructed_dir, nan)
    weights = load_file(nan / "model.safetensors")
    key = next(k for k in weights if k.endswith("wpe.weight"))
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, nan / "model.safetensors", metadata={"format": "pt"})
    alien = tmp_path / "alien-arch"
    alien.mkdir()
    (alien / "config.json").write_text(json.dumps({"model_type": "no-such-architecture", "architectures": ["NoSuchForCausalLM"]}))
    corrupt = tmp_path / "corrupt-weights"
    shutil.copytree(constructed_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    return {"nan-model": "not finite", "alien-arch": "no-such-architecture", "corrupt-weights": "corrupt-weights"}, [nan, alien, corrupt]
