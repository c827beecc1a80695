"""Writing site_src/: only files whose content changed, with a manifest of what was written.

``site_src/.manifest.json`` keeps, per file, the hash of its content (and, for a head page, the
hash of everything it is rendered from: ``own``); a file whose content is unchanged is not
rewritten, and a head page whose inputs are unchanged is not rendered at all. Files in the
folders the renderer owns that it did not produce this time are removed (``Writer.finish``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

RENDER_VERSION = "2"
MANIFEST = ".manifest.json"
# Folders of site_src/ that the renderer owns: files there that it did not write this time are removed.
OWNED = ("heads", "models", "metrics", "mosaics", "downloads", "assets", ".fragments")
OWNED_FILES = ("index.md", "find.md", "about.md", "data.md", "query.md", "head-json.md", "heads-index.js")


@dataclass
class RenderStats:
    written: int = 0  # files written (new or changed)
    unchanged: int = 0  # files whose content was already there
    removed: int = 0  # stale files deleted
    heads_rendered: int = 0  # head pages rendered by the template
    heads_unchanged: int = 0  # head pages left alone
    head_bytes: list[int] = field(default_factory=list)  # size of every head page written or kept
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.written} file(s) written, {self.unchanged} unchanged, {self.removed} removed; head pages: "
                f"{self.heads_rendered} rendered, {self.heads_unchanged} unchanged")


def write_file(path: Path, data: bytes) -> None:
    """Write atomically: a temporary file beside the target, then a rename (plain os calls: this
    runs for every page; the folder is made only when the first open finds none)."""
    target = str(path)
    tmp = target + ".tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(tmp, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, target)


class Writer:
    """Writes files under site_src/ only when their content changed, and remembers what it wrote."""

    def __init__(self, root: Path, stats: RenderStats) -> None:
        self.root = root
        self.stats = stats
        self.keep: set[str] = set()
        path = root / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        self.trusted = manifest.get("version") == RENDER_VERSION
        self.pages: dict[str, dict[str, str]] = manifest.get("pages", {}) if self.trusted else {}
        self.new_pages: dict[str, dict[str, str]] = {}

    def entry(self, rel: str) -> dict[str, str]:
        return self.pages.get(rel, {})

    def write(self, rel: str, content: str, **extra: str) -> bool:
        """Write ``content`` at ``rel`` unless it is already there; True if written."""
        self.keep.add(rel)
        data = content.encode("utf-8")
        sha = hashlib.sha1(data).hexdigest()
        path = self.root / rel
        old = self.pages.get(rel, {})
        self.new_pages[rel] = {"sha": sha, **extra}
        if old.get("sha") == sha and path.is_file():
            self.stats.unchanged += 1
            return False
        if not old and path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            self.stats.unchanged += 1
            return False
        write_file(path, data)
        self.stats.written += 1
        return True

    def record(self, rel: str, sha: str, written: bool, **extra: str) -> None:
        """A file written (or found already there) elsewhere: by ``render_heads``, maybe in a worker."""
        self.keep.add(rel)
        self.new_pages[rel] = {"sha": sha, **extra}
        if written:
            self.stats.written += 1
        else:
            self.stats.unchanged += 1

    def keep_as_is(self, rel: str) -> None:
        self.keep.add(rel)
        self.new_pages[rel] = self.pages[rel]
        self.stats.unchanged += 1

    def link_or_copy(self, rel: str, source: Path) -> None:
        """A download: a hard link to the file in data/ when possible (no copy), else a copy."""
        self.keep.add(rel)
        path = self.root / rel
        st = source.stat()
        sig = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        self.new_pages[rel] = {"sha": sig}
        if self.pages.get(rel, {}).get("sha") == sig and path.is_file() or path.is_file() and os.path.samefile(path, source):
            self.stats.unchanged += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        tmp.replace(path)
        self.stats.written += 1

    def finish(self) -> None:
        """Remove files the renderer owns but did not produce this time; save the manifest.

        With a manifest from the last build, the stale files are the ones it lists and this build
        did not produce; without one (first build, or another renderer version) the owned
        folders are scanned."""
        if self.trusted:
            for rel in self.pages:
                path = self.root / rel
                if rel not in self.keep and path.is_file():
                    path.unlink()
                    self.stats.removed += 1
                    parent = path.parent
                    while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                        parent.rmdir()
                        parent = parent.parent
        for folder in OWNED if not self.trusted else ():
            base = self.root / folder
            if not base.is_dir():
                continue
            for p in sorted(base.rglob("*"), reverse=True):
                rel = p.relative_to(self.root).as_posix()
                if p.is_file() and rel not in self.keep:
                    p.unlink()
                    self.stats.removed += 1
                elif p.is_dir() and not any(p.iterdir()):
                    p.rmdir()
        for name in OWNED_FILES:
            if name not in self.keep and (self.root / name).is_file():
                (self.root / name).unlink()
                self.stats.removed += 1
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"version": RENDER_VERSION, "pages": self.new_pages}, separators=(",", ":")), encoding="utf-8")
        tmp.replace(self.root / MANIFEST)
