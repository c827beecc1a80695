"""The package's shape: stages import only stages below them, no import cycles, and the light parts stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "wiki_builder"

# Low to high. A module may import its own stage and any stage listed before it, never one after it.
STAGES: list[set[str]] = [
    {"lexicon", "faults", "workspace"},
    {"models"},
    {"scores"},
    {"tasks"},
    {"families"},
    {"store"},
    {"site"},
    {"executors"},
    {"build"},
    {"benchmarks", "zoo"},
    {"cli"},
]
LEVEL = {name: i for i, names in enumerate(STAGES) for name in names}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every wiki_builder module this file imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("wiki_builder")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("wiki_builder"):
                continue
            found.add(target)
            for alias in node.names:  # "from . import engine" imports a module
                if (PACKAGE.parent / (target.replace(".", "/") + f"/{alias.name}.py")).exists() or \
                        (PACKAGE.parent / (target.replace(".", "/") + f"/{alias.name}/__init__.py")).exists():
                    found.add(f"{target}.{alias.name}")
    found.discard(me)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "wiki_builder"


def test_every_module_belongs_to_a_stage():
    unknown = sorted({_stage(m) for m in _graph()} - set(LEVEL) - {"wiki_builder"})
    assert not unknown, f"modules outside the known stages: {unknown}; add them to STAGES in this test and to the README's map"


def test_lower_stages_never_import_higher_ones():
    bad = []
    for module, targets in _graph().items():
        if _stage(module) == "wiki_builder":
            continue
        for target in targets:
            if _stage(target) in LEVEL and LEVEL[_stage(target)] > LEVEL[_stage(module)]:
                bad.append(f"{module} -> {target}")
    assert not bad, "imports from a higher stage:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    # a package's __init__ is imported with any of its modules: count "x.y -> x" only through real edges
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_layering_test_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: a store module importing the build stage is reported."""
    fake = tmp_path / "wiki_builder"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "bad.py").write_text("def f():\n    from ..build import build_models\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _imports(fake / "store" / "bad.py") == {"wiki_builder.build"}
    with pytest.raises(AssertionError, match="store.bad -> wiki_builder.build"):
        test_lower_stages_never_import_higher_ones()


@pytest.mark.parametrize("module", ["wiki_builder.cli", "wiki_builder.site.render", "wiki_builder.families", "wiki_builder.store.db"])
def test_light_modules_import_neither_torch_nor_transformer_lens(module):
    code = f"import sys, {module}; heavy = [m for m in ('torch', 'transformer_lens') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"importing {module} loads {proc.stdout.strip()} {proc.stderr[-2000:]}"


def test_site_package_never_imports_torch_statically():
    for path in (PACKAGE / "site").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not names & {"torch", "transformer_lens"}, f"{path.name} imports {names & {'torch', 'transformer_lens'}}"


def test_wiki_help_answers_without_loading_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "wiki_builder.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "build" in proc.stdout
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in loaded and "transformer_lens" not in loaded
