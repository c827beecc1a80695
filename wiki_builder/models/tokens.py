"""Tokenizer questions that the scores and the tasks both ask: is a word one token, does the model use a BOS.

They live with the models, below both, so that the OV scores, the task prompts and the shared probe
answer them the same way. Plain Python: no torch, nothing from the stages above.
"""

from __future__ import annotations

from typing import Any

SPM_SPACE = "\u2581"  # SentencePiece's word-boundary marker


def bos_id(bridge: Any) -> int | None:
    """The BOS token the model's prompts start with, or None: the tokenizer has one and the bridge prepends it
    (``cfg.default_prepend_bos``, True when unset). The shared probe and the task prompts both use this."""
    tok = getattr(bridge, "tokenizer", None)
    bos = getattr(tok, "bos_token_id", None) if tok is not None else None
    return bos if bos is not None and getattr(bridge.cfg, "default_prepend_bos", True) else None


def encode(tokenizer: Any, text: str) -> list[int]:
    """``text``'s token ids, without the special tokens the tokenizer would add."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def special_ids(tokenizer: Any) -> set[int]:
    """The tokenizer's special ids and its unknown token: never an ordinary word."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None:
        ids.add(int(unk))
    return ids


def single_token(tokenizer: Any, word: str, space: bool = True) -> int | None:
    """The id of ``" " + word`` (``space``) or of ``word`` when it is exactly one ordinary token, else None
    (None too when there is no tokenizer).

    GPT-2-style BPE: ``encode(" word")`` is ``[Ġword]``; word-level tokenizers split on
    whitespace and give ``[word]``. SentencePiece tokenizers (Llama) put the boundary marker in
    front themselves, so ``encode(" word")`` is ``[▁, ▁word]``; for them the token ``▁word``
    (``encode("word")``) is the leading-space form and is accepted (only when ``space``).
    """
    if tokenizer is None:
        return None
    bad = special_ids(tokenizer)
    ids = encode(tokenizer, (" " if space else "") + word)
    if len(ids) == 1 and int(ids[0]) not in bad:
        return int(ids[0])
    if space:
        ids = encode(tokenizer, word)
        if len(ids) == 1 and int(ids[0]) not in bad:
            tok = tokenizer.convert_ids_to_tokens(int(ids[0]))
            if isinstance(tok, str) and tok == SPM_SPACE + word:
                return int(ids[0])
    return None


def single_tokens(tokenizer: Any, words: list[str], space: bool = True, distinct: bool = True) -> dict[str, int]:
    """word -> token id for the words that are one token each (:func:`single_token`), in the words' order.

    ``distinct`` keeps only the first word of any that share an id: the OV scores compare tokens, so
    two words on one token would count it twice. The task builders pass False: they draw words,
    not tokens, for their prompts, and their set-ups count the words that survived.
    """
    out: dict[str, int] = {}
    seen: set[int] = set()
    for w in words:
        i = single_token(tokenizer, w, space)
        if i is not None and not (distinct and i in seen):
            out[w] = i
            seen.add(i)
    return out
