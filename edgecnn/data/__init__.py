"""Datasets, the bundled real CIFAR-10 sample, and the one preprocessing spec.

Importing this package must not import TensorFlow: the device side uses ``preprocess``.
``load_dataset`` and ``Dataset`` (edgecnn.data.datasets) are numpy-only and loaded on first use.
"""


def __getattr__(name):
    if name in ("load_dataset", "Dataset"):
        from edgecnn.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'edgecnn.data' has no attribute {name!r}")
