"""The five attention scores HeadVis, Neuronpedia and the attention-sink work report, each on hand-built heads
whose answer is known: self, sink, uniform and previous-token heads (support.constructed_attn) and the induction
head of support.constructed."""

from __future__ import annotations

import numpy as np
import pytest

from support import constructed, constructed_attn
from wiki_builder.families import select
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec
from wiki_builder.scores.probe import PREFIX_COPIES, RepeatConfig, build_probe, build_repeat_probe
from wiki_builder.scores.runner import compute_scores

NEW = ["attention_entropy", "self_attention", "bos_attention", "mean_attention_distance", "prefix_matching"]
H = constructed_attn.HEADS


@pytest.fixture(scope="module")
def attn_bridge(tmp_path_factory):
    path = constructed_attn.build(tmp_path_factory.mktemp("models") / "constructed_attn")
    return load_model(ModelSpec("constructed-attn", "local", str(path)), device="cpu").bridge


@pytest.fixture(scope="module")
def attn_scores(attn_bridge):
    result = compute_scores(attn_bridge, select(NEW))
    assert not result.failed
    return {k: v[0] for k, v in result.values.items()}


@pytest.fixture(scope="module")
def queries(attn_bridge):
    """The positions of the shared probe's scored queries (1 to the end of X X, every sequence)."""
    return build_probe(attn_bridge).stripe("previous")[1].astype(float)


@pytest.mark.unit
def test_entropy_is_zero_for_sharp_heads_and_one_for_uniform(attn_scores):
    e = attn_scores["attention_entropy"]
    assert abs(e[H["uniform"]] - 1.0) < 1e-4, e
    for head in ("self", "sink", "previous"):
        assert e[H[head]] < 0.01, (head, e)


@pytest.mark.unit
def test_self_attention(attn_scores, queries):
    s = attn_scores["self_attention"]
    assert s[H["self"]] > 0.99 and s[H["sink"]] < 0.01 and s[H["previous"]] < 0.01, s
    assert abs(s[H["uniform"]] - np.mean(1 / (queries + 1))) < 1e-4  # uniform over q + 1 keys, one of them itself


@pytest.mark.unit
def test_bos_attention(attn_scores, queries):
    b = attn_scores["bos_attention"]
    assert b[H["sink"]] > 0.99 and b[H["self"]] < 0.01, b
    assert abs(b[H["uniform"]] - np.mean(1 / (queries + 1))) < 1e-4
    assert abs(b[H["previous"]] - np.mean(queries == 1)) < 1e-3  # only query 1's previous token is BOS


@pytest.mark.unit
def test_mean_attention_distance(attn_scores, queries):
    d = attn_scores["mean_attention_distance"]
    assert d[H["self"]] < 0.01 and abs(d[H["previous"]] - 1.0) < 0.01, d
    assert abs(d[H["sink"]] - queries.mean()) < 0.01  # all the way back to position 0
    assert abs(d[H["uniform"]] - np.mean(queries / 2)) < 1e-3


@pytest.mark.unit
def test_prefix_matching_on_the_induction_head(constructed_dir):
    bridge = load_model(ModelSpec("constructed", "local", str(constructed_dir)), device="cpu").bridge
    probe = build_repeat_probe(bridge, RepeatConfig())
    tokens = probe.tokens.numpy()
    for b, t in enumerate(probe.periods.tolist()):  # BOS + copies of X, and X has no repeats of its own
        x = tokens[b, 1:1 + t]
        assert len(set(x.tolist())) == t
        assert (tokens[b, 1:1 + PREFIX_COPIES * t] == np.tile(x, PREFIX_COPIES)).all()
    # every query of copies 2..n has one cell per earlier copy: 1 + 2 + 3 cells for 4 copies
    assert len(probe.stripe("prefix")[0]) == len(probe.stripe("prefix_queries")[0]) * sum(range(PREFIX_COPIES)) / (PREFIX_COPIES - 1)
    grid = compute_scores(bridge, select(["prefix_matching"])).values["prefix_matching"]
    layer, head = constructed.EXPECTED["induction"]
    assert grid[layer, head] > 0.99, grid
    assert np.delete(grid.ravel(), layer * grid.shape[1] + head).max() < 0.1, grid


@pytest.mark.unit
def test_new_scores_leave_the_shared_probe_scores_bit_identical(constructed_dir):
    bridge = load_model(ModelSpec("constructed", "local", str(constructed_dir)), device="cpu").bridge
    old = ["induction", "prev_token", "duplicate_token"]
    alone = compute_scores(bridge, select(old)).values
    together = compute_scores(bridge, select(old + NEW)).values
    for mid in old:
        assert np.array_equal(alone[mid], together[mid]), mid
    assert set(NEW) <= set(together)
