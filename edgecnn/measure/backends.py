"""The backend names every command shares (``edgecnn classify --runtime``, ``edgecnn benchmark
--runtime``): which interpreter package runs a model and, for TFLite, which kernels. A table and
its parsers only, without numpy or any runtime, so that the CLI can list the names in its help
text without importing them; ``edgecnn.measure.runtime`` loads models under these names.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from edgecnn.errors import RuntimeNotAvailableError, did_you_mean

AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Backend:
    """One backend name: the interpreter package it loads and, for TFLite, the kernel set."""

    name: str
    package: str  # litert | tflite-runtime | tf-lite | onnxruntime | openvino | keras (Runner.backend)
    format: str  # the artifact format it runs: tflite | onnx | keras
    kernels: Optional[str]  # TFLite only: xnnpack | builtin | reference
    title: str
    also: Tuple[str, ...] = ()  # other formats it runs (OpenVINO reads .onnx and .tflite)
    precision: Optional[str] = None  # OpenVINO's inference precision hint (None: the plugin's own default)

    @property
    def formats(self) -> Tuple[str, ...]:
        return (self.format,) + self.also

    def runs(self, fmt: str) -> bool:
        return fmt in self.formats

    @property
    def xnnpack(self) -> Optional[bool]:
        """Whether the XNNPACK delegate runs the model (None where the notion does not apply)."""
        return self.kernels == "xnnpack" if self.package in ("litert", "tflite-runtime", "tf-lite") else None


BACKENDS: Dict[str, Backend] = {b.name: b for b in (
    Backend("litert", "litert", "tflite", "xnnpack", "LiteRT, XNNPACK delegate"),
    Backend("litert-noxnn", "litert", "tflite", "builtin", "LiteRT, builtin kernels (no XNNPACK)"),
    Backend("litert-ref", "litert", "tflite", "reference", "LiteRT, portable reference kernels"),
    Backend("tflite-runtime", "tflite-runtime", "tflite", "xnnpack", "tflite-runtime, XNNPACK delegate"),
    Backend("tf-lite", "tf-lite", "tflite", "xnnpack", "tf.lite.Interpreter (TensorFlow), XNNPACK delegate"),
    Backend("onnxruntime", "onnxruntime", "onnx", None, "ONNX Runtime, CPU execution provider"),
    # OpenVINO picks bf16 by default on CPUs with native bf16 (AVX512_BF16, AMX): "openvino" is what
    # a user gets, its hint recorded per row; "openvino-f32" pins f32 (what verification runs).
    Backend("openvino", "openvino", "onnx", None, "OpenVINO, CPU plugin, its default precision hint", ("tflite",)),
    Backend("openvino-f32", "openvino", "onnx", None, "OpenVINO, CPU plugin, f32 precision hint", ("tflite",), "f32"),
    Backend("keras", "keras", "keras", None, "tf_keras model as a tf.function (float reference)"),
)}
ALIASES = {"tflite_runtime": "tflite-runtime", "tf_lite": "tf-lite", "tf.lite": "tf-lite", "ort": "onnxruntime",
           "onnx": "onnxruntime", "litert-xnnpack": "litert", "litert_noxnn": "litert-noxnn",
           "litert_ref": "litert-ref", "litert-reference": "litert-ref", "tf": "keras", "ov": "openvino",
           "openvino_f32": "openvino-f32"}
# The default backend per artifact format, and auto's order of TFLite packages.
DEFAULT_BACKEND = {"tflite": "litert", "onnx": "onnxruntime", "keras": "keras"}
_TFLITE_PACKAGES = ("litert", "tflite-runtime", "tf-lite")
_FORMAT_LABEL = {"tflite": "TFLite", "onnx": "ONNX", "keras": "a Keras model"}


def backend_names(formats: Sequence[str] = ("tflite", "onnx", "keras"), auto: bool = False) -> List[str]:
    """The canonical names that run any of ``formats`` (and 'auto' first where it is allowed)."""
    return ([AUTO] if auto else []) + [n for n, b in BACKENDS.items() if any(f in formats for f in b.formats)]


def backend_help(formats: Sequence[str] = ("tflite", "onnx", "keras"), auto: bool = False) -> str:
    """The names for an option's help text, so that every command lists the same ones."""
    return ", ".join(backend_names(formats, auto))


def resolve_backend(name, formats: Sequence[str] = ("tflite", "onnx", "keras"), auto: bool = False) -> str:
    """A backend name or alias -> its canonical name; an unknown name fails with a did-you-mean."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    allowed = backend_names(formats, auto)
    if key not in allowed:
        raise RuntimeNotAvailableError(
            f"Unknown runtime '{name}'.{did_you_mean(str(name), allowed)} Choose from: {', '.join(allowed)}.")
    return key


def split_list(value) -> List[str]:
    """'a,b' and/or a list of such strings (a repeated option) -> ['a', 'b'], blanks dropped."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def parse_backends(value, formats: Sequence[str] = ("tflite", "onnx", "keras")) -> List[str]:
    """'litert,onnxruntime' or a list of such strings -> canonical names, each once, in order."""
    out: List[str] = []
    for name in split_list(value):
        key = resolve_backend(name, formats)
        if key not in out:
            out.append(key)
    return out
