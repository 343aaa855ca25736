"""Accuracy of the int8 routes on a (briefly) trained QuickNet: Keras vs TFLite int8 (PReLU kept /
rewritten) vs ONNX int8 (ORT QDQ U8S8 / from the int8 TFLite), on the 500 bundled test images.

    .venv/bin/python tools/issue4_accuracy.py [--width 0.25] [--epochs 8]

Training here is a stand-in for a real run (none existed when issue 4 was measured): Adam 1e-3
on the 2000 bundled training images, then BN statistics re-estimated on 1000 of them.
"""
import argparse, json, tempfile
from pathlib import Path

import edgecnn  # noqa: F401
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--width", type=float, default=0.25)
ap.add_argument("--epochs", type=int, default=8)
a = ap.parse_args()
import tf_keras as keras
from edgecnn import runtime
from edgecnn.data.preprocess import preprocess, spec_for
from edgecnn.data.sample import load_sample
from edgecnn.export.deploy import prepare_for_deploy
from edgecnn.export.onnx import export_onnx, onnx_from_tflite, quantize_onnx
from edgecnn.export.tflite import export_tflite
from edgecnn.registry import create_model

(xtr, ytr), (xte, yte), _ = load_sample()
spec = spec_for((32, 32, 3), source_size=32)
keras.utils.set_random_seed(0)
m = create_model("quicknet", width_multiplier=a.width)
m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
x, xt = preprocess(xtr, spec), preprocess(xte, spec)
m.fit(x, ytr, epochs=a.epochs, batch_size=32, verbose=0)
for l in m.layers:
    if type(l).__name__ == "BatchNormalization":
        l.momentum = 0.0
m(x[:1000], training=True)
dep, rep = prepare_for_deploy(m, check_inputs=xt[:64])
cal = x[np.random.default_rng(0).permutation(len(x))[:200]]
out = Path(tempfile.mkdtemp())
ref = m.predict(xt, verbose=0)
res = {"model": f"quicknet width {a.width}, {a.epochs} epochs", "keras_top1": float((ref.argmax(1) == yte).mean()),
       "rewrite_max_abs_diff": rep.get("max_abs_diff"), "rewrite_max_abs_diff_logits": rep.get("max_abs_diff_logits")}
export_tflite(m, out / "int8_prelu.tflite", "int8", calibration=cal)
export_tflite(dep, out / "int8_rewrite.tflite", "int8", calibration=cal)
export_onnx(dep, out / "dep.onnx")
quantize_onnx(out / "dep.onnx", out / "ort_qdq.onnx", cal)
onnx_from_tflite(out / "int8_rewrite.tflite", out / "from_tflite.onnx")
for f in ("int8_prelu.tflite", "int8_rewrite.tflite", "ort_qdq.onnx", "from_tflite.onnx"):
    r = runtime.load(out / f)
    o = r.run(xt, batch_size=100 if getattr(r, "_dynamic_batch", False) else None)
    res[f] = {"top1": float((o.argmax(1) == yte).mean()), "agreement": float((o.argmax(1) == ref.argmax(1)).mean())}
print(json.dumps(res, indent=1))
