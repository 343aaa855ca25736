"""Pruning, clustering and QAT (edgecnn.export.compress) on tiny models and real CIFAR-10 images."""
import json
import re

import numpy as np
import pytest

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from edgecnn.errors import InvalidConfigError
from edgecnn.export import compress


@pytest.fixture(scope="module")
def data():
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample

    (xtr, ytr), (xte, yte), _ = load_sample()
    spec = spec_for((32, 32, 3))
    return (preprocess(xtr[:64], spec), ytr[:64]), (preprocess(xte[:32], spec), yte[:32])


def _quicknet_like():
    """QuickNet's layer types: 5x5 stem, SeparableConv2D, BN, PReLU(shared_axes=[1,2]), pools, softmax."""
    import tf_keras

    L = tf_keras.layers
    i = L.Input((32, 32, 3))
    x = L.Conv2D(16, 5, padding="same", use_bias=False, name="stem_conv")(i)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.PReLU(shared_axes=[1, 2], name="stem_prelu")(x)
    x = L.MaxPooling2D(name="pool1")(x)
    x = L.SeparableConv2D(32, 3, padding="same", use_bias=False, name="b1_sep")(x)
    x = L.BatchNormalization(name="b1_bn")(x)
    x = L.PReLU(shared_axes=[1, 2], name="b1_prelu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Dense(10, activation="softmax", name="predictions")(x)
    return tf_keras.Model(i, x, name="quicknet_like")


def _dense_reasons(step):
    return {(d["layer"], d.get("weight")): d["reason"] for d in step["layers_left_dense"]}


def test_prune_reaches_target_sparsity_and_leaves_prelu_dense(data):
    train, val = data
    model = _quicknet_like()
    before = [w.copy() for w in model.get_weights()]
    out, report = compress.compress_model(model, prune=0.6, train_data=train, val_data=val, epochs=1, batch_size=16)
    json.dumps(report)
    (step,) = report["steps"]
    assert step["method"] == "prune"
    assert set(step["layers_wrapped"]) == {"stem_conv", "b1_sep", "predictions"}
    assert step["weights_pruned"]["b1_sep"] == ["pointwise_kernel"]
    reasons = _dense_reasons(step)
    assert "PReLU" in reasons["stem_prelu", None] and "PReLU" in reasons["b1_prelu", None]
    assert "depthwise_kernel stays dense" in reasons["b1_sep", "depthwise_kernel"]
    for name, attrs in step["weights_pruned"].items():
        for a in attrs:
            w = getattr(out.get_layer(name), a).numpy()
            assert abs(np.mean(w == 0) - 0.6) < 0.02, (name, a, np.mean(w == 0))
    assert np.all(out.get_layer("stem_prelu").alpha.numpy() != 0)
    assert abs(step["sparsity_achieved"]["overall"] - 0.6) < 0.02
    assert step["zipped_bytes_after"] < step["zipped_bytes_before"]
    assert 0.0 <= step["accuracy_after"] <= 1.0
    assert not any("prune" in type(l).__name__.lower() for l in out.layers)  # stripped
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # caller's model untouched


def test_prune_then_cluster_keeps_zeros_and_at_most_k_values(data):
    train, val = data
    out, report = compress.compress_model(_quicknet_like(), prune=0.5, cluster=4, cluster_init="LINEAR",
                                          train_data=train, val_data=val, epochs=1, batch_size=16)
    prune_step, cluster_step = report["steps"]
    assert cluster_step["method"] == "cluster" and cluster_step["params"]["preserve_sparsity"] is True
    assert "PReLU" in _dense_reasons(cluster_step)["b1_prelu", None]
    assert cluster_step["accuracy_before"] == prune_step["accuracy_after"]
    for name, attrs in cluster_step["weights_clustered"].items():
        for a in attrs:
            w = getattr(out.get_layer(name), a).numpy()
            assert np.unique(w).size <= 4, (name, a, np.unique(w).size)
            assert np.mean(w == 0) >= 0.45, (name, a)  # sparsity-preserving clustering
        assert cluster_step["unique_weights_per_layer"][name] <= 4
    assert cluster_step["zipped_bytes_after"] < cluster_step["zipped_bytes_before"]


def _ops(tflite_bytes):
    """(op name, input dtypes) per op, without the XNNPACK delegate hiding them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=tflite_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    t = it.get_tensor_details()
    return [(d["op_name"], {t[i]["dtype"].__name__ for i in d["inputs"] if i >= 0}) for d in it._get_ops_details()]


def test_qat_model_converts_to_int8_tflite_and_runs(data):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    train, val = data
    qat, report = compress.compress_model(_quicknet_like(), qat=True, train_data=train, val_data=val,
                                          epochs=1, batch_size=16)
    (step,) = report["steps"]
    assert {d["layer"] for d in step["layers_left_dense"]} == {"stem_prelu", "b1_prelu"}

    def rep():
        for i in range(16):
            yield [train[0][i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(qat)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    blob = conv.convert()
    ops = _ops(blob)
    assert ("PRELU", {"int8"}) in ops
    assert all(dt <= {"int8", "int32"} for _, dt in ops), ops  # fully int8: no float op left

    it = Interpreter(model_content=blob)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    from edgecnn.data.preprocess import dequantize, quantize

    keras_probs = qat.predict(val[0][:8], verbose=0)
    for i in range(8):
        it.set_tensor(inp["index"], quantize(val[0][i:i + 1], *inp["quantization"]))
        it.invoke()
        probs = dequantize(it.get_tensor(out["index"]), *out["quantization"])[0]
        assert abs(probs.sum() - 1.0) < 0.05
        assert np.max(np.abs(probs - keras_probs[i])) < 0.1

    # Without representative data the converter keeps the unannotated PReLU in float: the
    # documented reason a QAT QuickNet needs calibration data at conversion.
    conv = tf.lite.TFLiteConverter.from_keras_model(qat)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    ops = _ops(conv.convert())
    assert ("PRELU", {"float32"}) in ops
    assert ("CONV_2D", {"int8", "int32"}) in ops


@pytest.mark.parametrize("bad", [0, 1, 1.0, -0.1, 1.5, True, "0.5", [0.5]])
def test_bad_sparsity_is_rejected_with_the_value(bad):
    with pytest.raises(InvalidConfigError, match=re.escape(f"sparsity={bad!r}")):
        compress.compress_model(object(), prune=bad, train_data=None, val_data=None)


@pytest.mark.parametrize("bad", [1, 0, 257, 2.5, True, "8"])
def test_bad_cluster_count_is_rejected_with_the_value(bad):
    with pytest.raises(InvalidConfigError, match=re.escape(f"cluster={bad!r}")):
        compress.compress_model(object(), cluster=bad, train_data=None, val_data=None)


def test_bad_centroid_init_and_nothing_to_do():
    with pytest.raises(InvalidConfigError, match="KMEANS_PLUS_PLUS"):
        compress.compress_model(object(), cluster=8, cluster_init="RANDOM", train_data=None, val_data=None)
    with pytest.raises(InvalidConfigError, match="nothing to do"):
        compress.compress_model(object(), train_data=None, val_data=None)


def test_zipped_size_of_file_and_model(tmp_path):
    p = tmp_path / "zeros.bin"
    p.write_bytes(bytes(100_000))
    assert 0 < compress.zipped_size(p) < 2_000
    assert compress.zipped_size(_quicknet_like()) > 1_000


def test_export_qat_with_prelu_end_to_end(tmp_path):
    """`export_model(..., prune=, qat=True, int8=True)` on a PReLU model: TFMOT steps in the
    manifest, the PReLU rewrite skipped for the QAT model (not a crash), a fully int8 TFLite that
    runs on LiteRT and is verified."""
    from edgecnn.export import export_model
    from edgecnn.export.tflite import tflite_ops

    m = export_model(_quicknet_like(), tmp_path / "out", int8=True, onnx=False, prune=0.5, qat=True,
                     compress_epochs=1, calibration=32, max_drop=100.0, echo=lambda s: None)
    steps = [s["method"] for s in m["compression"]["steps"]]
    assert steps == ["prune", "qat"]
    assert "skipped" in m["deploy_rewrite"] and "quantization-aware" in m["deploy_rewrite"]["skipped"]
    a = m["artifacts"]["quicknet_like_int8.tflite"]
    assert a["verified"] and a["verification"]["n"] > 0 and a["graph"] == "qat"
    assert m["artifacts"]["quicknet_like_fp32.tflite"]["verification"]["max_abs_diff_vs_keras"] <= 1e-4  # float model
    ops = tflite_ops(tmp_path / "out" / "quicknet_like_int8.tflite")
    assert "PRELU" in ops and "DEQUANTIZE" not in ops[1:-1]  # int8 PRELU inside, float only at the edges
    assert not list((tmp_path / "out").glob(".*"))


def test_cli_export_prune_cluster(tmp_path):
    """`edgecnn export MODEL --int8 --prune --cluster` through the CLI on a small registered model."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("edgecnn")
    env = dict(os.environ, EDGECNN_RUNS=str(tmp_path / "runs"))
    p = subprocess.run([str(exe), "export", "alexnet_tiny_dw", "--int8", "--no-onnx", "--prune", "0.5", "--cluster", "8",
                        "--compress-epochs", "1", "--calibration", "32", "--max-drop", "100", "--out", str(tmp_path / "o")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    prune, cluster = man["compression"]["steps"]
    assert prune["method"] == "prune" and cluster["method"] == "cluster"
    assert cluster["params"]["preserve_sparsity"] is True
    assert cluster["zipped_bytes_after"] < prune["zipped_bytes_before"]
    assert set(man["artifacts"]) == {"alexnet_tiny_dw_fp32.tflite", "alexnet_tiny_dw_int8.tflite"}
