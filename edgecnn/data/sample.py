"""The small real CIFAR-10 sample shipped inside the package: the offline default dataset.

2,000 training images (200 per class) and 500 test images (50 per class), real CIFAR-10 taken
from the standard batches by ``tools/make_sample.py``. Loads with ``allow_pickle=False``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

SAMPLE_PATH = Path(__file__).with_name("sample") / "cifar10_sample.npz"


def load_sample() -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray], List[str]]:
    """((x_train, y_train), (x_test, y_test), label_names); x uint8 NHWC 32x32x3, y int64."""
    with np.load(SAMPLE_PATH, allow_pickle=False) as z:
        return ((z["x_train"], z["y_train"]), (z["x_test"], z["y_test"]), [str(s) for s in z["label_names"]])
