"""The README's two recipes, "Add a metric" and "Add a task", followed step by step with a throwaway metric and task.

Each test writes the recipe's module (the same code as the README shows), wires it in the way the recipe says,
runs the real build on the hand-built model from tests/support/constructed.py, and reads the result back from the
DuckDB database the build wrote. Keep the two in step: a change to a recipe is a change here.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from wiki_builder import families
from wiki_builder.build import build_models
from wiki_builder.models.load import load_model
from wiki_builder.models.resolve import resolve_many
from wiki_builder.scores.base import BuildOptions, RunContext
from wiki_builder.scores.probe import ProbeConfig, build_probe
from wiki_builder.scores.runner import compute_scores
from wiki_builder.store.db import fetch
from wiki_builder.workspace import open_workspace

# --- "Add a metric": the module of the README's recipe ---------------------------------------------------------

FIRST_TOKEN_MODULE = '''\
"""First-token score: mean attention from each token to the first one (BOS when the model uses one)."""

from wiki_builder.scores.base import AttentionMetric


def first_token(pattern, probe):
    """pattern: one layer's attention [batch, head, query, key] on the shared probe -> one number per head."""
    import torch

    b, q, _ = (torch.as_tensor(a, device=pattern.device) for a in probe.stripe("previous"))  # every scored query
    return pattern[b, :, q, 0].float().mean(dim=0)


METRIC = AttentionMetric(
    id="first_token",
    version="1",
    title="First token",
    description="How much a head attends to the first token of the sequence (an attention sink).",
    formula="mean over sequences b and queries q >= 1 of A[b, q, 0]",
    compute=first_token,
)
'''

# --- "Add a task": the module and the table row of the README's recipe ------------------------------------------

REPEAT_LAST_MODULE = '''\
"""Repeat the last token: after four random tokens 'a b c d' the model should say 'd' again (a toy task)."""

import numpy as np
import torch

from wiki_builder.scores.probe import token_pool
from wiki_builder.tasks.common import Task, gather_last, not_expressible, with_bos


class RepeatLastTask(Task):
    def metric(self, logits):  # [..., N, P, V] -> [..., N]
        return (gather_last(logits, self.labels["answer"]) - gather_last(logits, self.labels["other"])).mean(-1)

    def correct(self, logits):  # [N, P, V] -> [N]
        return (logits.argmax(-1) == self.labels["answer"][:, None]).float().mean(-1)

    def direction(self, W_U):  # [d_model, V] -> [N, P, d_model]
        return (W_U[:, self.labels["answer"]] - W_U[:, self.labels["other"]]).T[:, None, :]


def build(tokenizer, n=32, seed=0, bos=None, n_ctx=1024, d_vocab=None):
    title = "Repeat the last token"
    setup = {"task": "repeat_last", "seed": seed, "corruption": "the last token replaced by a fifth one"}
    try:
        pool = token_pool(tokenizer, int(d_vocab or len(tokenizer)))  # ordinary tokens, as the shared probe uses
    except ValueError as exc:
        return not_expressible(RepeatLastTask, "repeat_last", title, str(exc), setup)
    rng = np.random.default_rng(seed)
    words = [rng.choice(pool, size=5, replace=False).tolist() for _ in range(n)]
    clean = torch.tensor([with_bos(w[:4], bos) for w in words])
    corrupted = torch.tensor([with_bos(w[:3] + w[4:], bos) for w in words])
    return RepeatLastTask(
        name="repeat_last", title=title, clean=clean, corrupted=corrupted,
        positions=torch.tensor([clean.shape[1] - 1]),  # scored: the last position
        labels={"answer": clean[:, -1], "other": clean[:, -4]}, chance=1 / len(pool), setup=setup,
        metric_formula="logit(last token) - logit(first token) at the last position",
        accuracy_definition="fraction of prompts whose top prediction is the last token (chance 1/|pool|)",
    )
'''


def repeat_last_row(builder: str):
    from wiki_builder.tasks.table import TaskRow

    return TaskRow(
        name="repeat_last",
        builder=builder,
        title="Repeat the last token",
        label="repeating the last token",
        description="After four random tokens the model should say the last one again.",
        formula="M = logit(last token) - logit(first token); value = (M_clean - M_ablated) / (M_clean - M_corrupted)",
        reference="a toy task",
        details="Four distinct tokens from the shared probe's pool after BOS; corruption: the last one replaced by a fifth. ",
        higher_is="more of the repeating depends on the head",
    )


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks, dedented (the task recipe's blocks sit inside a numbered list)."""
    text = README.read_text(encoding="utf-8")
    return [textwrap.dedent(m.group(2)) for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.DOTALL | re.MULTILINE)]


def readme_block(code: str) -> str:
    """The README block that holds ``code`` (line for line, after its path comment); fails when the recipe drifted."""
    for block in readme_python_blocks():
        if code.strip() in block:
            return block
    raise AssertionError(f"The README's recipe no longer shows this code; update the recipe and tests/test_recipes.py together:\n{code}")


def _values(data: Path, model: str, metric: str) -> np.ndarray:
    _, rows = fetch(data, "SELECT layer, head, value FROM scores WHERE model = ? AND metric = ? ORDER BY layer, head", [model, metric])
    out = np.full((max(r[0] for r in rows) + 1, max(r[1] for r in rows) + 1), np.nan)
    for layer, head, value in rows:
        out[layer, head] = value
    return out


@pytest.mark.integration
def test_add_a_metric(tmp_path, monkeypatch, constructed_dir):
    readme_block(FIRST_TOKEN_MODULE)
    # Step 1: one module that defines METRIC = AttentionMetric(...).
    (tmp_path / "first_token.py").write_text(FIRST_TOKEN_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("first_token")
    # Step 2 (as a plugin): register it; built in, it would be one line in families.SCORES.
    families.register(module.METRIC)
    try:
        assert families.get("first_token") is module.METRIC
        assert families.outputs()["first_token"] == (module.METRIC, "First token")

        # Step 3: build it (`wiki build --metrics first_token` once it is in SCORES) and query it.
        ws = open_workspace(tmp_path / "wiki")
        specs = resolve_many([str(constructed_dir)])
        report = build_models(specs, ws, device="cpu", metric_ids=["first_token"])
        assert [o.error for o in report.outcomes] == [""]
        model = specs[0].name

        # The runner computes it from every layer's pattern on the shared probe ...
        bridge = load_model(specs[0], device="cpu").bridge
        result = compute_scores(bridge, families.select(["first_token"]), ProbeConfig(seed=0), ctx=RunContext(examples=False))
        values = result.values["first_token"]
        assert values.shape == (2, 2) and np.all((values >= 0) & (values <= 1))
        # ... which is the module's function applied to each layer's pattern, read here with a cache instead of hooks.
        probe = build_probe(bridge, ProbeConfig(seed=0))
        _, cache = bridge.run_with_cache(probe.tokens)
        by_hand = np.stack([module.first_token(cache[f"blocks.{layer}.attn.hook_pattern"], probe).double().numpy() for layer in range(2)])
        np.testing.assert_allclose(values, by_hand, atol=1e-6)

        # The build stored those numbers: the scores table, the head_scores view, provenance, and the metrics table.
        np.testing.assert_allclose(_values(ws.data, model, "first_token"), values, atol=1e-6)
        _, rows = fetch(ws.data, "SELECT metric, family, kind, version, title, formula FROM metrics WHERE metric = 'first_token'")
        assert rows == [("first_token", "first_token", "attention", "1", "First token", module.METRIC.formula)]
        _, rows = fetch(ws.data, "SELECT count(first_token) FROM head_scores WHERE model = ?", [model])
        assert rows == [(4,)]
        _, rows = fetch(ws.data, "SELECT status, metric_version FROM provenance WHERE model = ? AND metric = 'first_token'", [model])
        assert rows == [("ok", "1")]
    finally:
        families.unregister("first_token")
        sys.modules.pop("first_token", None)
    assert "first_token" not in families.registry()


@pytest.mark.integration
def test_add_a_task(tmp_path, monkeypatch, constructed_dir):
    import wiki_builder.tasks.table
    from wiki_builder.tasks.prompts import build_task
    from wiki_builder.tasks.table import TASKS

    readme_block(REPEAT_LAST_MODULE)
    # The README's row, as written there, is this test's row with its builder in the package.
    row_block = next(b for b in readme_python_blocks() if b.lstrip().startswith("TaskRow("))
    readme_row = eval(row_block.strip().rstrip(","), {"TaskRow": wiki_builder.tasks.table.TaskRow})
    assert readme_row == repeat_last_row("repeat_last")

    # Step 1: one prompt-builder module with build(tokenizer, n, seed, bos, n_ctx, d_vocab) -> Task. In the package it
    # would be wiki_builder/tasks/repeat_last.py (builder="repeat_last"); here it lives outside it, named by full path.
    package = tmp_path / "recipe_tasks"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "repeat_last.py").write_text(REPEAT_LAST_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Step 2: one TaskRow in tasks/table.py's TASKS (here: the table extended for this test).
    row = dataclasses.replace(readme_row, builder="recipe_tasks.repeat_last")
    monkeypatch.setattr(wiki_builder.tasks.table, "TASKS", TASKS + (row,))
    families.registry.cache_clear()
    try:
        # It is a score family now, with the outputs every task has.
        family = families.get("repeat_last")
        assert family.kind == "task" and family.title == "Repeat the last token"
        assert set(family.output_ids) == {f"repeat_last_{s}" for s in ("mean_ablation", "resample_ablation", "zero_ablation",
                                                                     "mean_ablation_kl", "resample_ablation_kl", "zero_ablation_kl", "dla")}

        # Its prompts come from the row's builder, on the model's own tokenizer.
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(constructed_dir))
        task = build_task("repeat_last", tokenizer, n=8, seed=0, bos=tokenizer.bos_token_id, n_ctx=104, d_vocab=64)
        assert task.applicable and task.name == "repeat_last"
        assert tuple(task.clean.shape) == tuple(task.corrupted.shape) == (8, 5)
        assert (task.clean[:, 0] == tokenizer.bos_token_id).all()
        assert (task.clean[:, :4] == task.corrupted[:, :4]).all() and (task.clean[:, 4] != task.corrupted[:, 4]).all()

        # Step 3: `wiki build` scores it for every model. The hand-built model repeats its current token, so it does the task.
        ws = open_workspace(tmp_path / "wiki")
        specs = resolve_many([str(constructed_dir)])
        report = build_models(specs, ws, device="cpu", metric_ids=["repeat_last"], options=BuildOptions(task_prompts=8))
        assert [o.error for o in report.outcomes] == [""]
        model = specs[0].name
        _, rows = fetch(ws.data, "SELECT metric, status, reason FROM provenance WHERE model = ? AND family = 'repeat_last'", [model])
        status = {metric: (s, reason) for metric, s, reason in rows}
        assert set(status) == set(family.output_ids)
        for oid in ("repeat_last_mean_ablation", "repeat_last_resample_ablation", "repeat_last_mean_ablation_kl", "repeat_last_dla"):
            assert status[oid] == ("ok", ""), status[oid]
            assert np.isfinite(_values(ws.data, model, oid)).all() and _values(ws.data, model, oid).shape == (2, 2)
        assert status["repeat_last_zero_ablation"][0] == "not_applicable"  # zero ablation only on request
        _, rows = fetch(ws.data, "SELECT kind, family FROM metrics WHERE metric = 'repeat_last_mean_ablation'")
        assert rows == [("task", "repeat_last")]
    finally:
        monkeypatch.undo()
        families.registry.cache_clear()
        for name in ("recipe_tasks.repeat_last", "recipe_tasks"):
            sys.modules.pop(name, None)
    assert "repeat_last" not in families.registry()
