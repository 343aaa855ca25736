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

Every graph here takes the camera input (``export.fold``: pixels / 255, the run's normalization
folded into the model), and the int8 TFLite a uint8 image (its scale 1/255 and zero point 0
checked: the camera's bytes are its input), unless ``int8_io`` asks for int8 in and out. Every
file then gets its metadata (``export.metadata``: TFLite Metadata, ONNX metadata_props) before
its manifest entry is made, so that the entry's sha256 covers the final file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from edgecnn import contract
from edgecnn.errors import ExportError
from edgecnn.export.options import Skipped  # noqa: F401  (raised by the writers, caught by export_model)


@dataclasses.dataclass
class Job:
    """What the writers share: the graphs, calibration images and the folder being staged.
    Every graph and the calibration images are in the artifacts' input space (``spec``, the
    camera input); the run's own model, the verification reference, is not here."""

    options: object           # ExportOptions
    name: str
    model: object             # the float Keras model taking the camera input
    deploy_model: object      # after the exact PReLU rewrite (or the QAT model), for int8
    qat_model: Optional[object]
    calibration: np.ndarray
    val: Optional[tuple]
    test: tuple
    spec: object              # what every artifact takes (PreprocessSpec)
    trained: bool
    stage: Path
    echo: Callable[[str], None]
    output_kind: str = "probabilities"
    labels: tuple = ()
    about: dict = dataclasses.field(default_factory=dict)  # description, version, author, license

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

        from edgecnn.contract.tflite_metadata import model_io
        from edgecnn.export.fold import check_camera_input

        src = job.deploy_model if precision == "int8" else job.model
        info: dict = {}
        cal = job.calibration if precision == "int8" else job.calibration[:2]
        int8_io = job.options.int8_io and precision == "int8"
        export_tflite(src, dst, precision, calibration=cal, int8_io=int8_io,
                      uint8_input=precision == "int8" and not int8_io, info=info)
        if precision == "int8":
            check_camera_input(model_io(dst.read_bytes(), dst.name)["input"], dst.name)
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
    from edgecnn.export.onnx import camera_input, export_onnx, onnx_from_tflite, quantize_onnx

    if job.options.int8_onnx_route == "from_tflite":
        from edgecnn.contract.tflite_metadata import model_io

        src = job.stage / contract.artifact_name(job.name, "tflite", "int8")
        onnx_from_tflite(src, dst)
        q = model_io(src.read_bytes(), src.name)["input"]
        extra = {"graph": job.graph(job.deploy_model), "int8_route": "from_tflite"}
        if q["dtype"] in ("uint8", "int8"):  # the TFLite's integer input, with its quantization
            extra["input_quantization"] = {"scale": q["scale"], "zero_point": q["zero_point"]}
        return extra
    # ORT quantizes a float graph: after QAT, the float model before it (post-training
    # quantization; the QAT ranges go into the int8 TFLite only).
    src = job.deploy_model if job.qat_model is None else job.model
    tmp_fp32 = job.stage / f".{job.name}_deploy_fp32.onnx"
    export_onnx(src, tmp_fp32)
    quantize_onnx(tmp_fp32, dst, job.calibration)
    tmp_fp32.unlink()
    extra = {"graph": job.graph(src), "int8_route": "ort_qdq (QDQ, per-channel int8 weights, uint8 activations)"}
    quant = camera_input(dst)
    if quant is not None:
        extra["input_quantization"] = quant
    else:
        extra["camera_input"] = "float input kept: the quantized input is not uint8 with scale 1/255, zero point 0"
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
    """Write one artifact into the stage, then its metadata, and return its manifest entry."""
    from edgecnn.export.onnx import onnx_opset
    from edgecnn.measure.runtime import load

    dst = job.stage / fmt.file_name(job.name)
    extra = fmt.write(job, dst)
    if fmt.format == "onnx":
        extra["opset"] = onnx_opset(dst)
        extra["batch"] = "dynamic" if job.options.int8_onnx_route == "ort_qdq" or fmt.precision == "fp32" else 1
    extra["metadata"] = _metadata(fmt, job, dst, extra.get("input_quantization"))
    r = load(dst)
    entry = dict(contract.artifact_entry(dst, fmt.format, fmt.precision, r.inputs, r.outputs, job.output_kind),
                 **extra)
    job.echo(f"wrote {dst.name} ({dst.stat().st_size / 1024:.1f} KiB)")
    return entry


def _metadata(fmt: ArtifactFormat, job: Job, dst: Path, quantization: Optional[dict]) -> dict:
    """TFLite Metadata or ONNX metadata_props into ``dst``; -> the entry's metadata record."""
    from edgecnn.export.metadata import ClassifierInfo, write_onnx_metadata, write_tflite_metadata

    info = ClassifierInfo(name=job.name, labels=tuple(job.labels), spec=job.spec, output_kind=job.output_kind,
                          precision=fmt.precision, **job.about)
    if fmt.format == "tflite":
        checks = [np.asarray(job.calibration[i:i + 1], np.float32) for i in range(min(2, len(job.calibration)))]
        return write_tflite_metadata(dst, info, checks)
    from edgecnn.measure.runtime import load

    tensor = load(dst).input.to_dict()
    if tensor["dtype"] in ("uint8", "int8"):  # ONNX keeps no quantization on a graph input
        if quantization is None:
            raise ExportError(f"{dst.name}: an integer input whose quantization is not known.")
        tensor.update(quantization)
    return write_onnx_metadata(dst, info, tensor)
