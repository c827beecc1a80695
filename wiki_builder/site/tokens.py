"""Token strings are untrusted text: make them visible, then escape them for where they go.

A vocabulary can hold ``<script>``, Markdown (``**bold**``, ``[x](javascript:...)``), HTML
entities (``&amp;``), table pipes, control characters and bidirectional overrides (U+202E).
``visible`` turns a token into a short, printable label that shows what the token *is*
(invisible characters become visible marks, a right-to-left override cannot reorder the
page); ``html`` escapes that label for HTML and SVG text and attributes; ``markdown``
escapes it for Markdown prose. Every template that shows a token goes through one of them.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from markupsafe import Markup, escape

MAX_CHARS = 18

# Byte-level BPE (GPT-2) and SentencePiece markers, shown as what they stand for.
_MARKERS = {"Ġ": "␣", "▁": "␣", "Ċ": "↵", "ĉ": "⇥"}
_SPACES = {" ": "␣", "\n": "↵", "\r": "␍", "\t": "⇥"}


def _char(ch: str) -> str:
    if ch in _SPACES:
        return _SPACES[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"⟨U+{code:04X}⟩"  # \x07 -> ⟨U+0007⟩ (control pictures like ␇ are missing from many fonts)
    cat = unicodedata.category(ch)
    # Cc: other controls (C1); Cf: format (bidi overrides, zero-width, BOM); Zl/Zp: line/paragraph
    # separators; Zs other than the plain space; Co/Cn/Cs: private, unassigned, surrogates.
    if cat in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn", "Cs") or 0xFE00 <= code <= 0xFE0F:
        return f"⟨U+{code:04X}⟩"
    return ch


def visible(token: object, max_chars: int = MAX_CHARS) -> str:
    """A printable, bidi-safe label for a token string (still needs escaping for its context)."""
    return _visible("" if token is None else str(token), max_chars)


@lru_cache(maxsize=1 << 16)
def _visible(s: str, max_chars: int) -> str:
    if not s:
        return "∅"
    out = []
    for i, ch in enumerate(s):
        if ch in _MARKERS and (i == 0 or s[i - 1] in _MARKERS):
            out.append(_MARKERS[ch])
        else:
            out.append(_char(ch))
    label = "".join(out)
    if len(label) > max_chars:
        label = label[: max_chars - 1] + "…"
    return label


def html(token: object, max_chars: int = MAX_CHARS) -> Markup:
    """The visible label, escaped for HTML/SVG text or a quoted attribute."""
    return _html("" if token is None else str(token), max_chars)


@lru_cache(maxsize=1 << 16)
def _html(s: str, max_chars: int) -> Markup:
    return escape(_visible(s, max_chars))


_MD_ESCAPABLE = set("\\`*_{}[]()#+-.!|")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}


def markdown(token: object, max_chars: int = MAX_CHARS) -> str:
    """The visible label, escaped for Markdown prose or a Markdown table cell: HTML-special characters
    become entities and every Markdown-special character is backslash-escaped (Python-Markdown turns
    the escapes back into the plain characters), so a token never becomes markup, a link or a column."""
    out = []
    for ch in visible(token, max_chars):
        out.append(_HTML.get(ch) or ("\\" + ch if ch in _MD_ESCAPABLE else ch))
    return "".join(out)


def plain(text: object) -> str:
    """Text for a page title or YAML front matter: visible characters, with nothing HTML could read as markup."""
    s = visible(text, max_chars=200) if text is not None else ""
    return "".join(" " if ch == "␣" else ch for ch in s if ch not in "<>&\"'`\\")


@lru_cache(maxsize=1 << 16)
def chip(token: str) -> str:
    """One token as a chip (HTML): its visible label, escaped; the full (visible) token in the tooltip."""
    return f'<code class="hw-tok" title="{escape(visible(token, 80))}">{html(token, 40)}</code>'
