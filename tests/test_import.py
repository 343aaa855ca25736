"""Bring your own model: `edgecnn import` of Keras classifiers that are not in the zoo.

A 48x48 model with a Rescaling layer, trained here (a user's model trained elsewhere) on a
generated three-class image folder, goes through import -> export int8 -> verify -> benchmark ->
classify (light runtime) -> bundle into a copy of the Android app, read back by the app's Java.
A logits model with a dynamic input size and a labels file in another order than the folders
shows the output kind and the label order reaching the device side. Every model edgecnn cannot
deploy is refused with one `Error:` line and its exit code.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from _refusals import assert_refused
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.cli import cli
from edgecnn.data.preprocess import IMAGENET_MEAN, PRESETS, PreprocessSpec, parse_preprocess, preprocess
from edgecnn.errors import InvalidConfigError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("red", "green", "blue")  # class i is the image whose channel i is bright
MODEL_ERR, CONFIG_ERR, RUN_ERR, UNKNOWN_ERR = 11, 5, 7, 4


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(res):
    assert res.exit_code == 0, f"exit {res.exit_code}:\n{res.output}\n{res.exception!r}"
    return res


def _images(n_per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(CLASSES):
        for i in range(n_per_class):
            img = rng.integers(0, 90, (56, 64, 3))
            img[..., ci] += 140
            yield name, i, img.astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """colors/ (a class-per-subfolder image folder, 40 images a class, 64x56 pixels) and two
    user models trained on it: colornet.keras (48x48, Rescaling inside, softmax) and
    logitnet.keras (dynamic spatial size, no final softmax, outputs in red/green/blue order)."""
    import tf_keras as keras
    from PIL import Image

    root = tmp_path_factory.mktemp("byom")
    xs, ys = [], []
    for name, i, img in _images(40):
        (root / "colors" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "colors" / name / f"{i:03d}.png")
        xs.append(img[4:52, 8:56])  # what fit_image gives for 48x48: the centre crop
        ys.append(CLASSES.index(name))
    x, y = np.stack(xs).astype(np.float32), np.asarray(ys)
    folder_y = np.asarray([sorted(CLASSES).index(CLASSES[v]) for v in y])  # the folders' sorted order

    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, activation="softmax")(h)
    colornet = keras.Model(inp, out, name="colornet")
    colornet.compile(keras.optimizers.Adam(0.03), "sparse_categorical_crossentropy")
    colornet.fit(x, folder_y, epochs=40, batch_size=40, verbose=0)
    colornet.save(root / "colornet.keras")

    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    logitnet = keras.Model(inp, keras.layers.Dense(3)(h), name="logitnet")
    logitnet.compile(keras.optimizers.Adam(0.03), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logitnet.fit(x / 255.0, y, epochs=40, batch_size=40, verbose=0)
    logitnet.save(root / "logitnet.keras")
    (root / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return root


# ---------------------------------------------------------------------------- the whole pipeline
def test_a_users_model_goes_through_the_whole_pipeline(here, tmp_path):
    res = ok(invoke("import", "colornet.keras", "--data", "colors", "--preprocess", "raw", "--run-name", "r1"))
    run = Path(res.output.strip().splitlines()[-1])
    assert run == here / "runs" / "colornet" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "colornet" and info["trained"] is True and info["model_kwargs"] == {}
    assert info["source"]["kind"] == "import" and info["source"]["file"] == "colornet.keras"
    import hashlib

    assert info["source"]["sha256"] == hashlib.sha256((here / "colornet.keras").read_bytes()).hexdigest()
    assert info["input_shape"] == [48, 48, 3] and info["labels"] == sorted(CLASSES)
    assert info["output_kind"] == "probabilities" and info["unsafe_load"] is False
    pp = info["preprocessing"]
    assert (pp["scale"], pp["mean"], pp["std"], pp["input_size"]) == (1.0, [0.0] * 3, [1.0] * 3, [48, 48])
    assert info["metrics"]["top1"] >= 0.9, info["metrics"]

    ok(invoke("export", run, "--int8", "--no-onnx", "--calibration", "16"))
    m = json.loads((run / "export" / "manifest.json").read_text())
    assert set(m["artifacts"]) == {"colornet_fp32.tflite", "colornet_int8.tflite"}
    for a in m["artifacts"].values():
        assert a["verified"] and a["output_kind"] == "probabilities" and a["inputs"][0]["shape"] == [1, 48, 48, 3]
    assert m["artifacts"]["colornet_int8.tflite"]["verification"]["top1"] >= 0.9
    ok(invoke("verify", run))

    bench = tmp_path / "bench"
    ok(invoke("benchmark", run, "--runs", "20", "--warmup", "2", "--in-process", "--out", bench))
    rows = json.loads((bench / "results.json").read_text())["rows"]
    assert {r["artifact"] for r in rows} >= {"colornet_int8.tflite"}

    # The device side: the light runtime classifies images of any size with the manifest's spec.
    res = ok(invoke("classify", run / "export", "colors/red/000.png", "colors/blue/001.png", "--json"))
    lines = [json.loads(line) for line in res.output.splitlines() if line.startswith('{"image"')]
    assert [d["top"][0]["label"] for d in lines] == ["red", "blue"]

    app = tmp_path / "android_app"
    shutil.copytree(ROOT / "android_app", app, ignore=shutil.ignore_patterns("assets", "build", ".gradle"))
    ok(invoke("bundle", "android", run, "--app", app, "--images", "3"))
    assets = app / "app" / "src" / "main" / "assets"
    spec = json.loads((assets / "edgecnn.json").read_text())
    assert spec["model"] == "colornet" and spec["input"]["shape"] == [1, 48, 48, 3]
    assert (assets / "labels.txt").read_text().splitlines() == sorted(CLASSES)
    # sample images from the model's own test split, not CIFAR-10, each with its class index
    assert sorted(i["label"] for i in spec["images"]) == sorted(CLASSES)
    assert all(i["label_index"] == sorted(CLASSES).index(i["label"]) for i in spec["images"])
    sys.path.insert(0, str(Path(__file__).parent))
    from test_android import _java_reads_bundle

    java = _java_reads_bundle(assets, tmp_path)
    assert java.pop("__source__") == "model metadata"  # the exported file describes itself
    assert set(java) == {i["file"] for i in spec["images"]}
    assert all(v["true"] == v["label_txt"] for v in java.values())

    # the pipeline takes the trained run as it is: export, verify, benchmark, report
    ok(invoke("pipeline", run, "--bench-runs", "10", "--calibration", "16"))
    report = (run / "report.md").read_text()
    assert "imported from colornet.keras (preprocessing raw)" in report and "colornet_int8.onnx" in report


def test_logits_dynamic_size_and_a_labels_file_in_model_order(here):
    """The model's outputs are red, green, blue (the folders sort blue, green, red): the labels
    file renumbers the dataset by name; logits become probabilities on the device side."""
    ok(invoke("import", "logitnet.keras", "--data", "colors", "--preprocess", "unit", "--input-size", "48",
              "--labels", "labels.txt", "--run-name", "r1"))
    run = here / "runs" / "logitnet" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["labels"] == list(CLASSES) and info["dataset"]["classes"] == list(CLASSES)
    assert info["output_kind"] == "logits" and info["input_shape"] == [48, 48, 3]
    assert info["metrics"]["top1"] >= 0.9, info["metrics"]  # ~0.33 if the order were the folders'

    ok(invoke("export", run, "--int8", "--no-onnx", "--calibration", "16"))
    m = json.loads((run / "export" / "manifest.json").read_text())
    assert {a["output_kind"] for a in m["artifacts"].values()} == {"logits"}
    assert all(a["verified"] for a in m["artifacts"].values())
    assert m["artifacts"]["logitnet_fp32.tflite"]["verification"]["max_abs_diff_vs_keras"] <= 1e-4

    from edgecnn.device.classify import Classifier
    from PIL import Image

    c = Classifier(run / "export")
    s = c.scores([np.asarray(Image.open(here / "colors" / "green" / "003.png"))])[0]
    assert abs(float(s.sum()) - 1.0) < 1e-3 and c.top(s, 1)[0]["label"] == "green"


def test_keras_application_with_fresh_weights_is_fine_tuned_and_loads_in_safe_mode(here):
    """keras:MobileNetV3Small rescales inside (preprocess raw by default) and its hard-swish is
    saved as TFOpLambda arithmetic, which the safe loader accepts; export loads it safely."""
    ok(invoke("import", "keras:MobileNetV3Small", "--input-size", "32", "--data", "colors", "--epochs", "1",
              "--run-name", "r1"))
    run = here / "runs" / "mobilenetv3small" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["source"] == {"kind": "keras_application", "architecture": "MobileNetV3Small", "weights": None,
                              "loaded_with_unsafe_load": False}
    assert info["trained"] is True and info["fine_tune"]["epochs"] == 1
    assert info["preprocess_arg"] == "raw" and info["preprocessing"]["scale"] == 1.0
    ok(invoke("export", run, "--no-onnx"))
    arts = json.loads((run / "export" / "manifest.json").read_text())["artifacts"]
    assert arts["mobilenetv3small_fp32.tflite"]["verified"]


# ---------------------------------------------------------------------------- custom code
CUSTOM = '''
import tf_keras as keras


class Brighten(keras.layers.Layer):
    def call(self, x):
        return x * 1.0
'''


def test_custom_layers_need_custom_objects_and_unsafe_load(here, tmp_path, monkeypatch):
    import tf_keras as keras

    (tmp_path / "byom_layers.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    import byom_layers

    inp = keras.Input((48, 48, 3))
    h = byom_layers.Brighten(name="brighten")(keras.layers.Rescaling(1 / 255.0)(inp))
    h = keras.layers.GlobalAveragePooling2D()(h)
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h)).save(tmp_path / "custom.keras")
    model = tmp_path / "custom.keras"

    assert_refused(invoke("import", model, "--data", "colors", "--preprocess", "raw"), MODEL_ERR,
                   "'brighten'", "Brighten", "--custom-objects byom_layers:Brighten --unsafe-load")
    assert_refused(invoke("import", model, "--data", "colors", "--preprocess", "raw", "--custom-objects",
                          "byom_layers:Brighten"), CONFIG_ERR, "--unsafe-load")
    res = ok(invoke("import", model, "--data", "colors", "--preprocess", "raw", "--custom-objects",
                    "byom_layers:Brighten", "--unsafe-load", "--run-name", "r1"))
    assert "WARNING" in res.output and "needs --unsafe-load too" in res.output
    run = here / "runs" / "custom" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["unsafe_load"] is True and info["custom_objects"] == ["byom_layers:Brighten"]
    # run.json records it; it never switches unsafe loading on by itself
    assert_refused(invoke("export", run, "--no-onnx"), RUN_ERR, "--unsafe-load", "byom_layers:Brighten")
    ok(invoke("eval", run, "--unsafe-load", "--json"))


def test_an_hdf5_model_needs_unsafe_load_once_and_becomes_a_safe_run(here, tmp_path):
    import tf_keras as keras

    from edgecnn.contract import load_keras

    h5 = tmp_path / "colornet.h5"
    load_keras(here / "colornet.keras").save(h5)
    assert_refused(invoke("import", h5, "--data", "colors", "--preprocess", "raw"), MODEL_ERR, "HDF5", "--unsafe-load")
    ok(invoke("import", h5, "--data", "colors", "--preprocess", "raw", "--unsafe-load", "--name", "h5net",
              "--run-name", "r1"))
    run = here / "runs" / "h5net" / "r1"
    info = json.loads((run / "run.json").read_text())
    assert info["source"]["loaded_with_unsafe_load"] is True and info["unsafe_load"] is False
    assert isinstance(keras.models.load_model(run / "model.keras", safe_mode=True), keras.Model)
    res = ok(invoke("eval", run, "--json"))  # no --unsafe-load: model.keras is a plain, safe zip
    assert json.loads(res.output[res.output.index("{"):])["top1"] >= 0.9


# ---------------------------------------------------------------------------- refusals
def _save(tmp_path, build, name):
    import tensorflow as tf  # noqa: F401  (tf.math in the builders)
    import tf_keras as keras

    model = build(keras)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def _two_inputs(k):
    a, b = k.Input((48, 48, 3)), k.Input((48, 48, 3))
    h = k.layers.GlobalAveragePooling2D()(k.layers.Add()([a, b]))
    return k.Model([a, b], k.layers.Dense(3, activation="softmax")(h))


def _two_outputs(k):
    a = k.Input((48, 48, 3))
    h = k.layers.GlobalAveragePooling2D()(a)
    return k.Model(a, [k.layers.Dense(3, activation="softmax")(h), k.layers.Dense(2, activation="softmax")(h)])


def _vector(k):
    a = k.Input((12,))
    return k.Model(a, k.layers.Dense(3, activation="softmax")(a))


def _four_channels(k):
    a = k.Input((48, 48, 4))
    return k.Model(a, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(a)))


def _dynamic(k):
    a = k.Input((None, None, 3))
    return k.Model(a, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(a)))


def _sigmoid(k):
    a = k.Input((48, 48, 3))
    return k.Model(a, k.layers.Dense(3, activation="sigmoid")(k.layers.GlobalAveragePooling2D()(a)))


def _segmentation(k):
    a = k.Input((48, 48, 3))
    return k.Model(a, k.layers.Conv2D(3, 1, activation="softmax")(a))


def _lambda(k):
    a = k.Input((48, 48, 3))
    h = k.layers.Lambda(lambda t: t * 2.0, name="double")(a)
    return k.Model(a, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(h)))


def _tf_call(k):
    import tensorflow as tf

    a = k.Input((48, 48, 3))
    h = tf.math.bessel_i0e(a)
    return k.Model(a, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(h)))


@pytest.mark.parametrize("build, words", [
    (_two_inputs, ("2 inputs and 1 outputs",)),
    (_two_outputs, ("1 inputs and 2 outputs",)),
    (_vector, ("not an image",)),
    (_four_channels, ("4 channels",)),
    (_dynamic, ("dynamic spatial size", "--input-size")),
    (_sigmoid, ("sigmoid", "multi-label")),
    (_segmentation, ("not class scores",)),
    (_lambda, ("'double'", "Lambda", "--unsafe-load")),
    (_tf_call, ("bessel_i0e", "--unsafe-load")),
], ids=lambda v: v.__name__.strip("_") if callable(v) else "")
def test_models_edgecnn_cannot_deploy_are_refused_up_front(here, tmp_path, build, words):
    path = _save(tmp_path, build, build.__name__.strip("_"))
    res = invoke("import", path, "--data", "colors", "--preprocess", "raw")
    assert_refused(res, MODEL_ERR, *words)
    assert not (here / "runs" / build.__name__.strip("_")).exists()


def test_configuration_refusals(here, tmp_path):
    assert_refused(invoke("import", "colornet.keras", "--data", "colors"), CONFIG_ERR, "--preprocess",
                   "--preprocess raw is likely")
    assert_refused(invoke("import", "colornet.keras", "--data", "colors", "--preprocess", "imagenett"),
                   CONFIG_ERR, "unknown preset", "imagenet")
    assert_refused(invoke("import", "colornet.keras", "--data", "colors", "--preprocess", "raw", "--input-size", "64"),
                   MODEL_ERR, "disagrees")
    assert_refused(invoke("import", "colornet.keras", "--data", "colors", "--preprocess", "raw", "--name", "quicknet"),
                   CONFIG_ERR, "zoo model")
    assert_refused(invoke("import", "colornet.keras", "--data", "sample", "--preprocess", "raw"), 6,
                   "10 classes", "3 outputs")
    (tmp_path / "two.txt").write_text("red\ngreen\n")
    assert_refused(invoke("import", "colornet.keras", "--data", "colors", "--preprocess", "raw", "--labels",
                          tmp_path / "two.txt"), 6, "2 labels")
    assert_refused(invoke("import", "keras:MobileNetV9", "--input-size", "32", "--data", "colors"), UNKNOWN_ERR,
                   "MobileNetV9")
    assert not (here / "runs" / "quicknet").exists()


# ---------------------------------------------------------------------------- the --preprocess spec
def test_preprocess_strings_and_presets():
    s = parse_preprocess("scale=1/255,mean=0.485,0.456,0.406,std=0.229,0.224,0.225", (96, 96), 3)
    assert (s.scale, s.mean, s.std) == (1 / 255, IMAGENET_MEAN, (0.229, 0.224, 0.225))
    assert parse_preprocess("imagenet", (96, 96), 3) == s
    raw = parse_preprocess("raw", (48, 40), 1)
    assert (raw.input_size, raw.channels, raw.scale, raw.mean, raw.std) == ((48, 40), 1, 1.0, (0.0,), (1.0,))
    mob = parse_preprocess("keras-mobilenet", (8, 8), 3)
    x = preprocess(np.array([[[[0, 255, 127]] * 8] * 8], np.uint8), mob)
    np.testing.assert_allclose(x[0, 0, 0], [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)  # Keras' "tf" mode
    assert parse_preprocess("unit,crop=0.875", (8, 8), 3).crop_fraction == 0.875
    assert set(PRESETS) >= {"raw", "keras-mobilenet", "imagenet"}
    assert isinstance(s, PreprocessSpec)
    for bad, word in (("scale=0", "scale"), ("std=0", "std"), ("mean=1,2", "2 values"), ("scale=1/0", "number"),
                      ("shift=3", "unknown key"), ("scale=1,2", "follows scale"), ("", "empty")):
        with pytest.raises(InvalidConfigError, match=word):
            parse_preprocess(bad, (8, 8), 3)
