"""The query page in a real headless Chromium: DuckDB-WASM, served by the site itself, answers every example of the
data page with the rows `wiki query` returns; a shared ?sql= link reproduces a result; head cells link to head
pages; sorting and the CSV/JSON downloads; bad SQL, a write and an outside URL give plain errors, no console error
and no request outside the site. Screenshots and the timings land in test-artifacts/ (git-ignored).

The engine comes from the user cache (`wiki fetch-engine`, run by scripts/setup.sh). Without it the tests skip,
except on CI (CI=true), where they fail: there the engine must be there."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from test_browser import browser  # noqa: F401 - the module's browser fixture

from support import run_wiki, sitekit
from wiki_builder.site import engine
from wiki_builder.site.queries import EXAMPLES

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
DONE = "['done', 'error'].includes(document.getElementById('hw-query').dataset.state)"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium (Debian's chromium package); browser tests need it")]


@pytest.fixture(scope="module")
def wiki(tmp_path_factory) -> Path:
    """The synthetic 3-model wiki (shared with test_browser.py), built with the engine in its site."""
    folder, why = engine.ensure()
    if folder is None:
        message = f"DuckDB-WASM is not available ({why}). {engine.how_to_add()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    root = sitekit.synthetic_wiki(tmp_path_factory, n_models=3)
    assert (root / "site" / engine.SITE_DIR / "duckdb-eh.wasm").is_file(), "the site was built without the engine"
    return root


class Watch:
    """A page that records console errors, page errors, dialogs and requests leaving the served site."""

    def __init__(self, browser, base: str) -> None:  # noqa: F811
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        own = (base, "data:", "blob:" + base.rstrip("/"))  # a download is a blob: URL of the site's own origin
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.context.on("request", lambda r: self.requests.append(r.url) if r.url.startswith(own) else self.problems.append(f"outside request: {r.url}"))

    def run(self, path: str) -> float:
        """Open a page of the site that runs a query; seconds until its result (or error) is shown."""
        start = time.perf_counter()
        self.page.goto(path)
        self.page.wait_for_function(DONE, timeout=90_000)
        return time.perf_counter() - start

    def click_run(self, locator) -> None:
        locator.click()
        self.page.wait_for_function(DONE, timeout=90_000)

    def table(self) -> tuple[list[str], list[list[str]]]:
        return self.page.evaluate("""() => [
            [...document.querySelectorAll('.hw-q-table thead th')].map(th => th.textContent.replace(/ [\\u25b2\\u25bc]$/, '')),
            [...document.querySelectorAll('.hw-q-table tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))]""")

    def status(self) -> str:
        return self.page.locator("#hw-q-status").inner_text()

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def same(expected, shown: str) -> bool:
    """One cell: `wiki query`'s JSON value against the text the page shows (numbers to 6 significant digits)."""
    if expected is None:
        return shown == "NULL"
    if isinstance(expected, bool):
        return shown == str(expected).lower()
    if isinstance(expected, (int, float)):
        try:
            x = float(shown)
        except ValueError:
            return False
        return math.isnan(x) if math.isnan(expected) else math.isclose(x, expected, rel_tol=1e-5, abs_tol=1e-12)
    if isinstance(expected, (list, dict)):
        return json.dumps(expected) == json.dumps(json.loads(shown))
    return shown == str(expected)


def assert_same_rows(sql: str, expected: list[dict], shown: tuple[list[str], list[list[str]]]) -> None:
    cols, rows = shown
    assert len(rows) == len(expected), f"{len(rows)} rows in the page, {len(expected)} from wiki query: {sql}"
    if expected:
        assert cols == list(expected[0]), f"columns differ for {sql}: {cols} vs {list(expected[0])}"
    want = [list(r.values()) for r in expected]
    ordered = "ORDER BY" in sql.upper().rsplit(")", 1)[-1]  # an ORDER BY outside the window functions: the order counts
    if ordered:
        for i, (w, r) in enumerate(zip(want, rows)):
            assert all(same(a, b) for a, b in zip(w, r)), f"row {i} of {sql}: page {r}, wiki query {w}"
        return
    left = list(rows)
    for w in want:
        hit = next((i for i, r in enumerate(left) if all(same(a, b) for a, b in zip(w, r))), None)
        assert hit is not None, f"wiki query's row {w} is not in the page's result of {sql}: {left[:5]}"
        left.pop(hit)


def wiki_query(root: Path, sql: str) -> list[dict]:
    return json.loads(run_wiki("query", sql, "--format", "json", "--root", str(root)).stdout)


def test_every_example_returns_the_rows_of_wiki_query(browser, wiki):  # noqa: F811
    with sitekit.serve(wiki / "site") as base:
        w = Watch(browser, base)
        w.page.goto(base + "data.html")
        data_page = w.page.locator("pre").all_inner_texts()
        for title, sql in EXAMPLES:  # the data page shows exactly these examples
            assert any(f"-- {title}\n{sql};" in block for block in data_page), title
        w.page.goto(base + "index.html")
        w.page.wait_for_load_state("networkidle")
        assert not [u for u in w.requests if "duckdb" in u or "query." in u], w.requests  # only the query page loads the engine
        w.page.goto(base + "query.html")
        assert w.page.locator("#hw-q-missing").count() == 0
        assert not [u for u in w.requests if "duckdb-eh.wasm" in u]  # not before the first query
        buttons = w.page.locator("button.hw-q-example")
        assert buttons.count() == len(EXAMPLES)
        timings = []
        for i, (title, sql) in enumerate(EXAMPLES):
            assert buttons.nth(i).inner_text() == title
            start = time.perf_counter()
            w.click_run(buttons.nth(i))
            timings.append(time.perf_counter() - start)
            assert w.page.locator("#hw-query").get_attribute("data-state") == "done", w.status()
            assert w.page.locator("#hw-sql").input_value() == sql
            expected = wiki_query(wiki, sql)
            assert w.status().startswith(f"{len(expected)} row"), w.status()
            assert_same_rows(sql, expected, w.table())
            w.shot(f"20-query-example-{i + 1}")
        assert len(wiki_query(wiki, EXAMPLES[0][1])) == 10  # the examples are not all empty: the comparison means something
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "query-timings.json").write_text(json.dumps({"first_result_s": round(timings[0], 2),
                                                                  "later_results_s": [round(t, 2) for t in timings[1:]]}))
        assert w.problems == [], w.problems
        w.close()


def test_a_shared_link_runs_its_query_and_heads_link_to_their_pages(browser, wiki):  # noqa: F811
    sql = EXAMPLES[0][1]
    with sitekit.serve(wiki / "site") as base:
        w = Watch(browser, base)
        first = w.run(base + "query.html?sql=" + quote(sql, safe=""))
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "query-first-result.txt").write_text(f"{first:.2f} s from opening query.html?sql=... to the first result\n")
        assert w.page.locator("#hw-sql").input_value() == sql
        shown = w.table()
        assert_same_rows(sql, wiki_query(wiki, sql), shown)
        shared = w.page.locator("#hw-q-share").get_attribute("href")
        assert shared.startswith("query.html?sql=")
        w.shot("21-query-shared-link")
        # the link, opened afresh, gives the same table
        w.run(base + shared)
        assert w.table() == shown
        # sorting by a header: ascending, then descending; the row count stays
        w.page.locator(".hw-q-table th button", has_text="value").click()
        values = [float(r[3]) for r in w.table()[1]]
        assert values == sorted(values) and len(values) == 10
        w.page.locator(".hw-q-table th button", has_text="value").click()
        assert [float(r[3]) for r in w.table()[1]] == sorted(values, reverse=True)
        # downloads hold the result
        with w.page.expect_download() as dl:
            w.page.click("#hw-q-csv")
        rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text())))
        assert rows[0] == ["model", "layer", "head", "value"] and len(rows) == 11
        with w.page.expect_download() as dl:
            w.page.click("#hw-q-json")
        objs = json.loads(Path(dl.value.path()).read_text())
        assert len(objs) == 10 and set(objs[0]) == {"model", "layer", "head", "value"}
        # a long result: 1,000 rows shown, every row in the count and the downloads
        n = wiki_query(wiki, "SELECT count(*) AS n FROM scores")[0]["n"]
        assert n > 1000
        w.page.fill("#hw-sql", "SELECT model, layer, head, metric, value FROM scores")
        w.click_run(w.page.locator("#hw-q-run"))
        assert w.status().startswith(f"{n:,} rows") and "the first 1,000 are shown" in w.status()
        assert w.page.locator(".hw-q-table tbody tr").count() == 1000
        with w.page.expect_download() as dl:
            w.page.click("#hw-q-csv")
        assert len(Path(dl.value.path()).read_text().splitlines()) == n + 1
        # hostile strings from the data stay text (a dialog would be recorded as a problem)
        w.page.fill("#hw-sql", "SELECT DISTINCT unnest(tokens) AS token FROM attention_examples")
        w.click_run(w.page.locator("#hw-q-run"))
        tokens = [r[0] for r in w.table()[1]]
        assert "<script>alert(1)</script>" in tokens and "[x](javascript:alert(1))" in tokens
        assert w.page.locator(".hw-q-table script, .hw-q-table a[href^='javascript']").count() == 0
        w.shot("23-query-hostile-tokens")
        w.run(base + shared)
        # a head cell links to that head's page
        model, layer, head = w.table()[1][0][:3]
        w.page.locator(".hw-q-table tbody tr").first.locator("td").nth(2).locator("a").click()
        w.page.wait_for_url(re.compile(rf"heads/{re.escape(model)}/L{layer}H{head}\.html$"))
        assert w.page.locator("h1").inner_text() == f"{model} L{layer}H{head}"
        assert w.problems == [], w.problems
        w.close()


BAD = [("SELEC model FROM scores", "Parser Error"), ("SELECT nope FROM scores", "nope"),
       ("CREATE TABLE wiki.x AS SELECT 1", "read-only"), ("DELETE FROM scores", "read-only"),
       ("SELECT * FROM read_csv('http://example.com/x.csv')", "disabled"), ("SET enable_external_access = true", "locked")]


def test_bad_sql_gives_a_plain_error(browser, wiki):  # noqa: F811
    """Bad SQL, a write, an outside URL and an attempt to unlock: each a plain error, the engine still running after."""
    with sitekit.serve(wiki / "site") as base:
        w = Watch(browser, base)
        for i, (sql, says) in enumerate(BAD):
            if i == 0:
                w.run(base + "query.html?sql=" + quote(sql, safe=""))
            else:
                w.page.fill("#hw-sql", sql)
                w.click_run(w.page.locator("#hw-q-run"))
            assert w.page.locator("#hw-query").get_attribute("data-state") == "error", sql
            status = w.status()
            assert status.startswith("Error: ") and says.lower() in status.lower(), (sql, status)
            assert w.page.locator(".hw-q-table").count() == 0 and w.page.locator("#hw-q-csv").is_disabled()
            if i == 0:
                assert status.count("LINE 1:") == 1, status  # the engine's message, each part once
                w.shot("22-query-error")
            w.click_run(w.page.locator("button.hw-q-example").first)  # the engine is still there: the next query runs
            assert w.page.locator("#hw-query").get_attribute("data-state") == "done"
        assert w.problems == [], w.problems
        w.close()
