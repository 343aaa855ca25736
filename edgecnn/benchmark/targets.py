"""What to benchmark: files and run directories -> ``Target``s, each with what its run and
manifest say about it (preprocessing, precision, model, verified accuracy).

A target's accuracy is read, never measured, here: the benchmark reports speed beside the
accuracy that verification wrote into the manifest.
"""
from __future__ import annotations

import dataclasses
import json
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

    @property
    def spec(self) -> Optional[dict]:
        for src in (self.manifest, self.run_json):
            if src and src.get("preprocessing"):
                return src["preprocessing"]
        return None

    @property
    def precision(self) -> Optional[str]:
        if self.entry and self.entry.get("precision"):
            return self.entry["precision"]
        if self.format == "keras":
            return "fp32"
        m = re.search(r"_(fp32|fp16|dynamic|int8)$", self.path.stem)
        return m.group(1) if m else None

    @property
    def model(self) -> Optional[str]:
        for src in (self.manifest, self.run_json):
            if src and src.get("model"):
                return src["model"]
        return None

    @property
    def run(self) -> Optional[str]:
        if self.manifest and self.manifest.get("run"):
            return self.manifest["run"]
        return self.run_dir.name if self.run_dir else None

    def accuracy(self) -> Optional[dict]:
        """The verified accuracy beside the speed: the manifest's verification of this artifact."""
        if self.format == "keras":
            k = (self.manifest or {}).get("keras") or ((self.run_json or {}).get("metrics") or {})
            if k.get("top1") is None:
                return None
            return {"top1": k.get("top1"), "top5": k.get("top5"), "verified": True,
                    "source": "manifest keras" if self.manifest else "run.json metrics"}
        if not self.entry or not self.entry.get("verification"):
            return None
        v = self.entry["verification"]
        return {"top1": v.get("top1"), "agreement_with_keras": v.get("agreement_with_keras"),
                "max_abs_diff_vs_keras": v.get("max_abs_diff_vs_keras"),
                "verified": bool(self.entry.get("verified", v.get("passed"))),
                "runtime": v.get("runtime"), "split": v.get("split"), "n": v.get("n"),
                "reason": v.get("reason"), "source": "manifest verification"}


def _read_json(path: Path) -> Optional[dict]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _run_context(export_dir: Path):
    """(manifest, run.json, run_dir) around an export directory, where they exist."""
    manifest = _read_json(export_dir / "manifest.json")
    run_dir = export_dir.parent if (export_dir.parent / "run.json").is_file() else None
    run_json = _read_json(run_dir / "run.json") if run_dir else None
    return manifest, run_json, run_dir


_PRECISION_ORDER = {"fp32": 0, "fp16": 1, "dynamic": 2, "int8": 3}


def resolve_targets(paths: Sequence, want_keras: bool = False) -> List[Target]:
    """Files and run directories -> the artifacts to benchmark (a run: its export/ artifacts,
    and its model.keras where the keras runtime is asked for)."""
    targets: List[Target] = []
    for arg in paths:
        p = Path(arg)
        if not p.exists():
            raise ModelFileError(f"Model file or run directory not found: {p}")
        if p.is_dir():
            targets.extend(_targets_of_dir(p, want_keras))
            continue
        if p.suffix == ".keras":
            manifest, run_json, run_dir = _run_context(p.parent / "export")
            if run_dir is None and (p.parent / "run.json").is_file():
                run_dir, run_json = p.parent, _read_json(p.parent / "run.json")
            targets.append(Target(p, "keras", True, manifest, None, run_json, run_dir))
            continue
        from edgecnn.runtime import model_format
        fmt = model_format(p)  # ModelFileError for empty / truncated-header / non-model files
        manifest, run_json, run_dir = _run_context(p.parent)
        entry = ((manifest or {}).get("artifacts") or {}).get(p.name)
        targets.append(Target(p, fmt, True, manifest, entry, run_json, run_dir))
    return targets


def _targets_of_dir(d: Path, want_keras: bool) -> List[Target]:
    if (d / "export").is_dir() or (d / "run.json").is_file():
        run_dir, export_dir = d, d / "export"
    elif (d / "manifest.json").is_file():
        run_dir, export_dir = (d.parent if (d.parent / "run.json").is_file() else None), d
    else:
        raise RunError(f"{d} is neither a run directory (run.json, export/) nor an export directory "
                       f"(manifest.json); give a run directory or model files.")
    manifest = _read_json(export_dir / "manifest.json") if export_dir.is_dir() else None
    run_json = _read_json(run_dir / "run.json") if run_dir else None
    files = []
    if manifest and manifest.get("artifacts"):
        files = [export_dir / name for name in manifest["artifacts"] if (export_dir / name).is_file()]
    elif export_dir.is_dir():
        files = sorted(list(export_dir.glob("*.tflite")) + list(export_dir.glob("*.onnx")))
    from edgecnn.runtime import model_format
    out = []
    for f in files:
        entry = ((manifest or {}).get("artifacts") or {}).get(f.name)
        out.append(Target(f, model_format(f), False, manifest, entry, run_json, run_dir))
    out.sort(key=lambda t: (t.format != "tflite", _PRECISION_ORDER.get(t.precision or "", 9), t.name))
    if want_keras and run_dir and (run_dir / "model.keras").is_file():
        out.insert(0, Target(run_dir / "model.keras", "keras", False, manifest, None, run_json, run_dir))
    if not out:
        raise RunError(f"{d} has no exported artifacts (export/*.tflite, *.onnx): run 'edgecnn export' first.")
    return out
