"""Datasets, the bundled real CIFAR-10 sample, and the one preprocessing spec.

Importing this package must not import TensorFlow: the device side uses ``preprocess``.
"""
