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

# The layers, lowest first: a package may import the packages of lower layers and its own
# modules, nothing above. This is the pipeline's order as the package tree shows it (README,
# "Module map"); a module outside these packages fails the test until it is placed.
LAYERS = [
    ("errors",),               # exit codes and the one-line error
    ("core",),                 # files, plots, options objects, quiet logs, progress
    ("data",),                 # datasets, preprocessing spec, bounded image and archive readers
    ("models",),               # registry, the zoo's families, paper figures and claims
    ("contract",),             # run.json, manifests, Keras files, the resolver: every file is untrusted
    ("measure",),              # runtime facade, timing, stats, platform, the one board table
    ("emulate",),              # arm64 under qemu: counts and the cost model
    ("train",),                # recipes, fit, evaluate, import
    ("export",),               # TFLite, ONNX, compression, mixed precision, verification
    ("benchmark",),            # reads artifacts and measures them; never builds or converts
    ("report",),               # pipeline and paper claims: drives the stages above
    ("device",),               # classify and bundle: artifacts only, no TensorFlow
    ("cli", "__main__", "__init__"),
]


def _rank(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: not placed in the layers of test_layering.py")


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
            if _stage(dep) != _stage(mod) and _rank(dep) >= _rank(mod):
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports against the pipeline's order:\n" + "\n".join(sorted(bad))


def test_every_module_lives_in_a_package():
    """The top level holds the package's entry points and the error codes, nothing else."""
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py"] or top == ["__init__.py", "errors.py"], top


def test_no_module_shadows_the_standard_library():
    import sys

    names = {p.stem for p in PKG.rglob("*.py")} | {p.name for p in PKG.rglob("*") if p.is_dir()}
    assert not names & set(sys.stdlib_module_names), sorted(names & set(sys.stdlib_module_names))


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
            assert not {d for d in deps if _stage(d) in ("export", "train", "models")}, mod


@pytest.mark.parametrize("needle, home", [
    ("Interpreter(", "edgecnn/measure/runtime.py"),
    ("InferenceSession(", "edgecnn/measure/runtime.py"),
    ("def read_manifest", "edgecnn/contract/manifest.py"),
    ("def write_manifest", "edgecnn/contract/manifest.py"),
    ("def resolve(", "edgecnn/contract/resolve.py"),
    ("def load_run", "edgecnn/contract/run.py"),
    ("tf_keras.models.load_model(", "edgecnn/contract/keras_files.py"),
    ("saving_lib.load_model(", "edgecnn/contract/keras_files.py"),
    ('"manifest.json"', "edgecnn/contract/checks.py"),
])
def test_one_home_for_each_contract_piece(needle, home):
    # edgecnn/emulate/guest.py is not edgecnn code at run time: it is the program the emulated
    # arm64 guest runs, with only numpy and LiteRT there (no edgecnn to import runtime.py from).
    guest = PKG / "emulate" / "guest.py"
    found = sorted(str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py") if p != guest and needle in p.read_text())
    assert found == [home], f"{needle!r} appears in {found}; only {home} may hold it"


def test_the_checker_sees_a_violation():
    """The rank table really rejects an upward import (so the tests above can fail)."""
    assert _rank("edgecnn.benchmark.report") > _rank("edgecnn.export.tflite") > _rank("edgecnn.contract")
    with pytest.raises(AssertionError):
        _rank("edgecnn.unplaced_module")
