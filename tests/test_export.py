"""Export and verification: real converters, real runtimes, real CIFAR-10 images."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run directory (run.json per the contract + model.keras): alexnet_tiny_dw at 32x32,
    trained 5 epochs on the 2000 bundled training images; verification uses 200 test images."""
    import tf_keras as keras

    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.models.registry import create_model
    from edgecnn.contract import load_run, save_model, write_run

    (xtr, ytr), _, labels = load_sample()
    spec = spec_for((32, 32, 3), source_size=32)
    keras.utils.set_random_seed(0)
    model = create_model("alexnet_tiny_dw", input_shape=(32, 32, 3), num_classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x = preprocess(xtr, spec)
    model.fit(x, ytr, epochs=5, batch_size=32, verbose=0)
    # Five short epochs leave BN's moving averages far behind the batch statistics (inference would
    # predict one class); re-estimate them on 1000 training images, as after any short fine-tune.
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.0
    model(x[:1000], training=True)
    path = tmp_path_factory.mktemp("runs") / "alexnet_tiny_dw" / "t"
    path.mkdir(parents=True)
    info = {
        "model": "alexnet_tiny_dw", "model_kwargs": {}, "input_shape": [32, 32, 3], "num_classes": 10,
        "labels": labels, "preprocessing": spec.to_dict(), "recipe": {"name": "test"}, "seed": 0, "versions": {},
        "trained": True, "metrics": {},
        "dataset": {"name": "cifar10_sample", "data_arg": "sample", "val_fraction": 0.1, "max_test_images": 200}}
    save_model(path, info, model)
    write_run(path, info)
    return load_run(path)


@pytest.fixture(scope="module")
def tiny_export(tiny_run):
    from edgecnn.export import export_model

    m = export_model(tiny_run, None, int8=True, fp16=True, dynamic=True, onnx=True, calibration=64,
                     max_drop=5.0, echo=lambda s: None)
    return tiny_run.path / "export", m


def test_export_every_format_and_manifest(tiny_run, tiny_export):
    from edgecnn.core.files import sha256_file
    from edgecnn.contract import read_manifest

    out, m = tiny_export
    names = {f"alexnet_tiny_dw_{p}.tflite" for p in ("fp32", "fp16", "dynamic", "int8")} | \
            {f"alexnet_tiny_dw_{p}.onnx" for p in ("fp32", "int8")}
    assert set(m["artifacts"]) == names
    disk = read_manifest(tiny_run.path, check_files=True)  # run dir -> export/manifest.json, sha256 checked
    assert disk == json.loads(json.dumps(m))
    assert m["schema"] == 1 and m["model"] == "alexnet_tiny_dw" and m["trained"] is True
    assert (tiny_run.path / "export" / m["run"]).resolve() == tiny_run.path.resolve()  # relative to the manifest
    assert m["labels"] == tiny_run.labels
    # The artifacts take the camera input (pixels / 255); the Keras reference the run's spec.
    assert m["preprocessing"] == dict(tiny_run.spec.to_dict(), mean=[0.0] * 3, std=[1.0] * 3)
    assert m["keras"]["preprocessing"] == tiny_run.spec.to_dict()
    assert m["camera_input"]["exact"] and m["camera_input"]["max_abs_diff"] <= 1e-4
    assert 0.0 <= m["keras"]["top1"] <= m["keras"]["top5"] <= 1.0
    assert m["keras"]["top1"] > 0.2  # trained: well above the 10% of chance
    assert {"tensorflow", "tf2onnx", "onnxruntime", "ai-edge-litert"} <= set(m["tools"])
    for name, a in m["artifacts"].items():
        v = a["verification"]
        assert a["sha256"] == sha256_file(out / name) and a["bytes"] == (out / name).stat().st_size
        assert v["n"] == 200 and v["passed"] and a["verified"], (name, v)
        assert a["output_kind"] == "probabilities"
        assert a["outputs"][0]["shape"][-1] == 10
        if a["precision"] == "fp32":  # the cross-runtime check: the same function as Keras
            assert v["max_abs_diff_vs_keras"] <= 1e-4 and v["agreement_with_keras"] == 1.0
    int8 = m["artifacts"]["alexnet_tiny_dw_int8.tflite"]
    # A camera's bytes in (uint8, scale 1/255, zero point 0), float scores out.
    assert int8["inputs"][0]["dtype"] == "uint8" and int8["outputs"][0]["dtype"] == "float32"
    assert int8["inputs"][0]["scale"] == pytest.approx(1 / 255, abs=1e-9) and int8["inputs"][0]["zero_point"] == 0
    assert m["artifacts"]["alexnet_tiny_dw_int8.onnx"]["inputs"][0]["dtype"] == "uint8"
    for name, a in m["artifacts"].items():  # every file describes itself; the sha256 covers it with that
        assert a["metadata"]["written"], name
    assert m["artifacts"]["alexnet_tiny_dw_int8.onnx"]["opset"] >= 13
    # 75k params: fixed flatbuffer overhead and int32 biases weigh more than in QuickNet (0.27x there)
    assert int8["bytes"] <= 0.45 * m["artifacts"]["alexnet_tiny_dw_fp32.tflite"]["bytes"]
    assert not list(out.glob(".*"))  # no staging folder or temp file left behind
    fb = int8["flatbuffer"]  # zero-point vectors shared (edgecnn.export.compact), checked bit-identical
    assert fb["compacted"] and fb["bytes_after"] < fb["bytes_before"] and fb["checked_inputs"] == 2
    assert fb["bytes_after"] + int8["metadata"]["bytes_added"] == int8["bytes"]  # then its metadata


def test_compaction_shares_zero_points_and_changes_nothing_else(tiny_run, tmp_path):
    from edgecnn.measure import runtime
    from edgecnn.data.preprocess import preprocess
    from edgecnn.data.sample import load_sample
    from edgecnn.export.compact import buffers_aligned, compact_tflite
    from edgecnn.export.tflite import convert_tflite

    (xtr, _), (xte, _), _ = load_sample()
    model = tiny_run.load_model()
    raw = convert_tflite(model, "int8", calibration=preprocess(xtr[:32], tiny_run.spec))
    small, rep = compact_tflite(raw, [preprocess(xte[:1], tiny_run.spec)])
    assert rep["compacted"] and len(small) < len(raw) and rep["zero_points_shared"] > 0
    assert buffers_aligned(small)

    def every_tensor(data, x):
        return [(d["name"], d["dtype"], d["shape"], d["scales"], d["zero_points"], d["value"].tolist())
                for d in runtime.tensor_dump(data, x)]

    # Unseen test images: every named tensor (weights, activations, scales, zero points) identical.
    for i in range(3):
        x = preprocess(xte[10 + i:11 + i], tiny_run.spec)
        assert every_tensor(small, x) == every_tensor(raw, x)


def test_compaction_keeps_the_original_when_the_check_fails(tiny_run, monkeypatch):
    from edgecnn.data.preprocess import preprocess
    from edgecnn.data.sample import load_sample
    from edgecnn.export import compact
    from edgecnn.export.tflite import convert_tflite

    (xtr, _), _, _ = load_sample()
    cal = preprocess(xtr[:32], tiny_run.spec)
    model = tiny_run.load_model()
    raw = convert_tflite(model, "int8", calibration=cal)
    model.set_weights([w * 0.5 for w in model.get_weights()])  # another function, the same graph
    other = convert_tflite(model, "int8", calibration=cal)
    real_repack = compact.repack
    monkeypatch.setattr(compact, "repack", lambda data: (real_repack(other)[0], 1))
    out, rep = compact.compact_tflite(raw, [cal[:1]])
    assert out is raw and not rep["compacted"] and rep["reason"] == "outputs differ after repacking"


def test_int8_io_and_runtime(tiny_run, tmp_path):
    from edgecnn.measure import runtime
    from edgecnn.export.tflite import export_tflite, tflite_ops
    from edgecnn.data.preprocess import preprocess
    from edgecnn.data.sample import load_sample

    (xtr, _), (xte, _), _ = load_sample()
    model = tiny_run.load_model()
    p = export_tflite(model, tmp_path / "m.tflite", "int8", calibration=preprocess(xtr[:32], tiny_run.spec), int8_io=True)
    r = runtime.load(p)
    assert r.input.dtype == "int8" and r.input.scale > 0 and r.output.dtype == "int8"
    x = preprocess(xte[:50], tiny_run.spec)
    agree = np.mean(r.run(x).argmax(1) == model.predict(x, verbose=0).argmax(1))
    assert agree >= 0.8
    assert "QUANTIZE" not in tflite_ops(p)  # int8 straight in: no float->int8 op at the input


def _quicknet_like(alphas: str, seed: int = 0):
    """A tiny QuickNet (5x5 stem, separable conv + BN + PReLU, max pools, GAP) with trained-looking
    per-channel alphas and BN statistics."""
    from edgecnn.models.registry import create_model

    m = create_model("quicknet", width_multiplier=0.125)
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        kind = type(layer).__name__
        if kind == "PReLU":
            a = rng.uniform(0.05, 0.4, layer.get_weights()[0].shape).astype(np.float32)
            if alphas == "mixed":
                a[..., ::3] *= -1
            layer.set_weights([a])
        elif kind == "BatchNormalization":
            g, b, mu, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape).astype(np.float32), rng.normal(0, .3, b.shape).astype(np.float32),
                               rng.normal(0, .3, mu.shape).astype(np.float32), rng.uniform(.5, 2, var.shape).astype(np.float32)])
    return m


@pytest.mark.parametrize("alphas", ["positive", "mixed"])
def test_prelu_rewrite_keeps_function_and_removes_prelu(alphas, tmp_path):
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export.deploy import prepare_for_deploy
    from edgecnn.export.tflite import convert_tflite, tflite_ops

    (xtr, _), (xte, _), _ = load_sample()
    spec = spec_for((32, 32, 3))
    m = _quicknet_like(alphas)
    x = preprocess(xte[:64], spec)
    dep, rep = prepare_for_deploy(m, check_inputs=x)
    assert dep is not m and "rejected" not in rep
    assert len(rep["prelu"]) == 13
    assert rep["max_abs_diff_logits"] < 1e-4 and rep["max_abs_diff"] < 1e-5
    assert not [l for l in dep.layers if type(l).__name__ == "PReLU"]
    assert all("relu((a - 1) * x)" in e["how"] for e in rep["prelu"])  # every alpha <= 1: in place
    moved = [e["layer"] for e in rep["prelu"] if e.get("through")]
    if alphas == "mixed":  # max pool does not commute with a non-monotone PReLU: none moved
        assert moved == []
    else:  # the three PReLUs before a max pool run after it
        assert sorted(moved) == ["group_1_layer_3_prelu", "group_2_layer_3_prelu", "group_3_layer_3_prelu"]
    if alphas == "positive":  # the QuickNet path; one int8 conversion pair is enough for the op check
        cal = preprocess(xtr[:16], spec)
        before = tflite_ops(convert_tflite(m, "fp32"))  # the PRELU ops an unrewritten export carries
        after = tflite_ops(convert_tflite(dep, "int8", calibration=cal))
        assert before.count("PRELU") == 13
        assert "PRELU" not in after and "RELU" not in after  # standalone int8 RELU has no XNNPACK kernel either


def test_fold_rule_for_alphas_above_one():
    from edgecnn.export.deploy import prepare_for_deploy

    m = _quicknet_like("positive")
    for layer in m.layers:
        if type(layer).__name__ == "PReLU":
            a = layer.get_weights()[0]
            a[..., 0] = 1.5  # one channel above 1: x + relu((a - 1) x) no longer holds
            layer.set_weights([a])
    x = np.random.default_rng(1).normal(size=(16, 32, 32, 3)).astype(np.float32)
    dep, rep = prepare_for_deploy(m, check_inputs=x)
    assert dep is not m and "rejected" not in rep and rep["max_abs_diff_logits"] < 1e-4
    assert all("folded into" in e["how"] for e in rep["prelu"])
    assert not [l for l in dep.layers if type(l).__name__ == "PReLU"]


def test_equal_alphas_become_leaky_relu():
    from edgecnn.export.deploy import rewrite_prelu

    m = _quicknet_like("positive")
    for layer in m.layers:
        if type(layer).__name__ == "PReLU":
            layer.set_weights([np.full_like(layer.get_weights()[0], 0.25)])
    dep, rep = rewrite_prelu(m)
    assert {e["how"] for e in rep["prelu"]} == {"leaky_relu"}
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype(np.float32)
    assert np.max(np.abs(dep.predict(x, verbose=0) - m.predict(x, verbose=0))) < 1e-6


def test_verification_fails_an_artifact_whose_accuracy_dropped(tiny_run, tiny_export, tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli import cli
    from edgecnn.data.preprocess import preprocess
    from edgecnn.data.sample import load_sample
    from edgecnn.errors import VerificationError
    from edgecnn.core.files import sha256_file
    from edgecnn.contract import read_manifest, write_manifest
    from edgecnn.export.tflite import export_tflite
    from edgecnn.export.verify import verify_export

    src, _ = tiny_export
    shutil.copytree(tiny_run.path, tmp_path / "run")  # the whole run: its export's model_file lies inside it
    out = tmp_path / "run" / "export"
    # A model whose weights were damaged, converted to int8 and put in place of the good one.
    model = tiny_run.load_model()
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 1.0 * (np.std(w) + 1e-3), w.shape).astype(w.dtype) if w.ndim > 1 else w
                       for w in model.get_weights()])
    (xtr, _), _, _ = load_sample()
    bad = out / "alexnet_tiny_dw_int8.tflite"
    # Made as the export makes its int8 file (the camera input, metadata): only its weights differ.
    from edgecnn.export.fold import calibration_reaching_ends, camera_spec, fold_normalization
    from edgecnn.export.metadata import ClassifierInfo, write_tflite_metadata

    camera = camera_spec(tiny_run.spec)
    export_tflite(fold_normalization(model, tiny_run.spec)[0], bad, "int8", uint8_input=True,
                  calibration=preprocess(calibration_reaching_ends(xtr[:32]), camera))
    write_tflite_metadata(bad, ClassifierInfo(name="alexnet_tiny_dw", labels=tiny_run.labels, spec=camera))
    m = read_manifest(out)
    m["artifacts"] = {k: v for k, v in m["artifacts"].items() if k.endswith(".tflite") and v["precision"] in ("fp32", "int8")}
    m["artifacts"][bad.name].update(sha256=sha256_file(bad), bytes=bad.stat().st_size)
    write_manifest(out, m)

    with pytest.raises(VerificationError) as e:
        verify_export(out, model=tiny_run.load_model(), max_drop=1.0)
    assert "alexnet_tiny_dw_int8.tflite" in e.value.message and "\n" not in e.value.message
    m = read_manifest(out)
    v = m["artifacts"][bad.name]["verification"]
    assert not m["artifacts"][bad.name]["verified"] and not v["passed"]
    assert m["keras"]["top1"] - v["top1"] > 0.01
    assert bad.is_file()  # kept, marked unverified
    assert m["artifacts"]["alexnet_tiny_dw_fp32.tflite"]["verified"]
    # The CLI says so with its exit code (the manifest's model_file points back into the run).
    res = CliRunner().invoke(cli, ["verify", str(out)])
    assert res.exit_code == VerificationError.exit_code, res.output


def test_failed_conversion_leaves_nothing_and_names_the_layer(tmp_path):
    import tensorflow as tf
    import tf_keras as keras

    from edgecnn.errors import ExportError
    from edgecnn.export import export_model

    i = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(i)
    x = keras.layers.Lambda(tf.math.special.bessel_i0e, name="odd_layer")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(i, keras.layers.Dense(10, activation="softmax")(x))
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError) as e:
        export_model(model, out, int8=True, onnx=True, calibration=8, echo=lambda s: None)
    msg = e.value.message
    assert "BesselI0e" in msg and "odd_layer" in msg and "\n" not in msg
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # no artifact, no manifest, no staging dir


def test_read_manifest_rejects_damage(tiny_export, tmp_path):
    from edgecnn.errors import ModelFileError
    from edgecnn.contract import read_manifest

    src, _ = tiny_export
    out = tmp_path / "e"
    shutil.copytree(src, out)
    (out / "alexnet_tiny_dw_int8.tflite").write_bytes(b"\0" * 16)
    with pytest.raises(ModelFileError, match="sha256"):
        read_manifest(out, check_files=True)
    m = json.loads((out / "manifest.json").read_text())
    del m["artifacts"]["alexnet_tiny_dw_fp32.onnx"]["sha256"]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="sha256"):
        read_manifest(out)


def test_cli_export_quicknet_int8_fresh_checkout(tmp_path):
    """`edgecnn export quicknet --int8` with no runs anywhere: fresh weights, loud warning."""
    exe = Path(sys.executable).with_name("edgecnn")
    env = dict(os.environ, EDGECNN_RUNS=str(tmp_path / "runs"))
    p = subprocess.run([str(exe), "export", "quicknet", "--int8", "--calibration", "32", "--no-onnx"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "FRESH (untrained) weights" in p.stderr  # our own warning stays
    from test_quiet import noise_lines

    assert noise_lines(p.stdout + p.stderr) == [], p.stderr  # and nothing from TF, the converter or LiteRT
    out = tmp_path / "runs" / "quicknet" / "untrained" / "export"
    m = json.loads((out / "manifest.json").read_text())
    assert m["trained"] is False and m["run"] is None
    a = m["artifacts"]
    assert set(a) == {"quicknet_fp32.tflite", "quicknet_int8.tflite"}
    assert all(x["verified"] for x in a.values())
    assert "untrained" in a["quicknet_int8.tflite"]["verification"]["reason"]
    assert a["quicknet_int8.tflite"]["bytes"] <= 0.3 * a["quicknet_fp32.tflite"]["bytes"]
    assert a["quicknet_int8.tflite"]["graph"] == "deploy" and m["deploy_rewrite"]["prelu"]
