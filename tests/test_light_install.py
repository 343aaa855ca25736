"""The light device install, as a Raspberry Pi has it: every command of raspi/README.md runs as
written there, results land where it says, and what needs the train extra says so in one line.

The venv holds edgecnn and setup.py's install_requires only (tools/light_venv.py: numpy, click,
pillow, ai-edge-litert and their dependencies; no TensorFlow, no ONNX Runtime). The export the
Pi receives is a real `edgecnn export --int8` with its ONNX files, made by the train install and
copied to ~/models/quicknet/export as the README's scp does; HOME is a temporary folder.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "raspi" / "README.md"
# README commands that run on the workstation, not on the Pi (the remote benchmark needs a board)
WORKSTATION = ("--remote",)


@pytest.fixture(scope="module")
def pi(tmp_path_factory):
    """(HOME with ~/edgecnn-venv, ~/models/quicknet/export, cat.jpg, dog.png; the venv's python)."""
    sys.path.insert(0, str(REPO / "tools"))
    from light_venv import make

    root = tmp_path_factory.mktemp("pi")
    home = root / "home"
    home.mkdir()
    py = make(home / "edgecnn-venv")
    ws = root / "workstation"
    r = subprocess.run([sys.executable, "-m", "edgecnn.cli", "export", "alexnet_tiny_dw", "--int8", "--calibration",
                        "8", "--runs-dir", str(ws / "runs")], capture_output=True, text=True, cwd=ws.parent,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr[-2000:]
    export = ws / "runs" / "alexnet_tiny_dw" / "untrained" / "export"
    assert {p.suffix for p in export.iterdir()} >= {".tflite", ".onnx"}
    (home / "models" / "quicknet").mkdir(parents=True)
    shutil.copytree(export, home / "models" / "quicknet" / "export")  # scp -r .../export pi@...:models/quicknet/
    from edgecnn.data.sample import load_sample
    from PIL import Image

    _, (x, _), _ = load_sample()
    Image.fromarray(x[0]).save(home / "cat.jpg")
    Image.fromarray(x[1]).save(home / "dog.png")
    Image.fromarray(x[2]).save(home / "bird.jpg")
    return home, py


def _run(home: Path, command: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "TF_"))}
    env.update(HOME=str(home), PATH="/usr/bin:/bin")
    return subprocess.run(["bash", "-c", f"source ~/edgecnn-venv/bin/activate && {command}"], cwd=home, env=env,
                          capture_output=True, text=True, timeout=600)


def readme_commands() -> list:
    """The `edgecnn ...` lines of raspi/README.md's sh blocks, comments stripped."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line.startswith("edgecnn ")]


def test_the_light_venv_has_no_tensorflow(pi):
    home, py = pi
    r = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'tf_keras', "
                                       "'keras', 'onnxruntime', 'onnx') if u.find_spec(m)])"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_every_readme_command_works_as_written_on_the_light_install(pi):
    home, _ = pi
    commands = readme_commands()
    assert len(commands) >= 5, commands  # the README's benchmark, classify and camera lines
    ran = 0
    for cmd in commands:
        if any(flag in cmd for flag in WORKSTATION):
            continue
        r = _run(home, cmd)
        ran += 1
        assert "Traceback" not in r.stderr, (cmd, r.stderr[-2000:])
        if "--camera" in cmd:  # no camera library here: the README says it stops naming both
            assert r.returncode == 12 and "picamera2" in r.stderr and "OpenCV" in r.stderr, (cmd, r.stderr)
            continue
        assert r.returncode == 0, (cmd, r.stdout[-1000:], r.stderr[-2000:])
        if cmd.startswith("edgecnn benchmark"):
            # the ONNX files are skipped in one line, the TFLite files measured
            skipped = [line for line in r.stderr.splitlines() if "onnxruntime is not installed" in line]
            assert len(skipped) == 1 and "pip install onnxruntime" in skipped[0], r.stderr
            # results where the README says: ~/models/quicknet/bench/
            doc = json.loads((home / "models" / "quicknet" / "bench" / "results.json").read_text())
            assert {row["format"] for row in doc["rows"]} == {"tflite"} and len(doc["rows"]) == 2
            assert all(row["timing"]["latency"]["count"] == 200 for row in doc["rows"])
            assert not (home / "bench").exists()
        if cmd.startswith("edgecnn classify") and "--json" in cmd:
            lines = [json.loads(line) for line in r.stdout.splitlines()]
            assert [d["image"] for d in lines[:-1]] == ["bird.jpg", "cat.jpg"] and lines[-1]["summary"]["images"] == 2
        elif cmd.startswith("edgecnn classify"):
            assert "cat.jpg:" in r.stdout and "dog.png:" in r.stdout
            # fresh weights: said in one line
            assert [line for line in r.stderr.splitlines() if "untrained weights" in line] != []
    assert ran >= 4
    # raspi/classify.py, as the README gives it
    r = _run(home, f"~/edgecnn-venv/bin/python {REPO}/raspi/classify.py ~/models/quicknet/export cat.jpg")
    assert r.returncode == 0 and "cat.jpg:" in r.stdout, r.stderr


def test_an_artifact_is_evaluated_on_the_light_install(pi):
    """A CIFAR-10 classifier's int8 TFLite on the bundled sample: the figure the train install gets."""
    from _tiny_export import build_tiny_export
    from click.testing import CliRunner

    from edgecnn.cli import cli

    home, _ = pi
    export = build_tiny_export(home / "models" / "tiny" / "export", train_epochs=2)
    r = _run(home, "edgecnn eval ~/models/tiny/export/tiny_int8.tflite --max-images 50 --json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    here = CliRunner().invoke(cli, ["eval", str(export / "tiny_int8.tflite"), "--max-images", "50", "--json"])
    assert doc["num_samples"] == 50 and doc["top1"] == json.loads(here.output[here.output.index("{"):])["top1"]


@pytest.mark.parametrize("command", [
    "edgecnn train quicknet", "edgecnn export quicknet --int8", "edgecnn import my.keras --data sample",
    "edgecnn models quicknet", "edgecnn verify ~/models/quicknet/export", "edgecnn pipeline quicknet",
])
def test_commands_of_the_train_extra_say_so_in_one_line(pi, command):
    home, _ = pi
    r = _run(home, command)
    assert r.returncode == 12, (command, r.stdout, r.stderr)
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "pip install 'edgecnn[train]'" in lines[0], lines
