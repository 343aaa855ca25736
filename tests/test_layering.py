"""The package's import graph keeps the pipeline's order (DESIGN.md, "Import rule").

A stage imports only the stages before it and the shared base; there are no import cycles. Every
import counts, also the ones inside functions (they run too, only later). The graph is read from
the source with ``ast``, so the test needs nothing installed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgecnn"

# Rank of each stage: a module may import modules of a lower rank, and modules of its own stage
# package (export.* among themselves, benchmark.* among themselves). The shared base is rank 0.
BASE = {"errors", "io", "quiet", "progress", "backends", "registry", "analysis", "models_keras", "data", "runs", "contract", "runtime", "emulate",
        "zoo_report", "inspect"}
STAGES = [("evaluate",), ("recipes",), ("train",), ("importer",), ("export",), ("benchmark",), ("pipeline", "paper", "arm_calibration"),
          ("classify", "bundle"), ("cli", "__main__", "__init__")]


def _rank(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    if top in BASE:
        return 0
    for i, names in enumerate(STAGES, 1):
        if top in names:
            return i
    raise AssertionError(f"{module}: not placed in the stage order of test_layering.py")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts) if parts != ["edgecnn", "__init__"] else "edgecnn.__init__"


def _modules():
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, known) -> set:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule (pkg/__init__ only runs first)
            names = subs if any(n in known for n in subs) else [node.module]
        else:
            continue
        for n in names:
            if n == "edgecnn" or not n.startswith("edgecnn."):
                continue
            while n not in known and n.count("."):  # a name inside a module -> the module
                n = n.rsplit(".", 1)[0]
            if n in known:
                out.add(n)
    return out


def _graph():
    mods = _modules()
    return {m: _imports(p, mods) - {m} for m, p in mods.items()}


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_no_upward_imports():
    bad = []
    for mod, deps in _graph().items():
        for dep in deps:
            same_stage = _stage(dep) == _stage(mod) and _rank(mod) > 0
            if not same_stage and _rank(dep) >= _rank(mod) and _rank(mod) > 0:
                bad.append(f"{mod} -> {dep}")
            if _rank(mod) == 0 and _rank(dep) > 0:
                bad.append(f"{mod} (shared base) -> {dep}")
    assert not bad, "imports against the pipeline's order:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d.startswith("edgecnn.__init__"):
                continue
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_benchmark_reads_artifacts_and_never_builds_or_converts():
    graph = _graph()
    for mod, deps in graph.items():
        if _stage(mod) == "benchmark":
            assert not {d for d in deps if _stage(d) in ("export", "train", "models_keras")}, mod


@pytest.mark.parametrize("needle, home", [
    ("Interpreter(", "edgecnn/runtime.py"),
    ("InferenceSession(", "edgecnn/runtime.py"),
    ("def read_manifest", "edgecnn/runs.py"),
    ("def write_manifest", "edgecnn/runs.py"),
    ("def resolve(", "edgecnn/runs.py"),
    ("def load_run", "edgecnn/runs.py"),
    ("tf_keras.models.load_model(", "edgecnn/contract/keras_files.py"),
    ("saving_lib.load_model(", "edgecnn/contract/keras_files.py"),
    ('"manifest.json"', "edgecnn/runs.py"),
])
def test_one_home_for_each_contract_piece(needle, home):
    # edgecnn/emulate/guest.py is not edgecnn code at run time: it is the program the emulated
    # arm64 guest runs, with only numpy and LiteRT there (no edgecnn to import runtime.py from).
    guest = PKG / "emulate" / "guest.py"
    found = sorted(str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py") if p != guest and needle in p.read_text())
    assert found == [home], f"{needle!r} appears in {found}; only {home} may hold it"


def test_the_checker_sees_a_violation():
    """The rank table really rejects an upward import (so the tests above can fail)."""
    assert _rank("edgecnn.benchmark.report") > _rank("edgecnn.export.tflite") > _rank("edgecnn.runs")
    with pytest.raises(AssertionError):
        _rank("edgecnn.unplaced_module")
