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
    """OPT fails two weights families (a row says which and why), GPT-2 is covered, audio is refused, legacy has no stand-in."""
    import json

    from support import run_wiki

    archs = ["GPT2LMHeadModel", "OPTForCausalLM", "HubertModel", "TransformerLens-format checkpoint"]
    proc = run_wiki("coverage", "--arch", ",".join(archs), "--format", "json", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    rows = {r["architecture"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["GPT2LMHeadModel"]["status"] == "covered" and rows["GPT2LMHeadModel"]["engine"] == "exact"
    assert set(rows["GPT2LMHeadModel"]["computed"]) >= {"induction", "prev_token", "copy_score"}
    assert rows["OPTForCausalLM"]["status"] in ("covered", "partial") and "induction" in rows["OPTForCausalLM"]["computed"]
    assert rows["HubertModel"]["status"] == "refused" and "audio" in rows["HubertModel"]["reason"]
    assert rows["TransformerLens-format checkpoint"]["status"] == "no stand-in"
