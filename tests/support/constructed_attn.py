"""A one-layer GPT-2 whose four heads are written by hand, each with a known attention pattern.

Residual stream blocks (one-hot features): [token (V) | position (N) | zero pad]. Every head's
value and output weights are zero (only the patterns matter here); MLPs are zero.

* H0 self: queries and keys read the position, and match when they are equal.
* H1 sink: every query reads the same direction, which only position 0 (BOS) writes into its key.
* H2 uniform: zero query and key weights, so it spreads evenly over the q + 1 keys it may see.
* H3 previous token: queries read the position p, keys the position j, and match when j = p - 1.
"""

from __future__ import annotations

from pathlib import Path

import torch

V, N = 64, 104
D_HEAD = N
N_HEAD = 4
D = D_HEAD * N_HEAD
SCALE = 3.0

HEADS = {"self": 0, "sink": 1, "uniform": 2, "previous": 3}


def build(out_dir: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = GPT2Config(vocab_size=V, n_positions=N, n_embd=D, n_layer=1, n_head=N_HEAD, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    wte, wpe = sd["transformer.wte.weight"], sd["transformer.wpe.weight"]
    wte[torch.arange(V), torch.arange(V)] = 1.0
    wpe[torch.arange(N), V + torch.arange(N)] = 1.0
    for name in list(sd):
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            sd[name].fill_(1.0)
    w = sd["transformer.h.0.attn.c_attn.weight"]  # [D, 3D]: x @ W = [q | k | v]

    def q_col(head: int, i: int) -> int:
        return head * D_HEAD + i

    def k_col(head: int, i: int) -> int:
        return D + head * D_HEAD + i

    for p in range(N):
        w[V + p, q_col(HEADS["self"], p)] = SCALE
        w[V + p, k_col(HEADS["self"], p)] = SCALE
        w[V + p, q_col(HEADS["sink"], 0)] = SCALE
        w[V + p, q_col(HEADS["previous"], p)] = SCALE
        if p + 1 < N:
            w[V + p, k_col(HEADS["previous"], p + 1)] = SCALE
    w[V + 0, k_col(HEADS["sink"], 0)] = SCALE
    if "lm_head.weight" in sd:
        sd["lm_head.weight"] = wte.clone()
    model.load_state_dict(sd)

    vocab = {"<bos>": 0, "<unk>": 1, **{f"t{i}": i for i in range(2, V)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", unk_token="<unk>", pad_token="<bos>")
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    (out_dir / "MODEL_CARD.md").write_text("# constructed attention\n\nA hand-written one-layer GPT-2 for tests: self, sink, uniform and previous-token heads.\n")
    return out_dir
