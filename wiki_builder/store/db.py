"""The DuckDB database users query: tables ``models``, ``scores``, ``provenance``, ``metrics`` and the ``head_scores`` view.

The database is derived data: ``sync_model`` replaces one model's rows from its Parquet file
in one transaction, and ``rebuild_db`` recreates the whole file from the Parquet files.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ..faults import crash_point
from .parquet import TABLE_SCHEMAS, ModelRecord, read_record, score_files
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
    "stacks": "VARCHAR",  # encoder / decoder layers, or the attention layers of a hybrid ("" for most models)
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
    "peak_memory_bytes": "BIGINT",  # while this family ran, the loaded model included: RSS high-water mark on CPU, torch.cuda.max_memory_allocated on GPU
}
# Every head's examples on text (the corpus pass, scores/corpus.py; stored like composition, parquet.TABLE_SCHEMAS): tokens
# from `start` in the document, the query at `query_position` among them, its attention over tokens[0..query_position],
# and the value its ranking used.
HEAD_EXAMPLE_COLUMNS = {
    "model": "VARCHAR", "layer": "INTEGER", "head": "INTEGER", "kind": "VARCHAR", "rank": "INTEGER", "decile": "INTEGER",
    "document": "INTEGER", "start": "INTEGER", "query_position": "INTEGER", "tokens": "VARCHAR[]", "token_ids": "INTEGER[]",
    "attention": "FLOAT[]", "value": "DOUBLE",
}
# Columns added after the first release: ALTER TABLE ... ADD COLUMN IF NOT EXISTS brings old databases up to date.
ADDED_COLUMNS = {"models": {"stacks": "VARCHAR"}, "provenance": {"peak_memory_bytes": "BIGINT"},
                 "runs": {"peak_memory_bytes": "BIGINT", "estimated_memory_bytes": "BIGINT"}}
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS models ({', '.join(f'{k} {v}' for k, v in MODEL_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS scores (model VARCHAR, layer INTEGER, head INTEGER, metric VARCHAR, value DOUBLE, metric_version VARCHAR, detail VARCHAR);
CREATE TABLE IF NOT EXISTS provenance ({', '.join(f'{k} {v}' for k, v in PROVENANCE_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{k} {v}' for k, v in RUN_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS attention_examples (model VARCHAR, example VARCHAR, layer INTEGER, head INTEGER, tokens VARCHAR[], pattern FLOAT[]);
CREATE TABLE IF NOT EXISTS head_examples ({', '.join(f'{k} {v}' for k, v in HEAD_EXAMPLE_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS composition (model VARCHAR, src_layer INTEGER, src_head INTEGER, dst_layer INTEGER, dst_head INTEGER, kind VARCHAR, value DOUBLE, baseline DOUBLE);
CREATE TABLE IF NOT EXISTS metrics (metric VARCHAR PRIMARY KEY, family VARCHAR, version VARCHAR, title VARCHAR, kind VARCHAR, description VARCHAR, formula VARCHAR, reference VARCHAR, details VARCHAR, detail_fields VARCHAR);
"""


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def lock_wait() -> float:
    """Seconds to wait for the database while another process has it open ($HEADWIKI_DB_WAIT, default 120)."""
    try:
        return max(0.0, float(os.environ.get("HEADWIKI_DB_WAIT", "120")))
    except ValueError:
        return 120.0


# A database file this builder creates is written in DuckDB 1.4's storage format (version 67): readable by any
# DuckDB from 1.4 on, the query page's DuckDB-WASM included (site/engine.py), not only by the builder's DuckDB.
# (A DuckDB older than 1.4 writes an older format anyway, and does not know the setting.)
NEW_FILE = {"storage_compatibility_version": "v1.4.0"} if tuple(map(int, re.findall(r"\d+", duckdb.__version__)[:2])) >= (1, 4) else {}


def _connect(path: Path, read_only: bool = False, config: dict[str, Any] | None = None,
             wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the database, waiting while another process holds it.

    DuckDB lets one process write a database file, or any number read it, not both at once: the
    builder holds it for the few moments it takes to store one model, and a reader (``wiki query``,
    the site renderer) for one query. Each side waits for the other instead of failing."""
    deadline = time.monotonic() + (lock_wait() if wait is None else wait)
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or ({} if read_only else dict(NEW_FILE)))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _create(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)
    for table, cols in ADDED_COLUMNS.items():  # databases made before these columns existed
        for col, kind in cols.items():
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {kind}")
    # the view exists from the first moment the file does: a build killed before its first model lands leaves a
    # database whose documented view is there (empty), not one a reader's `FROM head_scores` fails on
    if not con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = 'head_scores'").fetchall():
        _refresh_view(con)


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
    for table in ("models", "scores", "provenance", "attention_examples", *TABLE_SCHEMAS):
        con.execute(f"DELETE FROM {table} WHERE model = ?", [name])
    for table, side in record.tables.items():  # noqa: B007 - `side` is read by DuckDB's replacement scan
        if table in TABLE_SCHEMAS:
            cols = ", ".join(TABLE_SCHEMAS[table].names)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM side")
    cols = list(MODEL_COLUMNS)
    con.execute(f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [record.model.get(c) for c in cols])
    if record.rows:
        import pyarrow as pa

        from .parquet import SCORE_SCHEMA

        arrow = pa.Table.from_pylist(record.rows, schema=SCORE_SCHEMA)  # noqa: F841 - read by DuckDB's replacement scan
        con.execute("INSERT INTO scores SELECT model, layer, head, metric, value, metric_version, detail FROM arrow")
    if record.examples:
        import pyarrow as pa

        cols: dict[str, list] = {"model": [], "example": [], "layer": [], "head": [], "tokens": [], "pattern": []}
        for ex in record.examples:
            pats = np.asarray(ex["patterns"], dtype=np.float32)
            for l in range(pats.shape[0]):
                if np.isnan(pats[l]).all():  # a layer without attention (hybrids)
                    continue
                for h in range(pats.shape[1]):
                    for key, value in zip(cols, (name, ex["example"], l, h, list(ex["tokens"]), pats[l, h].ravel())):
                        cols[key].append(value)
        examples = pa.table({"model": pa.array(cols["model"], pa.string()), "example": pa.array(cols["example"], pa.string()),  # noqa: F841
                             "layer": pa.array(cols["layer"], pa.int32()), "head": pa.array(cols["head"], pa.int32()),
                             "tokens": pa.array(cols["tokens"], pa.list_(pa.string())),
                             "pattern": pa.array(cols["pattern"], pa.list_(pa.float32()))})
        con.execute("INSERT INTO attention_examples SELECT model, example, layer, head, tokens, pattern FROM examples")
    pcols = list(PROVENANCE_COLUMNS)
    for row in record.provenance:
        values = [json.dumps(row[c]) if c == "setup" and not isinstance(row.get(c), str) else row.get(c) for c in pcols]
        con.execute(f"INSERT INTO provenance ({', '.join(pcols)}) VALUES ({', '.join('?' * len(pcols))})", values)


def sync_model(data_dir: Path, record: ModelRecord) -> None:
    """Replace one model's rows in the database, in one transaction."""
    path = db_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path)
    try:
        _create(con)
        con.begin()
        try:
            _insert(con, record)
            crash_point("db_in_transaction", record.model.get("model"))
            _refresh_metrics(con)
            _refresh_view(con)
        except BaseException:
            try:
                con.rollback()
            except duckdb.Error:
                pass  # the failure already ended the transaction
            raise
        con.commit()  # a full disk fails here, and the database keeps its previous content
    finally:
        con.close()


def insert_run(data_dir: Path, row: dict[str, Any]) -> None:
    """Add one line of the runs log to the database's ``runs`` table."""
    con = _connect(db_path(data_dir))
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
    con = _connect(path, read_only=True)
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
    """Recreate the database from the Parquet files (a new file, renamed into place: until the rename,
    readers and a crash see the previous database; a failure removes the new file)."""
    path = db_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_databases(data_dir)
    recs = list(records) if records is not None else [read_record(p) for p in score_files(data_dir, store)]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    for leftover in (tmp, Path(str(tmp) + ".wal")):
        leftover.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp), config=dict(NEW_FILE))
        try:
            _create(con)
            for i, rec in enumerate(recs):
                _insert(con, rec)
                if i == 0:
                    crash_point("db_rebuild")
            cols = list(RUN_COLUMNS)
            for row in read_runs(data_dir):
                con.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [row.get(c) for c in cols])
            _refresh_metrics(con)
            _refresh_view(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    Path(str(path) + ".wal").unlink(missing_ok=True)
    os.replace(tmp, path)
    return path


def remove_stale_databases(data_dir: Path) -> list[Path]:
    """New databases left half written by a ``rebuild_db`` that was killed (their process is gone)."""
    removed = []
    for leftover in Path(data_dir).glob(f".{DB_NAME}.tmp-*"):
        m = re.search(r"\.tmp-(\d+)", leftover.name)
        if m and int(m.group(1)) != os.getpid():
            try:
                os.kill(int(m.group(1)), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def connect_readonly(data_dir: Path) -> duckdb.DuckDBPyConnection:
    path = db_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No database at {path}. Build one first with `wiki build` (or `wiki db rebuild` if data/scores/ has Parquet files).")
    return _connect(path, read_only=True)


class QueryRefused(ValueError):
    """A query that would write, or reach outside the wiki's data folder."""


# The only statements a query may be: SELECT (with WITH, FROM-first, VALUES, TABLE, DESCRIBE, SHOW and SUMMARIZE,
# which DuckDB's parser also calls SELECT). COPY, EXPORT, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, EXPLAIN
# (EXPLAIN ANALYZE runs its statement) and every kind of change are refused.
QUERY_STATEMENTS = ("SELECT",)
_REFUSED_HOW = {
    "COPY": "COPY would read or write a file", "EXPORT": "EXPORT DATABASE would write files",
    "COPY_DATABASE": "COPY FROM DATABASE would write a database", "ATTACH": "ATTACH would open another database",
    "DETACH": "DETACH would change the open databases", "LOAD": "INSTALL and LOAD would install or load an extension",
    "EXTENSION": "it would install or change an extension", "SET": "SET/RESET/USE would change the session's settings",
    "VARIABLE_SET": "SET VARIABLE would change the session", "PRAGMA": "PRAGMA statements can change settings or copy databases",
    "CALL": "CALL runs procedures that can change settings", "EXPLAIN": "EXPLAIN ANALYZE would run its statement",
}


def connect_query(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection for user queries, closed off with DuckDB's own controls: no access to files
    except the wiki's data folder (``enable_external_access=false`` with ``allowed_directories``), no
    extension installed or loaded automatically, no spilling to a temporary folder, and the configuration
    locked (``lock_configuration``) so a query cannot undo any of it."""
    path = db_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No database at {path}. Build one first with `wiki build` (or `wiki db rebuild` if data/scores/ has Parquet files).")
    con = _connect(path, read_only=True, config={
        "autoload_known_extensions": False, "autoinstall_known_extensions": False,
        "allow_community_extensions": False, "allow_unsigned_extensions": False, "allow_persistent_secrets": False,
    })
    try:
        con.execute("SET temp_directory = ''")
        con.execute("SET allowed_directories = ?", [[str(Path(data_dir).resolve()) + os.sep]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but reading, with DuckDB's parser deciding what each statement is."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.ParserException:
        return  # let execution report the syntax error
    except ValueError as exc:  # a statement type the Python client does not know: refuse it
        raise QueryRefused(f"`wiki query` only runs SELECT queries; this statement is of a kind it cannot check ({exc}).") from exc
    if not statements:
        raise QueryRefused("The query is empty. Expected a SELECT statement.")
    for st in statements:
        kind = st.type.name
        if kind in QUERY_STATEMENTS:
            continue
        how = _REFUSED_HOW.get(kind, "it would change the database")
        raise QueryRefused(f"`wiki query` is read-only: it runs only SELECT queries over the wiki, and this query "
                           f"has a {kind} statement ({how}).")


def fetch(data_dir: Path, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Run a read-only query; returns (column names, rows). Anything but SELECT raises QueryRefused, and so does
    reading a file outside the wiki's data folder (DuckDB's PermissionException)."""
    con = connect_query(data_dir)
    try:
        check_query(con, sql)
        try:
            cur = con.execute(sql, params or [])
        except duckdb.PermissionException as exc:
            first = str(exc).splitlines()[0]
            raise QueryRefused(f"`wiki query` reads only the wiki's database and the files in its data folder "
                               f"({Path(data_dir).resolve()}); refused: {first}") from exc
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()
    finally:
        con.close()
