"""The example SQL of the site: shown on the data page, one click away on the query page, and checked
by the browser test against ``wiki query`` (one list, so the three never drift apart)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

EXAMPLES: tuple[tuple[str, str], ...] = (
    ("the ten strongest induction heads across all models",
     "SELECT model, layer, head, value FROM scores WHERE metric = 'induction' ORDER BY value DESC LIMIT 10"),
    ("per model: where is the best induction head, and does it sit after the best previous-token head?",
     "SELECT model, arg_max(layer, induction) AS induction_layer, arg_max(layer, prev_token) AS prev_layer\n"
     "FROM head_scores GROUP BY model"),
    ("heads that are both previous-token and duplicate-token heads",
     "SELECT * FROM head_scores WHERE prev_token > 0.5 AND duplicate_token > 0.2"),
    ("a head's percentile within its model for every metric (ranked over the model's heads, then filtered)",
     "SELECT * FROM (\n"
     "  SELECT model, layer, head, metric, value,\n"
     "         round(100 * percent_rank() OVER (PARTITION BY model, metric ORDER BY value), 1) AS percentile\n"
     "  FROM scores WHERE model = 'gpt2-small')\n"
     "WHERE layer = 9 AND head = 1"),
    ("how each model's scores were made",
     "SELECT model, metric, metric_version, device, dtype, seed, seconds, transformer_lens_version FROM provenance"),
)
CAP = 1000  # rows the query page shows at most (the downloads hold them all)


def examples() -> list[dict[str, str]]:
    """The examples with their query-page links: [{"title", "sql", "href"}]."""
    return [{"title": t, "sql": s, "href": "query.html?sql=" + quote(s, safe="")} for t, s in EXAMPLES]


def script_json(value: Any) -> Markup:
    """JSON to put inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` (so no ``</script>``)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
