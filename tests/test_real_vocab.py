"""Task prompts on real vocabularies: GPT-2's and GPT-NeoX's (Pythia's) tokenizers from ../shared/tokenizers.

The published prompts, token by token: greater-than is Hanna et al.'s "... from the year 1732 to the
year 17" with " 17" + "32"; IOI uses Wang et al.'s templates, places, objects and names; the
successor and sequence sets keep every member. A tokenizer that splits digits one by one gets
greater-than marked not applicable, never another prompt; the embedded zoo keeps its spelling.
"""

from __future__ import annotations

import pytest

from wiki_builder import lexicon as L
from wiki_builder.models.resolve import EMBEDDED_DIR
from wiki_builder.models.standins import tokenizers_dir
from wiki_builder.tasks import greater_than, ioi, sequence

TOKENIZERS = tokenizers_dir()


def real(name: str):
    if TOKENIZERS is None or not (TOKENIZERS / name / "tokenizer.json").is_file():
        pytest.skip("../shared/tokenizers is not on this machine")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZERS / name))


def toks(tok, text: str) -> list[str]:
    return tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))


@pytest.mark.unit
@pytest.mark.parametrize("name", ["gpt2", "gpt-neox-20b"])
def test_greater_than_is_hanna_et_al_prompt(name):
    tok = real(name)
    assert greater_than.spelling_of_year(tok) == ("joined", ["\u012017", "32"])
    task = greater_than.build(tok, n=32, seed=0, bos=tok.bos_token_id)
    assert task.applicable_prompts
    assert task.setup["paper_prompt"] == "The war lasted from the year 1732 to the year 17"
    assert task.setup["paper_prompt_tokens"] == ["The", "\u0120war", "\u0120lasted", "\u0120from", "\u0120the", "\u0120year",
                                                 "\u012017", "32", "\u0120to", "\u0120the", "\u0120year", "\u012017"]
    for row, yy in zip(task.clean.tolist(), task.labels["yy"].tolist()):
        text = tok.decode(row[1:])
        c = text[-2:]
        assert text.endswith(f"from the year {c}{yy:02d} to the year {c}"), text
        k = len(row) - 5
        assert tok.convert_ids_to_tokens(row[k - 1:k + 1]) == ["\u0120" + c, f"{yy:02d}"]


@pytest.mark.unit
def test_greater_than_counts_on_real_vocabularies():
    assert greater_than.build(real("gpt2"), n=32, seed=0, bos=50256).setup["year_pairs"] == "631/700"
    assert greater_than.build(real("gpt-neox-20b"), n=32, seed=0, bos=0).setup["year_pairs"] == "470/700"


@pytest.mark.unit
def test_digit_by_digit_tokenizer_is_not_applicable():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>"] + [str(d) for d in range(10)] + [str(c) for c in range(11, 18)] + [f"{i:02d}" for i in range(100)] + \
        "The war lasted from the year to".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>")
    assert greater_than.spelling_of_year(tok)[0] == ""
    task = greater_than.build(tok, n=8, seed=0, bos=1)
    assert not task.applicable and "' 1732' as 4 tokens" in task.reason and task.n == 0


@pytest.mark.unit
def test_zoo_keeps_its_two_word_years():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(EMBEDDED_DIR / "toy-gpt2"))
    assert greater_than.spelling_of_year(tok)[0] == "separated"
    task = greater_than.build(tok, n=32, seed=0, bos=tok.bos_token_id)
    assert task.setup["paper_prompt"] == "The war lasted from the year 17 32 to the year 17"
    assert task.setup["year_pairs"] == "700/700"
    ioi_task = ioi.build(tok, n=32, seed=0, bos=tok.bos_token_id)
    assert ioi_task.setup["prompt_set"].startswith("lexicon") and ioi_task.setup["names"] == f"{len(L.NAMES)}/{len(L.NAMES)}"


@pytest.mark.unit
@pytest.mark.parametrize("name", ["gpt2", "gpt-neox-20b"])
def test_ioi_uses_wang_et_al_lists(name):
    tok = real(name)
    assert ioi.paper_expressible(tok)
    assert toks(tok, "Then, Mary and John went to the store. John gave a drink to") == [
        "Then", ",", "\u0120Mary", "\u0120and", "\u0120John", "\u0120went", "\u0120to", "\u0120the", "\u0120store", ".",
        "\u0120John", "\u0120gave", "\u0120a", "\u0120drink", "\u0120to"]
    task = ioi.build(tok, n=32, seed=0, bos=tok.bos_token_id)
    s = task.setup
    assert s["prompt_set"].startswith("Wang et al. 2022")
    assert s["names"] == "109/109" and s["places"] == "8/8" and s["objects"] == "8/8"
    assert set(s["templates"]) <= set(L.IOI_PAPER_TEMPLATES) and len(L.IOI_PAPER_TEMPLATES) == 15
    assert s["templates_used"].startswith(("6/15", "5/15"))
    for row, io in zip(task.clean.tolist(), task.labels["io"].tolist()):
        text = tok.decode(row[1:])
        assert any(text.startswith(t.split("{A}")[0].format(PLACE="").strip()[:4]) for t in s["templates"])
        assert tok.convert_ids_to_tokens(io).lstrip("\u0120") in L.IOI_PAPER_NAMES


@pytest.mark.unit
@pytest.mark.parametrize("name", ["gpt2", "gpt-neox-20b"])
def test_successor_and_sequence_sets_are_complete(name):
    from wiki_builder.scores.weights.successor import ordinal_sets

    tok = real(name)
    used, dropped = ordinal_sets(tok)
    counts = {k: (len(v["members"]), v["total"], len(v["pairs"])) for k, v in used.items()}
    assert counts == {"numbers": (200, 200, 199), "number_words": (20, 20, 19), "ordinals": (10, 10, 9), "days": (7, 7, 7),
                      "months": (12, 12, 12), "day_prefixes": (7, 7, 7), "month_prefixes": (12, 12, 12), "letters": (26, 26, 25)}
    assert not dropped
    seq = sequence.build(tok, n=32, seed=0, bos=tok.bos_token_id)
    assert seq.setup["sets"] == {"digits": "10/10", "number_words": "20/20", "months": "12/12", "days": "7/7"}
    assert toks(tok, " Monday Tuesday Wednesday Thursday") == ["\u0120Monday", "\u0120Tuesday", "\u0120Wednesday", "\u0120Thursday"]
