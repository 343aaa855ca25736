"""What to benchmark: files and run directories -> ``Target``s, each with what its run and
manifest say about it (preprocessing, precision, model, verified accuracy).

A target's accuracy is read, never measured, here: the benchmark reports speed beside the
accuracy that verification wrote into the manifest.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import List, Optional, Sequence

from edgecnn.errors import ModelFileError, RunError


@dataclasses.dataclass
class Target:
    """One file to benchmark, with what its run and manifest say about it."""

    path: Path
    format: str  # tflite | onnx | keras
    explicit: bool  # named on the command line (not found inside a run directory)
    manifest: Optional[dict] = None
    entry: Optional[dict] = None  # the manifest's "artifacts"[name]
    run_json: Optional[dict] = None
    run_dir: Optional[Path] = None

    @property
    def name(self) -> str:
        return self.path.name

    _description: object = dataclasses.field(default=None, repr=False)

    @property
    def description(self):
        """What a lone .tflite/.onnx says about itself (``contract.model_metadata``), or None."""
        if self._description is None and self.manifest is None and self.format in ("tflite", "onnx"):
            from edgecnn.contract.model_metadata import describe

            self._description = describe(self.path) or False
        return self._description or None

    @property
    def manifest_path(self) -> Optional[Path]:
        """The manifest.json that describes this artifact (beside it), or None."""
        if self.manifest is None or self.format == "keras":
            return None
        from edgecnn.contract import MANIFEST

        return self.path.parent / MANIFEST

    @property
    def spec(self) -> Optional[dict]:
        """The preprocessing this file takes: a Keras model the run's own, an artifact the
        manifest's (the camera input), a lone file its metadata's."""
        return self._spec()[0]

    @property
    def spec_source(self) -> Optional[str]:
        return self._spec()[1]

    def _spec(self):
        if self.format == "keras":
            for src, what in (((self.manifest or {}).get("keras"), "manifest (keras)"), (self.run_json, "run.json")):
                if src and src.get("preprocessing"):
                    return src["preprocessing"], what
            return None, None
        for src, what in ((self.manifest, "manifest"), (self.run_json, "run.json")):
            if src and src.get("preprocessing"):
                return src["preprocessing"], what
        d = self.description
        if d is not None and d.preprocessing is not None:
            return d.preprocessing, f"file's {d.source}"
        return None, None

    @property
    def precision(self) -> Optional[str]:
        if self.entry and self.entry.get("precision"):
            return self.entry["precision"]
        if self.format == "keras":
            return "fp32"
        m = re.search(r"_(fp32|fp16|dynamic|int8|mixed)$", self.path.stem)
        return m.group(1) if m else None

    @property
    def model(self) -> Optional[str]:
        for src in (self.manifest, self.run_json):
            if src and src.get("model"):
                return src["model"]
        return None

    @property
    def run(self) -> Optional[str]:
        return self.run_dir.name if self.run_dir else None  # the manifest stores it relative ('..')

    def accuracy(self, runtime: Optional[str] = None) -> Optional[dict]:
        """The verified accuracy beside the speed: the manifest's verification of this artifact
        (on ``runtime``'s package when it was verified there too: ``edgecnn verify --runtime``)."""
        if self.format == "keras":
            k = (self.manifest or {}).get("keras") or ((self.run_json or {}).get("metrics") or {})
            if k.get("top1") is None:
                return None
            return {"top1": k.get("top1"), "top5": k.get("top5"), "verified": True,
                    "source": "manifest keras" if self.manifest else "run.json metrics"}
        if not self.entry or not self.entry.get("verification"):
            return None
        v = self.entry["verification"]
        if runtime is not None:
            from edgecnn.measure.backends import BACKENDS

            package = BACKENDS[runtime].package
            other = (self.entry.get("verified_on") or {}).get(package)
            if isinstance(other, dict):
                v = dict(other)
            elif package == "openvino":
                return None  # verified on LiteRT / ONNX Runtime, not on the runtime timed
        return {"top1": v.get("top1"), "agreement_with_keras": v.get("agreement_with_keras"),
                "max_abs_diff_vs_keras": v.get("max_abs_diff_vs_keras"),
                "verified": bool(v.get("passed")) if v is not self.entry["verification"] else
                bool(self.entry.get("verified", v.get("passed"))),
                "runtime": v.get("runtime"), "split": v.get("split"), "n": v.get("n"),
                "reason": v.get("reason"), "source": "manifest verification",
                **({"precision_hint": v["precision_hint"]} if v.get("precision_hint") else {})}


_PRECISION_ORDER = {"fp32": 0, "fp16": 1, "dynamic": 2, "int8": 3, "mixed": 4}


def resolve_targets(paths: Sequence, want_keras: bool = False) -> List[Target]:
    """Files and run directories -> the artifacts to benchmark (a run: its export/ artifacts,
    and its model.keras where the keras runtime is asked for).

    Everything goes through the artifact contract (``edgecnn.contract.resolve``): manifests are
    validated, every artifact lies inside its export folder and matches its sha256, and a
    run's model.keras matches the sha256 its run.json records.
    """
    from edgecnn import contract

    targets: List[Target] = []
    for arg in paths:
        p = Path(arg)
        if not p.exists():
            raise ModelFileError(f"Model file or run directory not found: {p}")
        if p.is_file() and p.suffix == ".keras":
            run_dir = p.parent if (p.parent / contract.RUN_FILE).exists() else None
            r = contract.resolve(run_dir) if run_dir is not None else None
            if r is not None and p.name == contract.MODEL_FILE:
                contract.check_file_sha256(p, r.run.info.get("model_sha256"), "model.keras recorded in run.json", RunError)
            targets.append(Target(p, "keras", True, r.manifest if r else None, None,
                                  r.run.info if r else None, run_dir))
            continue
        r = contract.resolve(p, error=ModelFileError if p.is_file() else RunError)
        run_json = r.run.info if r.run_dir is not None else None
        if r.artifact is not None:
            from edgecnn.measure.runtime import model_format

            entry = None
            if r.manifest is not None:
                contract.artifact_path(r.export_dir, r.manifest, r.artifact.name)
                entry = r.manifest["artifacts"][r.artifact.name]
            fmt = model_format(p)  # ModelFileError for empty / truncated-header / non-model files
            targets.append(Target(p, fmt, True, r.manifest, entry, run_json, r.run_dir))
            continue
        targets.extend(_targets_of(r, want_keras))
    return targets


def _targets_of(r, want_keras: bool) -> List[Target]:
    from edgecnn import contract
    from edgecnn.measure.runtime import model_format

    out = []
    if r.manifest is not None:
        for name, entry in r.manifest["artifacts"].items():
            f = contract.artifact_path(r.export_dir, r.manifest, name)
            out.append(Target(f, model_format(f), False, r.manifest, entry, None, r.run_dir))
    run_json = r.run.info if r.run_dir is not None else None
    for t in out:
        t.run_json = run_json
    out.sort(key=lambda t: (t.format != "tflite", _PRECISION_ORDER.get(t.precision or "", 9), t.name))
    if want_keras and r.run_dir is not None and (r.run_dir / contract.MODEL_FILE).is_file():
        m = r.run_dir / contract.MODEL_FILE
        contract.check_file_sha256(m, run_json.get("model_sha256"), "model.keras recorded in run.json", RunError)
        out.insert(0, Target(m, "keras", False, r.manifest, None, run_json, r.run_dir))
    if not out:
        raise RunError(f"{r.target} has no exported artifacts (no export/manifest.json): run 'edgecnn export' first.")
    return out
