"""The table of artifacts an export can write: what selects each, which graph it is converted
from, how it is written, checked and named. ``export_model`` walks it; nothing else decides
which files an export holds.

| key            | file                     | selected by      | from graph         | verified as |
|----------------|--------------------------|------------------|--------------------|-------------|
| tflite-fp32    | <model>_fp32.tflite      | always           | Keras model        | exact       |
| tflite-fp16    | <model>_fp16.tflite      | fp16             | Keras model        | accuracy    |
| tflite-dynamic | <model>_dynamic.tflite   | dynamic          | Keras model        | accuracy    |
| tflite-int8    | <model>_int8.tflite      | int8             | deploy (or QAT)    | accuracy    |
| tflite-mixed   | <model>_mixed.tflite     | mixed (int8)     | deploy             | accuracy    |
| onnx-fp32      | <model>_fp32.onnx        | onnx             | Keras model        | exact       |
| onnx-int8      | <model>_int8.onnx        | onnx and int8    | deploy (ORT QDQ) or the int8 TFLite | accuracy |

"exact": the same function as Keras (max |p - p_keras| <= 1e-4); "accuracy": top-1 at most
``max_drop`` points below Keras (edgecnn.export.verify). Order matters: the int8 ONNX of the
``from_tflite`` route converts the int8 TFLite written before it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from edgecnn import contract
from edgecnn.export.options import Skipped  # noqa: F401  (raised by the writers, caught by export_model)


@dataclasses.dataclass
class Job:
    """What the writers share: the graphs, calibration images and the folder being staged."""

    options: object           # ExportOptions
    name: str
    model: object             # the Keras model (float; the reference)
    deploy_model: object      # after the exact PReLU rewrite (or the QAT model), for int8
    qat_model: Optional[object]
    calibration: np.ndarray
    val: Optional[tuple]
    test: tuple
    spec: object
    trained: bool
    stage: Path
    echo: Callable[[str], None]
    output_kind: str = "probabilities"

    def graph(self, src) -> str:
        if self.qat_model is not None and src is self.qat_model:
            return "qat"
        return "deploy" if src is not self.model else "original"


@dataclasses.dataclass(frozen=True)
class ArtifactFormat:
    key: str
    format: str               # tflite | onnx (contract.FORMATS)
    precision: str
    selected: Callable[[object], bool]
    write: Callable[[Job, Path], dict]   # -> the manifest entry's extra fields
    check: str                # "exact" | "accuracy"

    def file_name(self, model: str) -> str:
        return contract.artifact_name(model, self.format, self.precision)


def _tflite(precision: str):
    def write(job: Job, dst: Path) -> dict:
        from edgecnn.export.tflite import export_tflite

        src = job.deploy_model if precision == "int8" else job.model
        info: dict = {}
        cal = job.calibration if precision == "int8" else job.calibration[:2]
        export_tflite(src, dst, precision, calibration=cal, int8_io=job.options.int8_io and precision == "int8",
                      info=info)
        info["graph"] = job.graph(src)
        return info
    return write


def _mixed(job: Job, dst: Path) -> dict:
    from edgecnn.export.mixed_export import export_mixed

    extra = export_mixed(job, dst)
    extra["graph"] = job.graph(job.deploy_model)
    return extra


def _onnx_fp32(job: Job, dst: Path) -> dict:
    from edgecnn.export.onnx import export_onnx

    export_onnx(job.model, dst)
    return {"graph": "original"}


def _onnx_int8(job: Job, dst: Path) -> dict:
    from edgecnn.export.onnx import export_onnx, onnx_from_tflite, quantize_onnx

    if job.options.int8_onnx_route == "from_tflite":
        onnx_from_tflite(job.stage / contract.artifact_name(job.name, "tflite", "int8"), dst)
        return {"graph": job.graph(job.deploy_model), "int8_route": "from_tflite"}
    # ORT quantizes a float graph: after QAT, the float model before it (post-training
    # quantization; the QAT ranges go into the int8 TFLite only).
    src = job.deploy_model if job.qat_model is None else job.model
    tmp_fp32 = job.stage / f".{job.name}_deploy_fp32.onnx"
    export_onnx(src, tmp_fp32)
    quantize_onnx(tmp_fp32, dst, job.calibration)
    tmp_fp32.unlink()
    extra = {"graph": job.graph(src), "int8_route": "ort_qdq (QDQ, per-channel int8 weights, uint8 activations)"}
    if job.qat_model is not None:
        extra["qat"] = "not applied: ONNX Runtime post-training quantization of the float model"
    return extra


FORMATS: List[ArtifactFormat] = [
    ArtifactFormat("tflite-fp32", "tflite", "fp32", lambda o: True, _tflite("fp32"), "exact"),
    ArtifactFormat("tflite-fp16", "tflite", "fp16", lambda o: o.fp16, _tflite("fp16"), "accuracy"),
    ArtifactFormat("tflite-dynamic", "tflite", "dynamic", lambda o: o.dynamic, _tflite("dynamic"), "accuracy"),
    ArtifactFormat("tflite-int8", "tflite", "int8", lambda o: o.int8, _tflite("int8"), "accuracy"),
    ArtifactFormat("tflite-mixed", "tflite", "mixed", lambda o: o.mixed, _mixed, "accuracy"),
    ArtifactFormat("onnx-fp32", "onnx", "fp32", lambda o: o.onnx, _onnx_fp32, "exact"),
    ArtifactFormat("onnx-int8", "onnx", "int8", lambda o: o.onnx and o.int8, _onnx_int8, "accuracy"),
]


def selected(options) -> List[ArtifactFormat]:
    """The formats ``options`` asks for, in the order they are written."""
    return [f for f in FORMATS if f.selected(options)]


def write(fmt: ArtifactFormat, job: Job) -> dict:
    """Write one artifact into the stage and return its manifest entry."""
    from edgecnn.export.onnx import onnx_opset
    from edgecnn.measure.runtime import load

    dst = job.stage / fmt.file_name(job.name)
    extra = fmt.write(job, dst)
    if fmt.format == "onnx":
        extra["opset"] = onnx_opset(dst)
        extra["batch"] = "dynamic" if job.options.int8_onnx_route == "ort_qdq" or fmt.precision == "fp32" else 1
    r = load(dst)
    entry = dict(contract.artifact_entry(dst, fmt.format, fmt.precision, r.inputs, r.outputs, job.output_kind),
                 **extra)
    job.echo(f"wrote {dst.name} ({dst.stat().st_size / 1024:.1f} KiB)")
    return entry
