"""Checks for untrusted files: plain names, paths that stay inside their folder, bounded JSON,
sha256, and the names and limits of the artifact contract's files."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Optional

from edgecnn.errors import InvalidConfigError, ModelFileError

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
EXPORT_DIR = "export"
BENCH_DIR = "bench"
MANIFEST = "manifest.json"
FILENAME = MANIFEST  # the manifest's file name, as the export modules call it
RUN_SCHEMA = 1
SCHEMA = 1  # manifest schema

FORMATS = {"tflite": ("fp32", "fp16", "dynamic", "int8", "mixed"), "onnx": ("fp32", "int8")}
OUTPUT_KINDS = ("probabilities", "logits")
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64")
NAMED_DATASETS = ("sample", "cifar10", "cifar100", "fashion_mnist")

MAX_JSON_BYTES = 32 << 20
MAX_JSON_DEPTH = 64
MAX_CLASSES = 100_000
MAX_ARTIFACTS = 64

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = ("schema", "model", "run", "trained", "labels", "preprocessing", "keras", "tools", "created", "artifacts")
_ARTIFACT_KEYS = ("format", "precision", "sha256", "bytes", "inputs", "outputs", "output_kind", "verified")
_TENSOR_KEYS = ("name", "shape", "dtype", "scale", "zero_point")
_RUN_KEYS = ("model", "input_shape", "num_classes", "labels", "preprocessing")


# ---------------------------------------------------------------------------- safe primitives
def check_name(name, what: str = "name", error=InvalidConfigError) -> str:
    """A plain name (run, model, artifact): letters, digits, '.', '_', '+', '-'; no path, no dotfile."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise error(f"{what} {name!r} is not a plain name (letters, digits, '.', '_', '+', '-'; at most 128; "
                    f"no '/', no leading '.').")
    return name


def regular_file(path, what: str = "file", error=ModelFileError) -> Path:
    """``path`` if it is a regular file (after symlinks); a FIFO, socket or device is refused unopened.
    The check is the data loaders' own (``edgecnn.data.limits``), raised as ``error``."""
    from edgecnn.data.limits import check_regular
    from edgecnn.errors import DataError

    try:
        check_regular(path, what)
    except DataError as e:
        raise error(e.message) from None
    return Path(path)


def inside(root, rel, what: str = "path", error=ModelFileError) -> Path:
    """``root/rel`` for a relative path that stays inside ``root`` with symlinks resolved."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise error(f"{root}: {what} {rel!r} is not a relative path.")
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise error(f"{root}: {what} {rel!r} points outside its folder; refused.")
    root = Path(root)
    p = root / rel
    real_root = os.path.realpath(root)
    real = os.path.realpath(p)
    if os.path.commonpath([real_root, real]) != real_root:
        raise error(f"{root}: {what} {rel!r} resolves outside its folder (a symlink to {real}); refused.")
    return p


def _depth_ok(obj, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return True


def read_json_file(path, what: str = "JSON file", error=ModelFileError, max_bytes: Optional[int] = None):
    """Parse a JSON object from a regular file of bounded size and depth; one-line errors."""
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    p = Path(path)
    try:
        raw = read_bytes(p, what, max_bytes)
    except DataError as e:
        raise error(e.message) from None
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise error(f"{p}: the {what} is nested too deeply; refused.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{p}: unreadable {what} ({' '.join(str(e).split())[:160]}).") from None
    if not _depth_ok(obj, MAX_JSON_DEPTH):
        raise error(f"{p}: the {what} is nested more than {MAX_JSON_DEPTH} levels deep; refused.")
    if not isinstance(obj, dict):
        raise error(f"{p}: the {what} is not a JSON object.")
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def sha256_ok(value) -> bool:
    return isinstance(value, str) and bool(_SHA_RE.match(value))


def check_file_sha256(path, expected, what: str, error=ModelFileError) -> Path:
    """``path`` if it is a regular file whose sha256 is ``expected`` (which must be a sha256)."""
    from edgecnn.core.files import sha256_file

    if not sha256_ok(expected):
        raise error(f"{path}: the {what} has no valid sha256 recorded ({expected!r}); cannot trust it. Re-export.")
    regular_file(path, what, error)
    if sha256_file(path) != expected:
        raise error(f"{path}: its sha256 differs from the one recorded for it; the file was changed or replaced "
                    f"after it was written. Re-export (or retrain) instead of editing artifacts by hand.")
    return Path(path)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_object(obj, keys, bad) -> None:
    """A JSON object with every key in ``keys`` and a plain model name in 'model'."""
    if not isinstance(obj, dict):
        bad("not a JSON object")
    missing = [k for k in keys if k not in obj]
    if missing:
        bad(f"missing keys {missing}")
    if not isinstance(obj["model"], str) or not _NAME_RE.match(obj["model"]):
        bad(f"'model' {obj['model']!r} is not a model name")
