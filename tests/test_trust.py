"""Trust under real conditions: a read-only query that really is, every option checked before any work,
one builder per folder, crashes at real size, full disks and read-only folders, Ray workers killed mid-task.

Tiers: `unit` tests run the CLI on hand-made databases and lock files (no model is built); `integration`
tests run real `wiki build`s (or import the official model registry, which takes transformer_lens)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from support import FAST, REPO, WIKI, run_wiki
from wiki_builder.store import rebuild_db, write_record
from wiki_builder.store.db import QueryRefused, fetch
from wiki_builder.store.parquet import ModelRecord
from wiki_builder.workspace import LOCK_NAME, BuilderBusy, BuilderLock, check_folder


def said(proc: subprocess.CompletedProcess) -> str:
    """stderr and stdout as one line of words (typer draws its errors in a box)."""
    text = (proc.stderr or "") + " " + (proc.stdout or "")
    for ch in "│╭╮╰╯─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def tiny_wiki(root: Path, models: tuple[str, ...] = ("m",)) -> Path:
    """A wiki made through the store (one Parquet file per model and the database), no model built."""
    data = root / "data"
    for name in models:
        rows = [{"model": name, "layer": l, "head": h, "metric": "induction", "value": 0.1 * (2 * l + h), "metric_version": "1",
                 "detail": None} for l in range(2) for h in range(2)]
        rec = ModelRecord(model={"model": name, "n_layers": 2, "n_heads": 2}, rows=rows,
                          provenance=[{"model": name, "metric": "induction", "family": "induction", "metric_version": "1",
                                       "status": "ok", "seed": 0, "dtype": "float32", "built_at": "2024-01-01T00:00:00",
                                       "setup": {}}])
        write_record(data, name, rec)
    rebuild_db(data)
    return root


# ---------------------------------------------------------------------------------------------------------------
# 1. `wiki query` is read-only for real


@pytest.fixture
def qwiki(tmp_path):
    root = tiny_wiki(tmp_path / "wiki")
    outside = tmp_path / "outside"
    outside.mkdir()
    duckdb.connect().execute(f"COPY (SELECT 42 AS secret) TO '{outside / 'secret.parquet'}'")
    (outside / "secret.csv").write_text("secret\n42\n")
    return root, outside


REFUSED = [
    ("COPY (SELECT * FROM scores) TO '{out}/leak.csv'", "COPY"),
    ("COPY scores TO '{out}/leak.parquet' (FORMAT parquet)", "COPY"),
    ("COPY (SELECT 1) TO '{root}/data/scores/evil.csv'", "COPY"),
    ("COPY scores FROM '{out}/secret.csv'", "COPY"),
    ("EXPORT DATABASE '{out}/export'", "EXPORT"),
    ("SELECT * FROM read_csv('/etc/passwd')", "reads only the wiki's database"),
    ("SELECT * FROM read_csv('{out}/secret.csv')", "reads only the wiki's database"),
    ("SELECT * FROM read_parquet('{out}/secret.parquet')", "reads only the wiki's database"),
    ("SELECT * FROM '{out}/secret.parquet'", "reads only the wiki's database"),
    ("SELECT * FROM read_text('data/../mkdocs.yml')", "reads only the wiki's database"),
    ("SELECT * FROM glob('/etc/*')", "reads only the wiki's database"),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", "reads only the wiki's database"),
    ("INSTALL httpfs", "extension"),
    ("LOAD httpfs", "extension"),
    ("FORCE INSTALL json", "extension"),
    ("ATTACH '{out}/other.duckdb' AS other", "ATTACH"),
    ("SET enable_external_access = true", "SET"),
    ("SET allowed_directories = ['/']", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CALL enable_logging()", "CALL"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/data/x.csv'", "EXPLAIN"),
    ("SELECT 1; COPY (SELECT 1) TO '{out}/leak.csv'", "COPY"),
    ("DELETE FROM scores", "read-only"),
    ("CREATE TABLE x AS SELECT 1", "read-only"),
    ("CREATE TEMP TABLE x AS SELECT 1", "read-only"),
]


@pytest.mark.unit
def test_query_cannot_write_or_reach_outside_the_wiki(qwiki, tmp_path, monkeypatch):
    """Every way out, through the library call the CLI makes (DuckDB's own controls, and its parser for the statement kind)."""
    root, outside = qwiki
    monkeypatch.chdir(root)  # as `wiki query` runs: relative paths are the wiki's
    before = listing(tmp_path)
    for sql, needle in REFUSED:
        sql = sql.format(root=root, out=outside)
        with pytest.raises(QueryRefused) as info:
            fetch(root / "data", sql)
        assert needle in str(info.value), (sql, str(info.value))
        assert listing(tmp_path) == before, f"{sql} wrote something"


CLI_REFUSED = [REFUSED[i] for i in (0, 2, 4, 5, 7, 10, 12, 13, 15, 16, 21)]


@pytest.mark.integration  # one CLI subprocess per statement
@pytest.mark.parametrize("sql,needle", CLI_REFUSED, ids=[s.split("(")[0].split("'")[0].strip()[:40] for s, _ in CLI_REFUSED])
def test_wiki_query_refuses_with_exit_2(qwiki, tmp_path, sql, needle):
    root, outside = qwiki
    sql = sql.format(root=root, out=outside)
    before = listing(tmp_path)
    proc = run_wiki("query", sql, "--root", str(root), check=False)
    assert proc.returncode == 2, said(proc)
    assert needle in said(proc) and "Traceback" not in proc.stderr, said(proc)
    assert listing(tmp_path) == before  # nothing written, anywhere


@pytest.mark.unit
def test_query_still_reads_the_wikis_own_files(qwiki, tmp_path, monkeypatch):
    root, _ = qwiki
    # relative paths are the wiki's, wherever the command runs from
    for sql in ("SELECT count(*) AS n FROM 'data/scores/*.parquet'", f"SELECT count(*) AS n FROM read_parquet('{root}/data/scores/*.parquet')"):
        proc = run_wiki("query", sql, "--format", "json", "--root", str(root), cwd=tmp_path, check=False)
        assert proc.returncode == 0, said(proc)
        assert json.loads(proc.stdout) == [{"n": 4}]
    monkeypatch.chdir(root)
    for sql in ("SELECT count(*) FROM scores", "SELECT count(*) FROM glob('data/scores/*.parquet')", "DESCRIBE scores", "SHOW TABLES",
                "WITH t AS (SELECT * FROM head_scores) SELECT count(*) FROM t", "SELECT * FROM parquet_schema('data/scores/m.parquet')"):
        cols, rows = fetch(root / "data", sql)
        assert cols and rows, sql
    assert fetch(root / "data", "SELECT count(*) FROM read_parquet(?)", [str(root / "data" / "scores" / "m.parquet")])[1] == [(4,)]


# ---------------------------------------------------------------------------------------------------------------
# 2. Every option checked before any work: exit 2, a message naming the option, the value and what is expected,
# and nothing written.

NO_CUDA = not (importlib.util.find_spec("torch") and __import__("torch").cuda.is_available())
slow = pytest.mark.integration  # these import transformer_lens (the official model list) or torch: tens of seconds, no build


def _cases():
    B = ["build", "--models", "toy-gpt2"]
    return [
        (B + ["--root", "{file}"], ["--root", "{file}", "is a file", "Expected a folder"]),
        (B + ["--root", "{file}/sub"], ["--root", "cannot be created", "is a file"]),
        (B + ["--seed", "-1"], ["--seed", "-1", "0 to 2147483647"]),
        (B + ["--seed", "1.5"], ["--seed", "'1.5' is not an integer", "0 to 2147483647"]),
        (B + ["--seed", "99999999999"], ["--seed", "99999999999", "0 to 2147483647"]),
        (B + ["--task-prompts", "1"], ["--task-prompts", "1 is out of range", "2 to 1024"]),
        (B + ["--task-prompts", "5000"], ["--task-prompts", "5000", "2 to 1024"]),
        (B + ["--wait", "-3"], ["--wait", "-3", "at least 0"]),
        (B + ["--dtype", "float8"], ["--dtype 'float8'", "float32"]),
        (B + ["--device", "tpu"], ["--device 'tpu'", "cuda:N"]),
        pytest.param(B + ["--device", "cuda"], ["--device cuda", "no CUDA GPU", "--device cpu"],
                     marks=[slow, pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")]),
        pytest.param(B + ["--device", "cuda:0"], ["--device cuda:0", "no CUDA GPU"],
                     marks=[slow, pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")]),
        (B + ["--store", "nosuchscheme://x/y"], ["--store", "nosuchscheme://x/y", "not a storage location", "s3://bucket/scores"]),
        (B + ["--store", "s3://"], ["--store", "s3://", "names no bucket"]),
        (B + ["--store", "{file}"], ["--store", "is a file"]),
        (B + ["--metrics", "nope"], ["Unknown metric", "nope", "Known:"]),
        (B + ["--ablation", "half"], ["--ablation 'half'", "mean, resample, zero"]),
        (B + ["--method", "guess"], ["--method 'guess'", "exact or attribution"]),
        (B + ["--executor", "spark"], ["--executor 'spark'", "local or ray"]),
        (B + ["--ray-address", "auto"], ["--ray-address 'auto'", "--executor ray"]),
        (B + ["--family", "gpt2"], ["--models all"]),
        (["build", "--models", ""], ["No model names"]),
        pytest.param(["build", "--models", "no-such-model-anywhere"], ["no-such-model-anywhere"], marks=slow),
        (["build", "--models", "all", "--max-params", "0"], ["--max-params", "0 is out of range", "above 0"]),
        (["build", "--models", "all", "--max-params", "lots"], ["--max-params", "'lots' is not a number"]),
        pytest.param(["build", "--models", "all", "--family", "nosuch"], ["--family 'nosuch'", "Known families", "gpt2"], marks=slow),
        pytest.param(["build", "--models", "all", "--match", "zz-no-such-model*"], ["--match 'zz-no-such-model*'", "wiki models"], marks=slow),
        (["query", "SELECT 1", "--root", "{file}"], ["--root", "is a file"]),
        (["query", "SELECT 1", "--root", "{missing}"], ["--root", "does not exist"]),
        (["query", "  ;  ", "--root", "{tiny}"], ["query is empty", "SELECT"]),
        (["query", "SELECT 1", "--format", "xml", "--root", "{tiny}"], ["--format", "xml"]),
        (["serve", "--port", "0", "--root", "{tiny}"], ["--port", "0 is out of range", "1 to 65535"]),
        (["serve", "--port", "70000", "--root", "{tiny}"], ["--port", "70000", "1 to 65535"]),
        (["serve", "--port", "http", "--root", "{tiny}"], ["--port", "'http' is not an integer"]),
        (["serve", "--port", "{busy}", "--root", "{tiny}"], ["--port {busy} cannot be used", "free port"]),
        (["serve", "--root", "{missing}"], ["--root", "does not exist"]),
        (["models", "--max-params", "-1"], ["--max-params", "-1", "above 0"]),
        (["models", "--root", "{file}"], ["--root", "is a file"]),
        pytest.param(["models", "--family", "nosuch"], ["--family 'nosuch'", "Known families"], marks=slow),
        pytest.param(["models", "--match", "zz-no-such-model*"], ["--match 'zz-no-such-model*'"], marks=slow),
        (["convert-llama2c", "{missing}", "{tmp}/out"], ["CHECKPOINT", "does not exist", "llama2.c"]),
        (["convert-llama2c", "{file}", "{tmp}/out", "--tokenizer", "{missing}"], ["--tokenizer", "is not a file"]),
        (["convert-llama2c", "{file}", "{file}"], ["OUT", "is a file"]),
        (["db", "rebuild", "--root", "{missing}"], ["--root", "does not exist"]),
        (["db", "rebuild", "--root", "{file}"], ["--root", "is a file"]),
        (["db", "rebuild", "--root", "{tiny}", "--store", "nosuchscheme://x"], ["--store", "not a storage location"]),
        (["db", "rebuild", "--root", "{tiny}", "--wait", "soon"], ["--wait", "'soon' is not a number"]),
        (["bench", "--shapes", "gpt2-huge"], ["--shapes 'gpt2-huge'", "gpt2-small"]),
        (["bench", "--prompts", "0"], ["--prompts", "0 is out of range", "1 to 1024"]),
        (["bench", "--threads", "-1"], ["--threads", "-1", "0 to 4096"]),
        (["bench", "--naive-heads", "-2"], ["--naive-heads", "-2", "at least 0"]),
        (["bench", "--seed", "-7"], ["--seed", "-7"]),
        (["bench", "--device", "tpu"], ["--device 'tpu'"]),
        (["bench", "--quick", "--json", "{missing}/out.json"], ["--json", "does not exist"]),
        (["bench", "--quick", "--json", "{tmp}"], ["--json", "is a folder"]),
        (["bench-batch", "--shapes", "gpt2-huge"], ["--shapes 'gpt2-huge'", "gpt2-small"]),
        (["bench-batch", "--task-prompts", "1"], ["--task-prompts", "2 to 1024"]),
        (["bench-batch", "--seed", "-2"], ["--seed", "-2"]),
        (["bench-batch", "--dtype", "float8"], ["--dtype 'float8'"]),
        (["site-bench", "--models", "0"], ["--models", "0 is out of range", "at least 1"]),
        (["site-bench", "--root", "{file}"], ["--root", "is a file"]),
        (["crash-bench", "--models", "0"], ["--models", "0 is out of range"]),
        (["crash-bench", "--kills", "-1"], ["--kills", "-1"]),
        (["crash-bench", "--root", "{file}"], ["--root", "is a file"]),
    ]


def _marked(cases):
    out = []
    for case in cases:
        if not hasattr(case, "marks"):  # one CLI subprocess each (about a second): the integration tier
            case = pytest.param(*case, marks=pytest.mark.integration)
        out.append(case)
    return out


CASES = _marked(_cases())


@pytest.mark.parametrize("args,needles", CASES, ids=[" ".join(c.values[0])[:60] for c in CASES])
def test_bad_options_are_refused_before_any_work(tmp_path, args, needles):
    file = tmp_path / "a-file"
    file.write_text("not a folder\n")
    tiny = tiny_wiki(tmp_path / "tiny")
    (tiny / "site").mkdir()
    (tiny / "site" / "index.html").write_text("<html></html>")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"file": str(file), "missing": str(tmp_path / "missing"), "tiny": str(tiny), "tmp": str(tmp_path),
                  "busy": str(busy.getsockname()[1])}
        args = [a.format(**values) for a in args]
        needles = [n.format(**values) for n in needles]
        cwd = tmp_path / "cwd"  # a build without --root would write here
        cwd.mkdir()
        before = listing(tmp_path)
        if args[0] == "build" and "--root" not in args:
            args += ["--root", str(tmp_path / "new-wiki")]
        proc = run_wiki(*args, cwd=cwd, check=False, timeout=300)
    text = said(proc)
    assert proc.returncode == 2, text
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    assert "Traceback" not in proc.stderr
    assert listing(tmp_path) == before, "something was written"
    assert not (tmp_path / "new-wiki").exists()


@pytest.mark.unit
def test_check_folder_says_why(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert "is a file" in check_folder(f, "--root")
    assert "cannot be created" in check_folder(f / "below", "--root")
    assert check_folder(tmp_path / "new" / "deeper", "--root") is None
    assert "does not exist" in check_folder(tmp_path / "new", "--root", must_exist=True)
    if os.geteuid() != 0:  # root writes through permission bits; the read-only mounts below test it for root
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert "not writable" in check_folder(ro, "--root")
            assert "not writable" in check_folder(ro / "sub", "--root")
        finally:
            ro.chmod(0o755)


# ---------------------------------------------------------------------------------------------------------------
# 4. One builder per folder


def _hold_lock_in_child(root: Path) -> subprocess.Popen:
    """A process that takes the folder's builder lock and keeps it until killed."""
    code = ("import sys, time; from pathlib import Path; from wiki_builder.workspace import BuilderLock; "
            "l = BuilderLock(Path(sys.argv[1]), 'test holder'); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.unit
def test_a_second_builder_is_refused_naming_the_first(tmp_path):
    root = tiny_wiki(tmp_path / "wiki")
    holder = _hold_lock_in_child(root)
    try:
        before = listing(root)
        for args in (["build", "--models", "toy-gpt2"], ["db", "rebuild"]):
            proc = run_wiki(*args, "--root", str(root), check=False)
            text = said(proc)
            assert proc.returncode == 2, text
            assert f"pid {holder.pid}" in text and "test holder" in text and "--wait" in text, text
        assert listing(root) == before
        with pytest.raises(BuilderBusy) as info:
            BuilderLock(root, "in-process")
        assert info.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.unit
def test_a_waiting_builder_goes_on_when_the_first_is_done(tmp_path):
    root = tiny_wiki(tmp_path / "wiki")
    lock = BuilderLock(root, "in-process holder")
    threading.Timer(3.0, lock.release).start()
    start = time.monotonic()
    proc = run_wiki("db", "rebuild", "--wait", "60", "--root", str(root), check=False)
    assert proc.returncode == 0, said(proc)
    assert "Rebuilt" in proc.stdout and time.monotonic() - start >= 3.0


@pytest.mark.unit
def test_a_lock_left_by_a_killed_builder_is_taken_over(tmp_path):
    root = tiny_wiki(tmp_path / "wiki")
    holder = _hold_lock_in_child(root)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((root / LOCK_NAME).read_text())["pid"] == holder.pid  # the killed process never cleaned up
    proc = run_wiki("db", "rebuild", "--root", str(root), check=False)
    assert proc.returncode == 0, said(proc)
    assert f"took over the lock left by pid {holder.pid}" in said(proc)
    assert (root / LOCK_NAME).read_text() == ""  # released


@pytest.mark.unit
def test_a_live_holder_is_found_even_where_flock_is_not_enforced(tmp_path):
    """Some network filesystems ignore flock: the pid in the lock file, checked with os.kill(pid, 0), still tells."""
    root = tiny_wiki(tmp_path / "wiki")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        from wiki_builder.workspace import _start_time

        holder = {"pid": sleeper.pid, "host": socket.gethostname(), "started": _start_time(sleeper.pid), "command": "wiki build"}
        (root / LOCK_NAME).write_text(json.dumps(holder))  # no flock held: only the file says so
        proc = run_wiki("db", "rebuild", "--root", str(root), check=False)
        assert proc.returncode == 2 and f"pid {sleeper.pid}" in said(proc), said(proc)
        # the same pid recorded with another start time is a reused pid, not the holder
        (root / LOCK_NAME).write_text(json.dumps({**holder, "started": "1"}))
        with BuilderLock(root, "in-process") as lock:
            assert lock.took_over["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    (root / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))  # now dead
    with BuilderLock(root, "in-process") as lock:
        assert lock.took_over["pid"] == sleeper.pid
    assert (root / LOCK_NAME).read_text() == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_queries_and_serve_keep_working_while_a_build_runs(tmp_path, built_wiki, constructed_dir):
    """A build rewrites the database and the site while `wiki query` and `wiki serve` are used; a second
    builder is refused meanwhile, naming the first."""
    root = tmp_path / "wiki"
    shutil.copytree(built_wiki, root)
    models = []
    for name in ("busy-a", "busy-b"):
        shutil.copytree(constructed_dir, tmp_path / name)
        models.append(str(tmp_path / name))
    port = _free_port()
    server = subprocess.Popen([*WIKI, "serve", "--port", str(port), "--root", str(root)], env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pages = ["", "index.html", "models/constructed.html", "heads/constructed/L1H0.html"]
    try:
        for _ in range(200):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            time.sleep(0.1)
        build = subprocess.Popen([*WIKI, "build", "--models", f"{models[0]},{models[1]},{str(constructed_dir)}", *FAST, "--force",
                                  "--root", str(root)], env={**os.environ, "PYTHONPATH": str(REPO)},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        errors: list[str] = []
        counts: list[int] = []
        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:  # in-process queries, as fast as they go: they meet the builder's writes
            while not stop.is_set():
                try:
                    counts.append(fetch(root / "data", "SELECT count(*) FROM scores WHERE model = 'constructed'")[1][0][0])
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"{type(exc).__name__}: {exc}")

        def browse() -> None:
            while not stop.is_set():
                for page in pages:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=10) as r:
                            statuses.append(r.status)
                            assert r.read()
                    except Exception as exc:  # noqa: BLE001
                        errors.append(f"GET /{page}: {exc}")

        threads = [threading.Thread(target=hammer), threading.Thread(target=browse)]
        for t in threads:
            t.start()
        cli_queries, refused = 0, []
        try:
            while build.poll() is None:
                proc = run_wiki("query", "SELECT count(*) AS n FROM head_scores", "--format", "json", "--root", str(root), check=False)
                if build.poll() is None:
                    assert proc.returncode == 0, said(proc)
                    cli_queries += 1
                    if not refused:
                        second = run_wiki("build", "--models", models[0], *FAST, "--root", str(root), check=False)
                        if build.poll() is None:
                            refused.append(second)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        out = build.communicate()[0]
        assert build.returncode == 0, out
    finally:
        server.kill()
        server.wait()
    assert not errors, errors[:5]
    assert cli_queries >= 2 and len(counts) > 20 and set(statuses) == {200}
    assert len(set(counts)) == 1  # always the whole model: never a half-written one
    assert refused and refused[0].returncode == 2 and f"pid {build.pid}" in said(refused[0]), said(refused[0])
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT model FROM models").fetchall()) == ["busy-a", "busy-b", "constructed"]


# ---------------------------------------------------------------------------------------------------------------
# 3. Crash safety at real size (the short form of `wiki crash-bench`)


@pytest.mark.integration
def test_crash_bench_quick(tmp_path):
    report = tmp_path / "crash.json"
    proc = run_wiki("crash-bench", "--quick", "--root", str(tmp_path / "bench"), "--json", str(report), check=False, timeout=900)
    res = json.loads(report.read_text())
    assert proc.returncode == 0 and res["pass"], proc.stdout[-4000:] + proc.stderr[-2000:]
    landed = {k["landed"] for k in res["kills"]}
    assert {"scoring", "render", "mkdocs", "rebuild"} <= landed, res["kills"]


# ---------------------------------------------------------------------------------------------------------------
# 5. Faults of the machine: a full disk, a read-only folder


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A size-limited tmpfs mounted for the test (root only); None where mounting is not permitted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or not _mount("-t", "tmpfs", "-o", "size=192m", "tmpfs", str(mnt)):
        yield None
        return
    try:
        yield mnt
    finally:
        for _ in range(3):
            if subprocess.run(["umount", "-R", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(1)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk, then free ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    with open(filler, "r+b") as fh:
        fh.truncate(max(0, filler.stat().st_size - leave))
    return filler


def state(root: Path) -> tuple[list[tuple], dict[str, bytes]]:
    """The database's rows and every file of the site, byte for byte."""
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT model, layer, head, metric, value FROM scores ORDER BY ALL").fetchall()
    finally:
        con.close()
    return rows, {str(p.relative_to(root / "site")): p.read_bytes() for p in sorted((root / "site").rglob("*")) if p.is_file()}


def _limited(fsize: int):
    """Where no tmpfs can be mounted: every file write past ``fsize`` bytes fails (RLIMIT_FSIZE, EFBIG)."""
    import resource

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return pre


@pytest.mark.integration
@pytest.mark.parametrize("leave", [0, 200_000, 1_500_000], ids=["disk-full", "space-for-a-little", "space-for-the-scores"])
def test_a_full_disk_stops_cleanly_and_a_rerun_completes(tmp_path, tmpfs, built_wiki, constructed_dir, leave):
    second = tmp_path / "second"
    shutil.copytree(constructed_dir, second)
    models = f"{constructed_dir},{second}"
    if tmpfs is not None:
        root = tmpfs / "wiki"
        shutil.copytree(built_wiki, root)
        before = state(root)
        filler = fill(tmpfs, leave)
        proc = run_wiki("build", "--models", models, *FAST, "--root", str(root), check=False)
    else:  # an honest stand-in: writes fail with EFBIG past a size limit, as they fail with ENOSPC on a full disk
        if leave:
            pytest.skip("no tmpfs (mounting not permitted): only the file-size-limit simulation runs")
        root = tmp_path / "wiki"
        shutil.copytree(built_wiki, root)
        before = state(root)
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
        proc = subprocess.run([*WIKI, "build", "--models", models, *FAST, "--root", str(root)], env=env, capture_output=True,
                              text=True, preexec_fn=_limited(64 * 1024), timeout=600)
    text = said(proc)
    print(text)  # where the disk ran out shows in -rP
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, text
    assert ("No space left on device" in text or "File too large" in text) and "last complete build" in text, text
    rows, site = state(root)
    assert site == before[1]  # the previous site, byte for byte
    assert set(before[0]) <= set(rows)  # the previous scores, all there (a model finished before the disk filled may be added)
    assert all(r[0] in ("constructed", "second") for r in rows) and len(rows) in (len(before[0]), len(before[0]) + 12)
    assert not (root / ".site.prev").exists() and not list((root / "data" / "scores").glob(".*tmp*"))
    assert run_wiki("query", "SELECT count(*) FROM head_scores", "--root", str(root)).returncode == 0
    if tmpfs is not None:
        filler.unlink()
    run_wiki("build", "--models", models, *FAST, "--root", str(root))
    rows, site = state(root)
    assert {r[0] for r in rows} == {"constructed", "second"}
    assert [r for r in rows if r[0] == "constructed"] == [r for r in before[0] if r[0] == "constructed"]
    assert "models/second.html" in site and "heads/second/L1H0.html" in site


@pytest.mark.integration
def test_a_read_only_folder_is_refused_and_left_as_it_was(tmp_path, tmpfs, built_wiki, constructed_dir):
    if tmpfs is None:
        pytest.skip("needs a tmpfs it can remount read-only (root and mount permitted)")
    root = tmpfs / "wiki"
    shutil.copytree(built_wiki, root)
    before = state(root)
    assert _mount("-o", "remount,ro", str(tmpfs))
    try:
        for args in (["build", "--models", str(constructed_dir), *FAST, "--force"], ["db", "rebuild"]):
            proc = run_wiki(*args, "--root", str(root), check=False)
            text = said(proc)
            assert proc.returncode == 2 and "--root" in text and "not writable" in text and "read-only" in text, text
        assert run_wiki("query", "SELECT count(*) FROM scores", "--root", str(root)).returncode == 0  # reading still works
        assert state(root) == before
    finally:
        assert _mount("-o", "remount,rw", str(tmpfs))
    # only data/ read-only (a bind mount): refused too, naming it
    assert _mount("--bind", str(root / "data"), str(root / "data")) and _mount("-o", "remount,ro,bind", str(root / "data"))
    try:
        proc = run_wiki("build", "--models", str(constructed_dir), *FAST, "--force", "--root", str(root), check=False)
        assert proc.returncode == 2 and "data" in said(proc) and "not writable" in said(proc), said(proc)
        assert state(root) == before
    finally:
        subprocess.run(["umount", str(root / "data")], check=True)
    run_wiki("db", "rebuild", "--root", str(root))
    assert state(root)[0] == before[0]


# ---------------------------------------------------------------------------------------------------------------
# 6. Ray: a worker killed in the middle of a model's task


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'head-wiki[ray]')")
def test_a_ray_worker_killed_mid_task_is_a_failed_run_and_a_rerun_completes_it(tmp_path, constructed_dir):
    models = []
    for name in ("ray-a", "ray-b", "ray-c"):
        shutil.copytree(constructed_dir, tmp_path / name)
        models.append(str(tmp_path / name))
    root = tmp_path / "wiki"
    args = ["build", "--models", ",".join(models), "--no-site", *FAST, "--executor", "ray", "--root", str(root)]
    # the worker scoring ray-b SIGKILLs itself after its first score family (faults.crash_point "mid_scoring")
    proc = run_wiki(*args, env={"HEADWIKI_RAY_CPUS": "2", "HEADWIKI_KILL_AT": "mid_scoring", "HEADWIKI_KILL_MODEL": "ray-b"},
                    check=False)
    assert proc.returncode == 1, said(proc)
    assert "1 of 3 model(s) failed: ray-b" in said(proc)
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    runs = dict(con.execute("SELECT model, status FROM runs").fetchall())
    error = con.execute("SELECT error FROM runs WHERE model = 'ray-b'").fetchone()[0]
    assert [r[0] for r in con.execute("SELECT model FROM models ORDER BY model").fetchall()] == ["ray-a", "ray-c"]
    con.close()
    assert runs == {"ray-a": "ok", "ray-b": "failed", "ray-c": "ok"}
    assert "Ray task failed" in error, error
    assert not (root / "data" / "scores" / "ray-b.parquet").exists()
    rerun = run_wiki(*args, env={"HEADWIKI_RAY_CPUS": "2"}, check=False)
    assert rerun.returncode == 0, said(rerun)
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    last = dict(con.execute("SELECT model, arg_max(status, rowid) FROM runs GROUP BY model").fetchall())
    rows = {m: con.execute("SELECT layer, head, metric, value FROM scores WHERE model = ? ORDER BY ALL", [m]).fetchall()
            for m in ("ray-a", "ray-b", "ray-c")}
    con.close()
    assert last == {"ray-a": "skipped", "ray-b": "ok", "ray-c": "skipped"}
    assert rows["ray-b"] == rows["ray-a"] == rows["ray-c"] and rows["ray-b"]  # the same weights, the same scores
