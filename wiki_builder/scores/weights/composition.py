"""Q-, K- and V-composition between every pair of heads in different layers (Elhage et al. 2021), from the weights.

For a source head s (earlier layer) and a destination head d (later layer), with TransformerLens'
row-vector convention (``x @ W``):

* Q-composition: ``|W_OV^s W_QK^d| / (|W_OV^s| |W_QK^d|)`` with ``W_QK = W_Q W_K^T``: s writes what d's queries read;
* K-composition: ``|W_OV^s (W_QK^d)^T| / ...``: s writes what d's keys read (a previous-token head feeding an induction head);
* V-composition: ``|W_OV^s W_OV^d| / ...``: s writes what d's values read;

``|.|`` is the Frobenius norm and ``W_OV = W_V W_O``. These are the quantities of TransformerLens'
``TransformerBridge.all_composition_scores`` (the tests check that they agree). Here they are computed
without forming any ``d_model x d_model`` matrix: with a small ``R_V`` such that ``R_V^T R_V = W_V^T W_V``,
``|W_V W_O X| = |R_V W_O X|``, and likewise on the right, so every norm is of a ``d_head x d_head`` matrix
and a model's pairs are a few batched matrix products per pair of layers.

Grouped-query attention: the bridge's ``W_K`` and ``W_V`` have one slice per key/value head; query head
``h`` uses key/value head ``h // (n_heads // n_kv_heads)`` (Hugging Face's ``repeat_kv``), so both are
expanded with ``repeat_interleave`` before anything else.

Baseline: the composition of random matrices is far from 0 (about ``1/sqrt(d_model)`` when ``d_head``
is large), and grows as ``d_model`` shrinks, so raw values do not compare across models. The baseline is
the mean score of independent Gaussian ``W_V, W_O, W_Q, W_K`` of this model's shapes (the same for all
three kinds), by seeded sampling; the stored ``value`` is the score minus the baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import MetricOutput, WeightsMetric, not_applicable

KINDS = ("q", "k", "v")
BASELINE_SAMPLES = 64


def no_grad():
    import torch

    return torch.no_grad()


def _dtype(d_model: int) -> Any:
    import torch

    return torch.float64 if d_model <= 1024 else torch.float32


def head_weights(bridge: Any) -> tuple[Any, Any, Any, Any]:
    """``(W_Q, W_K, W_V, W_O)`` per query head: ``[L, H, d_model, d_head]`` (``W_O``: ``[L, H, d_head, d_model]``),
    key/value weights of grouped-query models repeated up to one per query head."""
    W_Q, W_K, W_V, W_O = (w.detach() for w in (bridge.W_Q, bridge.W_K, bridge.W_V, bridge.W_O))
    n_heads = W_Q.shape[1]
    out = []
    for w in (W_K, W_V):
        if w.shape[1] != n_heads:
            if n_heads % w.shape[1]:
                raise ValueError(f"{n_heads} query heads do not divide into {w.shape[1]} key/value heads")
            w = w.repeat_interleave(n_heads // w.shape[1], dim=1)
        out.append(w)
    return W_Q, out[0], out[1], W_O


def _r(w: Any) -> Any:
    """A ``[..., h, h]`` factor R with ``R^T R = w^T w`` for ``w [..., d, h]``, so ``|w X| = |R X|`` for any X.

    From the eigendecomposition of the small Gram matrix (float64) rather than a QR of ``w``: the same
    norms, far faster on CPUs for a batch of tall matrices, and defined for heads whose weights are zero."""
    import torch

    gram = (w.transpose(-2, -1) @ w).double()
    vals, vecs = torch.linalg.eigh(gram)
    return (vals.clamp(min=0).sqrt()[..., :, None] * vecs.transpose(-2, -1)).to(w.dtype)


def _layer_factors(W_Q: Any, W_K: Any, W_V: Any, W_O: Any, dtype: Any) -> dict[str, Any]:
    """One layer's small factors: ``A = R_V W_O`` [H, h, d] (source side) and, for each kind, the
    destination's ``X [H, d, h]`` and ``R [H, h, h]`` with ``|W_OV^s M^d| = |A_s X_d R_d^T|``."""
    q, k, v, o = (w.to(dtype) for w in (W_Q, W_K, W_V, W_O))
    r_q, r_k, r_v, r_o = _r(q), _r(k), _r(v), _r(o.transpose(-2, -1))
    return {"A": r_v @ o, "q": (q, r_k), "k": (k, r_q), "v": (v, r_o),
            "norm_ov": (r_v @ r_o.transpose(-2, -1)).norm(dim=(-2, -1)),
            "norm_qk": (r_q @ r_k.transpose(-2, -1)).norm(dim=(-2, -1))}


def raw_scores(W_Q: Any, W_K: Any, W_V: Any, W_O: Any) -> dict[str, np.ndarray]:
    """Composition scores (no baseline) ``{kind: [L, H, L, H]}`` indexed [src_layer, src_head, dst_layer, dst_head];
    NaN where the source is not in an earlier layer."""
    import torch

    L, H, d_model = W_Q.shape[0], W_Q.shape[1], W_Q.shape[2]
    dtype = _dtype(d_model)
    out = {kind: np.full((L, H, L, H), np.nan) for kind in KINDS}
    sources: list[dict[str, Any]] = []  # per earlier layer, only what a source needs (A: [H, d_head, d_model])
    for dst in range(L):
        f = _layer_factors(W_Q[dst], W_K[dst], W_V[dst], W_O[dst], dtype)
        for kind in KINDS if dst else ():
            X, R = f[kind]
            right = X @ R.transpose(-2, -1)  # [H, d, h]: the destination's reader, d_model reduced on its right
            right_norm = f["norm_ov"] if kind == "v" else f["norm_qk"]
            for src, s in enumerate(sources):
                num = torch.einsum("ahd,bde->abhe", s["A"], right).norm(dim=(-2, -1))  # [H_src, H_dst]
                den = s["norm_ov"][:, None] * right_norm[None, :]
                # a head whose OV (or QK) circuit is zero composes with nothing: 0, not 0/0
                score = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
                out[kind][src, :, dst, :] = score.double().cpu().numpy()
        sources.append({"A": f["A"], "norm_ov": f["norm_ov"]})
    return out


def baseline(d_model: int, d_head: int, samples: int = BASELINE_SAMPLES, seed: int = 0) -> float:
    """Mean composition score of independent Gaussian matrices of these shapes (seeded sampling)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    dtype = _dtype(d_model)
    shape = (samples, 1, d_model, d_head)
    q, k, v = (torch.randn(shape, generator=gen, dtype=dtype) for _ in range(3))
    o = torch.randn((samples, 1, d_head, d_model), generator=gen, dtype=dtype)
    src, dst = _layer_factors(q, k, v, o, dtype), None
    dst = _layer_factors(*(torch.randn(t.shape, generator=gen, dtype=dtype) for t in (q, k, v, o)), dtype)
    X, R = dst["q"]
    num = (src["A"] @ X @ R.transpose(-2, -1)).norm(dim=(-2, -1))
    return float((num / src["norm_ov"] / dst["norm_qk"]).mean())


def pair_rows(raw: dict[str, np.ndarray], base: float) -> dict[str, np.ndarray]:
    """The ``composition`` table's rows (without the model column): every (src, dst, kind) with src_layer < dst_layer."""
    L, H = raw["q"].shape[:2]
    sl, sh, dl, dh = np.meshgrid(np.arange(L), np.arange(H), np.arange(L), np.arange(H), indexing="ij")
    keep = (sl < dl).ravel()
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("src_layer", "src_head", "dst_layer", "dst_head", "kind", "value")}
    for kind in KINDS:
        for name, arr in (("src_layer", sl), ("src_head", sh), ("dst_layer", dl), ("dst_head", dh)):
            cols[name].append(arr.ravel()[keep].astype(np.int32))
        cols["kind"].append(np.full(int(keep.sum()), kind))
        cols["value"].append(raw[kind].ravel()[keep] - base)
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out["baseline"] = np.full(len(out["value"]), base)
    return out


def strongest(raw: dict[str, np.ndarray], base: float) -> np.ndarray:
    """Per head: its strongest composition with any head in another layer, as reader or writer, any kind."""
    import warnings

    stack = np.stack([raw[k] for k in KINDS]) - base  # [3, L, H, L, H]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a last-layer head writes to no one, a first-layer head reads no one
        as_src = np.nanmax(stack, axis=(0, 3, 4))
        as_dst = np.nanmax(stack, axis=(0, 1, 2))
    return np.fmax(as_src, as_dst)


def compute(bridge: Any, ctx: Any) -> dict[str, MetricOutput]:
    cfg = bridge.cfg
    L, H = int(cfg.n_layers), int(cfg.n_heads)
    setup: dict[str, Any] = {"kinds": list(KINDS), "baseline": "mean over seeded Gaussian samples", "baseline_samples": BASELINE_SAMPLES,
                             "baseline_seed": 0, "weights": "processed (layer norms folded), key/value heads repeated per query head"}
    if L < 2:
        return {"composition": not_applicable((L, H), "one layer: no pairs of heads in different layers", setup)}
    if any(hasattr(bridge, a) for a in ("encoder_blocks", "decoder_blocks")):
        return {"composition": not_applicable((L, H), "encoder-decoder: composition is defined within one residual stream", setup)}
    try:
        with no_grad():
            W_Q, W_K, W_V, W_O = head_weights(bridge)
    except Exception as exc:  # noqa: BLE001 - an architecture whose bridge has no per-head attention weights
        reason = f"the per-head attention weights (W_Q, W_K, W_V, W_O) cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        return {"composition": not_applicable((L, H), reason, setup)}
    if W_Q.shape[:2] != (L, H) or W_O.shape[:2] != (L, H):
        return {"composition": not_applicable((L, H), f"attention weights of shape {tuple(W_Q.shape)} do not match {L} layers x {H} heads "
                                              "(a model with layers without attention)", setup)}
    with no_grad():
        raw = raw_scores(W_Q, W_K, W_V, W_O)
        base = baseline(int(W_Q.shape[2]), int(W_Q.shape[3]))
    setup.update(baseline_value=round(base, 6), d_model=int(W_Q.shape[2]), d_head=int(W_Q.shape[3]),
                 pairs=int(sum(L - 1 - l for l in range(L)) * H * H))
    return {"composition": MetricOutput(values=strongest(raw, base), setup=setup, tables={"composition": pair_rows(raw, base)})}


METRIC = WeightsMetric(
    id="composition",
    version="1",
    title="Composition (strongest link)",
    compute=compute,
    description=(
        "How strongly a head is wired to heads in other layers through the residual stream: Q-, K- and "
        "V-composition (Elhage et al. 2021) with every head of another layer, from the weights, minus what "
        "random matrices of the same shapes give. This number is the head's strongest link, as reader or "
        "writer, of any kind; every pair is in the `composition` table, and a head's page lists the heads it "
        "reads from and the heads that read from it. A previous-token head K-composes with the induction head "
        "that reads it."
    ),
    formula=("Q: |W_OV^s W_Q^d W_K^dT| / (|W_OV^s| |W_Q^d W_K^dT|); K: |W_OV^s W_K^d W_Q^dT| / ...; "
             "V: |W_OV^s W_OV^d| / (|W_OV^s| |W_OV^d|); value = score - baseline"),
    reference="Elhage et al. 2021, 'A Mathematical Framework for Transformer Circuits'; TransformerLens all_composition_scores",
    details=(
        "From the weights as TransformerLens processes them (layer norms folded into the weights that read them; "
        "for LayerNorm models, writing weights centred). Rotary position embeddings and the norms' input-dependent "
        "scale are not part of the weights and are left out, as in the reference. Grouped-query attention: each "
        "query head uses its key/value head's W_K and W_V (Hugging Face's repeat_kv layout). Baseline: the mean "
        f"score of {BASELINE_SAMPLES} draws of independent Gaussian W_V, W_O, W_Q, W_K with this model's d_model and "
        "d_head (seed 0): seeded sampling, not a formula; it is the same for the three kinds, close to "
        "1/sqrt(d_model) for large heads, and stored in every row's `baseline` column (raw score = value + "
        "baseline). Not applicable to one-layer and encoder-decoder models."
    ),
    higher_is="more strongly wired to another head",
)
