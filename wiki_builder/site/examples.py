"""Every head's examples on text (the ``head_examples`` table) on its page, its data as one JSON file, and the archive.

On the page each context is a line of text: every token's background is the query's attention to it
(so it reads without hovering), the query is boxed, tokens after it are grey. Long contexts keep
the tokens around the strongest keys and the last ones before the query; what is left out is "…".
Token strings are untrusted: every one goes through :func:`.tokens.html`.

Beside each page, ``L<l>H<h>.json`` (layout in docs/head-json.md) holds the head's scores, ranks,
labels, details, examples and composition; the data page offers the whole build (Parquet files,
the database, every head's JSON) as one zip.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import escape

from .tokens import html as tok_html

FORMAT = "head-wiki/head/1"
KIND_TITLES = {"max_attention": "Strongest attention (to a token other than the first)", "output_norm": "Largest output (|z W_O|)",
               "decile": "Across its activity: one context from each decile of its output norm, lowest first"}
MAX_SHOWN = 40  # tokens shown per context; the rest of a longer one is elided
COMPOSITION_TOP = 8  # per kind and direction, in a head's JSON
ARCHIVE = "downloads/head-wiki-data.zip"
_MARKERS = ("Ġ", "▁")


def read_examples(con: Any, model: str) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """One model's rows of ``head_examples`` per head (empty when the table is absent)."""
    try:
        cur = con.execute("SELECT layer, head, kind, rank, decile, document, start, query_position, tokens, token_ids, attention, value "
                          "FROM head_examples WHERE model = ? ORDER BY layer, head, kind, rank", [model])
    except Exception:  # a database built before the table existed
        return {}
    cols = [d[0] for d in cur.description]
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in cur.fetchall():
        row = dict(zip(cols, r))
        out.setdefault((int(row["layer"]), int(row["head"])), []).append(row)
    order = {"max_attention": 0, "output_norm": 1, "decile": 2}
    for rows in out.values():
        rows.sort(key=lambda x: (order.get(x["kind"], 9), x["rank"]))
    return out


def read_composition(con: Any, model: str) -> dict[tuple[int, int], dict[str, list[dict[str, Any]]]]:
    """Per head, its strongest composition rows (``composition`` table, when the build has one): as the
    reader (``reads_from``) and as the source (``read_by``), the top ``COMPOSITION_TOP`` per kind."""
    try:  # the top rows per head, kind and direction, chosen by DuckDB (a model has up to millions of pairs)
        cur = con.execute(
            "SELECT src_layer, src_head, dst_layer, dst_head, kind, value, baseline, r_in, r_out FROM (SELECT *, "
            "row_number() OVER (PARTITION BY dst_layer, dst_head, kind ORDER BY value DESC, src_layer, src_head) AS r_in, "
            "row_number() OVER (PARTITION BY src_layer, src_head, kind ORDER BY value DESC, dst_layer, dst_head) AS r_out "
            "FROM composition WHERE model = ?) WHERE r_in <= ? OR r_out <= ? ORDER BY value DESC", [model, COMPOSITION_TOP, COMPOSITION_TOP])
    except Exception:  # no composition table in this build
        return {}
    out: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for sl, sh, dl, dh, kind, value, baseline, r_in, r_out in cur.fetchall():
        row = {"kind": kind, "src_layer": int(sl), "src_head": int(sh), "dst_layer": int(dl), "dst_head": int(dh),
               "value": _num(value), "baseline": _num(baseline)}
        if r_in <= COMPOSITION_TOP:
            out.setdefault((int(dl), int(dh)), {"reads_from": [], "read_by": []})["reads_from"].append(row)
        if r_out <= COMPOSITION_TOP:
            out.setdefault((int(sl), int(sh)), {"reads_from": [], "read_by": []})["read_by"].append(row)
    return out


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 6) if np.isfinite(f) else None


def corpus_note(provenance: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    """The corpus pass's provenance row for a model: status, reason and the corpus it read."""
    for p in provenance:
        if p.get("model") == model and p.get("metric") == "head_examples":
            setup = p.get("setup_parsed") if isinstance(p.get("setup_parsed"), dict) else {}
            return {"status": p.get("status"), "reason": p.get("reason") or "", "corpus": setup.get("corpus") or {},
                    "options": setup.get("options") or {}}
    return None


def _shown(attn: np.ndarray, q: int, n: int) -> list[bool]:
    """Which of ``n`` tokens a long context shows: around its three strongest keys, and the last ones up to and after the query."""
    if n <= MAX_SHOWN:
        return [True] * n
    keep = np.zeros(n, dtype=bool)
    keep[max(0, q - 14):] = True
    for k in np.argsort(-attn[: q + 1], kind="stable")[:3].tolist():
        if attn[k] >= 0.05:
            keep[max(0, k - 2): k + 3] = True
    return keep.tolist()


def _level(a: float) -> int:
    """Attention in tenths (0: under 0.05, not marked), one CSS class per level (``a1`` .. ``a10``): shorter than a style."""
    return max(0, min(10, int(a * 10 + 0.5)))


def context_html(row: dict[str, Any]) -> str:
    """One context as text: background = attention from the query, the query boxed, later tokens grey."""
    tokens = [str(t) for t in (row.get("tokens") or [])]
    attn = np.asarray(row.get("attention") or [], dtype=np.float64)
    q = int(row.get("query_position") or 0)
    marked = any(t.startswith(_MARKERS) for t in tokens)
    shown = _shown(np.nan_to_num(attn), q, len(tokens))
    parts: list[str] = []
    gap = False
    for i, t in enumerate(tokens):
        if not shown[i]:
            gap = True
            continue
        if gap:
            parts.append('<i class=g> … </i>')
            gap = False
        label = str(tok_html(t))
        if marked:
            label = " " + label[1:] if label.startswith("␣") else label
        else:
            label = (" " if parts else "") + label
        if i == q:
            a = float(attn[i]) if i < attn.size and np.isfinite(attn[i]) else 0.0
            parts.append(f'<b class="q a{_level(a)}">{label}</b>')
        elif i > q:  # the tokens after the query: one grey run
            parts.append(f'<i class=f>{label}' if i == q + 1 else label)
        else:
            a = float(attn[i]) if i < attn.size and np.isfinite(attn[i]) else 0.0
            parts.append(f'<b class=a{_level(a)}>{label}</b>' if _level(a) else label)
    if len(tokens) > q + 1 and shown[q + 1]:
        parts.append("</i>")
    return "".join(parts)


def examples_stub(rows: list[dict[str, Any]], note: dict[str, Any] | None, name: str) -> str:
    """What the head page itself holds of its examples: the heading, where they come from, and the place its
    sidecar script ``<name>.ex.js`` fills (``examples_script``); the contexts stay out of the page (< 50 KB)."""
    if not rows:
        return examples_html(rows, note, f"{name}.json")
    head = examples_html(rows, note, f"{name}.json", intro_only=True)
    return (f'{head}<div id="hw-examples"><p>{len(rows)} contexts, shown by a script beside this page; every one with its '
            f'attention values is in <a href="{escape(name)}.json">this head\'s JSON</a>.</p></div>'
            f'<script src="{escape(name)}.ex.js" defer></script>')


def examples_script(rows: list[dict[str, Any]]) -> str:
    """The sidecar that puts a head's contexts into its page: the HTML made (and escaped) here, as a JavaScript string
    whose ``<``, ``>`` and ``&`` are ``\\u`` escapes. A ``<script src>`` works from a web server and from disk alike."""
    body = "".join(_context_blocks(rows))
    text = json.dumps(body, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'(function(){{var e=document.getElementById("hw-examples");if(e)e.innerHTML={text};}})();\n'


def _context_blocks(rows: list[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    kind = None
    for r in rows:
        if r["kind"] != kind:
            if kind is not None:
                parts.append("</div>")
            kind = r["kind"]
            parts.append(f'<h3>{escape(KIND_TITLES.get(kind, kind))}</h3><div class="hw-ex">')
        tag = f'd{int(r["decile"]) + 1}' if r.get("decile") is not None else f'#{int(r["rank"])}'
        parts.append(f'<p><small>{tag} · {float(r["value"]):.3g}</small> {context_html(r)}</p>')
    if rows:
        parts.append("</div>")
    return parts


def examples_html(rows: list[dict[str, Any]], note: dict[str, Any] | None, json_href: str, intro_only: bool = False) -> str:
    """The "Examples on text" section with every context inline (empty when the build has no examples for its model);
    ``intro_only``: its heading and paragraph."""
    if not rows:
        if note and note.get("status") not in (None, "ok"):
            return f'<h2 id="examples">Examples on text</h2><p>Not available: {escape(note.get("reason") or note.get("status"))}</p>'
        return ""
    corpus = (note or {}).get("corpus") or {}
    size = ""
    if corpus.get("documents") is not None:
        size = f': {int(corpus["documents"]):,} documents, {int(corpus.get("tokens") or 0):,} tokens'
    parts = ['<h2 id="examples">Examples on text</h2>',
             f'<p>Contexts from {escape(corpus.get("name") or "the corpus")}{size}. Each token\'s background is the attention from '
             'the boxed query token to it; grey tokens come after the query (it cannot see them). The number before a context is '
             f'the value it was chosen by. Every context with its attention values: <a href="{escape(json_href)}">this head\'s JSON</a>.</p>']
    return "".join(parts if intro_only else parts + _context_blocks(rows))


def head_json(model: dict[str, Any], layer: int, head: int, *, scores: dict[str, float | None],
              ranks: dict[str, dict[str, Any]], labels: list[str], details: dict[str, Any], examples: list[dict[str, Any]],
              note: dict[str, Any] | None, composition: dict[str, list[dict[str, Any]]] | None) -> str:
    """A head's data as one JSON document (docs/head-json.md). ``<``, ``>`` and ``&`` are written as ``\\u`` escapes,
    so a token string can never read as markup wherever the file is shown."""
    doc = {
        "format": FORMAT, "model": model["model"], "layer": layer, "head": head, "name": f"L{layer}H{head}",
        "page": f"L{layer}H{head}.html",
        "model_info": {k: model.get(k) for k in ("n_layers", "n_heads", "d_model", "d_head", "n_params", "family", "architecture")},
        "scores": scores, "ranks": ranks, "labels": labels, "details": details,
        "examples": {"status": (note or {}).get("status") or ("ok" if examples else "absent"), "reason": (note or {}).get("reason") or "",
                     "corpus": (note or {}).get("corpus") or {}, "contexts": [
                         {k: r.get(k) for k in ("kind", "rank", "decile", "document", "start", "query_position", "tokens", "token_ids",
                                                "attention", "value")} for r in examples]},
        "composition": composition if composition is not None else {"reads_from": [], "read_by": []},
    }
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"), default=_default, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def clean(values: list[Any]) -> list[Any]:
    """Floats rounded and NaN as null (JSON has no NaN)."""
    return [None if isinstance(v, float) and not np.isfinite(v) else round(float(v), 4) if isinstance(v, float) else v for v in values]


# --- the whole build as one archive ---------------------------------------------------------------------------


def _comment(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            return z.comment.decode(errors="replace")
    except (OSError, zipfile.BadZipFile):
        return ""


def write_archive(site_src: Path, data_dir: Path, files: list[Path], writer: Any) -> dict[str, Any] | None:
    """``downloads/head-wiki-data.zip``: the database, every model's Parquet file and every head's JSON under
    ``heads/``. Rewritten only when one of them changed (signature of sizes, times and JSON hashes)."""
    # the head JSONs of this render (a model that left the database still has its files until Writer.finish)
    jsons = [site_src / rel for rel in sorted(writer.keep) if rel.startswith("heads/") and rel.endswith(".json")]
    if not files and not jsons:
        return None
    sig = hashlib.sha1()
    for f in files:
        st = f.stat()
        sig.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    for j in jsons:
        rel = j.relative_to(site_src).as_posix()
        sig.update(f"{rel}:{writer.new_pages.get(rel, {}).get('sha') or j.stat().st_mtime_ns}".encode())
    key = sig.hexdigest()
    target = site_src / ARCHIVE
    if writer.entry(ARCHIVE).get("sha") == key and target.is_file():
        writer.keep_as_is(ARCHIVE)
    elif _comment(target) == key:  # the manifest was lost, the archive is still the right one
        writer.record(ARCHIVE, key, False)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
        try:
            with zipfile.ZipFile(tmp, "w") as z:  # Parquet and DuckDB files are stored as they are; JSON deflated, quickly
                z.comment = key.encode()
                for f in files:
                    arc = "head-wiki-data/" + (f.relative_to(data_dir).as_posix() if f.is_relative_to(data_dir) else f.name)
                    z.write(f, arc, compress_type=zipfile.ZIP_STORED)
                for j in jsons:
                    z.write(j, "head-wiki-data/" + j.relative_to(site_src).as_posix(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        writer.record(ARCHIVE, key, True)
    return {"href": ARCHIVE, "name": Path(ARCHIVE).name, "size": target.stat().st_size,
            "what": f"the whole build in one zip: the database, {sum(1 for f in files if f.suffix == '.parquet')} Parquet file(s) "
                    f"(scores/, with the composition and head_examples tables in their own folders) and {len(jsons):,} head JSON "
                    "files (heads/<model>/L<l>H<h>.json, layout: docs/head-json.md)"}
