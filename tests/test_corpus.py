"""Every head's examples on text: choosing contexts (hand-made arrays), the --corpus option's refusals, the
offline hub, and one real build of the embedded zoo that fills `head_examples` for every head, shows them
escaped on the head pages and exports every head's JSON."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile

import duckdb
import numpy as np
import pytest

from support import run_wiki
from wiki_builder.scores.corpus import CorpusOptions, choose, context_window, decile_samples, top_distinct
from wiki_builder.scores.texts import ZOO_TEXT, CorpusError, CorpusUnavailable, check_corpus, hub_corpus, local_corpus, split_documents
from wiki_builder.site.examples import context_html, examples_script


def sidecar_html(script: str) -> str:
    """The HTML a head's examples sidecar puts into its page."""
    return json.loads(script[script.index("innerHTML=") + len("innerHTML="):script.rindex(";})();")])

ZOO = ["toy-gpt2", "toy-llama", "toy-neox"]
JSON_KEYS = {"format", "model", "layer", "head", "name", "page", "model_info", "scores", "ranks", "labels", "details", "examples",
             "composition"}
CONTEXT_KEYS = {"kind", "rank", "decile", "document", "start", "query_position", "tokens", "token_ids", "attention", "value"}


# --- choosing contexts ------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_top_distinct_keeps_one_context_per_document_largest_first():
    values = np.array([0.1, 0.9, 0.8, 0.95, np.nan, 0.5, 0.9])
    docs = np.array([0, 1, 1, 2, 3, 4, 5])
    assert top_distinct(values, docs, 3).tolist() == [3, 1, 6]  # 0.8 shares document 1 with 0.9; ties: earlier index first
    assert top_distinct(values, docs, 10).tolist() == [3, 1, 6, 5, 0]  # NaN never chosen
    assert top_distinct(np.array([np.nan]), np.array([0]), 2).size == 0


@pytest.mark.unit
def test_decile_samples_draw_from_each_tenth_and_repeat_with_the_seed():
    rng = np.random.default_rng(5)
    values = rng.permutation(100).astype(float)
    values[7] = np.nan
    picks = decile_samples(values, 2, np.random.default_rng(0))
    assert [d for d, _ in picks] == list(range(10))
    ranked = np.sort(values[np.isfinite(values)])
    for d, idx in picks:
        lo, hi = np.array_split(ranked, 10)[d][[0, -1]]
        assert len(idx) == 2 and all(lo <= values[i] <= hi for i in idx), (d, values[idx])
        assert values[idx[0]] <= values[idx[1]]
    again = decile_samples(values, 2, np.random.default_rng(0))
    assert [i.tolist() for _, i in again] == [i.tolist() for _, i in picks]
    assert [d for d, _ in decile_samples(np.arange(4.0), 3, np.random.default_rng(0))] == [0, 1, 2, 3]  # fewer values than deciles


@pytest.mark.unit
def test_choose_ranks_each_head_by_attention_norm_and_deciles():
    max_attn = np.array([[0.2, 0.9], [0.7, 0.1], [0.6, 0.3], [0.1, 0.95]])
    norm = np.array([[1.0, 3.0], [2.0, 1.0], [5.0, 2.0], [4.0, 0.5]])
    docs, queries = np.array([0, 1, 1, 2]), np.array([3, 4, 5, 6])
    got = choose(max_attn, norm, docs, queries, 1, CorpusOptions(top_k=2, per_decile=1), seed=0)
    head0 = [(c.kind, c.rank, c.document, c.query, c.value) for c in got if c.head == 0 and c.kind != "decile"]
    assert head0 == [("max_attention", 1, 1, 4, 0.7), ("max_attention", 2, 0, 3, 0.2),
                     ("output_norm", 1, 1, 5, 5.0), ("output_norm", 2, 2, 6, 4.0)]
    deciles = [c for c in got if c.head == 1 and c.kind == "decile"]
    assert [c.rank for c in deciles] == [1, 2, 3, 4] and sorted(c.value for c in deciles) == [0.5, 1.0, 2.0, 3.0]
    assert all(c.layer == 1 for c in got)


@pytest.mark.unit
def test_context_window_reaches_back_to_the_strongest_key():
    assert context_window(100, 50, 48, before=24, after=4) == (26, 55)
    assert context_window(100, 50, 3, before=24, after=4) == (1, 55)
    assert context_window(52, 50, 49, before=24, after=4) == (26, 52)


@pytest.mark.unit
def test_a_context_is_drawn_as_escaped_text_with_the_query_marked():
    row = {"tokens": ["<bos>", "Ġ<script>", "Ġa", "Ġb", "Ġc"], "query_position": 3, "attention": [0.1, 0.7, 0.0, 0.2]}
    html = context_html(row)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b class=a7> &lt;script&gt;</b>" in html  # background: the attention from the query, in tenths
    assert '<b class="q a2"> b</b>' in html and "<i class=f> c</i>" in html and "<bos>" not in html
    script = examples_script([{**row, "kind": "decile", "rank": 1, "decile": 0, "value": 0.5}])
    assert not set("<>&") & set(script) and sidecar_html(script).endswith(f"{html}</p></div>")


# --- where the text comes from ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_shipped_zoo_text_is_what_the_zoo_writes():
    from wiki_builder.zoo.sample_text import sample_text

    assert ZOO_TEXT.read_text(encoding="utf-8") == sample_text()


@pytest.mark.unit
def test_local_corpora_and_their_refusals(tmp_path):
    (tmp_path / "a.txt").write_text("one two\n\nthree four five\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("six", encoding="utf-8")
    corpus = local_corpus(str(tmp_path))
    assert corpus.documents == ["one two", "three four five", "six"] and corpus.source == "folder"
    assert corpus.sha256 == hashlib.sha256(b"one two\n\nthree four five\nsix").hexdigest()
    assert str(tmp_path) not in corpus.name  # never a path of this machine
    assert split_documents("a\n \nb\n\n\nc") == ["a", "b", "c"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for spec, words in ((str(tmp_path / "missing.txt"), "does not exist"), (str(empty), "holds no .txt file"), ("", "is empty")):
        with pytest.raises(CorpusError, match=words):
            check_corpus(spec)
    (empty / "blank.txt").write_text("  \n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no text"):
        check_corpus(str(empty))
    check_corpus("NeelNanda/pile-10k")  # a hub id passes the check: it is read (or found unavailable) per model


@pytest.mark.unit
def test_an_unreachable_hub_is_a_clear_refusal_not_a_crash(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CorpusUnavailable, match=r"NeelNanda/pile-10k.*not in the local Hugging Face cache.*--corpus"):
        hub_corpus("NeelNanda/pile-10k")


@pytest.mark.unit
def test_wiki_build_refuses_a_bad_corpus_before_any_work(tmp_path):
    empty = tmp_path / "texts"
    empty.mkdir()
    for spec, words in ((str(tmp_path / "nope.txt"), "does not exist"), (str(empty), "holds no .txt file")):
        root = tmp_path / "wiki"
        proc = run_wiki("build", "--models", "toy-gpt2", "--corpus", spec, "--root", str(root), check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "--corpus" in proc.stderr + proc.stdout and words in " ".join((proc.stderr + proc.stdout).split())
        assert not (root / "data").exists() and not (root / "site").exists()  # nothing written


# --- a real build of the zoo ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-examples")
    run_wiki("build", "--models", ",".join(ZOO), "--metrics", "induction,head_examples", "--root", str(root))
    return root


@pytest.mark.integration
def test_the_zoo_build_fills_head_examples_for_every_head(zoo):
    con = duckdb.connect(str(zoo / "data" / "wiki.duckdb"), read_only=True)
    try:
        shapes = {m: (l, h) for m, l, h in con.execute("SELECT model, n_layers, n_heads FROM models").fetchall()}
        counts = con.execute("SELECT model, layer, head, kind, count(*) FROM head_examples GROUP BY ALL").fetchall()
        rows = con.execute("SELECT kind, query_position, tokens, token_ids, attention, value FROM head_examples").fetchall()
        prov = con.execute("SELECT model, status, setup FROM provenance WHERE metric = 'head_examples'").fetchall()
    finally:
        con.close()
    assert sorted(shapes) == ZOO
    have = {(m, l, h, k): n for m, l, h, k, n in counts}
    for model, (n_layers, n_heads) in shapes.items():
        for layer in range(n_layers):
            for head in range(n_heads):
                assert have.get((model, layer, head, "max_attention")) == 5 and have.get((model, layer, head, "output_norm")) == 5
                assert have.get((model, layer, head, "decile")) == 10
    for kind, q, tokens, ids, attention, value in rows:
        assert len(tokens) == len(ids) > q and len(attention) == q + 1 and sum(attention) <= 1.001
        if kind == "max_attention":  # the value is the strongest attention to a token other than the first
            assert value == pytest.approx(max(attention[1:]), abs=1e-3)
    digest = hashlib.sha256(ZOO_TEXT.read_bytes()).hexdigest()
    assert sorted(p[0] for p in prov) == ZOO
    for _, status, setup in prov:
        corpus = json.loads(setup)["corpus"]
        assert status == "ok" and corpus["sha256"] == digest and corpus["tokens"] >= 4096 and corpus["documents"] > 0


@pytest.mark.integration
def test_head_pages_show_the_examples_escaped_and_export_their_json(zoo):
    site = zoo / "site"
    n_pages = 0
    for model in ZOO:
        for page in sorted((site / "heads" / model).glob("L*H*.html")):
            n_pages += 1
            html = page.read_text(encoding="utf-8")
            assert '<h2 id="examples">' in html and f'<script src="{page.stem}.ex.js" defer></script>' in html and "<bos>" not in html
            section = sidecar_html(page.with_suffix(".ex.js").read_text(encoding="utf-8"))
            assert "&lt;bos&gt;" in section and "<bos>" not in section
            assert 'class="q a' in section and re.search(r"<b class=a(10|[1-9])>", section)
            doc = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
            assert JSON_KEYS <= set(doc) and doc["format"] == "head-wiki/head/1" and doc["model"] == model
            assert f'L{doc["layer"]}H{doc["head"]}.html' == page.name and "induction" in doc["scores"]
            contexts = doc["examples"]["contexts"]
            assert len(contexts) == 20 and all(set(c) == CONTEXT_KEYS for c in contexts)
            assert doc["examples"]["corpus"]["source"] == "zoo"
    assert n_pages == 24
    with zipfile.ZipFile(site / "downloads" / "head-wiki-data.zip") as z:
        names = set(z.namelist())
    assert "head-wiki-data/wiki.duckdb" in names and "head-wiki-data/heads/toy-gpt2/L1H0.json" in names
    assert "head-wiki-data/scores/head_examples/toy-llama.parquet" in names and "head-wiki-data/scores/toy-neox.parquet" in names
    assert "head-wiki-data.zip" in (site / "data.html").read_text(encoding="utf-8")


@pytest.mark.unit
def test_the_published_json_layout_is_the_documented_one():
    from pathlib import Path

    from wiki_builder.site.theme import TEMPLATES

    docs = Path(__file__).resolve().parents[1] / "docs" / "head-json.md"
    assert (TEMPLATES / "head-json.md").read_text(encoding="utf-8") == docs.read_text(encoding="utf-8")
    for key in JSON_KEYS | CONTEXT_KEYS:
        assert f"`{key}`" in docs.read_text(encoding="utf-8"), key
