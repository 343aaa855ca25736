"""Rebuild edgecnn/data/sample/cifar10_sample.npz from ../shared/data/cifar10-subset.

The bundled sample is real CIFAR-10: the first 200 training images of each class, taken in
order from data_batch_1..5, and the first 50 test images of each class from test_batch. Train
and test stay apart. Stored as uint8 NHWC in a compressed npz that loads with
allow_pickle=False, so reading it can never execute code.
"""
import pickle
import sys
from pathlib import Path

import numpy as np

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-subset/cifar-10-batches-py")
DST = Path(__file__).resolve().parents[1] / "edgecnn" / "data" / "sample" / "cifar10_sample.npz"
PER_CLASS = {"train": 200, "test": 50}


def load(name):  # a trusted local file written by the CIFAR authors; the package loader is restricted
    with open(SRC / name, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(d[b"labels"], np.int64)


def take(x, y, n):
    idx = np.concatenate([np.flatnonzero(y == c)[:n] for c in range(10)])
    idx.sort()
    return x[idx], y[idx]


xs, ys = zip(*(load(f"data_batch_{i}") for i in range(1, 6)))
x_train, y_train = take(np.concatenate(xs), np.concatenate(ys), PER_CLASS["train"])
x_test, y_test = take(*load("test_batch"), PER_CLASS["test"])
with open(SRC / "batches.meta", "rb") as f:
    names = [n.decode() for n in pickle.load(f, encoding="bytes")[b"label_names"]]
np.savez_compressed(DST, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, label_names=np.array(names))
print(f"{DST}: train {x_train.shape}, test {x_test.shape}, {DST.stat().st_size / 1e6:.1f} MB")
