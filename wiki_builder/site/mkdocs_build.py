"""Build site/ from site_src/: mkdocs for the navigation pages, then the head pages and downloads linked in.

``build_site`` runs ``python -m wiki_builder.site.mkdocs_build path/to/mkdocs.yml`` (``main`` below,
in a child process: mkdocs and its plugins stay out of the builder's process), which is ``mkdocs build --clean
--quiet`` with two folders of ``site_src/`` added to the config's ``exclude_docs`` (and a few
defaults filled in where the config is silent, see ``overrides``): ``heads/``
(tens of thousands of ready-made HTML pages and sidecars) and ``downloads/`` (the database and
Parquet files). mkdocs would copy every one of those files into ``site/`` on every build and
keep a File object for each; ``build_site`` hard-links them into the built site instead (a copy
where the filesystem cannot link), which takes a fraction of the time and no disk space.
The user's own ``exclude_docs`` entries are kept. Last, the large SVG fragments are put back
into the pages that hold them (:mod:`.fragments`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..faults import die_with_parent
from ..workspace import Workspace
from . import engine
from .fragments import inject_fragments

EXCLUDED = ("/heads/", "/downloads/")
# Top-level pages the builder writes: added to a config's navigation that does not list them
# (a mkdocs.yml made before they existed), after the user's own entries.
BUILDER_PAGES = (("Find a head", "find.md"), ("Models", "models/index.md"), ("Metrics", "metrics/index.md"),
                 ("Mosaics", "mosaics/index.md"), ("Data", "data.md"), ("Query", "query.md"), ("About", "about.md"))
NOT_IN_NAV = ("/models/*", "/metrics/*", "/mosaics/*")


def _nav_files(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for v in nav.values() for f in _nav_files(v)]
    return []


def read_config(config_file: Path) -> dict:
    """The raw mkdocs.yml as a dict ({} when unreadable); tags such as !!python/name are read as None."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)  # !!python/... tags: not needed here
    try:
        raw = yaml.load(config_file.read_text(encoding="utf-8"), Loader=_Loader) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def overrides(config_file: Path) -> dict:
    """What this build changes in the user's config: the excluded folders; the builder's top-level
    pages appended to a ``nav`` that lacks them; and, for mkdocs-material with no ``font`` setting,
    system fonts instead of Google Fonts (the site makes no request outside itself, so it works
    offline and a browser logs no failed request). Whatever mkdocs.yml states explicitly is kept."""
    raw = read_config(config_file)
    user = raw.get("exclude_docs")
    out: dict = {"exclude_docs": "\n".join([user.strip() if isinstance(user, str) else "", *EXCLUDED]).strip() + "\n"}
    nav = raw.get("nav")
    if isinstance(nav, list):
        listed = set(_nav_files(nav))
        extra = [{title: page} for title, page in BUILDER_PAGES if page not in listed]
        if extra:
            out["nav"] = nav + extra
        quiet = raw.get("not_in_nav")
        quiet = quiet if isinstance(quiet, str) else ""
        missing = [p for p in NOT_IN_NAV if p not in quiet.split()]
        if missing:
            out["not_in_nav"] = "\n".join([quiet.strip(), *missing]).strip() + "\n"
    theme = raw.get("theme")
    if theme == "material":
        out["theme"] = {"name": "material", "font": False}
    elif isinstance(theme, dict) and theme.get("name") == "material" and "font" not in theme and None not in theme.values():
        out["theme"] = {**theme, "font": False}
    return out


def main(argv: list[str] | None = None) -> int:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    args = sys.argv[1:] if argv is None else argv
    config_file = Path(args[0] if args else "mkdocs.yml")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s - %(message)s")
    logging.getLogger("mkdocs").setLevel(logging.ERROR)
    try:
        cfg = load_config(config_file=str(config_file), **overrides(config_file))
        build(cfg, dirty=False)
    except MkDocsException as exc:
        print(f"mkdocs: {exc}", file=sys.stderr)
        return 1
    return 0


class SiteBuildError(RuntimeError):
    """mkdocs failed; the message ends with its error output."""


def link_tree(src: Path, dst: Path) -> int:
    """Hard-link every (non-hidden) file under ``src`` into ``dst`` (a copy where linking fails)."""
    n = 0
    if not src.is_dir():
        return 0
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            s, d = Path(folder) / name, target / name
            if d.exists():
                d.unlink()
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)
            n += 1
    return n


def build_site(ws: Workspace) -> Path:
    """Build site/: mkdocs for the navigation pages (``main``, in a child process: ``mkdocs build --clean``
    with the head pages and downloads excluded), then the head pages and downloads linked in, then the
    large SVG fragments put into the pages that hold them."""
    cmd = [sys.executable, "-m", "wiki_builder.site.mkdocs_build", str(ws.mkdocs_yml)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")) if p)}
    # die_with_parent: a builder killed with kill -9 must not leave mkdocs writing into site/ behind it
    proc = subprocess.run(cmd, cwd=ws.root, capture_output=True, text=True, env=env, preexec_fn=die_with_parent)
    if proc.returncode != 0:
        raise SiteBuildError(f"mkdocs build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    for folder in ("heads", "downloads"):
        link_tree(ws.site_src / folder, ws.site / folder)
    engine.publish(ws.site, engine.installed())  # the query page's DuckDB-WASM, from the user cache (see .engine)
    inject_fragments(ws)
    return ws.site


if __name__ == "__main__":
    sys.exit(main())
