"""The CLI answers at once and in a fresh directory builds what it needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import REPO, run_wiki


@pytest.mark.unit
def test_help_does_not_import_torch():
    code = "import sys, wiki_builder.cli as c; assert 'torch' not in sys.modules and 'transformer_lens' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    proc = run_wiki("--help")
    for command in ("build", "query", "serve", "models", "convert-llama2c", "db"):
        assert command in proc.stdout


@pytest.mark.integration
def test_models_lists_embedded_and_official_names(tmp_path):
    out = run_wiki("models", "--root", str(tmp_path)).stdout
    assert "toy-gpt2" in out and "gpt2-small" in out and "embedded" in out


@pytest.mark.unit
def test_bad_options_fail_cleanly(tmp_path):
    for args, needle in ((["--dtype", "float8"], "Unknown --dtype"), (["--device", "tpu"], "Unknown --device"),
                         (["--models", ""], "No model names"), (["--metrics", "nope"], "Unknown metric")):
        proc = run_wiki("build", *args, "--root", str(tmp_path), check=False)
        assert proc.returncode == 2, proc.stderr
        assert needle in " ".join(proc.stderr.split())
    assert not (tmp_path / "data").exists()


@pytest.mark.unit
def test_query_without_a_database(tmp_path):
    proc = run_wiki("query", "SELECT 1", "--root", str(tmp_path), check=False)
    assert proc.returncode == 2 and "wiki build" in proc.stderr
