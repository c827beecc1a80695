"""Every architecture TransformerLens supports: per-family failure isolation, tiny stand-ins, the coverage table."""

from __future__ import annotations

import duckdb
import pytest

from wiki_builder import families
from wiki_builder.scores.base import WeightsMetric

FAST_IDS = ["induction", "prev_token"]


def _boom(bridge, ctx):
    raise RuntimeError("this family always fails")


BOOM = WeightsMetric(id="always_fails", version="1", title="Always fails", description="A throwaway family that raises.",
                     compute=_boom)


@pytest.fixture
def boom_family():
    families.register(BOOM)
    try:
        yield BOOM
    finally:
        families.unregister(BOOM.id)


@pytest.mark.integration
def test_a_failing_family_keeps_the_others(tmp_path, constructed_dir, boom_family):
    from wiki_builder.build import build_models, existing_record, families_done
    from wiki_builder.models.resolve import resolve
    from wiki_builder.workspace import open_workspace

    ws = open_workspace(tmp_path)
    specs = [resolve(str(constructed_dir))]
    report = build_models(specs, ws, device="cpu", metric_ids=[*FAST_IDS, BOOM.id])
    (outcome,) = report.outcomes
    assert not outcome.ok and outcome.partial and "always_fails" in outcome.error  # the build still fails (exit 1)
    record = existing_record(ws, specs[0])
    assert {r["metric"] for r in record.rows} == set(FAST_IDS)  # the other families were stored
    status = {p["metric"]: (p["status"], p["reason"]) for p in record.provenance}
    assert status["always_fails"] == ("failed", "RuntimeError: this family always fails")
    assert families_done(record, 0, "float32") >= set(FAST_IDS) and BOOM.id not in families_done(record, 0, "float32")
    con = duckdb.connect(str(ws.data / "wiki.duckdb"), read_only=True)
    try:
        (run,) = con.execute("SELECT status, families, error FROM runs").fetchall()
        assert con.execute("SELECT count(*) FROM scores WHERE metric = 'induction'").fetchone()[0] > 0
    finally:
        con.close()
    assert run[0] == "partial" and run[1] == ",".join(FAST_IDS) and "always_fails" in run[2]
    # a rerun retries only the failed family
    again = build_models(specs, ws, device="cpu", metric_ids=[*FAST_IDS, BOOM.id])
    con = duckdb.connect(str(ws.data / "wiki.duckdb"), read_only=True)
    try:
        last = con.execute("SELECT status, error FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
    finally:
        con.close()
    # only the failed family was tried, and it failed again: nothing new is written, the stored families stay
    assert not again.outcomes[0].ok and last == ("failed", "this family always fails")
    assert {r["metric"] for r in existing_record(ws, specs[0]).rows} == set(FAST_IDS)
    # the site renders the model with the failed family named
    from wiki_builder.site.render import render_markdown

    render_markdown(ws)
    page = next((ws.root / "site_src").rglob("constructed*.md")).read_text(encoding="utf-8")
    assert "failed: RuntimeError: this family always fails" in page


@pytest.mark.unit
def test_tiny_configs_are_tiny():
    from wiki_builder.models.standins import tiny_architectures, tiny_config

    for arch in tiny_architectures():
        cfg = tiny_config(arch)
        assert cfg.architectures == [arch]
        layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None)
        heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "num_heads", None)
        width = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None)
        assert (layers, heads, width) == (2, 4, 64), arch


@pytest.mark.unit
def test_audio_and_vision_models_are_refused_before_loading(tmp_path):
    import json

    from wiki_builder.models.load import ModelLoadError, load_model
    from wiki_builder.models.registry import modality
    from wiki_builder.models.resolve import ModelSpec

    assert modality("HubertModel")[0] == "audio" and modality("ViTForImageClassification")[0] == "vision"
    assert modality("Gemma3ForConditionalGeneration")[0] == "vision" and modality("LlamaForCausalLM") == ("text", "")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Wav2Vec2ForPreTraining"], "model_type": "wav2vec2"}))
    with pytest.raises(ModelLoadError, match="audio model"):  # no weights in the folder: refused before reading any
        load_model(ModelSpec(name="speech", source="local", location=str(tmp_path)), device="cpu")


@pytest.mark.unit
def test_coverage_architectures_and_table():
    from wiki_builder.benchmarks.coverage import LEGACY, architectures, registry_counts, share
    from wiki_builder.models.coverage_table import markdown

    archs = architectures()
    in_official, in_registry, total = registry_counts()
    assert set(in_official) <= set(archs) and len(archs) == len(set(archs))
    assert {"OPTForCausalLM", "BloomForCausalLM", "FalconForCausalLM", "GraniteForCausalLM", "DeepseekV3ForCausalLM"} <= set(archs)
    assert LEGACY in archs and sum(in_registry.values()) <= total
    rows = [{"architecture": "LlamaForCausalLM", "official_models": 1, "registry_models": in_registry["LlamaForCausalLM"],
             "status": "covered", "computed": ["induction"], "not_applicable": [], "failed": {}, "engine": "exact", "seconds": 1.0,
             "reason": ""}]
    result = {"rows": rows, **share(rows)}
    assert 0 < result["registry_share_covered"] < 1
    assert "| LlamaForCausalLM | 1 |" in markdown(result)


@pytest.mark.integration
def test_wiki_coverage_never_crashes():
    """The CLI, in full: GPT-2 is covered on the exact engine path, audio is refused, an unknown name has no stand-in."""
    import json

    from support import run_wiki

    archs = ["GPT2LMHeadModel", "HubertModel", "NoSuchForCausalLM"]
    proc = run_wiki("coverage", "--arch", ",".join(archs), "--format", "json", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    rows = {r["architecture"]: r for r in result["rows"]}
    assert rows["GPT2LMHeadModel"]["status"] == "covered" and rows["GPT2LMHeadModel"]["engine"] == "exact"
    assert set(rows["GPT2LMHeadModel"]["computed"]) >= {"induction", "prev_token", "copy_score"}
    assert rows["HubertModel"]["status"] == "refused" and "audio" in rows["HubertModel"]["reason"]
    assert rows["NoSuchForCausalLM"]["status"] == "no stand-in"
    # the share counts text models only: audio and vision are refused by design
    assert result["registry_text"] < result["registry_total"]
    assert result["registry_share_covered"] == rows["GPT2LMHeadModel"]["registry_models"] / result["registry_text"]


@pytest.mark.unit
def test_tiny_configs_are_derived_for_registry_architectures():
    """Architectures without a hand-written entry get their config class from transformers' auto mappings."""
    from wiki_builder.models.standins import TINY_MODEL_TYPES, tiny_class, tiny_config, tiny_model_type

    assert "CohereForCausalLM" not in TINY_MODEL_TYPES and "XGLMForCausalLM" not in TINY_MODEL_TYPES
    assert tiny_model_type("MPTForCausalLM") == "mpt" and tiny_class("MPTForCausalLM") == "MptForCausalLM"
    assert tiny_model_type("CohereForCausalLM") == "cohere" and tiny_model_type("NoSuchForCausalLM") is None
    for arch, sizes in {"CohereForCausalLM": ("num_hidden_layers", "num_attention_heads", "hidden_size"),
                        "XGLMForCausalLM": ("num_layers", "attention_heads", "d_model")}.items():
        cfg = tiny_config(arch).to_dict()
        assert tuple(cfg[k] for k in sizes) == (2, 4, 64), arch
    with pytest.raises(KeyError, match="no model class"):
        tiny_config("NoSuchForCausalLM")


@pytest.mark.integration
@pytest.mark.parametrize("arch", ["OPTForCausalLM", "BloomForCausalLM", "MixtralForCausalLM"])
def test_layer0_mlp_readout_is_the_models_own_block(tmp_path, arch):
    """W_E[t] + MLP0(ln2(.)) equals block 0 run on the lone token with attention 0 ablated (OPT: no MLP module,
    BLOOM: embedding norm and a residual argument, Mixtral: a mixture of experts returning router logits)."""
    import torch

    from wiki_builder.models.load import load_model
    from wiki_builder.models.resolve import ModelSpec
    from wiki_builder.models.standins import build_tiny
    from wiki_builder.scores.weights import ov

    folder = build_tiny(arch, tmp_path / arch)
    bridge = load_model(ModelSpec(name=arch, source="local", location=str(folder)), device="cpu").bridge
    ids = [11, 464, 3290]
    seen = {}
    hooks = [("blocks.0.hook_attn_out", lambda t, hook: t * 0),
             ("blocks.0.hook_resid_post", lambda t, hook: seen.setdefault("post", t.detach().clone()))]
    if "hook_pos_embed" in bridge.hook_dict:
        hooks.append(("hook_pos_embed", lambda t, hook: t * 0))
    with torch.no_grad():
        bridge.run_with_hooks(torch.tensor(ids)[:, None], fwd_hooks=hooks, return_type=None)
        mine = ov.effective_embedding(bridge, ids)
    assert mine.shape == (3, 64)
    torch.testing.assert_close(mine, seen["post"][:, 0].float(), atol=1e-5, rtol=1e-5)


@pytest.mark.integration
def test_hybrid_and_encoder_decoder_heads(tmp_path):
    """Qwen3.5 (attention in layer 1 only) keeps the model's layer numbers; T5's encoder and decoder self-attention
    heads are numbered encoder first and labelled; the tasks say why they do not apply to T5."""
    import os

    from wiki_builder.build import score_model
    from wiki_builder.models.resolve import ModelSpec
    from wiki_builder.models.standins import build_tiny
    from wiki_builder.scores.base import BuildOptions, RunContext
    from wiki_builder.workspace import Workspace

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ws = Workspace(tmp_path / "root")
    ctx = RunContext(seed=0, options=BuildOptions(task_prompts=4), examples=False)
    records = {}
    # ioi on T5 only: it is refused there before any prompt is run
    for arch, fams in (("Qwen3_5ForCausalLM", ["induction", "ov_copying"]), ("T5ForConditionalGeneration", ["induction", "ov_copying", "ioi"])):
        spec = ModelSpec(name=arch, source="local", location=str(build_tiny(arch, tmp_path / arch)))
        records[arch] = score_model(spec, ws, "cpu", "float32", fams, ctx)
    qwen, t5 = records["Qwen3_5ForCausalLM"], records["T5ForConditionalGeneration"]
    assert {r["layer"] for r in qwen.rows} == {1} and {r["metric"] for r in qwen.rows} >= {"induction", "ov_copying"}
    assert "attention in layers 1 of 2" in qwen.model["stacks"]
    assert {r["layer"] for r in t5.rows if r["metric"] == "induction"} == {0, 1, 2, 3} and t5.model["n_layers"] == 4
    assert t5.model["stacks"].startswith("encoder: layers 0-1") and "decoder: layers 2-3" in t5.model["stacks"]
    status = {p.get("family") or p["metric"]: (p["status"], p["reason"]) for p in t5.provenance}
    assert status["ioi"][0] == "not_applicable" and "encoder-decoder" in status["ioi"][1]
    assert status["ov_copying"][0] == "not_applicable"


@pytest.mark.integration
def test_coverage_of_the_official_architectures():
    """CI: every architecture of TransformerLens' official list, on its stand-in, with the quick family set (the
    TransformerLens-format checkpoint through transformer_lens' legacy loader, from an offline cache)."""
    import time

    from wiki_builder.benchmarks.coverage import QUICK_FAMILIES, registry_counts, run_coverage

    in_official, _, _ = registry_counts()
    start = time.perf_counter()
    result = run_coverage(sorted(in_official), quick=True)
    rows = {r["architecture"]: r for r in result["rows"]}
    bad = {a: (r["status"], r["failed"] or r["reason"]) for a, r in rows.items()
           if r["status"] not in ("covered", "refused") and a != "QWenLMHeadModel"}
    assert not bad, bad
    assert rows["QWenLMHeadModel"]["status"] == "no stand-in"  # remote code only: transformers has no class for it
    for arch in ("GPT2LMHeadModel", "OPTForCausalLM", "MixtralForCausalLM", "TransformerLens-format checkpoint"):
        assert set(rows[arch]["computed"]) == set(QUICK_FAMILIES), arch
    assert "copy_score" in rows["BertForMaskedLM"]["not_applicable"] and "induction" in rows["BertForMaskedLM"]["computed"]
    assert rows["HubertModel"]["status"] == "refused"
    print(f"official architectures: {len(rows)} in {time.perf_counter() - start:.0f} s")
