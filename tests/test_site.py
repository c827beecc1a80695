"""A real `wiki build` of the site: pages, heatmaps, links, labels, page weight, and rebuilds."""

from __future__ import annotations

import re

import pytest

from support import run_wiki

pytestmark = pytest.mark.integration  # a real `wiki build` (built_wiki)


def test_site_pages_exist(built_wiki):
    site = built_wiki / "site"
    for page in ("index.html", "find.html", "about.html", "data.html", "models/index.html", "metrics/index.html", "mosaics/index.html"):
        assert (site / page).is_file(), page
    assert (site / "models" / "constructed.html").is_file()
    for layer in range(2):
        for head in range(2):
            assert (site / "heads" / "constructed" / f"L{layer}H{head}.html").is_file()
        assert (site / "heads" / "constructed" / f"L{layer}.x.js").is_file()
    for metric in ("induction", "prev_token", "duplicate_token"):
        assert (site / "metrics" / f"{metric}.html").is_file()
        assert (site / "mosaics" / f"{metric}.html").is_file()
    assert (site / "heads-index.js").is_file()
    assert (site / "downloads" / "wiki.duckdb").is_file()
    assert (built_wiki / "mkdocs.yml").is_file() and (built_wiki / "site_src" / "index.md").is_file()


def test_heatmap_cells_link_to_head_pages_with_values(built_wiki):
    html = (built_wiki / "site" / "models" / "constructed.html").read_text()
    assert "hw-fragment" not in html  # every SVG fragment was put back after mkdocs
    svgs = re.findall(r"<svg class=\"hw-heatmap\".*?</svg>", html, re.S)
    assert len(svgs) >= 3  # one per metric with scores: the three attention scores, plus any other family's
    for svg in svgs:
        cells = re.findall(r'<a href="([^"]+)"><rect[^>]*><title>([^<]+)</title>', svg)
        assert len(cells) == 4
        for href, title in cells:
            assert (built_wiki / "site" / "models" / href).resolve().is_file(), href
            assert re.fullmatch(r"L\dH\d (-?\d+\.\d{3}|n/a)", title), title  # distances in tokens have two digits


def test_mosaic_links_every_head(built_wiki):
    html = (built_wiki / "site" / "mosaics" / "induction.html").read_text()
    hrefs = re.findall(r'<a href="(\.\./heads/[^"]+)"><rect', html)
    assert sorted(hrefs) == sorted(f"../heads/constructed/L{l}H{h}.html" for l in range(2) for h in range(2))
    assert 'class="hw-legend"' in html


def test_head_page_has_scores_ranks_and_labels(built_wiki):
    html = (built_wiki / "site" / "heads" / "constructed" / "L1H0.html").read_text()
    assert "Induction (stripe)" in html and "constructed 1.0" in html
    assert re.search(r"<strong>induction head</strong>: .*stripe 1\.00 \(≥ 0\.4\), 1st of 4 heads", html)
    assert 'svg class="hw-attn"' in html and "repeated random tokens" in html  # attention pattern on the probe
    assert 'src="L1.x.js"' in html and 'data-x="induction"' in html  # cross-model ranks come from the sidecar
    side = (built_wiki / "site" / "heads" / "constructed" / "L1.x.js").read_text()
    assert side.startswith("window.HW_XL=") and '"induction":[1,' in side


def test_head_pages_are_small_and_do_not_carry_the_whole_navigation(built_wiki):
    html = (built_wiki / "site" / "heads" / "constructed" / "L0H0.html").read_text()
    html = re.sub(r'<div class="hw-comp">.*?</div></div>', "", html)  # its composition lists link the heads it reads and feeds
    linked_heads = set(re.findall(r'href="[^"]*(L\dH\d)\.html"', html))
    assert linked_heads <= {"L0H1", "L1H0"}  # its neighbours only
    assert len(html.encode()) < 50_000


def test_rebuild_rewrites_only_changed_pages(tmp_path, constructed_dir):
    """Two models, then one of them really changes (its layer-1 attention is zeroed) and is rebuilt with --force:
    its head pages and the cross-model pages are rewritten, the other model's head pages keep their bytes and mtimes."""
    import shutil
    import time

    import torch
    from safetensors.torch import load_file, save_file

    from support import FAST
    from wiki_builder.site.render import render_markdown
    from wiki_builder.workspace import open_workspace

    alpha, beta, root = tmp_path / "models" / "alpha", tmp_path / "models" / "beta", tmp_path / "wiki"
    shutil.copytree(constructed_dir, alpha)
    shutil.copytree(constructed_dir, beta)
    run_wiki("build", "--models", f"{alpha},{beta}", *FAST, "--root", str(root))
    src = root / "site_src"

    def files(pattern: str) -> dict[str, tuple[int, bytes]]:
        """(mtime, bytes) of every page; the renderer's own bookkeeping (.manifest.json) aside."""
        return {p.relative_to(src).as_posix(): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(src.glob(pattern))
                if p.is_file() and p.name != ".manifest.json"}

    everything, heads_a, heads_b = files("**/*"), files("heads/alpha/L*H*.html"), files("heads/beta/L*H*.html")
    assert len(heads_a) == len(heads_b) == 4
    # nothing changed: rendering again writes nothing
    stats = render_markdown(open_workspace(root))
    assert stats.written == 0 and stats.heads_rendered == 0 and stats.unchanged > 10, stats
    assert files("**/*") == everything

    # beta changes: no attention in layer 1, so its induction and positional heads are gone
    weights = load_file(beta / "model.safetensors")
    key = next(k for k in weights if k.endswith("h.1.attn.c_attn.weight"))
    weights[key] = torch.zeros_like(weights[key])
    save_file(weights, beta / "model.safetensors", metadata={"format": "pt"})
    time.sleep(0.05)
    run_wiki("build", "--models", str(beta), *FAST, "--force", "--root", str(root))

    after = files("**/*")
    changed = {rel for rel, (mtime, data) in after.items() if rel not in everything or everything[rel] != (mtime, data)}
    assert files("heads/alpha/L*H*.html") == heads_a  # the other model's head pages: same bytes, not even rewritten
    untouched = {rel for rel in everything if "alpha" in rel and not rel.endswith(".x.js")}  # its model page, heatmaps, scores too
    assert len(untouched) > 5 and not untouched & changed, sorted(untouched & changed)
    assert {"heads/beta/L1H0.html", "heads/beta/L1H1.html", "models/beta.md"} <= changed, sorted(changed)
    assert "heads/alpha/L1.x.js" in changed, sorted(changed)  # cross-model: alpha's layer-1 heads lost their twins in beta
    assert any("induction" in rel and "mosaics/" in rel for rel in changed), sorted(changed)  # the mosaic shows both models
    for rel in changed & set(everything):
        assert after[rel][1] != everything[rel][1], f"{rel} was rewritten with the same content"
