"""A GPT-2 whose heads are written by hand, so each score's answer is known by construction.

Residual stream blocks (one-hot features): [token (V) | position (N) | previous token (V) | zero pad].

* L0H0 previous-token head: queries read the position p, keys the position j, and match when
  j = p - 1; its OV copies the attended token into the "previous token" block.
* L0H1 duplicate-token head: queries and keys read the token, with a penalty on the key's
  own position so a token looks at its earlier copy rather than itself. Its OV writes nothing.
* L1H0 induction head: queries read the current token, keys read the "previous token"
  block written by L0H0 (K-composition), so it attends to the token after the earlier copy.
* L1H1 positional head: attends to a fixed offset (q - OFFSET). With one fixed period
  T = OFFSET + 1 it would look exactly like an induction head; the wiki's varied periods
  must tell them apart.
MLPs are zero. The model is saved as a real Hugging Face directory with a word-level tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import torch

V, N, OFFSET = 64, 104, 30
PREV = V + N
D_HEAD = 176
N_HEAD = 2
D = D_HEAD * N_HEAD
SCALE = 3.0

EXPECTED = {"prev_token": (0, 0), "duplicate_token": (0, 1), "induction": (1, 0), "positional": (1, 1)}


def build(out_dir: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    cfg = GPT2Config(vocab_size=V, n_positions=N, n_embd=D, n_layer=2, n_head=N_HEAD, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    wte, wpe = sd["transformer.wte.weight"], sd["transformer.wpe.weight"]
    wte[torch.arange(V), torch.arange(V)] = 1.0
    wpe[torch.arange(N), V + torch.arange(N)] = 1.0
    for name in list(sd):
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            sd[name].fill_(1.0)

    def qkv(layer: int) -> torch.Tensor:
        return sd[f"transformer.h.{layer}.attn.c_attn.weight"]  # [D, 3D]: x @ W = [q | k | v]

    def q_col(head: int, i: int) -> int:
        return head * D_HEAD + i

    def k_col(head: int, i: int) -> int:
        return D + head * D_HEAD + i

    def v_col(head: int, i: int) -> int:
        return 2 * D + head * D_HEAD + i

    w0, w1 = qkv(0), qkv(1)
    # L0H0: previous token. q(pos p) = u_p, k(pos j) = u_{j+1}.
    for p in range(N):
        w0[V + p, q_col(0, p)] = SCALE
        if p + 1 < N:
            w0[V + p, k_col(0, p + 1)] = SCALE
    for t in range(V):  # OV: token t -> previous-token block
        w0[t, v_col(0, t)] = 1.0
        # ln_1 scales a one-hot residual up by ~1/std (about 13); scale back so the block is ~1
        sd["transformer.h.0.attn.c_proj.weight"][0 * D_HEAD + t, PREV + t] = (2 / D) ** 0.5
    # L0H1: duplicate token. Same token matches; the key's own position is penalised.
    for t in range(V):
        w0[t, q_col(1, t)] = SCALE
        w0[t, k_col(1, t)] = SCALE
    for p in range(N):
        w0[V + p, q_col(1, V + p)] = SCALE
        w0[V + p, k_col(1, V + p)] = -SCALE
    # L1H0: induction. q reads the current token, k reads the previous-token block.
    for t in range(V):
        w1[t, q_col(0, t)] = SCALE
        w1[PREV + t, k_col(0, t)] = SCALE
    # L1H1: fixed offset OFFSET.
    for p in range(N):
        w1[V + p, q_col(1, p)] = SCALE
        if p + OFFSET < N:
            w1[V + p, k_col(1, p + OFFSET)] = SCALE
    if "lm_head.weight" in sd:  # tied to wte: loading zeros here would wipe the embedding
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
    (out_dir / "MODEL_CARD.md").write_text("# constructed\n\nA hand-written GPT-2 for tests: L0H0 previous token, L0H1 duplicate token, L1H0 induction, L1H1 fixed offset.\n")
    return out_dir
