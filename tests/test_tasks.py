"""Task prompt builders: on the zoo's word-level tokenizer, a hand-built GPT-2-style BPE, the embedded models and stories260K."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from support import ZOO_NAMES, embedded_dir, stories260k
from wiki_builder import lexicon as L
from wiki_builder.tasks.greater_than import year_spelling
from wiki_builder.tasks.prompts import build_task
from wiki_builder.tasks.table import TASKS as TASK_ROWS

TASKS = [t.name for t in TASK_ROWS]


def zoo_tokenizer():
    from wiki_builder.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


def bpe_tokenizer(tmp: Path):
    """A byte-level BPE built by hand the way GPT-2's is: ' 1732' is [' 17', '32'], words carry their leading space.

    Merges for the centuries come first (as in GPT-2, where ' 17' merges early), so a year
    splits into the century and its last two digits.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()
    vocab: dict[str, int] = {"<|endoftext|>": 0}
    for ch in sorted(alphabet):
        vocab.setdefault(ch, len(vocab))
    merges: list[tuple[str, str]] = []

    def add(word: str) -> None:
        pieces = ["\u0120" if c == " " else c for c in word]
        cur = pieces[0]
        for p in pieces[1:]:
            if (cur, p) not in seen:
                seen.add((cur, p))
                merges.append((cur, p))
            cur = cur + p
            vocab.setdefault(cur, len(vocab))

    seen: set[tuple[str, str]] = set()
    for c in L.CENTURIES:
        add(" " + c)
    for yy in L.TWO_DIGIT:
        add(yy)
    words = (L.NAMES + L.IOI_PLACES + L.IOI_OBJECTS + L.IOI_VERBS + L.GREATER_THAN_NOUNS + L.NUMBER_WORDS + L.MONTHS + L.DAYS
             + L.DIGITS + " ".join(L.IOI_TEMPLATES + [L.GREATER_THAN_TEMPLATE]).split())
    words = list(dict.fromkeys(w for w in words if "{" not in w))
    for w in words:  # every leading-space word first, so its merges outrank the bare words'
        add(" " + w)
    for w in words:
        add(w)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.save_pretrained(tmp)
    return PreTrainedTokenizerFast.from_pretrained(tmp)


def check_task(task, tokenizer, bos):
    """Invariants every expressible task keeps."""
    assert task.applicable and task.n > 0, task.reason
    assert task.clean.shape == task.corrupted.shape and task.clean.dim() == 2
    if bos is not None:
        assert (task.clean[:, 0] == bos).all() and (task.corrupted[:, 0] == bos).all()
    assert int(task.positions.max()) < task.clean.shape[1]
    assert task.example() == task.clean[0].tolist()
    assert task.setup["n_prompts"] == task.n
    V = len(tokenizer)
    logits = torch.randn(task.n, task.positions.numel(), V)
    assert task.metric(logits).shape == (task.n,)
    assert task.metric(logits[None].expand(3, -1, -1, -1)).shape == (3, task.n)
    assert task.correct(logits).shape == (task.n,)
    assert task.direction(torch.randn(16, V)).shape == (task.n, task.positions.numel(), 16)


@pytest.mark.unit
@pytest.mark.parametrize("name", TASKS)
def test_builders_on_zoo_tokenizer(name):
    tok = zoo_tokenizer()
    task = build_task(name, tok, n=12, seed=0, bos=0, n_ctx=128, d_vocab=len(tok))
    check_task(task, tok, 0)


@pytest.mark.unit
def test_ioi_prompts_are_what_they_say():
    tok = zoo_tokenizer()
    task = build_task("ioi", tok, n=16, seed=1, bos=0, n_ctx=128)
    assert task.setup["names"] == f"{len(L.NAMES)}/{len(L.NAMES)}"
    for row, crow, io, s in zip(task.clean.tolist(), task.corrupted.tolist(), task.labels["io"].tolist(), task.labels["s"].tolist()):
        assert io != s and row.count(io) == 1 and row.count(s) == 2  # IO once, the subject twice
        assert tok.convert_ids_to_tokens(row[-1]) in ("to",)
        names = {tok.convert_ids_to_tokens(t) for t in crow} & set(L.NAMES)
        assert len(names) == 3  # ABC: three distinct names
        assert [t for t in row if tok.convert_ids_to_tokens(t) not in L.NAMES] == [t for t in crow if tok.convert_ids_to_tokens(t) not in L.NAMES]
    orders = [row.index(io) < row.index(s) for row, io, s in zip(task.clean.tolist(), task.labels["io"].tolist(), task.labels["s"].tolist())]
    assert any(orders) and not all(orders)  # ABBA and BABA


@pytest.mark.unit
def test_greater_than_year_is_century_plus_two_digits_on_both_tokenizers(tmp_path):
    zoo = zoo_tokenizer()
    bpe = bpe_tokenizer(tmp_path)
    assert bpe.encode(" 1732", add_special_tokens=False) == [bpe.convert_tokens_to_ids("\u012017"), bpe.convert_tokens_to_ids("32")]
    assert year_spelling(zoo)[0] == "separated" and year_spelling(bpe)[0] == "joined"
    for tok, bos in ((zoo, 0), (bpe, 0)):
        task = build_task("greater_than", tok, n=16, seed=0, bos=bos, n_ctx=128)
        check_task(task, tok, bos)
        form = task.setup["year_spelling"]
        for row, crow, yy in zip(task.clean.tolist(), task.corrupted.tolist(), task.labels["yy"].tolist()):
            assert (f"{row[-1] and ''}{yy:02d} to" if form == "joined" else f" {yy:02d} to") in tok.decode(row[1:])
            century = row[-1]
            k = row.index(century)  # the first year: [century, YY]
            assert tok.convert_ids_to_tokens(row[k + 1]).lstrip("\u0120") == f"{yy:02d}"
            assert tok.convert_ids_to_tokens(crow[k + 1]).lstrip("\u0120") == "01"
            assert row[:k + 1] == crow[:k + 1] and row[k + 2:] == crow[k + 2:]
            assert tok.encode(tok.decode(row[1:]), add_special_tokens=False) == row[1:]  # the prompt is how the tokenizer writes it
        assert (task.labels["sign"].sum(-1) != 0).any() and len(task.labels["year_ids"]) == 100


@pytest.mark.unit
def test_sequence_and_induction_prompts():
    tok = zoo_tokenizer()
    seq = build_task("sequence", tok, n=20, seed=0, bos=0, n_ctx=128)
    ids = {name: [tok.convert_tokens_to_ids(w) for w in words] for name, words in (("digits", L.DIGITS), ("number_words", L.NUMBER_WORDS),
                                                                                   ("months", L.MONTHS), ("days", L.DAYS))}
    for row, nxt, last in zip(seq.clean.tolist(), seq.labels["next"].tolist(), seq.labels["last"].tolist()):
        members = next(m for m in ids.values() if row[1] in m)
        i = members.index(row[1])
        run = [members[(i + k) % len(members)] for k in range(5)]
        assert row[1:] == run[:4] and nxt == run[4] and last == run[3]
    assert set(seq.setup["prompts_per_set"]) == {"digits", "number_words", "months", "days"}
    ind = build_task("induction_task", tok, n=6, seed=0, bos=0, n_ctx=128, d_vocab=len(tok), period=10)
    assert ind.clean.shape == (6, 21)
    assert (ind.clean[:, 1:11] == ind.clean[:, 11:]).all() and (ind.corrupted[:, 11:] == ind.clean[:, 11:]).all()
    assert (ind.corrupted[:, 1:11].sort(-1).values == ind.clean[:, 1:11].sort(-1).values).all()
    assert not (ind.corrupted[:, 1:11] == ind.clean[:, 1:11]).all()
    assert ind.positions.tolist() == list(range(11, 20)) and (ind.labels["next"] == ind.clean[:, 12:21]).all()


@pytest.mark.unit
def test_builders_on_bpe_tokenizer(tmp_path):
    tok = bpe_tokenizer(tmp_path)
    for name in TASKS:
        task = build_task(name, tok, n=8, seed=0, bos=0, n_ctx=1024, d_vocab=len(tok))
        check_task(task, tok, 0)
    ioi = build_task("ioi", tok, n=4, seed=0, bos=0)
    assert ", " in ioi.setup["examples"][0] and " ," not in ioi.setup["examples"][0]  # natural punctuation for BPE


@pytest.mark.unit
def test_too_small_vocabulary_is_not_applicable(tmp_path):
    """A tokenizer without the lexicon's words: every task except induction says why it cannot be built."""
    from transformers import AutoTokenizer

    from support import constructed

    tok = AutoTokenizer.from_pretrained(constructed.build(tmp_path / "m"))
    for name in ("ioi", "greater_than", "sequence"):
        task = build_task(name, tok, n=8, bos=0, n_ctx=104)
        assert not task.applicable and task.reason and task.example() is None
    assert build_task("induction_task", tok, n=4, bos=0, n_ctx=104, d_vocab=64).applicable


@pytest.mark.integration
@pytest.mark.parametrize("name", TASKS)
def test_builders_on_embedded_zoo_tokenizers(name):
    from transformers import AutoTokenizer

    for d in map(embedded_dir, ZOO_NAMES):  # a missing member fails
        tok = AutoTokenizer.from_pretrained(d)
        task = build_task(name, tok, n=8, seed=0, bos=tok.bos_token_id, n_ctx=128, d_vocab=len(tok))
        check_task(task, tok, tok.bos_token_id)


@pytest.fixture(scope="module")
def stories_dir(tmp_path_factory):
    from wiki_builder.models.llama2c import convert_llama2c

    return convert_llama2c(*stories260k(), tmp_path_factory.mktemp("llama2c") / "stories260K-hf")


@pytest.mark.integration
def test_stories260k_cannot_express_most_tasks(stories_dir):
    """Its 512-token vocabulary has no single-token names, years, numbers, months or days."""
    from wiki_builder.families import select
    from wiki_builder.models.load import load_model
    from wiki_builder.models.resolve import ModelSpec
    from wiki_builder.scores.base import RunContext
    from wiki_builder.scores.runner import compute_scores

    bridge = load_model(ModelSpec("stories260K", "local", str(stories_dir)), device="cpu").bridge
    res = compute_scores(bridge, select(["ioi", "greater_than", "sequence", "induction_task"]), ctx=RunContext(seed=0, examples=False))
    for fam in ("ioi", "greater_than", "sequence"):
        outs = [o for oid, o in res.outputs.items() if oid.startswith(fam + "_")]
        assert len(outs) == 7 and all(not o.applicable and "single token" in o.reason for o in outs), [o.reason for o in outs]
    ind = res.outputs["induction_task_mean_ablation"]
    # the induction prompts can be built; whether the model does the task decides (and is said)
    assert ind.applicable or ("accuracy" in ind.reason and ind.setup["n_prompts"] > 0)


@pytest.mark.unit
def test_a_gap_too_small_for_fractions_is_not_applicable():
    """Fractions of the clean-minus-corrupted gap need a gap of at least 5% of the clean metric."""
    from types import SimpleNamespace

    from wiki_builder.tasks.score import MIN_GAP_FRACTION, model_does_task

    task = SimpleNamespace(threshold=0.5, chance=0.1, accuracy_definition="top-1", setup={"corruption": "YY -> 01"})

    def runs(clean, corrupted):
        return SimpleNamespace(accuracy=0.9, clean_metric=clean, corrupted_metric=corrupted, gap=clean - corrupted, kl_corrupted=0.1)

    assert model_does_task(task, runs(0.8, 0.2)) == (True, "")
    ok, reason = model_does_task(task, runs(0.364, 0.361))  # a gap of under 5% of the clean metric
    assert not ok and "lowers the metric by only 0.003" in reason and f"{MIN_GAP_FRACTION:.0%}" in reason
    ok, reason = model_does_task(task, runs(0.63, 0.72))  # the corruption raises the metric
    assert not ok and "does not lower the metric" in reason
    assert model_does_task(task, runs(-2.0, -2.2))[0]  # a negative clean metric: 5% of |M_clean| is 0.1 < 0.2


@pytest.mark.integration
def test_toy_neox_greater_than_is_not_applicable_for_its_tiny_gap():
    """On a real model: toy-neox's answer hardly depends on the start year, so the corruption lowers the metric by
    under 5% of its clean value (0.0124 of 0.59) and the 5% rule, not the sign check, marks the task."""
    from wiki_builder.models.load import load_model
    from wiki_builder.models.resolve import resolve
    from wiki_builder.tasks.prompts import for_bridge
    from wiki_builder.tasks.score import MIN_GAP, score_task

    embedded_dir("toy-neox")  # a missing embedded model is a failure, never a skip
    bridge = load_model(resolve("toy-neox"), device="cpu").bridge
    score = score_task(bridge, for_bridge("greater_than", bridge, n=32, seed=0), ["mean"])
    out = score.outputs["greater_than_mean_ablation"]
    assert not out.applicable and "lowers the metric by only" in out.reason, out.reason
    assert MIN_GAP < score.runs.gap < 0.05 * abs(score.runs.clean_metric)
