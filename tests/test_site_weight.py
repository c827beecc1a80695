"""Pages stay light as the registry grows, mosaics read at every model size, the home page is a table:
a synthetic site of 18 model shapes (gpt2-xl's 1,200 heads among them) checked page kind by page kind,
plus the pieces (page kinds, overview scale, home table, number format) on their own."""

from __future__ import annotations

import re

import numpy as np
import pytest

from support import sitekit
from wiki_builder.benchmarks import page_sizes
from wiki_builder.benchmarks.site import MODELS
from wiki_builder.site import grids
from wiki_builder.site.heatmap import Scale, fmt
from wiki_builder.site.home import home_tables, measure_label


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    return sitekit.varied_synthetic_wiki(tmp_path_factory)


@pytest.mark.integration
def test_every_page_kind_keeps_to_its_limit(varied):
    rows = {r.kind: r for r in page_sizes.largest_pages(varied / "site")}
    assert {"home", "model", "metric", "mosaic", "head", "models list", "mosaics list", "find", "data", "about"} <= set(rows)
    over = [f"{r.kind}: {r.page} {r.bytes // 1024} KB (limit {r.limit // 1024} KB)" for r in rows.values() if not r.ok]
    assert not over, over
    assert rows["head"].limit == 50 * 1024 and rows["model"].limit == 1024 * 1024
    # the largest model (35 metrics x 1,200 heads would be megabytes inline) draws its grids lazily
    xl = (varied / "site" / "models" / "gpt2-xl.html").read_text()
    assert len(xl.encode()) < 200 * 1024
    assert 'class="hw-heatmap"' not in xl and xl.count('class="hw-lazy"') >= 20
    assert 'src="../assets/hwgrids.js"' in xl


@pytest.mark.integration
def test_lazy_grid_scripts_hold_every_head_link_and_value(varied):
    site = varied / "site"
    xl = (site / "models" / "gpt2-xl.html").read_text()
    srcs = re.findall(r'data-grid="gpt2-xl/([a-z_]+)" data-src="\.\./heads/gpt2-xl/grid-\1\.js"', xl)
    assert "induction" in srcs and len(srcs) == xl.count('class="hw-lazy"')
    script = (site / "heads" / "gpt2-xl" / "grid-induction.js").read_text()
    assert script.startswith('(window.HW_GRIDS=window.HW_GRIDS||{})["gpt2-xl/induction"]="<svg class=\\"hw-heatmap\\"')
    links = set(re.findall(r'<a href=\\"\.\./heads/gpt2-xl/(L\d+H\d+)\.html\\"><rect[^>]*width=\\"12\\"', script))
    assert links == {f"L{l}H{h}" for l in range(48) for h in range(25)}  # 13 px cells (12 px and a 1 px gap)
    assert re.search(r"<title>L47H24 -?\d\.\d{3}</title>", script)
    for rel in sorted(site.glob("heads/*/grid-*.js"))[:50]:  # each names the page it belongs to
        slug = rel.parent.name
        assert (site / "heads" / slug / "L0H0.html").is_file(), rel


@pytest.mark.integration
def test_mosaic_overview_links_each_model_to_its_full_size_grid(varied):
    html = (varied / "site" / "mosaics" / "induction.html").read_text()
    thumbs = re.findall(r'<a class="hw-thumb" href="#(m-[^"]+)"[^>]*><img alt="([^"]+)" width="(\d+)" height="(\d+)" src="data:image/png;base64,', html)
    assert len(thumbs) == len(sitekit.VARIED)
    for anchor, model, _w, _h in thumbs:
        assert f'<figure id="{anchor}">' in html, model
    families = re.findall(r'<a class="hw-ov-name" href="#(f-[^"]+)"', html)
    assert len(families) >= 8 and all(f'<h2 id="{f}">' in html for f in families)
    assert 'class="hw-legend"' in html and html.count('class="hw-lazy"') == len(sitekit.VARIED)


@pytest.mark.unit
def test_page_kinds():
    assert page_sizes.page_kind("heads/gpt2/L0H0.html") == "head"
    assert page_sizes.page_kind("index.html") == "home"
    assert page_sizes.page_kind("models/index.html") == "models list"
    assert page_sizes.page_kind("models/gpt2-xl.html") == "model"
    assert page_sizes.page_kind("mosaics/induction.html") == "mosaic"
    assert page_sizes.page_kind("query.html") == "query"


@pytest.mark.unit
def test_the_whole_registry_overview_fits_a_laptop_screen():
    """67 models at the overview's scale: cells over 2 px, thumbnails in all well inside 1440 x 900."""
    members = [{"n_layers": s[3], "n_heads": s[4]} for s in MODELS]
    px = grids.overview_px(members)
    area = sum(m["n_layers"] * m["n_heads"] for m in members) * px * px
    assert px >= 3 and area <= grids.OVERVIEW_AREA < 1440 * 900 / 4
    assert grids.cell_size(48, 25) >= 12 and grids.cell_size(2, 2) >= 12
    assert grids.overview_px([{"n_layers": 2, "n_heads": 2}]) == 8  # a tiny zoo is drawn big


@pytest.mark.unit
def test_thumbnail_is_a_pixel_per_head_png():
    import base64
    import struct

    g = np.array([[0.0, 0.5, np.nan], [1.0, 0.2, 0.9]])
    png = base64.b64decode(grids.thumbnail_uri(g, Scale("sequential", 0.0, 1.0)).split(",", 1)[1])
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (3, 2)  # width = heads, height = layers


@pytest.mark.unit
def test_home_table_comes_from_the_metrics_present():
    def meta(mid, fam, kind, title):
        return {"metric": mid, "family": fam, "kind": kind, "title": title}

    metrics = [meta("induction", "induction", "attention", "Induction (stripe)"),
               meta("self_attention", "self_attention", "attention", "Self-attention"),  # a new metric: no template change
               meta("ov_copying", "ov_copying", "weights", "OV copying"),
               meta("ioi_mean_ablation", "ioi", "task", "IOI: mean ablation, fraction of the metric lost"),
               meta("ioi_dla", "ioi", "task", "IOI: direct logit attribution (logits)"),
               meta("ioi_resample_ablation_kl", "ioi", "task", "IOI: resample ablation, KL"),
               meta("greater_than_mean_ablation", "greater_than", "task", "Greater-than: mean ablation"),
               meta("greater_than_new_measure", "greater_than", "task", "Greater-than: a new measure")]
    t = home_tables(metrics)
    assert [(b["kind"], [m["metric"] for m in b["metrics"]]) for b in t["behaviours"]] == [
        ("attention", ["induction", "self_attention"]), ("weights", ["ov_copying"])]
    assert [m for m, _ in t["measures"]] == ["mean_ablation", "resample_ablation_kl", "dla", "new_measure"]
    assert [r["title"] for r in t["tasks"]] == ["Greater-than", "IOI"]
    assert set(t["tasks"][1]["cells"]) == {"mean_ablation", "dla", "resample_ablation_kl"}
    assert measure_label("resample_ablation_kl") == "resample ablation KL" and measure_label("dla") == "DLA"


@pytest.mark.unit
def test_numbers_are_formatted_as_what_they_are():
    assert fmt(0) == "0" and fmt(32) == "32" and fmt(np.int64(7)) == "7"
    assert fmt(0.5) == "0.500" and fmt(2.0) == "2.000" and fmt(1.23456, 2) == "1.23"
    assert fmt(True) == "true" and fmt(None) == "n/a" and fmt(float("nan")) == "n/a"


@pytest.mark.integration
def test_task_numbers_on_the_model_page_are_integers_where_they_are(varied):
    html = (varied / "site" / "models" / "gpt2-small.html").read_text()
    assert "n_prompts = 32; seed = 0;" in html
    assert "n_prompts = 32.000" not in html and "seed = 0.000" not in html
    assert re.search(r"accuracy = \d\.\d{3}", html)  # measurements keep their decimals
