"""Indirect object identification (Wang et al. 2022).

"When Mary and John went to the store, John gave a drink to" -> " Mary". Templates come from
Wang et al.'s 15 (``lexicon.IOI_PAPER_TEMPLATES``, with their names, places and objects) when the
tokenizer can write them (:func:`paper_expressible`), else from ``lexicon.IOI_TEMPLATES`` (the
embedded zoo's word-level vocabulary), with the final " {IO}" cut off; names, places, objects and verbs
must be single tokens, so that each template has one fixed token length; the templates that
share the most common length are used (so every prompt lines up position by position).
Orders ABBA and BABA alternate. Metric: ``logit(IO) - logit(S)`` at the last position.
Corruption (ACDC's "ABC"): the three name slots A, B and S replaced by three random distinct
names. Accuracy: the fraction of prompts with ``logit(IO) > logit(S)`` (chance 0.5).
"""

from __future__ import annotations

import random

import torch

from .. import lexicon as L
from ..models.tokens import encode, single_tokens, special_ids
from .common import Task, decode, gather_last, natural, not_expressible, with_bos

MIN_NAMES = 8


class IOITask(Task):
    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        return (gather_last(logits, self.labels["io"]) - gather_last(logits, self.labels["s"])).mean(-1)

    def correct(self, logits: torch.Tensor) -> torch.Tensor:
        return (gather_last(logits, self.labels["io"]) > gather_last(logits, self.labels["s"])).float().mean(-1)

    def direction(self, W_U: torch.Tensor) -> torch.Tensor:
        return (W_U[:, self.labels["io"]] - W_U[:, self.labels["s"]]).T[:, None, :]

    def dla_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.labels["io"], self.labels["s"]


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str, verb: str) -> str:
    body = template.rsplit("{IO}", 1)[0].rstrip()
    return natural(body.format(A=a, B=b, S=s, PLACE=place, OBJECT=obj, VERB=verb))


def paper_expressible(tokenizer) -> bool:
    """Whether the tokenizer writes every one of Wang et al.'s 15 templates without an unknown or special token.

    The rule that picks the prompt set: a tokenizer that can write the paper's text (byte-level BPE:
    GPT-2, Pythia, ...) gets the paper's templates, names, places and objects, filtered to single
    tokens; a word-level tokenizer that cannot (the embedded zoo's, trained on ``lexicon.IOI_TEMPLATES``)
    keeps the lexicon's own set, so no tokenizer silently switches sets.
    """
    names = single_tokens(tokenizer, L.IOI_PAPER_NAMES, distinct=False)
    places = single_tokens(tokenizer, L.IOI_PAPER_PLACES, distinct=False)
    objects = single_tokens(tokenizer, L.IOI_PAPER_OBJECTS, distinct=False)
    if len(names) < 2 or not places or not objects:
        return False
    bad = special_ids(tokenizer)
    a, b = list(names)[:2]
    for t in L.IOI_PAPER_TEMPLATES:
        ids = encode(tokenizer, _fill(t, a, b, a, next(iter(places)), next(iter(objects)), ""))
        if any(int(i) in bad for i in ids):
            return False
    return True


def build(tokenizer, n: int = 32, seed: int = 0, bos: int | None = None, n_ctx: int = 1024,
          d_vocab: int | None = None) -> Task:
    if tokenizer is not None and paper_expressible(tokenizer):
        source, all_names, all_places, all_objects, all_verbs, all_templates = (
            "Wang et al. 2022 (templates, names, places, objects)", L.IOI_PAPER_NAMES, L.IOI_PAPER_PLACES, L.IOI_PAPER_OBJECTS,
            [], L.IOI_PAPER_TEMPLATES)
    else:
        source, all_names, all_places, all_objects, all_verbs, all_templates = (
            "lexicon.IOI_TEMPLATES (word-level vocabulary)", L.NAMES, L.IOI_PLACES, L.IOI_OBJECTS, L.IOI_VERBS, L.IOI_TEMPLATES)
    names = single_tokens(tokenizer, all_names, distinct=False)
    places = single_tokens(tokenizer, all_places, distinct=False)
    objects = single_tokens(tokenizer, all_objects, distinct=False)
    verbs = single_tokens(tokenizer, all_verbs, distinct=False) if all_verbs else {"": -1}
    setup = {"task": "ioi", "seed": seed, "names": f"{len(names)}/{len(all_names)}", "places": f"{len(places)}/{len(all_places)}",
             "objects": f"{len(objects)}/{len(all_objects)}",
             "corruption": "ABC: the names A, B and S replaced by three random distinct names"}
    if all_verbs:
        setup["verbs"] = f"{len(verbs)}/{len(all_verbs)}"
    else:  # the paper's set: say which of its names this tokenizer keeps
        setup["names_used"] = list(names)
    setup["prompt_set"] = source
    title = "IOI"
    if len(names) < MIN_NAMES or not places or not objects or not verbs:
        return not_expressible(IOITask, "ioi", title,
                               f"the tokenizer expresses {len(names)} of {len(all_names)} names, {len(places)} places, {len(objects)} objects "
                               f"and {len(verbs)} verbs as single tokens (' ' + word); IOI needs at least {MIN_NAMES} names and one of each", setup)
    # Each template's token length with single-token fillers; keep the templates of the modal length.
    first = next(iter(names))
    p0, o0, v0 = next(iter(places)), next(iter(objects)), next(iter(verbs))
    lengths = {i: len(encode(tokenizer, _fill(t, first, first, first, p0, o0, v0))) for i, t in enumerate(all_templates)}
    counts: dict[int, int] = {}
    for ln in lengths.values():
        counts[ln] = counts.get(ln, 0) + 1
    length = max(counts, key=lambda k: (counts[k], -k))
    templates = [i for i, ln in lengths.items() if ln == length]
    rng = random.Random(seed)
    name_list, place_list, obj_list, verb_list = list(names), list(places), list(objects), list(verbs)
    clean, corrupted, io_ids, s_ids, texts = [], [], [], [], []
    dropped = 0
    for i in range(n * 4):
        if len(clean) == n:
            break
        t = all_templates[templates[i % len(templates)]]
        io, s = rng.sample(name_list, 2)
        a, b = (io, s) if i % 2 == 0 else (s, io)  # ABBA, BABA
        place, obj, verb = rng.choice(place_list), rng.choice(obj_list), rng.choice(verb_list)
        ca, cb, cs = rng.sample(name_list, 3)
        text = _fill(t, a, b, s, place, obj, verb)
        ctext = _fill(t, ca, cb, cs, place, obj, verb)
        ids, cids = encode(tokenizer, text), encode(tokenizer, ctext)
        if len(ids) != length or len(cids) != length or len(with_bos(ids, bos)) > n_ctx:
            dropped += 1
            continue
        clean.append(with_bos(ids, bos))
        corrupted.append(with_bos(cids, bos))
        io_ids.append(names[io])
        s_ids.append(names[s])
        texts.append(text)
    if len(clean) < min(2, n):
        return not_expressible(IOITask, "ioi", title, "too few IOI prompts of a common token length could be built", setup)
    S = len(clean[0])
    setup.update({"n_prompts": len(clean), "length": S, "templates": [all_templates[i] for i in templates],
                  "templates_used": f"{len(templates)}/{len(all_templates)} (those of the most common token length, as ACDC does)",
                  "orders": "ABBA and BABA alternating", "dropped_prompts": dropped,
                  "examples": [texts[0] + " ->" + decode(tokenizer, [io_ids[0]]), decode(tokenizer, corrupted[0][int(bos is not None):])]})
    return IOITask(name="ioi", title=title, clean=torch.tensor(clean), corrupted=torch.tensor(corrupted),
                   positions=torch.tensor([S - 1]), labels={"io": torch.tensor(io_ids), "s": torch.tensor(s_ids)},
                   chance=0.5, setup=setup, metric_formula="logit(IO) - logit(S) at the last position",
                   accuracy_definition="fraction of prompts with logit(IO) > logit(S) (chance 0.5)")
