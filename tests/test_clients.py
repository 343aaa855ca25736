"""The exported files in the clients people already use, on a trained run:

* MediaPipe's ImageClassifier (1.2.3, in its own virtualenv made by ``make test-deps``) runs the
  fp32 and the int8 TFLite as they are, labels and normalization from their TFLite Metadata, and
  gives ``edgecnn classify``'s top-1 on every one of 500 real CIFAR-10 test images;
* ONNX Runtime reads the ONNX files' metadata back (its model metadata map);
* OpenVINO verifies and benchmarks the .onnx and .tflite files (``--runtime openvino``), and
  ``edgecnn benchmark RUN --runtime litert,onnxruntime,openvino`` gives one table;
* a lone file copied out of the export classifies, benchmarks and inspects by itself;
* the Android app's Java core bundles the int8 file and reads its labels and normalization from
  the model's metadata, feeding the bytes Python's preprocessing gives.

The run: a small conv net (a 'valid' first conv with a bias, so the normalization folds into its
kernel and bias) trained 12 epochs on the bundled 2,000 training images (~40% top-1 on the 500
test images: its answers depend on the image), exported with int8 and ONNX.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edgecnn.cli import cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from mediapipe_agreement import MP_PYTHON, compare  # noqa: E402  (the one definition of agreement)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained run (run.json + model.keras per the contract) exported with int8 and ONNX."""
    import tf_keras as keras

    from edgecnn.contract import load_run, save_model, write_run
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export import export_model

    (xtr, ytr), _, labels = load_sample()
    spec = spec_for((32, 32, 3))
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(24, 3, strides=2, activation="relu", name="stem")(inp)
    x = keras.layers.Conv2D(48, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="smallnet")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(preprocess(xtr, spec), ytr, epochs=12, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("runs") / "smallnet" / "r"
    path.mkdir(parents=True)
    info = {"model": "smallnet", "model_kwargs": {}, "input_shape": [32, 32, 3], "num_classes": 10, "labels": labels,
            "preprocessing": spec.to_dict(), "recipe": {"name": "test"}, "seed": 0, "versions": {}, "trained": True,
            "metrics": {}, "keras_model_name": "smallnet",
            "dataset": {"name": "cifar10_sample", "data_arg": "sample", "val_fraction": 0.1}}
    save_model(path, info, model)
    write_run(path, info)
    export_model(load_run(path), None, int8=True, onnx=True, calibration=100, max_drop=5.0, echo=lambda s: None)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The 500 bundled CIFAR-10 test images as PNG files (32x32: no resize on either side) and an npz."""
    from PIL import Image

    from edgecnn.data.sample import load_sample

    _, (x, y), _ = load_sample()
    d = tmp_path_factory.mktemp("images")
    paths = []
    for i, img in enumerate(x):
        p = d / f"{i:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    np.savez(d / "images.npz", x=x)
    return x, paths, d / "images.npz"


def _mediapipe(model: Path, npz: Path, out: Path) -> dict:
    if not MP_PYTHON.is_file():
        pytest.fail(f"no MediaPipe virtualenv at {MP_PYTHON}: `make test-deps` creates it", pytrace=False)
    r = subprocess.run([str(MP_PYTHON), str(ROOT / "tools" / "mediapipe_classify.py"), str(model), str(npz), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(out.read_text())


def _edgecnn_classify(target: Path, paths, artifact=None) -> list:
    args = ["classify", str(target)] + [str(p) for p in paths] + ["--json", "-k", "10"]
    r = CliRunner().invoke(cli, args + (["--artifact", artifact] if artifact else []))
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines() if not line.startswith('{"summary"')]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_mediapipe_gives_edgecnn_s_answers_from_the_file_alone(run, images, tmp_path, precision):
    x, paths, npz = images
    export = run / "export"
    m = json.loads((export / "manifest.json").read_text())
    name = f"smallnet_{precision}.tflite"
    mp = _mediapipe(export / name, npz, tmp_path / "mp.json")
    ours = _edgecnn_classify(export, paths, artifact=name)
    assert mp["mediapipe"] == "1.2.3" and mp["head_name"] == "probability" and len(mp["images"]) == len(ours) == 500
    scores = np.zeros((len(ours), 10))
    for i, b in enumerate(ours):
        for t in b["top"]:
            scores[i, t["index"]] = t["score"]
    c = compare(mp["images"], scores, m["labels"])
    assert c["agree"] + c["ties"] == 500, c  # equal scores count: either index is the top-1
    assert c["label_names_match"]  # MediaPipe's label names are the run's
    assert c["max_score_diff"] < 1e-5  # the same input bytes on the same kernels
    assert c["classes_predicted"] >= 5  # a model whose answer depends on the image, or agreement proves nothing
    if precision == "int8":
        assert m["artifacts"][name]["inputs"][0]["dtype"] == "uint8"  # MediaPipe fed it the raw bytes


def test_mediapipe_refuses_per_channel_normalization_which_is_why_it_is_folded(run, images, tmp_path):
    """The file as it would be without the fold: the run's per-channel spec in its metadata."""
    from edgecnn.contract import load_run
    from edgecnn.export.metadata import ClassifierInfo, write_tflite_metadata

    r = load_run(run)
    f = tmp_path / "per_channel.tflite"
    shutil.copyfile(run / "export" / "smallnet_fp32.tflite", f)
    write_tflite_metadata(f, ClassifierInfo(name="smallnet", labels=r.labels, spec=r.spec))
    out = subprocess.run([str(MP_PYTHON), str(ROOT / "tools" / "mediapipe_classify.py"), str(f), str(images[2]),
                          str(tmp_path / "o.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 3 and "Per-channel image normalization is not available" in out.stderr


def test_onnx_runtime_reads_the_metadata_back(run):
    import onnxruntime as ort

    m = json.loads((run / "export" / "manifest.json").read_text())
    for name in ("smallnet_fp32.onnx", "smallnet_int8.onnx"):
        meta = ort.InferenceSession(str(run / "export" / name), providers=["CPUExecutionProvider"]).get_modelmeta()
        props = meta.custom_metadata_map
        assert json.loads(props["edgecnn.labels"]) == m["labels"]
        assert json.loads(props["edgecnn.preprocessing"]) == m["preprocessing"]
        assert props["edgecnn.output_kind"] == "probabilities" and "smallnet" in meta.description
    q = json.loads(ort.InferenceSession(str(run / "export" / "smallnet_int8.onnx"), providers=["CPUExecutionProvider"])
                   .get_modelmeta().custom_metadata_map["edgecnn.input_quantization"])
    assert q == {"scale": pytest.approx(1 / 255), "zero_point": 0}


def test_openvino_verifies_and_one_table_holds_three_runtimes(run, tmp_path):
    r = CliRunner().invoke(cli, ["verify", str(run), "--runtime", "openvino"])
    assert r.exit_code == 0, r.output
    m = json.loads((run / "export" / "manifest.json").read_text())
    for name, a in m["artifacts"].items():
        v = a["verified_on"]["openvino"]
        assert v["passed"] and v["precision_hint"] == "f32", (name, v)
        if a["precision"] == "fp32":
            assert v["max_abs_diff_vs_keras"] <= 1e-4
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["benchmark", str(run), "--runtime", "litert,onnxruntime,openvino", "--runs", "5",
                                 "--warmup", "1", "--in-process", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    got = {(row["artifact"], row["runtime"]) for row in rows}
    names = set(m["artifacts"])
    assert got == {(n, "litert") for n in names if n.endswith(".tflite")} | \
        {(n, "onnxruntime") for n in names if n.endswith(".onnx")} | {(n, "openvino") for n in names}
    for row in rows:
        if row["runtime"] == "openvino":
            hint = row["runtime_detail"]["precision_hint"]  # what OpenVINO chose on this CPU
            assert hint in ("f32", "bf16", "f16") and "openvino" in row["accuracy"]["runtime"]
            if hint == "f32":
                assert row["accuracy"]["verified"]
            else:  # verified with f32 pinned: shown as that, not as this row's precision
                assert row["accuracy"]["verified"] is None and row["accuracy"]["verified_hint"] == "f32"
    table = r.output.split("Written:")[0]
    assert "openvino (" in table and "onnxruntime" in table and "litert" in table


def test_a_lone_file_classifies_benchmarks_and_inspects_by_itself(run, images, tmp_path):
    x, paths, _ = images
    for name in ("smallnet_int8.tflite", "smallnet_fp32.onnx"):
        lone = tmp_path / name
        shutil.copyfile(run / "export" / name, lone)
        with_manifest = _edgecnn_classify(run / "export", paths[:40], artifact=name)
        alone = _edgecnn_classify(lone, paths[:40])
        assert [a["top"] for a in alone] == [b["top"] for b in with_manifest]
        r = CliRunner().invoke(cli, ["benchmark", str(lone), "--runs", "3", "--warmup", "0", "--in-process",
                                     "--out", str(tmp_path / ("b_" + name))])
        assert r.exit_code == 0, r.output
        doc = json.loads((tmp_path / ("b_" + name) / "results.json").read_text())
        assert "Metadata" in doc["rows"][0]["inputs"]["spec_note"] or "metadata_props" in \
            doc["rows"][0]["inputs"]["spec_note"]
        assert not doc["notes"]  # nothing to say about unknown preprocessing
        r = CliRunner().invoke(cli, ["inspect", str(lone)])
        assert r.exit_code == 0 and "labels: 10 (airplane" in r.output


def test_the_android_core_reads_the_bundled_model_s_metadata(run, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_android import APP, _java_reads_bundle, _python_input_sha

    from edgecnn.device import bundle

    app = tmp_path / "android_app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("assets", "build", ".gradle", "test"))
    doc = bundle.bundle_android(run, app=app, artifact="int8", images=6, echo=lambda s: None)
    assets = app / bundle.ASSETS
    java = _java_reads_bundle(assets, tmp_path)
    assert java.pop("__source__") == "model metadata"
    assert len(java) == 6
    for f, got in java.items():
        assert got["true"] == got["label_txt"]
        assert got["sha256"] == _python_input_sha(assets / f, doc)
