"""Each attention score on a model whose answer is known by construction, and on the trained toy model."""

from __future__ import annotations

import numpy as np
import pytest

from support import constructed
from wiki_builder.families import registry, select
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec, resolve
from wiki_builder.scores.probe import ProbeConfig, build_probe
from wiki_builder.scores.runner import compute_scores


@pytest.fixture(scope="module")
def bridge(constructed_dir):
    return load_model(ModelSpec("constructed", "local", str(constructed_dir)), device="cpu").bridge


@pytest.fixture(scope="module")
def scores(bridge):
    return compute_scores(bridge, select()).values


@pytest.mark.unit
@pytest.mark.parametrize("metric", ["prev_token", "duplicate_token", "induction"])
def test_constructed_head_scores_its_metric(scores, metric):
    grid = scores[metric]
    layer, head = constructed.EXPECTED[metric]
    assert grid[layer, head] > 0.99, grid
    others = np.delete(grid.ravel(), layer * grid.shape[1] + head)
    assert others.max() < 0.1, grid


@pytest.mark.unit
def test_fixed_offset_head_is_not_an_induction_head(bridge, scores):
    """The pitfall in the reference: with one period T, a head at offset T-1 looks like induction."""
    layer, head = constructed.EXPECTED["positional"]
    fixed = compute_scores(bridge, select(["induction"]), ProbeConfig(t_min=constructed.OFFSET + 1, t_max=constructed.OFFSET + 1)).values["induction"]
    assert fixed[layer, head] > 0.99  # fooled by a fixed period
    assert scores["induction"][layer, head] < 0.1  # not fooled by varied periods


@pytest.mark.unit
def test_probe_varies_period_and_avoids_special_tokens(bridge):
    probe = build_probe(bridge)
    assert len(set(probe.periods.tolist())) == len(probe.periods) > 10
    tokens = probe.tokens.numpy()
    assert (tokens[:, 0] == bridge.tokenizer.bos_token_id).all()
    assert not np.isin(tokens[:, 1:], bridge.tokenizer.all_special_ids).any()
    for b, t in enumerate(probe.periods):
        assert (tokens[b, 1:1 + t] == tokens[b, 1 + t:1 + 2 * t]).all()
    again = build_probe(bridge)
    assert (again.tokens == probe.tokens).all()


@pytest.mark.unit
def test_agrees_with_transformer_lens_detect_head(bridge):
    """detect_head's 'mul' measure agrees where the definitions coincide (previous and duplicate token)."""
    from transformer_lens.head_detector import detect_head

    ours = compute_scores(bridge, select()).values
    tokens = build_probe(bridge, ProbeConfig(batch=4, t_min=30, t_max=30)).tokens
    texts = [" ".join(bridge.tokenizer.convert_ids_to_tokens(row[1:].tolist())) for row in tokens]
    prev = detect_head(bridge, texts, "previous_token_head", error_measure="mul").cpu().numpy()
    dup = detect_head(bridge, texts, "duplicate_token_head", error_measure="mul").cpu().numpy()
    assert np.unravel_index(prev.argmax(), prev.shape) == constructed.EXPECTED["prev_token"] == np.unravel_index(ours["prev_token"].argmax(), prev.shape)
    assert np.unravel_index(dup.argmax(), dup.shape) == constructed.EXPECTED["duplicate_token"] == np.unravel_index(ours["duplicate_token"].argmax(), dup.shape)
    assert prev.max() > 0.9 and abs(prev.max() - ours["prev_token"].max()) < 0.1


@pytest.mark.unit
def test_every_metric_module_is_described():
    metrics = registry()
    assert {"induction", "prev_token", "duplicate_token"} <= set(metrics)
    for m in metrics.values():
        assert m.id.replace("_", "").isalnum() and m.id == m.id.lower()
        assert m.version and len(m.description) > 40 and m.formula and m.reference


@pytest.mark.integration
def test_toy_gpt2_grows_induction_after_previous_token():
    """The issue's acceptance check on the embedded GPT-2."""
    spec = resolve("toy-gpt2")
    values = compute_scores(load_model(spec, device="cpu").bridge, select()).values
    ind, prev = values["induction"], values["prev_token"]
    il, ih = np.unravel_index(ind.argmax(), ind.shape)
    pl, ph = np.unravel_index(prev.argmax(), prev.shape)
    assert ind[il, ih] > 0.5
    assert il > pl
