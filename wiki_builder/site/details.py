"""A head's per-metric details (the JSON in ``scores.detail``), rendered as their family declares them.

Each family declares what the keys of its details mean (``detail_fields``, see
:class:`wiki_builder.scores.base.Detail`), stored in the ``metrics`` table. Rendering follows the
declaration only: a ``token`` is a chip, ``tokens`` a row of chips, ``token_scores`` chips with
their numbers, ``numbers`` a small table, ``rows`` a small table (or, for rows of one token and its
tokens, "input → chips" lines). A key nobody declared, or a value that does not have its declared
shape, is shown as plain text and numbers: nothing is guessed to be a token. Every string is
untrusted and escaped (tokens through :func:`.tokens.chip`, the rest through :func:`.text.prose`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np

from ..scores.base import Detail, DetailFields
from .data import parse_json
from .heatmap import fmt
from .text import prose
from .tokens import chip

MAX_KEYS = 30  # keys of a details object or a ``numbers`` table
MAX_CHIPS = 24  # tokens in a row of chips
MAX_LINES = 8  # "input → chips" lines
MAX_ROWS = 12  # rows of a table
MAX_DEPTH = 3  # nesting of undeclared values shown as tables


def details_html(detail: Any, fields: DetailFields) -> str:
    """One metric's details for one head (JSON text or already parsed), as HTML."""
    value = parse_json(detail)
    if isinstance(value, dict):
        return _table({k: (v, fields.get(str(k))) for k, v in value.items()})
    return _plain(value)


@lru_cache(maxsize=4096)
def _key(k: str, limit: int) -> str:
    """A key or column name (the same few, on every page), escaped."""
    return str(prose(k, limit))


def _table(items: dict[Any, tuple[Any, Detail | None]]) -> str:
    rows = "".join(f"<tr><th>{_key(str(k), 60)}</th><td>{_value(v, d)}</td></tr>" for k, (v, d) in list(items.items())[:MAX_KEYS])
    return f'<table class="hw-detail">{rows}</table>'


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v: Any) -> str | None:
    """Numbers and flags as text (None for anything else)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt(v, 4)
    if isinstance(v, int):
        return str(v)
    return None


def _num(v: float) -> str:
    v = float(v)
    return f'<small class="hw-num">{v:.3g}</small>' if np.isfinite(v) else '<small class="hw-num">n/a</small>'


def _chips(parts: list[str], total: int) -> str:
    if total > len(parts):
        parts.append(f"<small>… {total - len(parts)} more</small>")
    return f'<span class="hw-chips">{" ".join(parts)}</span>'


def _value(v: Any, d: Detail | None, limit: int = 300) -> str:
    """A value as its declaration says; plain text and numbers where it says nothing or does not fit."""
    kind = d.kind if d is not None else None
    if v is None:
        return ""
    if kind == "token" and isinstance(v, str):
        return chip(v)
    if kind == "tokens" and isinstance(v, list) and all(isinstance(t, str) for t in v):
        return _chips([chip(t) for t in v[:MAX_CHIPS]], len(v))
    if kind == "token_scores" and isinstance(v, list):
        parts = [chip(p[0]) + _num(p[1]) if isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and _is_number(p[1])
                 else _plain(p, limit=80) for p in v[:MAX_CHIPS]]
        return _chips(parts, len(v))
    if kind in ("number", "count", "flag") and _scalar(v) is not None:
        return _scalar(v)
    if kind == "text" and isinstance(v, str):
        return prose(v, limit)
    if kind == "numbers" and isinstance(v, dict):
        return _table({k: (x, Detail("number")) for k, x in v.items()})
    if kind == "rows" and isinstance(v, list) and all(isinstance(r, dict) for r in v):
        return _rows(v, d.columns)
    return _plain(v, limit=limit)


def _rows(rows: list[dict[str, Any]], columns: DetailFields) -> str:
    """Rows of one token and its tokens as "input → chips" lines, any other rows as a small table."""
    kinds = sorted(d.kind for d in columns.values())
    if len(columns) == 2 and kinds[0] == "token" and kinds[1] in ("token_scores", "tokens"):
        head = next(k for k, d in columns.items() if d.kind == "token")
        rest = next(k for k in columns if k != head)
        lines = [f'<span class="hw-row">{_value(r.get(head), columns[head])} → {_value(r.get(rest), columns[rest])}</span>'
                 for r in rows[:MAX_LINES]]
        return _chips(lines, len(rows))
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    head = "".join(f"<th>{_key(str(k), 40)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_value(r.get(k), columns.get(k), 80)}</td>" for k in keys) + "</tr>" for r in rows[:MAX_ROWS])
    more = f"<small>… {len(rows) - MAX_ROWS} more</small>" if len(rows) > MAX_ROWS else ""
    return f'<table class="hw-detail"><thead><tr>{head}</tr></thead>{body}</table>{more}'


def _plain(v: Any, limit: int = 300, depth: int = 0) -> str:
    """An undeclared value: numbers, flags and escaped text; objects as small tables, lists as runs of text."""
    if v is None:
        return ""
    text = _scalar(v)
    if text is not None:
        return text
    if isinstance(v, str):
        return prose(v, limit)
    if depth >= MAX_DEPTH:
        return prose(json.dumps(v, default=str, ensure_ascii=False), 200)
    if isinstance(v, dict):
        rows = "".join(f"<tr><th>{_key(str(k), 60)}</th><td>{_plain(x, depth=depth + 1)}</td></tr>" for k, x in list(v.items())[:MAX_KEYS])
        return f'<table class="hw-detail">{rows}</table>'
    if isinstance(v, (list, tuple)):
        parts = [f"<span>{fmt(float(x), 3)}</span>" if _is_number(x) else _plain(x, 80, depth + 1) for x in list(v)[:MAX_CHIPS]]
        return _chips(parts, len(v))
    return prose(v, limit)
