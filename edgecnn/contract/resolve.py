"""One resolver: a run, an export folder, an artifact file or a model name -> paths."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from edgecnn.contract.checks import _NAME_RE, EXPORT_DIR, MANIFEST, RUN_FILE, regular_file
from edgecnn.contract.manifest import read_manifest, run_of_export
from edgecnn.contract.run import Run, find_latest_run, load_run, runs_root
from edgecnn.errors import ModelFileError, RunError

# ---------------------------------------------------------------------------- one resolver
@dataclasses.dataclass
class Resolved:
    """What a command's target names: a run, an export, a single artifact, or a mix."""

    target: str
    run_dir: Optional[Path] = None
    export_dir: Optional[Path] = None
    manifest: Optional[dict] = None
    artifact: Optional[Path] = None  # a single artifact file the target named

    @property
    def run(self) -> Optional[Run]:
        return load_run(self.run_dir) if self.run_dir is not None else None

    def require_manifest(self, error=ModelFileError) -> dict:
        if self.manifest is None:
            where = self.export_dir or self.run_dir or self.target
            raise error(f"{where}: no {MANIFEST}; export the model first ('edgecnn export {self.target}').")
        return self.manifest


def resolve(target, runs_dir=None, *, manifest: bool = True, error=RunError) -> Resolved:
    """Turn a run dir, run.json, export dir, manifest.json, artifact file or model name into paths.

    A model name means its newest trained run under the runs root. The manifest (when the
    target has one and ``manifest`` is true) is read and validated here, once for every command.
    """
    ref = str(target)
    p = Path(ref)
    r = Resolved(ref)
    if p.name in (RUN_FILE, MANIFEST) and p.exists() and not p.is_dir():
        p = p.parent
    if p.is_dir():
        if (p / RUN_FILE).exists():
            r.run_dir = p
            if (p / EXPORT_DIR / MANIFEST).exists():
                r.export_dir = p / EXPORT_DIR
        elif (p / MANIFEST).exists():
            r.export_dir = p
            r.run_dir = run_of_export(p)
        elif (p / EXPORT_DIR / MANIFEST).exists():  # a run folder whose run.json stayed behind
            r.export_dir = p / EXPORT_DIR
        else:
            raise error(f"{p}: neither a run directory ({RUN_FILE}) nor an export folder ({MANIFEST}); no "
                        f"manifest.json to read.")
    elif p.exists():
        regular_file(p, "model file")
        r.artifact = p
        if (p.parent / MANIFEST).exists():
            r.export_dir = p.parent
            r.run_dir = run_of_export(p.parent)
    elif "/" not in ref and os.sep not in ref and _NAME_RE.fullmatch(ref):
        from edgecnn.models.registry import get_entry

        latest = find_latest_run(ref, runs_dir)
        if latest is None:
            get_entry(ref)  # an unknown model name fails with did-you-mean
            raise RunError(f"No trained run of '{ref}' under {runs_root(runs_dir)}/; train one with "
                           f"'edgecnn train {ref}' or pass a run directory.")
        r.run_dir = latest
        if (latest / EXPORT_DIR / MANIFEST).exists():
            r.export_dir = latest / EXPORT_DIR
    else:
        raise error(f"{p}: no such run, export folder or file.")
    if r.run_dir is not None:
        load_run(r.run_dir)  # validated once, here
    if manifest and r.export_dir is not None:
        r.manifest = read_manifest(r.export_dir / MANIFEST)
        if r.artifact is not None and r.artifact.name not in r.manifest["artifacts"]:
            raise ModelFileError(f"{r.artifact.name} is not listed in {r.export_dir / MANIFEST}.")
    return r


def check_loaded_tensors(inputs, outputs, entry: dict, where: str, error=ModelFileError) -> None:
    """The tensors a runtime reports for an artifact are the ones its manifest entry records
    (batch dimension aside), so a swapped or mislabelled model is caught before it is fed."""
    def key(t):
        d = t.to_dict() if hasattr(t, "to_dict") else t
        return [int(v) for v in list(d["shape"])[1:]], d["dtype"]

    got = [key(t) for t in inputs], [key(t) for t in outputs]
    want = [key(t) for t in entry["inputs"]], [key(t) for t in entry["outputs"]]
    if got != want:
        raise error(f"{where}: the model's tensors {got} differ from its manifest entry {want}; refused.")


def resolve_run(ref, runs_dir=None) -> Path:
    """A run path, or a model name meaning its latest trained run."""
    t = resolve(ref, runs_dir)
    if t.run_dir is None:
        raise RunError(f"{ref}: not a run directory (no {RUN_FILE}).")
    return t.run_dir


# ---------------------------------------------------------------------------- a file where a run is expected
def model_file_kind(path) -> Optional[str]:
    """'tflite', 'onnx' or 'keras' for a model file at ``path`` (from its first bytes, then its
    name), None for anything else (a folder, a missing path, another file)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head[4:8] == b"TFL3":
        return "tflite"
    if p.suffix.lower() == ".onnx":
        return "onnx"
    if head[:4] == b"PK\x03\x04" or p.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return "keras"
    return None


def refuse_artifact(target, command: str, error=RunError) -> None:
    """One line naming the right command when ``command`` (which works on runs, export folders or
    Keras models) is given a model file it does not take: an exported artifact anywhere but where
    an artifact is read, a Keras file where a run is needed."""
    kind = model_file_kind(target)
    if kind is None or (kind == "keras" and command == "import"):
        return
    name = Path(str(target)).name
    if kind == "keras":
        raise error(f"{target} is a Keras model file, not a run: make it one first with 'edgecnn import {target} "
                    f"--data PATH --preprocess SPEC', then 'edgecnn {command} runs/<name>/<run>'.")
    measure = (f"measure it with 'edgecnn eval {target} --data PATH', time it with 'edgecnn benchmark {target}', "
               f"run it with 'edgecnn classify {target} IMAGE'")
    if command == "verify":
        raise error(f"{target} is one {kind} artifact; 'edgecnn verify' re-verifies every artifact of a run or an "
                    f"export folder ('edgecnn verify {Path(str(target)).parent}'); to measure this one: 'edgecnn eval "
                    f"{target} --data PATH'.")
    if command == "bundle":
        raise error(f"{target} is one {kind} artifact; 'edgecnn bundle android' takes its run or export folder: "
                    f"'edgecnn bundle android {Path(str(target)).parent} --artifact {name}'.")
    what = {"import": "reads Keras models (.keras)", "export": "converts a run or a zoo model",
            "train": "trains a zoo model ('edgecnn models')", "pipeline": "runs the stages on a zoo model or a run",
            "eval": "evaluates a run, or a .tflite/.onnx artifact"}.get(command, "takes a run")
    raise error(f"{target} is already an exported {kind} artifact, and 'edgecnn {command}' {what}: {measure}.")
