"""Lossless compaction of a TFLite flatbuffer: identical quantization zero-point vectors stored once.

The converter writes, for every per-channel quantized tensor, its own ``zero_point`` vector of
int64 values, one per channel. For int8 weights and int32 biases those are all zeros (symmetric
quantization), so a MobileNetV2 int8 file carries ~115 KB of zeros: 10% of the file
(`edgecnn inspect FILE.tflite`). FlatBuffers lets several tables point at one vector (that is
how shared strings work), and the TFLite schema reader does not care, so we re-serialize the
model with each distinct zero-point vector written once. Nothing else changes: the same tensors,
values, ops, buffers (still 16-byte aligned, as the converter writes them), signatures and metadata.

``compact_tflite`` checks its own result: the compacted model must give bit-identical outputs to
the original on the inputs given, else the original bytes are returned.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

_FILE_ID = b"TFL3"
_BUFFER_ALIGN = 16  # the schema's `data:[ubyte] (force_align: 16)`; the Python packer ignores it


def sharing_builder(initial: int):
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        """Writes each distinct int64 vector once (the schema's only [long] field is the zero
        point) and keeps byte vectors (buffer data, custom options) 16-byte aligned."""

        def __init__(self, size):
            super().__init__(size)
            self._int64 = {}
            self.shared_bytes = 0

        def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers' API name
            if x.dtype == np.int64 and x.ndim == 1:
                key = x.astype("<i8").tobytes()
                if key in self._int64:
                    self.shared_bytes += len(key)
                    return self._int64[key]
                self._int64[key] = super().CreateNumpyVector(x)
                return self._int64[key]
            if x.dtype == np.uint8 and x.ndim == 1:
                payload = x.tobytes()
                self.StartVector(1, len(payload), _BUFFER_ALIGN)
                self.head = self.head - len(payload)
                self.Bytes[self.head:self.head + len(payload)] = payload
                self.vectorNumElems = len(payload)
                return self.EndVector()
            return super().CreateNumpyVector(x)

    return SharingBuilder(initial)


def schema():
    """The TFLite schema's generated Python object API: LiteRT's copy (the light install has it),
    else TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as fb
    return fb


def repack(data: bytes) -> Tuple[bytes, int]:
    """The model re-serialized with shared zero-point vectors; and the bytes saved by sharing."""
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    b = sharing_builder(len(data))
    b.Finish(model.Pack(b), file_identifier=_FILE_ID)
    return bytes(b.Output()), b.shared_bytes


def buffers_aligned(data: bytes, align: int = _BUFFER_ALIGN) -> bool:
    """True when every non-empty constant buffer's data starts on an ``align``-byte boundary."""
    m = schema().Model.GetRootAs(bytearray(data), 0)
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            # DataAsNumpy is a view into the file: its offset in the file is the data's position.
            start = buf._tab.Vector(buf._tab.Offset(4))
            if start % align:
                return False
    return True


def outputs_on(data: bytes, inputs: Sequence[np.ndarray]):
    """Raw outputs of ``data`` on each input (batch 1; float32 model inputs are quantized for an
    integer input tensor), with XNNPACK and with the builtin kernels (the two kernel sets a device
    may run); None when no TFLite runtime with both is installed."""
    from edgecnn.measure import runtime
    from edgecnn.errors import RuntimeNotAvailableError

    for package in ("litert", "tf-lite"):
        try:
            runners = [runtime.load(data, backend=package, threads=1, xnnpack=xnnpack) for xnnpack in (True, False)]
        except RuntimeNotAvailableError:  # not installed here: try the next runtime
            continue
        outs = []
        for r in runners:
            for x in inputs:
                x = np.asarray(x)
                if x.dtype != np.dtype(r.input.dtype):  # float model inputs, quantized as a device does
                    x = r.prepare(np.asarray(x, np.float32))
                r.set_input(x.reshape(r.input.shape))
                r.invoke()
                outs.append(np.array(r.get_output(), copy=True))
        return outs
    return None


def compact_tflite(data: bytes, check_inputs: Optional[Sequence[np.ndarray]] = None) -> Tuple[bytes, dict]:
    """``data`` with identical zero-point vectors shared, when that saves bytes and the result runs
    bit-identically (XNNPACK and the builtin kernels) on ``check_inputs`` (each one batch-1 input,
    in the model's input dtype or float32); else ``data`` unchanged. Returns the bytes and a small report."""
    try:
        out, shared = repack(data)
    except Exception as e:  # noqa: BLE001 - compaction is an optimisation, never a failure
        return data, {"compacted": False, "reason": f"repack failed: {type(e).__name__}: {e}"}
    report = {"compacted": False, "bytes_before": len(data), "bytes_after": len(out), "zero_points_shared": shared}
    if len(out) >= len(data):
        report["reason"] = "nothing to share"
        return data, report
    if not buffers_aligned(out):
        report["reason"] = "buffer alignment not kept"
        return data, report
    if check_inputs is not None and len(check_inputs):
        a, b = outputs_on(data, check_inputs), outputs_on(out, check_inputs)
        if a is None:
            report["reason"] = "no TFLite runtime to check the result"
            return data, report
        if not all(np.array_equal(u, v) for u, v in zip(a, b)):
            report["reason"] = "outputs differ after repacking"
            return data, report
        report["checked_inputs"] = len(check_inputs)
    report["compacted"] = True
    return out, report
