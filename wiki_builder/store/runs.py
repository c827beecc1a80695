"""The runs log: one JSON line per model per build, appended and fsynced.

An append-only log survives a kill -9 (at worst its last line is cut, and is skipped when
read), and `wiki db rebuild` reloads it into the ``runs`` table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUNS_FILE = "runs.jsonl"
RUN_COLUMNS = {
    "run_id": "VARCHAR",
    "model": "VARCHAR",
    "status": "VARCHAR",  # ok | skipped | failed
    "error": "VARCHAR",
    "error_type": "VARCHAR",
    "families": "VARCHAR",  # what was computed (comma-separated), or why skipped
    "started_at": "TIMESTAMP",
    "seconds": "DOUBLE",
    "device": "VARCHAR",
    "dtype": "VARCHAR",
    "seed": "INTEGER",
    "git_revision": "VARCHAR",
    "peak_memory_bytes": "BIGINT",  # RSS high-water mark while the model was loaded and scored (CUDA: max allocated)
    "estimated_memory_bytes": "BIGINT",  # models.memory.estimate for the model, before loading it
}


def append_run(data_dir: Path, row: dict[str, Any]) -> None:
    path = Path(data_dir) / RUNS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({k: row.get(k) for k in RUN_COLUMNS}, default=str)
    with open(path, "a+b") as fh:
        if fh.tell() > 0:  # a line cut by a crash or a full disk: start on a new line, so only that line is lost
            fh.seek(fh.tell() - 1)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write((line + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def read_runs(data_dir: Path) -> list[dict[str, Any]]:
    path = Path(data_dir) / RUNS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return rows
