"""The home page and the mosaics in a real headless Chromium, at the zoo's size (two 2-layer models)
and at a larger synthetic size (18 model shapes, gpt2-xl's 1,200 heads among them): no console error,
the search box first, the mosaics' table, the overview that fits a laptop screen, grids loaded as they
come into view with cells large enough to hover, and a cell that opens its head page. Screenshots
land in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from test_browser import CHROMIUM, Watch, browser  # noqa: F401 - the module's browser fixture

from support import sitekit

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (Debian's chromium package); browser tests need it")]

LAPTOP = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def two(tmp_path_factory, constructed_dir):
    return sitekit.two_model_wiki(tmp_path_factory, constructed_dir)[0]


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    return sitekit.varied_synthetic_wiki(tmp_path_factory)


def _home_reads(w: Watch) -> None:
    """The search box comes before any section; the mosaics are a table of kinds and of tasks by measures."""
    w.goto("index.html")
    order = w.page.evaluate("""() => { const c = document.querySelector('article'), f = c.querySelector('form.hw-find'),
                                        h = c.querySelector('h2'); return f.compareDocumentPosition(h) & Node.DOCUMENT_POSITION_FOLLOWING; }""")
    assert order, "the search box is not before the first section"
    assert w.page.locator(".hw-home table th", has_text="Attention patterns").count() == 1
    assert w.page.locator(".hw-home a[href^='mosaics/']").count() >= 3


def test_zoo_home_and_mosaic(browser, two):  # noqa: F811
    with sitekit.serve(two / "site") as base:
        w = Watch(browser, base)
        w.page.set_viewport_size(LAPTOP)
        _home_reads(w)
        w.shot("30-zoo-home")
        w.goto("mosaics/induction.html")
        grids = w.page.locator("svg.hw-heatmap")
        assert grids.count() == 2 and w.page.locator(".hw-lazy").count() == 0  # two tiny models: drawn inline
        cell = w.page.locator('a[href="../heads/evil-vocab/L1H1.html"] rect')
        box = cell.bounding_box()
        assert box["width"] >= 12 and box["height"] >= 12, box  # large enough to see and hover
        w.shot("31-zoo-mosaic-induction")
        cell.click()
        w.page.wait_for_url(re.compile(r"heads/evil-vocab/L1H1\.html$"))
        assert w.page.locator("h1").inner_text() == "evil-vocab L1H1"
        assert w.problems == [], w.problems
        w.close()


def test_larger_home_mosaic_and_model_page(browser, varied):  # noqa: F811
    with sitekit.serve(varied / "site") as base:
        w = Watch(browser, base)
        w.page.set_viewport_size(LAPTOP)
        _home_reads(w)
        tasks = w.page.locator(".hw-home-tasks tbody tr")
        assert tasks.count() >= 3 and "DLA" in w.page.locator(".hw-home-tasks thead").inner_text()
        w.shot("32-synthetic-home")
        w.goto("mosaics/induction.html")
        overview = w.page.locator(".hw-overview")
        box = overview.bounding_box()
        assert box["x"] + box["width"] <= LAPTOP["width"] and box["height"] <= LAPTOP["height"] - 200, box  # one screen
        thumbs = w.page.locator("a.hw-thumb")
        assert thumbs.count() == len(sitekit.VARIED)
        w.page.screenshot(path=str(_artifact("33-synthetic-mosaic-overview")))  # the first screen, as a visitor sees it
        w.page.click("a.hw-thumb[href='#m-gpt2-xl']")
        w.page.wait_for_selector("#m-gpt2-xl svg.hw-heatmap", timeout=10_000)  # loaded when it came into view
        cell = w.page.locator('#m-gpt2-xl a[href="../heads/gpt2-xl/L47H24.html"] rect')
        cbox = cell.bounding_box()
        assert cbox["width"] >= 12 and cbox["height"] >= 12, cbox
        assert re.fullmatch(r"L47H24 -?\d\.\d{3}", cell.locator("title").text_content())
        w.page.screenshot(path=str(_artifact("34-synthetic-mosaic-gpt2-xl")))
        cell.click()
        w.page.wait_for_url(re.compile(r"heads/gpt2-xl/L47H24\.html$"))
        assert w.page.locator("h1").inner_text() == "gpt2-xl L47H24"
        w.goto("models/gpt2-xl.html")
        w.page.locator("#map-induction").scroll_into_view_if_needed()
        w.page.wait_for_selector("#map-induction svg.hw-heatmap", timeout=10_000)
        assert w.page.locator("#map-induction svg.hw-heatmap a").count() == 48 * 25
        w.page.screenshot(path=str(_artifact("35-synthetic-model-gpt2-xl-heatmaps")))
        assert w.problems == [], w.problems
        w.close()


def _artifact(name: str):
    from test_browser import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_head_page_examples_and_composition(browser, two):  # noqa: F811
    """A head page draws its examples on text (from the script beside it, tokens escaped, the query marked) and
    lists its composition links; the model page draws the composition graph with nodes linking to head pages."""
    with sitekit.serve(two / "site") as base:
        w = Watch(browser, base)
        w.goto("heads/evil-vocab/L1H1.html")
        w.page.wait_for_selector("#hw-examples .hw-ex")
        assert w.page.locator("#hw-examples .hw-ex p").count() >= 5
        assert w.page.locator("#hw-examples b.q").count() >= 5  # each context marks its query token
        assert w.page.locator(".hw-comp a[href$='.html']").count() >= 1  # heads it reads from (layer 0)
        w.shot("36-head-examples-composition")
        w.goto("models/evil-vocab.html")
        nodes = w.page.locator("svg.hw-comp-graph a[href*='heads/evil-vocab/L']")
        assert nodes.count() >= 2
        w.shot("37-model-composition-graph")
        assert w.problems == [], w.problems
        w.close()
