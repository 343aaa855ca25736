"""Export manifests: ``export/manifest.json`` describes every artifact (sha256, bytes, tensors,
preprocessing, labels, verification); the only writer, reader and validator.

``preprocessing`` is what every artifact takes (the camera input: pixels / 255, the run's
normalization folded into the graphs, ``camera_input`` saying how); ``keras.preprocessing`` is
what the run's Keras model, the verification reference, takes. Each artifact's ``metadata``
records that its TFLite Metadata or ONNX metadata_props were written; its ``sha256`` covers the
file with them."""
from __future__ import annotations

import datetime
import math
import os
import re
from pathlib import Path
from typing import Dict, Optional

from edgecnn.contract.checks import (EXPORT_DIR, FORMATS, MANIFEST, MAX_ARTIFACTS, MAX_CLASSES, MODEL_FILE,
                                     OUTPUT_KINDS, RUN_FILE, SCHEMA, TENSOR_DTYPES, _ARTIFACT_KEYS, _NAME_RE,
                                     _TENSOR_KEYS, _TOP_KEYS, Anything, Bool, Int, Obj, Str, _check_object, _is_int,
                                     _is_num, check, check_file_sha256, check_labels, inside, read_json_file,
                                     regular_file, sha256_ok)
from edgecnn.contract.keras_files import load_keras
from edgecnn.contract.run import dataset_source, load_run, validate_spec
from edgecnn.errors import ModelFileError, RunError

# ---------------------------------------------------------------------------- manifests
def artifact_name(model: str, fmt: str, precision: str) -> str:
    """``<model>_<precision>.<tflite|onnx>``, e.g. ``quicknet_int8.tflite``."""
    if fmt not in FORMATS or precision not in FORMATS[fmt]:
        raise ValueError(f"no {precision} {fmt} artifact")
    return f"{model}_{precision}.{fmt}"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def new_manifest(model: str, *, run=None, trained: bool, labels, preprocessing: dict, tools: Dict[str, str],
                 dataset: Optional[dict] = None) -> dict:
    """A manifest without artifacts. ``run`` is stored relative to the export folder ('..')."""
    return {"schema": SCHEMA, "model": model, "run": run, "trained": bool(trained),
            "labels": list(labels), "preprocessing": dict(preprocessing), "keras": {"top1": None, "top5": None},
            "tools": dict(tools), "created": now(), "dataset": dataset, "artifacts": {}}


def artifact_entry(path, fmt: str, precision: str, inputs, outputs, output_kind: str = "probabilities") -> dict:
    """The entry of one written artifact (not yet verified); ``output_kind`` as OUTPUT_KINDS."""
    from edgecnn.core.files import sha256_file

    p = Path(path)
    return {"format": fmt, "precision": precision, "sha256": sha256_file(p), "bytes": p.stat().st_size,
            "inputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in inputs],
            "outputs": [t.to_dict() if hasattr(t, "to_dict") else dict(t) for t in outputs],
            "output_kind": output_kind, "verification": None, "verified": False}


def export_root(export_dir) -> Path:
    """The folder a manifest's paths must stay inside: the run around ``<run>/export``, else the export."""
    e = Path(export_dir)
    if e.name == EXPORT_DIR and (e.parent / RUN_FILE).is_file():
        return e.parent
    return e


def manifest_file(path_or_dir) -> Path:
    p = Path(path_or_dir)
    if p.is_dir():
        if (p / MANIFEST).exists():
            return p / MANIFEST
        if (p / EXPORT_DIR / MANIFEST).exists():  # a run directory
            return p / EXPORT_DIR / MANIFEST
        return p / MANIFEST
    return p


manifest_path = manifest_file


def write_manifest(export_dir, manifest: dict) -> Path:
    from edgecnn.core.files import atomic_write_json

    validate(manifest, where=str(Path(export_dir) / MANIFEST))
    return atomic_write_json(Path(export_dir) / MANIFEST, manifest)


def read_manifest(path_or_dir, *, check_files: bool = False) -> dict:
    """Read and validate a manifest (a file, an export dir, or a run dir holding export/).

    ``check_files``: also check that every artifact is a regular file inside the folder with the
    recorded size and sha256. Raises ``ModelFileError`` with one line naming what is wrong.
    """
    p = manifest_file(path_or_dir)
    if not p.exists():
        raise ModelFileError(f"{p}: no {MANIFEST}; export the model first ('edgecnn export MODEL_OR_RUN').")
    m = read_json_file(p, MANIFEST, ModelFileError)
    validate(m, where=str(p))
    if check_files:
        for name in m["artifacts"]:
            artifact_path(p.parent, m, name)
    return m


def artifact_path(export_dir, manifest: dict, name: str, *, check: bool = True) -> Path:
    """The path of a listed artifact, inside the export folder, its size and sha256 checked."""
    export_dir = Path(export_dir)
    arts = manifest["artifacts"]
    if name not in arts:
        raise ModelFileError(f"{name} is not listed in {export_dir / MANIFEST} (it lists: "
                             f"{', '.join(sorted(arts)) or 'nothing'}).")
    p = inside(export_dir, name, "artifact")
    if not p.exists():
        raise ModelFileError(f"{p} is listed in the manifest but missing.")
    regular_file(p, "artifact")
    if check:
        a = arts[name]
        if p.stat().st_size != a["bytes"]:
            raise ModelFileError(f"{p}: {p.stat().st_size} bytes, but the manifest records {a['bytes']}, so its sha256 "
                                 f"cannot match; the copy is truncated or from another export.")
        check_file_sha256(p, a["sha256"], "artifact")
    return p


def keras_reference(export_dir, manifest: dict) -> Optional[Path]:
    """The Keras model file the artifacts came from (``keras.model_file``, relative to the manifest),
    which must lie inside the export folder or the run folder around it."""
    ref = (manifest.get("keras") or {}).get("model_file")
    if ref is None:
        return None
    export_dir = Path(export_dir)
    if not isinstance(ref, str) or not ref or os.path.isabs(ref) or "\\" in ref or "\x00" in ref:
        raise ModelFileError(f"{export_dir / MANIFEST}: keras.model_file {ref!r} is not a relative path.")
    root = os.path.realpath(export_root(export_dir))
    real = os.path.realpath(export_dir / ref)
    if os.path.commonpath([root, real]) != root:
        raise ModelFileError(f"{export_dir / MANIFEST}: keras.model_file {ref!r} points outside its export/run "
                             f"folder; refused.")
    return export_dir / ref


def reference_model(export_dir, manifest: dict, *, unsafe: bool = False):
    """Load the Keras model of ``keras.model_file``: the run's own (sha256 from run.json), or a copy in
    the export (sha256 from the manifest's ``keras.model_sha256``)."""
    p = keras_reference(export_dir, manifest)
    if p is None:
        raise RunError(f"{export_dir}: its manifest names no Keras model (keras.model_file); re-export.")
    run = run_of_export(export_dir)
    if run is not None and os.path.realpath(p) == os.path.realpath(run / MODEL_FILE):
        return load_run(run).load_model(unsafe=unsafe)
    if not p.exists():
        raise RunError(f"{p}: the Keras model the artifacts came from is missing; re-export.")
    check_file_sha256(p, (manifest.get("keras") or {}).get("model_sha256"), "reference Keras model")
    return load_keras(p, unsafe=unsafe)


def manifest_dataset(manifest: dict, export_dir) -> Optional[dict]:
    """``load_dataset`` keyword arguments (with ``source``) that give back the held-out split the
    manifest records (its path relative to the export folder), or None when it records none."""
    from edgecnn.data.datasets import TEST_FRACTION

    rec = manifest.get("dataset")
    if not isinstance(rec, dict):
        return None
    kw = {"source": dataset_source(rec, export_dir, str(Path(export_dir) / MANIFEST)),
          "val_fraction": rec.get("val_fraction") if rec.get("val_fraction") is not None else 0.1,
          "test_fraction": rec.get("test_fraction") if rec.get("test_fraction") is not None else TEST_FRACTION,
          "seed": rec.get("seed") or 0, "max_train": rec.get("max_train"), "max_test": rec.get("max_test"),
          "skip_bad": bool(rec.get("skip_bad"))}
    if rec.get("classes") is not None:
        if rec["classes"] != manifest["labels"]:
            raise RunError(f"{export_dir}: its dataset record's classes differ from its labels; refused.")
        kw["classes"] = list(manifest["labels"])
    return kw


def run_of_export(export_dir) -> Optional[Path]:
    """The run folder an export belongs to: ``<run>/export`` with a run.json, else None."""
    root = export_root(export_dir)
    return root if root != Path(export_dir) else None


def validate(m, where: str = "manifest") -> None:
    """Every field of a manifest typed and bounded; tensors consistent with the preprocessing."""
    def bad(msg):
        raise ModelFileError(f"{where}: {msg}")

    _check_object(m, _TOP_KEYS, bad)
    if m["schema"] != SCHEMA:
        bad(f"schema {m['schema']!r}, this edgecnn reads schema {SCHEMA}")
    if m["run"] is not None and not isinstance(m["run"], str):
        bad("'run' must be null or a string")
    if not isinstance(m["trained"], bool):
        bad("'trained' must be true or false")
    labels = m["labels"]
    if not (isinstance(labels, list) and 1 <= len(labels) <= MAX_CLASSES):
        bad(f"'labels' must be a non-empty list of at most {MAX_CLASSES} strings")
    check_labels(labels, where, ModelFileError)
    validate_spec(m["preprocessing"], where)
    spec = m["preprocessing"]
    for key in ("keras", "tools"):
        if not isinstance(m[key], dict):
            bad(f"'{key}' must be an object")
    ref = m["keras"].get("model_file")
    if ref is not None and not isinstance(ref, str):
        bad("'keras.model_file' must be a string")
    if m.get("dataset") is not None:
        _validate_dataset_record(m["dataset"], bad)
    pol = m.get("verification_policy")
    if pol is not None:
        if not isinstance(pol, dict):
            bad("'verification_policy' must be an object")
        if "max_drop" in pol and not (_is_num(pol["max_drop"]) and pol["max_drop"] >= 0):
            bad(f"'verification_policy.max_drop' {pol['max_drop']!r} must be a finite number >= 0")
    kspec = m["keras"].get("preprocessing")
    if kspec is not None:
        validate_spec(kspec, where + " (keras)")
        theirs, ours = [*kspec["input_size"], kspec.get("channels", 3)], [*spec["input_size"], spec.get("channels", 3)]
        if theirs != ours:
            bad(f"'keras.preprocessing' takes {theirs} images, the artifacts' preprocessing {ours}; refused")
    if m.get("camera_input") is not None and not isinstance(m["camera_input"], dict):
        bad("'camera_input' must be null or an object")
    arts = m["artifacts"]
    if not isinstance(arts, dict):
        bad("'artifacts' must be an object")
    if len(arts) > MAX_ARTIFACTS:
        bad(f"{len(arts)} artifacts; at most {MAX_ARTIFACTS}")
    h, w = spec["input_size"]
    c = spec.get("channels", 3)
    for name, a in arts.items():
        if not _NAME_RE.fullmatch(name) or name in (MANIFEST,):
            bad(f"artifact name {name!r} must be a plain file name")
        if not isinstance(a, dict):
            bad(f"artifact {name}: not an object")
        miss = [k for k in _ARTIFACT_KEYS if k not in a]
        if miss:
            bad(f"artifact {name}: missing keys {miss}")
        check(a, _ARTIFACT_SPEC, where, ModelFileError, path=f"artifacts.{name}")
        if not (isinstance(a["format"], str) and isinstance(a["precision"], str) and a["format"] in FORMATS
                and a["precision"] in FORMATS[a["format"]]):
            bad(f"artifact {name}: unknown format/precision {a['format']}/{a['precision']}")
        if not name.endswith("." + a["format"]):
            bad(f"artifact {name}: the name does not end in .{a['format']}")
        if not sha256_ok(a["sha256"]):
            bad(f"artifact {name}: 'sha256' {a['sha256']!r} is missing or not a sha256; cannot trust the file")
        if not (_is_int(a["bytes"]) and a["bytes"] > 0):
            bad(f"artifact {name}: 'bytes' must be a positive integer")
        if a["output_kind"] not in OUTPUT_KINDS:
            bad(f"artifact {name}: output_kind {a['output_kind']!r} must be one of {', '.join(OUTPUT_KINDS)}")
        if not isinstance(a["verified"], bool):
            bad(f"artifact {name}: 'verified' must be true or false")
        on = a.get("verified_on")
        if on is not None and not (isinstance(on, dict) and len(on) <= 16 and all(
                isinstance(v, dict) and isinstance(v.get("passed"), bool) for v in on.values())):
            bad(f"artifact {name}: 'verified_on' must be an object of verifications with 'passed'")
        md = a.get("metadata")
        if md is not None and not (isinstance(md, dict) and isinstance(md.get("written"), bool)):
            bad(f"artifact {name}: 'metadata' must be null or an object with 'written' (true or false)")
        for side in ("inputs", "outputs"):
            ts = a[side]
            if not (isinstance(ts, list) and len(ts) == 1):
                bad(f"artifact {name}: '{side}' must list exactly one tensor")
            t = ts[0]
            if not isinstance(t, dict) or any(k not in t for k in _TENSOR_KEYS):
                bad(f"artifact {name}: tensor entries need {list(_TENSOR_KEYS)}")
            shape = t["shape"]
            if not (isinstance(shape, list) and 1 <= len(shape) <= 8 and all(_is_int(v) and -1 <= v <= 1 << 20
                                                                              for v in shape)):
                bad(f"artifact {name}: {side} shape {shape!r} is not a list of small integers")
            if t["dtype"] not in TENSOR_DTYPES:
                bad(f"artifact {name}: {side} dtype {t['dtype']!r} is not one of {', '.join(TENSOR_DTYPES)}")
            if not (_is_num(t["scale"]) and t["scale"] >= 0) or not _is_int(t["zero_point"]):
                bad(f"artifact {name}: {side} scale/zero_point must be finite numbers")
        ishape = a["inputs"][0]["shape"]
        want = [h, w, c] if spec.get("layout", "NHWC") == "NHWC" else [c, h, w]
        if len(ishape) != 4 or ishape[1:] != want:
            bad(f"artifact {name}: input shape {ishape} disagrees with the preprocessing input_size {[h, w]} and "
                f"{c} channel(s); refused")
        oshape = a["outputs"][0]["shape"]
        if len(oshape) < 2 or int(math.prod(v for v in oshape[1:])) != len(labels):
            bad(f"artifact {name}: output shape {oshape} does not give one score per label ({len(labels)} labels)")
        v = a.get("verification")
        if v is not None and (not isinstance(v, dict) or not isinstance(v.get("passed"), bool)):
            bad(f"artifact {name}: 'verification' must be null or an object with 'passed'")
        if a["verified"] and not (isinstance(v, dict) and v.get("passed") is True):
            bad(f"artifact {name}: marked verified without a passed verification")
        if a["precision"] == "mixed":
            _validate_mixed_entry(name, a, bad)
    if m.get("recommended") is not None:
        _validate_recommended(m["recommended"], arts, bad)
    skipped = m.get("skipped")
    if skipped is not None and not (isinstance(skipped, dict) and len(skipped) <= 16 and all(
            isinstance(k, str) and _TARGET_RE.fullmatch(k) and _one_line(v)
            for k, v in skipped.items())):
        bad("'skipped' must map format keys to one line of printable text")


def _validate_dataset_record(rec, bad) -> None:
    """The held-out dataset a manifest names: typed fields (they become load_dataset arguments)."""
    if not isinstance(rec, dict):
        bad("'dataset' must be null or an object")
    for key in ("val_fraction", "test_fraction"):
        v = rec.get(key)
        if v is not None and not (_is_num(v) and 0 <= v < 1):
            bad(f"'dataset.{key}' {v!r} must be a fraction in [0, 1)")
    for key in ("seed", "max_train", "max_test"):
        v = rec.get(key)
        if v is not None and not (_is_int(v) and v >= 0):
            bad(f"'dataset.{key}' {v!r} must be null or an integer >= 0")
    if rec.get("skip_bad") is not None and not isinstance(rec["skip_bad"], bool):
        bad("'dataset.skip_bad' must be true or false")
    for key in ("data_arg", "data_path"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            bad(f"'dataset.{key}' must be null or a string")
    classes = rec.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        bad("'dataset.classes' must be a list of strings")


FLOAT_OP_REASONS = ("speed", "accuracy")
# The types of an artifact entry's fields, checked before their values are looked up in the tables
# of formats and kinds (a list where a name belongs was a TypeError); the values follow in ``validate``.
_ARTIFACT_SPEC = Obj({"format": Str(16), "precision": Str(16), "sha256": Str(64), "bytes": Int(),
                      "inputs": Anything(), "outputs": Anything(), "output_kind": Str(16), "verified": Bool()},
                     extra=True)


def _validate_mixed_entry(name: str, a: dict, bad) -> None:
    """A mixed-precision entry: its float ops (op, node, why) and the quantization report it names
    (a plain file name beside the artifact, with its sha256)."""
    ops = a.get("float_ops")
    if not (isinstance(ops, list) and len(ops) <= 100_000):
        bad(f"artifact {name}: 'float_ops' must be a list")
    for f in ops:
        if not (isinstance(f, dict) and isinstance(f.get("op"), str) and isinstance(f.get("node"), str)
                and len(f["op"]) <= 64 and len(f["node"]) <= 4096 and f.get("why") in FLOAT_OP_REASONS):
            bad(f"artifact {name}: each float op needs 'op', 'node' (strings) and 'why' "
                f"({' or '.join(FLOAT_OP_REASONS)})")
    rep = a.get("quant_report")
    if rep is not None:
        if not (isinstance(rep, str) and _NAME_RE.fullmatch(rep) and rep != MANIFEST):
            bad(f"artifact {name}: 'quant_report' must be a plain file name")
        if not sha256_ok(a.get("quant_report_sha256")):
            bad(f"artifact {name}: 'quant_report_sha256' is missing or not a sha256")


def _one_line(v, limit: int = 400) -> bool:
    """One line of printable text: no C0/C1 control, DEL, line separator or bidi override
    (``edgecnn.core.text.unwanted_char``), at most ``limit`` characters."""
    from edgecnn.core.text import unwanted_char

    return isinstance(v, str) and len(v) <= limit and unwanted_char(v) is None


_TARGET_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,31}$")


def _validate_recommended(rec, artifacts: dict, bad) -> None:
    """``recommended`` (edgecnn.benchmark.recommend): per target (a board name or "host") the
    artifact to ship, listed and verified, every figure a finite number of the right range, the
    reason one line of printable text."""
    def num(v, lo=0.0):
        return _is_num(v) and v >= lo

    if not isinstance(rec, dict) or len(rec) > 64:
        bad("'recommended' must be an object of targets")
    for target, r in rec.items():
        if not (isinstance(target, str) and _TARGET_RE.fullmatch(target)):
            bad(f"recommended: {str(target)[:40]!r} is not a target name")
        if not isinstance(r, dict):
            bad(f"recommended.{target}: not an object")
        name = r.get("artifact")
        if not isinstance(name, str) or name not in artifacts:
            bad(f"recommended.{target}: artifact {str(name)[:80]!r} is not an artifact of this export")
        if not artifacts[name].get("verified"):
            bad(f"recommended.{target}: {name} is not verified; only a verified artifact can be recommended")
        if r.get("source") not in ("measured", "predicted"):
            bad(f"recommended.{target}: 'source' must be measured or predicted")
        for key in ("latency_ms", "fps"):
            d = r.get(key)
            if not (isinstance(d, dict) and 1 <= len(d) <= 16 and all(  # '²' is a digit to isdigit, not to int()
                    isinstance(k, str) and k.isascii() and k.isdigit() and 1 <= int(k) <= 256 and num(v)
                    for k, v in d.items())):
                bad(f"recommended.{target}: '{key}' must map thread counts to positive numbers")
        if not _one_line(r.get("reason")):
            bad(f"recommended.{target}: 'reason' must be one line of printable text")
        for key, lo in (("top1", 0.0), ("peak_rss_mb", 0.0), ("error_pct", 0.0)):
            if r.get(key) is not None and not num(r[key], lo):
                bad(f"recommended.{target}: '{key}' must be null or a number >= {lo:g}")
        if not (isinstance(r.get("bytes"), int) and r["bytes"] > 0):
            bad(f"recommended.{target}: 'bytes' must be a positive integer")


def quant_report_path(export_dir, manifest: dict, name: str) -> Optional[Path]:
    """The quantization report a mixed artifact names, inside the export folder, its sha256
    checked (None when the entry names none)."""
    from edgecnn.core.files import sha256_file

    a = manifest["artifacts"][name]
    rep = a.get("quant_report")
    if rep is None:
        return None
    p = inside(export_dir, rep, "quantization report")
    if not p.exists():
        raise ModelFileError(f"{p}: the quantization report of {name} is missing.")
    regular_file(p, "quantization report")
    if sha256_file(p) != a["quant_report_sha256"]:
        raise ModelFileError(f"{p}: sha256 does not match the manifest's record for {name}; refusing to trust it.")
    return p


