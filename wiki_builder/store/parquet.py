"""One Parquet file per model: its scores in long format, plus the model and provenance in the file's metadata.

Keeping everything about a model in its own file means the DuckDB database can always be
rebuilt from ``data/scores/*.parquet`` alone, and a model can be shipped or deleted as one file.
Files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..faults import crash_point

META_KEY = b"headwiki"
FORMAT_VERSION = 1

SCORE_SCHEMA = pa.schema([
    ("model", pa.string()),
    ("layer", pa.int32()),
    ("head", pa.int32()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("metric_version", pa.string()),
    ("detail", pa.string()),  # JSON: what explains this head's number (may be null)
])

# Tables other than `scores` that a family fills, each in its own file beside the model's: `<store>/<table>/<slug>.parquet`
# (a table of pairs of heads grows as heads squared: too large for the model file's metadata). The model file's
# metadata lists the ones it has, so a reader never picks up a file that a later build of the model dropped.
TABLE_SCHEMAS = {
    "composition": pa.schema([
        ("model", pa.string()),
        ("src_layer", pa.int32()),
        ("src_head", pa.int32()),
        ("dst_layer", pa.int32()),
        ("dst_head", pa.int32()),
        ("kind", pa.string()),  # q, k or v
        ("value", pa.float64()),  # the composition score minus the baseline
        ("baseline", pa.float64()),  # the mean score of random matrices of the model's shapes
    ]),
    # every head's examples on text (the corpus pass, scores/corpus.py); columns as in db.HEAD_EXAMPLE_COLUMNS
    "head_examples": pa.schema([
        ("model", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("kind", pa.string()),  # max_attention, output_norm or decile
        ("rank", pa.int32()),  # 1.. within the kind (deciles: lowest first)
        ("decile", pa.int32()),  # 0..9 for kind decile, else null
        ("document", pa.int32()),  # the document (sequence) of the corpus read
        ("start", pa.int32()),  # where `tokens` starts in it
        ("query_position", pa.int32()),  # the query, an index into `tokens`
        ("tokens", pa.list_(pa.string())),
        ("token_ids", pa.list_(pa.int32())),
        ("attention", pa.list_(pa.float32())),  # from the query to tokens[0..query_position]
        ("value", pa.float64()),  # the activation the ranking used
    ]),
}
TABLE_FAMILY = b"family"  # schema metadata key of such a table: the family that filled it


def table_of(name: str, model: str, family: str, columns: dict[str, Any]) -> pa.Table:
    """A ``TABLE_SCHEMAS`` table from a family's columns (the model column added), tagged with the family."""
    schema = TABLE_SCHEMAS[name]
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = [pa.array(np.full(n, model, dtype=object) if f.name == "model" else np.asarray(columns[f.name]), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema).replace_schema_metadata({TABLE_FAMILY: family.encode()})


def table_family(table: pa.Table) -> str:
    return (table.schema.metadata or {}).get(TABLE_FAMILY, b"").decode()


class CorruptParquet(RuntimeError):
    """A Parquet file in data/ cannot be read."""


@dataclass
class ModelRecord:
    model: dict[str, Any]  # one row of the `models` table
    rows: list[dict[str, Any]]  # rows of the `scores` table
    provenance: list[dict[str, Any]] = field(default_factory=list)  # one row per metric
    examples: list[dict[str, Any]] = field(default_factory=list)  # {"example", "tokens", "patterns" [L,H,Q,Q]}
    tables: dict[str, pa.Table] = field(default_factory=dict)  # TABLE_SCHEMAS name -> its rows (composition), one file each


def scores_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "scores"


def open_store(location: str | Path) -> tuple[Any, str]:
    """A pyarrow filesystem and base path for a scores location: a local folder, or any URI pyarrow
    understands (file://, s3://, gs://, hdfs://...), or memory:// (an in-process fsspec filesystem)."""
    import pyarrow.fs as pafs

    loc = str(location)
    if "://" not in loc:
        return pafs.LocalFileSystem(), str(Path(loc).resolve())
    if loc.startswith("memory://"):
        import fsspec

        return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory"))), "/" + loc[len("memory://"):].strip("/")
    try:
        fs, base = pafs.FileSystem.from_uri(loc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"'{loc}' is not a storage location pyarrow can open ({reason}). Use a local folder or a URI such as "
                         "file:///shared/scores or s3://bucket/scores.") from exc
    if not base.strip("/"):
        raise ValueError(f"'{loc}' names no bucket or folder. Use a local folder or a URI such as file:///shared/scores or s3://bucket/scores.")
    return fs, base


def _location(data_dir: Path, store: str | None) -> str:
    return str(store) if store else str(scores_dir(data_dir))


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def score_files(data_dir: Path, store: str | None = None) -> list[str]:
    """Paths of the model files in the store (plain paths for a local store, URIs otherwise)."""
    import pyarrow.fs as pafs

    loc = _location(data_dir, store)
    fs, base = open_store(loc)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except FileNotFoundError:
        return []
    names = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                   and not i.base_name.startswith("."))
    return names if "://" not in loc else [_join(loc, n.rsplit("/", 1)[-1]) for n in names]


def write_record(data_dir: Path, slug: str, record: ModelRecord, store: str | None = None) -> str:
    """Write a model's file atomically: a temporary name, then a rename (on object stores, where
    a single PUT is already atomic, the move is a copy and delete)."""
    loc = _location(data_dir, store)
    fs, base = open_store(loc)
    fs.create_dir(base, recursive=True)
    target = _join(base, f"{slug}.parquet")
    tmp = _join(base, f".{slug}.parquet.tmp-{os.getpid()}")
    table = pa.Table.from_pylist(record.rows, schema=SCORE_SCHEMA)
    examples = [{"example": e["example"], "tokens": e["tokens"], "patterns": np.round(np.asarray(e["patterns"], dtype=np.float64), 4).tolist()}
                for e in record.examples]
    meta = {"format": FORMAT_VERSION, "model": record.model, "provenance": record.provenance, "examples": examples}
    meta["tables"] = sorted(record.tables)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, default=str).encode()})
    local = "://" not in loc
    for name, side in record.tables.items():  # first: the model file that lists them must never come before them
        fs.create_dir(_join(base, name), recursive=True)
        _write_atomic(fs, side, _join(_join(base, name), f".{slug}.parquet.tmp-{os.getpid()}"),
                      _join(_join(base, name), f"{slug}.parquet"), local)
    _write_atomic(fs, table, tmp, target, local, before_move=lambda: crash_point("parquet_tmp_written", record.model.get("model")))
    return target if local else _join(loc, f"{slug}.parquet")


def _write_atomic(fs: Any, table: pa.Table, tmp: str, target: str, local: bool,
                  before_move: Callable[[], None] | None = None) -> None:
    """Write to ``tmp``, fsync it (local files), then rename it to ``target``; the temporary never outlives the call."""
    try:
        pq.write_table(table, tmp, filesystem=fs)
        if local:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        if before_move:
            before_move()
        fs.move(tmp, target)
    finally:
        try:
            fs.delete_file(tmp)
        except (FileNotFoundError, OSError):
            pass


def remove_stale_temporaries(data_dir: Path, store: str | None = None) -> list[str]:
    """Temporary files left by a killed run (their content never became visible)."""
    import pyarrow.fs as pafs

    fs, base = open_store(_location(data_dir, store))
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except FileNotFoundError:
        return []
    for name in TABLE_SCHEMAS:  # and those of the tables beside the model files
        try:
            infos += fs.get_file_info(pafs.FileSelector(_join(base, name), allow_not_found=True))
        except FileNotFoundError:
            pass
    stale = [i.path for i in infos if i.type == pafs.FileType.File and i.base_name.startswith(".") and ".tmp-" in i.base_name]
    for path in stale:
        fs.delete_file(path)
    return stale


def read_record(path: str | Path) -> ModelRecord:
    """Read a model's file (a local path or a URI); a damaged file raises CorruptParquet naming it and the repair."""
    try:
        if "://" in str(path):
            base, name = str(path).rsplit("/", 1)
            fs, root = open_store(base)
            table = pq.read_table(_join(root, name), filesystem=fs)
        else:
            table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise ValueError("it has no Head Wiki metadata")
        meta = json.loads(raw)
    except Exception as exc:
        raise CorruptParquet(
            f"{path} is not a readable Head Wiki score file ({type(exc).__name__}: {exc}). "
            f"Delete it and rebuild that model (`wiki build --models <model> --force`), then run `wiki db rebuild`."
        ) from exc
    tables = {name: _read_side(path, name) for name in meta.get("tables", [])}
    return ModelRecord(model=meta["model"], rows=table.to_pylist(), provenance=meta.get("provenance", []), tables=tables,
                       examples=meta.get("examples", []))


def _read_side(path: str | Path, name: str) -> pa.Table:
    """The ``name`` table of the model whose file is ``path`` (``<dir>/<name>/<slug>.parquet``)."""
    base, file = str(path).rsplit("/", 1)
    try:
        if "://" in base:
            fs, root = open_store(base)
            return pq.read_table(_join(_join(root, name), file), filesystem=fs)
        return pq.read_table(Path(base) / name / file)
    except Exception as exc:
        raise CorruptParquet(
            f"{path} lists a `{name}` table, but {name}/{file} beside it is missing or unreadable ({type(exc).__name__}: {exc}). "
            f"Rebuild that model (`wiki build --models <model> --force`), then run `wiki db rebuild`.") from exc
