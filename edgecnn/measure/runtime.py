"""The one place an interpreter or session is created: LiteRT, tflite-runtime, tf.lite, ONNX
Runtime, and tf_keras for the float reference, under one set of backend names.

``load(model)`` returns a ``Runner`` whatever the format: ``run(x)`` takes a float32 batch (the
output of ``edgecnn.data.preprocess.preprocess``), quantizes it where the model's input is
integer, and returns float32 outputs (dequantized where the output is integer). ``invoke()``
re-runs on the tensors already set, for timing loops. Every other module (export verification,
compaction checks, compression reports, classify, the benchmark) asks here, so that a runtime's
quirks (its op resolver flags, its private op-listing API, ONNX Runtime's profiler options) are
handled once.

Backend names (``BACKENDS``; both ``edgecnn classify --runtime`` and ``edgecnn benchmark
--runtime`` parse them with ``resolve_backend``). A name says which interpreter package runs the
model and, for TFLite, which kernels::

    auto            the best installed runtime for the file: litert, tflite-runtime, tf-lite; onnxruntime
    litert          LiteRT (ai-edge-litert), XNNPACK delegate
    litert-noxnn    LiteRT, builtin kernels (optimized per ISA, no delegate)
    litert-ref      LiteRT, portable reference kernels (the same integer arithmetic on every ISA)
    tflite-runtime  tflite-runtime (LiteRT's predecessor), XNNPACK delegate
    tf-lite         tf.lite.Interpreter from TensorFlow (deprecated upstream), XNNPACK delegate
    onnxruntime     ONNX Runtime, CPU execution provider
    openvino        OpenVINO's CPU plugin, .onnx and .tflite, its default precision hint (bf16 where
                    the CPU has it); openvino-f32 pins f32 (``pip install 'edgecnn[openvino]'``)
    keras           a model.keras in tf_keras as a tf.function (the float reference)

Older spellings (``tflite_runtime``, ``tf_lite``, ``ort``, ``litert_noxnn``, ...) are accepted as
aliases (``ALIASES``) so that existing scripts keep working; results record the canonical name.

Heavy runtimes are imported on first use, TensorFlow only for ``tf-lite`` (the last TFLite
fallback of ``auto``) and ``keras``: this module is imported by the light device install.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgecnn.data.preprocess import dequantize, quantize
from edgecnn.measure.backends import (ALIASES, AUTO, BACKENDS, DEFAULT_BACKEND, _FORMAT_LABEL, _TFLITE_PACKAGES,  # noqa: F401
                              Backend, backend_help, backend_names, parse_backends, resolve_backend)
from edgecnn.errors import ModelFileError, RuntimeNotAvailableError
from edgecnn.core.quiet import native_silenced

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


ModelSource = Union[str, os.PathLike, bytes, bytearray]


def model_format(path) -> str:
    """'tflite', 'onnx' or 'keras', from the file's content (not trusting the suffix alone)."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"Model file not found: {p}")
    if p.is_dir():
        raise ModelFileError(f"Not a model file: {p} is a directory")
    from edgecnn.contract.checks import regular_file

    regular_file(p, "model file")  # a FIFO or a device refused unopened
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ModelFileError(f"{p} is empty or truncated ({p.stat().st_size} bytes): not a model")
    if head[4:8] == _TFLITE_MAGIC:
        return "tflite"
    if p.suffix == ".keras" and head[:2] == b"PK":  # a .keras file is a zip archive
        return "keras"
    if p.suffix == ".onnx" or head[:1] == b"\x08":  # ONNX protobuf starts with ir_version (field 1)
        return "onnx"
    raise ModelFileError(f"{p} is neither a TFLite flatbuffer nor an ONNX model")


def available_backends() -> List[str]:
    """The interpreter packages installed here (TensorFlow's tf.lite counts; Keras is not probed)."""
    found = []
    for name in _TFLITE_PACKAGES + ("onnxruntime",):
        try:
            _import_backend(name)
            found.append(name)
        except RuntimeNotAvailableError:
            pass
    return found


def _import_backend(name: str):
    """The module behind a backend name (canonical or alias); RuntimeNotAvailableError if absent."""
    package = BACKENDS[resolve_backend(name)].package
    try:
        if package == "litert":
            from ai_edge_litert import interpreter as mod
        elif package == "tflite-runtime":
            from tflite_runtime import interpreter as mod
        elif package == "tf-lite":
            import tensorflow as tf
            mod = tf.lite
        elif package == "onnxruntime":
            import onnxruntime as mod
        elif package == "openvino":
            try:
                import openvino as mod
            except ImportError as e:
                raise RuntimeNotAvailableError(f"Runtime 'openvino' is not installed here ({e}): "
                                               f"pip install 'edgecnn[openvino]'") from None
        else:  # keras
            import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
            try:
                import tensorflow as tf  # noqa: F401
                import tf_keras as mod
            except ImportError as e:
                raise RuntimeNotAvailableError(f"Runtime 'keras' needs TensorFlow and tf_keras ({e}): "
                                               f"pip install 'edgecnn[train]'") from None
    except ImportError as e:
        raise RuntimeNotAvailableError(f"Runtime '{package}' is not installed here ({e}).") from None
    return mod


def runtime_version(backend: str) -> str:
    """The installed version of a backend's package (importing it, which the benchmark relies on:
    its 'rss_before' is the runtime imported, no model loaded)."""
    package = BACKENDS[resolve_backend(backend)].package
    mod = _import_backend(package)
    if package in ("litert", "tflite-runtime"):
        from edgecnn.core.files import dist_version
        return dist_version("ai-edge-litert" if package == "litert" else "tflite-runtime") or "unknown"
    if package in ("tf-lite", "keras"):
        import tensorflow as tf
        return tf.__version__ if package == "tf-lite" else f"tensorflow {tf.__version__}"
    return mod.__version__.split("-")[0]  # OpenVINO's carries its build: 2026.4.1-22982-...


class Runner:
    """A loaded model on one runtime. Subclasses fill ``inputs``/``outputs`` and the set/get hooks."""

    backend: str  # the package's canonical name: litert | tflite-runtime | tf-lite | onnxruntime | keras
    format: str
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]

    def __init__(self, path, threads: int):
        self.path = Path(path) if path is not None else None
        self.threads = threads

    @property
    def source(self) -> str:
        """The file for messages ('<in-memory model>' for bytes)."""
        return str(self.path) if self.path is not None else "<in-memory model>"

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

    def run(self, x: np.ndarray, batch_size: Optional[int] = None,
            on_batch: Optional[Callable[[int], None]] = None) -> np.ndarray:
        """Float32 outputs for a float32 batch, in chunks of the model's batch size.

        ``on_batch(n)`` hears each chunk of ``n`` images done (a progress bar's ``update``)."""
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
            if on_batch is not None:
                on_batch(n)
        return np.concatenate(outs) if outs else np.zeros((0,) + tuple(self.output.shape[1:]), np.float32)

    def resize(self, batch_size: int) -> None:
        """Set the batch dimension (TFLite re-allocates; ONNX with a fixed batch refuses others)."""

    def details(self) -> dict:
        """What the runtime chose that a result should record (OpenVINO: its precision hint)."""
        return {}


class TFLiteRunner(Runner):
    format = "tflite"

    def __init__(self, model: ModelSource, threads: int = 1, backend: str = "litert", kernels: str = "xnnpack",
                 preserve_all_tensors: bool = False):
        in_memory = isinstance(model, (bytes, bytearray))
        super().__init__(None if in_memory else model, threads)
        self.backend = BACKENDS[resolve_backend(backend, ("tflite",))].package
        self.kernels = kernels
        self.xnnpack = kernels == "xnnpack"
        self.reference = kernels == "reference"
        mod = _import_backend(self.backend)
        kwargs = {"num_threads": threads}
        if in_memory:
            kwargs["model_content"] = bytes(model)
        else:
            kwargs["model_path"] = str(model)
        # tf.lite keeps the enum under tf.lite.experimental; the interpreter packages at top level.
        resolvers = getattr(mod, "OpResolverType", None) or getattr(getattr(mod, "experimental", None), "OpResolverType", None)
        if kernels == "reference":
            # The portable C++ reference kernels: slow, but the same integer arithmetic on every ISA
            # (tools/arm_check.sh relies on it: arm64 and x86-64 outputs are bit-identical).
            kwargs["experimental_op_resolver_type"] = resolvers.BUILTIN_REF
        elif kernels == "builtin":
            kwargs["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if preserve_all_tensors:
            kwargs["experimental_preserve_all_tensors"] = True
        try:
            with native_silenced():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++
                self._interp = mod.Interpreter(**kwargs)
            self._check_declared_sizes()
            with native_silenced():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"{self.source}: the TFLite runtime cannot load it ({str(e).splitlines()[0]})") from None
        self._refresh()

    def _check_declared_sizes(self) -> None:
        """The tensors the file declares go through the memory budget before the runtime allocates
        them (a 300-byte file may declare two 19 GB tensors)."""
        from edgecnn.data.limits import check_memory

        need = 0
        for d in self._interp.get_tensor_details():
            n = 1
            for v in d["shape"]:
                n *= max(int(v), 1)
            need += n * np.dtype(d["dtype"]).itemsize
        check_memory(need, f"{self.source}: the tensors this model declares",
                     "the file is not an edge model, or is hostile", ModelFileError)

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

    def ops(self) -> List[dict]:
        """The graph's nodes in execution order: {index, op_name, inputs, outputs, ...} per node.

        With the XNNPACK delegate the ops it took show up as DELEGATE nodes. The interpreter
        offers this only through an underscored method (no public API lists nodes); it is used
        here and nowhere else."""
        return [dict(d) for d in self._interp._get_ops_details()]

    def tensor_details(self) -> List[dict]:
        """Every tensor's index, name, dtype, shape and quantization parameters (no values): what
        the graph of a model is read from (edgecnn.export.mixed)."""
        return [dict(d) for d in self._interp.get_tensor_details()]

    def io_indices(self) -> Tuple[List[int], List[int]]:
        """The tensor indices of the model's inputs and outputs."""
        return [int(d["index"]) for d in self._in], [int(d["index"]) for d in self._out]

    def set_inputs(self, xs_native: Sequence[np.ndarray]) -> None:
        """Set every input of a model with several (``set_input`` sets the first)."""
        for d, x in zip(self._in, xs_native):
            self._interp.set_tensor(d["index"], x)

    def tensor_shape(self, index: int) -> Tuple[int, ...]:
        """The shape of tensor ``index`` of the main subgraph (also of tensors no public call reports)."""
        return tuple(int(d) for d in self._interp._get_tensor_details(int(index), 0)["shape"])

    def tensors(self) -> List[dict]:
        """Every named tensor after the last invoke: name, dtype, shape, scales, zero points, value.

        Intermediate values survive only when the model was loaded with ``preserve_all_tensors``
        (otherwise the arena reuses their memory and the values are garbage)."""
        out = []
        for d in self._interp.get_tensor_details():
            if not d["name"]:
                continue
            q = d.get("quantization_parameters") or {}
            out.append({"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                        "shape": tuple(int(v) for v in d["shape"]),
                        "scales": np.asarray(q.get("scales", [])).tolist(),
                        "zero_points": np.asarray(q.get("zero_points", [])).tolist(),
                        "value": self._interp.get_tensor(d["index"])})
        return out


_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32"}


class ONNXRunner(Runner):
    format = "onnx"
    backend = "onnxruntime"

    def __init__(self, path, threads: int = 1, profile: bool = False):
        super().__init__(path, threads)
        ort = _import_backend("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._profile_dir = None
        if profile:
            # ONNX Runtime writes its trace to a file of its own naming; keep it out of the user's folders.
            self._profile_dir = tempfile.mkdtemp(prefix="edgecnn-ort-profile-")
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(self._profile_dir, "ort_profile")
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            self._drop_profile_dir()
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
        i, o = self._sess.get_inputs()[0], self._sess.get_outputs()[0]
        for dim in i.shape[1:]:
            if not isinstance(dim, int):
                self._drop_profile_dir()
                raise ModelFileError(
                    f"{path}: input '{i.name}' has a dynamic dimension {list(i.shape)}; edgecnn needs a fixed "
                    f"H, W, C (only the batch may be dynamic). Re-export with a fixed input shape.")
        self._dynamic_batch = not isinstance(i.shape[0], int)
        shape = tuple(d if isinstance(d, int) else 1 for d in i.shape)
        self.inputs = [TensorInfo(i.name, shape, _ORT_TYPES.get(i.type, "float32"))]
        if self.inputs[0].dtype in ("uint8", "int8"):
            # ONNX keeps no quantization on a graph input: edgecnn records it in the metadata.
            from edgecnn.contract.model_metadata import input_quantization

            q = input_quantization(dict(self._sess.get_modelmeta().custom_metadata_map), str(path))
            if q is not None:
                self.inputs[0].scale, self.inputs[0].zero_point = q["scale"], q["zero_point"]
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

    def end_profiling(self) -> List[dict]:
        """Stop ONNX Runtime's profiler (``load(..., profile=True)``) and return its trace events
        (Chrome trace format: ``cat``, ``name``, ``ts``, ``dur``, ``args`` per event)."""
        if self._profile_dir is None:
            raise RuntimeNotAvailableError(f"{self.path}: not loaded with profile=True; no profile to end")
        try:
            with open(self._sess.end_profiling(), "r", encoding="utf-8") as f:
                return json.load(f)
        finally:
            self._drop_profile_dir()

    def _drop_profile_dir(self):
        if self._profile_dir is not None:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None


_OV_CORE = None
_OV_TYPES = {"f32": "float32", "u8": "uint8", "i8": "int8", "f16": "float16", "i64": "int64", "i32": "int32"}


class OpenVINORunner(Runner):
    """A .onnx or .tflite file on OpenVINO's CPU plugin (``Core.read_model`` reads both).

    1 stream, the LATENCY performance hint, ``threads`` inference threads; ``precision`` is the
    inference precision hint: None leaves OpenVINO's default, which is bf16 on CPUs with native
    bf16 (AVX512_BF16, AMX): an fp32 file then runs in bf16 (~5e-3 off, ~2x faster here), so
    verification pins "f32". The hint in effect is read back from the compiled model
    (``details()``). A dynamic batch (edgecnn's ONNX) is reshaped to the batch asked for and
    recompiled. An integer input's quantization comes from the file (the TFLite tensor, or
    edgecnn's ONNX metadata_props): OpenVINO reports none."""

    backend = "openvino"

    def __init__(self, path, threads: int = 1, precision: Optional[str] = None):
        super().__init__(path, threads)
        global _OV_CORE
        ov = _import_backend("openvino")
        self.format = model_format(path)
        self.precision = precision
        self._tmp = None
        src = Path(path)
        if src.suffix != "." + self.format:  # read_model picks its frontend by the suffix
            self._tmp = tempfile.mkdtemp(prefix="edgecnn-ov-")
            src = Path(self._tmp) / ("model." + self.format)
            shutil.copyfile(path, src)
        if _OV_CORE is None:
            _OV_CORE = ov.Core()
        self._ov, self._core = ov, _OV_CORE
        try:
            self._model = self._core.read_model(str(src))
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise ModelFileError(f"{path}: OpenVINO cannot read it ({str(e).strip().splitlines()[-1][:200]})") from None
        finally:
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
        if len(self._model.inputs) != 1 or len(self._model.outputs) != 1:
            raise ModelFileError(f"{path}: {len(self._model.inputs)} inputs and {len(self._model.outputs)} outputs; "
                                 f"edgecnn runs one of each")
        ps = self._model.input(0).get_partial_shape()
        if any(d.is_dynamic for d in list(ps)[1:]):
            raise ModelFileError(f"{path}: input {ps} has a dynamic dimension besides the batch; edgecnn needs a "
                                 f"fixed H, W, C.")
        self._dynamic_batch = ps[0].is_dynamic
        self._quant = self._input_quantization()
        self._batch = None
        self.resize(1)

    def _input_quantization(self) -> Optional[dict]:
        et = self._model.input(0).get_element_type().get_type_name()
        if _OV_TYPES.get(et) not in ("uint8", "int8"):
            return None
        data = Path(self.path).read_bytes()
        if self.format == "tflite":
            from edgecnn.contract.tflite_metadata import model_io

            t = model_io(data, str(self.path))["input"]
            return {"scale": t["scale"], "zero_point": t["zero_point"]} if t["scale"] > 0 else None
        from edgecnn.contract.model_metadata import input_quantization, onnx_fields

        return input_quantization(onnx_fields(data, str(self.path))["metadata_props"], str(self.path))

    def resize(self, batch_size: int) -> None:
        if batch_size == self._batch:
            return
        ps = self._model.input(0).get_partial_shape()
        dims = [d.get_length() for d in list(ps)[1:]]
        if ps[0].is_dynamic or ps[0].get_length() != batch_size:
            if not self._dynamic_batch and self._batch is not None:
                raise ModelFileError(f"{self.path}: fixed batch {ps[0]}, cannot run batch {batch_size}")
            self._model.reshape({self._model.input(0): self._ov.PartialShape([batch_size] + dims)})
        config = {"INFERENCE_NUM_THREADS": int(self.threads), "PERFORMANCE_HINT": "LATENCY"}
        if self.precision:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        try:
            self._compiled = self._core.compile_model(self._model, "CPU", config)
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{self.path}: OpenVINO cannot compile it ({str(e).strip().splitlines()[-1][:200]})") from None
        self._req = self._compiled.create_infer_request()
        self._batch = batch_size
        i, o = self._compiled.input(0), self._compiled.output(0)
        q = self._quant or {}
        self.inputs = [TensorInfo(i.get_any_name(), tuple(int(d) for d in i.get_shape()),
                                  _OV_TYPES.get(i.get_element_type().get_type_name(), "float32"),
                                  float(q.get("scale", 0.0)), int(q.get("zero_point", 0)))]
        self.outputs = [TensorInfo(o.get_any_name(), tuple(int(d) for d in o.get_shape()),
                                   _OV_TYPES.get(o.get_element_type().get_type_name(), "float32"))]
        self._in = self._req.get_input_tensor(0).data  # a view of the request's own input buffer

    def set_input(self, x_native):
        self._in[...] = x_native

    def invoke(self):
        self._req.infer()

    def get_output(self):
        return self._req.get_output_tensor(0).data.copy()  # a view the next infer() overwrites

    def details(self) -> dict:
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        return {"precision_hint": name, "precision_hint_asked": self.precision or "default", "device": "CPU"}


class KerasRunner(Runner):
    """A ``model.keras`` as a ``tf.function``: the float reference beside the exported artifacts."""

    format = "keras"
    backend = "keras"

    def __init__(self, path, threads: int = 1):
        super().__init__(path, threads)
        _import_backend("keras")  # a clear error when tf_keras is not installed
        import tensorflow as tf

        self._tf = tf
        if threads:
            try:  # only possible before TensorFlow's context starts (always so in a fresh worker)
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass
        from edgecnn.contract import load_keras

        self._model = load_keras(path)  # a .keras zip, checked, in safe mode: never code from the file
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


def load(model: ModelSource, *, backend: str = AUTO, threads: int = 1, xnnpack: bool = True,
         reference: bool = False, profile: bool = False, preserve_all_tensors: bool = False) -> Runner:
    """Load a .tflite, .onnx or .keras file (or TFLite bytes) on the named backend, or the best
    one installed ('auto'). ``backend`` is a name or alias of ``BACKENDS``.

    TFLite only: ``xnnpack=False`` runs the builtin (optimized, ISA-specific) kernels instead of
    the XNNPACK delegate, ``reference=True`` the portable reference kernels (the same as naming
    ``litert-noxnn`` / ``litert-ref``); ``preserve_all_tensors`` keeps every intermediate tensor
    for ``TFLiteRunner.tensors()``. ONNX only: ``profile=True`` turns on ONNX Runtime's profiler
    (``ONNXRunner.end_profiling()``).
    """
    name = resolve_backend(backend, auto=True)
    in_memory = isinstance(model, (bytes, bytearray))
    if in_memory:
        if len(model) < 8 or bytes(model[4:8]) != _TFLITE_MAGIC:
            raise ModelFileError(f"<in-memory model> of {len(model)} bytes is not a TFLite flatbuffer")
        fmt, where = "tflite", "<in-memory model>"
    else:
        fmt, where = model_format(model), model
    if name != AUTO and not BACKENDS[name].runs(fmt):
        if fmt == "tflite" and name == "onnxruntime":
            raise RuntimeNotAvailableError(f"{where} is TFLite: onnxruntime runs only .onnx files")
        raise RuntimeNotAvailableError(f"{where} is {_FORMAT_LABEL[fmt]}: runtime '{name}' runs only "
                                       f"{' and '.join('.' + f for f in BACKENDS[name].formats)} files")
    if name != AUTO and BACKENDS[name].package == "openvino":
        if in_memory:
            raise RuntimeNotAvailableError("OpenVINO reads model files, not TFLite bytes: write them to a .tflite first")
        return OpenVINORunner(model, threads, precision=BACKENDS[name].precision)
    if fmt == "onnx":
        return ONNXRunner(model, threads, profile=profile)
    if fmt == "keras":
        return KerasRunner(model, threads)
    kernels = BACKENDS[name].kernels if name != AUTO else "xnnpack"
    if reference:
        kernels = "reference"
    elif not xnnpack and kernels == "xnnpack":
        kernels = "builtin"
    packages = _TFLITE_PACKAGES if name == AUTO else (BACKENDS[name].package,)
    last = None
    for package in packages:
        try:
            return TFLiteRunner(model, threads, package, kernels, preserve_all_tensors)
        except RuntimeNotAvailableError as e:
            last = e
    raise last or RuntimeNotAvailableError("No TFLite runtime installed: pip install ai-edge-litert")


def tflite_ops(model: ModelSource) -> List[str]:
    """The op names of a TFLite model in execution order (``CONV_2D``, ``PRELU``, ...), as the
    builtin kernels see them (no delegate folds ops into DELEGATE nodes)."""
    return [d["op_name"] for d in load(model, backend="litert-noxnn").ops()]


def tensor_dump(model: ModelSource, x_native: np.ndarray, *, backend: str = "litert-noxnn") -> List[dict]:
    """Every named tensor of one inference on ``x_native`` (in the model's input dtype, e.g. a
    quantized int8 image): what two builds, kernel sets or machines are compared by, tensor by
    tensor, to find the first op where they differ. Entries as ``TFLiteRunner.tensors()``."""
    runner = load(model, backend=backend, preserve_all_tensors=True)
    x = np.asarray(x_native, np.dtype(runner.input.dtype))
    runner.resize(int(x.shape[0]) if x.ndim == len(runner.input.shape) else 1)
    runner.set_input(x.reshape(runner.input.shape))
    runner.invoke()
    return runner.tensors()
