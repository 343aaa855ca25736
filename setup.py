"""edgecnn packaging. ``pip install .`` is the light device install (no TensorFlow)."""
from setuptools import find_packages, setup

LIGHT = [
    "numpy>=1.23",
    "click>=8.1",
    "pillow>=9.0",
    # LiteRT ships wheels for x86-64 and aarch64 Linux/macOS; no armv7l (32-bit Pi OS) wheels.
    "ai-edge-litert>=1.2; platform_machine != 'armv7l'",
]
TRAIN = [
    "tensorflow==2.21.*",
    "tf_keras==2.21.*",
    "tensorflow-model-optimization==0.8.*",
    "tf2onnx>=1.16",
    "onnx>=1.16",
    "onnxruntime>=1.18",
    "matplotlib>=3.7",
    "tensorboard>=2.16",  # tf.summary (training logs); TF 2.21 no longer pulls it in
]
DEV = ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6.100"]
# OpenVINO (Intel CPUs, edge boxes): `--runtime openvino` reads the .onnx and .tflite artifacts. It
# installs beside TensorFlow 2.21 without changing a package (its one pin is numpy < 2.6).
OPENVINO = ["openvino>=2025.1,<2027"]

setup(
    name="edgecnn",
    version="0.1.0",
    description="Compact image classifiers from Keras to a verified, benchmarked int8 model on a phone or a Pi",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["edgecnn", "edgecnn.*"]),
    package_data={"edgecnn.models": ["zoo_table.json"],
                  "edgecnn.data": ["sample/*.npz", "sample/*.json", "sample/images/*.png"]},
    install_requires=LIGHT,
    extras_require={"train": TRAIN, "dev": DEV, "onnx": ["onnxruntime>=1.18"], "openvino": OPENVINO},
    entry_points={"console_scripts": ["edgecnn=edgecnn.cli:main"]},
)
