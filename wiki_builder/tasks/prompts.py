"""A task's prompts for a tokenizer or a loaded model, through the builder its table row names."""

from __future__ import annotations

import importlib
from typing import Any

from ..models.tokens import bos_id
from ..scores.base import DEFAULT_PROMPTS
from .common import Task, not_expressible
from .table import row


def builder(name: str) -> Any:
    """The ``build`` function of a task's prompt module (a module of this package, or a full dotted path)."""
    module = row(name).builder
    return importlib.import_module(module if "." in module else f"{__package__}.{module}").build


def build_task(name: str, tokenizer: Any, n: int = DEFAULT_PROMPTS, seed: int = 0, bos: int | None = None,
               n_ctx: int = 1024, d_vocab: int | None = None, **kwargs: Any) -> Task:
    """Clean and corrupted prompts from ``tokenizer`` (``kwargs``: the builder's own options)."""
    return builder(name)(tokenizer, n=n, seed=seed, bos=bos, n_ctx=n_ctx, d_vocab=d_vocab, **kwargs)


def for_bridge(name: str, bridge: Any, n: int = DEFAULT_PROMPTS, seed: int = 0, **kwargs: Any) -> Task:
    """The task's prompts for a loaded TransformerBridge (its tokenizer, BOS and context)."""
    tok = getattr(bridge, "tokenizer", None)
    if tok is None:
        return not_expressible(Task, name, row(name).title, "the model has no tokenizer to build prompts with", {"task": name})
    return build_task(name, tok, n=n, seed=seed, bos=bos_id(bridge), n_ctx=int(bridge.cfg.n_ctx),
                      d_vocab=int(bridge.cfg.d_vocab), **kwargs)
