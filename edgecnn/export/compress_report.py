"""What compression bought, measured: zipped sizes, top-1 of the Keras model and of its int8
TFLite, sparsity and distinct values per layer (the numbers in ``compress_model``'s report).

Kept apart from ``edgecnn.export.compress`` (the TFMOT wrapping and fine-tuning) so that the
measurements use the same code as everything else: top-1 is ``edgecnn.train.evaluate``'s metric and
the TFLite model runs in ``edgecnn.measure.runtime``, not in an interpreter loop of its own.

Sizes are those TFMOT's guides report: the bytes of a ZIP_DEFLATED archive of the model's
weights file (``model.save_weights(*.h5)``), or of a file given by path (e.g. a .tflite).
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy as np

from edgecnn.errors import ExportError
from edgecnn.train.evaluate import top_k_accuracy


def zipped_size(model_or_path) -> int:
    """Bytes of a ZIP_DEFLATED archive of a file, or of a tf_keras model's weights (.h5).

    This is how TFMOT's guides measure what pruning and clustering buy: the zeros and the few
    shared values compress, the raw file does not shrink.
    """
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(model_or_path, (str, os.PathLike)):
            src = Path(model_or_path)
            if not src.is_file():
                raise ExportError(f"cannot measure the zipped size of '{src}': no such file.")
        else:
            src = Path(tmp) / "weights.h5"
            model_or_path.save_weights(str(src))
        archive = Path(tmp) / "model.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.write(src, arcname=src.name)
        return archive.stat().st_size


def accuracy(model, data, batch_size: int = 256) -> float:
    """Top-1 accuracy of a tf_keras model with softmax (or logit) outputs on (x_float, y_int)."""
    x, y = data
    return top_k_accuracy(y, model.predict(x, batch_size=batch_size, verbose=0), 1)


def weights_of(layer, attrs) -> List[np.ndarray]:
    """The named weight attributes of a layer that it has, as arrays."""
    return [getattr(layer, a).numpy() for a in attrs if getattr(layer, a, None) is not None]


def kernel_sparsity(model, weights: Dict[str, List[str]]) -> Dict[str, float]:
    """Fraction of exact zeros per layer, over the named weights ({layer: [attribute, ...]})."""
    out = {}
    for name, attrs in weights.items():
        ws = weights_of(model.get_layer(name), attrs)
        if ws:
            out[name] = float(sum(int(np.sum(w == 0)) for w in ws)) / sum(w.size for w in ws)
    return out


def unique_weights(model, weights: Dict[str, List[str]]) -> Dict[str, int]:
    """Most distinct values in any one of the named weights, per layer ({layer: [attribute, ...]})."""
    out = {}
    for name, attrs in weights.items():
        ws = weights_of(model.get_layer(name), attrs)
        if ws:
            out[name] = int(max(np.unique(w).size for w in ws))
    return out


def int8_tflite_bytes(model, calibration_x, *, samples: int = 200) -> bytes:
    """The int8 TFLite of a QAT or float model (float input/output kept), through the export
    stage's own converter call, so a measurement here is of exactly what ``edgecnn export`` writes."""
    from edgecnn.export.tflite import convert_tflite

    return convert_tflite(model, "int8", calibration=np.asarray(calibration_x, np.float32)[:samples])


def int8_measure(model, calibration_x, val_data) -> dict:
    """Bytes, zipped bytes and top-1 (in LiteRT) of the int8 TFLite of ``model``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_int8.tflite"
        data = int8_tflite_bytes(model, calibration_x)
        path.write_bytes(data)
        return {"bytes": len(data), "zipped_bytes": zipped_size(path), "accuracy": tflite_accuracy(data, val_data)}


def tflite_accuracy(tflite_bytes: bytes, data) -> float:
    """Top-1 of a TFLite model (float or int8 input) in LiteRT with XNNPACK, one image at a time."""
    from edgecnn.measure import runtime

    x, y = data
    runner = runtime.load(tflite_bytes, backend="litert", threads=1)
    return top_k_accuracy(y, runner.run(np.asarray(x, np.float32), batch_size=1), 1)
