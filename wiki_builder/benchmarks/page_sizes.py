"""The weight of a built site, page kind by page kind: the largest home, model, metric, mosaic, head... page
and whether each kind keeps to its limit (head pages under 50 KB, every navigation page under 1 MB).

Used by ``wiki site-bench`` (at the registry's size) and by the tests (on a small synthetic site)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KB = 1024
HEAD_LIMIT = 50 * KB
NAV_LIMIT = 1024 * KB
_FOLDERS = {"models": "model", "metrics": "metric", "mosaics": "mosaic"}


@dataclass(frozen=True)
class Largest:
    kind: str
    page: str  # relative to the site's folder
    bytes: int
    count: int  # pages of this kind
    limit: int

    @property
    def ok(self) -> bool:
        return self.bytes < self.limit


def page_kind(rel: str) -> str:
    """``heads/gpt2/L0H0.html`` -> head, ``models/gpt2.html`` -> model, ``models/index.html`` -> models list,
    ``index.html`` -> home, ``find.html`` -> find."""
    parts = rel.split("/")
    if parts[0] == "heads":
        return "head"
    if len(parts) == 1:
        return "home" if parts[0] == "index.html" else parts[0].removesuffix(".html")
    if parts[-1] == "index.html" and len(parts) == 2:
        return f"{parts[0]} list"
    return _FOLDERS.get(parts[0], parts[0])


def largest_pages(site: Path) -> list[Largest]:
    """The largest page of each kind in a built site (every .html file but mkdocs' 404 page), largest kind first."""
    site = Path(site)
    best: dict[str, tuple[str, int]] = {}
    count: dict[str, int] = {}
    for p in site.rglob("*.html"):
        rel = p.relative_to(site).as_posix()
        if rel in ("404.html",) or rel.startswith(("assets/", "search/", "downloads/")):
            continue
        kind, size = page_kind(rel), p.stat().st_size
        count[kind] = count.get(kind, 0) + 1
        if size > best.get(kind, ("", -1))[1]:
            best[kind] = (rel, size)
    out = [Largest(k, rel, size, count[k], HEAD_LIMIT if k == "head" else NAV_LIMIT) for k, (rel, size) in best.items()]
    return sorted(out, key=lambda x: -x.bytes)


def largest_file(site: Path, pattern: str) -> tuple[str, int]:
    """The largest file matching ``pattern`` (a glob under the site), e.g. the lazily loaded grid scripts."""
    files = [(p.relative_to(site).as_posix(), p.stat().st_size) for p in Path(site).glob(pattern)]
    return max(files, key=lambda x: x[1]) if files else ("", 0)


def report(site: Path, out=print) -> bool:
    """Print the largest page of each kind with its limit; True when every kind keeps to its limit."""
    rows = largest_pages(site)
    out("  largest page of each kind:")
    for r in rows:
        out(f"    {r.kind:<14} {r.bytes / KB:9.1f} KB  ({r.count:,} page{'s' if r.count != 1 else ''}; limit {r.limit // KB:,} KB: "
            f"{'ok' if r.ok else 'OVER'})  {r.page}")
    grid, size = largest_file(site, "heads/*/grid-*.js")
    if grid:
        out(f"    {'grid script':<14} {size / KB:9.1f} KB  (loaded when its grid comes into view, no limit)  {grid}")
    return all(r.ok for r in rows)
