"""What every task is: aligned clean and corrupted prompts, scored positions, a metric.

A :class:`Task` holds one batch of ``N`` clean prompts and ``N`` corrupted prompts, all of
the same token length ``S`` (so that activations line up position by position and a
mean over the corrupted set is a mean per position), the positions ``P`` where the metric
is read, and per-prompt labels. Subclasses define three things:

* ``metric(logits)``: the task metric per prompt from logits at the scored positions,
  ``[..., N, P, V] -> [..., N]``; leading axes are copies of the batch (one per ablation).
* ``correct(logits)``: per prompt, the fraction of scored positions where the model gets
  the task right, ``[N, P, V] -> [N]`` (its mean is the task accuracy).
* ``direction(W_U)``: the metric's logit direction in the residual stream per prompt and
  scored position, ``[N, P, d_model]``, for direct logit attribution.

Prompts are built from the model's own tokenizer: a word from ``wiki_builder.lexicon`` is
usable when ``" " + word`` is exactly one ordinary token (``wiki_builder.models.tokens.single_token``,
the same test the OV scores use). Builders report how many items survived, and return a task
marked not applicable (with a reason) when too few did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from .table import ACCURACY_MARGIN


@dataclass
class Task:
    name: str  # snake_case id, the prefix of the family's output ids
    title: str
    clean: torch.Tensor  # [N, S] int64, BOS first when the model uses one
    corrupted: torch.Tensor  # [N, S]
    positions: torch.Tensor  # [P] int64, scored positions shared by every prompt
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    chance: float = 0.5  # accuracy of a model that ignores the task's information
    setup: dict[str, Any] = field(default_factory=dict)  # items used and survived, template, seed, examples
    applicable: bool = True
    reason: str = ""
    metric_formula: str = ""
    accuracy_definition: str = ""

    @property
    def n(self) -> int:
        return int(self.clean.shape[0]) if self.clean is not None and self.clean.numel() else 0

    @property
    def threshold(self) -> float:
        return self.chance + ACCURACY_MARGIN * (1.0 - self.chance)

    # -- overridden per task -------------------------------------------------------------
    def metric(self, logits: torch.Tensor) -> torch.Tensor:  # [..., N, P, V] -> [..., N]
        raise NotImplementedError

    def correct(self, logits: torch.Tensor) -> torch.Tensor:  # [N, P, V] -> [N]
        raise NotImplementedError

    def direction(self, W_U: torch.Tensor) -> torch.Tensor:  # [d_model, V] -> [N, P, d_model]
        raise NotImplementedError

    def dla_tokens(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(answer, incorrect) token ids per prompt when the direction is a two-token difference."""
        return None

    def to(self, device: Any) -> Task:
        self.clean = self.clean.to(device)
        self.corrupted = self.corrupted.to(device)
        self.positions = self.positions.to(device)
        self.labels = {k: v.to(device) for k, v in self.labels.items()}
        return self

    def example(self) -> list[int] | None:
        """One clean prompt's token ids (BOS included), for the head pages."""
        if not self.applicable_prompts:
            return None
        return [int(t) for t in self.clean[0].tolist()]

    @property
    def applicable_prompts(self) -> bool:
        """The tokenizer could express the prompts (the model may still fail the task)."""
        return self.n > 0


def not_expressible(cls: type[Task], name: str, title: str, reason: str, setup: dict[str, Any]) -> Task:
    """A task the tokenizer cannot express: no prompts, applicable=False, and why."""
    empty = torch.zeros((0, 0), dtype=torch.long)
    return cls(name=name, title=title, clean=empty, corrupted=empty, positions=torch.zeros(0, dtype=torch.long),
               setup=setup, applicable=False, reason=reason)


# -- prompt helpers -------------------------------------------------------------------------

def natural(text: str) -> str:
    """The lexicon spaces punctuation out ("store , John"); real text does not ("store, John")."""
    return re.sub(r" ([,.!?;:])", r"\1", text)


def with_bos(ids: list[int], bos: int | None) -> list[int]:
    return ([bos] if bos is not None else []) + list(ids)


def decode(tokenizer: Any, ids: list[int]) -> str:
    try:
        return str(tokenizer.decode(ids))
    except Exception:  # noqa: BLE001 - only used for the set-up's examples
        return " ".join(str(i) for i in ids)


def gather_last(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``logits[..., n, p, ids[n, p]]`` for labels ``ids`` of shape [N] or [N, P]."""
    n, p = logits.shape[-3], logits.shape[-2]
    idx = ids if ids.dim() == 2 else ids[:, None].expand(n, p)
    idx = idx.expand(*logits.shape[:-1]).unsqueeze(-1)
    return logits.gather(-1, idx).squeeze(-1)
