"""Large inline SVG (model heatmaps, mosaics) kept out of Markdown, and put back after mkdocs.

Python-Markdown and the theme's search indexer crawl through megabytes of raw SVG slowly, so a
navigation page holds a ``<!--hw-fragment:NAME-->`` comment and the HTML is stored in
``site_src/.fragments/NAME.html`` (a dot folder: mkdocs ignores it); ``inject_fragments`` puts
each fragment back in place of its comment in the built page.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup

from ..workspace import Workspace
from .writer import Writer

FRAGMENTS = ".fragments"
_FRAGMENT = re.compile(r"<!--hw-fragment:([A-Za-z0-9_./-]+)-->")


class Fragments:
    """The fragments of this render, page by page (``index.json`` lists them for ``inject_fragments``)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.pages: dict[str, list[str]] = {}

    def cached(self, page: str, key: str, produce: Any) -> Markup:
        """Store ``produce()``'s HTML as the page's next fragment and return its comment; ``produce`` is
        only called when ``key`` (a hash of its inputs) differs from the last build's."""
        names = self.pages.setdefault(page, [])
        name = f"{page[:-3] if page.endswith('.md') else page}-{len(names)}"
        names.append(name)
        rel = f"{FRAGMENTS}/{name}.html"
        if self.writer.entry(rel).get("key") == key and (self.writer.root / rel).is_file():
            self.writer.keep_as_is(rel)
        else:
            self.writer.write(rel, str(produce()), key=key)
        return Markup(f"<!--hw-fragment:{name}-->")

    def finish(self) -> None:
        index = {(p[:-3] + ".html" if p.endswith(".md") else p): names for p, names in sorted(self.pages.items())}
        self.writer.write(f"{FRAGMENTS}/index.json", json.dumps(index, indent=0, sort_keys=True))


def inject_fragments(ws: Workspace) -> int:
    """Replace the fragment comments in the built pages with the stored HTML; returns pages done."""
    src = ws.site_src / FRAGMENTS
    try:
        index = json.loads((src / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    done = 0
    for page, names in index.items():
        path = ws.site / page
        if not path.is_file():
            continue
        html = path.read_text(encoding="utf-8")

        def sub(m: re.Match, names: list[str] = names) -> str:
            frag = src / f"{m.group(1)}.html"
            return frag.read_text(encoding="utf-8") if m.group(1) in names and frag.is_file() else m.group(0)

        new = _FRAGMENT.sub(sub, html)
        if new != html:
            path.write_text(new, encoding="utf-8")
            done += 1
    return done
