"""The device side imports only what the light install has (click's test_imports.py, for edgecnn).

Importing the CLI and every module a Raspberry Pi or a phone build uses (classify, bundle, the
contract, the runtime facade, the benchmark harness and its SSH runner, the file anatomy) in a
fresh interpreter may pull in the standard library, click and numpy, nothing else: TensorFlow,
Keras, ONNX, matplotlib or h5py there would make the light install fail, or ``edgecnn --help``
slow. Each command's own heavy imports happen inside it, when it runs.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

DEVICE_MODULES = ("edgecnn.cli", "edgecnn.device.classify", "edgecnn.device.bundle", "edgecnn.contract",
                  "edgecnn.measure.runtime", "edgecnn.measure.anatomy", "edgecnn.measure.boards",
                  "edgecnn.benchmark.outputs", "edgecnn.benchmark.harness", "edgecnn.benchmark.remote",
                  "edgecnn.benchmark.worker", "edgecnn.data.preprocess", "edgecnn.contract.model_metadata",
                  "edgecnn.contract.tflite_metadata")
ALLOWED = {"edgecnn", "click", "numpy"}
# Interpreter and packaging plumbing that is not the project's dependency.
PLUMBING = {"__main__", "_distutils_hack", "sitecustomize", "usercustomize"}


def _third_party(modules) -> list:
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in modules) +
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [m for m in json.loads(out.stdout) if m not in PLUMBING and not m.startswith("__editable__")]


@pytest.mark.parametrize("module", DEVICE_MODULES)
def test_device_side_modules_import_only_the_light_install(module):
    assert set(_third_party([module])) <= ALLOWED, module


def test_the_allow_list_can_fail():
    """The check sees a heavy import (so the test above can fail for the bug it names)."""
    assert "tensorflow" in _third_party(["tensorflow"])
