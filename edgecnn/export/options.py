"""What an export is asked to do: one frozen object with its defaults in one place.

``ExportOptions`` is what ``edgecnn export`` builds from its flags and what ``export_model`` takes
(``export_model(run, options)``, or ``export_model(run, int8=True, onnx=False)``: keyword overrides
of the defaults, the way a configuration with overrides works). It is validated once, when it is
made, before any work; an error names the value and what it must be, as the flag a user typed
when the CLI made it (``--max-drop nan``), as the field otherwise (``max_drop=nan``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from edgecnn.core.options import Options
from edgecnn.errors import InvalidConfigError

INT8_ONNX_ROUTES = ("ort_qdq", "from_tflite")


@dataclasses.dataclass(frozen=True)
class ExportOptions(Options):
    """Which artifacts, how they are quantized and checked, and where the run is.

    int8/fp16/dynamic: TFLite precisions besides fp32 (always written); onnx: fp32 ONNX (and
    int8 ONNX with int8). calibration: training images that calibrate int8. int8_io: int8 input
    and output tensors. max_drop: top-1 points an artifact may lose against Keras and pass.
    rewrite: the exact PReLU rewrite for fast int8 kernels. int8_onnx_route: ORT's QDQ
    quantization of the float graph, or tf2onnx from the int8 TFLite. prune/cluster/qat and
    compress_epochs: TFMOT steps first. mixed: per-op int8/float TFLite, costed on this machine,
    from cost_table, or on the emulated board target. unsafe_load: load a Keras model that
    needs code from its file (only for a model you trust). clean: replace the whole export folder
    (by default the artifacts of an earlier export that this one does not write are kept).
    author/license: what every file's metadata says about them (default: "edgecnn <version>" and
    "not specified").
    """

    int8: bool = False
    fp16: bool = False
    dynamic: bool = False
    onnx: bool = True
    calibration: int = 200
    int8_io: bool = False
    max_drop: float = 1.0
    rewrite: bool = True
    int8_onnx_route: str = "ort_qdq"
    verify: bool = True
    prune: Optional[float] = None
    cluster: Optional[int] = None
    qat: bool = False
    compress_epochs: int = 2
    author: str = ""
    license: str = ""
    mixed: bool = False
    cost_table: Optional[dict] = dataclasses.field(default=None, compare=False)
    target: Optional[str] = None
    runs_dir: Optional[str] = None
    unsafe_load: bool = False
    clean: bool = False

    def check(self) -> None:
        if self.int8_onnx_route not in INT8_ONNX_ROUTES:
            self._bad("int8_onnx_route", f"one of {', '.join(INT8_ONNX_ROUTES)}")
        if not isinstance(self.calibration, int) or isinstance(self.calibration, bool) or self.calibration < 1:
            self._bad("calibration", "must be at least 1 image")
        if not isinstance(self.max_drop, (int, float)) or not math.isfinite(self.max_drop) or self.max_drop < 0:
            self._bad("max_drop", "must be a finite number >= 0")
        if self.prune is not None and not (isinstance(self.prune, (int, float)) and 0 < self.prune < 1):
            self._bad("prune", "must be a sparsity in (0, 1)")
        if self.cluster is not None and not (isinstance(self.cluster, int) and self.cluster >= 2):
            self._bad("cluster", "must be at least 2 centroids")
        if not isinstance(self.compress_epochs, int) or self.compress_epochs < 1:
            self._bad("compress_epochs", "must be >= 1")
        for key in ("author", "license"):
            v = getattr(self, key)
            if not isinstance(v, str) or len(v) > 1024 or any(ch in v for ch in "\n\r\x00"):
                self._bad(key, "must be one line of text, at most 1024 characters")
        for needs_int8 in ("int8_io", "mixed"):
            if getattr(self, needs_int8) and not self.int8:
                self._needs(needs_int8, "int8")
        if self.mixed and self.qat:
            raise InvalidConfigError("mixed precision chooses float ops after post-training calibration; it does not "
                                     "combine with quantization-aware training (whose int8 graph is fixed by the QAT "
                                     "wrappers).")
        if self.cost_table is not None and not self.mixed:
            self._needs("cost_table", "mixed")
        if self.target is not None:
            from edgecnn.measure.boards import BOARDS

            if self.cost_table is not None:
                raise InvalidConfigError("a target board and a cost table both give the per-op costs: give one.")
            if not self.mixed:
                self._needs("target", "mixed")
            if self.target not in BOARDS:
                self._bad("target", f"one of {', '.join(BOARDS)}")
        if self.cost_table is not None:
            from edgecnn.export.mixed import validate_cost_table

            validate_cost_table(self.cost_table)


class Skipped(Exception):
    """A writer's decision not to write its artifact (a mixed model no faster than int8 on the
    target): the export says why, records it under the manifest's "skipped", and goes on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
