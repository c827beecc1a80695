"""What the corpus pass (every head's examples on text) adds to a build: ``wiki bench-corpus``.

Builds the models (default: the embedded default) into a temporary folder, every family plus the corpus pass,
without the site, then reads back from ``runs`` and ``provenance`` each model's seconds with the pass and
without it (the pass's own seconds subtracted), the tokens and documents it read, and its rows.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any


def run(models: list[str] | None = None, tokens: int | None = None, root: Path | None = None, out: Any = print) -> dict[str, Any]:
    from ..build import build_models
    from ..models.resolve import default_models, resolve_many
    from ..scores.corpus import DEFAULT_TOKENS, CorpusOptions
    from ..store import connect_readonly
    from ..workspace import open_workspace

    tmp = Path(tempfile.mkdtemp(prefix="headwiki-corpus-bench-")) if root is None else None
    where = Path(root) if root is not None else tmp
    try:
        ws = open_workspace(where)
        corpus = CorpusOptions(tokens=DEFAULT_TOKENS if tokens is None else int(tokens))
        report = build_models(resolve_many(models or default_models()), ws, device="cpu", dtype="float32", corpus=corpus)
        con = connect_readonly(ws.data)
        try:
            runs = dict(con.execute("SELECT model, max(seconds) FROM runs WHERE status IN ('ok', 'partial') GROUP BY model").fetchall())
            prov = con.execute("SELECT model, status, seconds, setup FROM provenance WHERE metric = 'head_examples'").fetchall()
            rows = dict(con.execute("SELECT model, count(*) FROM head_examples GROUP BY model").fetchall())
        finally:
            con.close()
        results: dict[str, Any] = {"tokens_per_model": corpus.tokens, "models": {}}
        out(f"corpus pass, {corpus.tokens} tokens per model, on the CPU:")
        out(f"{'model':<14} {'build s':>8} {'without':>8} {'pass s':>7} {'share':>6} {'docs':>5} {'tokens':>7} {'rows':>6}  corpus")
        for model, status, seconds, setup in sorted(prov):
            c = (json.loads(setup) if isinstance(setup, str) else setup or {}).get("corpus") or {}
            total = float(runs.get(model) or 0.0)
            r = {"build_s": round(total, 2), "without_s": round(total - float(seconds or 0), 2), "pass_s": round(float(seconds or 0), 2),
                 "status": status, "documents": c.get("documents"), "tokens": c.get("tokens"), "rows": int(rows.get(model, 0)),
                 "corpus": c.get("name")}
            results["models"][model] = r
            out(f"{model:<14} {r['build_s']:>8.1f} {r['without_s']:>8.1f} {r['pass_s']:>7.1f} {r['pass_s'] / max(total, 1e-9):>6.0%} "
                f"{r['documents'] or 0:>5} {r['tokens'] or 0:>7} {r['rows']:>6}  {r['corpus']}")
        extra = sum(r["pass_s"] for r in results["models"].values())
        results["extra_s"] = round(extra, 2)
        results["failed"] = [o.model for o in report.failed]
        out(f"the pass added {extra:.1f} s to the build ({len(results['models'])} models)")
        return results
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
