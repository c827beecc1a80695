"""Composition in a real build: the table in DuckDB and in its own Parquet file, the head pages' reader and writer
lists, the model page's graph, and `wiki db rebuild` restoring the table from Parquet."""

from __future__ import annotations

import re

import pytest

from support import constructed, run_wiki
from wiki_builder.store.db import fetch
from wiki_builder.store.parquet import read_record

pytestmark = pytest.mark.integration  # a real `wiki build` (built_wiki)


def test_composition_table_in_duckdb_and_parquet(built_wiki):
    data = built_wiki / "data"
    cols, rows = fetch(data, "SELECT src_layer, src_head, dst_layer, dst_head, kind, value, baseline FROM composition "
                             "WHERE model = 'constructed' ORDER BY value DESC")
    assert len(rows) == 3 * 2 * 2  # 2 x 2 heads, one pair of layers, three kinds
    assert all(r[0] < r[2] for r in rows) and {r[4] for r in rows} == {"q", "k", "v"}
    assert len({r[6] for r in rows}) == 1 and 0 < rows[0][6] < 1  # one baseline per model's shapes
    (pl, ph), (il, ih) = constructed.EXPECTED["prev_token"], constructed.EXPECTED["induction"]
    k_in = [r for r in rows if r[4] == "k" and (r[2], r[3]) == (il, ih)]
    assert (k_in[0][0], k_in[0][1]) == (pl, ph)  # the induction head's keys read the previous-token head
    record = read_record(data / "scores" / "constructed.parquet")
    assert record.tables["composition"].num_rows == len(rows)
    assert (data / "scores" / "composition" / "constructed.parquet").is_file()
    _, prov = fetch(data, "SELECT status, setup FROM provenance WHERE model = 'constructed' AND metric = 'composition'")
    assert prov[0][0] == "ok" and "baseline_value" in prov[0][1]


def test_head_and_model_pages_show_composition(built_wiki):
    site = built_wiki / "site"
    (pl, ph), (il, ih) = constructed.EXPECTED["prev_token"], constructed.EXPECTED["induction"]
    head = (site / "heads" / "constructed" / f"L{il}H{ih}.html").read_text()
    reads = re.search(r"<h3>Reads from</h3><ol>(.*?)</ol>", head).group(1)
    first = re.search(r'<li><a href="(L\dH\d)\.html">L\dH\d</a> <small>([QKV])-composition</small> ([+-]\d\.\d{3})</li>', reads)
    assert first and first.group(1) == f"L{pl}H{ph}" and first.group(2) == "K" and float(first.group(3)) > 0
    assert "<h3>Read by</h3><ol><li>none" in head  # the last layer feeds no one
    source = (site / "heads" / "constructed" / f"L{pl}H{ph}.html").read_text()
    assert re.search(rf'<h3>Read by</h3><ol><li><a href="L{il}H\d\.html">', source)
    model = (site / "models" / "constructed.html").read_text()
    svg = re.search(r'<svg class="hw-comp-graph".*?</svg>', model, re.S).group(0)
    assert f'href="../heads/constructed/L{il}H{ih}.html"' in svg and f'href="../heads/constructed/L{pl}H{ph}.html"' in svg
    assert 1 <= svg.count("<line ") <= 12 and len(svg) < 20_000
    assert f"L{pl}H{ph} → L{il}H{ih}: K-composition" in svg
    assert (site / "metrics" / "composition.html").is_file()


def test_db_rebuild_restores_the_composition_table(built_wiki, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(built_wiki / "data", root / "data")
    (root / "data" / "wiki.duckdb").unlink()
    run_wiki("db", "rebuild", "--root", str(root))
    _, rows = fetch(root / "data", "SELECT count(*) FROM composition WHERE model = 'constructed'")
    assert rows[0][0] == 12
