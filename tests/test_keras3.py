"""Keras 3 models as users save them: `edgecnn import` reads them, the real converters turn them
into verified artifacts, and what edgecnn refuses it refuses in one line.

The models are built, trained and saved by Keras 3 in a separate process WITHOUT
TF_USE_LEGACY_KERAS (as a user's notebook does): one with ``import keras`` (48x48, Rescaling
inside, three classes), one with TF 2.21's ``tf.keras`` (a Sequential with hard-swish and logits),
one whose ``keras.ops.square`` node has no tf_keras rebuild, one with a Lambda and one with a
custom layer. Their data is a real image folder in the common layouts (train/ + test/,
train/ + validation/).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _refusals import assert_refused
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.cli import cli

CLASSES = ("red", "green", "blue")  # class i: channel i bright
MODEL_ERR, CONFIG_ERR = 11, 5

MAKE = r'''
import os, sys
import numpy as np
import keras
import tensorflow as tf
out, = sys.argv[1:]
assert keras.__version__.startswith("3."), keras.__version__
keras.utils.set_random_seed(0)
rng = np.random.default_rng(1)
names = sorted(["red", "green", "blue"])           # the folders' order: blue, green, red
x = rng.integers(0, 90, (240, 48, 48, 3)).astype("float32")
y = np.arange(240) % 3
for i in range(240):
    x[i, ..., ["red", "green", "blue"].index(names[y[i]])] += 140

def fit(m, logits=False, epochs=30):
    m.compile(keras.optimizers.Adam(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    m.fit(x, y, epochs=epochs, batch_size=48, verbose=0)

inp = keras.Input((48, 48, 3))
h = keras.layers.Rescaling(1 / 255.0)(inp)
h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
h = keras.layers.BatchNormalization()(h)
h = keras.layers.GlobalAveragePooling2D()(h)
colornet = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="colornet3")
fit(colornet)
colornet.save(os.path.join(out, "colornet3.keras"))

seq = tf.keras.Sequential([tf.keras.Input((48, 48, 3)), tf.keras.layers.Rescaling(1 / 127.5, offset=-1),
                           tf.keras.layers.Conv2D(8, 3, strides=2, activation="hard_swish"),
                           tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(3)], name="seqnet")
fit(seq, logits=True)
seq.save(os.path.join(out, "seqnet.keras"))

inp = keras.Input((48, 48, 3))
h = keras.layers.Conv2D(8, 3, strides=2)(keras.layers.Rescaling(1 / 255.0)(inp))
h = keras.ops.square(h)
h = keras.layers.GlobalAveragePooling2D()(h)
opsnet = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h), name="opsnet")
fit(opsnet, epochs=10)
opsnet.save(os.path.join(out, "opsnet.keras"))

inp = keras.Input((48, 48, 3))
h = keras.layers.Lambda(lambda t: t / 255.0, name="scale_lambda")(inp)
h = keras.layers.GlobalAveragePooling2D()(h)
keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h)).save(os.path.join(out, "lambdanet.keras"))

dyn = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1 / 255.0),
                       keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalMaxPooling2D(),
                       keras.layers.Dense(3, activation="softmax")], name="dynnet")
fit(dyn, epochs=10)
dyn.save(os.path.join(out, "dynnet.keras"))

sys.path.insert(0, out)
import brighten3
inp = keras.Input((48, 48, 3))
h = brighten3.Brighten(name="brighten")(keras.layers.Rescaling(1 / 255.0)(inp))
h = keras.layers.GlobalAveragePooling2D()(h)
keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h)).save(os.path.join(out, "customnet.keras"))
'''

CUSTOM = '''
import keras


class Brighten(keras.layers.Layer):
    def call(self, x):
        return x * 1.0
'''


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(res):
    assert res.exit_code == 0, f"exit {res.exit_code}:\n{res.output}\n{res.exception!r}"
    return res


def _image_folder(root: Path, layout: dict, seed: int):
    """root/<split>/<class>/NNN.png, 64x56 real PNG files."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for folder, n in layout.items():
        for ci, name in enumerate(CLASSES):
            d = root / folder / name
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 90, (56, 64, 3))
                img[..., ci] += 140
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i:03d}.png")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras3")
    (root / "brighten3.py").write_text(CUSTOM)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([sys.executable, "-c", MAKE, str(root)], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    _image_folder(root / "mydata", {"train": 30, "test": 12}, seed=2)
    _image_folder(root / "mydata2", {"train": 30, "validation": 12}, seed=3)
    from PIL import Image

    clear = np.full((56, 64, 3), 40, np.uint8)
    clear[..., 2] = 230  # unmistakably blue
    Image.fromarray(clear).save(root / "blue.png")
    return root


def _file_is_keras3(path) -> str:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("metadata.json"))["keras_version"]


# ---------------------------------------------------------------------------- the whole path
@pytest.mark.parametrize("data, run_name", [("mydata", "tt"), ("mydata2", "tv")])
def test_a_keras3_model_goes_import_export_int8_classify(here, data, run_name):
    assert _file_is_keras3("colornet3.keras").startswith("3.")
    res = ok(invoke("import", "colornet3.keras", "--data", data, "--preprocess", "raw", "--run-name", run_name))
    assert "a Keras 3." in res.output and "kept as it is" in res.output
    split = "test/" if data == "mydata" else "validation/ (no test/ folder)"
    assert f"test 36 ({split})" in res.output and "validation 9 (seeded 0.1 of train/" in res.output
    run = here / "runs" / "colornet3" / run_name
    info = json.loads((run / "run.json").read_text())
    assert info["source"]["keras"].startswith("3.") and info["labels"] == sorted(CLASSES)
    assert _file_is_keras3(run / "model.keras").startswith("3.")  # the run holds the user's Keras 3 model
    assert info["metrics"]["top1"] >= 0.9, info["metrics"]

    onnx = [] if run_name == "tv" else ["--onnx"]
    ok(invoke("export", run, "--int8", *(onnx or ["--no-onnx"]), "--calibration", "32"))
    m = json.loads((run / "export" / "manifest.json").read_text())
    want = {"colornet3_fp32.tflite", "colornet3_int8.tflite"} | (
        {"colornet3_fp32.onnx", "colornet3_int8.onnx"} if onnx else set())
    assert set(m["artifacts"]) == want
    assert all(a["verified"] for a in m["artifacts"].values()), [a["verification"] for a in m["artifacts"].values()]
    for name in want & {"colornet3_fp32.tflite", "colornet3_fp32.onnx"}:  # the same function as the Keras 3 model
        assert m["artifacts"][name]["verification"]["max_abs_diff_vs_keras"] <= 1e-4
    assert m["keras"]["model_file"] == "../model.keras" and "rebuilt_as_tf_keras" not in m["keras"]

    res = ok(invoke("classify", run / "export", "blue.png", "--json", "--strict"))
    first = json.loads(res.output.splitlines()[0])
    assert first["top"][0]["label"] == "blue", first

    # the artifact evaluated on its own: the verified top-1, on the same held-out images
    res = ok(invoke("eval", run / "export" / "colornet3_int8.tflite", "--json"))
    got = json.loads(res.output[res.output.index("{"):])
    v = m["artifacts"]["colornet3_int8.tflite"]["verification"]
    assert got["num_samples"] == v["n"] == 36 and got["top1"] == pytest.approx(v["top1"])
    ok(invoke("verify", run))


def test_a_tf_keras_sequential_with_hard_swish_and_logits_and_tfmot_through_the_rebuild(here):
    """Saved with TF 2.21's tf.keras (Keras 3): logits out, hard-swish inside. Exported as it is;
    --prune rebuilds it as tf_keras (checked node by node) for TFMOT."""
    ok(invoke("import", "seqnet.keras", "--data", "mydata", "--preprocess", "raw", "--run-name", "r1"))
    run = here / "runs" / "seqnet" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["output_kind"] == "logits" and info["metrics"]["top1"] >= 0.9
    ok(invoke("export", run, "--int8", "--no-onnx", "--calibration", "32"))
    m = json.loads((run / "export" / "manifest.json").read_text())
    assert all(a["verified"] and a["output_kind"] == "logits" for a in m["artifacts"].values())
    from edgecnn.export.tflite import tflite_ops

    assert "HARD_SWISH" in tflite_ops(run / "export" / "seqnet_fp32.tflite")

    out = here / "pruned"
    res = ok(invoke("export", run, "--prune", "0.5", "--compress-epochs", "1", "--no-onnx", "--out", out))
    assert "Keras 3 model rebuilt as tf_keras:" in res.output and "(for --prune)" in res.output
    m = json.loads((out / "manifest.json").read_text())
    rebuilt = m["keras"]["rebuilt_as_tf_keras"]
    assert rebuilt["nodes_compared"] >= 4 and rebuilt["worst_rel_diff"] < 1e-4
    assert m["compression"] and m["artifacts"]["seqnet_fp32.tflite"]["verified"]


def test_tfmot_on_a_model_that_cannot_be_rebuilt_says_so_in_one_line(here):
    ok(invoke("import", "opsnet.keras", "--data", "mydata", "--preprocess", "raw", "--run-name", "r1"))
    run = here / "runs" / "opsnet" / "r1"
    ok(invoke("export", run, "--no-onnx", "--calibration", "16"))  # converted as it is
    for flag in (["--prune", "0.5"], ["--cluster", "8"], ["--qat"]):
        res = invoke("export", run, *flag, "--no-onnx", "--out", here / "nope")
        assert_refused(res, CONFIG_ERR, f"{flag[0]} needs a tf_keras model", "TFMOT 0.8 does not accept Keras 3",
                       "cannot be rebuilt as tf_keras", "Square")
    assert not (here / "nope").exists()


def test_a_keras3_model_of_dynamic_size_is_fixed_at_the_input_size_given(here):
    assert_refused(invoke("import", "dynnet.keras", "--data", "mydata", "--preprocess", "raw"), MODEL_ERR,
                   "dynamic spatial size", "--input-size")
    ok(invoke("import", "dynnet.keras", "--data", "mydata", "--preprocess", "raw", "--input-size", "48",
              "--run-name", "r1"))
    run = here / "runs" / "dynnet" / "r1"
    assert json.loads((run / "run.json").read_text())["input_shape"] == [48, 48, 3]
    ok(invoke("export", run, "--no-onnx"))
    m = json.loads((run / "export" / "manifest.json").read_text())
    a = m["artifacts"]["dynnet_fp32.tflite"]
    assert a["verified"] and a["inputs"][0]["shape"] == [1, 48, 48, 3]


# ---------------------------------------------------------------------------- refusals
def test_lambda_and_custom_layers_are_refused_as_for_tf_keras_files(here):
    assert_refused(invoke("import", "lambdanet.keras", "--data", "mydata", "--preprocess", "raw"), MODEL_ERR,
                   "'scale_lambda'", "Lambda", "--unsafe-load")
    assert_refused(invoke("import", "customnet.keras", "--data", "mydata", "--preprocess", "raw"), MODEL_ERR,
                   "'brighten'", "Brighten", "--custom-objects brighten3:Brighten --unsafe-load")
    assert not (here / "runs" / "lambdanet").exists() and not (here / "runs" / "customnet").exists()


def test_custom_layers_load_with_custom_objects_and_unsafe_load(here, monkeypatch):
    monkeypatch.syspath_prepend(str(here))
    res = ok(invoke("import", "customnet.keras", "--data", "mydata", "--preprocess", "raw", "--custom-objects",
                    "brighten3:Brighten", "--unsafe-load", "--run-name", "r1"))
    assert "needs --unsafe-load too" in res.output
    info = json.loads((here / "runs" / "customnet" / "r1" / "run.json").read_text())
    assert info["unsafe_load"] is True and info["custom_objects"] == ["brighten3:Brighten"]


def _crafted(world: Path, tmp_path: Path, edit) -> Path:
    """colornet3.keras with its config.json changed by ``edit`` (weights and metadata kept)."""
    with zipfile.ZipFile(world / "colornet3.keras") as z:
        cfg, meta, weights = json.loads(z.read("config.json")), z.read("metadata.json"), z.read("model.weights.h5")
    cfg = copy.deepcopy(cfg)
    edit(cfg["config"]["layers"])
    out = tmp_path / "crafted.keras"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("metadata.json", meta)
        z.writestr("config.json", json.dumps(cfg))
        z.writestr("model.weights.h5", weights)
    return out


def _lambda_calling(layers, module, fn, kwargs):
    first = layers[0]["name"]
    tensor = {"class_name": "__keras_tensor__", "config": {"shape": [None, 48, 48, 3], "dtype": "float32",
                                                            "keras_history": [first, 0, 0]}}
    layers.insert(1, {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "name": "lam",
                      "config": {"name": "lam", "trainable": True, "dtype": "float32", "arguments": {},
                                 "function": {"module": module, "class_name": "function", "config": fn,
                                              "registered_name": "function"}},
                      "inbound_nodes": [{"args": [], "kwargs": kwargs}]})
    layers[2]["inbound_nodes"][0]["args"][0] = dict(tensor, config=dict(tensor["config"], keras_history=["lam", 0, 0]))


@pytest.mark.parametrize("edit, words", [
    # Keras 3's own safe mode runs this one (keras.config.set_floatx from a Lambda's config)
    (lambda L: _lambda_calling(L, "keras.config", "set_floatx", {"inputs": "float16"}), ("'lam'", "Lambda")),
    (lambda L: L[1].update(module="keras.layers", class_name="TFSMLayer"), ("keras.layers.TFSMLayer", "not on")),
    (lambda L: L[1].update(module="keras.src.saving.saving_lib", class_name="load_model"),
     ("keras.src.saving.saving_lib.load_model",)),
    (lambda L: L[1].update(module="os", class_name="system"), ("from module 'os'", "not built into Keras")),
    (lambda L: L[-1]["config"].update(activation={"module": "keras.utils", "class_name": "function",
                                                  "config": "get_file", "registered_name": "function"}),
     ("'get_file'", "not a Keras activation")),
    (lambda L: L[2]["config"].update(dtype={"module": "keras", "class_name": "DTypePolicy",
                                            "config": {"name": "mixed_float16"}, "registered_name": None}),
     ("mixed_float16", "float32 models")),
], ids=["lambda-set_floatx", "tfsmlayer", "keras-function-as-class", "foreign-module", "function-activation",
        "mixed-float16"])
def test_crafted_keras3_configs_are_refused_before_keras_reads_them(world, tmp_path, edit, words):
    import keras

    from edgecnn.contract import load_keras
    from edgecnn.errors import ModelFileError

    bad = _crafted(world, tmp_path, edit)
    before = keras.config.floatx()
    with pytest.raises(ModelFileError) as e:
        load_keras(bad)
    assert keras.config.floatx() == before == "float32"
    for w in words:
        assert w in e.value.message, e.value.message
    assert "\n" not in e.value.message


def test_the_tf_keras_rebuild_computes_the_same_function(world):
    """Every node of the rebuilt model within 1e-4 of the Keras 3 model's, on real images."""
    from edgecnn.contract import load_keras
    from edgecnn.models.keras3 import Untranslatable, is_keras3, rebuild_as_tf_keras

    x = np.random.default_rng(0).uniform(0, 255, (16, 48, 48, 3)).astype(np.float32)
    for name in ("colornet3", "seqnet"):
        k3 = load_keras(world / f"{name}.keras")
        assert is_keras3(k3)
        tk, report = rebuild_as_tf_keras(k3, x)
        assert not is_keras3(tk) and report["nodes_compared"] >= 4
        np.testing.assert_allclose(tk.predict(x, verbose=0), k3.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(Untranslatable, match="Square"):
        rebuild_as_tf_keras(load_keras(world / "opsnet.keras"), x)
