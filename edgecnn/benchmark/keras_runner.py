"""The float reference: a ``model.keras`` as a ``tf.function``, behind the Runner interface.

The only part of edgecnn.benchmark that imports TensorFlow, and only when constructed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.errors import ModelFileError, RuntimeNotAvailableError
from edgecnn.runtime import Runner, TensorInfo


class KerasRunner(Runner):
    format = "keras"
    backend = "keras"

    def __init__(self, path, threads: int = 1):
        super().__init__(path, threads)
        import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
        try:
            import tensorflow as tf
            import tf_keras
        except ImportError as e:
            raise RuntimeNotAvailableError(f"Runtime 'keras' needs TensorFlow and tf_keras ({e}): "
                                           f"pip install 'edgecnn[train]'") from None
        self._tf = tf
        if threads:
            try:  # only possible before TensorFlow's context starts (always so in a fresh worker)
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass
        try:
            from edgecnn.registry import list_models
            list_models()  # registers the custom layers of every family
        except Exception:
            pass
        if not Path(path).is_file():
            raise ModelFileError(f"Model file not found: {path}")
        try:
            self._model = tf_keras.models.load_model(str(path), compile=False)
        except Exception as e:
            raise ModelFileError(f"{path}: tf_keras cannot load it ({str(e).splitlines()[0][:200]})") from None
        shape = tuple(int(d) if d is not None else 1 for d in self._model.input_shape)
        oshape = tuple(int(d) if d is not None else 1 for d in self._model.output_shape)
        self.inputs = [TensorInfo("input", shape, "float32")]
        self.outputs = [TensorInfo("output", oshape, "float32")]
        self._build(shape)
        self._x = None
        self._y = None

    def _build(self, shape):
        tf = self._tf
        self._fn = tf.function(lambda x: self._model(x, training=False),
                               input_signature=[tf.TensorSpec(shape, tf.float32)])

    def resize(self, batch_size: int) -> None:
        if self.input.shape[0] != batch_size:
            shape = (batch_size,) + tuple(self.input.shape[1:])
            self.inputs[0].shape = shape
            self.outputs[0].shape = (batch_size,) + tuple(self.output.shape[1:])
            self._build(shape)

    def set_input(self, x_native):
        self._x = self._tf.constant(np.asarray(x_native, np.float32))

    def invoke(self):
        # .numpy() makes the timing include the wait for the result, as the other runtimes do.
        self._y = self._fn(self._x).numpy()

    def get_output(self):
        return self._y
