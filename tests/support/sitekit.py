"""Shared by the site tests (tests/test_site_*.py) and the browser tests (tests/browser/): a model
whose vocabulary is hostile, wikis built once per test session, and a local web server.

Part of the test-support package: imported as `support.sitekit`, so both folders share one module (and one cache).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# Token strings a vocabulary may hold: markup, script, Markdown, entities, table pipes, control
# and bidirectional characters. None contains whitespace (the tokenizer splits on it).
EVIL = [
    "<script>alert(1)</script>",
    "x<script>alert(2)</script>",
    '"><svg/onload=alert(3)>',
    "**bold**",
    "[x](javascript:alert(1))",
    "&amp;",
    "&lt;b&gt;",
    "\u202e",
    "abc\u202edef",
    "\x07",
    "|",
    "`code`",
    "{{x}}",
    "<!--",
    "\u200b",
]
PLAIN = ["cat", "dog", "sun", "moon", "tree", "rock", "bird", "fish"]

_CACHE: dict[str, Path] = {}


def build_evil_model(out_dir: Path) -> Path:
    """A tiny random GPT-2 saved as a Hugging Face directory, with a word-level tokenizer over EVIL + PLAIN."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["<bos>", "<unk>", *EVIL, *PLAIN]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", unk_token="<unk>", pad_token="<bos>")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(words), n_positions=128, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)  # random weights; lm_head stays tied to wte
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    (out_dir / "MODEL_CARD.md").write_text("# evil-vocab\n\nA tiny random GPT-2 whose vocabulary is <script>alert(1)</script>, **Markdown** and control characters.\n")
    return out_dir


def two_model_wiki(tmp_path_factory, constructed_dir: Path) -> tuple[Path, str]:
    """One real wiki, built in two steps as a user would: the constructed model, then the evil-vocab
    model added to it. Returns the root and the second build's output. Built once per session."""
    if "two" not in _CACHE:
        from support import run_wiki

        evil = build_evil_model(tmp_path_factory.mktemp("models") / "evil-vocab")
        root = tmp_path_factory.mktemp("wiki2")
        run_wiki("build", "--models", str(constructed_dir), "--root", str(root))
        time.sleep(0.05)
        (root / "first-build.time").write_text(repr(time.time()))
        time.sleep(0.05)
        second = run_wiki("build", "--models", str(evil), "--root", str(root))
        (root / "second-build.log").write_text(second.stdout + second.stderr)
        _CACHE["two"] = root
    root = _CACHE["two"]
    return root, (root / "second-build.log").read_text()


def synthetic_wiki(tmp_path_factory, n_models: int = 3) -> Path:
    """A wiki from the benchmark's synthetic database (gpt2-small's shape among its models), built
    with mkdocs; no torch. Built once per session."""
    key = f"synthetic-{n_models}"
    if key not in _CACHE:
        from wiki_builder.benchmarks.site import make_database
        from wiki_builder.site.render import build_site, render_markdown
        from wiki_builder.workspace import open_workspace

        root = tmp_path_factory.mktemp("synthetic")
        make_database(root, n_models=n_models, parquet=True)
        ws = open_workspace(root)
        render_markdown(ws)
        build_site(ws)
        _CACHE[key] = root
    return _CACHE[key]


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve a built site on 127.0.0.1 (a free port) from a background thread; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # noqa: D401 - keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# Model shapes of the site benchmark spanning its families, from 4 to 1,200 heads (gpt2-xl's 48 x 25):
# enough for the lazy grids, the mosaics' overview and every page kind, at a fraction of its 67 models.
VARIED = ("gpt2-small", "gpt2-xl", "pythia-14m", "pythia-160m", "opt-125m", "gpt-neo-125M", "attn-only-1l", "attn-only-2l",
          "gelu-2l", "solu-4l", "stories260K", "Qwen2.5-0.5B", "gemma-2b", "tiny-stories-1M", "tiny-stories-1L-21M",
          "toy-gpt2-0", "toy-llama-1", "toy-neox-2")


def varied_synthetic_wiki(tmp_path_factory) -> Path:
    """A wiki of the benchmark's synthetic data for the ``VARIED`` shapes, built with mkdocs; no torch. Built once per session."""
    if "varied" not in _CACHE:
        import datetime as dt

        import numpy as np

        from wiki_builder.benchmarks.site import MODELS, model_record
        from wiki_builder.models.resolve import slugify
        from wiki_builder.site.render import build_site, render_markdown
        from wiki_builder.store import rebuild_db, write_record
        from wiki_builder.workspace import open_workspace

        root = tmp_path_factory.mktemp("varied")
        data = root / "data"
        data.mkdir()
        rng = np.random.default_rng(0)
        specs = [s for s in MODELS if s[0] in VARIED]
        records = [model_record(rng, spec, dt.datetime(2026, 1, 1).isoformat()) for spec in specs]
        for rec in records:
            write_record(data, slugify(rec.model["model"]), rec)
        rebuild_db(data, records)
        ws = open_workspace(root)
        render_markdown(ws)
        build_site(ws)
        _CACHE["varied"] = root
    return _CACHE["varied"]
