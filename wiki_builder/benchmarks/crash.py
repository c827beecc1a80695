"""``wiki crash-bench``: kill -9 a real build at random moments, rerun it, and check the result.

A build long enough to be hit in the middle (several random-init GPT-2s scored from scratch, then the
site) runs once uninterrupted as the reference. Then the same build runs in a second folder and is
killed with SIGKILL from outside, again and again, each rerun resuming what the last one left:

* ``scoring``: at a random moment of the scoring (a model half scored, a file half written, the
  database mid-transaction: wherever the moment falls);
* ``render``: at a random moment of the site rendering (``site_src/`` half rewritten);
* ``mkdocs``: at a random moment of the mkdocs build (``site/`` half rebuilt);
* ``rebuild``: ``wiki db rebuild`` killed while it writes the new database, at a random moment and once
  at a fixed point (``HEADWIKI_KILL_AT=db_rebuild``).

The moments are drawn from the reference run's own phase timings (seeded, ``--seed``). After every
kill, what a reader sees is checked (the database opens and answers, with no duplicate rows; every
Parquet file reads; the site being served is complete); after the last, an uninterrupted rerun must
give exactly the reference's scores, no duplicate or partial rows, every Parquet file readable, no
leftover temporary file, and a site with the same pages, each of which parses.

``--quick`` is the short form CI runs (two small models, the attention families, one kill per phase).
"""

from __future__ import annotations

import html.parser
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parents[2]
QUICK = {"models": 2, "layers": 2, "heads": 4, "d_model": 64, "metrics": "induction,prev_token,duplicate_token",
         "scoring": 1, "render": 1, "mkdocs": 1, "rebuild": 1}
FULL = {"models": 4, "layers": 4, "heads": 8, "d_model": 256, "metrics": None, "scoring": 4, "render": 2, "mkdocs": 2, "rebuild": 3}
MARKERS = {"building": "Building ", "summary": "Summary:", "rendered": "Rendered site_src/", "done": "Site built in "}
PHASE_START = {"scoring": "building", "render": "summary", "mkdocs": "rendered"}
PHASE_END = {"scoring": "summary", "render": "rendered", "mkdocs": "done"}
TRIES = 3  # attempts at a phase before the benchmark says it could not hit it


def make_models(folder: Path, n: int, layers: int, heads: int, d_model: int, seed: int = 0) -> list[Path]:
    """``n`` random-init GPT-2s (different weights each) with the embedded toy-gpt2's tokenizer, as local HF folders."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    toy = REPO / "wiki_builder" / "models" / "embedded" / "toy-gpt2"
    base = json.loads((toy / "config.json").read_text())
    out = []
    for i in range(n):
        d = folder / f"crash-{i + 1}"
        if (d / "config.json").is_file():
            out.append(d)
            continue
        torch.manual_seed(seed * 1000 + i)
        cfg = GPT2Config(vocab_size=base["vocab_size"], n_positions=base["n_positions"], n_layer=layers, n_head=heads,
                         n_embd=d_model, n_inner=4 * d_model, bos_token_id=base.get("bos_token_id", 0),
                         eos_token_id=base.get("eos_token_id", 0), pad_token_id=base.get("pad_token_id", 0),
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = GPT2LMHeadModel(cfg)
        model.save_pretrained(d, safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(toy / name, d / name)
        out.append(d)
    return out


class Run:
    """One CLI run in a child process, its stdout lines timestamped as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
        self.start = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "wiki_builder.cli", *args], env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.monotonic() - self.start
            with self.cond:
                self.lines.append((t, line.rstrip("\n")))
                for name, text in MARKERS.items():
                    if name not in self.seen and line.lstrip().startswith(text):
                        self.seen[name] = t
                self.cond.notify_all()
        with self.cond:
            self.seen.setdefault("exit", time.monotonic() - self.start)
            self.cond.notify_all()

    def wait_for(self, marker: str, timeout: float = 900) -> bool:
        """Wait until ``marker`` is printed; False if the process ended first."""
        with self.cond:
            return self.cond.wait_for(lambda: marker in self.seen or "exit" in self.seen, timeout) and marker in self.seen

    def phase(self) -> str:
        """Where the run is now, from what it has printed."""
        with self.cond:
            if "exit" in self.seen or self.proc.poll() is not None:
                return "finished"
            for name, phase in (("done", "finishing"), ("rendered", "mkdocs"), ("summary", "render"), ("building", "scoring")):
                if name in self.seen:
                    return phase
            return "starting"

    def kill(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self, timeout: float = 900) -> int:
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        return rc

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@dataclass
class Kill:
    aim: str  # scoring | render | mkdocs | rebuild | rebuild-point
    delay: float  # seconds after the phase began
    landed: str = ""  # where the run was when the signal went
    rc: int | None = None


@dataclass
class Report:
    kills: list[Kill] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def check(self, name: str, ok: bool, problem: str = "") -> None:
        self.checks[name] = self.checks.get(name, True) and bool(ok)
        if not ok:
            self.problems.append(f"{name}: {problem}" if problem else name)


# ---------------------------------------------------------------------------------------------------------------
# What a reader sees


def _scores(data: Path) -> tuple[list[tuple], int, list[str]]:
    con = duckdb.connect(str(data / "wiki.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT model, layer, head, metric, CASE WHEN isnan(value) THEN NULL ELSE value END, metric_version, detail "
                           "FROM scores ORDER BY ALL").fetchall()
        dupes = con.execute("SELECT (SELECT count(*) FROM (SELECT 1 FROM scores GROUP BY model, layer, head, metric HAVING count(*) > 1)) "
                            "+ (SELECT count(*) FROM (SELECT 1 FROM models GROUP BY model HAVING count(*) > 1)) "
                            "+ (SELECT count(*) FROM (SELECT 1 FROM provenance GROUP BY model, metric HAVING count(*) > 1))").fetchone()[0]
        models = [r[0] for r in con.execute("SELECT model FROM models ORDER BY model").fetchall()]
    finally:
        con.close()
    return rows, dupes, models


def _complete_rows(data: Path) -> bool:
    """Every model in the database has a full grid: layers x heads rows for each metric it has."""
    con = duckdb.connect(str(data / "wiki.duckdb"), read_only=True)
    try:
        bad = con.execute("SELECT count(*) FROM (SELECT s.model, s.metric, count(*) AS n, any_value(m.n_layers * m.n_heads) AS want "
                          "FROM scores s JOIN models m USING (model) GROUP BY s.model, s.metric) WHERE n != want").fetchone()[0]
    finally:
        con.close()
    return bad == 0


class _PageCheck(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)


def _bad_pages(site: Path) -> list[str]:
    """HTML pages that do not parse as a whole page (cut short, empty)."""
    bad = []
    for page in sorted(site.rglob("*.html")):
        try:
            text = page.read_text(encoding="utf-8")
            parser = _PageCheck()
            parser.feed(text)
            parser.close()
        except (OSError, UnicodeDecodeError, AssertionError) as exc:
            bad.append(f"{page.relative_to(site)} ({exc})")
            continue
        if "html" not in parser.tags or not text.rstrip().lower().endswith("</html>"):
            bad.append(str(page.relative_to(site)))
    return bad


def _site_files(site: Path) -> set[str]:
    return {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}


def _leftovers(root: Path) -> list[str]:
    found = [str(p.relative_to(root)) for p in (root / "data" / "scores").glob(".*tmp*")]
    found += [str(p.relative_to(root)) for p in (root / "data").glob(".wiki.duckdb.tmp-*")]
    found += [name for name in (".site.prev", ".site.prev.tmp") if (root / name).exists()]
    found += [str(p.relative_to(root)) for p in (root / "site_src").rglob("*.tmp")]
    return found


def _reader_view(root: Path, report: Report, label: str, had_site: bool) -> None:
    """What a user sees right after a kill: the database answers with no duplicates, the files read, the site is whole."""
    from ..store import read_record, score_files
    from ..store.db import fetch
    from ..workspace import Workspace, served_site

    data = root / "data"
    if (data / "wiki.duckdb").is_file():
        try:
            _, dupes, _ = _scores(data)
            report.check("database readable after every kill", True)
            report.check("no duplicate rows after every kill", dupes == 0, f"{dupes} after {label}")
            report.check("no partial model after every kill", _complete_rows(data), f"after {label}")
            fetch(data, "SELECT count(*) FROM head_scores")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            report.check("database readable after every kill", False, f"after {label}: {type(exc).__name__}: {exc}")
    for path in score_files(data):
        try:
            read_record(path)
        except Exception as exc:  # noqa: BLE001
            report.check("every Parquet file readable after every kill", False, f"after {label}: {exc}")
    if had_site:
        served = served_site(Workspace(root))
        ok = (served / "index.html").is_file()
        bad = _bad_pages(served) if ok else ["index.html missing"]
        report.check("served site complete after every kill", ok and not bad, f"after {label}: {bad[:5]}")


def _await_new_database(run_: Run, data: Path, timeout: float = 300) -> float | None:
    """Wait until ``wiki db rebuild`` starts writing its new database (``data/.wiki.duckdb.tmp-PID``); when it did."""
    tmp_db = data / f".wiki.duckdb.tmp-{run_.proc.pid}"
    deadline = time.monotonic() + timeout
    while not tmp_db.exists() and run_.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return time.monotonic() if tmp_db.exists() else None


# ---------------------------------------------------------------------------------------------------------------


def run(root: Path | None = None, quick: bool = False, models: int | None = None, kills: int | None = None, seed: int = 0,
        keep: bool = False, out: Callable[[str], None] = print) -> dict[str, Any]:
    plan = dict(QUICK if quick else FULL)
    if models is not None:
        plan["models"] = models
    if kills is not None:
        plan["scoring"] = kills
    rng = random.Random(seed)
    tmp = None
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="headwiki-crash-bench-"))
        root = tmp
    root = Path(root).resolve()
    report = Report()
    t0 = time.perf_counter()
    try:
        paths = make_models(root / "models", plan["models"], plan["layers"], plan["heads"], plan["d_model"], seed)
        args = ["build", "--models", ",".join(str(p) for p in paths)]
        if plan["metrics"]:
            args += ["--metrics", plan["metrics"]]
        ref_root, crash_root = root / "reference", root / "crashed"
        for d in (ref_root, crash_root):
            shutil.rmtree(d, ignore_errors=True)

        out(f"reference: {plan['models']} model(s) ({plan['layers']} layers x {plan['heads']} heads, d_model {plan['d_model']}), "
            f"metrics: {plan['metrics'] or 'all'}")
        ref = Run([*args, "--root", str(ref_root)])
        rc = ref.finish()
        if rc != 0:
            raise RuntimeError(f"the reference build failed ({rc}):\n{ref.text()[-3000:]}")
        s = ref.seen
        windows = {"scoring": s["summary"] - s["building"], "render": s["rendered"] - s["summary"], "mkdocs": s["done"] - s["rendered"]}
        report.seconds.update({"reference": s.get("exit", 0.0), **{f"reference_{k}": round(v, 2) for k, v in windows.items()}})
        out("reference took {:.1f}s: scoring {:.1f}s, rendering {:.1f}s, mkdocs {:.1f}s".format(s.get("exit", 0.0), *windows.values()))

        # Kills during the build, each rerun resuming the last one's work.
        aims = ["scoring"] * plan["scoring"] + ["render"] * plan["render"] + ["mkdocs"] * plan["mkdocs"]
        had_site = False
        for aim in aims:
            # A rerun resumes, so its phase can be shorter than the reference's: a kill that lands past its phase is
            # tried again (up to TRIES times) sooner into the phase.
            for attempt in range(TRIES):
                delay = rng.uniform(0.05, 0.95) * windows[aim] * 0.4**attempt
                run_ = Run([*args, "--root", str(crash_root)])
                if not run_.wait_for(PHASE_START[aim]):
                    kill = Kill(aim, delay, landed="finished before its phase", rc=run_.finish())
                else:
                    time.sleep(delay)
                    kill = Kill(aim, delay, landed=run_.phase())
                    run_.kill()
                    kill.rc = run_.finish()
                report.kills.append(kill)
                out(f"  kill during {aim:8s} after {delay:5.2f}s: landed in {kill.landed} (exit {kill.rc})")
                if kill.rc not in (-signal.SIGKILL, 0):
                    report.check("every run either killed or finished cleanly", False, f"{aim}: exit {kill.rc}\n{run_.text()[-2000:]}")
                _reader_view(crash_root, report, f"kill during {aim}", had_site)
                had_site = had_site or (crash_root / "site" / "index.html").is_file()
                if kill.landed == aim:
                    break
        final = Run([*args, "--root", str(crash_root)])
        rc = final.finish()
        report.check("the rerun after the kills succeeds", rc == 0, f"exit {rc}:\n{final.text()[-3000:]}")

        # Kills during `wiki db rebuild`.
        before = _scores(crash_root / "data")[0]
        ref_rebuild = Run(["db", "rebuild", "--root", str(crash_root)])
        appeared = _await_new_database(ref_rebuild, crash_root / "data")
        report.check("db rebuild succeeds", ref_rebuild.finish() == 0, ref_rebuild.text()[-2000:])
        rebuild_window = max(0.01, (ref_rebuild.seen.get("exit", 0.0) + ref_rebuild.start - appeared) if appeared else 0.2)
        report.seconds["reference_rebuild_write"] = round(rebuild_window, 3)
        tries = [("rebuild", a) for _ in range(plan["rebuild"]) for a in range(TRIES)] + [("rebuild-point", 0)]
        hit = False
        for aim, attempt in tries:
            if aim == "rebuild" and attempt == 0:
                hit = False
            if aim == "rebuild" and hit:
                continue  # this kill already landed; the spare attempts are for misses
            env = {"HEADWIKI_KILL_AT": "db_rebuild"} if aim == "rebuild-point" else None
            run_ = Run(["db", "rebuild", "--root", str(crash_root)], env=env)
            if aim == "rebuild-point":
                kill = Kill(aim, 0.0, landed="rebuild (crash point)", rc=run_.finish())
            else:
                # the new database appears as data/.wiki.duckdb.tmp-PID: kill at a random moment of its writing
                _await_new_database(run_, crash_root / "data")
                delay = rng.uniform(0.0, 0.8 * rebuild_window) * 0.4**attempt
                time.sleep(delay)
                kill = Kill(aim, delay, landed="rebuild" if run_.proc.poll() is None else "finished")
                run_.kill()
                kill.rc = run_.finish()
                hit = kill.landed == "rebuild"
            report.kills.append(kill)
            out(f"  kill during db rebuild{' (crash point)' if aim == 'rebuild-point' else f' after {kill.delay:5.3f}s'}: "
                f"landed in {kill.landed} (exit {kill.rc})")
            now = _scores(crash_root / "data")[0]
            report.check("the database is intact after a killed rebuild", now == before, f"{len(now)} rows vs {len(before)}")
            _reader_view(crash_root, report, "kill during db rebuild", True)
        again = Run(["db", "rebuild", "--root", str(crash_root)])
        report.check("db rebuild after the kills succeeds", again.finish() == 0, again.text()[-2000:])

        # The result against the reference.
        ref_rows, _, ref_models = _scores(ref_root / "data")
        rows, dupes, names = _scores(crash_root / "data")
        report.check("same scores as the uninterrupted build", rows == ref_rows,
                     f"{len(rows)} rows vs {len(ref_rows)}; first difference: "
                     f"{next(((a, b) for a, b in zip(rows, ref_rows) if a != b), None)}")
        report.check("same models", names == ref_models, f"{names} vs {ref_models}")
        report.check("no duplicate rows", dupes == 0, f"{dupes}")
        report.check("no partial rows", _complete_rows(crash_root / "data"))
        from ..store import read_record, score_files

        files = score_files(crash_root / "data")
        ref_files = [Path(f).name for f in score_files(ref_root / "data")]
        report.check("the same Parquet files", [Path(f).name for f in files] == ref_files, f"{files}")
        for f in files:
            try:
                rec = read_record(f)
                want = [r for r in rows if r[0] == rec.model["model"]]
                got = sorted((r["model"], r["layer"], r["head"], r["metric"], None if r["value"] != r["value"] else r["value"],
                              r["metric_version"], r["detail"]) for r in rec.rows)
                report.check("every Parquet file readable and equal to the database", got == want, f"{f}")
            except Exception as exc:  # noqa: BLE001
                report.check("every Parquet file readable and equal to the database", False, f"{f}: {exc}")
        report.check("no leftover temporary files", not _leftovers(crash_root), f"{_leftovers(crash_root)}")
        pages, ref_pages = _site_files(crash_root / "site"), _site_files(ref_root / "site")
        report.check("the site has every page of the uninterrupted build's", pages == ref_pages,
                     f"missing {sorted(ref_pages - pages)[:10]}, extra {sorted(pages - ref_pages)[:10]}")
        bad = _bad_pages(crash_root / "site")
        report.check("every page parses", not bad, f"{bad[:10]}")
        runs = duckdb.connect(str(crash_root / "data" / "wiki.duckdb"), read_only=True)
        try:
            ok_models = {r[0] for r in runs.execute("SELECT DISTINCT model FROM runs WHERE status = 'ok'").fetchall()}
            failed = runs.execute("SELECT count(*) FROM runs WHERE status = 'failed'").fetchone()[0]
        finally:
            runs.close()
        report.check("every model has an ok run and none failed", ok_models == set(ref_models) and failed == 0,
                     f"ok: {sorted(ok_models)}, failed runs: {failed}")
        lock = crash_root / ".wiki-build.lock"
        report.check("the builder lock is free", not lock.exists() or lock.stat().st_size == 0)
        hits = [k for k in report.kills if k.landed not in ("finished", "finished before its phase")]
        report.check("most kills landed mid-work", len(hits) * 2 >= len(report.kills), f"{len(hits)} of {len(report.kills)}")
        aimed = {k.aim for k in report.kills} - {"rebuild-point"}
        landed = {k.landed for k in report.kills}
        report.check("every phase aimed at was hit at least once", aimed <= landed, f"aimed at {sorted(aimed)}, landed in {sorted(landed)}")
    except Exception as exc:  # noqa: BLE001 - the report says what broke
        report.check("the benchmark ran", False, f"{type(exc).__name__}: {exc}")
    finally:
        report.seconds["total"] = round(time.perf_counter() - t0, 1)
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ok = bool(report.checks) and all(report.checks.values())
    out("")
    for name, passed in report.checks.items():
        out(f"  {'ok  ' if passed else 'FAIL'} {name}")
    for p in report.problems:
        out(f"  problem: {p}")
    landed = {}
    for k in report.kills:
        landed[k.landed] = landed.get(k.landed, 0) + 1
    out(f"{len(report.kills)} kill(s) landed in: " + ", ".join(f"{v} {k}" for k, v in sorted(landed.items())))
    out(f"{'PASS' if ok else 'FAIL'} in {report.seconds['total']:.0f}s")
    return {"pass": ok, "checks": report.checks, "problems": report.problems, "seconds": report.seconds,
            "kills": [k.__dict__ for k in report.kills], "root": str(root)}
