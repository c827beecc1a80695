"""The renderer on the benchmark's synthetic database (no torch, no mkdocs): generic metrics,
labels, validation, incremental rebuilds, page weight, search index, downloads."""

from __future__ import annotations

import json
import re
import shutil

import duckdb
import numpy as np
import pytest

from wiki_builder.benchmarks.site import EXTRA_MODEL, add_model, make_database
from wiki_builder.site import heatmap, tokens
from wiki_builder.site.render import render_markdown
from wiki_builder.workspace import open_workspace

MODELS = 3  # distilgpt2 (6x12), gpt2-small (12x12), gpt2-medium (24x16)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-render")
    info = make_database(root, n_models=MODELS, parquet=True)
    ws = open_workspace(root)
    stats = render_markdown(ws)
    return ws, info, stats


def _head_files(ws, slug=None):
    return sorted((ws.site_src / "heads").glob(f"{slug or '*'}/L*H*.html"))


@pytest.mark.integration
def test_every_head_and_metric_gets_a_page(synth):
    ws, info, stats = synth
    assert stats.heads_rendered == info["heads"] == 6 * 12 + 12 * 12 + 24 * 16
    assert len(_head_files(ws)) == info["heads"]
    con = duckdb.connect(str(ws.data / "wiki.duckdb"), read_only=True)
    present = [r[0] for r in con.execute("SELECT DISTINCT metric FROM scores").fetchall()]
    con.close()
    assert len(present) > 10  # attention, weights and task outputs, whatever the registry holds
    for mid in present:
        assert (ws.site_src / "metrics" / f"{mid}.md").is_file(), mid
        assert (ws.site_src / "mosaics" / f"{mid}.md").is_file(), mid
    metrics_index = (ws.site_src / "metrics" / "index.md").read_text()
    for kind in ("Attention patterns", "Weights", "Tasks"):
        assert kind in metrics_index


@pytest.mark.integration
def test_head_pages_are_under_50_kb(synth):
    ws, _, stats = synth
    sizes = [p.stat().st_size for p in _head_files(ws)]
    assert max(sizes) < 50 * 1024
    assert max(stats.head_bytes) == max(sizes)


@pytest.mark.integration
def test_head_page_content(synth):
    ws, _, _ = synth
    html = (ws.site_src / "heads" / "gpt2-small" / "L9H1.html").read_text()
    assert "<h1 id=\"top\">gpt2-small L9H1</h1>" in html and "gpt2-small 9.1" in html
    assert html.count('<svg class="hw-attn"') == 5  # the probe plus one prompt per task
    assert "data:image/png;base64," in html
    for section in ("Scores", "Attention patterns", "What explains the numbers", "Tasks: ablation and direct logit attribution",
                    "Neighbouring heads", "Similar heads in other models"):
        assert section in html, section
    assert 'href="L9H0.html"' in html and 'href="L9H2.html"' in html and 'href="L8H1.html"' in html and 'href="L10H1.html"' in html
    assert html.count('class="hw-bar"') >= 4  # per-task ablation and DLA bars
    assert "what its OV circuit promotes" in html and 'class="hw-tok"' in html
    side = (ws.site_src / "heads" / "gpt2-small" / "L9.x.js").read_text()
    payload = json.loads(side[len("window.HW_XL="):].rstrip().rstrip(";"))
    assert payload["models"] == MODELS and len(payload["h"]["1"]["s"]) == 5
    assert all(s[0] != "gpt2-small" for s in payload["h"]["1"]["s"])  # similar heads come from other models


@pytest.mark.integration
def test_labels_state_evidence_and_threshold(synth):
    ws, _, _ = synth
    found = 0
    for page in _head_files(ws, "gpt2-small"):
        html = page.read_text()
        for m in re.finditer(r"<strong>induction head</strong>: <a [^>]*>stripe (\d\.\d\d) \(≥ 0\.4\), (\d+)(st|nd|rd|th) of 144 heads</a>", html):
            assert float(m.group(1)) >= 0.4
            found += 1
    assert found >= 1


@pytest.mark.integration
def test_signed_metrics_get_a_diverging_scale(synth):
    ws, _, _ = synth
    fragment = (ws.site_src / ".fragments" / "mosaics" / "ov_copying-0.html").read_text()
    assert heatmap._RDBU[0] in (ws.site_src / "mosaics" / "ov_copying.md").read_text()  # the legend's gradient
    assert "#440154" not in fragment  # no viridis in a diverging mosaic
    scale = heatmap.scale_for(np.array([-0.9, 0.1, 0.8]))
    assert scale.kind == "diverging" and scale.vmin == -scale.vmax
    assert heatmap.scale_for(np.array([0.0, 0.5, 1.0])) == heatmap.Scale("sequential", 0.0, 1.0)


@pytest.mark.integration
def test_mosaic_orders_models_by_family_and_size(synth):
    ws, _, _ = synth
    frag = (ws.site_src / ".fragments" / "mosaics" / "induction-0.html").read_text()
    order = re.findall(r'<figcaption><a href="\.\./models/([^"]+)\.html"', frag)
    assert order == ["distilgpt2", "gpt2-small", "gpt2-medium"]
    assert len(re.findall(r'<a href="\.\./heads/gpt2-medium/L\d+H\d+\.html"><rect', frag)) == 24 * 16


@pytest.mark.integration
def test_about_page_validates_gpt2_small(synth):
    ws, _, _ = synth
    about = (ws.site_src / "about.md").read_text()
    assert "has not been built yet" not in about
    assert re.search(r'<td><a href="heads/gpt2-small/L5H5\.html">5\.5</a></td><td>-?\d\.\d\d</td><td>\d+(st|nd|rd|th) of 144</td>'
                     r'<td class="hw-(agrees|differs)">', about)
    assert "name mover" in about and "S-inhibition" in about and "11.11" in about


@pytest.mark.unit
def test_about_page_says_when_gpt2_small_is_not_built(tmp_path):
    make_database(tmp_path, n_models=1, parquet=False)  # distilgpt2 only
    render_markdown(open_workspace(tmp_path))
    about = (tmp_path / "site_src" / "about.md").read_text()
    assert "GPT-2 small has not been built yet" in about and "not built" in about


@pytest.mark.integration
def test_find_index_and_downloads(synth):
    ws, _, _ = synth
    js = (ws.site_src / "heads-index.js").read_text()
    index = json.loads(js[len("window.HW_HEADS="):].rstrip().rstrip(";"))
    assert [m["m"] for m in index["models"]] == ["distilgpt2", "gpt2-small", "gpt2-medium"]
    assert {"L": 12, "H": 12} .items() <= next(m for m in index["models"] if m["m"] == "gpt2-small").items()
    assert any(name == "induction head" for name in index["labels"])
    data = (ws.site_src / "data.md").read_text()
    assert 'href="downloads/wiki.duckdb"' in data and 'href="downloads/scores/gpt2-small.parquet"' in data
    assert (ws.site_src / "downloads" / "wiki.duckdb").stat().st_size == (ws.data / "wiki.duckdb").stat().st_size
    assert "### `scores`" in data and "<code>detail</code>" in data


@pytest.mark.integration
def test_tokens_are_escaped_in_details(synth):
    ws, _, _ = synth
    text = "\n".join(p.read_text() for p in _head_files(ws, "gpt2-small"))
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "\u202e" not in text and "⟨U+202E⟩" in text and "\x07" not in text
    assert 'href="javascript:' not in text and "<strong>bold</strong>" not in text


@pytest.mark.integration
def test_incremental_rebuilds(tmp_path):
    make_database(tmp_path, n_models=2, parquet=False)
    ws = open_workspace(tmp_path)
    first = render_markdown(ws)
    assert first.heads_rendered == 6 * 12 + 144
    again = render_markdown(ws)
    assert again.written == 0 and again.heads_rendered == 0 and again.removed == 0
    before = {p: p.stat().st_mtime_ns for p in _head_files(ws)}
    add_model(tmp_path, parquet=False)
    added = render_markdown(ws)
    n_new = EXTRA_MODEL[3] * EXTRA_MODEL[4]
    assert added.heads_rendered == n_new and added.heads_unchanged == len(before)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # other models' head pages untouched
    side = json.loads((ws.site_src / "heads" / "distilgpt2" / "L0.x.js").read_text()[len("window.HW_XL="):].rstrip().rstrip(";"))
    assert side["models"] == 3  # ... but their cross-model sidecars know about the new model
    # a model leaving the database takes its pages with it
    con = duckdb.connect(str(ws.data / "wiki.duckdb"))
    for table in ("models", "scores", "provenance", "attention_examples"):
        con.execute(f"DELETE FROM {table} WHERE model = ?", [EXTRA_MODEL[0]])
    con.close()
    removed = render_markdown(ws)
    assert removed.removed >= n_new and not (ws.site_src / "heads" / EXTRA_MODEL[0]).exists()
    assert not (ws.site_src / "models" / f"{EXTRA_MODEL[0]}.md").exists()
    # a lost manifest: pages are rendered again, but nothing is rewritten whose content is already there
    (ws.site_src / ".manifest.json").unlink()
    shutil.rmtree(ws.site_src / ".fragments")
    lost = render_markdown(ws)
    assert lost.heads_rendered == 6 * 12 + 144 and lost.written == len(list((ws.site_src / ".fragments").rglob("*.*")))
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


@pytest.mark.unit
def test_visible_tokens():
    assert tokens.visible("\u202eabc") == "⟨U+202E⟩abc"
    assert tokens.visible("\x07") == "⟨U+0007⟩"
    assert tokens.visible("Ġthe") == "␣the" and tokens.visible("a\nb") == "a↵b"
    assert tokens.visible("") == "∅"
    assert str(tokens.html("<script>")) == "&lt;script&gt;"
    assert tokens.markdown("[x](javascript:alert(1))", 100) == "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert tokens.markdown("**b**|") == "\\*\\*b\\*\\*\\|"


@pytest.mark.unit
def test_details_follow_their_declaration():
    from wiki_builder.scores.base import FLAG, NUMBER, TOKEN, TOKEN_SCORES, TOKENS, rows
    from wiki_builder.site.details import details_html

    raw = json.dumps({"top": ["<script>x</script>", "\u202e"], "n": 0.5, "ok": True,
                      "promotes": [{"input": "a", "top": [["b", 1.5]]}], "examples": [{"name": "c", "copied": False, "top": ["d"]}]})
    declared = details_html(raw, {"top": TOKENS, "n": NUMBER, "promotes": rows(input=TOKEN, top=TOKEN_SCORES),
                                  "examples": rows(name=TOKEN, copied=FLAG, top=TOKENS)})
    assert '<code class="hw-tok" title="&lt;script&gt;x&lt;/script&gt;">' in declared and "⟨U+202E⟩" in declared
    assert '<span class="hw-row"><code class="hw-tok" title="a">a</code> → <span class="hw-chips"><code class="hw-tok" title="b">b</code>' \
           '<small class="hw-num">1.5</small></span></span>' in declared
    assert "<thead><tr><th>name</th><th>copied</th><th>top</th></tr></thead>" in declared and "<td>no</td>" in declared
    assert "<td>0.5000</td>" in declared and "<td>yes</td>" in declared
    # nothing declared (an old database, or a key its family does not list): plain escaped text, never guessed tokens
    plain = details_html(raw, {})
    assert 'class="hw-tok"' not in plain and "&lt;script&gt;x&lt;/script&gt;" in plain and "<script>" not in plain
    assert "\u202e" not in plain and "⟨U+202E⟩" in plain
    assert str(details_html("not json <b>", {})) == "not json &lt;b&gt;"
