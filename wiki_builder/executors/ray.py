"""Fan the jobs out to a Ray cluster: one task per model.

Each task loads its model on a worker, computes the missing score families and writes its
own Parquet file to the shared store (a local path every worker can see, or any pyarrow
filesystem URI such as s3://bucket/scores). The driver waits for tasks as they finish and
reports each outcome, so the database grows while the cluster works and a failed task is
recorded like a local failure.

Resources: a task asks for the memory its model needs (estimated from its config, see
``models.memory``) and, when the cluster has GPUs and the device is not ``cpu``, for the
fraction of one GPU that memory represents, so small models share a GPU and large ones get
one of their own. Ray is an optional extra: ``pip install 'head-wiki[ray]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..models.resolve import ModelSpec
from .base import Job, Outcome, Work


class RayUnavailable(RuntimeError):
    pass


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable("--executor ray needs Ray: pip install 'head-wiki[ray]' (or pip install 'ray[default]').") from exc
    return ray


def _task(work: Work, job: Job) -> dict[str, Any]:
    """Runs on a worker. Errors come back as values so the driver records them with their message."""
    start = time.perf_counter()
    try:
        out = work(job, None)
        return {"ok": True, **out, "seconds": time.perf_counter() - start, "node": os.uname().nodename}
    except Exception as exc:
        return {"ok": False, "error": str(exc), "error_type": type(exc).__name__, "seconds": time.perf_counter() - start}


def resources_for(spec: ModelSpec, data_dir: Path, device: str, dtype: str, cluster: dict[str, float]) -> dict[str, Any]:
    """Ray resource requests for one model's task."""
    need = None
    try:
        from ..models.load import model_directory
        from ..models.memory import estimate

        if spec.source != "llama2c":
            need = estimate(spec, model_directory(spec, data_dir), dtype).need_bytes
    except Exception:
        need = None  # e.g. a hub model whose config is not cached on the driver: let the worker find out
    opts: dict[str, Any] = {"num_cpus": 1}
    gpus = cluster.get("GPU", 0)
    if gpus and device != "cpu":
        gpu_mem = cluster.get("gpu_memory_bytes") or 80 * 2**30
        opts["num_gpus"] = 1.0 if need is None else min(1.0, max(0.05, round(need / gpu_mem, 2)))
    elif need:
        opts["memory"] = int(need)
    return opts


class RayExecutor:
    """``address``: the cluster to join (None or "local": start one here); ``resources``: per job, given the
    cluster's resources; ``console``: where to print notes."""

    def __init__(self, address: str | None = None, resources: Callable[[Job, dict[str, float]], dict[str, Any]] | None = None,
                 console: Any = None, shared_store: bool = True) -> None:
        self.address, self.resources, self.console, self.shared_store = address, resources, console, shared_store

    def run(self, jobs: list[Job], work: Work, on_start: Callable[[Job], None],
            on_family: Callable[[str], None], on_done: Callable[[Job, Outcome], None]) -> None:
        ray = _ray()
        if not self.shared_store and self.address not in (None, "local") and self.console is not None:
            # Workers on other machines cannot see this machine's data/ folder.
            self.console.print("[yellow]note:[/] without --store, workers write to this machine's data/scores; "
                               "that only works when they share its filesystem.")
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
            if self.address and self.address != "local":
                kwargs["address"] = self.address
            else:
                kwargs["num_cpus"] = int(os.environ.get("HEADWIKI_RAY_CPUS", os.cpu_count() or 1))
            ray.init(**kwargs)
        try:
            cluster = dict(ray.cluster_resources())
            remote = ray.remote(_task)
            pending: dict[Any, tuple[Job, float]] = {}
            for job in jobs:
                on_start(job)
                if not job.todo:
                    on_done(job, Outcome(ok=True, seconds=0.0))
                    continue
                res = self.resources(job, cluster) if self.resources else {"num_cpus": 1}
                pending[remote.options(**res, max_retries=0).remote(work, job)] = (job, time.perf_counter())
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job, start = pending.pop(done[0])
                try:
                    out = ray.get(done[0])
                except Exception as exc:  # the worker died (out of memory, node lost): record it like any failure
                    out = {"ok": False, "error": f"Ray task failed: {exc}", "error_type": type(exc).__name__}
                seconds = out.get("seconds", time.perf_counter() - start)
                if out.get("ok"):
                    on_done(job, Outcome(ok=True, seconds=seconds, result=out))
                else:
                    on_done(job, Outcome(ok=False, seconds=seconds, error=out.get("error", "unknown error"),
                                         error_type=out.get("error_type") or "RemoteError"))
        finally:
            if started_here:
                ray.shutdown()
