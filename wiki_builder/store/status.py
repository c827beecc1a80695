"""Which models are built, stale, failed or not yet built, for `wiki models`."""

from __future__ import annotations

from pathlib import Path

from .db import _connect, db_path


def model_status(data_dir: Path) -> dict[str, str]:
    """built: every current metric output stored at its current version; stale: stored, but some
    output missing or at an older version; failed: the latest attempt failed and nothing is stored."""
    if not db_path(data_dir).is_file():
        return {}
    from ..families import outputs

    current = {oid: fam.version for oid, (fam, _) in outputs().items()}
    con = _connect(db_path(data_dir), read_only=True)
    try:
        stored: dict[str, dict[str, str]] = {}
        for model, metric, version in con.execute("SELECT model, metric, metric_version FROM provenance").fetchall():
            stored.setdefault(model, {})[metric] = version
        last = con.execute(
            "SELECT model, arg_max(status, started_at) FROM runs WHERE status != 'skipped' GROUP BY model"
        ).fetchall()
    finally:
        con.close()
    status = {}
    for model, metrics in stored.items():
        status[model] = "built" if all(metrics.get(o) == v for o, v in current.items()) else "stale"
    for model, last_status in last:
        if last_status == "failed" and model not in status:
            status[model] = "failed"
    return status
