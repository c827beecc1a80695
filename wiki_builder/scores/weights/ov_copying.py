"""OV copying score: how much of a head's full OV circuit is copying (Elhage et al. 2021).

The full OV circuit of head h is the ``[d_vocab, d_vocab]`` matrix
``W_E · W_V[h] · W_O[h] · W_U``: row t says which tokens the head promotes when it
attends to token t. The score is ``Re(sum λ) / sum |λ|`` over its eigenvalues λ:
near 1 when the circuit is mostly positive eigenvalues (copying: attending to t raises
t's logit), near -1 for suppression (anti-copying), near 0 otherwise.

Cheap for any vocabulary: a product ``XY`` and its rotation ``YX`` have the same non-zero
eigenvalues, so those of ``W_E W_V W_O W_U`` (``d_vocab x d_vocab``, rank <= d_head)
are those of the ``d_head x d_head`` matrix ``W_O W_U W_E W_V``; the remaining
eigenvalues are zeros, which change neither sum. We form ``G = W_U W_E`` once
(``d_model x d_model``, one pass over the vocabulary shared by all heads) and, one layer
at a time, build TransformerLens' ``FactoredMatrix(W_V, W_O G)`` from ``bridge.OV``'s
factors; ``FactoredMatrix.eigenvalues`` is ``torch.linalg.eig(BA)`` on the small product
``BA = W_O G W_V``, and we take ``torch.linalg.eigvals(BA)`` (same values, no
eigenvectors), batched over the layer's heads, in float64. TransformerLens' own
``(W_E @ bridge.OV @ W_U).eigenvalues`` reaches the same eigenvalues but carries
``W_E W_V`` (``[layer, head, d_vocab, d_head]``, 1.9 GB for GPT-2 small) on the way; the
tests check the two agree, and agree with the eigenvalues of the explicit
``d_vocab x d_vocab`` circuit on a small vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import NUMBER, TOKEN, TOKEN_SCORES, MetricOutput, WeightsMetric, rows
from . import ov as _ov

TOP_K = 5
N_INPUTS = 5


def full_ov_eigenvalues(bridge: Any, W_V: Any = None, W_O: Any = None) -> Any:
    """Eigenvalues ``[L, H, d_head]`` (complex128) of every head's full OV circuit ``W_E W_V W_O W_U``."""
    import torch
    from transformer_lens import FactoredMatrix

    if W_V is None or W_O is None:
        W_V, _, W_O = _ov.value_weights(bridge)  # bridge.OV's factors: GQA key/value heads already repeated
    G = bridge.W_U.detach().float() @ bridge.W_E.detach().float()  # [d_model, d_model], one pass over the vocabulary
    out = []
    for layer in range(W_V.shape[0]):  # one layer's heads at a time, in float64
        circuit = FactoredMatrix(W_V[layer].double(), (W_O[layer].float() @ G).double())  # W_V (W_O W_U W_E)
        # FactoredMatrix.eigenvalues is torch.linalg.eig(BA); eigvals on the same BA skips the eigenvectors
        out.append(torch.linalg.eigvals(circuit.BA))  # BA = W_O W_U W_E W_V: [H, d_head, d_head] -> [H, d_head]
    return torch.stack(out)


def ov_only_eigenvalues(W_V: Any, W_O: Any) -> Any:
    """Eigenvalues of each head's OV matrix alone, W_V W_O (d_model x d_model), from its rotation W_O W_V."""
    import torch

    return torch.stack([torch.linalg.eigvals(W_O[layer].double() @ W_V[layer].double()) for layer in range(W_V.shape[0])])


def copying_ratio(eig: Any) -> np.ndarray:
    """``Re(sum λ) / sum |λ|`` per head; 0 for a head whose circuit is zero (no eigenvalue mass)."""
    real = eig.real.sum(-1).cpu().numpy()
    mass = eig.abs().sum(-1).cpu().numpy()
    tiny = 1e-9 * max(float(mass.max()), 1e-30)
    return np.where(mass > tiny, real / np.where(mass > tiny, mass, 1.0), 0.0).astype(np.float64)


def compute(bridge: Any, ctx: Any) -> dict[str, MetricOutput]:
    import torch

    tok = getattr(bridge, "tokenizer", None)
    latent = _ov.latent_attention_reason(bridge)
    if latent:
        return {"ov_copying": _ov.not_applicable(bridge, latent, {})}
    with _ov.no_grad():
        W_V, _, W_O = _ov.value_weights(bridge)
        values = copying_ratio(full_ov_eigenvalues(bridge, W_V, W_O))
        alone = copying_ratio(ov_only_eigenvalues(W_V, W_O))
        W_U, _ = _ov.unembed_weights(bridge)
        inputs = _ov.ordinary_inputs(bridge, N_INPUTS)
        e = bridge.W_E.detach().float()[torch.as_tensor(inputs, device=bridge.W_E.device)]
        strs = _ov.TokenStrings(tok)
        names = [strs(i) for i in inputs]
        details: dict[tuple[int, int], dict[str, Any]] = {}
        n_layers, n_heads = values.shape
        for layer in range(n_layers):
            # rows of the full OV circuit for the fixed inputs, all heads at once: [H, n_inputs, d_vocab]
            rows = torch.einsum("nd,hde,hem->hnm", e, W_V[layer].float(), W_O[layer].float()) @ W_U
            top = rows.topk(TOP_K, dim=-1)
            vals, idx = top.values.cpu().numpy(), top.indices.cpu().numpy()
            for head in range(n_heads):
                details[(layer, head)] = {
                    "ov_only": round(float(alone[layer, head]), 4),
                    "promotes": [
                        {"input": names[k], "top": [[strs(int(idx[head, k, j])), float(f"{float(vals[head, k, j]):.4g}")]
                                                    for j in range(TOP_K)]}
                        for k in range(len(inputs))
                    ],
                }
    setup = {
        "circuit": "W_E · W_V[h] · W_O[h] · W_U (TransformerLens compatibility-mode weights, no biases, no norms)",
        "eigenvalues": "eigvals of FactoredMatrix(W_V, W_O·(W_U·W_E)).BA = W_O·W_U·W_E·W_V (d_head x d_head per head, float64)",
        "gqa": "query head h uses key/value head h // (n_heads // n_kv_heads)",
        "n_kv_heads": int(getattr(bridge.cfg, "n_key_value_heads", None) or bridge.cfg.n_heads),
        "detail_inputs": names,
        "detail_top_k": TOP_K,
    }
    return {"ov_copying": MetricOutput(values=values, details=details, setup=setup)}


METRIC = WeightsMetric(
    detail_fields={"ov_only": NUMBER, "promotes": rows(input=TOKEN, top=TOKEN_SCORES)},
    id="ov_copying",
    version="1",
    title="OV copying (eigenvalues)",
    compute=compute,
    description=(
        "Whether a head copies the tokens it attends to: the share of its full OV circuit "
        "W_E·W_OV·W_U that is positive eigenvalues. Near 1 the head raises the logit of the token it "
        "reads (copying, as induction and name-mover heads do); near -1 it lowers it (suppression, as "
        "copy-suppression heads do); near 0 it writes something else."
    ),
    formula="Re(Σ λ_i) / Σ |λ_i| over the eigenvalues λ_i of W_E · W_V[h] · W_O[h] · W_U, in [-1, 1]",
    reference="Elhage et al. 2021, 'A Mathematical Framework for Transformer Circuits' (OV copying eigenvalues)",
    details=(
        "Weights as TransformerLens' compatibility mode gives them (layer norms folded into W_V and W_U, "
        "W_E and W_U centred for LayerNorm models), which is how TransformerLens' demos compute this score; "
        "no norms and no biases are applied. The non-zero eigenvalues of the d_vocab x d_vocab circuit are "
        "those of the d_head x d_head matrix W_O·W_U·W_E·W_V (a product and its rotation share them), so no "
        "vocabulary-sized matrix is formed: the eigenvalues of FactoredMatrix(W_V, W_O·(W_U·W_E)).BA, in float64. For "
        "grouped-query attention each query head uses its own key/value head's W_V (bridge.OV repeats them). "
        "A head whose circuit is zero scores 0. The head page also shows the eigenvalue score of the OV "
        "matrix alone (W_V·W_O, the reference's alternative) and, for five fixed ordinary words, the five "
        "tokens whose logits that input raises most through the full circuit."
    ),
    higher_is="copying (positive) vs suppression (negative)",
)
