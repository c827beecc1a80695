"""The architecture coverage table that ``wiki coverage --write`` stores with the package (no torch).

``coverage.json`` beside this module holds the rows of the last ``wiki coverage`` run over every
architecture; the site's Models page, ``docs/coverage.md`` and ``wiki models`` read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COVERAGE_FILE = Path(__file__).with_name("coverage.json")


def load_coverage(path: Path | None = None) -> dict[str, Any]:
    """The stored coverage result ({"rows": [...], "registry_total": ...}); empty when there is none."""
    try:
        return json.loads(Path(path or COVERAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def covered_architectures(path: Path | None = None) -> dict[str, str]:
    """Architecture -> status ("covered", "partial", "failed", "refused", "no stand-in") from the stored table."""
    data = load_coverage(path)
    return {r["architecture"]: r["status"] for r in data.get("rows", [])}


def markdown(result: dict[str, Any]) -> str:
    """The coverage table as Markdown (docs/coverage.md and the site's Models page)."""
    lines = ["| architecture | official models | registry models | status | computed | not applicable | failed | engine | seconds |",
             "|---|---:|---:|---|---:|---:|---|---|---:|"]
    for r in result["rows"]:
        failed = "; ".join(f"{f}: {e}" for f, e in r["failed"].items()) or ("" if r["status"] in ("covered", "partial") else r["reason"])
        cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines.append(f"| {cell(r['architecture'])} | {r['official_models']} | {r['registry_models']} | {r['status']} | "
                     f"{len(r['computed'])} | {len(r['not_applicable'])} | {cell(failed)} | {cell(r['engine'])} | {r['seconds']} |")
    lines.append("")
    text = result.get("registry_text", result["registry_total"])
    lines.append(f"Share of TransformerLens' {text} registered text models ({result['registry_total']} with audio and vision "
                 "models, which are refused) whose architecture is covered: "
                 f"{100 * result['registry_share_covered']:.1f}% ({result['registry_covered']} models); "
                 f"covered or partial: {100 * result['registry_share_covered_or_partial']:.1f}%.")
    return "\n".join(lines) + "\n"
