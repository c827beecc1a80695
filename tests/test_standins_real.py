"""The user's command at real size: `HF_HUB_OFFLINE=1 wiki build --models gpt2-small,gpt2-medium,pythia-70m`
on stand-ins (real configs and tokenizers, random weights) placed in a Hugging Face cache under their hub ids.

What it pins: the models resolve and load offline through the real code path; the models table gives the
real parameter counts (tied embeddings once); each run records a peak memory no larger than its estimate;
and no published page (nor the models table) carries a path of the machine that built it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from support import run_wiki
from wiki_builder.models.standins import SHAPES, make_standin, tokenizers_dir

pytestmark = pytest.mark.integration

NAMES = {"gpt2-small": "gpt2", "gpt2-medium": "gpt2-medium", "pythia-70m": "EleutherAI/pythia-70m"}


@pytest.fixture(scope="module")
def real_size_build(tmp_path_factory):
    if tokenizers_dir() is None:
        pytest.fail("../shared/tokenizers is missing: the real-size stand-ins need GPT-2's and GPT-NeoX's tokenizers")
    work = tmp_path_factory.mktemp("standins")
    hf_home = work / "hf_home"
    for hub_id in NAMES.values():
        make_standin(hub_id, work / hub_id.replace("/", "--"), hf_home=hf_home)
    root = work / "wiki"
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # a few families keep the test short (the tasks stop at their two plain passes: random weights do no task);
    # the whole suite at this size is `wiki bench-memory`
    # toy-llama does IOI and greater-than, so their metric pages exist and list every model's set-up beside its own
    result = run_wiki("build", "--models", ",".join([*NAMES, "toy-llama"]), "--metrics", "prev_token,ioi,greater_than",
                      "--root", str(root), env=env, timeout=1500)
    return root, work, result


def test_real_parameter_counts_and_memory(real_size_build):
    root, _, _ = real_size_build
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    rows = dict(con.execute("SELECT model, n_params FROM models").fetchall())
    assert rows["gpt2-small"] == 124_439_808
    assert rows["gpt2-medium"] == 354_823_168
    assert rows["pythia-70m"] == 70_426_624 == SHAPES["EleutherAI/pythia-70m"].n_params
    layers = dict(con.execute("SELECT model, n_layers * n_heads FROM models").fetchall())
    assert {m: layers[m] for m in NAMES} == {"gpt2-small": 144, "gpt2-medium": 384, "pythia-70m": 48}
    runs = con.execute("SELECT model, peak_memory_bytes, estimated_memory_bytes FROM runs WHERE status = 'ok'").fetchall()
    assert {r[0] for r in runs} == {*NAMES, "toy-llama"}
    for model, peak, estimate in runs:
        assert 0 < peak <= estimate, (model, peak, estimate)


def test_metric_pages_show_each_tokenizers_prompt_sets(real_size_build):
    """The published prompts on each real vocabulary, on the metric pages: Wang et al.'s names kept as single
    tokens per tokenizer, and Hanna et al.'s year written as the model writes it."""
    root, _, _ = real_size_build
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    setups = dict(con.execute("SELECT model, setup FROM provenance WHERE metric = 'ioi_mean_ablation'").fetchall())
    setups = {m: setups[m] for m in NAMES}
    names = {m: json.loads(s)["names"] for m, s in setups.items()}
    for count in names.values():  # Wang et al.'s list (about 100 names), kept where ' ' + name is one token
        kept, total = (int(x) for x in count.split("/"))
        assert total >= 100 and 0.9 * total <= kept <= total, names
    ioi_page = (root / "site" / "metrics" / "ioi_mean_ablation.html").read_text()
    gt_page = (root / "site" / "metrics" / "greater_than_mean_ablation.html").read_text()
    for model, count in names.items():
        assert model in ioi_page and count in ioi_page, (model, count)
    assert "The war lasted from the year 1732 to the year 17" in gt_page
    assert "does not do the task" in ioi_page  # random weights: not applicable, with the reason


def test_no_machine_path_in_published_pages(real_size_build):
    root, work, _ = real_size_build
    needles = {str(root), str(work), str(Path.home()), os.path.realpath(str(work))}
    needles |= {str(Path(__file__).resolve().parents[1])}  # the checkout
    con = duckdb.connect(str(root / "data" / "wiki.duckdb"), read_only=True)
    locations = [r[0] for r in con.execute("SELECT location FROM models").fetchall()]
    assert sorted(locations) == sorted([*NAMES.values(), "wiki_builder/models/embedded/toy-llama"])
    pages = [p for p in (root / "site").rglob("*") if p.suffix in (".html", ".json", ".md", ".txt", ".xml", ".js")]
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(errors="replace")
        hits = [n for n in needles if n and n in text]
        assert not hits, f"{page.relative_to(root)} contains {hits}"
