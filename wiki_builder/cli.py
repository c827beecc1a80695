"""The ``wiki`` command. Heavy imports (torch, transformer_lens) happen inside commands, so ``wiki --help`` is instant."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

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


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def build(
    models: Optional[str] = typer.Option(None, "--models", "-m", help="Comma-separated names: embedded models, TransformerLens names or aliases (gpt2-small), or local Hugging Face-format directories. Default: the embedded zoo plus stories260K."),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, mixed-bf16 on GPU), float32, float16, bfloat16, or mixed-bf16 (OV scores from float32 weights, forward passes in bfloat16)."),
    seed: int = typer.Option(0, help="Seed for the probe sequences."),
    metrics: Optional[str] = typer.Option(None, help="Comma-separated metric ids (default: all)."),
    site: bool = typer.Option(True, "--site/--no-site", help="Render and build the static site after scoring."),
    force: bool = typer.Option(False, "--force", help="Recompute scores that are already stored (default: skip them and resume)."),
    max_params: Optional[float] = typer.Option(None, "--max-params", help="With --models all: only models with at most this many parameters (e.g. 2e8)."),
    family: Optional[str] = typer.Option(None, "--family", help="With --models all: only these families (comma-separated, e.g. gpt2,gpt-neox)."),
    match: Optional[str] = typer.Option(None, "--match", help="With --models all: only names matching this glob or substring (e.g. 'pythia-*')."),
    executor: str = typer.Option("local", "--executor", help="local (in this process) or ray (one task per model on a Ray cluster)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: start a local one."),
    store: Optional[str] = typer.Option(None, "--store", help="Where the Parquet files go: a folder or a pyarrow URI (file:///..., s3://bucket/scores). Default: data/scores."),
    ablation: str = typer.Option("mean,resample", "--ablation", help="Task ablations: mean and resample always; add zero (e.g. mean,resample,zero)."),
    method: str = typer.Option("exact", "--method", help="Task ablations: exact (batched, same numbers as one pass per head) or attribution (gradient estimate, fast; its correlation with exact is stored)."),
    task_prompts: int = typer.Option(32, "--task-prompts", help="Prompts per task (clean and corrupted)."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Score models, store the scores in data/, and build the site in site/.

    Resumable: what is already stored for (model, metric, metric version, seed, dtype) is skipped.
    A model that fails is recorded in the runs table and the others go on; the exit code is 1 if any failed.
    """
    from .models.load import DTYPES, ModelLoadError, check_dtype
    from .models.resolve import ModelNotFound, default_models, resolve_many
    from .workspace import open_workspace

    if dtype not in DTYPES:
        fail(f"Unknown --dtype '{dtype}'. Use one of: {', '.join(DTYPES)}.")
    if not (device in ("auto", "cpu", "mps") or device.startswith("cuda")):
        fail(f"Unknown --device '{device}'. Use auto, cpu, cuda, cuda:N or mps.")
    from .scores.base import BuildOptions

    kinds = {k.strip() for k in ablation.split(",") if k.strip()}
    if not kinds or kinds - {"mean", "resample", "zero"}:
        fail(f"Unknown --ablation '{ablation}'. Use a comma-separated subset of mean, resample, zero.")
    if method not in ("exact", "attribution"):
        fail(f"Unknown --method '{method}'. Use exact or attribution.")
    if task_prompts < 2:
        fail("--task-prompts must be at least 2.")
    options = BuildOptions(ablation=tuple(kinds), method=method, task_prompts=task_prompts)
    if executor not in ("local", "ray"):
        fail(f"Unknown --executor '{executor}'. Use local or ray.")
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            fail("--executor ray needs Ray, which is not installed: pip install 'head-wiki[ray]'.")
    if store:
        from .store.parquet import open_store

        try:
            open_store(store)
        except ValueError as exc:
            fail(str(exc))
    filters = max_params is not None or family or match
    try:
        check_dtype(dtype)
        if models is not None and models.strip().lower() == "all":
            from .models.registry import registry_entries, select
            from .models.resolve import ModelSpec

            chosen = select(registry_entries(), max_params=max_params, family=family, pattern=match)
            if not chosen:
                fail("No official model matches those filters. See `wiki models` for names, families and sizes.")
            specs = [ModelSpec(name=e.name, source="hub", location=e.official) for e in chosen]
        elif filters:
            fail("--max-params, --family and --match filter TransformerLens' official list: use them with --models all.")
        else:
            specs = resolve_many(models if models is not None else default_models())
    except (ModelNotFound, ModelLoadError) as exc:
        fail(str(exc))
    from .families import registry

    metric_ids = None
    if metrics:
        metric_ids = [m.strip() for m in metrics.split(",") if m.strip()]
        unknown = [m for m in metric_ids if m not in registry()]
        if unknown or not metric_ids:
            fail(f"Unknown metric(s): {', '.join(unknown) or '(none given)'}. Known: {', '.join(registry())}.")
    ws = open_workspace(root)
    from .build import build_models

    console.print(f"Building [bold]{len(specs)}[/] model(s) into {ws.root}: {', '.join(s.name for s in specs)}")
    from .store import CorruptParquet

    try:
        report = build_models(specs, ws, device=device, dtype=dtype, seed=seed, metric_ids=metric_ids, console=console, force=force,
                              store=store, executor=executor, ray_address=ray_address, options=options)
    except CorruptParquet as exc:
        fail(str(exc))
    console.print("Summary:")
    for o in report.outcomes:
        mark = "[red]FAILED[/]" if not o.ok else "[yellow]skipped[/]" if o.skipped else "[green]ok[/]"
        detail = ": " + o.error if not o.ok else " (already stored)" if o.skipped else f" ({o.seconds:.1f}s)"
        console.print(f"  {mark} {o.model}{detail}", highlight=False)
    if site and any(o.ok for o in report.outcomes) or site and (ws.data / "wiki.duckdb").exists():
        from .site.render import SiteBuildError, build_site, render_markdown

        stats = render_markdown(ws)
        console.print(f"Rendered site_src/: {stats.written} page(s) written, {stats.unchanged} unchanged, {stats.removed} removed")
        try:
            build_site(ws)
        except SiteBuildError as exc:
            fail(str(exc), 1)
        console.print(f"Site built in {ws.site}. Open it with `wiki serve`{'' if root is None else f' --root {root}'}.")
    if report.failed:
        fail(f"{len(report.failed)} of {len(report.outcomes)} model(s) failed: {', '.join(o.model for o in report.failed)}", 1)


@app.command()
def query(
    sql: str = typer.Argument(..., help="A read-only SQL query over models, scores, head_scores, provenance, metrics."),
    format: OutFormat = typer.Option(OutFormat.table, "--format", "-f", help="table, csv or json."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Run SQL over the scores (the database is opened read-only)."""
    import duckdb

    from .store.db import fetch
    from .workspace import open_workspace

    ws = open_workspace(root, create=False)
    try:
        cols, rows = fetch(ws.data, sql)
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
def serve(port: int = typer.Option(8000, help="Port on localhost."), root: Optional[Path] = RootOpt) -> None:
    """Serve the built site on http://127.0.0.1:PORT."""
    import functools
    import http.server

    from .workspace import open_workspace

    ws = open_workspace(root, create=False)
    if not (ws.site / "index.html").is_file():
        fail(f"No built site in {ws.site}. Run `wiki build` first.")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ws.site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        console.print(f"Serving {ws.site} on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


@app.command("models")
def list_models(
    all_names: bool = typer.Option(False, "--all", help="Also list every alias of TransformerLens' official models."),
    max_params: Optional[float] = typer.Option(None, "--max-params", help="Only models with at most this many parameters."),
    family: Optional[str] = typer.Option(None, "--family", help="Only these families (comma-separated)."),
    match: Optional[str] = typer.Option(None, "--match", help="Only names matching this glob or substring."),
    root: Optional[Path] = RootOpt,
) -> None:
    """What can be built, and what is: embedded models, stories260K, and TransformerLens' official models
    (small to large) with their family, size, estimated memory and status (built, stale, failed, not built)."""
    from rich.table import Table

    from .models.registry import registry_entries, select
    from .models.render_sizes import gib, human_params
    from .models.resolve import STORIES, embedded_models, official_names, stories_dir
    from .store.status import model_status
    from .workspace import open_workspace

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
    entries = select(registry_entries(), max_params=max_params, family=family, pattern=match)
    for e in entries:
        extra = f" ({', '.join(aliases.get(e.official, [])[1:])})" if all_names and len(aliases.get(e.official, [])) > 1 else ""
        approx = "" if e.size_source == "cache" else "~"
        t.add_row(e.name + extra, e.official, e.family, approx + human_params(e.n_params), approx + gib(e.memory_bytes()),
                  status.get(e.name, "not built"))
    console.print(t)
    console.print(f"{len(embedded_models())} embedded, {len(entries)} official TransformerLens models shown "
                  "(~ = size estimated from the name or a table; exact once the config is in the Hugging Face cache). "
                  "Any local Hugging Face-format directory works too: wiki build --models ./path/to/dir")


@app.command("convert-llama2c")
def convert_llama2c_cmd(
    checkpoint: Path = typer.Argument(..., help="The llama2.c .bin checkpoint, or a folder holding it and its tokenizer."),
    out: Path = typer.Argument(..., help="Where to write the Hugging Face LlamaForCausalLM directory."),
    tokenizer: Optional[Path] = typer.Option(None, help="The llama2.c tokenizer .bin (default: tok*.bin beside the checkpoint)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory."),
) -> None:
    """Convert a llama2.c checkpoint (e.g. stories260K) to a Hugging Face directory, verified against the original format."""
    from .models.llama2c import convert_llama2c, read_verification_report

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
    console.print(f"Wrote {written}")
    console.print(f"Verified against the llama2.c format: {read_verification_report(written).summary()}", highlight=False)


@db_app.command("rebuild")
def db_rebuild(
    store: Optional[str] = typer.Option(None, "--store", help="Read the Parquet files from here (folder or pyarrow URI) instead of data/scores."),
    root: Optional[Path] = RootOpt,
) -> None:
    """Recreate data/wiki.duckdb from the Parquet files in data/scores/ (or --store) and the runs log."""
    from .store import rebuild_db, score_files
    from .store.parquet import CorruptParquet
    from .workspace import open_workspace

    ws = open_workspace(root, create=False)
    files = score_files(ws.data, store)
    if not files:
        fail(f"No Parquet files in {store or ws.data / 'scores'}: nothing to rebuild from. Run `wiki build` first.")
    try:
        path = rebuild_db(ws.data, store=store)
    except CorruptParquet as exc:
        fail(str(exc))
    console.print(f"Rebuilt {path} from {len(files)} Parquet file(s).")


@app.command()
def bench(
    shapes: str = typer.Option("gpt2-small,gpt2-medium", "--shapes", help="Comma-separated model shapes: gpt2-small, gpt2-medium (tiny: --quick)."),
    device: str = typer.Option("auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N."),
    prompts: int = typer.Option(1, "--prompts", help="Prompts per task (kept small so the CPU run takes minutes; the ratio grows slowly as it shrinks)."),
    quick: bool = typer.Option(False, "--quick", help="Only a tiny 2-layer shape (for CI)."),
    seed: int = typer.Option(0, help="Seed for the random weights and the prompts."),
    naive_heads: int = typer.Option(12, "--naive-heads", help="Heads the naive loop runs per task and ablation kind, spread over the layers; its time is extrapolated to all heads (0: run all)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: torch's default, every core). The naive loop's small forward passes gain little from more cores, so the ratio grows with them; 1 is steadier on a shared machine."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
) -> None:
    """Time the full task-ablation suite against the naive per-head loop on random-init models of gpt2-small and gpt2-medium shape."""
    from .benchmarks.ablation import run_bench
    from .models.load import ModelLoadError

    try:
        result = run_bench(["tiny"] if quick else [s.strip() for s in shapes.split(",") if s.strip()], device, seed, prompts, console,
                           naive_heads=naive_heads, threads=threads)
    except (ValueError, ModelLoadError) as exc:
        fail(str(exc))
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, default=str))
    if not all(r["agree"] for r in result["results"]):
        fail("the engine and the naive loop disagree beyond the tolerance", 1)


@app.command("bench-batch")
def bench_batch(
    shapes: str = typer.Option("gpt2-small,gpt2-medium", help="Comma-separated: gpt2-small, gpt2-medium, tiny."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, mixed-bf16 on GPU), float32, bfloat16, float16, mixed-bf16."),
    seed: int = typer.Option(0),
    task_prompts: int = typer.Option(32, "--task-prompts", help="Prompts per task, as in wiki build (fewer for a quick CPU run)."),
) -> None:
    """Seconds per model for the whole batch job, and the share of the device's peak throughput it uses."""
    from .benchmarks.ablation import SHAPES
    from .models.load import DTYPES, ModelLoadError, pick_device

    wanted = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SHAPES]
    if unknown or not wanted:
        fail(f"Unknown shape(s): {', '.join(unknown) or '(none)'}. Use: {', '.join(SHAPES)}.")
    if dtype not in DTYPES:
        fail(f"Unknown --dtype '{dtype}'. Use one of: {', '.join(DTYPES)}.")
    try:
        pick_device(device)
    except ModelLoadError as exc:
        fail(str(exc))
    from .benchmarks.batch import run_batch_bench

    run_batch_bench(wanted, device, dtype, seed, console, task_prompts=task_prompts)


@app.command("site-bench")
def site_bench_cmd(
    root: Optional[Path] = typer.Option(None, "--root", help="Build the synthetic wiki here (default: a temporary folder, removed afterwards)."),
    n_models: Optional[int] = typer.Option(None, "--models", help="Use only the first N of the ~70 model shapes."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary folder."),
    mkdocs: bool = typer.Option(True, "--mkdocs/--no-mkdocs", help="Also run mkdocs (the full site)."),
    parquet: bool = typer.Option(True, "--parquet/--no-parquet", help="Also write the Parquet files, as the builder does."),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse the synthetic database a previous run left in --root."),
) -> None:
    """Benchmark the site at scale: a synthetic score database of ~70 real model shapes (10,000+ heads),
    then a full build, a rebuild with nothing changed, and adding one model; prints times and page sizes."""
    from .benchmarks.site import run

    res = run(root, n_models, keep=keep, mkdocs=mkdocs, parquet=parquet, reuse=reuse,
              out=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))
    if not res.get("pass"):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
