"""The folder a wiki is built in: data/, site_src/, mkdocs.yml and site/.

``wiki build`` works in the current directory (or ``--root``). In an empty directory it
copies the skeleton shipped in the package; in a clone of this repository it finds the
repository's own mkdocs.yml and builds the repository's wiki. Nothing is written inside
the installed package.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SKELETON = Path(__file__).resolve().parent / "site" / "skeleton"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def site_src(self) -> Path:
        return self.root / "site_src"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def mkdocs_yml(self) -> Path:
        return self.root / "mkdocs.yml"


def open_workspace(root: Path | None = None, create: bool = True) -> Workspace:
    """Use ``root`` (default: the current directory), creating what is missing from the skeleton."""
    ws = Workspace((root or Path.cwd()).resolve())
    if create:
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.data.mkdir(exist_ok=True)
        ws.site_src.mkdir(exist_ok=True)
        if not ws.mkdocs_yml.exists():
            shutil.copyfile(SKELETON / "mkdocs.yml", ws.mkdocs_yml)
    return ws


# ---------------------------------------------------------------------------------------------
# Checking a folder before any work, one builder per folder, and a site that survives a failed build.

LOCK_NAME = ".wiki-build.lock"
SITE_PREVIOUS = ".site.prev"  # the last complete site/, kept (hard links) while a build rewrites site/


def check_folder(path: Path, option: str, *, must_exist: bool = False, writable: bool = True) -> str | None:
    """Why ``path`` cannot be used as ``option`` (a message naming the option, the value and what is
    expected), or None. Nothing is created: for a folder that does not exist yet, the nearest existing
    parent must be a writable folder. ``writable`` also covers a read-only filesystem (even for root)."""
    p = Path(path).expanduser()
    try:
        p = p.resolve()
    except (OSError, RuntimeError) as exc:
        return f"{option} '{path}' cannot be resolved ({exc}). Expected a folder."
    if p.exists():
        if not p.is_dir():
            return f"{option} '{path}' is a file, not a folder. Expected a folder (created if missing)."
        if writable and not os.access(p, os.W_OK | os.X_OK):
            return f"{option} '{path}' is not writable (read-only filesystem or no permission). Expected a folder this user can write."
        return None
    if must_exist:
        return f"{option} '{path}' does not exist. Expected an existing folder."
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{option} '{path}' cannot be created: {parent} is a file. Expected a folder (created if missing)."
    if writable and not os.access(parent, os.W_OK | os.X_OK):
        return (f"{option} '{path}' cannot be created: {parent} is not writable (read-only filesystem or no permission). "
                "Expected a folder this user can write.")
    return None


def check_workspace(root: Path | None, option: str = "--root") -> str | None:
    """``check_folder`` for a wiki's folder and the folders a build writes in it (data/, site_src/, site/)."""
    root = Path(root) if root is not None else Path.cwd()
    problem = check_folder(root, option)
    if problem:
        return problem
    ws = Workspace(root.resolve())
    for sub in (ws.data, ws.data / "scores", ws.site_src, ws.site):
        if sub.exists() and (not sub.is_dir() or not os.access(sub, os.W_OK | os.X_OK)):
            what = "is not a folder" if not sub.is_dir() else "is not writable (read-only filesystem or no permission)"
            return f"{option} '{root}' cannot be built in: {sub} {what}. Expected a folder this user can write."
    return None


class BuilderBusy(RuntimeError):
    """Another process is building in the same folder."""

    def __init__(self, message: str, holder: dict) -> None:
        super().__init__(message)
        self.holder = holder


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live holder from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict) -> bool:
    """Is the process named in a lock file still running (on this machine, and the same process)?"""
    import socket

    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = holder.get("started")
    return started is None or _start_time(pid) in (None, started)


def describe_holder(holder: dict) -> str:
    parts = [f"pid {holder.get('pid')}"]
    if holder.get("host"):
        parts.append(f"on {holder['host']}")
    if holder.get("command"):
        parts.append(f"running `{holder['command']}`")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return " ".join(parts)


class BuilderLock:
    """One builder per folder: ``root/.wiki-build.lock``, held with ``flock`` and naming its holder.

    The kernel drops a ``flock`` when its process dies, so a lock left by a killed builder is taken over
    at once (``took_over`` names that process). The file also records the holder's pid, host and start
    time: where ``flock`` is not enforced (some network filesystems), a holder that is still alive is
    still detected with ``os.kill(pid, 0)``. Readers (``wiki query``, ``wiki serve``) take no lock.
    """

    def __init__(self, root: Path, command: str, wait: float = 0.0) -> None:
        import datetime as dt
        import fcntl
        import json
        import socket
        import time

        self.path = Path(root) / LOCK_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        self.took_over: dict | None = None
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                holder = self._read()
                if holder and holder.get("pid") != os.getpid() and _alive(holder):
                    fcntl.flock(self.fd, fcntl.LOCK_UN)  # flock not enforced here, but the holder is running
                    raise BlockingIOError
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._read() or {}
                    os.close(self.fd)
                    who = describe_holder(holder) if holder.get("pid") else "another process"
                    dead = " (that process is gone, but a child of it still holds the lock)" if holder.get("pid") and not _alive(holder) else ""
                    raise BuilderBusy(f"Another builder is already working in {root}: {who}{dead}. "
                                      "Wait for it to finish (or pass --wait SECONDS), then run this again.", holder) from None
                time.sleep(0.2)
        previous = self._read()
        if previous and previous.get("pid") != os.getpid():
            self.took_over = previous  # its process died without releasing the lock (kill -9, power loss)
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid()),
                       "command": command, "since": dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(self.holder).encode(), 0)
        os.fsync(self.fd)

    def _read(self) -> dict | None:
        import json

        try:
            raw = os.pread(self.fd, 4096, 0)
            holder = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def release(self) -> None:
        import fcntl

        if self.fd < 0:
            return
        try:
            os.ftruncate(self.fd, 0)  # an empty file: nobody holds it
        except OSError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> BuilderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock_holder(root: Path) -> dict | None:
    """Who holds the builder lock of ``root`` (None when nobody does)."""
    import fcntl
    import json

    path = Path(root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 4096, 0)
            try:
                return json.loads(raw) if raw.strip() else {}
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def served_site(ws: Workspace) -> Path:
    """The folder to serve: the previous complete site while a build rewrites site/ (or after a build was
    killed doing so), else site/."""
    prev = ws.root / SITE_PREVIOUS
    return prev if prev.is_dir() else ws.site


def recover_site(ws: Workspace) -> bool:
    """Put back the previous complete site if a build was killed while rewriting site/; True if it did."""
    prev = ws.root / SITE_PREVIOUS
    shutil.rmtree(ws.root / (SITE_PREVIOUS + ".tmp"), ignore_errors=True)
    for old in ws.root.glob(SITE_PREVIOUS + ".old-*"):
        shutil.rmtree(old, ignore_errors=True)
    if not prev.is_dir():
        return False
    if ws.site.exists():
        shutil.rmtree(ws.site)
    os.replace(prev, ws.site)
    return True


def _link_copy(src: Path, dst: Path) -> None:
    """A copy of a folder made of hard links (no file data is copied; a copy where linking fails)."""
    for folder, _dirs, files in os.walk(src):
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = os.path.join(folder, name), target / name
            try:
                os.link(s, d)
            except OSError as exc:
                import errno

                if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
                    raise
                shutil.copy2(s, d)


class site_guard:
    """``with site_guard(ws): render and build site/``: the previous complete site is kept (hard links in
    ``.site.prev``) while site/ is rewritten, served meanwhile by ``wiki serve``, put back if the block
    fails (a full disk, mkdocs failing) and found and put back by the next build if this one is killed."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.prev = ws.root / SITE_PREVIOUS

    def __enter__(self) -> site_guard:
        recover_site(self.ws)
        if self.ws.site.is_dir() and (self.ws.site / "index.html").is_file():
            tmp = self.ws.root / (SITE_PREVIOUS + ".tmp")
            try:
                _link_copy(self.ws.site, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            os.replace(tmp, self.prev)  # complete before it is visible
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.prev.is_dir():
            return
        if exc_type is None:
            # out of sight first (one rename: `wiki serve` goes over to the new site/ at once), then deleted
            old = self.ws.root / f"{SITE_PREVIOUS}.old-{os.getpid()}"
            os.replace(self.prev, old)
            shutil.rmtree(old, ignore_errors=True)
            return
        shutil.rmtree(self.ws.site, ignore_errors=True)
        os.replace(self.prev, self.ws.site)
