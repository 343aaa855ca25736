"""One interpreter facade over ai-edge-litert, tflite-runtime, tf.lite and onnxruntime.

``load(path)`` returns a ``Runner`` whatever the format: ``run(x)`` takes a float32 batch
(the output of ``edgecnn.data.preprocess.preprocess``), quantizes it where the model's input is
integer, and returns float32 outputs (dequantized where the output is integer). ``invoke()``
re-runs on the tensors already set, for timing loops. Heavy runtimes are imported on first use;
TensorFlow only as the last TFLite fallback.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from edgecnn.data.preprocess import dequantize, quantize
from edgecnn.errors import ModelFileError, RuntimeNotAvailableError, did_you_mean

TFLITE_BACKENDS = ("litert", "tflite_runtime", "tf_lite")
BACKENDS = TFLITE_BACKENDS + ("onnxruntime",)
_TFLITE_MAGIC = b"TFL3"


@dataclasses.dataclass
class TensorInfo:
    name: str
    shape: Tuple[int, ...]
    dtype: str  # numpy dtype name
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16") and self.scale > 0

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": float(self.scale), "zero_point": int(self.zero_point)}


def model_format(path) -> str:
    """'tflite' or 'onnx', from the file's content (not trusting the suffix alone)."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"Model file not found: {p}")
    if not p.is_file():
        raise ModelFileError(f"Not a model file: {p} is a directory")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ModelFileError(f"{p} is empty or truncated ({p.stat().st_size} bytes): not a model")
    if head[4:8] == _TFLITE_MAGIC:
        return "tflite"
    if p.suffix == ".onnx" or head[:1] == b"\x08":  # ONNX protobuf starts with ir_version (field 1)
        return "onnx"
    raise ModelFileError(f"{p} is neither a TFLite flatbuffer nor an ONNX model")


def available_backends() -> List[str]:
    found = []
    for name in BACKENDS:
        try:
            _import_backend(name)
            found.append(name)
        except RuntimeNotAvailableError:
            pass
    return found


def _import_backend(name: str):
    try:
        if name == "litert":
            from ai_edge_litert import interpreter as mod
        elif name == "tflite_runtime":
            from tflite_runtime import interpreter as mod
        elif name == "tf_lite":
            import tensorflow as tf
            mod = tf.lite
        elif name == "onnxruntime":
            import onnxruntime as mod
        else:
            raise RuntimeNotAvailableError(
                f"Unknown runtime '{name}'.{did_you_mean(name, BACKENDS)} Choose from: {', '.join(BACKENDS)}.")
    except ImportError as e:
        raise RuntimeNotAvailableError(f"Runtime '{name}' is not installed here ({e}).") from None
    return mod


def runtime_version(backend: str) -> str:
    mod = _import_backend(backend)
    if backend == "litert":
        from importlib.metadata import version
        return version("ai-edge-litert")
    if backend == "tflite_runtime":
        from importlib.metadata import version
        return version("tflite-runtime")
    if backend == "tf_lite":
        import tensorflow as tf
        return tf.__version__
    return mod.__version__


class Runner:
    """A loaded model on one runtime. Subclasses fill ``inputs``/``outputs`` and the set/get hooks."""

    backend: str
    format: str
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]

    def __init__(self, path, threads: int):
        self.path = Path(path)
        self.threads = threads

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    @property
    def output(self) -> TensorInfo:
        return self.outputs[0]

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """float32 model input -> the tensor the model takes (quantized for integer inputs)."""
        info = self.input
        if info.quantized:
            return quantize(x, info.scale, info.zero_point, np.dtype(info.dtype))
        return np.asarray(x, dtype=np.dtype(info.dtype))

    def set_input(self, x_native: np.ndarray) -> None:
        raise NotImplementedError

    def invoke(self) -> None:
        raise NotImplementedError

    def get_output(self) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray, batch_size: Optional[int] = None) -> np.ndarray:
        """Float32 outputs for a float32 batch, in chunks of the model's batch size."""
        x = np.asarray(x, np.float32)
        bs = batch_size or self.input.shape[0] or 1
        self.resize(bs)
        outs = []
        for i in range(0, len(x), bs):
            chunk = x[i:i + bs]
            n = len(chunk)
            if n < bs:  # pad the last chunk: a fixed-shape model takes only full batches
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], bs - n, axis=0)])
            self.set_input(self.prepare(chunk))
            self.invoke()
            out = self.get_output()[:n]
            info = self.output
            outs.append(dequantize(out, info.scale, info.zero_point) if info.quantized else out.astype(np.float32))
        return np.concatenate(outs) if outs else np.zeros((0,) + tuple(self.output.shape[1:]), np.float32)

    def resize(self, batch_size: int) -> None:
        """Set the batch dimension (TFLite re-allocates; ONNX with a fixed batch refuses others)."""


class TFLiteRunner(Runner):
    format = "tflite"

    def __init__(self, path, threads: int = 1, backend: str = "litert", xnnpack: bool = True,
                 reference: bool = False):
        super().__init__(path, threads)
        self.backend = backend
        self.xnnpack = xnnpack and not reference
        self.reference = reference
        mod = _import_backend(backend)
        kwargs = {"model_path": str(path), "num_threads": threads}
        if reference:
            # The portable C++ reference kernels: slow, but the same integer arithmetic on every ISA
            # (tools/arm_check.sh relies on it: arm64 and x86-64 outputs are bit-identical).
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_REF
        elif not xnnpack:
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interp = mod.Interpreter(**kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"{path}: the TFLite runtime cannot load it ({str(e).splitlines()[0]})") from None
        self._refresh()

    def _refresh(self):
        def info(d):
            q = d.get("quantization", (0.0, 0))
            return TensorInfo(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name,
                              float(q[0]), int(q[1]))
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = [info(d) for d in self._in]
        self.outputs = [info(d) for d in self._out]

    def resize(self, batch_size: int) -> None:
        if self.input.shape[0] != batch_size:
            shape = (batch_size,) + tuple(self.input.shape[1:])
            self._interp.resize_tensor_input(self._in[0]["index"], shape)
            self._interp.allocate_tensors()
            self._refresh()

    def set_input(self, x_native):
        self._interp.set_tensor(self._in[0]["index"], x_native)

    def invoke(self):
        self._interp.invoke()

    def get_output(self):
        return self._interp.get_tensor(self._out[0]["index"])

    @property
    def interpreter(self):
        return self._interp


_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32"}


class ONNXRunner(Runner):
    format = "onnx"
    backend = "onnxruntime"

    def __init__(self, path, threads: int = 1):
        super().__init__(path, threads)
        ort = _import_backend("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
        i, o = self._sess.get_inputs()[0], self._sess.get_outputs()[0]
        for dim in i.shape[1:]:
            if not isinstance(dim, int):
                raise ModelFileError(
                    f"{path}: input '{i.name}' has a dynamic dimension {list(i.shape)}; edgecnn needs a fixed "
                    f"H, W, C (only the batch may be dynamic). Re-export with a fixed input shape.")
        self._dynamic_batch = not isinstance(i.shape[0], int)
        shape = tuple(d if isinstance(d, int) else 1 for d in i.shape)
        self.inputs = [TensorInfo(i.name, shape, _ORT_TYPES.get(i.type, "float32"))]
        oshape = tuple(d if isinstance(d, int) else 1 for d in o.shape)
        self.outputs = [TensorInfo(o.name, oshape, _ORT_TYPES.get(o.type, "float32"))]
        self._feed = None
        self._result = None

    def resize(self, batch_size: int) -> None:
        if batch_size != self.input.shape[0]:
            if not self._dynamic_batch:
                raise ModelFileError(f"{self.path}: fixed batch {self.input.shape[0]}, cannot run batch {batch_size}")
            self.inputs[0].shape = (batch_size,) + tuple(self.input.shape[1:])
            self.outputs[0].shape = (batch_size,) + tuple(self.output.shape[1:])

    def set_input(self, x_native):
        self._feed = {self.input.name: x_native}

    def invoke(self):
        self._result = self._sess.run(None, self._feed)

    def get_output(self):
        return self._result[0]


def load(path, *, backend: str = "auto", threads: int = 1, xnnpack: bool = True, reference: bool = False) -> Runner:
    """Load a .tflite or .onnx file on the named runtime, or the best one installed ('auto').

    TFLite only: ``xnnpack=False`` runs LiteRT's builtin (optimized, ISA-specific) kernels;
    ``reference=True`` its portable reference kernels.
    """
    if backend not in ("auto",) + BACKENDS:
        raise RuntimeNotAvailableError(
            f"Unknown runtime '{backend}'.{did_you_mean(backend, BACKENDS)} Choose from: auto, {', '.join(BACKENDS)}.")
    fmt = model_format(path)
    if fmt == "onnx":
        if backend not in ("auto", "onnxruntime"):
            raise RuntimeNotAvailableError(f"{path} is ONNX: runtime '{backend}' runs only .tflite files")
        return ONNXRunner(path, threads)
    if backend == "onnxruntime":
        raise RuntimeNotAvailableError(f"{path} is TFLite: onnxruntime runs only .onnx files")
    candidates = TFLITE_BACKENDS if backend == "auto" else (backend,)
    last = None
    for name in candidates:
        try:
            return TFLiteRunner(path, threads, name, xnnpack, reference)
        except RuntimeNotAvailableError as e:
            last = e
    raise last or RuntimeNotAvailableError("No TFLite runtime installed: pip install ai-edge-litert")
