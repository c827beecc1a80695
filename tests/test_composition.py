"""Composition scores: the previous-token -> induction K-composition on every embedded model, agreement with
TransformerLens, grouped-query attention against a direct computation from the checkpoints' own weights, the
random-matrix baseline, and the table a build stores."""

from __future__ import annotations

import numpy as np
import pytest

from support import ZOO_NAMES, constructed, embedded_dir, stories260k
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec, resolve
from wiki_builder.scores.weights import composition as C


def direct_scores(layers: list[dict[str, np.ndarray]], n_heads: int, n_kv: int) -> dict[str, np.ndarray]:
    """Composition from explicit d_model x d_model matrices, built from a checkpoint's projections (out x in, as
    nn.Linear stores them) with the attention norm's gain folded in; query head h reads key/value head
    h // (n_heads // n_kv), as Hugging Face's repeat_kv and llama2.c's run.c do."""
    L = len(layers)
    hs = layers[0]["wq"].shape[0] // n_heads
    ov, qk = [], []
    for w in layers:
        g = w["gain"][:, None]
        heads_ov, heads_qk = [], []
        for h in range(n_heads):
            kv = h // (n_heads // n_kv)
            q = g * w["wq"][h * hs:(h + 1) * hs].T  # [d_model, d_head], x @ W convention
            k = g * w["wk"][kv * hs:(kv + 1) * hs].T
            v = g * w["wv"][kv * hs:(kv + 1) * hs].T
            o = w["wo"][:, h * hs:(h + 1) * hs].T  # [d_head, d_model]
            heads_ov.append(v @ o)
            heads_qk.append(q @ k.T)
        ov.append(heads_ov)
        qk.append(heads_qk)
    out = {kind: np.full((L, n_heads, L, n_heads), np.nan) for kind in C.KINDS}
    fro = np.linalg.norm
    for s in range(L):
        for d in range(s + 1, L):
            for a in range(n_heads):
                for b in range(n_heads):
                    for kind, right in (("q", qk[d][b]), ("k", qk[d][b].T), ("v", ov[d][b])):
                        out[kind][s, a, d, b] = fro(ov[s][a] @ right) / fro(ov[s][a]) / fro(right)
    return out


def toy_llama_layers() -> tuple[list[dict[str, np.ndarray]], int, int]:
    import json

    from safetensors.numpy import load_file

    d = embedded_dir("toy-llama")
    cfg = json.loads((d / "config.json").read_text())
    sd = {k: v.astype(np.float64) for k, v in load_file(str(d / "model.safetensors")).items()}
    layers = [{"wq": sd[f"model.layers.{l}.self_attn.q_proj.weight"], "wk": sd[f"model.layers.{l}.self_attn.k_proj.weight"],
               "wv": sd[f"model.layers.{l}.self_attn.v_proj.weight"], "wo": sd[f"model.layers.{l}.self_attn.o_proj.weight"],
               "gain": sd[f"model.layers.{l}.input_layernorm.weight"]} for l in range(cfg["num_hidden_layers"])]
    return layers, cfg["num_attention_heads"], cfg["num_key_value_heads"]


def stories_layers() -> tuple[list[dict[str, np.ndarray]], int, int]:
    from wiki_builder.models.llama2c import read_checkpoint

    cfg, w = read_checkpoint(stories260k()[0])
    layers = [{k: np.asarray(w[src][l], dtype=np.float64) for k, src in (("wq", "wq"), ("wk", "wk"), ("wv", "wv"), ("wo", "wo"),
                                                                         ("gain", "rms_att_weight"))} for l in range(cfg.n_layers)]
    return layers, cfg.n_heads, cfg.n_kv_heads


@pytest.mark.unit
def test_constructed_induction_head_reads_the_previous_token_head(constructed_dir):
    """The hand-built induction head's keys read what the previous-token head writes (K-composition by construction)."""
    bridge = load_model(ModelSpec("constructed", "local", str(constructed_dir)), device="cpu").bridge
    raw = C.raw_scores(*C.head_weights(bridge))
    (pl, ph), (il, ih) = constructed.EXPECTED["prev_token"], constructed.EXPECTED["induction"]
    k_in = raw["k"][:, :, il, ih]
    assert np.unravel_index(np.nanargmax(k_in), k_in.shape) == (pl, ph), k_in
    tl = bridge.all_composition_scores("K").scores.detach().double().numpy()
    ok = ~np.isnan(raw["k"]) & ~np.isnan(tl)
    assert np.allclose(raw["k"][ok], tl[ok], atol=1e-6)
    zero = np.isnan(tl[0, :, 1, :])  # TransformerLens: 0/0 for a head whose OV circuit is zero; here 0
    assert zero.any() and (raw["k"][0, :, 1, :][zero] == 0).all()
    assert np.isnan(raw["k"][1, :, 0, :]).all() and np.isnan(raw["k"][0, :, 0, :]).all()  # only earlier -> later layers


@pytest.mark.unit
def test_baseline_is_the_random_matrix_score():
    """Seeded and reproducible, near 1/sqrt(d_model) for large heads, larger for small models."""
    assert C.baseline(64, 16) == C.baseline(64, 16)
    assert abs(C.baseline(256, 64) - 1 / 16) < 0.01
    assert C.baseline(64, 16) > C.baseline(256, 64)


@pytest.mark.integration
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_induction_heads_k_compose_with_a_previous_token_head(name, zoo_scores):
    """Every induction head of the zoo (stripe > 0.5) has a previous-token head (> 0.5) as its strongest K-composition
    source, and TransformerLens' all_composition_scores('K') ranks the same source first."""
    bridge, result = zoo_scores(name)
    ind, prev = result.values["induction"], result.values["prev_token"]
    out = result.outputs["composition"]
    raw = C.raw_scores(*C.head_weights(bridge))
    tl = bridge.all_composition_scores("K").scores.detach().double().numpy()
    heads = [tuple(int(x) for x in idx) for idx in zip(*np.nonzero(ind > 0.5))]
    assert heads and all(l >= 1 for l, _ in heads), ind
    for il, ih in heads:
        ours = raw["k"][:il, :, il, ih]
        src = np.unravel_index(np.nanargmax(ours), ours.shape)
        assert prev[src] > 0.5, (name, (il, ih), src, prev)
        assert np.unravel_index(np.argmax(tl[:il, :, il, ih]), ours.shape) == src
    rows = out.tables["composition"]
    L, H = ind.shape
    assert len(rows["value"]) == 3 * H * H * L * (L - 1) // 2
    assert np.allclose(rows["value"] + rows["baseline"], np.concatenate([raw[k][raw[k] == raw[k]] for k in C.KINDS]))


@pytest.mark.integration
@pytest.mark.parametrize("which", ["toy-llama", "stories260K"])
def test_grouped_query_attention_matches_a_direct_computation(which, zoo_scores):
    """Key/value heads expanded to query heads as the checkpoint's own model reads them (h // group), checked
    against explicit matrices from the raw checkpoint; tiling the key/value heads instead would not match."""
    bridge = zoo_scores(which)[0] if which != "stories260K" else load_model(resolve(which), device="cpu").bridge
    layers, n_heads, n_kv = toy_llama_layers() if which == "toy-llama" else stories_layers()
    assert n_kv < n_heads
    direct = direct_scores(layers, n_heads, n_kv)
    ours = C.raw_scores(*C.head_weights(bridge))
    for kind in C.KINDS:
        ok = ~np.isnan(direct[kind])
        assert np.allclose(ours[kind][ok], direct[kind][ok], rtol=1e-5, atol=1e-7), kind
        tl = bridge.all_composition_scores(kind.upper()).scores.detach().double().numpy()
        assert np.allclose(tl[ok], direct[kind][ok], rtol=1e-4, atol=1e-6), kind
    W_Q, W_K, W_V, W_O = (w.detach() for w in (bridge.W_Q, bridge.W_K, bridge.W_V, bridge.W_O))
    tiled = C.raw_scores(W_Q, W_K.repeat(1, n_heads // n_kv, 1, 1), W_V.repeat(1, n_heads // n_kv, 1, 1), W_O)
    ok = ~np.isnan(direct["k"])
    assert np.abs(tiled["k"][ok] - direct["k"][ok]).max() > 1e-3
