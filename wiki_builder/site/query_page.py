"""The query page (``query.html``): SQL in the browser with DuckDB-WASM over the site's own database.

What the page needs from the build: the examples (:mod:`.queries`), the schema, each model's page
slug (so that result cells naming a head link to its page), whether the engine is there
(:mod:`.engine`: fetched once into a user cache, hard-linked into ``site/assets/duckdb/`` by
``build_site``) and the database in a storage format that engine reads: the published
``downloads/wiki.duckdb`` when its header says the engine reads it, else a copy,
``downloads/query/wiki.duckdb``, written with ``STORAGE_VERSION`` set to the engine's (made again
only when the database changes; the builder's DuckDB may write a newer format than the engine
reads). Without the engine the page says how to add it; the build succeeds either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..store.db import db_path
from ..workspace import Workspace
from . import engine
from .data import SiteData
from .queries import CAP, examples, script_json
from .writer import Writer

QUERY_DB = "downloads/query/wiki.duckdb"


def query_context(ws: Workspace, data: SiteData, writer: Writer) -> dict[str, Any]:
    """The template's context for ``query.md``; fetches the engine on first need (see :func:`engine.ensure`)."""
    has_db = db_path(ws.data).is_file()
    folder, reason = engine.ensure() if has_db else (None, "")
    db_href = "downloads/wiki.duckdb"
    if folder is not None and storage_version(db_path(ws.data)) not in engine.READABLE:
        db_href = QUERY_DB
        try:
            browser_db(ws, writer)
        except Exception as exc:  # noqa: BLE001 - the page then explains; the build goes on
            folder, reason = None, f"the database could not be written in the engine's storage format ({type(exc).__name__})"
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) if folder else 0
    return {"engine": folder is not None, "reason": reason, "how": engine.how_to_add(), "version": engine.VERSION,
            "engine_mb": max(1, round(size / 1e6)), "has_db": has_db, "cap": CAP, "db_href": db_href,
            "examples_json": script_json([{"title": e["title"], "sql": e["sql"]} for e in examples()]),
            "slugs_json": script_json({m["model"]: m["slug"] for m in data.models})}


def storage_version(path: Path) -> int | None:
    """The storage version number in a DuckDB file's header (after an 8-byte checksum, ``DUCK``, then a uint64)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    return int.from_bytes(head[12:20], "little") if len(head) == 20 and head[8:12] == b"DUCK" else None


def browser_db(ws: Workspace, writer: Writer) -> None:
    """``site_src/downloads/query/wiki.duckdb``: the database copied with the engine's storage version (kept
    while the database is unchanged). Where this DuckDB cannot write that version, the database itself,
    which the engine then reads as it is (a DuckDB older than the engine's)."""
    import duckdb

    src = db_path(ws.data)
    st = src.stat()
    sig = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{engine.STORAGE_VERSION}:{duckdb.__version__}"
    out = ws.site_src / QUERY_DB
    if writer.entry(QUERY_DB).get("sha") == sig and out.is_file():
        writer.keep_as_is(QUERY_DB)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(src)])
        try:
            con.execute(f"ATTACH ? AS dst (STORAGE_VERSION '{engine.STORAGE_VERSION}')", [str(tmp)])
        except duckdb.Error:
            con.close()
            out.unlink(missing_ok=True)
            writer.link_or_copy(QUERY_DB, src)
            return
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
    finally:
        con.close()
    tmp.replace(out)
    writer.record(QUERY_DB, sig, True)
