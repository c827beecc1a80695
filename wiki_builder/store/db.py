"""The DuckDB database users query: tables ``models``, ``scores``, ``provenance``, ``metrics`` and the ``head_scores`` view.

The database is derived data: ``sync_model`` replaces one model's rows from its Parquet file
in one transaction, and ``rebuild_db`` recreates the whole file from the Parquet files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import duckdb
import numpy as np

from ..faults import crash_point
from .parquet import ModelRecord, read_record, score_files
from .runs import RUN_COLUMNS, read_runs

DB_NAME = "wiki.duckdb"

MODEL_COLUMNS = {
    "model": "VARCHAR PRIMARY KEY",
    "n_layers": "INTEGER",
    "n_heads": "INTEGER",
    "n_kv_heads": "INTEGER",
    "d_model": "INTEGER",
    "d_head": "INTEGER",
    "d_vocab": "INTEGER",
    "n_ctx": "INTEGER",
    "n_params": "BIGINT",
    "architecture": "VARCHAR",
    "positional_embedding": "VARCHAR",
    "family": "VARCHAR",
    "source": "VARCHAR",
    "location": "VARCHAR",
    "description": "VARCHAR",
    "estimated_memory_bytes": "BIGINT",
}
PROVENANCE_COLUMNS = {
    "model": "VARCHAR",
    "metric": "VARCHAR",
    "family": "VARCHAR",
    "metric_version": "VARCHAR",
    "status": "VARCHAR",
    "reason": "VARCHAR",
    "transformer_lens_version": "VARCHAR",
    "torch_version": "VARCHAR",
    "builder_version": "VARCHAR",
    "git_revision": "VARCHAR",
    "device": "VARCHAR",
    "dtype": "VARCHAR",
    "seed": "INTEGER",
    "seconds": "DOUBLE",
    "setup": "VARCHAR",
    "built_at": "TIMESTAMP",
}
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS models ({', '.join(f'{k} {v}' for k, v in MODEL_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS scores (model VARCHAR, layer INTEGER, head INTEGER, metric VARCHAR, value DOUBLE, metric_version VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS provenance ({', '.join(f'{k} {v}' for k, v in PROVENANCE_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{k} {v}' for k, v in RUN_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS attention_examples (model VARCHAR, example VARCHAR, layer INTEGER, head INTEGER, tokens VARCHAR[], pattern FLOAT[]);
CREATE TABLE IF NOT EXISTS metrics (metric VARCHAR PRIMARY KEY, family VARCHAR, version VARCHAR, title VARCHAR, kind VARCHAR, description VARCHAR, formula VARCHAR, reference VARCHAR, details VARCHAR, detail_fields VARCHAR);
"""


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def _create(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


def _refresh_metrics(con: duckdb.DuckDBPyConnection) -> None:
    from ..families import outputs

    from ..scores.base import fields_to_json

    con.execute("ALTER TABLE metrics ADD COLUMN IF NOT EXISTS detail_fields VARCHAR")  # databases made before it existed
    con.execute("DELETE FROM metrics")
    for oid, (m, title) in outputs().items():
        con.execute("INSERT INTO metrics (metric, family, version, title, kind, description, formula, reference, details, detail_fields) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [oid, m.id, m.version, title, m.kind, m.description, m.formula,
                                                              m.reference, m.details, json.dumps(fields_to_json(m.detail_fields))])


def _refresh_view(con: duckdb.DuckDBPyConnection) -> None:
    """``head_scores``: one row per head, one column per metric present in ``scores``."""
    from ..families import outputs

    present = [r[0] for r in con.execute("SELECT DISTINCT metric FROM scores ORDER BY metric").fetchall()]
    known = outputs()
    ordered = [m for m in known if m in present] + [m for m in present if m not in known]
    cols = "".join(f', max(value) FILTER (WHERE metric = \'{m}\') AS "{m}"' for m in ordered if m.replace("_", "").isalnum())
    con.execute(f"CREATE OR REPLACE VIEW head_scores AS SELECT model, layer, head{cols} FROM scores GROUP BY model, layer, head ORDER BY model, layer, head")


def _insert(con: duckdb.DuckDBPyConnection, record: ModelRecord) -> None:
    name = record.model["model"]
    for table in ("models", "scores", "provenance", "attention_examples"):
        con.execute(f"DELETE FROM {table} WHERE model = ?", [name])
    cols = list(MODEL_COLUMNS)
    con.execute(f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [record.model.get(c) for c in cols])
    if record.rows:
        import pyarrow as pa

        from .parquet import SCORE_SCHEMA

        arrow = pa.Table.from_pylist(record.rows, schema=SCORE_SCHEMA)  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("INSERT INTO scores SELECT model, layer, head, metric, value, metric_version, detail FROM arrow")
    for ex in record.examples:
        pats = np.asarray(ex["patterns"], dtype=np.float32)
        rows = [(name, ex["example"], l, h, list(ex["tokens"]), pats[l, h].ravel().tolist())
                for l in range(pats.shape[0]) for h in range(pats.shape[1])]
        con.executemany("INSERT INTO attention_examples VALUES (?, ?, ?, ?, ?, ?)", rows)
    pcols = list(PROVENANCE_COLUMNS)
    for row in record.provenance:
        values = [json.dumps(row[c]) if c == "setup" and not isinstance(row.get(c), str) else row.get(c) for c in pcols]
        con.execute(f"INSERT INTO provenance ({', '.join(pcols)}) VALUES ({', '.join('?' * len(pcols))})", values)


def sync_model(data_dir: Path, record: ModelRecord) -> None:
    """Replace one model's rows in the database, in one transaction."""
    path = db_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        _create(con)
        con.begin()
        try:
            _insert(con, record)
            crash_point("db_in_transaction", record.model.get("model"))
            _refresh_metrics(con)
            _refresh_view(con)
        except BaseException:
            con.rollback()
            raise
        con.commit()
    finally:
        con.close()


def insert_run(data_dir: Path, row: dict[str, Any]) -> None:
    """Add one line of the runs log to the database's ``runs`` table."""
    con = duckdb.connect(str(db_path(data_dir)))
    try:
        _create(con)
        cols = list(RUN_COLUMNS)
        con.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [row.get(c) for c in cols])
    finally:
        con.close()


def synced_builds(data_dir: Path) -> dict[str, set[str]]:
    """For each model in the database, the set of build timestamps of its provenance rows."""
    path = db_path(data_dir)
    if not path.is_file():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "provenance" not in tables:
            return {}
        out: dict[str, set[str]] = {}
        for model, built in con.execute("SELECT model, CAST(built_at AS VARCHAR) FROM provenance").fetchall():
            out.setdefault(model, set()).add(str(built).replace(" ", "T"))
        return out
    finally:
        con.close()


def rebuild_db(data_dir: Path, records: Iterable[ModelRecord] | None = None, store: str | None = None) -> Path:
    """Recreate the database from the Parquet files (a new file, renamed into place)."""
    path = db_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    recs = list(records) if records is not None else [read_record(p) for p in score_files(data_dir, store)]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    for leftover in (tmp, Path(str(tmp) + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        _create(con)
        for rec in recs:
            _insert(con, rec)
        cols = list(RUN_COLUMNS)
        for row in read_runs(data_dir):
            con.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [row.get(c) for c in cols])
        _refresh_metrics(con)
        _refresh_view(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    Path(str(path) + ".wal").unlink(missing_ok=True)
    os.replace(tmp, path)
    return path


def connect_readonly(data_dir: Path) -> duckdb.DuckDBPyConnection:
    path = db_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No database at {path}. Build one first with `wiki build` (or `wiki db rebuild` if data/scores/ has Parquet files).")
    return duckdb.connect(str(path), read_only=True)


def fetch(data_dir: Path, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run a read-only query; returns (column names, rows)."""
    con = connect_readonly(data_dir)
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()
    finally:
        con.close()
