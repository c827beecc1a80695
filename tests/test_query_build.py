"""A real site build (render + mkdocs) on a machine without the query engine: the build succeeds, and the
query page says how to add the engine, names no path of the building machine and loads nothing."""

from __future__ import annotations

import pytest

from wiki_builder.site import engine

pytestmark = pytest.mark.integration


def test_a_build_without_the_engine_still_builds_and_says_how_to_add_it(tmp_path, monkeypatch):
    from wiki_builder.benchmarks.site import make_database
    from wiki_builder.site.render import build_site, render_markdown
    from wiki_builder.workspace import open_workspace

    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("HEADWIKI_CACHE", str(cache))
    monkeypatch.setenv("HEADWIKI_ENGINE_FETCH", "0")
    root = tmp_path / "wiki"
    make_database(root, n_models=1, parquet=False)
    ws = open_workspace(root)
    render_markdown(ws)
    build_site(ws)
    page = (ws.site / "query.html").read_text(encoding="utf-8")
    assert "The query engine is not in this build" in page and "wiki fetch-engine" in page
    assert all(p.tarball in page for p in engine.PACKAGES)
    assert "assets/query.js" not in page and "duckdb-browser" not in page
    assert str(tmp_path) not in page and str(cache) not in page
    assert not (ws.site / engine.SITE_DIR).exists() and not (ws.site / "downloads" / "query").exists()
    assert 'href="query.html"' in (ws.site / "index.html").read_text(encoding="utf-8")  # in the navigation
    assert 'href="query.md"' not in (ws.site / "data.html").read_text(encoding="utf-8")
    assert 'href="query.html"' in (ws.site / "data.html").read_text(encoding="utf-8")
