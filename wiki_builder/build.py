"""The batch job: models x metrics -> Parquet files -> DuckDB -> site."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import executors
from .executors import Job, Outcome
from .faults import crash_point, storage_error
from .models.resolve import ModelSpec
from .scores.base import BuildOptions, RunContext
from .scores.corpus import EXAMPLES_ID, EXAMPLES_VERSION, CorpusOptions
from .scores.probe import ProbeConfig
from .store import (
    ModelRecord,
    append_run,
    insert_run,
    read_record,
    remove_stale_temporaries,
    score_files,
    sync_model,
    synced_builds,
    write_record,
)
from .store.parquet import table_family, table_of
from .workspace import Workspace


@dataclass
class ModelOutcome:
    model: str
    ok: bool
    seconds: float
    error: str = ""
    path: Path | None = None
    skipped: bool = False
    partial: bool = False  # some families failed, the others were stored


@dataclass
class BuildReport:
    outcomes: list[ModelOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if not o.ok]



def stack_fields(bridge: Any) -> dict[str, Any]:
    """The models row's ``stacks`` text, and for encoder-decoder models the layer count the scores use."""
    from .scores.stacks import model_kind, n_rows, stacks_text

    out: dict[str, Any] = {"stacks": stacks_text(bridge)}
    if model_kind(bridge) == "encoder-decoder":
        out["n_layers"] = n_rows(bridge)
    return out

def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str:
    """The builder's own git revision, when it runs from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def model_description(spec: ModelSpec, location: str) -> str:
    card = Path(location) / "MODEL_CARD.md"
    if spec.source in ("embedded", "local") and card.is_file():
        lines = [l.strip() for l in card.read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
        return lines[0] if lines else ""
    return ""


def public_location(spec: ModelSpec) -> str:
    """Where a model comes from, without a path of the machine that built it (pages are published).

    Hub models: the hub id. Embedded models: their place in the package. Local directories and
    llama2.c checkpoints: the directory's name only.
    """
    if spec.source == "hub":
        return spec.location
    name = Path(spec.location).name
    if spec.source == "embedded":
        return f"wiki_builder/models/embedded/{name}"
    return name


def score_model(spec: ModelSpec, ws: Workspace, device: str, dtype: str, todo: list[str], ctx: RunContext,
                on_metric: Callable[[str], None] | None = None) -> ModelRecord:
    """Load one model and compute the given score families; returns the record (nothing is written)."""
    import dataclasses
    import gc
    import json

    import torch

    from .families import registry
    from .models.load import load_model, pick_device
    from .models.memory import read_peak, reset_peak
    from .models.registry import model_family
    from .scores.runner import compute_scores

    torch.manual_seed(ctx.seed)
    gc.collect()  # what an earlier model left behind must not count towards this one's peak
    reset_peak(pick_device(device))
    loaded = load_model(spec, device=device, dtype=dtype, work_dir=ws.data)
    if loaded.dtype == "mixed-bf16" and ctx.forward_dtype is None:
        ctx = dataclasses.replace(ctx, forward_dtype="bfloat16")
    result = compute_scores(loaded.bridge, _in_order([t for t in todo if t != EXAMPLES_ID]),
                            ProbeConfig(seed=ctx.seed), on_metric=_mid_scoring(spec.name, on_metric), ctx=ctx)
    if result.failed and not result.outputs:
        # nothing was computed: the model failed as a whole (with the first family's own error)
        raise next(iter(result.errors.values()))
    families = registry()
    rows = []
    for oid, out in result.outputs.items():
        if not out.applicable:
            continue
        version = families[result.family_of[oid]].version
        for layer in out.setup.get("attention_layers", range(out.values.shape[0])):  # hybrids: attention layers only
            for head in range(out.values.shape[1]):
                detail = out.details.get((layer, head))
                rows.append({"model": spec.name, "layer": layer, "head": head, "metric": oid, "value": float(out.values[layer, head]),
                             "metric_version": version, "detail": json.dumps(detail, default=str) if detail else None})
    model_row = {"model": spec.name, **loaded.info, **stack_fields(loaded.bridge), "family": model_family(loaded.info.get("architecture", "")),
                 "source": spec.source, "location": public_location(spec), "description": model_description(spec, spec.location)}
    # the model's peak: the load's, each family's (the runner restarts the mark per family) and what came after
    peak = max(read_peak(loaded.device), result.peak_before, *result.peaks.values())
    model_row["peak_memory_bytes"] = int(peak)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    common = {"model": spec.name, "transformer_lens_version": _version("transformer-lens"), "torch_version": _version("torch"),
              "builder_version": _version("head-wiki"), "git_revision": git_revision(), "device": loaded.device,
              "dtype": dtype, "seed": ctx.seed, "built_at": now}
    provenance = [
        {**common, "metric": oid, "family": result.family_of[oid], "metric_version": families[result.family_of[oid]].version,
         "seconds": result.seconds.get(result.family_of[oid], 0.0), "status": "ok" if out.applicable else "not_applicable",
         "reason": out.reason, "setup": out.setup, "peak_memory_bytes": int(result.peaks.get(result.family_of[oid], peak))}
        for oid, out in result.outputs.items()
    ] + [
        {**common, "metric": oid, "family": fid, "metric_version": families[fid].version, "seconds": 0.0,
         "status": "failed", "reason": error, "setup": {}, "peak_memory_bytes": int(result.peaks.get(fid, peak))}
        for fid, error in result.failed.items() for oid in families[fid].output_ids
    ]
    head_examples: list[dict[str, Any]] = []
    if EXAMPLES_ID in todo:
        head_examples, row = _corpus_pass(loaded.bridge, spec, ctx)
        provenance.append({**common, **row, "peak_memory_bytes": int(read_peak(loaded.device))})
        _mid_scoring(spec.name, on_metric)(EXAMPLES_ID)
    tables = {name: table_of(name, spec.name, result.family_of[oid], cols)  # pairs of heads (composition)
              for oid, out in result.outputs.items() if out.applicable for name, cols in out.tables.items()}
    if head_examples:  # the corpus pass: a table of its own, like composition (store.parquet.TABLE_SCHEMAS)
        tables["head_examples"] = examples_table(spec.name, head_examples)
    examples = result.examples
    del loaded, result
    gc.collect()
    return ModelRecord(model=model_row, rows=rows, provenance=provenance, examples=examples, tables=tables)


def examples_table(model: str, rows: list[dict[str, Any]]) -> Any:
    """The corpus pass's rows as the ``head_examples`` table, tagged with its id (``merge`` keeps or replaces it as a family)."""
    import pyarrow as pa

    from .store.parquet import TABLE_FAMILY, TABLE_SCHEMAS

    table = pa.Table.from_pylist([{**r, "model": model} for r in rows], schema=TABLE_SCHEMAS["head_examples"])
    return table.replace_schema_metadata({TABLE_FAMILY: EXAMPLES_ID.encode()})


def _corpus_pass(bridge: Any, spec: ModelSpec, ctx: RunContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every head's examples on text, and the provenance row that says which corpus they come from; a pass
    that raises is recorded as failed (the scores stand without it)."""
    from .scores.corpus import CorpusOptions, examples_for_model

    options = ctx.corpus or CorpusOptions()
    row = {"metric": EXAMPLES_ID, "family": EXAMPLES_ID, "metric_version": EXAMPLES_VERSION}
    try:
        res = examples_for_model(bridge, spec.source, options, ctx.seed)
    except Exception as exc:  # the examples illustrate the scores: without them the scores still stand
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return [], {**row, "status": "failed", "reason": f"{type(exc).__name__}: {text}"[:2000], "seconds": 0.0,
                    "setup": {"options": options.key()}}
    return res.rows, {**row, "status": res.status, "reason": res.reason, "seconds": res.seconds, "setup": res.setup}


def _mid_scoring(model: str, on_metric: Callable[[str], None] | None) -> Callable[[str], None]:
    """Report each finished family; the crash point ``mid_scoring`` sits between families (also on a Ray worker)."""

    def done(fid: str) -> None:
        crash_point("mid_scoring", model)
        if on_metric is not None:
            on_metric(fid)

    return done


def _in_order(ids: list[str]) -> list[Any]:
    """The families with these ids, in the order given (the order they run and their examples are listed in)."""
    from .families import get

    return [get(i) for i in ids]


def families_done(record: ModelRecord | None, seed: int, dtype: str, options: BuildOptions | None = None) -> set[str]:
    """Families whose every output is stored at the current version, for this seed, dtype and
    the options that change the family's numbers."""
    from .families import registry

    if record is None:
        return set()
    stored = {(p.get("metric"), p.get("metric_version"), p.get("seed"), p.get("dtype")): p for p in record.provenance
              if p.get("status") != "failed"}  # a family that failed is retried
    done = set()
    for fid, fam in registry().items():
        rows = [stored.get((oid, fam.version, seed, dtype)) for oid in fam.output_ids]
        if any(r is None for r in rows):
            continue
        want = fam.options_used(options or BuildOptions())
        if want is not None:
            if any((r.get("setup") or {}).get("options") != want for r in rows):
                continue
        done.add(fid)
    return done


def merge(old: ModelRecord | None, new: ModelRecord, recomputed: set[str]) -> ModelRecord:
    """Keep the old rows of families that were not recomputed; take the rest from the new record."""
    if old is None:
        return new
    fam_of = {p["metric"]: p.get("family", p["metric"]) for p in old.provenance}
    kept_rows = [r for r in old.rows if fam_of.get(r["metric"], r["metric"]) not in recomputed]
    kept_prov = [p for p in old.provenance if p.get("family", p["metric"]) not in recomputed]
    return ModelRecord(model=new.model, rows=kept_rows + new.rows, provenance=kept_prov + new.provenance,
                       examples=new.examples or old.examples,
                       tables={**{n: t for n, t in old.tables.items() if table_family(t) not in recomputed}, **new.tables})


def examples_done(record: ModelRecord | None, seed: int, dtype: str, corpus: CorpusOptions | None) -> bool:
    """The corpus pass is stored at its current version for this seed, dtype and corpus options (a corpus that
    could not be read, or a pass that failed, is tried again)."""
    want = (corpus or CorpusOptions()).key()
    return record is not None and any(
        p.get("metric") == EXAMPLES_ID and p.get("metric_version") == EXAMPLES_VERSION and p.get("seed") == seed
        and p.get("dtype") == dtype and p.get("status") == "ok" and (p.get("setup") or {}).get("options") == want
        for p in record.provenance)


def existing_record(ws: Workspace, spec: ModelSpec, store: str | None = None) -> ModelRecord | None:
    for path in score_files(ws.data, store):
        if str(path).rsplit("/", 1)[-1] == f"{spec.slug}.parquet":
            return read_record(path)
    return None


def check_score_files(ws: Workspace, store: str | None = None) -> None:
    """Every Parquet file in the store must be readable; CorruptParquet names the one that is not."""
    for path in score_files(ws.data, store):
        read_record(path)


def resync_database(ws: Workspace, store: str | None = None) -> int:
    """Bring the database in line with the Parquet files (after a crash between the two writes)."""
    db = synced_builds(ws.data)
    fixed = 0
    for path in score_files(ws.data, store):
        rec = read_record(path)
        built = {str(p.get("built_at")) for p in rec.provenance}
        if db.get(rec.model["model"]) != built:
            sync_model(ws.data, rec)
            fixed += 1
    return fixed


def failed_families(record: ModelRecord) -> dict[str, str]:
    """Family id -> its error, for the families of this record that failed."""
    return {p.get("family", p["metric"]): p.get("reason") or "" for p in record.provenance if p.get("status") == "failed"}


def score_and_store(job: Job, on_metric: Callable[[str], None] | None, *, root: Path, store: str | None, device: str,
                    dtype: str, ctx: RunContext) -> dict[str, Any]:
    """Compute the missing families of one model and write its Parquet file (merged with what was stored).

    The unit of work of every executor (bound with functools.partial): the local one calls it in-process,
    the Ray one on a worker.
    """
    ws = Workspace(Path(root))
    spec = job.spec
    new = score_model(spec, ws, device, dtype, list(job.todo), ctx, on_metric=on_metric)
    record = merge(existing_record(ws, spec, store), new, set(job.todo))
    crash_point("before_write", spec.name)
    path = write_record(ws.data, spec.slug, record, store)
    return {"path": str(path), "device": new.provenance[0]["device"] if new.provenance else device,
            "failed_families": failed_families(new),
            "peak_memory_bytes": new.model.get("peak_memory_bytes"), "estimated_memory_bytes": new.model.get("estimated_memory_bytes")}


def build_models(specs: list[ModelSpec], ws: Workspace, device: str = "auto", dtype: str = "float32", seed: int = 0,
                 metric_ids: list[str] | None = None, console: Any = None, options: BuildOptions | None = None,
                 force: bool = False, store: str | None = None, executor: str = "local",
                 ray_address: str | None = None, force_tasks: bool = False, corpus: CorpusOptions | None = None) -> BuildReport:
    """Score each model, writing its Parquet file and updating the database as results arrive.

    Resumable: a family already stored for (model, family version, seed, dtype) is skipped
    unless ``force``. One model failing is recorded in the runs log and the build goes on.
    ``executor="ray"`` fans the models out to a Ray cluster, one task per model. ``force_tasks`` (benchmarks
    only) scores the tasks even on a model that does not do them, to measure the engine at a real size. A build
    of every family (``metric_ids`` None, or naming ``head_examples``) also runs the corpus pass (``corpus``: its
    options) where it is missing; ``corpus.tokens == 0`` leaves it out.
    """
    import functools
    import uuid

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .families import registry
    from .models.load import resolve_dtype

    options = options or BuildOptions()
    dtype = resolve_dtype(dtype, device)  # "auto" becomes float32 on CPU, mixed-bf16 on GPU; stored as such
    remove_stale_temporaries(ws.data, store)
    check_score_files(ws, store)
    resync_database(ws, store)
    wanted = [m for m in (metric_ids or registry()) if m != EXAMPLES_ID]
    examples = (metric_ids is None or EXAMPLES_ID in metric_ids) and (corpus is None or corpus.tokens > 0)
    run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    revision = git_revision()
    report = BuildReport()
    jobs = []
    for spec in specs:
        old = existing_record(ws, spec, store)
        todo = tuple(f for f in wanted if force or f not in families_done(old, seed, dtype, options))
        if examples and (force or not examples_done(old, seed, dtype, corpus)):
            todo += (EXAMPLES_ID,)
        jobs.append(Job(spec, todo))
    work = functools.partial(score_and_store, root=ws.root, store=store, device=device, dtype=dtype,
                             ctx=RunContext(seed=seed, options=options, force_tasks=force_tasks, corpus=corpus))
    runs: dict[str, dict[str, Any]] = {}

    def finish(job: Job, outcome: Outcome) -> None:
        """Record one model's outcome: sync its file into the database, log the run."""
        spec, run = job.spec, runs.pop(job.spec.name)
        error, etype = (outcome.error, outcome.error_type) if not outcome.ok else ("", "")
        if outcome.ok and job.todo:
            try:
                crash_point("before_db", spec.name)
                sync_model(ws.data, read_record(outcome.result["path"]))
            except Exception as exc:  # a file we cannot read back counts as a failure of that model
                if storage_error(exc):
                    raise  # a full disk or a read-only folder: every model would fail the same way, stop the build
                error, etype = str(exc), type(exc).__name__
        failed = (outcome.result or {}).get("failed_families") or {} if outcome.ok else {}
        if error or etype:
            run.update(status="failed", error=error, error_type=etype)
            report.outcomes.append(ModelOutcome(spec.name, False, outcome.seconds, error=f"{etype}: {error}"))
        elif failed:
            # some families failed, the others were stored: a partial run, and the build still fails
            done = [f for f in job.todo if f not in failed]
            text = "; ".join(f"{fid}: {msg}" for fid, msg in failed.items())
            run.update(status="partial", families=",".join(done), error=f"failed families: {text}",
                       error_type="FamilyFailed", device=outcome.result.get("device", device),
                       peak_memory_bytes=outcome.result.get("peak_memory_bytes"),
                       estimated_memory_bytes=outcome.result.get("estimated_memory_bytes"))
            report.outcomes.append(ModelOutcome(spec.name, False, outcome.seconds, error=f"failed families: {text}",
                                                partial=True))
        elif not job.todo:
            run.update(status="skipped", families="all stored already (use --force to recompute)")
            report.outcomes.append(ModelOutcome(spec.name, True, 0.0, skipped=True))
        else:
            path = outcome.result["path"]
            run.update(status="ok", families=",".join(job.todo), device=outcome.result.get("device", device),
                       peak_memory_bytes=outcome.result.get("peak_memory_bytes"),
                       estimated_memory_bytes=outcome.result.get("estimated_memory_bytes"))
            report.outcomes.append(ModelOutcome(spec.name, True, outcome.seconds, path=Path(path) if "://" not in path else None))
        run["seconds"] = round(outcome.seconds, 3)
        append_run(ws.data, run)
        insert_run(ws.data, run)
        crash_point("after_model", spec.name)
        progress.update(bar, completed=len(report.outcomes) * len(wanted))

    def start(job: Job) -> None:
        runs[job.spec.name] = {"run_id": run_id, "model": job.spec.name, "device": device, "dtype": dtype, "seed": seed,
                               "git_revision": revision,
                               "started_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")}
        progress.update(bar, description=f"scoring [bold]{job.spec.name}[/]")
        progress.advance(bar, len(wanted) - len(job.todo))

    if executor == "ray":
        from .executors.ray import resources_for

        runner = executors.get("ray", address=ray_address, console=console, shared_store=store is not None,
                               resources=lambda job, cluster: resources_for(job.spec, ws.data, device, dtype, cluster))
    else:
        runner = executors.get(executor)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task("scoring", total=len(specs) * len(wanted))
        runner.run(jobs, work, on_start=start, on_family=lambda fid: progress.advance(bar), on_done=finish)
    return report
