"""Make a virtualenv that holds the light device install and nothing else, offline.

    .venv/bin/python tools/light_venv.py DIR

What ``pip install .`` puts on a Raspberry Pi: edgecnn and setup.py's ``install_requires``
(numpy, click, pillow, ai-edge-litert) with their own dependencies, no TensorFlow, no ONNX
Runtime. The distributions come from this interpreter's site-packages (the same wheels the train
install has, linked, not downloaded), found by following each requirement's ``Requires-Dist``
(extras left out, markers evaluated here); edgecnn itself is this checkout, linked, with its
console script. ``DIR/bin/edgecnn`` is then the command a Pi user types. The tests run raspi/README's
commands with it (tests/test_light_install.py).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def light_requirements() -> list:
    """setup.py's LIGHT list, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LIGHT" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit("setup.py has no LIGHT list")


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip's own copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def closure(requirements) -> dict:
    """{distribution name: Distribution} of the requirements and everything they require (no extras)."""
    found, todo = {}, list(requirements)
    while todo:
        req = _requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in found:
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise SystemExit(f"{req.name} is not installed here: install edgecnn's train extra first") from None
        found[key] = dist
        todo.extend(dist.requires or [])
    return found


def _entries(dist) -> set:
    """What a distribution installed, as paths to link: its top-level packages, modules, .libs
    folders and dist-info; inside a namespace folder shared with others (google/, backports/),
    only its own subpackages."""
    base, out = Path(dist.locate_file("")), set()
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if parts[0] in ("..", "__pycache__") or parts[0].endswith(".data"):
            continue
        top = base / parts[0]
        namespace = top.is_dir() and not (top / "__init__.py").exists() and not parts[0].endswith(
            (".libs", ".dist-info")) and len(parts) > 2
        out.add(Path(*parts[:2]) if namespace else Path(parts[0]))
    return out


def make(target) -> Path:
    """A venv at ``target`` with the light install; returns its python."""
    target = Path(target)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    py = target / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for dist in closure(light_requirements()).values():
        base = Path(dist.locate_file(""))
        for rel in _entries(dist):
            src, dst = base / rel, site / rel
            if src.exists() and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, dst)
    (site / "edgecnn").symlink_to(REPO / "edgecnn")
    info = site / "edgecnn-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgecnn\nVersion: 0.1.0\n")
    script = target / "bin" / "edgecnn"
    script.write_text(f"#!{py}\nimport sys\nfrom edgecnn.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return py


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[2])
    print(make(sys.argv[1]))
