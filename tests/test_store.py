"""The store: Parquet files, the DuckDB schema, the head_scores view, read-only queries, rebuilds."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from support import run_wiki
from wiki_builder.store import rebuild_db, score_files

pytestmark = pytest.mark.integration  # a real `wiki build` (built_wiki)


def columns(con, table):
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def test_schema(built_wiki):
    con = duckdb.connect(str(built_wiki / "data" / "wiki.duckdb"), read_only=True)
    assert {"model", "n_layers", "n_heads", "d_model", "d_head", "n_params", "source"} <= set(columns(con, "models"))
    assert columns(con, "scores")[:5] == ["model", "layer", "head", "metric", "value"]
    assert {"model", "metric", "metric_version", "transformer_lens_version", "torch_version", "device", "dtype", "seed", "seconds"} <= set(columns(con, "provenance"))
    assert set(columns(con, "head_scores")) >= {"model", "layer", "head", "induction", "prev_token", "duplicate_token"}
    n = con.execute("SELECT count(*) FROM head_scores").fetchone()[0]
    assert n == 4  # 2 layers x 2 heads, one row per head
    n_metrics = con.execute("SELECT count(DISTINCT metric) FROM scores").fetchone()[0]
    assert n_metrics >= 3
    assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 4 * n_metrics
    top = con.execute("SELECT layer, head FROM head_scores ORDER BY induction DESC LIMIT 1").fetchone()
    assert top == (1, 0)
    prov = con.execute("SELECT DISTINCT device, dtype, seed FROM provenance").fetchall()
    assert prov == [("cpu", "float32", 0)]


def test_parquet_file_carries_model_and_provenance(built_wiki):
    files = score_files(built_wiki / "data")
    assert [f.rsplit("/", 1)[-1] for f in files] == ["constructed.parquet"]
    table = pq.read_table(files[0])
    meta = json.loads(table.schema.metadata[b"headwiki"])
    assert meta["model"]["model"] == "constructed" and len(meta["provenance"]) >= 3
    stored = {p["metric"] for p in meta["provenance"] if p["status"] == "ok" and p["metric"] != "head_examples"}  # the corpus pass: no scores
    assert table.num_rows == 4 * len(stored)


def test_rebuild_gives_the_same_database(built_wiki, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(built_wiki / "data" / "scores", data / "scores")
    rebuild_db(data)
    a = duckdb.connect(str(built_wiki / "data" / "wiki.duckdb"), read_only=True)
    b = duckdb.connect(str(data / "wiki.duckdb"), read_only=True)
    q = "SELECT * FROM head_scores ORDER BY model, layer, head"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_query_formats(built_wiki):
    sql = "SELECT model, layer, head, value FROM scores WHERE metric = 'induction' ORDER BY value DESC LIMIT 2"
    csv_out = run_wiki("query", sql, "--format", "csv", "--root", str(built_wiki)).stdout.splitlines()
    assert csv_out[0] == "model,layer,head,value"
    model, layer, head, value = csv_out[1].split(",")
    assert (model, layer, head) == ("constructed", "1", "0") and float(value) > 0.99
    rows = json.loads(run_wiki("query", sql, "--format", "json", "--root", str(built_wiki)).stdout)
    assert rows[0]["layer"] == 1 and rows[0]["head"] == 0 and len(rows) == 2
    table = run_wiki("query", sql, "--root", str(built_wiki)).stdout
    assert "constructed" in table and "2 row(s)" in table


@pytest.mark.parametrize("sql,needle", [
    ("DELETE FROM scores", "read-only"),
    ("CREATE TABLE x (a INT)", "read-only"),
    ("SELEC * FROM scores", "query failed"),
    ("SELECT * FROM no_such_table", "query failed"),
])
def test_query_rejects_writes_and_bad_sql(built_wiki, sql, needle):
    proc = run_wiki("query", sql, "--root", str(built_wiki), check=False)
    assert proc.returncode == 2
    assert needle in " ".join(proc.stderr.split())
    con = duckdb.connect(str(built_wiki / "data" / "wiki.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM scores WHERE metric = 'induction'").fetchone()[0] == 4
