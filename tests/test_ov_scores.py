"""The OV-circuit families (ov_copying, copy_score, successor): known answers by construction,
agreement with the model's own forward pass and with TransformerLens, and real models."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from support import constructed_ov, embedded_dir, stories260k
from wiki_builder.families import registry, select
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec, embedded_models, resolve
from wiki_builder.scores.base import RunContext
from wiki_builder.scores.runner import compute_scores
from wiki_builder.scores.weights import copy_score
from wiki_builder.scores.weights import ov as _ov
from wiki_builder.scores.weights.ov_copying import copying_ratio, full_ov_eigenvalues
from wiki_builder.scores.weights.successor import SETS

FAMILIES = ["ov_copying", "copy_score", "successor"]
OUTPUTS = ["ov_copying", "copy_score", "negative_copy_score", "successor"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def score(bridge):
    return compute_scores(bridge, select(FAMILIES), ctx=RunContext(examples=False)).outputs


@pytest.fixture(scope="module")
def cov_bridge(tmp_path_factory):
    path = constructed_ov.build(tmp_path_factory.mktemp("models") / "constructed-ov")
    return load_model(ModelSpec("constructed-ov", "local", str(path)), device="cpu").bridge


@pytest.fixture(scope="module")
def cov(cov_bridge):
    return score(cov_bridge)


@pytest.fixture(scope="module")
def stories_bridge(tmp_path_factory):
    from wiki_builder.models.llama2c import convert_llama2c

    out = convert_llama2c(*stories260k(), tmp_path_factory.mktemp("llama2c") / "stories260K", verify=False)
    return load_model(ModelSpec("stories260K", "local", str(out)), device="cpu").bridge


@pytest.fixture(scope="module")
def neox_bridge(tmp_path_factory):
    """A tiny random GPT-NeoX (parallel attention + MLP, rotary) with a word-level vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    from wiki_builder import lexicon as lex

    words = list(dict.fromkeys(["<bos>", "<unk>", *lex.NAMES, *[w for s in lex.SEQUENCES.values() for w in s], *lex.FILLER]))
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=len(words), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=64, use_parallel_residual=True, bos_token_id=0, eos_token_id=0)
    out = tmp_path_factory.mktemp("models") / "neox"
    GPTNeoXForCausalLM(cfg).save_pretrained(out)
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", unk_token="<unk>").save_pretrained(out)
    return load_model(ModelSpec("neox", "local", str(out)), device="cpu").bridge


def others(grid, cell):
    return np.delete(grid.ravel(), cell[0] * grid.shape[1] + cell[1])


# ---------------------------------------------------------------- known by construction


@pytest.mark.unit
def test_constructed_ov_copying(cov):
    grid = cov["ov_copying"].values
    assert grid[constructed_ov.EXPECTED["copy"]] > 0.99, grid
    assert grid[constructed_ov.EXPECTED["anti_copy"]] < -0.99, grid
    # a successor map is a permutation of cycles (months, days) plus a chain: eigenvalues are roots of unity and zeros
    assert abs(grid[constructed_ov.EXPECTED["successor"]]) < 0.05, grid
    assert grid[constructed_ov.EXPECTED["zero"]] == 0.0
    assert np.unravel_index(grid.argmax(), grid.shape) == constructed_ov.EXPECTED["copy"]
    assert np.unravel_index(grid.argmin(), grid.shape) == constructed_ov.EXPECTED["anti_copy"]
    assert np.all(np.abs(grid) <= 1 + 1e-9)


@pytest.mark.unit
def test_constructed_copy_scores(cov):
    pos, neg = cov["copy_score"].values, cov["negative_copy_score"].values
    assert pos[constructed_ov.EXPECTED["copy"]] == 1.0 and neg[constructed_ov.EXPECTED["anti_copy"]] == 1.0
    assert others(pos, constructed_ov.EXPECTED["copy"]).max() < 0.3, pos
    assert others(neg, constructed_ov.EXPECTED["anti_copy"]).max() < 0.3, neg
    # the zero head: every logit ties, and ties count against the name
    assert pos[constructed_ov.EXPECTED["zero"]] == 0.0 and neg[constructed_ov.EXPECTED["zero"]] == 0.0
    setup = cov["copy_score"].setup
    assert setup["names_used"] == len(constructed_ov.NAMES) and setup["names_dropped"] == []


@pytest.mark.unit
def test_constructed_successor(cov):
    out = cov["successor"]
    grid = out.values
    assert grid[constructed_ov.EXPECTED["successor"]] == 1.0, grid
    assert others(grid, constructed_ov.EXPECTED["successor"]).max() < 0.3, grid
    sets = out.setup["sets"]
    assert {k: (v["items"], v["scored"]) for k, v in sets.items()} == {
        "number_words": (len(constructed_ov.NUMBER_WORDS), len(constructed_ov.NUMBER_WORDS) - 1),
        "months": (12, 12), "days": (7, 7)}
    assert out.setup["tokens_scored"] == len(constructed_ov.NUMBER_WORDS) - 1 + 12 + 7
    assert set(out.setup["dropped"]) == set(SETS) - set(sets)
    assert out.setup["dropped"]["ordinals"].startswith("2 of 10")  # two ordinals in the vocabulary: too few
    examples = {e["input"]: e for e in out.details[constructed_ov.EXPECTED["successor"]]["examples"]}
    assert examples["one"]["top"] == "two" and examples["one"]["correct"]
    assert examples["January"]["top"] == "February"
    assert out.details[constructed_ov.EXPECTED["copy"]]["examples"][0]["top"] == examples["one"]["input"]  # copying: one -> one


@pytest.mark.unit
def test_details_and_setup_are_json(cov, cov_bridge):
    n_layers, n_heads = cov_bridge.cfg.n_layers, cov_bridge.cfg.n_heads
    for oid in OUTPUTS:
        out = cov[oid]
        assert out.applicable and out.values.shape == (n_layers, n_heads)
        assert set(out.details) == {(l, h) for l in range(n_layers) for h in range(n_heads)}
        json.dumps(out.setup)
        for d in out.details.values():
            json.dumps(d)
    promotes = cov["ov_copying"].details[constructed_ov.EXPECTED["copy"]]["promotes"]
    assert len(promotes) == 5 and all(p["top"][0][0] == p["input"] for p in promotes)
    anti = cov["ov_copying"].details[constructed_ov.EXPECTED["anti_copy"]]
    assert anti["ov_only"] < -0.99 and all(p["top"][0][0] != p["input"] for p in anti["promotes"])


@pytest.mark.unit
def test_families_are_registered():
    metrics = registry()
    for fid in FAMILIES:
        m = metrics[fid]
        assert m.kind == "weights" and m.version and m.formula and m.reference and len(m.details) > 100
    assert set(metrics["copy_score"].output_ids) == {"copy_score", "negative_copy_score"}


# ---------------------------------------------------------------- against the model and TransformerLens


@pytest.mark.unit
def test_eigenvalues_equal_full_circuit(cov_bridge):
    """The d_head x d_head rotation gives the same score as the d_vocab x d_vocab circuit, and as
    TransformerLens' own (W_E @ OV @ W_U).eigenvalues."""
    with torch.no_grad():
        ours = copying_ratio(full_ov_eigenvalues(cov_bridge))
        full = (cov_bridge.W_E @ cov_bridge.OV @ cov_bridge.W_U).AB.double()  # [L, H, V, V]: fine for V < 100
        brute = copying_ratio(torch.linalg.eigvals(full))
        tl = copying_ratio((cov_bridge.W_E @ cov_bridge.OV @ cov_bridge.W_U).eigenvalues)  # complex64
    np.testing.assert_allclose(ours, brute, atol=1e-4)
    np.testing.assert_allclose(ours, tl, atol=1e-3)


@pytest.mark.parametrize("which", [pytest.param("cov_bridge", marks=pytest.mark.unit), pytest.param("stories_bridge", marks=pytest.mark.integration),
                                   pytest.param("neox_bridge", marks=pytest.mark.unit)])
def test_ov_path_matches_forward_pass(which, request):
    """On a one-token input each head attends only to itself, so the sum of our per-head outputs (plus
    b_O) must equal the model's attention output, and with attention 0 zeroed the residual after layer 0
    must equal our effective embedding. Checks GQA head mapping (stories: 8 query, 4 kv heads), norms
    and parallel blocks (GPT-NeoX)."""
    bridge = request.getfixturevalue(which)
    W_V, b_V, W_O = _ov.value_weights(bridge)
    n_layers = bridge.cfg.n_layers
    ids = [2, 7, 11]
    cache: dict[str, torch.Tensor] = {}

    def saver(name):
        def save(x, hook):
            cache[name] = x.detach().clone()
        return save

    with torch.no_grad():
        eff = _ov.effective_embedding(bridge, ids)
        for k, t in enumerate(ids):
            zero = lambda x, hook: torch.zeros_like(x)  # noqa: E731
            bridge.run_with_hooks(torch.tensor([[t]]), return_type=None,
                                  fwd_hooks=[("blocks.0.hook_attn_out", zero), ("blocks.0.hook_resid_post", saver("post"))])
            torch.testing.assert_close(cache["post"][0, 0], eff[k], atol=1e-5, rtol=1e-4)
            hooks = [(f"blocks.{l}.hook_resid_pre", saver(f"pre{l}")) for l in range(n_layers)]
            hooks += [(f"blocks.{l}.hook_attn_out", saver(f"attn{l}")) for l in range(n_layers)]
            bridge.run_with_hooks(torch.tensor([[t]]), return_type=None, fwd_hooks=hooks)
            for l in range(n_layers):
                mine = _ov.head_outputs(bridge, l, cache[f"pre{l}"][0], W_V, b_V, W_O).sum(0)
                try:
                    b_O = bridge.blocks[l].attn.b_O
                except Exception:  # bias-free checkpoints
                    b_O = None
                if b_O is not None:
                    mine = mine + b_O
                scale = float(cache[f"attn{l}"].abs().max()) + 1e-6
                assert float((mine - cache[f"attn{l}"][0]).abs().max()) < 1e-4 * max(scale, 1.0), (which, l)


@pytest.mark.unit
def test_top_k_hits_is_exact_with_screening(monkeypatch):
    """The screening pass must not change any answer: compare with counting over the whole vocabulary."""
    monkeypatch.setattr(copy_score, "SCREEN", 64)
    monkeypatch.setattr(copy_score, "CHUNK", 50)
    gen = torch.Generator().manual_seed(0)
    vocab, d, n = 3000, 16, 300
    W_U = torch.randn(d, vocab, generator=gen)
    b_U = torch.randn(vocab, generator=gen) * 0.1
    target = torch.randint(0, vocab, (n,), generator=gen)
    rows = torch.randn(n, d, generator=gen) * 0.3
    rows[::3] += 2.0 * W_U[:, target[::3]].T  # a third of the rows copy their target
    rows[1::3] -= 2.0 * W_U[:, target[1::3]].T  # a third suppress it
    rows[5] = 0.0  # all logits equal up to the bias
    examples = torch.tensor([0, 1, 2, 5])
    res = copy_score.top_k_hits(rows, target, W_U, b_U, 5, (1.0, -1.0), examples)
    for s in (1.0, -1.0):
        logits = s * rows @ W_U + b_U
        own = logits.gather(-1, target[:, None])
        expected = (logits >= own).sum(-1) <= 5
        assert torch.equal(res[s][0], expected)
        assert torch.equal(res[s][1], logits[examples].topk(5, dim=-1).indices)
        assert 0 < int(expected.sum()) < n


# ---------------------------------------------------------------- real models


@pytest.mark.integration
def test_stories260k(stories_bridge):
    """A real pretrained Llama (RMSNorm, SwiGLU, GQA 8/4) with a 512-token SentencePiece vocabulary."""
    bridge = stories_bridge
    assert bridge.W_V.shape[1] == 4 and bridge.cfg.n_heads == 8  # TransformerLens keeps one W_V per kv head
    outs = score(bridge)
    ov = outs["ov_copying"].values
    assert ov.shape == (5, 8) and np.all(np.isfinite(ov)) and np.all(np.abs(ov) <= 1 + 1e-9)
    vocab = bridge.tokenizer.get_vocab()
    from wiki_builder import lexicon as lex

    # names: '▁Name' must be one token of the 512; only a handful (if any) are
    names = [n for n in lex.NAMES if "\u2581" + n in vocab]
    for oid in ("copy_score", "negative_copy_score"):
        out = outs[oid]
        assert out.setup["names_used"] == len(names)
        if len(names) < 5:
            assert not out.applicable and f"Only {len(names)} of" in out.reason and np.isnan(out.values).all()
        else:
            assert out.applicable and np.all((out.values >= 0) & (out.values <= 1))
    # successor: the sets' surviving sizes are exactly the members whose '▁word' is in the vocabulary
    succ = outs["successor"]
    expected = {name: sum("\u2581" + w in vocab for w in lex.SEQUENCES[name]) for name in SETS}
    for name, n_items in expected.items():
        if n_items >= 3 and name in succ.setup["sets"]:
            assert succ.setup["sets"][name]["items"] == n_items
        else:
            assert name in succ.setup["dropped"]
    if succ.applicable:
        assert np.all((succ.values >= 0) & (succ.values <= 1))
        assert succ.setup["tokens_scored"] == sum(s["scored"] for s in succ.setup["sets"].values()) > 0
    else:
        assert not succ.setup["sets"]


@pytest.mark.unit
def test_neox_runs(neox_bridge):
    outs = score(neox_bridge)
    assert outs["copy_score"].setup["names_used"] == outs["copy_score"].setup["names_total"]
    for oid in OUTPUTS:
        assert outs[oid].applicable and np.all(np.isfinite(outs[oid].values))
    assert outs["successor"].setup["sets"]["numbers"]["items"] == 200


@pytest.mark.integration
def test_toy_gpt2():
    embedded_dir("toy-gpt2")  # a missing embedded model is a failure, never a skip
    assert "toy-gpt2" in embedded_models()
    bridge = load_model(resolve("toy-gpt2"), device="cpu").bridge
    outs = score(bridge)
    for oid in OUTPUTS:
        assert outs[oid].applicable, (oid, outs[oid].reason)
        assert np.all(np.isfinite(outs[oid].values))
    assert outs["copy_score"].setup["names_used"] >= 5
