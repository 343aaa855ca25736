"""`edgecnn inspect`: the size breakdown of a .tflite adds up to the file, finds the tensors and
ops the converter wrote, sees shared zero-point vectors, refuses malformed files, and needs no
TensorFlow."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import ModelFileError
from edgecnn.measure.anatomy import format_breakdown, tflite_breakdown


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from _tiny_export import build_tiny_export

    return build_tiny_export(tmp_path_factory.mktemp("inspect") / "export")


def _sections(b) -> int:
    q = b["quantization"]
    return (sum(c["bytes"] for c in b["constants"].values()) + q["scale_bytes"] + q["zero_point_bytes"]
            + sum(b["metadata"].values()) + b["other_bytes"])


def test_int8_breakdown_counts_the_weights_biases_and_ops(export):
    b = tflite_breakdown(export / "tiny_int8.tflite")
    assert b["bytes"] == (export / "tiny_int8.tflite").stat().st_size == _sections(b)
    # conv 3x3x3->8, conv 3x3x8->16, dense 16->10: int8 weights; int32 biases of the two convs (the
    # dense layer's bias is all zeros, which the converter drops) and the MEAN's two axes
    assert b["constants"]["int8"] == {"bytes": 8 * 27 + 16 * 72 + 10 * 16, "tensors": 3}
    assert b["constants"]["int32"] == {"bytes": 4 * (8 + 16) + 4 * 2, "tensors": 3}
    q = b["quantization"]
    assert q["per_channel_tensors"] >= 4 and q["zero_point_bytes"] > 0 and q["scale_bytes"] > 0
    assert "min_runtime_version" in b["metadata"]
    assert b["op_counts"] == {"CONV_2D": 2, "MEAN": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert [op["op"] for op in b["ops"]] == ["CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    text = format_breakdown(b)
    assert "constants int8" in text and "CONV_2D 2" in text and f"{b['bytes']:,} bytes" in text


def test_shared_zero_points_are_counted_once(export):
    from edgecnn.export.compact import repack

    data = (export / "tiny_int8.tflite").read_bytes()
    packed, saved = repack(data)
    (export.parent / "packed.tflite").write_bytes(packed)
    before, after = tflite_breakdown(export / "tiny_int8.tflite"), tflite_breakdown(export.parent / "packed.tflite")
    zb, za = before["quantization"]["zero_point_vectors"], after["quantization"]["zero_point_vectors"]
    assert zb["referenced"] == za["referenced"] and za["stored"] < zb["stored"]
    assert before["quantization"]["zero_point_bytes"] - after["quantization"]["zero_point_bytes"] == saved > 0
    assert after["bytes"] == _sections(after) and after["constants"] == before["constants"]


def test_malformed_files_are_one_error(export, tmp_path):
    good = (export / "tiny_int8.tflite").read_bytes()
    (tmp_path / "trunc.tflite").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.tflite").write_text("not a model\n")
    for name in ("trunc.tflite", "text.tflite", "missing.tflite"):
        with pytest.raises(ModelFileError):
            tflite_breakdown(tmp_path / name)
    res = CliRunner().invoke(cli, ["inspect", str(tmp_path / "trunc.tflite")])
    assert res.exit_code == ModelFileError.exit_code and "malformed" in res.output
    res = CliRunner().invoke(cli, ["inspect", str(export / "manifest.json")])
    assert res.exit_code == ModelFileError.exit_code and ".tflite" in res.output


def test_cli_inspect_needs_no_tensorflow(export):
    code = ("import json, sys; from edgecnn.cli import main; sys.argv = ['edgecnn', 'inspect', '--json', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules}))")
    r = subprocess.run([sys.executable, "-c", code, str(export / "tiny_fp32.tflite")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    first, last = r.stdout.strip().splitlines()[0], r.stdout.strip().splitlines()[-1]
    assert json.loads(first)["constants"]["float32"] == {"bytes": 4 * (8 * 27 + 16 * 72 + 10 * 16 + 8 + 16),
                                                         "tensors": 5}
    assert json.loads(last) == {"tensorflow": False}
