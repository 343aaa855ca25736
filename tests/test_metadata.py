"""The camera input and self-describing files, piece by piece: the normalization folded into the
graph (each form, and why 'same' padding is not folded), the uint8 input's calibration, TFLite
Metadata and ONNX metadata_props written and read back (bit-identical outputs, aligned buffers,
shared zero points, the same bytes twice), the device-side reader on damaged and hostile files,
and the CLI on a lone file (classify, inspect) with and without metadata.

The real clients (MediaPipe, ONNX Runtime's metadata map, OpenVINO) and a trained export are in
tests/test_clients.py; the Java reader in ``make java-test``.
"""
from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edgecnn.cli import cli
from edgecnn.contract import model_metadata as mm
from edgecnn.contract import tflite_metadata as tm
from edgecnn.data import preprocess as pp
from edgecnn.errors import ExportError, ModelFileError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "android_app" / "app" / "src" / "test" / "resources" / "golden"
sys.path.insert(0, str(ROOT / "tools"))
LABELS = ["red", "green", "blue"]


def _images(n=32):
    from edgecnn.data.sample import load_sample

    return load_sample()[1][0][:n]


# ---------------------------------------------------------------------------- folding
def _k():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras


def _conv_model(padding="valid", bias=True, bn=False, rescale=None):
    k = _k()
    inp = k.Input((32, 32, 3))
    x = k.layers.Rescaling(rescale)(inp) if rescale else inp
    x = k.layers.Conv2D(8, 3, padding=padding, use_bias=bias, name="first")(x)
    if bn:
        norm = k.layers.BatchNormalization(name="first_bn")
        x = norm(x)
        norm.set_weights([np.random.default_rng(i).uniform(0.5, 2, 8).astype(np.float32) for i in range(4)])
    x = k.layers.ReLU()(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(10, activation="softmax")(x))


@pytest.mark.parametrize("kind, expect", [
    ("valid_bias", "offset into its bias"),
    ("valid_bn", "moving mean of 'first_bn'"),
    ("valid_nobias", "offset as a new bias"),
    ("same", "in front: a 1x1 depthwise conv"),
    ("rescaling_first", "into the first layer"),
    ("sequential", "the model called as a layer"),
])
def test_each_fold_form_computes_the_run_s_function(kind, expect):
    from edgecnn.export.fold import camera_spec, fold_normalization

    spec = pp.spec_for((32, 32, 3))
    if kind == "sequential":
        k = _k()
        model = k.Sequential([k.Input((32, 32, 3)), k.layers.Conv2D(4, 3), k.layers.GlobalAveragePooling2D(),
                              k.layers.Dense(10, activation="softmax")])
    elif kind == "rescaling_first":
        model, spec = _conv_model(rescale=1 / 255.0), pp.parse_preprocess("raw", (32, 32), 3)
    else:
        model = _conv_model(padding="same" if kind == "same" else "valid", bias=kind == "valid_bias",
                            bn=kind == "valid_bn")
    x = _images(16)
    new, rep = fold_normalization(model, spec, check_inputs=x)
    assert expect in rep["how"], rep
    p0 = model.predict(pp.preprocess(x, spec), verbose=0)
    p1 = new.predict(pp.preprocess(x, camera_spec(spec)), verbose=0)
    assert np.max(np.abs(p0 - p1)) < 1e-5 and rep["max_abs_diff"] < 1e-5
    if kind.startswith("valid"):
        assert [type(l).__name__ for l in new.layers] == [type(l).__name__ for l in model.layers]  # same ops


@pytest.mark.parametrize("padding, expect", [("valid", "moving mean of 'bn'"), ("same", "called as a layer")])
def test_keras3_models_fold_too(padding, expect):
    """A user's Keras 3 model is exported as it is: its graph config has another format."""
    import keras

    from edgecnn.export.fold import camera_spec, fold_normalization

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    norm = keras.layers.BatchNormalization(name="bn")
    y = norm(keras.layers.Conv2D(4, 3, padding=padding, use_bias=False)(inp))
    norm.set_weights([np.random.default_rng(i).uniform(0.5, 2, 4).astype(np.float32) for i in range(4)])
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(y)))
    spec, x = pp.spec_for((32, 32, 3)), _images(16)
    new, rep = fold_normalization(model, spec, check_inputs=x)
    assert expect in rep["how"] and rep["max_abs_diff"] < 1e-5
    p1 = new.predict(pp.preprocess(x, camera_spec(spec)), verbose=0)
    assert np.max(np.abs(model.predict(pp.preprocess(x, spec), verbose=0) - p1)) < 1e-5


def test_a_same_padded_conv_is_not_folded_because_its_border_would_change():
    """Folding into a 'same' conv pads the camera input with 0 where the run's input was padded
    with 0 after normalization (-mean/std in camera units): the borders change."""
    from edgecnn.export.fold import _into_conv, affine, camera_spec

    spec = pp.spec_for((32, 32, 3))
    model = _conv_model(padding="same", bias=True)
    a, b = affine(spec)
    wrong, _ = _into_conv(model, model.get_layer("first"), a, b)
    x = _images(16)
    p0 = model.predict(pp.preprocess(x, spec), verbose=0)
    p1 = wrong.predict(pp.preprocess(x, camera_spec(spec)), verbose=0)
    assert np.max(np.abs(p0 - p1)) > 1e-3


def test_a_fold_that_changes_the_function_is_refused(monkeypatch):
    from edgecnn.export import fold

    monkeypatch.setattr(fold, "affine", lambda spec: (np.array([1.0, 1.1, 1.0]), np.zeros(3)))
    with pytest.raises(ExportError, match="changed its outputs"):
        fold.fold_normalization(_conv_model(), pp.spec_for((32, 32, 3)), check_inputs=_images(8))


def test_the_run_already_taking_pixels_over_255_needs_no_fold():
    from edgecnn.export.fold import fold_normalization

    model = _conv_model()
    new, rep = fold_normalization(model, pp.parse_preprocess("unit", (32, 32), 3))
    assert new is model and rep["how"].startswith("none")


def test_calibration_reaches_0_and_255_and_the_uint8_input_is_checked():
    from edgecnn.export.fold import calibration_reaching_ends, check_camera_input

    x = np.full((3, 4, 4, 3), 100, np.uint8)
    y = calibration_reaching_ends(x)
    assert y.min() == 0 and y.max() == 255 and x.min() == 100  # a copy, the caller's untouched
    assert int((y != 100).sum()) == 6  # one pixel each, three channels
    ok = calibration_reaching_ends(np.array([[[[0, 255, 3]]]], np.uint8))
    assert ok.tolist() == [[[[0, 255, 3]]]]
    check_camera_input({"dtype": "uint8", "scale": float(np.float32(1 / 255)), "zero_point": 0}, "m")
    check_camera_input({"dtype": "int8", "scale": float(np.float32(1 / 255)), "zero_point": -128}, "m")
    with pytest.raises(ExportError, match="camera's pixels would be misread"):
        check_camera_input({"dtype": "uint8", "scale": 0.0036, "zero_point": 0}, "m")


# ---------------------------------------------------------------------------- TFLite Metadata
def _info(spec=None, kind="probabilities"):
    from edgecnn.export.metadata import ClassifierInfo

    return ClassifierInfo(name="rgb", labels=LABELS, spec=spec or pp.parse_preprocess("unit", (32, 32), 3),
                          output_kind=kind, description="three means", version="v1", author="me", license="MIT")


def _bare(dtype="uint8") -> bytes:
    import make_golden

    return make_golden._tiny_tflite(dtype)


def test_tflite_metadata_round_trip_keeps_the_model_and_its_layout():
    from edgecnn.export.compact import buffers_aligned, outputs_on
    from edgecnn.export.metadata import with_tflite_metadata

    bare = _bare()
    data = with_tflite_metadata(bare, _info())
    d = mm.describe_bytes(data, "m")
    assert (d.labels, d.output_kind, d.name, d.version, d.author, d.license) == (LABELS, "probabilities", "rgb", "v1",
                                                                                   "me", "MIT")
    assert d.normalization == {"mean": [0.0], "std": [255.0]} and d.color_space == "RGB"
    assert d.spec().to_dict() == dict(pp.parse_preprocess("unit", (32, 32), 3).to_dict(),
                                      scale=float(np.float32(1 / 255)))  # the uint8 tensor's own scale
    assert tm.associated_files(data)["labels.txt"] == b"red\ngreen\nblue\n"
    assert buffers_aligned(data)
    x = [pp.preprocess(_images(2)[i:i + 1], pp.parse_preprocess("unit", (32, 32), 3)) for i in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(outputs_on(bare, x), outputs_on(data, x)))
    again = with_tflite_metadata(data, _info())  # replaces, never stacks
    assert again == data and mm.describe_bytes(again).labels == LABELS


def test_metadata_keeps_shared_zero_points_and_the_converter_s_entries(tmp_path):
    import tensorflow as tf

    from edgecnn.export.compact import compact_tflite
    from edgecnn.export.metadata import with_tflite_metadata
    from edgecnn.measure.anatomy import tflite_breakdown

    conv = tf.lite.TFLiteConverter.from_keras_model(_conv_model())
    cal = pp.preprocess(_images(16), pp.spec_for((32, 32, 3)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([cal[i:i + 1]] for i in range(len(cal)))
    small, _ = compact_tflite(conv.convert())
    info = _info(pp.spec_for((32, 32, 3)))
    info = type(info)(**dict(info.__dict__, labels=[str(i) for i in range(10)]))
    data = with_tflite_metadata(small, info)
    (tmp_path / "a.tflite").write_bytes(small)
    (tmp_path / "b.tflite").write_bytes(data)
    a, b = tflite_breakdown(tmp_path / "a.tflite"), tflite_breakdown(tmp_path / "b.tflite")
    assert b["quantization"] == a["quantization"]  # zero-point vectors still stored once
    assert set(a["metadata"]) < set(b["metadata"]) and "TFLITE_METADATA" in b["metadata"]
    assert len(data) - len(small) < 4096


def test_per_channel_and_global_normalization_are_read_as_written():
    from edgecnn.export.metadata import with_tflite_metadata

    for preset, norm in (("imagenet", None), ("keras-mobilenet", {"mean": [127.5], "std": [127.5]})):
        spec = pp.parse_preprocess(preset, (32, 32), 3)
        d = mm.describe_bytes(with_tflite_metadata(_bare("float32"), _info(spec, "logits")))
        assert d.output_kind == "logits"
        if norm:
            assert d.normalization == norm
        assert mm.same_input(d.spec(), spec, {"dtype": "float32"})


def test_every_golden_model_still_reads_as_committed():
    doc = json.loads((GOLDEN / "metadata.json").read_text())
    for case in doc["cases"]:
        d = mm.describe(GOLDEN / case["model"])
        assert d.labels == case["labels"] and d.preprocessing == case["preprocessing"]
    assert mm.describe(GOLDEN / doc["bare"]) is None


# ---------------------------------------------------------------------------- hostile files
def _damaged(good: bytes, seed: int = 0):
    rng = np.random.default_rng(seed)
    for cut in (0, 3, 8, 16, 64, len(good) // 3, len(good) // 2, len(good) - 200, len(good) - 23, len(good) - 1):
        yield good[:max(0, cut)]
    for _ in range(300):
        d = bytearray(good)
        for pos in rng.integers(0, len(d), size=rng.integers(1, 5)):
            d[pos] = int(rng.integers(0, 256))
        yield bytes(d)


def test_damaged_tflite_files_are_one_error_or_read():
    refused = 0
    for case in json.loads((GOLDEN / "metadata.json").read_text())["cases"]:
        for d in _damaged((GOLDEN / case["model"]).read_bytes()):
            try:
                mm.describe_bytes(d, "damaged")
            except ModelFileError as e:
                assert "\n" not in e.message
                refused += 1
    assert refused > 30


def _with_archive(flatbuffer: bytes, files: dict, compress=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    out.write(flatbuffer)
    with zipfile.ZipFile(out, "w", compression=compress) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_hostile_metadata_is_refused_naming_it():
    from edgecnn.export.metadata import edgecnn_doc, with_tflite_metadata

    good = with_tflite_metadata(_bare(), _info())
    body = good[:tm.flatbuffer_size(good)]
    cases = {
        "compressed": (_with_archive(body, {"labels.txt": b"red\ngreen\nblue\n" * 20,
                                            "edgecnn.json": edgecnn_doc(_info())}, zipfile.ZIP_DEFLATED),
                       "compressed"),
        "no labels": (_with_archive(body, {"edgecnn.json": edgecnn_doc(_info())}), "does not carry"),
        "two labels": (_with_archive(body, {"labels.txt": b"red\ngreen\n", "edgecnn.json": edgecnn_doc(_info())}),
                       "2 labels"),
        "twice": (_with_archive(body, {"labels.txt": b"red\nred\nblue\n", "edgecnn.json": edgecnn_doc(_info())}),
                  "twice"),
        "other normalization": (_with_archive(body, {"labels.txt": b"red\ngreen\nblue\n", "edgecnn.json": edgecnn_doc(
            _info(pp.parse_preprocess("raw", (32, 32), 3)))}), "different inputs"),
        "many entries": (_with_archive(body, {f"f{i}": b"x" for i in range(100)}), "associated files"),
    }
    for what, (data, words) in cases.items():
        with pytest.raises(ModelFileError, match=words):
            mm.describe_bytes(data, what)
    # A vector claiming 2^31 entries is refused from its length, before anything is walked.
    meta = tm.metadata_buffer(good)
    start = good.index(meta)
    root = int.from_bytes(meta[0:4], "little")
    vt = root - int.from_bytes(meta[root:root + 4], "little", signed=True)
    slot = int.from_bytes(meta[vt + 4 + 2 * tm.MM_SUBGRAPHS:vt + 6 + 2 * tm.MM_SUBGRAPHS], "little")
    vec = root + slot + int.from_bytes(meta[root + slot:root + slot + 4], "little")
    bad = bytearray(good)
    bad[start + vec:start + vec + 4] = (1 << 31).to_bytes(4, "little")
    with pytest.raises(ModelFileError, match="a vector of 2147483648 entries"):
        mm.describe_bytes(bytes(bad), "huge")


# ---------------------------------------------------------------------------- ONNX metadata_props
def _tiny_onnx(path: Path, dtype="float32"):
    import onnx
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.UINT8
    nodes = [] if dtype == "float32" else [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT)]
    nodes.append(helper.make_node("ReduceMean", ["image" if dtype == "float32" else "f", "axes"], ["scores"],
                                  keepdims=0))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", elem, [None, 32, 32, 3])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_onnx_metadata_reads_back_in_onnx_runtime_and_on_the_device(tmp_path):
    import onnxruntime as ort

    from edgecnn.export.metadata import write_onnx_metadata
    from edgecnn.measure import runtime

    p = _tiny_onnx(tmp_path / "m.onnx", "uint8")
    rec = write_onnx_metadata(p, _info(), {"dtype": "uint8", "scale": float(np.float32(1 / 255)), "zero_point": 0})
    assert rec["written"] and "edgecnn.labels" in rec["keys"]
    meta = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).get_modelmeta()
    props = meta.custom_metadata_map
    assert json.loads(props["edgecnn.labels"]) == LABELS and props["Image.NominalPixelRange"] == "Normalized_0_1"
    assert json.loads(props["edgecnn.preprocessing"]) == _info().spec.to_dict() and meta.description == "three means"
    d = mm.describe(p)
    assert d.labels == LABELS and d.input_quantization == {"scale": float(np.float32(1 / 255)), "zero_point": 0}
    r = runtime.load(p)  # ONNX Runtime's uint8 input gets its scale from the metadata
    assert r.input.dtype == "uint8" and r.input.scale == pytest.approx(1 / 255)
    x = pp.preprocess(_images(4), _info().spec)
    assert np.allclose(r.run(x), np.round(x * 255).mean(axis=(1, 2)), atol=1e-3)


def test_damaged_onnx_files_are_one_error_or_read(tmp_path):
    from edgecnn.export.metadata import write_onnx_metadata

    p = _tiny_onnx(tmp_path / "m.onnx")
    write_onnx_metadata(p, _info(), {"dtype": "float32"})
    for d in _damaged(p.read_bytes(), seed=1):
        try:
            mm.describe_bytes(d, "damaged")
        except ModelFileError as e:
            assert "\n" not in e.message
    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        mm.describe_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 10, "m")


# ---------------------------------------------------------------------------- a lone file on the CLI
def test_classify_and_inspect_a_lone_file_by_its_metadata(tmp_path):
    from PIL import Image

    from edgecnn.export.metadata import with_tflite_metadata

    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 2] = 200  # blue
    Image.fromarray(img).save(tmp_path / "blue.png")
    (tmp_path / "m.tflite").write_bytes(with_tflite_metadata(_bare(), _info()))
    r = CliRunner().invoke(cli, ["classify", str(tmp_path / "m.tflite"), str(tmp_path / "blue.png"), "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout.splitlines()[0])
    assert first["top"][0]["label"] == "blue" and first["top"][0]["score"] == pytest.approx(200 / 255 / 1, abs=0.01)
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.tflite")])
    assert r.exit_code == 0 and "labels: 3 (red, green, blue)" in r.output and "TFLite Metadata" in r.output


def test_a_lone_file_without_metadata_names_labels_and_preprocess(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "bare.tflite").write_bytes(_bare())
    r = CliRunner().invoke(cli, ["classify", str(tmp_path / "bare.tflite"), str(tmp_path / "x.png")])
    assert r.exit_code == ModelFileError.exit_code
    assert len(r.output.strip().splitlines()) == 1
    assert "--labels" in r.output and "--preprocess" in r.output and "no manifest" in r.output
    (tmp_path / "l.txt").write_text("r\ng\nb\n")
    r = CliRunner().invoke(cli, ["classify", str(tmp_path / "bare.tflite"), str(tmp_path / "x.png"),
                                 "--labels", str(tmp_path / "l.txt"), "--preprocess", "unit"])
    assert r.exit_code == 0 and "x.png: r 0.000" in r.output
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "bare.tflite")])
    assert r.exit_code == 0 and "metadata: none" in r.output and "--labels" in r.output
