"""The query page's engine (wiki_builder/site/engine.py): pinned tarballs verified before use, extracted into a
user cache, published into the site; a build without it still builds a query page that says how to add it."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from support import run_wiki
from wiki_builder.site import engine
from wiki_builder.site.queries import EXAMPLES, examples, script_json
from wiki_builder.site.theme import environment

MODULE = (b'var x=1;import*as u from"apache-arrow";function f(){return u.Table}import*as d from"apache-arrow";'
          b'export{f as AsyncDuckDB};\n//# sourceMappingURL=duckdb-browser.mjs.map\n')


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Two small tarballs shaped like the real ones, pinned in place of the real packages; an empty cache."""
    duck = _tgz({"package/dist/duckdb-browser.mjs": MODULE, "package/dist/duckdb-browser-eh.worker.js": b"onmessage=1;\n//# sourceMappingURL=w.map",
                 "package/dist/duckdb-eh.wasm": b"\0asm" + bytes(100), "package/README.md": b"not extracted"})
    arrow = _tgz({"package/Arrow.es2015.min.js": b"(function(){this.Arrow={}})()", "package/LICENSE.txt": b"Apache", "package/NOTICE.txt": b"n"})
    real = {p.name: p for p in engine.PACKAGES}
    pkgs = tuple(engine.Package(p.name, p.version, p.url, hashlib.sha256(body).hexdigest(), p.files)
                 for p, body in ((real["@duckdb/duckdb-wasm"], duck), (real["apache-arrow"], arrow)))
    monkeypatch.setattr(engine, "PACKAGES", pkgs)
    monkeypatch.setenv("HEADWIKI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HEADWIKI_ENGINE_FETCH", raising=False)
    src = tmp_path / "tarballs"
    src.mkdir()
    (src / pkgs[0].tarball).write_bytes(duck)
    (src / pkgs[1].tarball).write_bytes(arrow)
    return src


pytestmark = pytest.mark.unit


def test_the_pins_are_exact():
    """Every package is pinned to one version, one registry URL and one SHA-256; the page gets the EH bundle only."""
    assert [p.spec for p in engine.PACKAGES] == ["@duckdb/duckdb-wasm@1.32.0", "apache-arrow@17.0.0"]
    for p in engine.PACKAGES:
        assert p.url.startswith("https://registry.npmjs.org/") and p.url.endswith(f"-{p.version}.tgz")
        assert len(p.sha256) == 64 and int(p.sha256, 16) >= 0
    assert engine.PACKAGES[0].tarball == "duckdb-duckdb-wasm-1.32.0.tgz"  # the name `npm pack` writes
    names = [f for p in engine.PACKAGES for _, f in p.files]
    assert "duckdb-eh.wasm" in names and not any("coi" in n or "mvp" in n for n in names)


def test_fetch_from_a_folder_verifies_extracts_and_detaches_arrow(fake):
    folder = engine.fetch(source=fake)
    assert folder == engine.engine_dir() and engine.installed() == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(["duckdb-browser.mjs", "duckdb-browser-eh.worker.js", "duckdb-eh.wasm",
                                                              "arrow.min.js", "arrow-LICENSE.txt", "arrow-NOTICE.txt", engine.STAMP])
    module = (folder / "duckdb-browser.mjs").read_text()
    assert module.startswith("const u=globalThis.Arrow,d=globalThis.Arrow;")
    assert "apache-arrow" not in module and "sourceMappingURL" not in module and "export{f as AsyncDuckDB}" in module
    assert "sourceMappingURL" not in (folder / "duckdb-browser-eh.worker.js").read_text()
    for f in fake.iterdir():
        f.unlink()
    assert engine.fetch(source=fake) == folder  # already there: nothing is read again
    site = fake.parent / "site"
    size = engine.publish(site, folder)
    assert size == sum((site / engine.SITE_DIR / f.name).stat().st_size for f in folder.iterdir() if f.name != engine.STAMP)
    assert (site / engine.SITE_DIR / "duckdb-eh.wasm").read_bytes() == (folder / "duckdb-eh.wasm").read_bytes()
    assert engine.publish(site, None) == 0


def test_a_checksum_mismatch_is_refused(fake, monkeypatch):
    tarball = fake / engine.PACKAGES[0].tarball
    tarball.write_bytes(tarball.read_bytes() + b"tampered")
    with pytest.raises(engine.EngineError, match="refused"):
        engine.fetch(source=fake)
    assert engine.installed() is None and not engine.engine_dir().exists()
    assert not [p for p in engine.cache_root().iterdir() if p.name.startswith(".engine-")]  # nothing half-extracted left
    # a download that does not match is refused the same way, and the page's reason names no path
    monkeypatch.setattr(engine, "_download", lambda pkg, timeout: tarball.read_bytes())
    folder, why = engine.ensure()
    assert folder is None and "checksum" in why and str(fake) not in why and "/" not in why


def test_a_missing_tarball_is_named(fake):
    (fake / engine.PACKAGES[1].tarball).unlink()
    with pytest.raises(engine.EngineError, match=engine.PACKAGES[1].tarball.replace(".", r"\.")):
        engine.fetch(source=fake)


def test_an_offline_build_tries_once_then_waits(fake, monkeypatch):
    calls = []

    def offline(pkg, timeout):
        calls.append(pkg.spec)
        raise engine.EngineError("`npm pack` failed: ENOTFOUND registry.npmjs.org")

    monkeypatch.setattr(engine, "_download", offline)
    assert engine.ensure() == (None, "the npm registry could not be reached when the site was built")
    assert engine.ensure()[0] is None and len(calls) == 1  # remembered: the next build does not wait on the network
    monkeypatch.setenv("HEADWIKI_ENGINE_FETCH", "0")
    assert "HEADWIKI_ENGINE_FETCH=0" in engine.ensure()[1] and len(calls) == 1
    monkeypatch.delenv("HEADWIKI_ENGINE_FETCH")
    engine.fetch(source=fake)  # `wiki fetch-engine --from` clears the remembered failure
    assert engine.ensure() == (engine.engine_dir(), "") and len(calls) == 1


def _query_page(**kw) -> str:
    ctx = {"columns": {"scores": [("model", "VARCHAR"), ("value", "DOUBLE")]}, "has_db": True, "engine": True, "reason": "",
           "how": engine.how_to_add(), "version": engine.VERSION, "engine_mb": 35, "cap": 1000, "db_href": "downloads/query/wiki.duckdb",
           "examples_json": script_json([{"title": t, "sql": s} for t, s in EXAMPLES]),
           "slugs_json": script_json({"</script><script>alert(1)</script>": "x"})}
    return environment().get_template("query.md.j2").render(**{**ctx, **kw})


def test_the_query_page_with_and_without_the_engine():
    page = _query_page()
    assert 'id="hw-query"' in page and '<script src="assets/query.js"></script>' in page
    blob = page.split('id="hw-q-examples">', 1)[1].split("</script>", 1)[0]
    assert [(e["title"], e["sql"]) for e in json.loads(blob)] == list(EXAMPLES)
    assert "<script><" not in page and "\\u003c/script\\u003e" in page  # a hostile model name cannot close the script
    missing = _query_page(engine=False, reason="the npm registry could not be reached when the site was built")
    assert "hw-query" not in missing and "assets/query.js" not in missing and "duckdb-eh.wasm" not in missing
    assert "wiki fetch-engine" in missing and all(p.tarball in missing for p in engine.PACKAGES)
    assert "the npm registry could not be reached" in missing


def test_the_data_page_shows_the_same_examples():
    page = environment().get_template("data.md.j2").render(columns={}, downloads=[], examples=examples())
    for title, sql in EXAMPLES:
        assert f"-- {title}\n{sql};" in page
    assert "query.md" in page


def test_fetch_engine_from_a_folder_without_the_tarballs(tmp_path):
    proc = run_wiki("fetch-engine", "--from", str(tmp_path), check=False, env={"HEADWIKI_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 1 and "duckdb-duckdb-wasm-1.32.0.tgz is not in" in " ".join(proc.stderr.split())
    proc = run_wiki("fetch-engine", "--from", str(tmp_path / "nope"), check=False, env={"HEADWIKI_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_the_page_reads_a_database_in_a_format_the_engine_reads(tmp_path):
    """The builder's database, or a copy in the engine's storage version when the builder's DuckDB writes a newer one."""
    import duckdb

    from wiki_builder.site.query_page import QUERY_DB, browser_db, storage_version
    from wiki_builder.site.writer import RenderStats, Writer
    from wiki_builder.workspace import open_workspace

    ws = open_workspace(tmp_path / "wiki")
    con = duckdb.connect(str(ws.data / "wiki.duckdb"))
    con.execute("CREATE TABLE scores AS SELECT 'm' AS model, 1 AS layer, 2 AS head, 0.5 AS value")
    con.execute("CREATE VIEW head_scores AS SELECT model, layer, head, value AS induction FROM scores")
    con.close()
    browser_db(ws, Writer(ws.site_src, RenderStats()))
    copy = ws.site_src / QUERY_DB
    assert storage_version(copy) in engine.READABLE
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT * FROM head_scores").fetchall() == [("m", 1, 2, 0.5)]
    con.close()
    assert storage_version(tmp_path / "missing.duckdb") is None
    (tmp_path / "not-a-db").write_bytes(b"x" * 40)
    assert storage_version(tmp_path / "not-a-db") is None
