"""The look of the pages: the jinja2 environment (templates and filters), what the head pages borrow
from the mkdocs theme, and a hash of the renderer's code, templates and assets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..models.resolve import slugify
from ..workspace import Workspace
from . import tokens as tok
from .data import KIND_TITLES
from .heatmap import fmt
from .labels import task_name
from .mkdocs_build import read_config
from .text import human, ordinal, pre_text, prose, size_text
from .writer import RENDER_VERSION

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
ASSETS = HERE / "skeleton" / "assets"


def environment() -> Environment:
    """The templates, autoescaped, with the site's filters."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["slug"] = slugify
    env.filters["fmt"] = fmt
    env.filters["ordinal"] = ordinal
    env.filters["human"] = human
    env.filters["size"] = size_text
    env.filters["tok"] = lambda t, n=tok.MAX_CHARS: tok.html(t, n)
    env.filters["text"] = prose
    env.filters["pre"] = pre_text
    env.filters["plain"] = lambda s: Markup(json.dumps(tok.plain(s), ensure_ascii=False))  # a YAML-safe quoted title
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    env.filters["pct"] = lambda p: "n/a" if p is None or not np.isfinite(p) else f"{p:.1f}"
    env.globals["kind_titles"] = KIND_TITLES
    env.globals["task_name"] = task_name
    return env


def code_hash() -> str:
    """Changes whenever the renderer, its templates or its assets change: every page is then re-rendered."""
    h = hashlib.sha1(RENDER_VERSION.encode())
    for p in sorted([*HERE.glob("*.py"), *TEMPLATES.glob("*"), *ASSETS.glob("*")]):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def site_theme(ws: Workspace) -> dict[str, Any]:
    """What the standalone head pages borrow from the mkdocs site: its name and the theme's stylesheets."""
    site_name, theme_name, primary = "Head Wiki", "material", "indigo"
    try:
        cfg = read_config(ws.mkdocs_yml)
        site_name = str(cfg.get("site_name") or site_name)
        theme = cfg.get("theme") or {}
        theme_name = theme if isinstance(theme, str) else str(theme.get("name") or theme_name)
        palette = theme.get("palette") if isinstance(theme, dict) else None
        if isinstance(palette, list) and palette and isinstance(palette[0], dict):
            palette = palette[0]
        if isinstance(palette, dict) and palette.get("primary"):
            primary = str(palette["primary"])
    except Exception:  # noqa: BLE001 - an odd config just means default looks
        pass
    css: list[str] = []
    if theme_name == "material":
        try:
            import material

            sheets = Path(material.__file__).resolve().parent / "templates" / "assets" / "stylesheets"
            css = [f"assets/stylesheets/{p.name}" for pat in ("main.*.min.css", "palette.*.min.css") for p in sorted(sheets.glob(pat))[:1]]
        except ImportError:
            pass
    return {"site_name": site_name, "css": css, "primary": primary}
