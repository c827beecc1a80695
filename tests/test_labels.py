"""Labels say what sets a head apart in its model: an absolute floor and a margin over the model's median head.
Checked on hand-built grids, on the hand-built OV heads, and on the embedded zoo, whose trained heads are known."""

from __future__ import annotations

import numpy as np
import pytest

from support import ZOO_NAMES, constructed_ov
from wiki_builder.families import outputs, select
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import ModelSpec
from wiki_builder.scores.runner import compute_scores
from wiki_builder.site.data import model_stats
from wiki_builder.site.labels import model_labels


def labels_of(grids: dict[str, np.ndarray]) -> dict[tuple[int, int], dict[str, dict]]:
    """(layer, head) -> label name -> label, as the site computes them."""
    meta = {oid: {"title": title, "family": fam.id} for oid, (fam, title) in outputs().items()}
    st = model_stats(grids)
    return {k: {lab["name"]: lab for lab in v} for k, v in model_labels(st.grids, st.rank, st.bottom, meta).items()}


def heads_with(labels: dict, name: str) -> set[tuple[int, int]]:
    return {k for k, v in labels.items() if name in v}


@pytest.mark.unit
def test_a_label_needs_the_floor_and_to_stand_out():
    one = np.array([[0.05, 0.9, 0.04, 0.06], [0.05, 0.03, 0.02, 0.07]])
    assert heads_with(labels_of({"prev_token": one}), "previous-token head") == {(0, 1)}
    every = np.full((2, 4), 0.95) + np.linspace(0, 0.04, 8).reshape(2, 4)  # all copy: nothing sets one apart
    assert heads_with(labels_of({"ov_copying": every}), "copying head (OV)") == set()
    half = np.array([[0.01, 0.0, 0.02, 0.0], [0.88, 0.9, 0.87, 0.89]])  # half the heads: the upper half stands out
    assert heads_with(labels_of({"induction": half}), "induction head") == {(1, 0), (1, 1), (1, 2), (1, 3)}
    weak = np.array([[0.3, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # stands out, but under the floor
    assert heads_with(labels_of({"induction": weak}), "induction head") == set()
    lab = labels_of({"prev_token": one})[(0, 1)]["previous-token head"]["items"][0]
    assert lab["rank"] == 1 and lab["threshold"] == 0.5 and abs(lab["median"] - 0.05) < 1e-9
    assert lab["relative"].startswith("+0.85 over the model's median head (0.05")


@pytest.mark.unit
def test_hand_built_ov_heads_carry_their_labels_only(tmp_path_factory):
    path = constructed_ov.build(tmp_path_factory.mktemp("models") / "constructed-ov-labels")
    bridge = load_model(ModelSpec("constructed-ov", "local", str(path)), device="cpu").bridge
    labels = labels_of(compute_scores(bridge, select(["ov_copying", "successor"])).values)
    E = constructed_ov.EXPECTED
    assert heads_with(labels, "copying head (OV)") == {E["copy"]}
    assert heads_with(labels, "anti-copying head (OV)") == {E["anti_copy"]}
    assert heads_with(labels, "successor head") == {E["successor"]}


@pytest.mark.integration
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_heads_carry_the_labels_of_what_they_were_trained_to_do(name, zoo_scores):
    """Previous-token heads (layer 0) and induction heads (layer 1) carry their labels and no other head does; no
    head is a successor head (the zoo has none); the head whose ablation costs a task most is labelled important
    for it; no label goes to every head (before labels were relative, every toy-gpt2 head was a copying head)."""
    _, result = zoo_scores(name)
    v = result.values
    labels = labels_of(v)
    prev = {tuple(int(x) for x in i) for i in zip(*np.nonzero(v["prev_token"] > 0.5))}
    assert prev and all(l == 0 for l, _ in prev)
    assert heads_with(labels, "previous-token head") == prev
    H = v["induction"].shape[1]
    assert heads_with(labels, "induction head") == {(1, h) for h in range(H)}  # every layer-1 head of the zoo induces
    assert heads_with(labels, "successor head") == set()
    n_heads = v["induction"].size
    for task in ("ioi", "sequence", "greater_than", "induction_task"):
        grid = v.get(f"{task}_mean_ablation")
        if grid is None or grid.max() < 0.5:  # not done by this model's heads: nothing to validate
            continue
        top = np.unravel_index(np.argmax(grid), grid.shape)
        assert any(n.startswith("important for") for n in labels.get(top, {})), (task, top, labels.get(top))
    names = {n for x in labels.values() for n in x}
    assert all(len(heads_with(labels, n)) < n_heads for n in names)  # a label on every head would set none apart
    assert sum(len(x) for x in labels.values()) < 3 * n_heads
