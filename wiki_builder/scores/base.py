"""The contracts of a score family: one small type per kind, the run context, and what details mean.

A family is one module that defines ``METRIC``; the built-in ones are listed in
:mod:`wiki_builder.families`. There are three kinds, each with its own ``compute``:

* :class:`AttentionMetric` - ``compute(pattern, probe) -> Tensor[n_heads]`` on one layer's
  attention pattern ``[batch, head, query, key]`` from the shared probe pass. Every attention
  metric reads the same forward pass.
* :class:`WeightsMetric` - ``compute(bridge, ctx) -> {output_id: MetricOutput}`` from the
  model's weights (and at most the first layer's activations).
* :class:`TaskMetric` - ``compute(bridge, ctx) -> {output_id: MetricOutput}``: builds a task's
  prompts from the model's tokenizer and runs ablations; a task the model cannot express returns
  outputs with ``applicable=False`` and a reason. Built from one row of :mod:`wiki_builder.tasks.table`.

A family may store several numbers per head (``outputs``: id -> title); each output id is a row
value of the ``metric`` column. A family declares what its per-head details mean
(``detail_fields``), so the site renders tokens as tokens and numbers as numbers without guessing.

This module imports neither torch nor transformer_lens: the site and the CLI read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from .probe import Probe

Kind = Literal["attention", "weights", "task"]
KINDS: tuple[Kind, ...] = ("attention", "weights", "task")
ABLATIONS = ("mean", "resample", "zero")
METHODS = ("exact", "attribution")
DEFAULT_PROMPTS = 32


# --- what a detail means --------------------------------------------------------------------------------------

DetailKind = Literal["token", "tokens", "token_scores", "number", "count", "flag", "text", "numbers", "rows"]


@dataclass(frozen=True)
class Detail:
    """The meaning of one key of a head's detail JSON.

    ``token``: one token string; ``tokens``: a list of them; ``token_scores``: ``[[token, number], ...]``;
    ``number`` / ``count`` / ``flag`` / ``text``: a scalar; ``numbers``: ``{name: number}``;
    ``rows``: a list of objects whose keys are described by ``columns``.
    """

    kind: DetailKind
    columns: dict[str, Detail] = field(default_factory=dict)


TOKEN, TOKENS, TOKEN_SCORES = Detail("token"), Detail("tokens"), Detail("token_scores")
NUMBER, COUNT, FLAG, TEXT, NUMBERS = Detail("number"), Detail("count"), Detail("flag"), Detail("text"), Detail("numbers")


def rows(**columns: Detail) -> Detail:
    return Detail("rows", dict(columns))


DetailFields = dict[str, Detail]


def fields_to_json(fields: DetailFields) -> dict[str, Any]:
    """``{key: {"kind": ..., "columns": {...}}}``, as stored in the ``metrics`` table."""
    return {k: {"kind": d.kind, **({"columns": fields_to_json(d.columns)} if d.columns else {})} for k, d in fields.items()}


def fields_from_json(raw: dict[str, Any] | None) -> DetailFields:
    return {k: Detail(v["kind"], fields_from_json(v.get("columns"))) for k, v in (raw or {}).items()}


# --- what a run gets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """The user's options that change task numbers (``wiki build --ablation/--method/--task-prompts``)."""

    ablation: tuple[str, ...] = ("mean", "resample")
    method: str = "exact"
    task_prompts: int = DEFAULT_PROMPTS

    def __post_init__(self) -> None:
        kinds = tuple(sorted(set(self.ablation)))
        if not kinds or set(kinds) - set(ABLATIONS):
            raise ValueError(f"Unknown ablation kinds {list(self.ablation)}: use a subset of {', '.join(ABLATIONS)}.")
        if self.method not in METHODS:
            raise ValueError(f"Unknown method '{self.method}'. Use one of {', '.join(METHODS)}.")
        if int(self.task_prompts) < 2:
            raise ValueError("task_prompts must be at least 2.")
        object.__setattr__(self, "ablation", kinds)

    def ablation_kinds(self) -> list[str]:
        """Mean and resample always, zero on request."""
        return ["mean", "resample"] + (["zero"] if "zero" in self.ablation else [])


@dataclass(frozen=True)
class RunContext:
    """What every family gets besides the model: the seed, the user's options and the run's own switches."""

    seed: int = 0
    options: BuildOptions = field(default_factory=BuildOptions)
    force_tasks: bool = False  # score tasks even when the model does not do them (benchmarks)
    memory_gb: float | None = None  # memory one ablation batch may use; None: the engine's default
    forward_dtype: str | None = None  # cast the model to this dtype before the forward passes (mixed-bf16)
    examples: bool = True  # capture attention patterns on the example prompts for the head pages
    corpus: Any = None  # corpus.CorpusOptions for the corpus pass (every head's examples on text); None: its defaults


# --- what a family returns ------------------------------------------------------------------------------------


@dataclass
class MetricOutput:
    """One number per head, plus what explains them."""

    values: np.ndarray  # [n_layers, n_heads]; NaN where undefined
    details: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # per head, shown on its page
    setup: dict[str, Any] = field(default_factory=dict)  # the exact set-up used (sets, sizes, seeds, accuracy)
    applicable: bool = True
    reason: str = ""  # why not applicable
    # rows of tables other than `scores` that the family fills (name -> {column: equal-length arrays}), e.g.
    # "composition": one row per pair of heads; the builder adds the model column
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)


def not_applicable(shape: tuple[int, int], reason: str, setup: dict[str, Any]) -> MetricOutput:
    """Every head NaN, and why the family does not apply to this model."""
    return MetricOutput(values=np.full(shape, np.nan), setup=setup, applicable=False, reason=reason)


# --- the three kinds ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Family:
    id: str  # stable snake_case id of the family (and of its only output, if it has one)
    version: str  # bump when the numbers would change; stored with every score
    title: str
    description: str  # one paragraph, shown on the metric's page
    formula: str = ""
    reference: str = ""
    details: str = ""  # the set-up, and how it differs from the reference, if at all
    outputs: dict[str, str] = field(default_factory=dict)  # output id -> title; empty means {id: title}
    higher_is: str = "more of the behaviour"  # how to read the value
    detail_fields: DetailFields = field(default_factory=dict)  # what each key of a head's details means

    kind: ClassVar[Kind]

    @property
    def output_ids(self) -> dict[str, str]:
        return self.outputs or {self.id: self.title}

    def options_used(self, options: BuildOptions) -> dict[str, Any] | None:
        """The options that change this family's numbers, stored with them (a rerun with others recomputes)."""
        return None


@dataclass(frozen=True, kw_only=True)
class AttentionMetric(_Family):
    compute: Callable[[torch.Tensor, Probe], torch.Tensor]
    probe: Literal["shared", "repeat"] = "shared"  # "repeat": the small several-copies batch (probe.build_repeat_probe)
    kind: ClassVar[Kind] = "attention"


@dataclass(frozen=True, kw_only=True)
class WeightsMetric(_Family):
    compute: Callable[[Any, RunContext], dict[str, MetricOutput]]
    kind: ClassVar[Kind] = "weights"


@dataclass(frozen=True, kw_only=True)
class TaskMetric(_Family):
    compute: Callable[[Any, RunContext], dict[str, MetricOutput]]
    # a short clean prompt (token ids, BOS included) whose attention patterns the head pages show, or None
    example: Callable[[Any], list[int] | None]
    kind: ClassVar[Kind] = "task"

    def options_used(self, options: BuildOptions) -> dict[str, Any] | None:
        return {"ablation": options.ablation_kinds(), "method": options.method, "task_prompts": int(options.task_prompts)}


Metric = AttentionMetric | WeightsMetric | TaskMetric
