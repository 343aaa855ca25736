"""edgecnn: compact image classifiers from a Keras definition to a measured int8 model on a device.

TFMOT only works with Keras 2, so every model is built with tf_keras. TensorFlow reads
TF_USE_LEGACY_KERAS when it is first imported, so it is set here, before anything in edgecnn
can import TensorFlow. Nothing in this module imports TensorFlow: the light device install
(numpy, click, pillow, ai-edge-litert) imports this package too.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# edgecnn.core.quiet.configure (the CLI) sets the level the user asked for, unless given here.
TF_LOG_LEVEL_GIVEN = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
