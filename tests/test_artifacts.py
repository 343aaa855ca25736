"""Artifacts are artifacts: `edgecnn eval FILE.tflite|onnx` evaluates that file on its runtime with
its manifest's labels and preprocessing, and every command that needs a run refuses a file in
one line naming the right command, touching nothing."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _refusals import assert_refused
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.cli import cli

RUN_ERR, DATA_ERR, BUNDLE_ERR = 7, 6, 15


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from _tiny_export import build_tiny_export

    return build_tiny_export(tmp_path_factory.mktemp("art") / "export", train_epochs=5)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_eval_of_an_artifact_is_that_artifact_on_its_runtime(export):
    from edgecnn.data.preprocess import PreprocessSpec, preprocess
    from edgecnn.data.sample import load_sample
    from edgecnn.measure.runtime import load

    res = invoke("eval", export / "tiny_int8.tflite", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output[res.output.index("{"):])
    # by hand: the bundled sample's test split (the manifest's record), the manifest's spec, LiteRT
    _, (x, y), _ = load_sample()
    spec = PreprocessSpec.from_dict(json.loads((export / "manifest.json").read_text())["preprocessing"])
    want = float(np.mean(load(export / "tiny_int8.tflite").run(preprocess(x, spec)).argmax(1) == y))
    assert got["num_samples"] == len(y) and got["top1"] == pytest.approx(want)
    assert got["artifact"].endswith("tiny_int8.tflite") and "(litert)" in got["run"]
    out = invoke("eval", export / "tiny_fp32.tflite", "--json").output
    fp32 = json.loads(out[out.index("{"):])  # the other file, evaluated as itself
    want32 = float(np.mean(load(export / "tiny_fp32.tflite").run(preprocess(x, spec)).argmax(1) == y))
    assert fp32["top1"] == pytest.approx(want32) and fp32["artifact"].endswith("tiny_fp32.tflite")
    # the text report, and --data naming the same classes
    res = invoke("eval", export / "tiny_int8.tflite", "--data", "sample", "--max-images", "50")
    assert res.exit_code == 0 and "tiny_int8.tflite (litert): cifar10_sample test (50 images)" in res.output


def test_eval_of_an_artifact_refuses_data_of_other_classes(export, tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / "pets" / name / f"{i}.png")
    assert_refused(invoke("eval", export / "tiny_int8.tflite", "--data", tmp_path / "pets"), DATA_ERR,
                   "classes differ from the model's labels")


@pytest.mark.parametrize("args, code, words", [
    (("verify", "{a}"), RUN_ERR, ("one tflite artifact", "edgecnn verify {d}", "edgecnn eval {a} --data PATH")),
    (("export", "{a}", "--int8"), RUN_ERR, ("already an exported tflite artifact", "edgecnn eval {a} --data PATH",
                                             "edgecnn benchmark {a}")),
    (("import", "{a}", "--data", "sample", "--preprocess", "raw"), RUN_ERR,
     ("already an exported tflite artifact", "reads Keras models (.keras)", "edgecnn eval {a}")),
    (("train", "{a}"), RUN_ERR, ("already an exported tflite artifact", "edgecnn classify {a} IMAGE")),
    (("pipeline", "{a}"), RUN_ERR, ("already an exported tflite artifact",)),
    (("bundle", "android", "{a}"), BUNDLE_ERR, ("edgecnn bundle android {d} --artifact tiny_int8.tflite",)),
], ids=lambda v: v[0] if isinstance(v, tuple) else "")
def test_a_file_where_a_run_is_needed_is_refused_naming_the_right_command(export, args, code, words):
    a, d = export / "tiny_int8.tflite", export
    before = _digest(export)
    res = invoke(*[x.format(a=a, d=d) for x in args])
    assert_refused(res, code, *[w.format(a=a, d=d) for w in words])
    assert _digest(export) == before


def test_a_keras_file_where_a_run_is_needed_names_import(tmp_path):
    import tf_keras as keras

    inp = keras.Input((8, 8, 3))
    path = tmp_path / "mine.keras"
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))).save(path)
    for command in ("eval", "verify", "export"):
        assert_refused(invoke(command, path), RUN_ERR, "is a Keras model file, not a run",
                       f"edgecnn import {path} --data PATH --preprocess SPEC")
