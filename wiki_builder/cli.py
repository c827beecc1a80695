"""The ``wiki`` command. Heavy imports (torch, transformer_lens) happen inside commands, so ``wiki --help`` is instant."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="Head Wiki: score every attention head of a model, store the scores, publish a wiki.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Maintain the DuckDB database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)

RootOpt = typer.Option(None, "--root", help="The wiki's folder (data/, site_src/, mkdocs.yml, site/). Default: the current directory.")


class OutFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


SEED_MAX = 2**31 - 1  # seeds are stored as DuckDB INTEGERs
PROMPTS_MAX = 1024  # prompts per task: more only costs time
CORPUS_TOKENS, CORPUS_TOKENS_MAX = 4096, 10_000_000  # the corpus pass's tokens per model (scores.corpus.DEFAULT_TOKENS)


def int_in(lo: int, hi: int | None = None):
    """A parser for an integer option: the error names the bad value and the range expected (click adds the option)."""
    expected = f"an integer from {lo} to {hi}" if hi is not None else f"an integer of at least {lo}"

    def parse(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = int(str(value).strip(), 10)
            except ValueError:
                raise typer.BadParameter(f"'{value}' is not an integer. Expected {expected}.") from None
        if v < lo or hi is not None and v > hi:
            raise typer.BadParameter(f"{v} is out of range. Expected {expected}.")
        return v

    return parse


def number_in(lo: float, hi: float | None = None, above: bool = False):
    """A parser for a number option (``above``: strictly greater than ``lo``)."""
    expected = (f"a number {'above' if above else 'of at least'} {lo:g}" + (f" and at most {hi:g}" if hi is not None else ""))

    def parse(value: object) -> float:
        try:
            v = float(str(value).strip())
        except ValueError:
            raise typer.BadParameter(f"'{value}' is not a number. Expected {expected}.") from None
        if v != v or (v <= lo if above else v < lo) or hi is not None and v > hi or v == float("inf"):
            raise typer.BadParameter(f"{value} is out of range. Expected {expected}.")
        return v

    return parse


WaitOpt = typer.Option(0.0, "--wait", parser=number_in(0, 7 * 24 * 3600), help="If another builder is working in this folder, wait up to this many seconds "
                       "for it to finish (default: refuse at once, naming it).")


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def check_root(root: Path | None, *, must_exist: bool = False, writable: bool = True, builds: bool = False) -> None:
    """Refuse a --root that is a file, cannot be created or is not writable, before any work (exit 2, nothing written)."""
    from .workspace import check_folder, check_workspace

    if builds:
        problem = check_workspace(root)
    elif root is not None:
        problem = check_folder(root, "--root", must_exist=must_exist, writable=writable)
    else:
        problem = None
    if problem:
        fail(problem)


def check_store(store: str) -> None:
    """A --store pyarrow can open; a local one must be (or become) a writable folder."""
    from .store.parquet import open_store

    try:
        fs, base = open_store(store)
    except ValueError as exc:
        fail(f"--store: {exc}")
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        from .workspace import check_folder

        problem = check_folder(Path(base), "--store")
        if problem:
            fail(problem)


def check_device(device: str) -> None:
    """--device: auto, cpu, cuda, cuda:N or mps, and present on this machine (CUDA and MPS are checked here)."""
    import re

    if not (device in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", device)):
        fail(f"Unknown --device '{device}'. Use auto, cpu, cuda, cuda:N or mps.")
    if device in ("auto", "cpu"):
        return
    from .models.load import ModelLoadError, pick_device

    try:
        pick_device(device)
    except ModelLoadError as exc:
        fail(str(exc))
    if device.startswith("cuda:"):
        import torch

        n = torch.cuda.device_count()
        if int(device.split(":")[1]) >= n:
            fail(f"--device {device}: this machine has {n} CUDA device(s) (cuda:0 to cuda:{n - 1}).")


def check_families(family: str | None) -> None:
    """--family: every name must be a family of TransformerLens' official models."""
    if not family:
        return
    from .models.registry import registry_entries

    wanted = [f.strip().lower() for f in family.split(",") if f.strip()]
    known = sorted({e.family.lower() for e in registry_entries() if e.family})
    unknown = [f for f in wanted if f not in known]
    if unknown or not wanted:
        fail(f"Unknown --family '{family}'{' (' + ', '.join(unknown) + ')' if unknown else ''}. Known families: {', '.join(known)}.")


def check_max_params(max_params: float | None) -> None:
    if max_params is not None and not (max_params > 0 and max_params != float("inf")):
        fail(f"--max-params {max_params:g} is not a positive number of parameters. Expected e.g. 2e8.")


def check_output_file(path: Path, option: str) -> None:
    """A file the command will write: its folder must exist and be writable, and it must not be a folder."""
    from .workspace import check_folder

    if path.is_dir():
        fail(f"{option} '{path}' is a folder. Expected the name of a file to write.")
    if not path.parent.is_dir():
        fail(f"{option} '{path}': its folder {path.parent} does not exist. Expected a file in an existing folder.")
    problem = check_folder(path.parent, option, must_exist=True)
    if problem:
        fail(problem)


def storage_failure(exc: BaseException, doing: str) -> None:
    """A full disk or a read-only folder during the work: say so plainly (exit 1); anything else goes on up."""
    from .faults import storage_error

    what = storage_error(exc)
    if what is None:
        raise exc
    fail(f"{doing} stopped: {what}. The disk is full (or a quota or file size limit was reached, or the folder is read-only). "
         "Nothing stored before was lost: the "
         "database and the site are those of the last complete build. Free some space (or make the folder writable) and "
         "run the same command again: it resumes where this one stopped.", 1)


def take_builder_lock(root: Path | None, command: str, wait: float):
    """The folder's builder lock, or exit 2 naming the process that holds it."""
    from .workspace import BuilderBusy, BuilderLock, describe_holder

    try:
        lock = BuilderLock((root or Path.cwd()).resolve(), command, wait)
    except BuilderBusy as exc:
        fail(str(exc))
    except OSError as exc:
        storage_failure(exc, command)
    if lock.took_over:
        console.print(f"[yellow]note:[/] took over the lock left by {escape(describe_holder(lock.took_over))}, which is no longer running "
                      "(killed?); its finished work is kept and the rest is redone.", highlight=False)
    return lock


@app.command()
def build(
    models: str | None = typer.Option(None, "--models", "-m", help="Comma-separated names: embedded models, TransformerLens names or aliases (gpt2-small), or local Hugging Face-format directories. Default: the embedded zoo plus stories260K."),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, mixed-bf16 on GPU), float32, float16, bfloat16, or mixed-bf16 (OV scores from float32 weights, forward passes in bfloat16)."),
    seed: int = typer.Option(0, parser=int_in(0, SEED_MAX), help="Seed for the probe sequences (0 to 2147483647)."),
    metrics: str | None = typer.Option(None, help="Comma-separated metric ids (default: all, and every head's examples on text; head_examples names those)."),
    site: bool = typer.Option(True, "--site/--no-site", help="Render and build the static site after scoring."),
    force: bool = typer.Option(False, "--force", help="Recompute scores that are already stored (default: skip them and resume)."),
    max_params: float | None = typer.Option(None, "--max-params", parser=number_in(0, above=True), help="With --models all: only models with at most this many parameters (e.g. 2e8)."),
    family: str | None = typer.Option(None, "--family", help="With --models all: only these families (comma-separated, e.g. gpt2,gpt-neox)."),
    match: str | None = typer.Option(None, "--match", help="With --models all: only names matching this glob or substring (e.g. 'pythia-*')."),
    executor: str = typer.Option("local", "--executor", help="local (in this process) or ray (one task per model on a Ray cluster)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local one."),
    store: str | None = typer.Option(None, "--store", help="Where the Parquet files go: a folder or a pyarrow URI (file:///..., s3://bucket/scores). Default: data/scores."),
    ablation: str = typer.Option("mean,resample", "--ablation", help="Task ablations: mean and resample always; add zero (e.g. mean,resample,zero)."),
    method: str = typer.Option("exact", "--method", help="Task ablations: exact (batched, same numbers as one pass per head) or attribution (gradient estimate, fast; its correlation with exact is stored)."),
    task_prompts: int = typer.Option(32, "--task-prompts", parser=int_in(2, PROMPTS_MAX), help="Prompts per task (clean and corrupted), 2 to 1024."),
    wait: float = WaitOpt,
    root: Path | None = RootOpt,
    force_tasks: bool = typer.Option(False, "--force-tasks", hidden=True, help="Benchmarks only: score the tasks even where the model does not do them."),
    corpus: str | None = typer.Option(None, "--corpus", help="Text for every head's examples: a text file, a folder of .txt files (documents split at blank lines), or a Hugging Face dataset id. Default: the zoo's own training text, NeelNanda/pile-10k for hub models, text the model writes itself for stories260K and local models."),
    corpus_tokens: int = typer.Option(CORPUS_TOKENS, "--corpus-tokens", parser=int_in(0, CORPUS_TOKENS_MAX), help=f"Tokens of the corpus each model reads for its examples (0: no examples; default {CORPUS_TOKENS})."),
) -> None:
    """Score models, store the scores in data/, and build the site in site/.

    Resumable: what is already stored for (model, metric, metric version, seed, dtype) is skipped.
    A model that fails is recorded in the runs table and the others go on; the exit code is 1 if any failed.
    Every option is checked before any work (exit 2, nothing written). One builder per folder: a second one
    is refused (or waits, --wait). Killed at any moment, a rerun finishes the work; a full disk stops the
    build with the previous database and site intact (exit 1).
    """
    from .models.load import DTYPES, ModelLoadError, check_dtype
    from .models.resolve import ModelNotFound, default_models, resolve_many

    if dtype not in DTYPES:
        fail(f"Unknown --dtype '{dtype}'. Use one of: {', '.join(DTYPES)}.")
    import re

    if not (device in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", device)):
        fail(f"Unknown --device '{device}'. Use auto, cpu, cuda, cuda:N or mps.")
    from .scores.base import BuildOptions

    kinds = {k.strip() for k in ablation.split(",") if k.strip()}
    if not kinds or kinds - {"mean", "resample", "zero"}:
        fail(f"Unknown --ablation '{ablation}'. Use a comma-separated subset of mean, resample, zero.")
    if method not in ("exact", "attribution"):
        fail(f"Unknown --method '{method}'. Use exact or attribution.")
    options = BuildOptions(ablation=tuple(kinds), method=method, task_prompts=task_prompts)
    if executor not in ("local", "ray"):
        fail(f"Unknown --executor '{executor}'. Use local or ray.")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            fail("--executor ray needs Ray, which is not installed: pip install 'head-wiki[ray]'.")
    elif ray_address:
        fail(f"--ray-address '{ray_address}' only applies with --executor ray.")
    check_root(root, builds=True)
    if store:
        check_store(store)
    check_max_params(max_params)
    filters = max_params is not None or family or match
    everything = models is not None and models.strip().lower() == "all"
    if filters and not everything:
        fail("--max-params, --family and --match filter TransformerLens' official list: use them with --models all.")
    if everything:
        check_families(family)
    try:
        check_dtype(dtype)
        if everything:
            from .models.registry import registry_entries, select
            from .models.resolve import ModelSpec

            chosen = select(registry_entries(), max_params=max_params, family=family, pattern=match)
            if not chosen:
                given = ", ".join(f"{k} '{v}'" for k, v in (("--match", match), ("--family", family), ("--max-params", max_params)) if v is not None)
                fail(f"No official model matches {given}. Expected filters that select at least one model: "
                     "see `wiki models` for names, families and sizes.")
            specs = [ModelSpec(name=e.name, source="hub", location=e.official) for e in chosen]
        else:
            specs = resolve_many(models if models is not None else default_models())
    except (ModelNotFound, ModelLoadError) as exc:
        fail(str(exc))
    from .families import registry

    metric_ids = None
    if metrics:
        metric_ids = [m.strip() for m in metrics.split(",") if m.strip()]
        unknown = [m for m in metric_ids if m not in registry() and m != "head_examples"]  # head_examples: the corpus pass
        if unknown or not metric_ids:
            fail(f"Unknown metric(s): {', '.join(unknown) or '(none given)'}. Known: {', '.join(registry())}, head_examples.")
    check_device(device)
    from .scores.corpus import CorpusOptions
    from .scores.texts import CorpusError, check_corpus

    try:
        check_corpus(corpus)
    except CorpusError as exc:
        fail(str(exc))
    with take_builder_lock(root, "wiki build", wait):
        _build_locked(specs, root, device, dtype, seed, metric_ids, site, force, store, executor, ray_address, options, force_tasks,
                      corpus=CorpusOptions(spec=corpus, tokens=corpus_tokens))


def _build_locked(specs, root, device, dtype, seed, metric_ids, site, force, store, executor, ray_address, options,
                  force_tasks: bool = False, corpus: Any = None) -> None:
    """``wiki build`` once its options are checked and it holds the folder's builder lock."""
    from .workspace import open_workspace, site_guard

    try:
        ws = open_workspace(root)
    except OSError as exc:
        storage_failure(exc, "wiki build")
    from .build import build_models

    console.print(f"Building [bold]{len(specs)}[/] model(s) into {ws.root}: {', '.join(s.name for s in specs)}")
    from .store import CorruptParquet

    try:
        report = build_models(specs, ws, device=device, dtype=dtype, seed=seed, metric_ids=metric_ids, console=console, force=force,
                              store=store, executor=executor, ray_address=ray_address, options=options, force_tasks=force_tasks,
                              corpus=corpus)
    except CorruptParquet as exc:
        fail(str(exc))
    except Exception as exc:
        storage_failure(exc, "wiki build")
    console.print("Summary:")
    for o in report.outcomes:
        mark = "[red]PARTIAL[/]" if getattr(o, "partial", False) else "[red]FAILED[/]" if not o.ok else "[yellow]skipped[/]" if o.skipped else "[green]ok[/]"
        detail = ": " + o.error if not o.ok else " (already stored)" if o.skipped else f" ({o.seconds:.1f}s)"
        console.print(f"  {mark} {o.model}{detail}", highlight=False)
    if site and any(o.ok for o in report.outcomes) or site and (ws.data / "wiki.duckdb").exists():
        from .site.render import SiteBuildError, build_site, render_markdown

        try:
            with site_guard(ws):  # the previous site stays whole (and served) until the new one is
                stats = render_markdown(ws)
                console.print(f"Rendered site_src/: {stats.written} page(s) written, {stats.unchanged} unchanged, {stats.removed} removed")
                build_site(ws)
        except SiteBuildError as exc:
            from .faults import storage_error

            if storage_error(exc):
                storage_failure(exc, "Building the site")
            fail(str(exc), 1)
        except Exception as exc:
            storage_failure(exc, "Building the site")
        console.print(f"Site built in {ws.site}. Open it with `wiki serve`{'' if root is None else f' --root {root}'}.", highlight=False)
    if report.failed:
        fail(f"{len(report.failed)} of {len(report.outcomes)} model(s) failed: {', '.join(o.model for o in report.failed)}", 1)


@app.command()
def query(
    sql: str = typer.Argument(..., help="A SELECT query over models, scores, head_scores, provenance, metrics, runs; it may read "
                              "the wiki's own files in data/ (e.g. 'data/scores/*.parquet', relative to the wiki's folder)."),
    format: OutFormat = typer.Option(OutFormat.table, "--format", "-f", help="table, csv or json."),
    root: Path | None = RootOpt,
) -> None:
    """Run SQL over the scores. Read-only for real: the database is opened read-only, only SELECT statements
    run, and DuckDB itself is locked down (no file outside the wiki's data/ folder is read, none is written,
    no extension is installed or loaded, no other database attached). Works while a build runs."""
    import os

    import duckdb

    from .store.db import QueryRefused, fetch
    from .workspace import open_workspace

    check_root(root, must_exist=True, writable=False)
    if not sql.strip().strip(";").strip():
        fail("The query is empty. Expected a SELECT statement, e.g. \"SELECT * FROM head_scores LIMIT 5\".")
    ws = open_workspace(root, create=False)
    os.chdir(ws.root)  # relative paths in the query are relative to the wiki's folder
    try:
        cols, rows = fetch(ws.data, sql)
    except QueryRefused as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        if "read-only" in msg.lower() or "read only" in msg.lower():
            fail(f"The query tried to change the database, and `wiki query` is read-only: {msg}")
        fail(f"The query failed: {msg}")
    if format is OutFormat.json:
        typer.echo(json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1))
    elif format is OutFormat.csv:
        import csv
        import sys

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
    else:
        from rich.table import Table

        t = Table(*cols, show_lines=False)
        for r in rows:
            t.add_row(*("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in r))
        console.print(t)
        console.print(f"{len(rows)} row(s)")


@app.command()
def serve(port: int = typer.Option(8000, parser=int_in(1, 65535), help="Port on localhost (1 to 65535)."), root: Path | None = RootOpt) -> None:
    """Serve the built site on http://127.0.0.1:PORT. While a build rewrites site/, the previous complete site is served."""
    import http.server

    from .workspace import SITE_PREVIOUS, open_workspace, served_site

    check_root(root, must_exist=True, writable=False)
    ws = open_workspace(root, create=False)
    if not (served_site(ws) / "index.html").is_file():
        fail(f"No built site in {ws.site}. Run `wiki build` first.")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(ws.site), **kwargs)

        def translate_path(self, path: str) -> str:
            """Per request: the previous complete site while a build rewrites site/, else site/ (and the
            other one if the file is not found there, for a request that meets the switch)."""
            import os

            found = ""
            for base in dict.fromkeys((served_site(ws), ws.site, ws.root / SITE_PREVIOUS)):
                self.directory = str(base)
                found = super().translate_path(path)
                if os.path.exists(found):
                    break
            return found

        def send_head(self):  # noqa: ANN202 - http.server's own signature
            """A request that meets the switch (the previous site moved away between finding a file and opening
            it) is looked up again instead of answered 404."""
            for attempt in range(3):
                self._retry_404, self._missed = attempt < 2, False
                body = super().send_head()
                if body is not None or not self._missed:
                    return body
            return None

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            if code == 404 and getattr(self, "_retry_404", False):
                self._missed = True
                return
            super().send_error(code, message, explain)

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        fail(f"--port {port} cannot be used: {exc.strerror or exc}. Expected a free port, e.g. --port {port + 1 if port < 65535 else 8000}.")
    with server as httpd:
        console.print(f"Serving {ws.site} on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


@app.command("models")
def list_models(
    all_names: bool = typer.Option(False, "--all", help="Also list every alias of TransformerLens' official models."),
    max_params: float | None = typer.Option(None, "--max-params", parser=number_in(0, above=True), help="Only models with at most this many parameters."),
    family: str | None = typer.Option(None, "--family", help="Only these families (comma-separated)."),
    match: str | None = typer.Option(None, "--match", help="Only names matching this glob or substring."),
    fmt: str = typer.Option("table", "--format", help="table or json (every field, the memory estimate in bytes)."),
    root: Path | None = RootOpt,
) -> None:
    """What can be built, and what is: embedded models, stories260K, and TransformerLens' official models
    (small to large) with their family, size, estimated memory and status (built, stale, failed, not built)."""
    if fmt not in ("table", "json"):
        fail(f"Unknown --format '{fmt}'. Use table or json.")
    from rich.table import Table

    from .models.registry import registry_entries, select
    from .models.render_sizes import gib, human_params
    from .models.resolve import STORIES, embedded_models, official_names, stories_dir
    from .store.status import model_status
    from .workspace import open_workspace

    check_root(root, writable=False)
    check_max_params(max_params)
    check_families(family)
    ws = open_workspace(root, create=False)
    status = model_status(ws.data)
    t = Table("name", "hub id / kind", "family", "params", "memory (fp32)", "status")
    filtered = max_params is not None or family or match
    if not filtered:
        for name in embedded_models():
            t.add_row(name, "embedded (trained here)", "", "", "", status.get(name, "not built"))
        if stories_dir():
            t.add_row(STORIES, "real, ../shared (llama2.c)", "llama", "260K", "", status.get(STORIES, "not built"))
    _, aliases = official_names()
    from .benchmarks.coverage import _guess_arch
    from .models.coverage_table import covered_architectures

    coverage = covered_architectures()  # architecture -> covered | partial | failed | refused | no stand-in (wiki coverage)
    entries = select(registry_entries(), max_params=max_params, family=family, pattern=match)
    if filtered and not entries:
        given = ", ".join(f"{k} '{v}'" for k, v in (("--match", match), ("--family", family), ("--max-params", max_params)) if v is not None)
        fail(f"No official model matches {given}. Expected filters that select at least one model (`wiki models --all` lists them all).")
    if fmt == "json":
        rows = [{"name": e.name, "hub_id": e.official, "aliases": aliases.get(e.official, []), "family": e.family,
                 "architecture": e.architecture or _guess_arch(e.official), "n_params": int(e.n_params), "size_source": e.size_source,
                 "estimated_memory_bytes": {d: e.memory_bytes(d) for d in ("float32", "bfloat16")},
                 "architecture_coverage": coverage.get(e.architecture or _guess_arch(e.official), "not checked") if coverage else "covered",
                 "status": status.get(e.name, "not built")} for e in entries]
        print(json.dumps(rows, indent=1))
        return
    for e in entries:
        extra = f" ({', '.join(aliases.get(e.official, [])[1:])})" if all_names and len(aliases.get(e.official, [])) > 1 else ""
        approx = "" if e.size_source == "cache" else "~"
        arch_status = coverage.get(e.architecture or _guess_arch(e.official), "not checked") if coverage else "covered"
        mark = "" if arch_status == "covered" else f" [yellow](architecture {arch_status})[/]"
        t.add_row(e.name + extra, e.official, e.family, approx + human_params(e.n_params), approx + gib(e.memory_bytes()),
                  status.get(e.name, "not built") + mark)
    console.print(t)
    console.print(f"{len(embedded_models())} embedded, {len(entries)} official TransformerLens models shown "
                  "(~ = size estimated from the name or a table; exact once the config is in the Hugging Face cache). "
                  "Any local Hugging Face-format directory works too: wiki build --models ./path/to/dir")


@app.command("fetch-engine")
def fetch_engine_cmd(
    source: Path | None = typer.Option(None, "--from", help="A folder holding the pinned npm tarballs (from `npm pack`), "
                                       "instead of the npm registry: for a machine that is offline."),
) -> None:
    """Fetch DuckDB-WASM for the query page into the user cache (pinned version, checksum verified); builds then use it offline."""
    from .site import engine

    if source is not None and not source.exists():
        fail(f"--from '{source}' does not exist. Expected a folder holding {' and '.join(p.tarball for p in engine.PACKAGES)}.")
    try:
        folder = engine.fetch(source=source)
    except engine.EngineError as exc:
        if source is None:
            engine.remember_failure(exc)
        fail(f"{exc}\n{engine.how_to_add()}", code=1)
    except OSError as exc:
        storage_failure(exc, "fetch-engine")
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    console.print(f"DuckDB-WASM {engine.VERSION} ({size / 1e6:.1f} MB, checksums verified) in {folder}; "
                  "the next `wiki build` publishes the query page with it.", highlight=False)


@app.command("convert-llama2c")
def convert_llama2c_cmd(
    checkpoint: Path = typer.Argument(..., help="The llama2.c .bin checkpoint, or a folder holding it and its tokenizer."),
    out: Path = typer.Argument(..., help="Where to write the Hugging Face LlamaForCausalLM directory."),
    tokenizer: Path | None = typer.Option(None, help="The llama2.c tokenizer .bin (default: tok*.bin beside the checkpoint)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory."),
) -> None:
    """Convert a llama2.c checkpoint (e.g. stories260K) to a Hugging Face directory, verified against the original format."""
    from .models.llama2c import convert_llama2c, read_verification_report
    from .workspace import check_folder

    if not checkpoint.exists():
        fail(f"CHECKPOINT '{checkpoint}' does not exist. Expected a llama2.c .bin checkpoint, or a folder holding it and its tokenizer.")
    if tokenizer is not None and not tokenizer.is_file():
        fail(f"--tokenizer '{tokenizer}' is not a file. Expected the llama2.c tokenizer .bin (e.g. tok512.bin).")
    if out.exists() and not out.is_dir():
        fail(f"OUT '{out}' is a file. Expected a folder to write the Hugging Face model into.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        fail(f"OUT '{out}' exists and is not empty. Pass --overwrite to replace it, or name a new folder.")
    problem = check_folder(out, "OUT")
    if problem:
        fail(problem)
    if checkpoint.is_dir():
        bins = [p for p in checkpoint.glob("*.bin") if not p.name.startswith("tok")]
        if len(bins) != 1:
            fail(f"{checkpoint} should hold exactly one checkpoint .bin besides the tokenizer; found {len(bins)}.")
        folder, checkpoint = checkpoint, bins[0]
    else:
        folder = checkpoint.parent
    if tokenizer is None:
        toks = sorted(folder.glob("tok*.bin"))
        if not toks:
            fail(f"No tokenizer (tok*.bin) beside {checkpoint}; pass --tokenizer.")
        tokenizer = toks[0]
    try:
        written = convert_llama2c(checkpoint, tokenizer, out, overwrite=overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, AssertionError) as exc:
        fail(str(exc))
    except OSError as exc:
        storage_failure(exc, "convert-llama2c")
    console.print(f"Wrote {written}")
    console.print(f"Verified against the llama2.c format: {read_verification_report(written).summary()}", highlight=False)


@db_app.command("rebuild")
def db_rebuild(
    store: str | None = typer.Option(None, "--store", help="Read the Parquet files from here (folder or pyarrow URI) instead of data/scores."),
    wait: float = WaitOpt,
    root: Path | None = RootOpt,
) -> None:
    """Recreate data/wiki.duckdb from the Parquet files in data/scores/ (or --store) and the runs log.

    The new database is written beside the old one and renamed into place: killed or out of disk space, the
    old one stays as it was. Takes the folder's builder lock (not while a build runs)."""
    from .store import rebuild_db, score_files
    from .store.parquet import CorruptParquet
    from .workspace import open_workspace

    check_root(root, must_exist=True)
    if store:
        from .store.parquet import open_store

        try:
            open_store(store)
        except ValueError as exc:
            fail(f"--store: {exc}")
    ws = open_workspace(root, create=False)
    from .workspace import check_folder

    problem = check_folder(ws.data, "--root", writable=True)
    if problem:
        fail(f"{problem} (data/ holds the database)")
    try:
        files = score_files(ws.data, store)
    except (ValueError, OSError) as exc:
        fail(f"--store: cannot list the Parquet files: {exc}")
    if not files:
        fail(f"No Parquet files in {store or ws.data / 'scores'}: nothing to rebuild from. Run `wiki build` first.")
    with take_builder_lock(root, "wiki db rebuild", wait):
        try:
            path = rebuild_db(ws.data, store=store)
        except CorruptParquet as exc:
            fail(str(exc))
        except Exception as exc:
            storage_failure(exc, "wiki db rebuild")
    console.print(f"Rebuilt {path} from {len(files)} Parquet file(s).", highlight=False)


@app.command()
def bench(
    shapes: str = typer.Option("gpt2-small,gpt2-medium", "--shapes", help="Comma-separated model shapes: gpt2-small, gpt2-medium (tiny: --quick)."),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N."),
    prompts: int = typer.Option(1, "--prompts", parser=int_in(1, PROMPTS_MAX), help="Prompts per task, 1 to 1024 (kept small so the CPU run takes minutes; the ratio grows slowly as it shrinks)."),
    quick: bool = typer.Option(False, "--quick", help="Only a tiny 2-layer shape (for CI)."),
    seed: int = typer.Option(0, parser=int_in(0, SEED_MAX), help="Seed for the random weights and the prompts."),
    naive_heads: int = typer.Option(12, "--naive-heads", parser=int_in(0), help="Heads the naive loop runs per task and ablation kind, spread over the layers; its time is extrapolated to all heads (0: run all)."),
    threads: int = typer.Option(0, "--threads", parser=int_in(0, 4096), help="CPU threads for torch (0: torch's default, every core). The naive loop's small forward passes gain little from more cores, so the ratio grows with them; 1 is steadier on a shared machine."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
) -> None:
    """Time the full task-ablation suite against the naive per-head loop on random-init models of gpt2-small and gpt2-medium shape."""
    from .benchmarks.ablation import SHAPES, run_bench
    from .models.load import ModelLoadError

    wanted = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SHAPES]
    if not quick and (unknown or not wanted):
        fail(f"Unknown --shapes '{shapes}'. Use a comma-separated subset of: {', '.join(SHAPES)}.")
    check_device(device)
    if json_out is not None:
        check_output_file(json_out, "--json")

    try:
        result = run_bench(["tiny"] if quick else wanted, device, seed, prompts, console,
                           naive_heads=naive_heads, threads=threads)
    except (ValueError, ModelLoadError) as exc:
        fail(str(exc))
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, default=str))
    if not all(r["agree"] for r in result["results"]):
        fail("the engine and the naive loop disagree beyond the tolerance", 1)


@app.command("coverage")
def coverage_cmd(
    arch: str | None = typer.Option(None, "--arch", help="Only these architectures (comma-separated, e.g. OPTForCausalLM)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    engine_check: bool = typer.Option(True, "--engine-check/--no-engine-check", help="Also score one task with force_tasks to record the ablation engine's path."),
    write: bool = typer.Option(False, "--write", help="Store the result with the package (wiki_builder/models/coverage.json) and write docs/coverage.md, for the site's Models page and `wiki models`."),
    seed: int = typer.Option(0, parser=int_in(0, SEED_MAX), help="Seed for the stand-ins' random weights."),
    quick: bool = typer.Option(False, "--quick", help="A few families that take every per-architecture path (attention patterns, layer-0 MLP, OV weights); no tasks, engine check or example patterns: the CI check."),
) -> None:
    """Build a tiny stand-in of every architecture TransformerLens supports and score it with every family:
    which are covered, which families fail, which are refused, and the share of the registry covered."""
    from rich.table import Table

    from .benchmarks.coverage import architectures, run_coverage
    from .models.coverage_table import COVERAGE_FILE, markdown

    if fmt not in ("table", "json"):
        fail(f"Unknown --format '{fmt}'. Use table or json.")
    known = architectures()
    wanted = [a.strip() for a in arch.split(",") if a.strip()] if arch else None
    if arch is not None and not wanted:
        fail("--arch was given no architecture.")
    log = (lambda r: None) if fmt == "json" else (lambda r: console.print(f"  {r['architecture']}: {r['status']} ({r['seconds']}s)", highlight=False))
    if fmt != "json":
        console.print(f"Scoring tiny stand-ins of {len(wanted or known)} architecture(s)...")
    result = run_coverage(wanted, seed=seed, engine_check=engine_check, on_row=log, quick=quick)
    if write:
        from .benchmarks.coverage import merge
        from .models.coverage_table import load_coverage

        # --arch rewrites those architectures' rows and keeps the others
        full = merge(load_coverage().get("rows", []) if wanted else [], result["rows"])
        COVERAGE_FILE.write_text(json.dumps(full, indent=1, default=str) + "\n", encoding="utf-8")
        docs = Path(__file__).resolve().parents[1] / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "coverage.md").write_text("# Architecture coverage\n\nGenerated by `wiki coverage --write`: a tiny stand-in "
                                         "(2 layers, 4 heads, d_model 64, random weights) of each architecture, scored with every family.\n\n"
                                         + markdown(full), encoding="utf-8")
        readme = docs.parent / "README.md"
        start, end = "<!-- coverage:start -->", "<!-- coverage:end -->"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        if start in text and end in text:  # the README's copy of the table
            head, rest = text.split(start, 1)
            readme.write_text(head + start + "\n" + markdown(full) + rest[rest.index(end):], encoding="utf-8")
    if fmt == "json":
        typer.echo(json.dumps(result, indent=1, default=str))
    else:
        t = Table("architecture", "official", "registry", "status", "computed", "n/a", "failed", "engine", "s")
        for r in result["rows"]:
            failed = "; ".join(f"{f}: {e}" for f, e in r["failed"].items()) or (r["reason"] if r["status"] not in ("covered", "partial") else "")
            t.add_row(r["architecture"], str(r["official_models"]), str(r["registry_models"]), r["status"], str(len(r["computed"])),
                      str(len(r["not_applicable"])), escape(failed), escape(r["engine"]), f"{r['seconds']:.1f}")
        console.print(t)
        shown = full if write else result  # with --write --arch: the share of the whole stored table
        console.print(f"{100 * shown['registry_share_covered']:.1f}% of TransformerLens' {shown['registry_text']} registered text models "
                      f"use a covered architecture ({100 * shown['registry_share_covered_or_partial']:.1f}% covered or partial)"
                      + (f", over the {len(shown['rows'])} architectures of the stored table." if write else "."))
    if any(r["status"] in ("failed", "partial") for r in result["rows"]):
        raise typer.Exit(1)


@app.command("bench-batch")
def bench_batch(
    shapes: str = typer.Option("gpt2-small,gpt2-medium", help="Comma-separated: gpt2-small, gpt2-medium, tiny."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, mixed-bf16 on GPU), float32, bfloat16, float16, mixed-bf16."),
    seed: int = typer.Option(0, parser=int_in(0, SEED_MAX), help="Seed for the random weights and the prompts."),
    task_prompts: int = typer.Option(32, "--task-prompts", parser=int_in(2, PROMPTS_MAX), help="Prompts per task, as in wiki build (2 to 1024; fewer for a quick CPU run)."),
) -> None:
    """Seconds per model for the whole batch job, and the share of the device's peak throughput it uses."""
    from .benchmarks.ablation import SHAPES
    from .models.load import DTYPES, ModelLoadError, pick_device

    wanted = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SHAPES]
    if unknown or not wanted:
        fail(f"Unknown --shapes '{shapes}': {', '.join(unknown) or '(none given)'}. Use a comma-separated subset of: {', '.join(SHAPES)}.")
    if dtype not in DTYPES:
        fail(f"Unknown --dtype '{dtype}'. Use one of: {', '.join(DTYPES)}.")
    check_device(device)
    try:
        pick_device(device)
    except ModelLoadError as exc:
        fail(str(exc))
    from .benchmarks.batch import run_batch_bench

    run_batch_bench(wanted, device, dtype, seed, console, task_prompts=task_prompts)


@app.command("site-bench")
def site_bench_cmd(
    root: Path | None = typer.Option(None, "--root", help="Build the synthetic wiki here (default: a temporary folder, removed afterwards)."),
    n_models: int | None = typer.Option(None, "--models", parser=int_in(1), help="Use only the first N of the ~70 model shapes (at least 1)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary folder."),
    mkdocs: bool = typer.Option(True, "--mkdocs/--no-mkdocs", help="Also run mkdocs (the full site)."),
    parquet: bool = typer.Option(True, "--parquet/--no-parquet", help="Also write the Parquet files, as the builder does."),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse the synthetic database a previous run left in --root."),
) -> None:
    """Benchmark the site at scale: a synthetic score database of ~70 real model shapes (10,000+ heads),
    then a full build, a rebuild with nothing changed, and adding one model; prints times and page sizes."""
    from .benchmarks.site import run

    check_root(root)
    res = run(root, n_models, keep=keep, mkdocs=mkdocs, parquet=parquet, reuse=reuse,
              out=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
    if not res.get("pass"):
        raise typer.Exit(1)


@app.command("bench-corpus")
def bench_corpus_cmd(
    models: str | None = typer.Option(None, "--models", "-m", help="Comma-separated models (default: the embedded default)."),
    corpus_tokens: int = typer.Option(CORPUS_TOKENS, "--corpus-tokens", parser=int_in(1, CORPUS_TOKENS_MAX), help="Tokens per model, as in wiki build."),
    root: Path | None = typer.Option(None, "--root", help="Build here (default: a temporary folder, removed afterwards)."),
) -> None:
    """What every head's examples on text cost: builds the models (every family and the corpus pass, no site) and prints,
    per model, the build's seconds with and without the corpus pass, and the tokens and documents it read."""
    from .models.resolve import ModelNotFound, resolve_many

    check_root(root)
    try:
        if models:
            resolve_many(models)
    except ModelNotFound as exc:
        fail(str(exc))
    from .benchmarks.corpus import run

    res = run([m.strip() for m in models.split(",")] if models else None, corpus_tokens, root,
              out=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
    if res.get("failed"):
        raise typer.Exit(1)


@app.command("crash-bench")
def crash_bench_cmd(
    quick: bool = typer.Option(False, "--quick", help="The short form CI runs: two small models, the attention families, one kill per phase (~3 minutes on 2 CPU cores)."),
    n_models: int | None = typer.Option(None, "--models", parser=int_in(1, 64), help="Models the build scores (default 4; --quick: 2)."),
    kills: int | None = typer.Option(None, "--kills", parser=int_in(0, 100), help="Random kills while scoring (default 4; --quick: 1); the site and db-rebuild kills come on top."),
    seed: int = typer.Option(0, parser=int_in(0, SEED_MAX), help="Seed for the random weights and the moments of the kills."),
    root: Path | None = typer.Option(None, "--root", help="Work here (default: a temporary folder, removed afterwards)."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary folder."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report to this JSON file."),
) -> None:
    """Crash safety at real size: kill -9 a real build at random moments (scoring, site rendering, mkdocs, `wiki db rebuild`),
    rerun, and check the result equals an uninterrupted build (scores, Parquet files, every page of the site)."""
    check_root(root)
    if json_out is not None:
        check_output_file(json_out, "--json")
    from .benchmarks.crash import run

    res = run(root, quick=quick, models=n_models, kills=kills, seed=seed, keep=keep,
              out=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
    if json_out:
        json_out.write_text(json.dumps(res, indent=1, default=str))
    if not res.get("pass"):
        raise typer.Exit(1)


@app.command("bench-memory")
def bench_memory_cmd(
    models: str = typer.Option("gpt2-small,gpt2-medium,pythia-70m,pythia-160m", "--models", help="Stand-ins to build (comma-separated): gpt2-small, gpt2-medium, pythia-70m, pythia-160m."),
    force_tasks: bool = typer.Option(False, "--force-tasks", help="Also run the task ablations on the random weights (which do no task), to measure the engine at real size."),
    task_prompts: int = typer.Option(32, "--task-prompts", parser=int_in(2, PROMPTS_MAX), help="Prompts per task, as in wiki build."),
    work: Path | None = typer.Option(None, "--work", help="Where the stand-ins are built and kept between runs (default: ~/.cache/head-wiki/standins)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Peak memory and seconds of `HF_HUB_OFFLINE=1 wiki build` on real-size stand-ins (random weights, real
    configs and tokenizers), per model and per family, beside the estimate and the fp32 weights. Exit 1 when a
    peak exceeds its estimate or gpt2-medium's peak exceeds 3x its weights."""
    from .benchmarks.memory import MODELS, as_json, run

    if fmt not in ("table", "json"):
        fail(f"Unknown --format '{fmt}'. Use table or json.")
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        fail(f"No stand-in for {', '.join(unknown) or '(none given)'}. Choose from: {', '.join(MODELS)}.")
    where = work or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "head-wiki" / "standins"
    check_root(where)
    report = run(names, where, force_tasks=force_tasks, task_prompts=task_prompts)
    if fmt == "json":
        print(as_json(report))
    else:
        from rich.table import Table

        gib = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
        t = Table("model", "family", "status", "seconds", "peak GiB", "estimate GiB", "peak / estimate", "peak / fp32 weights")
        for m in report.models:
            t.add_row(m.model, "[bold]whole run[/]", m.status, f"{m.seconds:.1f}", gib(m.peak), gib(m.estimate),
                      f"{m.peak / m.estimate:.2f}" if m.estimate else "", f"{m.peak / m.weight_bytes:.2f}" if m.n_params else "")
            for f in m.families:
                t.add_row("", f["family"], f["status"], f"{f['seconds']:.1f}", gib(f["peak"]), "",
                          f"{f['peak'] / m.estimate:.2f}" if m.estimate else "", f"{f['peak'] / m.weight_bytes:.2f}" if m.n_params else "")
        console.print(f"$ {report.command}   ({report.wall_seconds:.0f} s, exit {report.exit_code})", highlight=False, markup=False)
        Console(width=max(console.width, 120)).print(t)
    problems = report.problems()
    for p in problems:
        console.print(f"[red]over target[/] {escape(p)}")
    if problems or report.exit_code not in (0,):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
