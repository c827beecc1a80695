"""The llama2.c -> Hugging Face converter, checked against the direct llama2.c implementation.

Uses the real stories260K checkpoint kept (read-only) in the shared data folder
beside the repository checkout: ../shared/models/stories260K, or
$HEADWIKI_SHARED/models/stories260K when HEADWIKI_SHARED is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from support import STORIES, stories260k
from wiki_builder.models.llama2c import (
    convert_llama2c,
    read_checkpoint,
    read_tokenizer,
    read_verification_report,
    reference_encode,
    reference_forward,
    reference_greedy,
)

pytestmark = pytest.mark.integration

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never reach for the hub

BIN, TOK = STORIES / "stories260K.bin", STORIES / "tok512.bin"
TOL = 1e-4
SENTENCES = [
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat. It was happy!",
    "Ben and Mia went to the park to play with a big red ball.",
    "  two  spaces,\ttabs and a\nnewline, caf\u00e9 \U0001f600",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llama2c") / "stories260K-hf"
    return convert_llama2c(*stories260k(), out, verify=True)


@pytest.fixture(scope="module")
def reference() -> tuple:
    ckpt, tok = stories260k()
    cfg, weights = read_checkpoint(ckpt)
    return cfg, weights, read_tokenizer(tok)


@pytest.fixture(scope="module")
def hf_model(converted: Path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(str(converted), dtype=torch.float32, local_files_only=True).eval()


@pytest.fixture(scope="module")
def hf_tokenizer(converted: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(converted), local_files_only=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_the_checkpoint_is_there() -> None:
    """A missing stories260K is a failure, never a skip."""
    assert stories260k() == (BIN, TOK)


def test_written_directory(converted: Path, reference) -> None:
    cfg, _, _ = reference
    names = {p.name for p in converted.iterdir()}
    expected = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md"}
    assert expected <= names
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")], "temporary dir left behind"
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(str(converted), local_files_only=True)
    assert (hf.hidden_size, hf.intermediate_size, hf.num_hidden_layers) == (64, 172, 5)
    assert (hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim) == (8, 4, 8)
    assert (hf.vocab_size, hf.max_position_embeddings) == (512, 512)
    assert hf.rms_norm_eps == 1e-5 and hf.rope_parameters["rope_theta"] == 10000.0
    assert hf.tie_word_embeddings and (hf.bos_token_id, hf.eos_token_id) == (1, 2)
    assert cfg.shared_classifier
    card = (converted / "MODEL_CARD.md").read_text()
    assert "karpathy/llama2.c" in card and "MIT" in card and "934dab4" in card
    report = read_verification_report(converted)
    assert report.max_abs_logit_diff < TOL


def test_logits_match_reference(hf_model, reference) -> None:
    cfg, weights, pieces = reference
    rng = np.random.default_rng(1234)
    sequences = [
        reference_encode(pieces, "Once upon a time, there was a little girl", bos=True),
        [int(t) for t in rng.integers(0, cfg.vocab_size, size=64)],
    ]
    for ids in sequences:
        ref = reference_forward(cfg, weights, ids)
        with torch.no_grad():
            got = hf_model(torch.tensor([ids])).logits[0].double().numpy()
        assert got.shape == ref.shape == (len(ids), cfg.vocab_size)
        assert np.abs(got - ref).max() < TOL


def test_greedy_continuation(hf_model, hf_tokenizer, reference) -> None:
    cfg, weights, pieces = reference
    prompt = reference_encode(pieces, "Once upon a time", bos=True)
    assert hf_tokenizer("Once upon a time")["input_ids"] == prompt
    ref_new = reference_greedy(cfg, weights, prompt, 20)
    with torch.no_grad():  # generate() uses the KV cache: a different code path from the forward check
        out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False)
    hf_new = out[0, len(prompt) :].tolist()
    assert hf_new == ref_new and len(hf_new) == 20
    text = hf_tokenizer.decode(out[0], skip_special_tokens=True)
    assert text.startswith("Once upon a time, there was a little girl")
    assert re.fullmatch(r"[A-Za-z ,.'!?]+", text), text  # plain English words and punctuation


def test_tokenizer_round_trips(hf_tokenizer, reference) -> None:
    _, _, pieces = reference
    for text in SENTENCES:
        ids = hf_tokenizer(text)["input_ids"]
        assert ids == reference_encode(pieces, text, bos=True), text
        assert hf_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert hf_tokenizer.convert_ids_to_tokens([0, 1, 2, 3 + 0x41, 259, 265]) == [
        "<unk>", "<s>", "</s>", "<0x41>", "\u2581t", "\u2581the",
    ]  # fmt: skip
    assert (hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id, hf_tokenizer.unk_token_id) == (1, 2, 0)


def test_transformer_bridge(converted: Path, reference) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    cfg, weights, pieces = reference
    bridge = TransformerBridge.boot_transformers(str(converted), device="cpu")
    bridge.enable_compatibility_mode()
    text = "Once upon a time, there was a little girl"
    tokens = bridge.to_tokens(text)
    ids = reference_encode(pieces, text, bos=True)
    assert tokens[0].tolist() == ids  # exactly one BOS even though the tokenizer adds it itself
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens)
    n = len(ids)
    for layer in range(cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert pattern.shape == (1, cfg.n_heads, n, n)  # 8 query heads despite 4 kv heads (GQA)
        assert torch.allclose(pattern.sum(-1), torch.ones(1, cfg.n_heads, n), atol=1e-5)
        assert torch.all(pattern[0].triu(1) == 0)  # causal
    # Compatibility mode centres the unembedding (center_unembed), which shifts every
    # logit at a position by the same constant; softmax is unchanged, so compare log_softmax.
    ref = reference_forward(cfg, weights, ids)
    got = logits[0].double().numpy()
    assert np.abs(_log_softmax(got) - _log_softmax(ref)).max() < TOL


def test_truncated_or_corrupted_bin_raises(tmp_path: Path) -> None:
    data = BIN.read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[: len(data) - 1000])
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"needs exactly 264128 float32.*truncated"):
        convert_llama2c(truncated, TOK, out, verify=False)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["truncated.bin"]

    bad_header = tmp_path / "bad_header.bin"
    header = np.frombuffer(data[:28], dtype="<i4").copy()
    header[2] = 6  # n_layers 5 -> 6: the float count no longer matches the file
    bad_header.write_bytes(header.tobytes() + data[28:])
    with pytest.raises(ValueError, match=r"float32"):
        read_checkpoint(bad_header)

    with pytest.raises(ValueError, match="not found"):
        read_checkpoint(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="truncated"):
        (tmp_path / "tok.bin").write_bytes(TOK.read_bytes()[:-3])
        read_tokenizer(tmp_path / "tok.bin")


def test_existing_nonempty_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="overwrite=True"):
        convert_llama2c(BIN, TOK, out, verify=False)
    assert (out / "keep.txt").read_text() == "precious"
    convert_llama2c(BIN, TOK, out, verify=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
