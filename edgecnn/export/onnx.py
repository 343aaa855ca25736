"""Keras -> ONNX with tf2onnx (fp32) and int8 QDQ ONNX, both written atomically.

fp32: ``tf2onnx.convert.from_keras`` with an explicit ``input_signature`` (dynamic batch, fixed
H, W, C: the runtime facade takes a dynamic batch only), opset ``DEFAULT_OPSET``; a Keras 3 model
through ``tf2onnx.convert.from_function`` on its call (``from_keras`` reads tf_keras internals).

int8, two routes (``INT8_ROUTES``), measured in docs/int8-export.md:

* ``ort_qdq`` (default): ONNX Runtime ``quantize_static`` on the fp32 ONNX of the deploy model,
  QDQ format, per-channel int8 weights, uint8 activations (ORT's recommended U8S8 on x86-64),
  calibrated on the same preprocessed training images as the TFLite int8 model.
* ``from_tflite``: the int8 TFLite through ``tf2onnx.convert.from_tflite`` (QDQ ONNX carrying the
  TFLite converter's own scales).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgecnn.errors import ExportError
from edgecnn.core.files import atomic_path, atomic_write_bytes

DEFAULT_OPSET = 17
INT8_ROUTES = ("ort_qdq", "from_tflite")


def export_onnx(model, out_path, *, opset: int = DEFAULT_OPSET, batch: Optional[int] = None) -> Path:
    """fp32 ONNX of a tf_keras or Keras 3 model; ``batch=None`` keeps the batch dimension dynamic."""
    import tensorflow as tf
    import tf2onnx

    from edgecnn.models.keras3 import is_keras3

    shape = (batch,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    sig = (tf.TensorSpec(shape, tf.float32, name="input"),)
    try:
        if is_keras3(model):  # from_keras reads tf_keras internals (a Keras 3 Sequential: KeyError 'keras_tensor_N')
            fn = tf.function(lambda x: model(x, training=False))
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=sig, opset=opset)
        else:
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=opset)
    except Exception as e:  # tf2onnx raises ValueError/RuntimeError/KeyError naming the op
        raise ExportError(f"ONNX conversion of '{model.name}' failed: {_one_line(e)}") from None
    return _write_checked(proto, out_path, f"'{model.name}'", "TensorFlow op(s)", "that ONNX has no equivalent for")


def _write_checked(proto, out_path, what: str, kind: str, why: str) -> Path:
    """Refuse a graph that still holds ops ONNX cannot run; else write it atomically."""
    unsupported = _unsupported_ops(proto)
    if unsupported:
        raise ExportError(f"ONNX conversion of {what} left {kind} {', '.join(unsupported)} {why}.")
    return atomic_write_bytes(out_path, proto.SerializeToString())


def _unsupported_ops(proto):
    std = {"", "ai.onnx", "com.microsoft", "ai.onnx.ml"}
    return sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node if n.domain not in std})


def _one_line(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over preprocessed images, one at a time."""

    def __init__(self, name: str, images: np.ndarray):
        self.name = name
        self.images = np.asarray(images, np.float32)
        self.i = 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        x = self.images[self.i:self.i + 1]
        self.i += 1
        return {self.name: x}

    def rewind(self):
        self.i = 0


def quantize_onnx(fp32_path, out_path, calibration: np.ndarray, *, per_channel: bool = True,
                  activation_type: str = "uint8") -> Path:
    """int8 QDQ ONNX from an fp32 ONNX with ONNX Runtime's static quantization."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None or len(calibration) == 0:
        raise ExportError("int8 ONNX needs calibration images (preprocessed training images).")
    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    act = QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is an optimisation; quantize the original when it fails
            pre = Path(fp32_path)
        with atomic_path(out_path) as dst:
            try:
                quantize_static(str(pre), str(dst), _Reader(name, calibration), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=act, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            except Exception as e:
                raise ExportError(f"ONNX int8 quantization of {Path(fp32_path).name} failed: {_one_line(e)}") from None
    return out_path


def onnx_from_tflite(tflite_path, out_path, *, opset: int = DEFAULT_OPSET) -> Path:
    """QDQ ONNX of an (int8) TFLite model through tf2onnx.convert.from_tflite."""
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
    except Exception as e:
        raise ExportError(f"ONNX conversion of {Path(tflite_path).name} failed: {_one_line(e)}") from None
    return _write_checked(proto, out_path, Path(tflite_path).name, "op(s)", "that ONNX Runtime cannot run")


def camera_input(path, data_ops=("Transpose", "Reshape", "Identity")) -> Optional[dict]:
    """Give a QDQ ONNX model of pixels / 255 a uint8 input that takes a camera's bytes, in place.

    ONNX Runtime's static quantization leaves the graph input float, followed (through layout
    ops such as tf2onnx's NHWC->NCHW Transpose) by a QuantizeLinear and its DequantizeLinear.
    When that QuantizeLinear is uint8 with scale 1/255 and zero point 0 (the calibration reached
    0 and 1), it maps u = p / 255 back to the pixel p itself: the input becomes uint8, the layout
    ops move uint8 bytes, and a DequantizeLinear with the same scale and zero point goes before
    the QuantizeLinear. Q(DQ(p)) is p on every pixel value, so the function is the same; the pair
    is kept (rather than the QuantizeLinear dropped) because OpenVINO builds its int8 input from
    it: without it the first convolution ran in float there (measured, docs/metadata.md).
    -> ``{"scale", "zero_point"}`` of the new input, or None (left as it was) when the graph has
    another shape or quantization."""
    import onnx
    from onnx import TensorProto, numpy_helper

    m = onnx.load(str(path), load_external_data=False)
    g = m.graph
    if len(g.input) != 1 or g.input[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        return None
    consumers = lambda t: [n for n in g.node if t in n.input]  # noqa: E731
    chain, t = [], g.input[0].name
    while True:
        nxt = consumers(t)
        if len(nxt) != 1 or (nxt[0].op_type not in data_ops and nxt[0].op_type != "QuantizeLinear"):
            return None
        if nxt[0].op_type == "QuantizeLinear":
            q = nxt[0]
            break
        if list(nxt[0].input).index(t) != 0:
            return None
        chain.append(nxt[0])
        t = nxt[0].output[0]
    inits = {i.name: i for i in g.initializer}
    if len(q.input) < 3 or q.input[1] not in inits or q.input[2] not in inits:
        return None
    scale, zp = numpy_helper.to_array(inits[q.input[1]]), numpy_helper.to_array(inits[q.input[2]])
    if scale.size != 1 or zp.size != 1 or zp.dtype != np.uint8 or int(zp.ravel()[0]) != 0 \
            or abs(float(scale.ravel()[0]) - float(np.float32(1.0 / 255.0))) > 1e-9:
        return None
    pixels = t + "_pixels"
    dq = onnx.helper.make_node("DequantizeLinear", [t, q.input[1], q.input[2]], [pixels], name=pixels + "_dequantize")
    q.input[0] = pixels
    g.node.insert(list(g.node).index(q), dq)
    g.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    for name in {t} | {n.output[0] for n in chain}:  # stale float shape records of the moved tensors
        for vi in [v for v in g.value_info if v.name == name]:
            g.value_info.remove(vi)
    onnx.checker.check_model(m)
    atomic_write_bytes(path, m.SerializeToString())
    return {"scale": float(np.float32(1.0 / 255.0)), "zero_point": 0}


def onnx_opset(path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)


os.environ.setdefault("TF2ONNX_SKIP_VERSION_CHECK", "1")
