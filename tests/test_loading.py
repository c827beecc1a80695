"""Model resolution and loading: embedded, local directory, offline hub cache, unknown names."""

from __future__ import annotations

import pytest

from support import run_wiki
from wiki_builder.models.load import ModelLoadError, load_model, pick_device
from wiki_builder.models.resolve import ModelNotFound, ModelSpec, embedded_models, resolve, resolve_many


@pytest.mark.unit
def test_aliases_resolve_to_official_hub_names():
    spec = resolve("gpt2-small")
    assert (spec.source, spec.location, spec.name) == ("hub", "gpt2", "gpt2-small")
    assert resolve("GPT2").location == "gpt2"
    assert resolve("gpt2-medium").location == "gpt2-medium"


@pytest.mark.unit
def test_unknown_name_lists_close_matches():
    with pytest.raises(ModelNotFound) as exc:
        resolve("gpt2-smal")
    assert "gpt2-small" in str(exc.value) and "wiki models" in str(exc.value)


@pytest.mark.unit
def test_bad_paths_and_empty_lists_are_explained(tmp_path):
    with pytest.raises(ModelNotFound, match="no config.json"):
        resolve(str(tmp_path))
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve("./no/such/model")
    with pytest.raises(ModelNotFound, match="No model names"):
        resolve_many(" , ")


@pytest.mark.integration
def test_embedded_models_load_through_the_bridge():
    names = embedded_models()
    assert "toy-gpt2" in names
    loaded = load_model(resolve("toy-gpt2"), device="cpu")
    assert loaded.info["n_layers"] >= 2 and loaded.info["n_params"] > 0
    assert loaded.bridge.to_str_tokens("When Mary and John went to the store")[1:3] == ["When", "Mary"]


@pytest.mark.unit
def test_local_directory_loads(constructed_dir):
    spec = resolve(str(constructed_dir))
    assert spec.source == "local" and spec.name == "constructed"
    loaded = load_model(spec, device="cpu", dtype="float32")
    assert loaded.info["n_heads"] == 2 and loaded.device == "cpu"


@pytest.mark.unit
def test_device_and_dtype_are_checked():
    assert pick_device("auto") in ("cpu", "cuda")
    with pytest.raises(ModelLoadError, match="Unknown device"):
        pick_device("tpu")
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        load_model(ModelSpec("x", "local", "/nonexistent"), device="cpu", dtype="float8")


@pytest.mark.integration
def test_hub_name_builds_from_an_offline_cache(tmp_path, hub_cache):
    """The real hub path: `--models gpt2-small` through TransformerLens, served by a local HF cache."""
    proc = run_wiki("build", "--models", "gpt2-small", "--no-site", "--root", str(tmp_path),
                    env={"HF_HOME": str(hub_cache), "HF_HUB_OFFLINE": "1"})
    assert "ok gpt2-small" in proc.stdout
    out = run_wiki("query", "SELECT source, location, n_heads FROM models", "--format", "csv", "--root", str(tmp_path)).stdout
    assert "hub,gpt2,2" in out


@pytest.mark.integration
def test_hub_failure_says_what_to_do(tmp_path):
    proc = run_wiki("build", "--models", "gpt2-medium", "--no-site", "--root", str(tmp_path),
                    env={"HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}, check=False)
    assert proc.returncode != 0
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "hub could not be reached" in text and "local Hugging Face-format directory" in text and "HF_HUB_OFFLINE=1" in text


@pytest.mark.integration
def test_unknown_model_on_the_command_line(tmp_path):
    proc = run_wiki("build", "--models", "gpt2-smal", "--root", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "Did you mean" in proc.stderr and "gpt2-small" in proc.stderr
    assert not (tmp_path / "data").exists()
