"""The corpus pass: every head's examples on text, as HeadVis shows them.

The model reads a text corpus (:mod:`.texts` finds it) and, per head, keeps a few contexts:

* ``max_attention``: the top ``top_k`` query positions by the head's strongest attention to an
  earlier token other than the first (attention to the first token is mostly a sink, not a
  behaviour), at most one per document;
* ``output_norm``: the top ``top_k`` by the norm of what the head writes, ``|z_q W_O|``;
* ``decile``: ``per_decile`` positions drawn at random (seeded) from each decile of that norm,
  so a page shows typical behaviour and not only the extremes.

Each context is the tokens around the query (strings and ids), the query's position in them,
the query's attention over the context up to itself, and the value the ranking used. Two
forward passes: the first keeps two numbers per (head, position) and chooses; the second reruns
only the chosen documents and keeps their attention rows. Ranking and sampling are plain numpy
(:func:`top_distinct`, :func:`decile_samples`), tested on hand-made arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.tokens import bos_id

EXAMPLES_ID = "head_examples"  # the pass's id in provenance and in a build's to-do list
EXAMPLES_VERSION = "1"  # bump when the stored examples would change
KINDS = ("max_attention", "output_norm", "decile")
DEFAULT_TOKENS = 4096  # tokens per model: a few seconds per embedded model on 2 CPUs (docs/benchmarks.md)
SEQ_LEN = 128  # tokens per document read (the zoo's context length); at most the model's n_ctx


@dataclass(frozen=True)
class CorpusOptions:
    """What ``wiki build --corpus/--corpus-tokens`` chose; ``spec`` None: each model's default corpus."""

    spec: str | None = None
    tokens: int = DEFAULT_TOKENS
    seq_len: int = SEQ_LEN
    top_k: int = 5
    per_decile: int = 1
    before: int = 24  # context tokens kept before the query (more when the strongest key lies further back)
    after: int = 4  # and after it (shown greyed: the query cannot see them)

    def key(self) -> dict[str, Any]:
        """The options stored with the examples: a rerun with other ones recomputes them."""
        return {"corpus": self.spec or "default", "tokens": int(self.tokens), "seq_len": int(self.seq_len), "top_k": int(self.top_k),
                "per_decile": int(self.per_decile), "before": int(self.before), "after": int(self.after)}


# --- choosing contexts (numpy only) ----------------------------------------------------------------------------


def top_distinct(values: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite ``values``, at most one per ``group`` (document), largest first;
    ties go to the earlier index."""
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((np.arange(len(values)), -np.nan_to_num(values, nan=-np.inf)))
    out: list[int] = []
    seen: set[int] = set()
    for i in order.tolist():
        if len(out) >= k or not np.isfinite(values[i]):
            break
        g = int(group[i])
        if g in seen:
            continue
        seen.add(g)
        out.append(i)
    return np.array(out, dtype=np.int64)


def decile_samples(values: np.ndarray, per_decile: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """``per_decile`` indices drawn without replacement from each decile of the finite ``values``
    (decile 0 lowest), as ``[(decile, indices sorted by value)]``; a decile with no values is left out.

    Deciles are by rank, so ties and a skewed distribution still give ten equal shares."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0 or per_decile <= 0:
        return []
    ranked = finite[np.lexsort((finite, values[finite]))]
    out = []
    for d, part in enumerate(np.array_split(ranked, 10)):
        if part.size == 0:
            continue
        pick = rng.choice(part, size=min(per_decile, part.size), replace=False)
        out.append((d, pick[np.argsort(values[pick], kind="stable")]))
    return out


def context_window(length: int, query: int, strongest_key: int, before: int, after: int) -> tuple[int, int]:
    """``[start, stop)`` of the tokens shown around ``query``: ``before`` tokens back, further back to show
    the strongest key with two tokens before it, and ``after`` tokens past the query."""
    start = max(0, min(query - before, strongest_key - 2))
    return start, min(length, query + after + 1)


@dataclass
class Choice:
    """One chosen context of one head, before its attention row is read."""

    layer: int
    head: int
    kind: str
    rank: int
    decile: int | None
    document: int
    query: int  # position in the document
    value: float


def choose(max_attn: np.ndarray, norm: np.ndarray, documents: np.ndarray, queries: np.ndarray, layer: int,
           options: CorpusOptions, seed: int) -> list[Choice]:
    """Every head's contexts for one layer, from ``max_attn`` and ``norm`` ``[positions, heads]`` over the
    scored positions (``documents[i]``, ``queries[i]``). Without a norm (all NaN: the model has no ``hook_z``)
    the deciles are those of the strongest attention."""
    out: list[Choice] = []
    activity = norm if np.isfinite(norm).any() else max_attn
    for head in range(max_attn.shape[1]):
        for kind, vals in (("max_attention", max_attn[:, head]), ("output_norm", norm[:, head])):
            for rank, i in enumerate(top_distinct(vals, documents, options.top_k).tolist(), 1):
                out.append(Choice(layer, head, kind, rank, None, int(documents[i]), int(queries[i]), float(vals[i])))
        rng = np.random.default_rng([seed, layer, head])
        rank = 0
        for d, idx in decile_samples(activity[:, head], options.per_decile, rng):
            for i in idx.tolist():
                rank += 1
                out.append(Choice(layer, head, "decile", rank, d, int(documents[i]), int(queries[i]), float(activity[i, head])))
    return out


# --- the two passes ---------------------------------------------------------------------------------------------


class _Done(Exception):
    """Raised by the last hook a pass needs: the unembedding is never computed."""


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _padded(sequences: list[list[int]], rows: range, pad: int) -> Any:
    import torch

    width = max(len(sequences[i]) for i in rows)
    return torch.tensor([sequences[i] + [pad] * (width - len(sequences[i])) for i in rows], dtype=torch.long)


def _run(bridge: Any, tokens: Any, hooks: list[tuple[str, Callable]]) -> None:
    import torch

    from .stacks import last_residual_hook

    def stop(resid: Any, hook: Any) -> None:
        raise _Done

    with torch.no_grad():
        try:
            bridge.run_with_hooks(tokens.to(bridge.cfg.device), fwd_hooks=[*hooks, (last_residual_hook(bridge), stop)], return_type=None)
        except _Done:
            pass


def head_examples(bridge: Any, sequences: list[list[int]], options: CorpusOptions, seed: int = 0,
                  batch: int = 64) -> list[dict[str, Any]]:
    """Every head's example contexts on these token sequences (each a document, BOS first when the model
    uses one): rows of the ``head_examples`` table, without the model column."""
    import torch

    from .stacks import attention_sites

    sites = attention_sites(bridge)  # (layer, hook prefix): the layers with self-attention
    n_heads = int(bridge.cfg.n_heads)
    W_O = bridge.OV.B.detach()  # [attention layers, H, d_head, d_model], one slice per query head
    with_z = all(f"{prefix}.hook_z" in bridge.hook_dict for _, prefix, _ in sites)  # else: deciles of the strongest attention
    lengths = [len(s) for s in sequences]
    pad = int(sequences[0][0]) if sequences and sequences[0] else 0
    max_attn: dict[int, list[np.ndarray]] = {layer: [] for layer, _, _ in sites}
    norms: dict[int, list[np.ndarray]] = {layer: [] for layer, _, _ in sites}
    docs: list[np.ndarray] = []
    qs: list[np.ndarray] = []
    for rows in _batches(len(sequences), batch):
        # scored positions: every query but the first (its only key is the first token) and the padding
        b_idx = np.concatenate([np.full(lengths[i] - 1, j) for j, i in enumerate(rows)]).astype(np.int64)
        q_idx = np.concatenate([np.arange(1, lengths[i]) for i in rows]).astype(np.int64)
        docs.append(np.array([rows[j] for j in b_idx.tolist()], dtype=np.int64))
        qs.append(q_idx)
        bt, qt = torch.as_tensor(b_idx), torch.as_tensor(q_idx)

        def pattern_hook(layer: int, bt: Any = bt, qt: Any = qt) -> Callable:
            def hook(pattern: Any, hook: Any) -> None:
                p = pattern.detach().float()[..., 1:]  # [B, H, Q, K-1]: every key but the first
                causal = torch.ones(p.shape[-2], p.shape[-1] + 1, dtype=torch.bool, device=p.device).tril()[:, 1:]
                best = p.masked_fill(~causal, float("-inf")).amax(-1)  # [B, H, Q]
                max_attn[layer].append(best[bt.to(p.device), :, qt.to(p.device)].cpu().numpy())

            return hook

        def z_hook(layer: int, w_o: Any, bt: Any = bt, qt: Any = qt) -> Callable:
            def hook(z: Any, hook: Any) -> None:
                zz = z.detach()[bt.to(z.device), qt.to(z.device)].float()  # [N, H, d_head]
                out = torch.einsum("nhd,hdm->nhm", zz, w_o.float().to(z.device))
                norms[layer].append(out.norm(dim=-1).cpu().numpy())

            return hook

        hooks = []
        for j, (layer, prefix, _) in enumerate(sites):
            hooks.append((f"{prefix}.hook_pattern", pattern_hook(layer)))
            if with_z:  # the stacked W_O holds the attention layers only: the j-th site's slice
                hooks.append((f"{prefix}.hook_z", z_hook(layer, W_O[j] if W_O.shape[0] == len(sites) else W_O[layer])))
        _run(bridge, _padded(sequences, rows, pad), hooks)
    documents, queries = np.concatenate(docs), np.concatenate(qs)
    chosen: list[Choice] = []
    for layer, _, _ in sites:
        attn = np.concatenate(max_attn[layer])
        norm = np.concatenate(norms[layer]) if with_z else np.full_like(attn, np.nan)
        chosen += choose(attn, norm, documents, queries, layer, options, seed)
    return _read_rows(bridge, sequences, chosen, options, batch, n_heads)


def _read_rows(bridge: Any, sequences: list[list[int]], chosen: list[Choice], options: CorpusOptions, batch: int,
               n_heads: int) -> list[dict[str, Any]]:
    """The second pass: the attention rows of the chosen contexts, and their tokens."""
    from .stacks import attention_sites

    sites = attention_sites(bridge)
    wanted = sorted({c.document for c in chosen})
    by_doc: dict[int, list[Choice]] = {}
    for c in chosen:
        by_doc.setdefault(c.document, []).append(c)
    rows_of: dict[int, np.ndarray] = {}  # id(choice) -> attention row over keys 0..query
    pad = int(sequences[0][0]) if sequences and sequences[0] else 0
    for part in _batches(len(wanted), batch):
        docs = [wanted[i] for i in part]
        sub = [sequences[d] for d in docs]

        def hook_for(layer: int, docs: list[int] = docs) -> Callable:
            def hook(pattern: Any, hook: Any) -> None:
                for j, d in enumerate(docs):
                    for c in by_doc[d]:
                        if c.layer == layer:
                            rows_of[id(c)] = pattern[j, c.head, c.query, : c.query + 1].detach().float().cpu().numpy()

            return hook

        _run(bridge, _padded(sub, range(len(sub)), pad), [(f"{prefix}.hook_pattern", hook_for(layer)) for layer, prefix, _ in sites])
    strings = _token_strings(bridge)
    out = []
    for c in chosen:
        seq = sequences[c.document]
        row = rows_of[id(c)]
        keys = row[1:]
        strongest = int(np.argmax(keys)) + 1 if keys.size else 0
        start, stop = context_window(len(seq), c.query, strongest, options.before, options.after)
        ids = [int(t) for t in seq[start:stop]]
        out.append({"layer": c.layer, "head": c.head, "kind": c.kind, "rank": c.rank, "decile": c.decile, "document": c.document,
                    "start": start, "query_position": c.query - start, "tokens": strings(ids), "token_ids": ids,
                    "attention": [round(float(a), 4) for a in row[start:]], "value": round(c.value, 6)})
    out.sort(key=lambda r: (r["layer"], r["head"], KINDS.index(r["kind"]), r["rank"]))
    return out


def _token_strings(bridge: Any) -> Callable[[list[int]], list[str]]:
    tok = getattr(bridge, "tokenizer", None)
    if tok is None:
        return lambda ids: [str(i) for i in ids]
    return lambda ids: [str(t) for t in tok.convert_ids_to_tokens(ids)]


# --- text to token sequences -------------------------------------------------------------------------------------


def tokenize_documents(bridge: Any, documents: list[str], options: CorpusOptions) -> list[list[int]]:
    """The documents as token sequences of at most the sequence length (a longer document is read in
    consecutive pieces), each with BOS first when the model uses one, in order until ``options.tokens``
    tokens are read; pieces of fewer than two tokens are skipped."""
    tok = bridge.tokenizer
    bos = bos_id(bridge)
    width = max(2, min(int(options.seq_len), int(bridge.cfg.n_ctx)))
    head = [bos] if bos is not None else []
    step = width - len(head)
    out: list[list[int]] = []
    total = 0
    for text in documents:
        ids = list(tok.encode(text, add_special_tokens=False))
        for i in range(0, len(ids), step):
            piece = [int(t) for t in head + ids[i:i + step]]
            if len(piece) < 2:
                continue
            out.append(piece)
            total += len(piece)
            if total >= options.tokens:
                return out
    return out


def generate_documents(bridge: Any, options: CorpusOptions, seed: int = 0) -> list[list[int]]:
    """Documents the model writes itself from BOS (or its first ordinary token), ``options.seq_len`` tokens
    each, until ``options.tokens`` tokens: document 0 greedy, the others sampled at temperature 1 (no top-k,
    no top-p) after ``torch.manual_seed(seed)``. Through the Hugging Face model's ``generate`` (with its
    key-value cache) when the bridge wraps one, else one forward pass per token."""
    import torch

    width = max(2, min(int(options.seq_len), int(bridge.cfg.n_ctx)))
    n_docs = max(1, -(-int(options.tokens) // width))
    start = bos_id(bridge)
    if start is None:
        from .probe import token_pool

        start = int(token_pool(getattr(bridge, "tokenizer", None), int(bridge.cfg.d_vocab))[0])
    device = bridge.cfg.device
    hf = getattr(bridge, "original_model", None)
    torch.manual_seed(int(seed))
    with torch.no_grad():
        first = torch.full((1, 1), int(start), dtype=torch.long, device=device)
        rest = first.repeat(n_docs - 1, 1)
        if hf is not None and hasattr(hf, "generate"):
            from transformers import LogitsProcessor, LogitsProcessorList

            class GreedyFirst(LogitsProcessor):
                """Row 0 keeps only its most likely token, so sampling it is greedy decoding: one call for all documents."""

                def __call__(self, input_ids: Any, scores: Any) -> Any:
                    top = scores[0].argmax()
                    scores[0] = float("-inf")
                    scores[0, top] = 0.0
                    return scores

            every = hf.generate(first.repeat(n_docs, 1), do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_length=width,
                                min_length=width, pad_token_id=int(start), logits_processor=LogitsProcessorList([GreedyFirst()]))
            greedy, sampled = every[:1], every[1:]
        else:
            greedy, sampled = first, rest
            for _ in range(width - 1):
                greedy = torch.cat([greedy, bridge(greedy)[:, -1:, :].argmax(-1)], dim=1)
                if n_docs > 1:
                    probs = torch.softmax(bridge(sampled)[:, -1, :].float(), dim=-1)
                    sampled = torch.cat([sampled, torch.multinomial(probs, 1).to(sampled.device)], dim=1)
    return [[int(t) for t in r] for r in torch.cat([greedy.cpu(), sampled.cpu()]).tolist()]


# --- one model's pass, as the build runs it ---------------------------------------------------------------------


@dataclass
class ExamplesResult:
    rows: list[dict[str, Any]]  # rows of head_examples (without the model column)
    status: str  # ok | not_applicable (the corpus cannot be read here)
    reason: str
    setup: dict[str, Any]  # the corpus (name, source, documents, tokens, sha256) and the options
    seconds: float


def examples_for_model(bridge: Any, model_source: str, options: CorpusOptions, seed: int = 0) -> ExamplesResult:
    """Read the model's corpus (``--corpus`` or its source's default) and keep every head's examples.
    A corpus that cannot be read here (the hub is unreachable) gives no rows and the reason, not an error."""
    import hashlib
    import time

    from .texts import CorpusUnavailable, corpus_for

    start = time.perf_counter()
    setup: dict[str, Any] = {"options": options.key(), "ranking": {
        "max_attention": "the strongest attention from the query to an earlier token other than the first",
        "output_norm": "|z_q W_O|, the norm of what the head writes at the query",
        "decile": "positions drawn at random (seeded) from each decile of the output norm"}}
    from .stacks import model_kind

    if model_kind(bridge) != "decoder":
        return ExamplesResult([], "not_applicable", "Examples on text are read from causal self-attention: this model is not "
                              "decoder-only.", setup, time.perf_counter() - start)
    try:
        corpus = corpus_for(options.spec, model_source)
    except CorpusUnavailable as exc:
        return ExamplesResult([], "not_applicable", str(exc), setup, time.perf_counter() - start)
    if corpus is None:
        sequences = generate_documents(bridge, options, seed)
        digest = hashlib.sha256(np.array([t for s in sequences for t in s], dtype=np.int64).tobytes()).hexdigest()
        setup["corpus"] = {"name": "generated by the model (document 0 greedy, the others sampled at temperature 1)",
                           "source": "generated", "sha256": digest, "seed": int(seed)}
    else:
        sequences = tokenize_documents(bridge, corpus.documents, options)
        setup["corpus"] = {**corpus.describe(), "corpus_documents": len(corpus.documents)}
        if not sequences:
            return ExamplesResult([], "not_applicable", f"The corpus '{corpus.name}' gives no document of two tokens or more "
                                  "with this model's tokenizer.", setup, time.perf_counter() - start)
    setup["corpus"].update(documents=len(sequences), tokens=int(sum(len(s) for s in sequences)))
    rows = head_examples(bridge, sequences, options, seed)
    return ExamplesResult(rows, "ok", "", setup, time.perf_counter() - start)
