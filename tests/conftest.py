"""Shared fixtures: a hand-constructed model, a populated hub cache, and one built wiki.

Helpers (run_wiki, the model builders, paths) live in tests/support, imported as `support`."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import constructed, run_wiki

TIERS = ("unit", "integration", "browser")


def pytest_collection_modifyitems(config, items):
    """Check (never assign) the tiers: every test must carry exactly one of unit, integration, browser."""
    bad = []
    for item in items:
        tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
        if len(tiers) != 1:
            bad.append(f"  {item.nodeid}: {', '.join(tiers) or 'no tier'}")
    if bad:
        raise pytest.UsageError("every test needs exactly one tier marker (unit, integration or browser):\n" + "\n".join(bad))


@pytest.fixture(scope="session")
def constructed_dir(tmp_path_factory) -> Path:
    return constructed.build(tmp_path_factory.mktemp("models") / "constructed")


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory, constructed_dir) -> Path:
    """A Hugging Face cache holding the constructed model under the hub id 'gpt2'."""
    home = tmp_path_factory.mktemp("hf_home")
    snap = home / "hub" / "models--gpt2" / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    for f in constructed_dir.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    refs = home / "hub" / "models--gpt2" / "refs"
    refs.mkdir()
    (refs / "main").write_text("0123456789abcdef")
    return home


@pytest.fixture(scope="session")
def built_wiki(tmp_path_factory, constructed_dir) -> Path:
    """One real `wiki build` (scores, DuckDB, mkdocs) in an empty directory."""
    root = tmp_path_factory.mktemp("wiki")
    run_wiki("build", "--models", str(constructed_dir), "--root", str(root))
    return root


@pytest.fixture(scope="session")
def zoo_scores():
    """An embedded model's bridge and every family's values (task families on 8 prompts), computed once per session."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            from wiki_builder.families import select
            from wiki_builder.models.load import load_model
            from wiki_builder.models.resolve import resolve
            from wiki_builder.scores.base import BuildOptions, RunContext
            from wiki_builder.scores.runner import compute_scores

            bridge = load_model(resolve(name), device="cpu").bridge
            result = compute_scores(bridge, select(), ctx=RunContext(examples=False, options=BuildOptions(task_prompts=8)))
            assert not result.failed, result.failed
            cache[name] = (bridge, result)
        return cache[name]

    return get
