"""The emulator's calibration models (``edgecnn bench emulator``): MobileNet v1 and v2 1.0 at
224x224 from keras.applications with random weights, fp32 and full-integer int8, as the published
Raspberry Pi figures describe them (edgecnn.emulate.calibration fits the cost model on them)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

from edgecnn.core.files import atomic_write_bytes
from edgecnn.emulate.calibration import CAL_MODELS, PRECISIONS
from edgecnn.export.tflite import convert_tflite


def calibration_models(cache_dir: Path, say: Callable[[str], None]) -> Dict[str, Path]:
    """The calibration TFLite files, cached by name in ``cache_dir`` (random weights: the
    published figures use randomized weights too; latency does not depend on the values)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {f"{m}_{p}": cache_dir / f"{m}_{p}.tflite" for m in CAL_MODELS for p in PRECISIONS}
    if all(p.is_file() for p in paths.values()):
        return paths
    import numpy as np
    import tf_keras as keras

    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1.0, 1.0, size=(16, 224, 224, 3)).astype(np.float32)
    for name, ctor in CAL_MODELS.items():
        keras.utils.set_random_seed(0)
        net = getattr(keras.applications, ctor)(weights=None, input_shape=(224, 224, 3))
        for p in PRECISIONS:
            say(f"building {name} {p} (224x224, random weights)")
            data = convert_tflite(net, p, calibration=calibration if p == "int8" else None, int8_io=p == "int8")
            atomic_write_bytes(paths[f"{name}_{p}"], data)
    return paths
