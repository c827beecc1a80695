"""Synthetic training corpus for the embedded zoo.

Every generator takes a ``random.Random`` and returns a :class:`Doc`: a list of
word tokens starting with ``<bos>``, plus the position of the answer token (for
task documents) and generator metadata (e.g. where the repeated spans are).  The
words come from :mod:`wiki_builder.lexicon`, so the word-level zoo vocabulary
(:func:`zoo_vocab`) covers every document, and every document is one sequence
starting at position 0 (no packing of several documents into one row).

Components
----------
* :func:`filler_repeat_doc`  -- random filler words in which spans of random
  length (3-30) that occurred earlier are copied later, at random places, so
  the offset between the two copies varies from document to document (and
  within one document): only a real induction mechanism predicts them.
* :func:`random_repeat_doc`  -- ``<bos> + X + X`` with ``X`` uniformly random
  tokens from the whole vocabulary, ``|X|`` in 8..60: exactly the shape of the
  induction-score probe.
* :func:`random_repeat_anywhere_doc` -- the same with a random prefix and gap, up
  to 128 tokens; :func:`short_repeat_doc` -- the same within 16 tokens, |X| 2..6:
  the induction warm-up (the circuit forms far sooner in short contexts).
  :func:`repeat_loss_mask` marks the tokens that copying predicts, for training
  with the loss on those only.
* :func:`ioi_doc`            -- indirect-object identification sentences
  ("When Mary and John went to the store , John gave a drink to Mary"), all
  ``IOI_TEMPLATES``, ABBA and BABA orders.
* :func:`greater_than_doc`   -- "The war lasted from the year 17 32 to the year
  17 YY" with ``YY > 32`` drawn uniformly among the larger two-digit numbers;
  years are two tokens (century, two digits), like GPT-2's BPE.
* :func:`sequence_doc`       -- 3-8 consecutive members of an ordered set
  (numbers, number words, ordinals, months, days, their prefixes, letters);
  months/days wrap around; half of the runs skip-count (step 2-5).

:func:`sample_doc` draws from the mixture and :func:`make_batch` turns documents
into padded tensors.  Everything is deterministic given the ``random.Random``.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wiki_builder import lexicon as L

BOS = "<bos>"
UNK = "<unk>"
SPECIALS = [BOS, UNK]  # ids 0 and 1

MAX_LEN = 128  # context length of the zoo models

# Ordered sets used for sequence continuation in the zoo.  The zoo vocabulary
# holds "0".."100" only, so "numbers" stops at 100.
ZOO_NUMBERS = [str(i) for i in range(1, 101)]
ZOO_SEQUENCES: dict[str, list[str]] = {
    name: (ZOO_NUMBERS if name == "numbers" else list(words))
    for name, words in L.SEQUENCES.items()
}

# Greater-than: start years YY in 02..98 (as in Hanna et al. 2023).
GT_MIN_YY, GT_MAX_YY = 2, 98

# Document mixture.  Induction documents go into the "long" half of each batch
# (padded to MAX_LEN), task documents into the "short" half.  Weights are
# relative within each half.
LONG_MIXTURE: dict[str, float] = {"filler_repeat": 0.3, "random_repeat": 0.4, "periodic": 0.3}
SHORT_MIXTURE: dict[str, float] = {"ioi": 1 / 3, "greater_than": 1 / 3, "sequence": 1 / 3}


@dataclass
class Doc:
    """One training / evaluation document."""

    words: list[str]
    kind: str
    answer_pos: int | None = None  # index in ``words`` of the answer token
    meta: dict = field(default_factory=dict)


def _template_words() -> list[str]:
    text = " ".join(L.IOI_TEMPLATES + [L.GREATER_THAN_TEMPLATE])
    text = re.sub(r"\{[A-Z]+\}", " ", text)
    return text.split()


def zoo_vocab() -> list[str]:
    """The zoo's word-level vocabulary: specials first, then every word the corpus uses.

    The order is fixed (lexicon order, first occurrence wins), so the token ids
    are stable across runs.
    """
    return list(_vocab())


@functools.lru_cache(maxsize=1)
def _vocab() -> tuple[str, ...]:
    words: list[str] = list(SPECIALS)
    groups = [
        _template_words(),
        L.NAMES, L.IOI_PLACES, L.IOI_OBJECTS, L.IOI_VERBS, L.GREATER_THAN_NOUNS,
        L.DIGITS, ZOO_NUMBERS, L.TWO_DIGIT, L.CENTURIES,
        L.NUMBER_WORDS, L.ORDINALS, L.MONTHS, L.DAYS, L.MONTH_PREFIXES,
        L.DAY_PREFIXES, L.LETTERS, L.FILLER,
    ]
    for g in groups:
        words.extend(g)
    return tuple(dict.fromkeys(words))


def random_pool() -> list[str]:
    """Tokens used for uniformly random sequences: the whole vocabulary minus specials."""
    return list(_pool())


@functools.lru_cache(maxsize=1)
def _pool() -> tuple[str, ...]:
    # built once: the trainer draws a random document hundreds of times per step
    return tuple(w for w in _vocab() if w not in SPECIALS)


# --------------------------------------------------------------------------- #
# Components
# --------------------------------------------------------------------------- #


def filler_repeat_doc(rng: random.Random, max_len: int = MAX_LEN,
                      min_span: int = 3, max_span: int = 30) -> Doc:
    """Random filler words with earlier spans repeated later.

    The body is grown left to right: either a run of 1-12 fresh random
    ``FILLER`` words, or (with probability 0.4 once there are at least 4 words)
    a copy of a random earlier span of random length ``min_span..max_span``
    taken from a random earlier position.  The document length is uniform in
    ``24..max_len``.  ``meta["repeats"]`` lists ``{"src", "dst", "length"}`` for
    each copied span (positions in ``words``, i.e. counting ``<bos>``), so the
    distance ``dst - src`` and the span length both vary.  At least one span is
    always repeated.
    """
    while True:
        n = rng.randint(24, max_len) - 1  # body length
        body: list[str] = []
        repeats: list[dict] = []
        while len(body) < n:
            room = n - len(body)
            if len(body) >= 4 and room >= min_span and rng.random() < 0.4:
                length = rng.randint(min_span, min(max_span, len(body), room))
                src = rng.randint(0, len(body) - length)
                repeats.append({"src": 1 + src, "dst": 1 + len(body), "length": length})
                body.extend(body[src:src + length])
            else:
                run = min(rng.randint(1, 12), room)
                body.extend(rng.choice(L.FILLER) for _ in range(run))
        if repeats:
            return Doc([BOS] + body, "filler_repeat", meta={"repeats": repeats})


def random_repeat_doc(rng: random.Random, pool: list[str] | None = None,
                      min_t: int = 8, max_t: int = 60, t: int | None = None,
                      prefix: int | None = 0, gap: int | None = 0, max_len: int = MAX_LEN) -> Doc:
    """``<bos> + P + X + G + X``: a run ``X`` of uniformly random tokens, repeated.

    ``|X| = T`` is uniform in ``min_t..max_t`` (or ``t`` if given); tokens are
    uniform over ``pool`` (default: the whole zoo vocabulary minus specials).
    ``P`` and ``G`` are random-token prefix and gap lengths: ``0`` gives exactly
    the induction-score probe ``<bos> + X + X``; ``None`` draws them at random
    (0 with probability 1/3, else uniform up to what fits in ``max_len``) so
    the repeat's position and the distance between the copies vary, and no
    positional shortcut can predict the second copy.  ``meta`` holds the
    period ``T``, ``prefix``, ``gap`` and the repeat ``{"src", "dst", "length"}``.
    """
    pool = pool if pool is not None else _pool()
    t = t if t is not None else rng.randint(min_t, max_t)
    room = max_len - 1 - 2 * t
    if prefix is None:
        prefix = 0 if rng.random() < 1 / 3 else rng.randint(0, max(0, room))
    if gap is None:
        gap = 0 if rng.random() < 1 / 3 else rng.randint(0, max(0, room - prefix))
    draw = lambda n: [rng.choice(pool) for _ in range(n)]  # noqa: E731
    p, x, g = draw(prefix), draw(t), draw(gap)
    src, dst = 1 + prefix, 1 + prefix + t + gap
    return Doc([BOS] + p + x + g + x, "random_repeat",
               meta={"period": t, "prefix": prefix, "gap": gap,
                     "repeats": [{"src": src, "dst": dst, "length": t}]})


def periodic_doc(rng: random.Random, pool: list[str] | None = None,
                 min_t: int = 2, max_t: int = 12, min_len: int = 16, max_len: int = 64) -> Doc:
    """A short random block ``X`` (``|X| = T`` in ``min_t..max_t``) repeated many times.

    ``<bos> + X + X + X + ...`` cut to a length uniform in ``min_len..max_len``;
    tokens uniform over ``pool`` (default: the whole vocabulary).  Every
    earlier copy of the current token is followed by the right answer, so even
    diffuse attention gets a strong copying signal.  The period varies per
    document, but short periods can still be served by fixed-offset heads; the
    induction circuit itself comes from :func:`short_repeat_doc`.
    """
    pool = pool if pool is not None else _pool()
    t = rng.randint(min_t, max_t)
    x = rng.sample(pool, t)  # distinct tokens within one period
    n = rng.randint(max(min_len, 2 * t), max_len) - 1
    body = [x[i % t] for i in range(n)]
    return Doc([BOS] + body, "periodic",
               meta={"period": t, "repeats": [{"src": 1, "dst": 1 + t, "length": n - t}]})


def ioi_doc(rng: random.Random, template: int | None = None, order: str | None = None) -> Doc:
    """An IOI sentence; the last token is the indirect object (the answer).

    ``order`` is ``"ABBA"`` (IO named first: "When Mary and John ..., John
    gave ... to Mary") or ``"BABA"`` (subject named first); both random by
    default, as is the template, the two distinct names, the place, the object
    and the verb.
    """
    t_idx = template if template is not None else rng.randrange(len(L.IOI_TEMPLATES))
    order = order or rng.choice(["ABBA", "BABA"])
    io, s = rng.sample(L.NAMES, 2)
    a, b = (io, s) if order == "ABBA" else (s, io)
    text = L.IOI_TEMPLATES[t_idx].format(
        A=a, B=b, S=s, IO=io, PLACE=rng.choice(L.IOI_PLACES),
        OBJECT=rng.choice(L.IOI_OBJECTS), VERB=rng.choice(L.IOI_VERBS))
    words = [BOS] + text.split()
    return Doc(words, "ioi", answer_pos=len(words) - 1,
               meta={"io": io, "s": s, "template": t_idx, "order": order})


def greater_than_doc(rng: random.Random, yy: int | None = None) -> Doc:
    """"The NOUN lasted from the year C YY to the year C ZZ" with ZZ > YY.

    Century ``C`` in 11..17, ``YY`` uniform in 02..98, ``ZZ`` uniform in
    ``YY+1..99``; every year is two tokens (century, two digits).  The answer
    is ``ZZ`` (any two-digit token greater than ``YY`` is correct).
    """
    yy = yy if yy is not None else rng.randint(GT_MIN_YY, GT_MAX_YY)
    c = rng.choice(L.CENTURIES)
    zz = rng.randint(yy + 1, 99)
    text = L.GREATER_THAN_TEMPLATE.format(NOUN=rng.choice(L.GREATER_THAN_NOUNS), C=c, YY=f"{yy:02d}")
    words = [BOS] + text.split() + [f"{zz:02d}"]
    return Doc(words, "greater_than", answer_pos=len(words) - 1,
               meta={"yy": yy, "century": c, "zz": zz})


def sequence_doc(rng: random.Random, name: str | None = None,
                 min_len: int = 3, max_len: int = 8, step: int | None = None) -> Doc:
    """``min_len..max_len`` members of one ordered set, ``step`` apart.

    The set (``ZOO_SEQUENCES``: digits, numbers 1..100, number words,
    ordinals, months, days, month/day prefixes, letters) and the start member
    are random; sets in ``lexicon.CYCLIC`` wrap around (December -> January),
    the others never run past their end.  ``step`` is 1 (consecutive members)
    half of the time, else skip-counting ("5 10 15 20", "Monday Wednesday
    Friday"; up to 5 for numbers, 3 for the rest), which needs the previous
    member as well as the current one, i.e. a previous-token head.  The last
    member is the answer.  Evaluation uses ``step=1``.
    """
    name = name or rng.choice(sorted(ZOO_SEQUENCES))
    members = ZOO_SEQUENCES[name]
    if step is None:
        step = 1 if rng.random() < 0.5 else rng.randint(2, 5 if name == "numbers" else 3)
    cyclic = name in L.CYCLIC
    longest = len(members) if cyclic else (len(members) - 1) // step + 1
    n = rng.randint(min(min_len, longest), min(max_len, longest))
    if cyclic:
        start = rng.randrange(len(members))
    else:
        start = rng.randint(0, len(members) - 1 - (n - 1) * step)
    run = [members[(start + i * step) % len(members)] for i in range(n)]
    words = [BOS] + run
    return Doc(words, f"seq_{name}", answer_pos=len(words) - 1,
               meta={"sequence": name, "start": start, "length": n, "step": step})


# --------------------------------------------------------------------------- #
# Mixture and batching
# --------------------------------------------------------------------------- #

def short_repeat_doc(rng: random.Random) -> Doc:
    """``<bos> + P + X + G + X`` within 16 tokens, ``|X|`` in 2..6, random prefix and gap.

    The induction warm-up: in contexts this short the previous-token + induction circuit
    forms within a few hundred steps (the time to form grows about quadratically with the
    context length), and the random prefix and gap leave no positional shortcut.
    """
    doc = random_repeat_doc(rng, min_t=2, max_t=6, prefix=None, gap=None, max_len=16)
    doc.kind = "short_repeat"
    return doc


def random_repeat_anywhere_doc(rng: random.Random) -> Doc:
    """:func:`random_repeat_doc` with a random prefix and gap (|X| in 8..60, up to 128 tokens)."""
    doc = random_repeat_doc(rng, prefix=None, gap=None)
    doc.kind = "random_repeat_anywhere"
    return doc


GENERATORS: dict[str, Callable[[random.Random], Doc]] = {
    "filler_repeat": filler_repeat_doc,
    "random_repeat": random_repeat_doc,
    "random_repeat_anywhere": random_repeat_anywhere_doc,
    "periodic": periodic_doc,
    "short_repeat": short_repeat_doc,
    "ioi": ioi_doc,
    "greater_than": greater_than_doc,
    "sequence": sequence_doc,
}


def sample_doc(rng: random.Random, mixture: dict[str, float]) -> Doc:
    """Draw one document from ``mixture`` (component name -> relative weight)."""
    names = sorted(mixture)
    kind = rng.choices(names, weights=[mixture[k] for k in names])[0]
    return GENERATORS[kind](rng)


def encode(words: list[str], stoi: dict[str, int]) -> list[int]:
    unk = stoi[UNK]
    return [stoi.get(w, unk) for w in words]


def pad_batch(docs: list[Doc], stoi: dict[str, int]):
    """Right-pad documents with ``<bos>`` (id 0); returns ``(ids, mask)`` tensors.

    ``mask`` is 1 on real tokens and 0 on padding; padding sits after every
    real token, so with causal attention it never influences them, and the
    loss ignores it.
    """
    import torch

    seqs = [encode(d.words, stoi) for d in docs]
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
    return ids, mask


def repeat_loss_mask(docs: list[Doc], width: int):
    """1 where a token is predictable by copying (the 2nd.. token of each repeated span), else 0."""
    import torch

    mask = torch.zeros(len(docs), width, dtype=torch.long)
    for i, d in enumerate(docs):
        for r in d.meta.get("repeats", []):
            mask[i, r["dst"] + 1:r["dst"] + r["length"]] = 1
    return mask


def make_batch(rng: random.Random, stoi: dict[str, int], n_long: int, n_short: int,
               short_mixture: dict[str, float] | None = None, long_mixture: dict[str, float] | None = None,
               mask_repeats: bool = False):
    """One training batch as two padded sub-batches: induction (long) and tasks (short).

    With ``mask_repeats`` the induction half's loss mask is :func:`repeat_loss_mask`.
    """
    long_docs = [sample_doc(rng, long_mixture or LONG_MIXTURE) for _ in range(n_long)]
    short_docs = [sample_doc(rng, short_mixture or SHORT_MIXTURE) for _ in range(n_short)]
    ids, mask = pad_batch(long_docs, stoi)
    if mask_repeats:
        mask = repeat_loss_mask(long_docs, ids.shape[1])
    return (ids, mask), pad_batch(short_docs, stoi)


def mixture_token_fractions(n_docs: int = 4000, seed: int = 0, n_long: int = 1, n_short: int = 1,
                            short_mixture: dict[str, float] | None = None,
                            long_mixture: dict[str, float] | None = None) -> dict[str, float]:
    """Fraction of (non-padding) training tokens per component, estimated by sampling."""
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    for _ in range(n_docs):
        for mix, k in ((long_mixture or LONG_MIXTURE, n_long), (short_mixture or SHORT_MIXTURE, n_short)):
            for _ in range(k):
                d = sample_doc(rng, mix)
                kind = "sequence" if d.kind.startswith("seq_") else d.kind
                counts[kind] = counts.get(kind, 0) + len(d.words)
    total = sum(counts.values())
    return {k: round(v / total, 3) for k, v in sorted(counts.items())}
