"""The exact ablation engine against TransformerLens' per-head patching loop, attribution patching, DLA, validation, `wiki bench`."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from support import ZOO_NAMES, constructed, embedded_dir, run_wiki
from wiki_builder.families import select
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec
from wiki_builder.scores.base import BuildOptions, RunContext
from wiki_builder.scores.runner import compute_scores
from wiki_builder.tasks import engine as A
from wiki_builder.tasks.common import Task
from wiki_builder.tasks.prompts import for_bridge
from wiki_builder.tasks.score import score_task

TOL = 1e-5
KINDS = ["mean", "resample", "zero"]


def save_random(kind: str, out: Path) -> Path:
    """A tiny random-init model of each embedded architecture, with the zoo's tokenizer (so every task can be built)."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    from wiki_builder.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    V = len(tok)
    torch.manual_seed(0)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=128, n_embd=64, n_layer=3, n_head=4, bos_token_id=0, eos_token_id=0))
    elif kind == "neox":  # parallel attention + MLP, partial rotary
        model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=V, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                                                 max_position_embeddings=128, rotary_pct=0.25, use_parallel_residual=True,
                                                 tie_word_embeddings=False, bos_token_id=0, eos_token_id=0))
    else:  # grouped-query attention, RMSNorm, rotary
        model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                                             num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
                                             bos_token_id=0, eos_token_id=0))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def random_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("random")
    return {k: save_random(k, base / k) for k in ("gpt2", "neox", "llama")}


@pytest.fixture(scope="module")
def random_bridges(random_dirs):
    torch.set_num_threads(1)
    return {k: load_model(ModelSpec(f"random-{k}", "local", str(d)), device="cpu").bridge for k, d in random_dirs.items()}


@pytest.fixture(scope="module")
def constructed_bridge(constructed_dir):
    return load_model(ModelSpec("constructed", "local", str(constructed_dir)), device="cpu").bridge


def compare(bridge, task, kinds=KINDS, budget=None):
    runs = A.prepare(bridge, task)
    engine = A.ExactEngine(bridge, runs, budget_bytes=budget)
    assert engine.verify() < TOL
    exact = engine.sweep(kinds)
    assert engine.verified < TOL and exact.info["replay_check_max_abs_diff"] == engine.verified  # the sweep's own check
    naive = A.naive_sweep(bridge, runs, kinds)
    for k in kinds:
        assert np.isfinite(exact.metric[k]).all() and np.isfinite(exact.kl[k]).all()
        np.testing.assert_allclose(exact.metric[k], naive.metric[k], atol=TOL, rtol=0)
        np.testing.assert_allclose(exact.kl[k], naive.kl[k], atol=TOL, rtol=0)
    return runs, engine, exact


@pytest.mark.unit
@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
@pytest.mark.parametrize("name", ["ioi", "greater_than", "sequence", "induction_task"])
def test_exact_engine_equals_naive_loop(random_bridges, arch, name):
    """Mean, resample and zero ablation of every head: the engine and TransformerLens' loop agree within 1e-5."""
    bridge = random_bridges[arch]
    task = for_bridge(name, bridge, n=4, seed=1, **({"period": 8} if name == "induction_task" else {}))
    # a small memory budget forces several staircase batches and readout chunks
    _, engine, exact = compare(bridge, task, budget=2_000_000)
    assert exact.info["batches"] > 1 and engine.copies_per_batch < 3 * 4 * 3


@pytest.mark.unit
def test_half_precision_engine(random_dirs):
    """Under bfloat16 forward passes (wiki build's mixed-bf16 on GPUs) the engine still matches the loop."""
    bridge = load_model(ModelSpec("bf16", "local", str(random_dirs["llama"])), device="cpu").bridge
    bridge.to(torch.bfloat16)
    task = for_bridge("greater_than", bridge, n=3, seed=0)
    runs = A.prepare(bridge, task)
    engine = A.ExactEngine(bridge, runs, budget_bytes=2_000_000)
    assert engine.verify() <= engine.tolerance
    exact, naive = engine.sweep(["mean", "resample"]), A.naive_sweep(bridge, runs, ["mean", "resample"])
    for k in ("mean", "resample"):
        np.testing.assert_allclose(exact.metric[k], naive.metric[k], atol=1e-2)
        np.testing.assert_allclose(exact.kl[k], naive.kl[k], atol=1e-2)


@pytest.mark.unit
def test_exact_engine_on_the_constructed_model(constructed_bridge):
    """On the hand-built model (only the induction prompts are expressible), forced: the model need not do the task."""
    task = for_bridge("induction_task", constructed_bridge, n=6, seed=0, period=constructed.OFFSET + 1)
    runs, _, exact = compare(constructed_bridge, task)
    # by construction only L0H0's OV writes anything (the previous-token block): the others have no effect at all
    prev = constructed.EXPECTED["prev_token"]
    assert exact.kl["zero"][prev] > 1e-6
    for name in ("duplicate_token", "induction", "positional"):
        for kind in KINDS:
            assert exact.kl[kind][constructed.EXPECTED[name]] < 1e-9
            assert exact.metric[kind][constructed.EXPECTED[name]] == pytest.approx(runs.clean_metric, abs=1e-6)


@pytest.mark.unit
def test_attribution_patching_matches_transformer_lens_and_correlates(random_bridges):
    """Our batched estimate = TransformerLens' attribution_patch (resample, an index-free metric); both track exact ablation."""
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    bridge = random_bridges["gpt2"]
    base = for_bridge("ioi", bridge, n=3, seed=2)
    target = int(base.labels["io"][0])

    class FixedToken(Task):  # the logit of one fixed token: the same metric for every prompt
        def metric(self, logits):
            return logits[..., target].float().mean(-1)

        def correct(self, logits):
            return (logits.argmax(-1) == target).float().mean(-1)

    task = FixedToken(name="fixed", title="fixed", clean=base.clean, corrupted=base.corrupted, positions=base.positions)
    runs = A.prepare(bridge, task)
    ours, _ = A.attribution_estimates(bridge, runs, ["resample"])
    # TL's convention is denoising (gradient on its 'corrupt' run): give it our clean prompts as 'corrupt'
    res = attribution_patch(bridge, task.corrupted, task.clean, lambda logits: logits[0, -1, target])
    theirs = np.zeros_like(ours["resample"])
    for node, score in res.node_scores.items():
        if node.kind == "attn_head_out":
            theirs[node.layer, node.head] += score
    np.testing.assert_allclose(ours["resample"], theirs, atol=1e-4, rtol=1e-3)
    engine = A.ExactEngine(bridge, runs)
    exact = engine.sweep(["mean", "resample"])
    est, _ = A.attribution_estimates(bridge, runs, ["mean", "resample"])
    for k in ("mean", "resample"):
        assert A.pearson(est[k], exact.metric[k] - runs.clean_metric) > 0.9


@pytest.mark.unit
def test_own_dla_equals_transformer_lens_dla(random_bridges):
    """The direction-based DLA (greater-than, induction) is TransformerLens' DLA where both apply (IOI)."""
    for arch, bridge in random_bridges.items():
        task = for_bridge("ioi", bridge, n=4, seed=0)
        runs = A.prepare(bridge, task)
        via_tl = A.head_dla(bridge, runs)
        task.dla_tokens = lambda: None  # force the direction path
        own = A.head_dla(bridge, runs)
        np.testing.assert_allclose(own, via_tl, atol=1e-5, rtol=1e-4, err_msg=arch)


@pytest.mark.unit
def test_family_outputs_and_options(random_bridges):
    """The family's outputs: fractions lost, KL fractions, DLA; zero ablation on request; attribution method; not applicable."""
    bridge = random_bridges["llama"]
    task = for_bridge("ioi", bridge, n=4, seed=0)
    score = score_task(bridge, task, ["mean", "resample", "zero"], force=True)
    runs = score.runs
    out = score.outputs
    assert set(out) == {f"ioi_{s}" for s in ("mean_ablation", "resample_ablation", "zero_ablation", "mean_ablation_kl",
                                              "resample_ablation_kl", "zero_ablation_kl", "dla")}
    l, h = 1, 2
    m_abl = out["ioi_zero_ablation"].details[(l, h)]["metric_ablated"]
    assert out["ioi_zero_ablation"].values[l, h] == pytest.approx((runs.clean_metric - m_abl) / runs.gap, rel=1e-4)
    assert out["ioi_mean_ablation_kl"].values[l, h] == pytest.approx(score.exact.kl["mean"][l, h] / runs.kl_corrupted, rel=1e-6)
    s = out["ioi_mean_ablation"].setup
    assert {"accuracy", "clean_metric", "corrupted_metric", "kl_corrupted", "attribution_vs_exact_pearson", "engine"} <= set(s)
    # not forced: a random model does not do IOI, and says so
    plain = score_task(bridge, task, ["mean", "resample"])
    assert all(not o.applicable and ("does not do the task" in o.reason or "corruption" in o.reason) for o in plain.outputs.values())
    # zero not requested: its outputs say how to get them
    two = score_task(bridge, task, ["mean", "resample"], force=True)
    assert not two.outputs["ioi_zero_ablation"].applicable and "ablation=zero" in two.outputs["ioi_zero_ablation"].reason
    # method=attribution: estimates for every head, exact for a sample, KL not estimated
    att = score_task(bridge, task, ["mean", "resample"], method="attribution", force=True)
    assert np.isfinite(att.outputs["ioi_mean_ablation"].values).all() and not att.outputs["ioi_mean_ablation_kl"].applicable
    assert att.setup["attribution_checked_heads"] == 3 * 2 and att.setup["attribution_vs_exact_pearson"]["mean"] is not None


@pytest.mark.unit
def test_engine_falls_back_when_the_replay_check_fails(random_bridges, monkeypatch):
    bridge = random_bridges["gpt2"]
    task = for_bridge("sequence", bridge, n=3, seed=0)
    monkeypatch.setattr(A.ExactEngine, "_check", lambda self, got: setattr(self, "verified", 1.0) or 1.0)
    score = score_task(bridge, task, ["mean", "resample"], force=True)
    assert "naive" in score.setup["engine"]["engine"]

    def broken(self, got):
        raise RuntimeError("shapes do not match")

    monkeypatch.setattr(A.ExactEngine, "_check", broken)
    raised = score_task(bridge, task, ["mean", "resample"], force=True)
    assert "naive" in raised.setup["engine"]["engine"] and "shapes do not match" in raised.setup["engine"]["engine"]
    monkeypatch.undo()
    again = score_task(bridge, task, ["mean", "resample"], force=True)
    np.testing.assert_allclose(score.outputs["sequence_mean_ablation"].values, again.outputs["sequence_mean_ablation"].values, atol=TOL)


@pytest.mark.unit
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_replay_check_catches_a_broken_engine(random_bridges, monkeypatch, arch):
    """verify() compares with the model's own patched forward pass: an engine that drops the ablation, or
    that feeds the wrong rows' block arguments to a batch of several ablations, must fail it."""
    bridge = random_bridges[arch]
    runs = A.prepare(bridge, for_bridge("ioi", bridge, n=4, seed=0))
    assert A.ExactEngine(bridge, runs).verify() < TOL
    # prepare patches the check copies inside its own batched forward pass; a separate hooked pass gives the same
    separate = A.patched_logits(bridge, runs, [[c] for c in A.check_ablations(int(bridge.cfg.n_layers), int(bridge.cfg.n_heads))])
    assert runs.check_logits.shape == separate.shape and (runs.check_logits - separate).abs().max() < TOL
    assert (runs.check_logits - runs.clean_logits.repeat(3, 1, 1)).abs().max() > 1e-3  # and they are ablated
    with monkeypatch.context() as m:  # the ablation's change of the attention output is lost
        m.setattr(A.ExactEngine, "_attn_delta", lambda self, layer, jobs, repl: torch.zeros(len(jobs) * self.N, self.S, int(bridge.cfg.d_model)))
        assert A.ExactEngine(bridge, runs).verify() > 1e-3
    with monkeypatch.context() as m:  # in a batch of several ablations, rows get another prompt's residual
        orig = A.ExactEngine._block

        def shuffled(self, layer, x, attn_delta=None):
            return orig(self, layer, x.roll(1, 0) if x.shape[0] > self.N else x, attn_delta)

        m.setattr(A.ExactEngine, "_block", shuffled)
        assert A.ExactEngine(bridge, runs).verify() > 1e-3


@pytest.mark.unit
def test_runner_stores_task_families(constructed_bridge):
    """Through compute_scores, as wiki build calls it; the task families bring their example prompts."""
    res = compute_scores(constructed_bridge, select(["ioi", "induction_task"]), ctx=RunContext(seed=0, options=BuildOptions(ablation=("mean", "resample", "zero"))))
    assert len(res.outputs) == 14 and all(not o.applicable and o.reason for o in res.outputs.values())
    assert [e["example"] for e in res.examples] == ["repeated random tokens", "Induction task"]
    assert len(res.examples[1]["tokens"]) == 1 + 2 * 8


@pytest.mark.integration
@pytest.mark.parametrize("model", ZOO_NAMES)
def test_top_heads_carry_the_task_on_the_zoo(model):
    """Ablating the 3 heads the wiki ranks highest removes at least half of the task; 3 random heads remove far less.

    A (model, task) pair is checked when the model does the task and its heads carry it at all
    (ablating every head removes at least half); other pairs are printed. A member with no pair to check fails.
    """
    from wiki_builder.models.resolve import resolve

    embedded_dir(model)  # a missing embedded model is a failure, never a skip
    torch.set_num_threads(1)
    bridge = load_model(resolve(model), device="cpu").bridge
    L, H = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    everyone = [(l, h) for l in range(L) for h in range(H)]
    checked, skipped = [], []
    for name in ("ioi", "greater_than", "sequence", "induction_task"):
        score = score_task(bridge, for_bridge(name, bridge, n=32, seed=0), ["mean", "resample"])
        out = score.outputs[f"{name}_mean_ablation"]
        if not out.applicable:
            skipped.append(f"{name}: {out.reason[:90]}")
            continue
        runs = score.runs
        lost = lambda heads, runs=runs: (runs.clean_metric - A.ablate_heads(bridge, runs, heads, "mean")[0]) / runs.gap  # noqa: E731
        if lost(everyone) < 0.5:
            skipped.append(f"{name}: ablating all {L * H} heads removes {lost(everyone):.2f} of the metric (done outside the heads)")
            continue
        v = out.values
        top = [tuple(int(x) for x in np.unravel_index(i, v.shape)) for i in np.argsort(-v.ravel())[:3]]
        rest = [x for x in everyone if x not in top]
        rng = random.Random(0)
        rand = float(np.mean([lost(rng.sample(rest, 3)) for _ in range(5)]))
        top_lost = lost(top)
        assert top_lost >= 0.5, (name, top, top_lost)
        assert rand < 0.5 * top_lost, (name, top_lost, rand)
        checked.append(name)
    print(f"{model}: validated {checked}; not validated: {skipped}")
    assert checked, f"{model}: no task to validate; " + "; ".join(skipped)


@pytest.mark.integration
def test_wiki_bench_quick():
    proc = run_wiki("bench", "--quick", "--prompts", "2", timeout=300)
    out = proc.stdout
    assert "ratio:" in out and "agreement: max |diff|" in out and "-> OK" in out, out
