"""export/manifest.json: what the device side reads about every artifact (no TensorFlow here).

Schema 1::

    {"schema": 1, "model", "run" (path or null), "trained": bool, "labels": [...],
     "preprocessing": PreprocessSpec.to_dict(), "keras": {"top1", "top5", ...},
     "tools": {name: version}, "created",
     "artifacts": {"<model>_<precision>.<tflite|onnx>": {
         "format": "tflite"|"onnx", "precision": "fp32"|"fp16"|"dynamic"|"int8",
         "sha256", "bytes", "inputs": [TensorInfo.to_dict()], "outputs": [...],
         "output_kind": "probabilities",
         "verification": {"runtime", "split", "n", "top1", "agreement_with_keras",
                          "max_abs_diff_vs_keras", "passed", "reason"},
         "verified": bool, ...}}}

Extra keys (``deploy_rewrite``, ``opset``, ``int8_route``, ``compression``) may appear; readers
ignore what they do not know. Accuracies (top1, agreement) are fractions in [0, 1].
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Dict

from edgecnn.errors import ModelFileError
from edgecnn.io import atomic_write_json, read_json, sha256_file

SCHEMA = 1
FILENAME = "manifest.json"
FORMATS = {"tflite": ("fp32", "fp16", "dynamic", "int8"), "onnx": ("fp32", "int8")}
_TOP_KEYS = ("schema", "model", "run", "trained", "labels", "preprocessing", "keras", "tools", "created", "artifacts")
_ARTIFACT_KEYS = ("format", "precision", "sha256", "bytes", "inputs", "outputs", "output_kind", "verified")
_TENSOR_KEYS = ("name", "shape", "dtype", "scale", "zero_point")


def artifact_name(model: str, fmt: str, precision: str) -> str:
    """``<model>_<precision>.<tflite|onnx>``, e.g. ``quicknet_int8.tflite``."""
    if fmt not in FORMATS or precision not in FORMATS[fmt]:
        raise ValueError(f"no {precision} {fmt} artifact")
    return f"{model}_{precision}.{fmt}"



def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def new_manifest(model: str, *, run=None, trained: bool, labels, preprocessing: dict, tools: Dict[str, str]) -> dict:
    return {"schema": SCHEMA, "model": model, "run": str(run) if run else None, "trained": bool(trained),
            "labels": list(labels), "preprocessing": dict(preprocessing), "keras": {"top1": None, "top5": None},
            "tools": dict(tools), "created": now(), "artifacts": {}}


def artifact_entry(path, fmt: str, precision: str, inputs, outputs) -> dict:
    """The entry of one written artifact (not yet verified)."""
    p = Path(path)
    return {"format": fmt, "precision": precision, "sha256": sha256_file(p), "bytes": p.stat().st_size,
            "inputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in inputs],
            "outputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in outputs],
            "output_kind": "probabilities", "verification": None, "verified": False}


def write_manifest(export_dir, manifest: dict) -> Path:
    validate(manifest, where=str(Path(export_dir) / FILENAME))
    return atomic_write_json(Path(export_dir) / FILENAME, manifest)


def manifest_path(path_or_dir) -> Path:
    p = Path(path_or_dir)
    if p.is_dir():
        if (p / FILENAME).is_file():
            return p / FILENAME
        if (p / "export" / FILENAME).is_file():  # a run directory
            return p / "export" / FILENAME
        return p / FILENAME
    return p


def read_manifest(path_or_dir, *, check_files: bool = False) -> dict:
    """Read and validate a manifest (a file, an export dir, or a run dir holding export/).

    ``check_files``: also check that every artifact exists beside it with the recorded size and
    sha256. Raises ``ModelFileError`` with one line naming what is wrong.
    """
    p = manifest_path(path_or_dir)
    if not p.is_file():
        raise ModelFileError(f"{p}: no manifest.json; export the model first ('edgecnn export MODEL_OR_RUN').")
    try:
        m = read_json(p)
    except (ValueError, OSError) as e:
        raise ModelFileError(f"{p}: unreadable manifest ({e}).") from None
    validate(m, where=str(p))
    if check_files:
        for name, a in m["artifacts"].items():
            f = p.parent / name
            if not f.is_file():
                raise ModelFileError(f"{p}: artifact {name} is missing.")
            if f.stat().st_size != a["bytes"] or sha256_file(f) != a["sha256"]:
                raise ModelFileError(f"{f}: size or sha256 differs from the manifest; the file changed after export.")
    return m


def validate(m: dict, where: str = "manifest") -> None:
    def bad(msg):
        raise ModelFileError(f"{where}: {msg}")
    if not isinstance(m, dict):
        bad("not a JSON object")
    missing = [k for k in _TOP_KEYS if k not in m]
    if missing:
        bad(f"missing keys {missing}")
    if m["schema"] != SCHEMA:
        bad(f"schema {m['schema']!r}, this edgecnn reads schema {SCHEMA}")
    if not isinstance(m["labels"], list) or not m["labels"]:
        bad("'labels' must be a non-empty list")
    if not isinstance(m["preprocessing"], dict) or "input_size" not in m["preprocessing"]:
        bad("'preprocessing' must be a PreprocessSpec dict")
    if not isinstance(m["artifacts"], dict):
        bad("'artifacts' must be an object")
    for name, a in m["artifacts"].items():
        if not isinstance(a, dict):
            bad(f"artifact {name}: not an object")
        miss = [k for k in _ARTIFACT_KEYS if k not in a]
        if miss:
            bad(f"artifact {name}: missing keys {miss}")
        if a["format"] not in FORMATS or a["precision"] not in FORMATS[a["format"]]:
            bad(f"artifact {name}: unknown format/precision {a['format']}/{a['precision']}")
        if "/" in name or "\\" in name or name.startswith("."):
            bad(f"artifact name {name!r} must be a plain file name")
        for t in list(a["inputs"]) + list(a["outputs"]):
            if not isinstance(t, dict) or any(k not in t for k in _TENSOR_KEYS):
                bad(f"artifact {name}: tensor entries need {list(_TENSOR_KEYS)}")
        v = a.get("verification")
        if v is not None and (not isinstance(v, dict) or "passed" not in v):
            bad(f"artifact {name}: 'verification' must be null or an object with 'passed'")


def tool_versions(*names: str) -> Dict[str, str]:
    """Installed versions of the named distributions (those not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names or ("edgecnn", "tensorflow", "tf_keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert",
                       "tensorflow-model-optimization", "numpy"):
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out
