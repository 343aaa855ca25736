"""Keras -> TFLite through the real ``tf.lite.TFLiteConverter``: fp32, fp16, dynamic-range, int8.

int8 is full-integer quantization: per-channel int8 weights, int8 activations calibrated on
real training images (never the test split), float32 or int8 input/output (``int8_io``). The
model is converted from a concrete function with a fixed batch of 1, the shape a device runs;
the runtime facade resizes the batch for verification.

A conversion failure raises ``ExportError`` with one line naming the op (and the layer, when
the converter's location says it) that could not be converted.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np

from edgecnn.core import progress
from edgecnn.errors import ExportError
from edgecnn.core.files import atomic_write_bytes
from edgecnn.core.quiet import native_silenced

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def _representative(calibration: np.ndarray):
    def gen():
        # Runs inside the converter (native output silenced): the bar draws on the user's stderr.
        with progress.bar(length=len(calibration), label="calibrating int8") as bar:
            for i in range(len(calibration)):
                yield [calibration[i:i + 1].astype(np.float32)]
                bar.update(1)
    return gen


def _converter(model):
    import tensorflow as tf

    shape = [1] + [int(d) for d in model.inputs[0].shape[1:]]
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="input"))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    # By default the converter round-trips the concrete function through a SavedModel; that costs
    # ~10x the conversion itself (mobilenetv2_e: 25.5 s vs 1.5 s fp32, 28.8 s vs 2.7 s int8 CPU)
    # and gives the same ops. For a Keras 3 model that round trip is also wrong: it keeps
    # READ_VARIABLE ops (NaN outputs in fp32; int8 fails to run).
    conv.experimental_lower_to_saved_model = False
    return conv


def convert_tflite(model, precision: str, *, calibration: Optional[np.ndarray] = None, int8_io: bool = False,
                   uint8_input: bool = False) -> bytes:
    """The TFLite flatbuffer of a tf_keras or Keras 3 ``model`` at ``precision`` (fp32|fp16|dynamic|int8).

    ``calibration``: float32 preprocessed training images (N, H, W, C), required for int8.
    ``int8_io``: int8 input and output tensors (else float32 in/out around the int8 body).
    ``uint8_input``: a uint8 input tensor (a camera's bytes, for a model of pixels / 255 whose
    calibration reaches 0 and 1: scale 1/255, zero point 0) and a float32 output.
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ExportError(f"Unknown TFLite precision '{precision}'; choose from {', '.join(PRECISIONS)}.")
    if (int8_io or uint8_input) and precision != "int8":
        raise ExportError(f"integer input/output needs precision int8, not '{precision}'.")
    conv = _converter(model)
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ExportError("int8 export needs calibration images (preprocessed training images).")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = _representative(np.asarray(calibration, np.float32))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        elif uint8_input:
            conv.inference_input_type = tf.uint8
    try:
        with native_silenced():  # the converter prints its settings and MLIR notes from C++
            return conv.convert()
    except Exception as e:  # ConverterError, ValueError, RuntimeError from MLIR passes
        msg = describe_converter_error(e)
        ops = [o.split(".", 1)[1] for o in _OP_RE.findall(str(e)) if o.startswith("tf.")]
        if ops and "at layer" not in msg:
            layers = layers_with_op(model, ops[0])
            if layers:
                msg += f" (in layer{'s' if len(layers) > 1 else ''} {', '.join(repr(l) for l in layers)})"
        raise ExportError(f"TFLite {precision} conversion of '{model.name}' failed: {msg}") from None


def export_tflite(model, out_path, precision: str, *, calibration: Optional[np.ndarray] = None,
                  int8_io: bool = False, uint8_input: bool = False, compact: bool = True,
                  info: Optional[dict] = None) -> Path:
    """Convert and write atomically to ``out_path``; returns the path.

    ``compact``: share identical quantization zero-point vectors in the flatbuffer (lossless,
    checked bit-identical on two calibration images: edgecnn.export.compact); ``info`` (a dict)
    receives that step's report under "flatbuffer"."""
    data = convert_tflite(model, precision, calibration=calibration, int8_io=int8_io, uint8_input=uint8_input)
    if compact and precision != "fp32":
        from edgecnn.export.compact import compact_tflite

        checks = None if calibration is None else [np.asarray(calibration[i:i + 1], np.float32)
                                                   for i in range(min(2, len(calibration)))]
        data, report = compact_tflite(data, checks)
        if info is not None:
            info["flatbuffer"] = report
    return atomic_write_bytes(out_path, data)


_OP_RE = re.compile(r"'(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)' op")
_LOC_RE = re.compile(r'loc\((?:callsite\()?(?:fused\[)?"([^"]+)"')


def describe_converter_error(e: BaseException) -> str:
    """One line from a converter error: the op(s) at fault and the layer from its location."""
    text = str(e)
    ops = _unique(_OP_RE.findall(text))
    locs = [l for l in _unique(_LOC_RE.findall(text)) if "/" in l or "@" in l]
    if ops:
        msg = f"op {', '.join(ops)} is not supported by the TFLite builtin op set"
        if locs:
            layer = _layer_from_location(locs[0])
            msg += f" (at layer '{layer}')" if layer else f" (at {locs[0]})"
        return msg
    lines = [l.strip() for l in text.splitlines() if l.strip() and "error" in l.lower()]
    first = lines[0] if lines else (text.strip().splitlines() or [type(e).__name__])[0]
    return first[:300]


def layers_with_op(model, op_type: str) -> List[str]:
    """Names of the layers whose traced graph holds a TensorFlow op of type ``op_type``."""
    import tensorflow as tf

    found = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers"):  # a model called as a layer (the camera input's wrapper): look inside
            found += layers_with_op(layer, op_type)
            continue
        try:
            spec = tf.nest.map_structure(lambda t: tf.TensorSpec([1] + list(t.shape[1:]), t.dtype), layer.input)
            fn = tf.function(lambda x, layer=layer: layer(x, training=False))
            graph = fn.get_concrete_function(spec).graph
        except Exception:  # noqa: BLE001 - best effort: a layer we cannot trace alone is skipped
            continue
        if any(op.type == op_type for op in graph.get_operations()):
            found.append(layer.name)
    return found


def _unique(items: Iterable[str]) -> List[str]:
    seen = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen


def _layer_from_location(loc: str) -> str:
    # Locations look like "model/layer_name/Op@__inference_..." or "layer_name/Op".
    path = loc.split("@")[0].split("/")
    parts = [p for p in path if p and not p.startswith("__inference")]
    if len(parts) >= 2:
        return parts[-2]
    return parts[0] if parts else ""


def tflite_ops(path_or_bytes) -> List[str]:
    """The builtin op names of a TFLite model, in execution order (``CONV_2D``, ``PRELU``, ...):
    what an export is checked by (no PRELU left after the rewrite, no QUANTIZE at an int8 input).
    The interpreter is edgecnn.measure.runtime's, like every other."""
    from edgecnn.measure.runtime import tflite_ops as ops

    return ops(path_or_bytes)
