"""A GPT-2 whose OV circuits are written by hand, so each OV score's answer is known by construction.

Word-level vocabulary: names, number words, months, days, two ordinals (too few to make a set),
a few plain words. The residual stream's first V dimensions are a one-hot token block (W_E is
the identity there, positions are zero, MLPs are zero, so the residual after layer 0 is the
token itself). Every head attends uniformly (W_Q = W_K = 0); only the OV circuits differ:

* L0H0 copying: W_V · W_O is the identity on the token block.
* L0H1 anti-copying: minus the identity.
* L0H2 successor: maps each member of number words, months and days to its successor
  (months and days wrap around; "twenty" maps to nothing).
* L0H3 zero.
* L1H0..L1H3 random (seeded).
"""

from __future__ import annotations

from pathlib import Path

import torch

try:
    from wiki_builder import lexicon as _lex

    NAMES, NUMBER_WORDS, MONTHS, DAYS = list(_lex.NAMES), list(_lex.NUMBER_WORDS), list(_lex.MONTHS), list(_lex.DAYS)
except ImportError:  # the lexicon is written alongside; keep the tests runnable without it
    NAMES = ["Mary", "John", "Tom", "James", "Dan", "Sid", "Martin", "Amy", "Paul", "Kate", "Anna", "Mark"]
    NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

ORDINALS_KEPT = ["first", "second"]  # only two ordinals: the set must be dropped (fewer than 3)
PLAIN = ["apple", "river", "mountain", "table", "window", "forest", "paper", "bottle", "engine", "candle"]
SPECIAL = ["<bos>", "<unk>"]
WORDS = list(dict.fromkeys(SPECIAL + NAMES + NUMBER_WORDS + MONTHS + DAYS + ORDINALS_KEPT + PLAIN))
V = len(WORDS)
N_HEAD = 4
D_HEAD = V + (-V % 4)
D = D_HEAD * N_HEAD
N_POS = 32
GAIN = 1.0

EXPECTED = {"copy": (0, 0), "anti_copy": (0, 1), "successor": (0, 2), "zero": (0, 3)}
SUCCESSOR_SETS = {"number_words": (NUMBER_WORDS, False), "months": (MONTHS, True), "days": (DAYS, True)}


def successor_map() -> dict[int, int]:
    """token id -> the id of its successor, for the sets the successor head implements."""
    ids = {w: i for i, w in enumerate(WORDS)}
    out: dict[int, int] = {}
    for words, cyclic in SUCCESSOR_SETS.values():
        for k, w in enumerate(words):
            if k + 1 < len(words) or cyclic:
                out[ids[w]] = ids[words[(k + 1) % len(words)]]
    return out


def build(out_dir: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = GPT2Config(vocab_size=V, n_positions=N_POS, n_embd=D, n_layer=2, n_head=N_HEAD, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    wte = sd["transformer.wte.weight"]
    wte[torch.arange(V), torch.arange(V)] = 1.0
    for name in list(sd):
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            sd[name].fill_(1.0)

    def v_col(head: int, i: int) -> int:  # c_attn is [D, 3D]: x @ W = [q | k | v]
        return 2 * D + head * D_HEAD + i

    def o_row(head: int, i: int) -> int:  # c_proj is [D, D]: z (heads concatenated) @ W
        return head * D_HEAD + i

    w0, o0 = sd["transformer.h.0.attn.c_attn.weight"], sd["transformer.h.0.attn.c_proj.weight"]
    copy, anti, succ, _ = (EXPECTED[k][1] for k in ("copy", "anti_copy", "successor", "zero"))
    for t in range(V):
        for head in (copy, anti, succ):
            w0[t, v_col(head, t)] = 1.0
        o0[o_row(copy, t), t] = GAIN
        o0[o_row(anti, t), t] = -GAIN
    for t, s in successor_map().items():
        o0[o_row(succ, t), s] = GAIN
    gen = torch.Generator().manual_seed(0)
    w1, o1 = sd["transformer.h.1.attn.c_attn.weight"], sd["transformer.h.1.attn.c_proj.weight"]
    w1[:, 2 * D:] = torch.randn(D, D, generator=gen) * 0.05
    o1[:] = torch.randn(D, D, generator=gen) * 0.05
    if "lm_head.weight" in sd:  # tied to wte: loading zeros here would wipe the embedding
        sd["lm_head.weight"] = wte.clone()
    model.load_state_dict(sd)

    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", unk_token="<unk>", pad_token="<bos>")
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    (out_dir / "MODEL_CARD.md").write_text(
        "# constructed-ov\n\nA hand-written GPT-2 for tests: L0H0 copies tokens, L0H1 suppresses them, "
        "L0H2 maps number words, months and days to their successors, L0H3 is zero, layer 1 is random.\n")
    return out_dir
