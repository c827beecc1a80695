"""Small text helpers shared by every page: ordinals, human-sized numbers, and untrusted prose made safe.

Untrusted prose (a detail string, a reason, a model's description) goes through ``prose`` (or
``pre_text`` for a ``<pre>`` block): control and bidirectional characters become visible marks
(``tokens.visible``), the result is HTML-escaped and shortened. Token strings have their own
helpers in :mod:`.tokens`.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from . import tokens as tok


def ordinal(n: int) -> str:
    """1 -> "1st", 12 -> "12th", 23 -> "23rd"."""
    n = int(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def human(n: float | int | None) -> str:
    """A parameter count as 124.0M, 1.6B, 203.6K."""
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def size_text(n: int) -> str:
    """A file size in bytes as 12.3 MB."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def prose(value: object, limit: int = 300) -> Markup:
    """Untrusted prose: visible control/bidi characters, escaped, shortened to ``limit`` characters."""
    s = ("" if value is None else str(value))[: limit + 1]
    if not (s.isascii() and s.isprintable()):  # printable ASCII is shown as it is
        s = "".join(c if c == " " else tok.visible(c, 10) for c in s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return escape(s)


def pre_text(value: object, limit: int = 4000) -> Markup:
    """Untrusted text for a <pre> block: like ``prose`` but keeping line breaks."""
    s = "" if value is None else str(value)[:limit]
    return escape("".join(c if c in " \n" else tok.visible(c, 10) for c in s))
