"""`edgecnn benchmark --emulate`: TFLite artifacts counted on an emulated Raspberry Pi core (real
qemu-user, real LiteRT in the arm64 root), their predicted rows in every output, and the one-line
errors when a board name is wrong or the emulator is not installed."""
import csv
import json
import re
import subprocess
import sys

import pytest

from _tiny_export import build_tiny_export
from edgecnn.emulate import format_error
from edgecnn.errors import EmulatorError, InvalidConfigError

EDGECNN = [sys.executable, "-m", "edgecnn.cli"]


def _emulator_or_skip():
    from edgecnn.benchmark.emulated import check_emulator
    try:
        check_emulator()
    except EmulatorError as e:
        pytest.skip(f"no emulator here: {e.message}")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return build_tiny_export(tmp_path_factory.mktemp("emu") / "export")


def test_emulate_pi4_rows_in_json_csv_and_reports(export, tmp_path):
    _emulator_or_skip()
    out = tmp_path / "bench"
    p = subprocess.run(EDGECNN + ["benchmark", str(export), "--emulate", "pi4", "--threads", "1,2", "--runs", "3",
                                  "--warmup", "1", "--in-process", "--json", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert "emulating pi4 (cortex-a72): 2 artifacts" in p.stderr
    rows = doc["emulated"]
    assert sorted((r["artifact"], r["threads"]) for r in rows) == [
        ("tiny_fp32.tflite", 1), ("tiny_fp32.tflite", 2), ("tiny_int8.tflite", 1), ("tiny_int8.tflite", 2)]
    for r in rows:
        assert r["label"] == "emulated pi4 (cortex-a72)" and r["board"] == "pi4"
        assert r["instructions"] > 0 and r["predicted_ms"] > 0 and r["xnnpack"] is True
        assert r["precision"] == r["artifact"].split("_")[1].split(".")[0]
    one = {r["artifact"]: r for r in rows if r["threads"] == 1}
    two = {r["artifact"]: r for r in rows if r["threads"] == 2}
    assert all(two[a]["predicted_ms"] < one[a]["predicted_ms"] for a in one)  # the model splits work over threads
    assert len(doc["rows"]) == 4 and all(not r["device"]["label"].startswith("emulated") for r in doc["rows"])
    assert json.loads((out / "results.json").read_text())["emulated"] == rows
    with open(out / "emulated.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and [t["error"] for t in table] == [format_error(r) for r in rows]
    assert all(re.fullmatch(r"±\d+%", t["error"]) for t in table)  # the Pi 4's core is calibrated
    for name in ("results.md", "report.md"):
        text = (out / name).read_text()
        assert "## Emulated Raspberry Pi (predicted, not measured)" in text
        assert "| tiny_int8.tflite | emulated pi4 (cortex-a72) | 1 |" in text


def test_table_output_has_the_emulated_section_and_an_uncalibrated_core(export, tmp_path):
    _emulator_or_skip()
    p = subprocess.run(EDGECNN + ["benchmark", str(export / "tiny_int8.tflite"), "--emulate", "pi5", "--runs", "3",
                                  "--warmup", "1", "--in-process", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    section = p.stdout.split("Emulated Raspberry Pi (predicted, not measured)\n", 1)[1].splitlines()
    assert section[0].split()[:3] == ["artifact", "board", "thr"]
    row = section[2].split()
    assert row[:5] == ["tiny_int8.tflite", "emulated", "pi5", "(cortex-a76)", "1"] and "uncalibrated" in row
    assert float(row[5]) > 0 and float(row[6]) > 0  # instructions (M), predicted ms


def test_unknown_board_is_a_one_line_config_error(export, tmp_path):
    p = subprocess.run(EDGECNN + ["benchmark", str(export), "--emulate", "pi4,pi9", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == InvalidConfigError.exit_code
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "pi9" in lines[0] and "pi4" in lines[0]
    assert not (tmp_path / "b").exists()  # refused before anything was measured or written


def test_missing_arm_root_is_one_error_line_naming_make_arm_root(export, tmp_path):
    import os
    env = dict(os.environ, EDGECNN_ARM_ROOT=str(tmp_path / "empty-root"))
    (tmp_path / "empty-root").mkdir()
    p = subprocess.run(EDGECNN + ["benchmark", str(export), "--emulate", "pi4", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == EmulatorError.exit_code == 16
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "make arm-root" in lines[0], p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / "b").exists()  # checked before the x86 measurements, not after them


def test_pipeline_goes_on_without_the_emulator_and_says_why(tmp_path, monkeypatch):
    from edgecnn.report.pipeline import _ready_targets

    monkeypatch.setenv("EDGECNN_ARM_ROOT", str(tmp_path))  # an empty folder: no root there
    said = []
    targets, note = _ready_targets(["pi4", "pi5", "host"], said.append)
    assert targets == ["host"] and "pi4, pi5 left out" in note and "make arm-root" in note
    assert len(said) == 1 and said[0].startswith("targets pi4, pi5 left out:")
