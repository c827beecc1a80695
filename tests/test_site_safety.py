"""Token strings are untrusted: a real `wiki build` of a model whose vocabulary holds <script>,
Markdown, HTML entities, control and bidirectional characters, added to a wiki that already has
another model. Every place a token reaches (Markdown pages, head pages, SVG, tooltips, the
search indexes) must show it escaped and visible, and adding the model must leave the other
model's head pages alone."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import duckdb
import pytest

from support import sitekit
from wiki_builder.site import tokens

pytestmark = pytest.mark.integration  # real `wiki build`s of two models

RAW_MARKUP = ["<script>alert(", "<svg/onload", 'href="javascript:', "<strong>bold</strong>", "<code>code</code>"]
RAW_CHARS = ["\u202e", "\x07", "\u200b"]


@pytest.fixture(scope="module")
def two(tmp_path_factory, constructed_dir):
    return sitekit.two_model_wiki(tmp_path_factory, constructed_dir)


def _prompt_tokens(root: Path) -> list[str]:
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT tokens FROM attention_examples WHERE model = 'evil-vocab' AND layer = 0 AND head = 0").fetchall()
    finally:
        con.close()
    return [t for (toks,) in rows for t in toks]


def _site_texts(site: Path) -> dict[str, str]:
    return {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8")
            for p in site.rglob("*") if p.suffix in (".html", ".js", ".json") and p.is_file()}


def test_the_vocabulary_reaches_the_pages(two):
    root, _ = two
    evil_in_prompts = {t for t in _prompt_tokens(root) if t in sitekit.EVIL}
    assert len(evil_in_prompts) >= 3, evil_in_prompts  # the probe drew hostile tokens: the test below has teeth


def test_no_token_becomes_markup_anywhere(two):
    root, _ = two
    for name, text in _site_texts(root / "site").items():
        if name.startswith("assets/javascripts/") or name.startswith("search/"):
            continue  # the theme's own bundles; its search index is checked below
        for raw in RAW_MARKUP + RAW_CHARS:
            assert raw not in text, f"{raw!r} in {name}"


def test_tokens_are_visible_and_escaped_on_the_head_page(two):
    root, _ = two
    page = (root / "site" / "heads" / "evil-vocab" / "L0H0.html").read_text()
    svg = re.search(r'<svg class="hw-attn".*?</svg>', page, re.S).group(0)
    toks = _prompt_tokens(root)[:17]
    labels = re.findall(r"<text x=\"[\d.]+\" y=\"[\d.]+\">([^<]*)</text>", svg)
    for t in toks:
        assert str(tokens.html(t, 12)) in labels, t
    # the hover read-out's tokens: JSON in an attribute, the visible labels
    data_t = json.loads(htmllib.unescape(re.search(r'data-t="([^"]*)"', svg).group(1)))
    assert data_t == [tokens.visible(t, 40) for t in toks]
    if "x<script>alert(2)</script>" in toks:
        assert "x&lt;script&gt;alert(2)&lt;/script&gt;" in svg
    if "\u202e" in toks:
        assert "⟨U+202E⟩" in svg
    # OV details: the promoted tokens as chips, escaped, with the full visible token as tooltip
    for chip_text in re.findall(r'<code class="hw-tok" title="([^"]*)">', page):
        assert "<" not in chip_text and "\u202e" not in chip_text


def test_tokens_on_the_markdown_model_page_and_in_the_theme_search_index(two):
    root, _ = two
    src = (root / "site_src" / "models" / "evil-vocab.md").read_text()
    built = (root / "site" / "models" / "evil-vocab.html").read_text()
    for t in set(_prompt_tokens(root)):
        assert str(tokens.html(t, 40)) in src, t
        assert str(tokens.html(t, 40)) in built, t
    assert "<p>A tiny random GPT-2 whose vocabulary is &lt;script&gt;alert(1)&lt;/script&gt;, **Markdown**" in built
    index = json.loads((root / "site" / "search" / "search_index.json").read_text())
    text = json.dumps(index)
    for raw in RAW_MARKUP + RAW_CHARS:
        assert raw not in text and raw not in "".join(d["text"] for d in index["docs"]), raw
    evil_doc = " ".join(d["text"] for d in index["docs"] if d["location"].startswith("models/evil-vocab.html"))
    assert "&lt;" in evil_doc  # the tokens are indexed, escaped (the theme shows results as HTML)


def test_head_search_index_is_plain_data(two):
    root, _ = two
    js = (root / "site" / "heads-index.js").read_text()
    assert js.startswith("window.HW_HEADS=")
    index = json.loads(js[len("window.HW_HEADS="):].rstrip().rstrip(";"))
    assert {m["m"] for m in index["models"]} == {"constructed", "evil-vocab"}


def test_adding_a_model_leaves_the_other_models_head_pages_alone(two):
    root, log = two
    manifest = json.loads((root / "site_src" / ".manifest.json").read_text())["pages"]
    assert "Rendered site_src/" in log
    con_pages = [rel for rel in manifest if rel.startswith("heads/constructed/") and rel.endswith(".html")]
    assert len(con_pages) == 4
    first_build = float((root / "first-build.time").read_text())
    for rel in con_pages:
        assert (root / "site_src" / rel).stat().st_mtime < first_build, rel  # written by the first build only
    for rel in [r for r in manifest if r.startswith("heads/evil-vocab/") and r.endswith(".html")]:
        assert (root / "site_src" / rel).stat().st_mtime >= first_build
    assert "2 models" not in (root / "site_src" / "heads" / "constructed" / "L0H0.html").read_text()  # cross-model data...
    assert '"models":2' in (root / "site_src" / "heads" / "constructed" / "L0.x.js").read_text()  # ...lives in the sidecar
