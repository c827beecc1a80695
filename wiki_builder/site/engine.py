"""DuckDB-WASM for the query page: pinned npm packages, fetched once into a user cache, verified, published.

The query page runs DuckDB in the reader's browser. Its files (tens of MB of WebAssembly) are not in the
Python package: the first build that needs them (or ``wiki fetch-engine``) fetches two pinned npm tarballs
(``npm pack`` when npm is on the PATH, else a plain HTTPS download of the same registry URL), refuses any
whose SHA-256 differs from the one pinned here, and extracts the few files the page loads into
``$HEADWIKI_CACHE/duckdb-wasm-<version>/`` (default ``$XDG_CACHE_HOME/head-wiki`` or ``~/.cache/head-wiki``).
Every later build, online or not, hard-links them from there into ``site/assets/duckdb/``.

* ``@duckdb/duckdb-wasm``: the browser module (``duckdb-browser.mjs``), the EH worker and its ``.wasm``
  (WebAssembly exceptions: every current browser). The EH bundle runs in a plain Worker, so the site
  needs no cross-origin-isolation headers (any static host works); the threaded COI bundle is not used.
* ``apache-arrow``: the module reads query results as Arrow tables. Its single-file UMD build sets
  ``globalThis.Arrow``; the two ``import * as x from "apache-arrow"`` of the DuckDB module are rewritten
  to read that global, so the page needs no bundler and no import map.

A build that cannot get them (offline, no npm, a checksum mismatch) still builds: the query page then
says how to add them. ``HEADWIKI_ENGINE_FETCH=0`` keeps builds from trying the network at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    url: str  # the registry's tarball URL (npm view NAME@VERSION dist.tarball)
    sha256: str  # of the tarball
    files: tuple[tuple[str, str], ...]  # (member in the tarball, file name in the engine folder)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` gives the tarball."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


VERSION = "1.32.0"
PACKAGES = (
    Package("@duckdb/duckdb-wasm", VERSION, f"https://registry.npmjs.org/@duckdb/duckdb-wasm/-/duckdb-wasm-{VERSION}.tgz",
            "13c29d80888b795cb493b281685d3d3e1738db2fad50d419e2884c6585789722",
            (("package/dist/duckdb-browser.mjs", "duckdb-browser.mjs"),
             ("package/dist/duckdb-browser-eh.worker.js", "duckdb-browser-eh.worker.js"),
             ("package/dist/duckdb-eh.wasm", "duckdb-eh.wasm"))),
    Package("apache-arrow", "17.0.0", "https://registry.npmjs.org/apache-arrow/-/apache-arrow-17.0.0.tgz",
            "3517f9ef256e9e5bf819f92652028545131660784c68818604e9025ec643b317",
            (("package/Arrow.es2015.min.js", "arrow.min.js"),
             ("package/LICENSE.txt", "arrow-LICENSE.txt"),
             ("package/NOTICE.txt", "arrow-NOTICE.txt"))),
)
STORAGE_VERSION = "v1.4.0"  # the newest database format the engine's DuckDB (1.4) reads
READABLE = range(64, 68)  # the storage version numbers (a database file's header) the engine's DuckDB reads
SITE_DIR = "assets/duckdb"  # where the engine lies in the built site
STAMP = "engine.json"  # written last into the engine folder: the tarballs' checksums and the files
RETRY_AFTER = 3600.0  # seconds a build waits after a failed fetch before a build tries the network again
_SOURCE_MAP = re.compile(rb"\n//# sourceMappingURL=\S+\s*$")
_ARROW_IMPORT = re.compile(r'import\s*\*\s*as\s*([A-Za-z_$][\w$]*)\s*from\s*"apache-arrow"\s*;?')


class EngineError(RuntimeError):
    """The engine could not be fetched or verified; the message says why and what to do."""


def cache_root() -> Path:
    """``$HEADWIKI_CACHE``, else ``$XDG_CACHE_HOME/head-wiki``, else ``~/.cache/head-wiki``."""
    if os.environ.get("HEADWIKI_CACHE"):
        return Path(os.environ["HEADWIKI_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "head-wiki"


def engine_dir() -> Path:
    return cache_root() / f"duckdb-wasm-{VERSION}"


LAYOUT = 1  # bump when the extraction changes (what is kept, how it is rewritten): caches are then made again


def _stamp() -> dict:
    return {"version": VERSION, "layout": LAYOUT, "packages": {p.spec: p.sha256 for p in PACKAGES}, "files": [f for p in PACKAGES for _, f in p.files]}


def installed(folder: Path | None = None) -> Path | None:
    """The engine folder when it holds every file, extracted from the pinned tarballs; else None."""
    d = folder or engine_dir()
    try:
        stamp = json.loads((d / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp != _stamp() or not all((d / f).is_file() for f in stamp["files"]):
        return None
    return d


def how_to_add() -> str:
    """What to run (or place) to add the engine: shown by the query page and in error messages."""
    names = " and ".join(p.tarball for p in PACKAGES)
    return (f"Run `wiki fetch-engine` once with the npm registry reachable (it caches DuckDB-WASM {VERSION}, about 35 MB), "
            f"then `wiki build` again. Offline: put {names} (from `npm pack {' '.join(p.spec for p in PACKAGES)}` on any "
            f"machine) in a folder and run `wiki fetch-engine --from FOLDER`.")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(pkg: Package, timeout: float) -> bytes:
    """The tarball from the npm registry: through ``npm pack`` (npm's registry settings, proxy and cache)
    when npm is installed, else a plain HTTPS download of the registry URL."""
    npm = shutil.which("npm")
    if npm:
        with tempfile.TemporaryDirectory(prefix="headwiki-npm-") as tmp:
            try:
                proc = subprocess.run([npm, "pack", pkg.spec, "--pack-destination", tmp, "--loglevel=error", "--prefer-offline", "--fetch-retries=1",
                                       f"--fetch-timeout={int(timeout * 1000)}"], capture_output=True, text=True, timeout=timeout * 4)
            except subprocess.TimeoutExpired as exc:
                raise EngineError(f"`npm pack {pkg.spec}` did not finish in {int(timeout * 4)} s (is the npm registry reachable?).") from exc
            got = Path(tmp) / pkg.tarball
            if proc.returncode != 0 or not got.is_file():
                lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "A complete log" not in ln and "_logs" not in ln]
                last = " ".join(lines[:2])[:300] or f"exit status {proc.returncode}"
                raise EngineError(f"`npm pack {pkg.spec}` failed (is the npm registry reachable?): {last}")
            return got.read_bytes()
    try:
        with urllib.request.urlopen(pkg.url, timeout=timeout) as r:  # noqa: S310 - a pinned https URL, checked below
            return r.read()
    except OSError as exc:
        raise EngineError(f"could not download {pkg.url} ({exc}); npm is not installed either.") from exc


def _tarball(pkg: Package, source: Path | None, timeout: float) -> bytes:
    if source is not None:
        path = source / pkg.tarball if source.is_dir() else source
        if source.is_dir() and not path.is_file():
            raise EngineError(f"{pkg.tarball} is not in {source}. Expected the file `npm pack {pkg.spec}` writes.")
        data = path.read_bytes()
    else:
        data = _download(pkg, timeout)
    got = _sha256(data)
    if got != pkg.sha256:
        raise EngineError(f"{pkg.tarball}: SHA-256 {got} is not the pinned {pkg.sha256}; refused (a different or damaged "
                          f"file). Fetch {pkg.spec} again from the npm registry.")
    return data


def _extract(pkg: Package, data: bytes, out: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in pkg.files:
            try:
                f = tar.extractfile(member)
            except KeyError:
                f = None
            if f is None:
                raise EngineError(f"{pkg.tarball} has no {member}.")
            body = f.read()
            if name == "duckdb-browser.mjs":
                body = _detach_arrow(body)
            if name.endswith((".js", ".mjs")):  # the source maps are not shipped: no request for them
                body = _SOURCE_MAP.sub(b"", body)
            (out / name).write_bytes(body)


def _detach_arrow(module: bytes) -> bytes:
    """The DuckDB module with its ``import * as x from "apache-arrow"`` replaced by the UMD build's global."""
    text = module.decode("utf-8")
    names = _ARROW_IMPORT.findall(text)
    if not names:
        raise EngineError("duckdb-browser.mjs does not import apache-arrow as expected; this engine version is not supported.")
    text = _ARROW_IMPORT.sub("", text)
    return ("const " + ",".join(f"{n}=globalThis.Arrow" for n in dict.fromkeys(names)) + ";\n" + text).encode("utf-8")


def fetch(source: Path | None = None, timeout: float = 60.0) -> Path:
    """Get, verify and extract the engine into the cache (nothing to do when it is there); returns its folder.
    ``source``: a folder holding the two tarballs (or one tarball), instead of the registry."""
    have = installed()
    if have is not None:
        return have
    target = engine_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".engine-", dir=target.parent))
    try:
        for pkg in PACKAGES:
            _extract(pkg, _tarball(pkg, source, timeout), tmp)
        (tmp / STAMP).write_text(json.dumps(_stamp(), indent=1), encoding="utf-8")
        tmp.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _failed_marker().unlink(missing_ok=True)
    return target


def _failed_marker() -> Path:
    return cache_root() / f"duckdb-wasm-{VERSION}.failed"


def ensure(auto_fetch: bool | None = None) -> tuple[Path | None, str]:
    """The engine folder for a build, fetching it on first need; (None, why) when it cannot be had.

    A failed fetch is remembered for an hour so that offline builds do not wait on the network each
    time; ``HEADWIKI_ENGINE_FETCH=0`` (or ``auto_fetch=False``) never fetches."""
    have = installed()
    if have is not None:
        return have, ""
    if auto_fetch is None:
        auto_fetch = os.environ.get("HEADWIKI_ENGINE_FETCH", "1").strip().lower() not in ("0", "false", "no", "off")
    if not auto_fetch:
        return None, "the engine is not in this machine's cache and fetching is turned off (HEADWIKI_ENGINE_FETCH=0)"
    marker = _failed_marker()
    try:
        if time.time() - marker.stat().st_mtime < RETRY_AFTER:
            return None, marker.read_text(encoding="utf-8").strip() or "the last attempt to fetch the engine failed"
    except OSError:
        pass
    try:
        return fetch(timeout=30.0), ""
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong here, the build goes on without the engine
        return None, remember_failure(exc)


def remember_failure(exc: BaseException) -> str:
    """Note a failed fetch (builds in the next hour do not try the network again); returns why, in public words."""
    why = _public_reason(exc)
    try:
        marker = _failed_marker()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(why, encoding="utf-8")
    except OSError:
        pass
    return why


def _public_reason(exc: BaseException) -> str:
    """Why a fetch failed, in words a published page may show (no path of the building machine)."""
    if isinstance(exc, EngineError) and "SHA-256" in str(exc):
        return "a downloaded file did not match its pinned checksum and was refused"
    return "the npm registry could not be reached when the site was built"


def publish(site: Path, folder: Path | None) -> int:
    """Hard-link (or copy) the engine's files into ``site/assets/duckdb/``; returns their total size in bytes."""
    if folder is None:
        return 0
    out = site / SITE_DIR
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in [f for p in PACKAGES for _, f in p.files]:
        src, dst = folder / name, out / name
        if dst.exists():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        total += dst.stat().st_size
    return total
