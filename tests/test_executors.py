"""The Ray executor on a local cluster, and stores that are not local folders."""

from __future__ import annotations

import importlib.util
import shutil

import duckdb
import pytest

from support import FAST, broken_models, run_wiki
from wiki_builder.store import read_record, score_files, write_record
from wiki_builder.store.parquet import ModelRecord, open_store

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'head-wiki[ray]')")


def scores(root):
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    try:
        return con.execute("SELECT model, layer, head, metric, value FROM scores ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.mark.integration
@needs_ray
def test_ray_matches_local_and_records_failures(tmp_path, constructed_dir):
    models = []
    for name in ("ray-a", "ray-b", "ray-c"):
        shutil.copytree(constructed_dir, tmp_path / name)
        models.append(str(tmp_path / name))
    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    run_wiki("build", "--models", ",".join(models), "--no-site", *FAST, "--root", str(local_root))
    _, broken = broken_models(tmp_path, constructed_dir)
    store = (tmp_path / "shared-store").as_uri()  # a pyarrow filesystem URI, as a cluster would use
    proc = run_wiki("build", "--models", ",".join(models + [str(broken[1])]), "--no-site", *FAST, "--executor", "ray",
                    "--store", store, "--root", str(ray_root), env={"HEADWIKI_RAY_CPUS": "2"}, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "shared-store").iterdir()) == ["ray-a.parquet", "ray-b.parquet", "ray-c.parquet"]
    assert scores(ray_root) == scores(local_root)
    con = duckdb.connect(str(ray_root / "data" / "wiki.duckdb"), read_only=True)
    runs = dict(con.execute("SELECT model, status FROM runs").fetchall())
    error = con.execute("SELECT error FROM runs WHERE status = 'failed'").fetchone()[0]
    assert runs == {"ray-a": "ok", "ray-b": "ok", "ray-c": "ok", "alien-arch": "failed"}
    assert "no-such-architecture" in error
    # the database can be rebuilt from the shared store alone
    (ray_root / "data" / "wiki.duckdb").unlink()
    run_wiki("db", "rebuild", "--store", store, "--root", str(ray_root))
    assert scores(ray_root) == scores(local_root)


@pytest.mark.unit
def test_store_on_a_non_local_filesystem(tmp_path):
    """Write, list and read model files through a pyarrow filesystem that is not the local disk."""
    record = ModelRecord(model={"model": "m", "n_layers": 1, "n_heads": 1},
                         rows=[{"model": "m", "layer": 0, "head": 0, "metric": "induction", "value": 0.5, "metric_version": "1", "detail": None}],
                         provenance=[{"model": "m", "metric": "induction", "metric_version": "1"}])
    uri = "memory://bucket/scores"
    path = write_record(tmp_path, "m", record, store=uri)
    assert path == "memory://bucket/scores/m.parquet"
    assert score_files(tmp_path, uri) == [path]
    back = read_record(path)
    assert back.rows[0]["value"] == 0.5 and back.model["model"] == "m"
    fs, base = open_store(uri)
    assert [i.base_name for i in fs.get_file_info(__import__("pyarrow.fs", fromlist=["FileSelector"]).FileSelector(base))] == ["m.parquet"]
    assert not (tmp_path / "scores").exists()  # nothing went to the local disk


@pytest.mark.integration
def test_bad_store_and_executor_are_refused(tmp_path):
    for args, needle in ((["--store", "nosuchscheme://x/y"], "not a storage location"), (["--executor", "spark"], "Unknown --executor")):
        proc = run_wiki("build", "--models", "toy-gpt2", *args, "--root", str(tmp_path), check=False)
        assert proc.returncode == 2 and needle in " ".join(proc.stderr.split())
