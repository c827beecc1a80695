"""The published site in a real headless Chromium: from the home page through a mosaic to a head
page, head search, the validation table, and a hostile vocabulary; no console errors, no script
from a token ever runs. Screenshots land in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import sitekit

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (Debian's chromium package); browser tests need it")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Watch:
    """A page that records console errors, page errors, dialogs (alert) and requests leaving 127.0.0.1."""

    def __init__(self, browser, base: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.base = base
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("request", lambda r: None if r.url.startswith((base, "data:")) else self.problems.append(f"outside request: {r.url}"))

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def two(tmp_path_factory, constructed_dir):
    return sitekit.two_model_wiki(tmp_path_factory, constructed_dir)[0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return sitekit.synthetic_wiki(tmp_path_factory, n_models=3)


def test_home_to_mosaic_to_head_page(browser, two):
    with sitekit.serve(two / "site") as base:
        w = Watch(browser, base)
        w.goto("index.html")
        assert "Head Wiki" in w.page.title()
        w.shot("01-home")
        w.page.click("text=Induction (stripe) >> nth=0")  # the mosaics list on the home page
        w.page.wait_for_url(re.compile(r"mosaics/induction\.html$"))
        assert w.page.locator("svg.hw-heatmap").count() == 2  # constructed and evil-vocab, side by side
        assert w.page.locator("svg.hw-legend").count() >= 1
        w.shot("02-mosaic-induction")
        w.page.locator('a[href="../heads/constructed/L1H0.html"] rect').click()
        w.page.wait_for_url(re.compile(r"heads/constructed/L1H0\.html$"))
        page = w.page
        assert page.locator("h1").inner_text() == "constructed L1H0"
        assert "induction head" in page.locator("ul.hw-labels").inner_text()
        attn = page.locator("svg.hw-attn").first
        assert attn.is_visible() and attn.bounding_box()["width"] > 100
        assert page.locator("svg.hw-attn image").first.evaluate("img => img.getBBox().width") > 0
        rows = page.locator(".hw-scores tbody tr:not(.hw-group)")
        assert rows.count() >= 3
        # the cross-model columns and the similar heads come from the layer's sidecar
        page.wait_for_function("document.querySelector('td[data-x=\"induction\"]').textContent.includes('of')")
        assert "2 models" in page.locator("#hw-n").inner_text()
        assert page.locator("#hw-similar li").count() >= 1
        # hover an attention cell: the read-out names the query and key tokens
        box = attn.bounding_box()
        attn.hover(position={"x": box["width"] - 10, "y": box["height"] - 10})
        assert "query" in page.locator(".hw-readout").inner_text()
        w.shot("03-head-constructed-L1H0")
        page.click("text=every head of constructed")
        page.wait_for_url(re.compile(r"models/constructed\.html$"))
        assert page.locator("svg.hw-heatmap").count() >= 3
        w.shot("04-model-constructed")
        assert w.problems == [], w.problems
        w.close()


def test_hostile_vocabulary_stays_text(browser, two):
    with sitekit.serve(two / "site") as base:
        w = Watch(browser, base)
        for path in ("models/evil-vocab.html", "heads/evil-vocab/L0H0.html", "heads/evil-vocab/L1H1.html", "mosaics/ov_copying.html"):
            w.goto(path)
        w.goto("heads/evil-vocab/L0H0.html")
        labels = w.page.locator("svg.hw-attn text").all_text_contents()
        assert any(t in labels for t in ("<!--", "&amp;", "&lt;b&gt;", "`code`", "|", "fish", "⟨U+0007⟩"))
        chips = w.page.locator("code.hw-tok").all_text_contents()
        assert chips and not any("\u202e" in c for c in chips)
        w.shot("05-head-evil-vocab")
        w.goto("models/evil-vocab.html")
        prompts = w.page.locator(".hw-prompts code.hw-tok").all_text_contents()
        assert prompts and all("\u202e" not in p for p in prompts)
        w.shot("06-model-evil-vocab")
        # the theme's search box over the same tokens
        w.page.click("label.md-search__icon, .md-search__input >> nth=0", timeout=5000)
        w.page.fill("input.md-search__input", "script")
        w.page.wait_for_timeout(1500)
        w.shot("07-theme-search-script")
        assert not w.page.evaluate("[...document.scripts].some(s => s.textContent.includes('alert('))")
        assert not w.page.evaluate("[...document.querySelectorAll('[onload], [onerror], a[href^=\"javascript:\"]')].length")
        assert w.problems == [], w.problems
        w.close()


def test_find_a_head_by_name_and_by_layer_head(browser, synthetic):
    with sitekit.serve(synthetic / "site") as base:
        w = Watch(browser, base)
        w.goto("find.html?head=gpt2-small%209.1")
        first = w.page.locator("#hw-results li a").first
        assert first.inner_text() == "gpt2-small L9H1"
        w.shot("08-find-gpt2-small-9.1")
        first.click()
        w.page.wait_for_url(re.compile(r"heads/gpt2-small/L9H1\.html$"))
        w.shot("09-head-gpt2-small-L9H1")
        # the search box in a head page's header
        w.page.fill("input[name=head]", "L9H1")
        w.page.press("input[name=head]", "Enter")
        w.page.wait_for_url(re.compile(r"find\.html\?head=L9H1"))
        results = w.page.locator("#hw-results li a").all_text_contents()
        assert "gpt2-small L9H1" in results and "gpt2-medium L9H1" in results
        assert not any(r.startswith("distilgpt2") for r in results)  # 6 layers: it has no layer 9
        w.page.fill("#hw-q", "induction gpt2-small")
        w.page.wait_for_timeout(200)
        labelled = w.page.locator("#hw-results li").all_text_contents()
        assert labelled and all(r.startswith("gpt2-small") and "induction" in r for r in labelled)
        assert any("induction head" in r for r in labelled)
        w.shot("10-find-induction")
        w.goto("about.html")
        assert "has not been built yet" not in w.page.content()
        assert w.page.locator("table.hw-validation tbody tr").count() >= 15
        assert w.page.locator(".hw-agrees, .hw-differs").count() > 20
        w.shot("11-about-validation")
        w.goto("mosaics/ioi_dla.html")
        assert w.page.locator("svg.hw-heatmap").count() == 3
        w.shot("12-mosaic-ioi-dla")
        w.goto("data.html")
        href = w.page.locator('a[href="downloads/wiki.duckdb"]').get_attribute("href")
        assert w.page.request.get(base + href).ok
        assert w.problems == [], w.problems
        w.close()
