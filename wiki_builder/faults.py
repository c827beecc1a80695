"""Faults: named crash points for the kill-and-resume tests, and the machine's own faults (a full disk,
a read-only folder) told apart from a model's failure.

Setting HEADWIKI_KILL_AT=<point> (and optionally HEADWIKI_KILL_MODEL=<model>) makes the
process SIGKILL itself when it reaches that point, exactly as `kill -9` would, so the tests
can check that a rerun recovers from a crash at each step of writing results. The variables
reach Ray workers too (a local cluster inherits the driver's environment), so a worker can be
killed in the middle of a model's task.

``POINTS`` are reached by every ``wiki build`` that scores a model; ``EXTRA_POINTS`` are reached
only on some paths (``mid_scoring``: after a model's first score family, before the others;
``db_rebuild``: ``wiki db rebuild`` with the new database half written).
"""

from __future__ import annotations

import errno
import os
import signal
import sys

POINTS = ("before_write", "parquet_tmp_written", "before_db", "db_in_transaction", "after_model")
EXTRA_POINTS = ("mid_scoring", "db_rebuild")

# Errors of the machine rather than of a model: the build stops (every other model would fail the same way).
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
_STORAGE_TEXT = ("No space left on device", "Disk quota exceeded", "Read-only file system", "File too large")


def crash_point(name: str, model: str | None = None) -> None:
    if os.environ.get("HEADWIKI_KILL_AT") != name:
        return
    want = os.environ.get("HEADWIKI_KILL_MODEL")
    if want and model is not None and want != model:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def storage_error(exc: BaseException | None) -> str | None:
    """If ``exc`` (or what caused it) is a full disk, an exceeded quota or a read-only filesystem,
    a one-line description of it; else None. DuckDB reports these as its own errors, so the text counts too."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            where = f": {exc.filename}" if exc.filename else ""
            return f"{os.strerror(exc.errno)}{where}"
        text = str(exc)
        for needle in _STORAGE_TEXT:
            if needle in text:
                return text.splitlines()[0] if text else needle
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _find_prctl():
    """libc's prctl, looked up here in the parent (a child between fork and exec should not load libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For ``subprocess``'s ``preexec_fn``: the child gets SIGKILL when its parent dies (Linux; elsewhere
    nothing), so a builder killed with ``kill -9`` leaves no orphan still writing into the wiki."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
