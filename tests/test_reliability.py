"""The batch job can be trusted: resumable after kill -9, failures isolated, bad input refused, reproducible."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import duckdb
import pytest

from support import FAST, REPO, broken_models, run_wiki
from wiki_builder.faults import POINTS

pytestmark = pytest.mark.integration  # every test here runs real `wiki build`s in subprocesses


def two_models(tmp_path, constructed_dir):
    a, b = tmp_path / "models" / "alpha", tmp_path / "models" / "beta"
    shutil.copytree(constructed_dir, a)
    shutil.copytree(constructed_dir, b)
    return f"{a},{b}"


def snapshot(root):
    """What a user can see: every score row, and the sanity of the database."""
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    rows = con.execute("SELECT model, layer, head, metric, value FROM scores ORDER BY ALL").fetchall()
    dupes = con.execute("SELECT count(*) FROM (SELECT model, layer, head, metric FROM scores GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    models = [r[0] for r in con.execute("SELECT model FROM models ORDER BY model").fetchall()]
    con.close()
    return rows, dupes, models


@pytest.fixture(scope="module")
def reference(tmp_path_factory, constructed_dir):
    root = tmp_path_factory.mktemp("reference")
    models = two_models(root, constructed_dir)
    run_wiki("build", "--models", models, "--no-site", *FAST, "--root", str(root))
    return models, snapshot(root)


@pytest.mark.parametrize("point", POINTS)
def test_kill_and_resume(tmp_path, reference, point):
    models, (ref_rows, _, ref_models) = reference
    root = tmp_path / "wiki"
    killed = run_wiki("build", "--models", models, "--no-site", *FAST, "--root", str(root),
                      env={"HEADWIKI_KILL_AT": point, "HEADWIKI_KILL_MODEL": "beta"}, check=False)
    assert killed.returncode == -9, killed.stderr
    rerun = run_wiki("build", "--models", models, "--no-site", *FAST, "--root", str(root))
    assert "alpha" in rerun.stdout
    rows, dupes, names = snapshot(root)
    assert dupes == 0 and names == ref_models == ["alpha", "beta"]
    assert rows == ref_rows
    assert not list((root / "data" / "scores").glob(".*tmp*"))


def test_kill_at_a_random_moment(tmp_path, reference):
    """A real `kill -9` from outside, mid-run, then a rerun completes the work."""
    models, (ref_rows, _, _) = reference
    root = tmp_path / "wiki"
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "wiki_builder.cli", "build", "--models", models, "--no-site", *FAST, "--root", str(root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (root / "data" / "scores" / "alpha.parquet").exists():
        time.sleep(0.05)
    proc.kill()  # SIGKILL, while beta is being scored or written
    proc.wait()
    run_wiki("build", "--models", models, "--no-site", *FAST, "--root", str(root))
    rows, dupes, _ = snapshot(root)
    assert dupes == 0 and rows == ref_rows


def test_stored_work_is_skipped_and_force_recomputes(tmp_path, constructed_dir):
    root = tmp_path / "wiki"
    run_wiki("build", "--models", str(constructed_dir), "--no-site", "--metrics", "induction", "--root", str(root))
    second = run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--root", str(root))
    assert "ok constructed" in " ".join(second.stdout.split())
    third = run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--root", str(root))
    assert "skipped constructed (already stored)" in " ".join(third.stdout.split())
    forced = run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--force", "--root", str(root))
    assert "ok constructed" in " ".join(forced.stdout.split())
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    runs = con.execute("SELECT status, families FROM runs ORDER BY started_at, rowid").fetchall()
    assert [r[0] for r in runs] == ["ok", "ok", "skipped", "ok"]
    assert runs[0][1] == "induction" and "induction" not in runs[1][1].split(",")  # only the missing families
    assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 4 * len(con.execute("SELECT DISTINCT metric FROM scores").fetchall())


def test_one_failing_model_does_not_stop_the_others(tmp_path, constructed_dir):
    expect, paths = broken_models(tmp_path, constructed_dir)
    root = tmp_path / "wiki"
    models = ",".join([str(paths[0]), str(constructed_dir), str(paths[1]), str(paths[2])])
    proc = run_wiki("build", "--models", models, *FAST, "--root", str(root), check=False)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    assert "ok constructed" in out and "3 of 4 model(s) failed" in " ".join(proc.stderr.split())
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    assert [r[0] for r in con.execute("SELECT model FROM models").fetchall()] == ["constructed"]
    failed = dict(con.execute("SELECT model, error FROM runs WHERE status = 'failed'").fetchall())
    assert set(failed) == set(expect)
    for model, needle in expect.items():
        assert needle in failed[model], failed[model]
    assert (root / "site" / "index.html").is_file()  # the good model's site was still built


def test_a_model_that_cannot_fit_is_refused_before_loading(tmp_path, constructed_dir):
    proc = run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--root", str(tmp_path),
                    env={"HEADWIKI_MEMORY_LIMIT_GB": "0.001"}, check=False)
    assert proc.returncode == 1
    text = " ".join(proc.stdout.split())
    assert "needs about" in text and "GiB" in text and "free" in text


def test_corrupt_parquet_is_named_with_the_repair(tmp_path, constructed_dir):
    root = tmp_path / "wiki"
    run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--root", str(root))
    bad = root / "data" / "scores" / "broken.parquet"
    bad.write_bytes(b"PAR1 garbage")
    before = (root / "data" / "wiki.duckdb").read_bytes()
    for args in (["build", "--models", str(constructed_dir), "--no-site", *FAST], ["db", "rebuild"]):
        proc = run_wiki(*args, "--root", str(root), check=False)
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and str(bad) in text and "wiki db rebuild" in text, text
    assert (root / "data" / "wiki.duckdb").read_bytes() == before
    bad.unlink()
    run_wiki("db", "rebuild", "--root", str(root))


def test_same_seed_same_scores(tmp_path, constructed_dir):
    def build(name, seed):
        root = tmp_path / name
        run_wiki("build", "--models", str(constructed_dir), "--no-site", *FAST, "--seed", str(seed), "--root", str(root))
        con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
        rows = con.execute("SELECT layer, head, metric, value FROM scores ORDER BY ALL").fetchall()
        prov = con.execute("SELECT DISTINCT seed, device, dtype, git_revision, transformer_lens_version FROM provenance").fetchall()
        return rows, prov

    a, prov = build("a", 7)
    b, _ = build("b", 7)
    c, _ = build("c", 8)
    assert a == b
    assert a != c
    assert prov[0][0] == 7 and prov[0][1] == "cpu" and prov[0][3]
