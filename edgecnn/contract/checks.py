"""Checks for untrusted files: plain names, paths that stay inside their folder, bounded JSON,
sha256, typed specs of every structured input, and the names and limits of the artifact
contract's files.

Every structured file or value edgecnn reads (run.json, manifest.json, TF_CONFIG, the emulator's
calibration, cost tables, benchmark results, the recipe a run records, labels and hosts files)
goes through the same two steps: ``read_json_file`` (or ``read_text_lines`` for line-based
files: a regular file only, never a FIFO or a device, opened non-blocking, of bounded size, depth
and line count) and ``check`` against a typed spec built from the small classes below (``Obj``,
``MapOf``, ``ListOf``, ``Str``, ``Int``, ``Num``, ``Bool``, ``Opt``, ``Anything``): every field's type and
range, strings bounded and free of control characters, and one error line that names the file
and the field (``TF_CONFIG: 'cluster.worker[1]' port 99999 is not from 1 to 65535``). Checks
across fields (labels against num_classes, shapes against the preprocessing) follow in the
reader itself."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Optional

from edgecnn.core.text import describe_char, unwanted_char
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
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
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
    obj = parse_json(raw, str(p), error, what=what)
    if not isinstance(obj, dict):
        raise error(f"{p}: the {what} is not a JSON object.")
    return obj


def parse_json(data, where: str, error, *, what: Optional[str] = None, max_depth: int = MAX_JSON_DEPTH):
    """The JSON value of ``data`` (UTF-8 bytes or text): no NaN or Infinity, at most ``max_depth``
    levels of nesting, and one ``error`` line naming ``where`` (and ``what`` it is) otherwise. Every
    JSON document edgecnn reads (files, TF_CONFIG, members of a model file, metadata) is parsed here."""
    the = f"the {what} is " if what else ""
    try:
        obj = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data,
                         parse_constant=_reject_constant)
    except RecursionError:
        raise error(f"{where}: {the}nested too deeply; refused.") from None
    except (ValueError, UnicodeDecodeError) as e:
        reason = " ".join(str(e).split())[:160]
        raise error(f"{where}: unreadable {what} ({reason})." if what else f"{where}: not JSON ({reason}).") from None
    if not _depth_ok(obj, max_depth):
        raise error(f"{where}: {the}nested more than {max_depth} levels deep; refused.")
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def sha256_ok(value) -> bool:
    return isinstance(value, str) and bool(_SHA_RE.fullmatch(value))


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
    """A finite JSON number; an integer too large for a float is not one (no OverflowError)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _check_object(obj, keys, bad) -> None:
    """A JSON object with every key in ``keys`` and a plain model name in 'model'."""
    if not isinstance(obj, dict):
        bad("not a JSON object")
    missing = [k for k in keys if k not in obj]
    if missing:
        bad(f"missing keys {missing}")
    if not isinstance(obj["model"], str) or not _NAME_RE.fullmatch(obj["model"]):
        bad(f"'model' {obj['model']!r} is not a model name")


# ---------------------------------------------------------------------------- typed specs
MAX_TEXT_CHARS = 256    # a name, label, host or other one-line string field
MAX_LABEL_CHARS = 256
MAX_ITEMS = 100_000     # entries of a list or object when a spec names no tighter bound


def _quote(v, limit: int = 60) -> str:
    """A value from a file, quoted for an error message (bounded, never raising)."""
    try:
        r = repr(v)
    except ValueError:  # an integer with more digits than Python prints
        r = f"<an integer of {v.bit_length()} bits>"
    return r if len(r) <= limit else r[:limit] + "..."


def _at(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class Spec:
    """The type and range of one field of an untrusted document; ``bad(path, message)`` raises."""

    def check(self, v, path: str, bad) -> None:
        raise NotImplementedError


class Anything(Spec):
    """Any JSON value (its size and depth are the reader's bounds)."""

    def check(self, v, path, bad):
        return None


class Bool(Spec):
    def check(self, v, path, bad):
        if not isinstance(v, bool):
            bad(path, f"must be true or false, not {_quote(v)}")


class Int(Spec):
    def __init__(self, lo: Optional[int] = None, hi: Optional[int] = None):
        self.lo, self.hi = lo, hi

    def check(self, v, path, bad):
        if not _is_int(v):
            bad(path, f"must be an integer, not {_quote(v)}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            bad(path, f"{_quote(v)} is not {_range(self.lo, self.hi)}")


class Num(Spec):
    """A finite number (an integer too large for a float is refused); ``gt``: strictly above."""

    def __init__(self, lo: Optional[float] = None, hi: Optional[float] = None, gt: Optional[float] = None):
        self.lo, self.hi, self.gt = lo, hi, gt

    def check(self, v, path, bad):
        if not _is_num(v):
            bad(path, f"must be a finite number, not {_quote(v)}")
        if self.gt is not None and not v > self.gt:
            bad(path, f"{_quote(v)} must be more than {self.gt}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            bad(path, f"{_quote(v)} is not {_range(self.lo, self.hi)}")


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"from {lo} to {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


class Str(Spec):
    """A string of ``min_len``..``max_len`` characters without control characters (``text``;
    see ``edgecnn.core.text.unwanted_char``), one of ``choices`` or matching ``pattern``."""

    def __init__(self, max_len: int = MAX_TEXT_CHARS, *, min_len: int = 0, choices=None, pattern=None,
                 text: bool = True, what: str = "a string"):
        self.max_len, self.min_len, self.choices, self.text, self.what = max_len, min_len, choices, text, what
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern

    def check(self, v, path, bad):
        if not isinstance(v, str):
            bad(path, f"must be {self.what}, not {_quote(v)}")
        if self.choices is not None and v not in self.choices:
            bad(path, f"{_quote(v)} is not one of {', '.join(map(str, self.choices))}")
        if not self.min_len <= len(v) <= self.max_len:
            bad(path, f"must have {self.min_len} to {self.max_len} characters, not {len(v)}")
        if self.text:
            ch = unwanted_char(v)
            if ch is not None:
                bad(path, f"{_quote(v)} holds {describe_char(ch)}, which text from a file may not hold")
        if self.pattern is not None and not self.pattern.fullmatch(v):
            bad(path, f"{_quote(v)} is not {self.what}")


class Opt(Spec):
    """``None`` or ``spec``."""

    def __init__(self, spec: Spec):
        self.spec = spec

    def check(self, v, path, bad):
        if v is not None:
            self.spec.check(v, path, bad)


class ListOf(Spec):
    def __init__(self, item: Spec, *, min_len: int = 0, max_len: int = MAX_ITEMS, unique: bool = False):
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def check(self, v, path, bad):
        if not isinstance(v, list):
            bad(path, f"must be a list, not {_quote(v)}")
        if not self.min_len <= len(v) <= self.max_len:
            bad(path, f"must have {self.min_len} to {self.max_len} entries, not {len(v)}")
        for i, x in enumerate(v):
            self.item.check(x, _at(path, i), bad)
        if self.unique:
            seen = set()
            for i, x in enumerate(v):
                key = json.dumps(x, sort_keys=True)
                if key in seen:
                    bad(_at(path, i), f"{_quote(x)} is listed twice")
                seen.add(key)


class MapOf(Spec):
    """An object whose keys are free (checked by ``key``) and whose values all follow ``value``."""

    def __init__(self, value: Spec, *, key: Optional[Spec] = None, min_len: int = 0, max_len: int = MAX_ITEMS):
        self.value, self.key, self.min_len, self.max_len = value, key or Str(), min_len, max_len

    def check(self, v, path, bad):
        if not isinstance(v, dict):
            bad(path, f"must be an object, not {_quote(v)}")
        if not self.min_len <= len(v) <= self.max_len:
            bad(path, f"must have {self.min_len} to {self.max_len} entries, not {len(v)}")
        for k, x in v.items():
            self.key.check(k, _at(path, k) + " (the name)", bad)
            self.value.check(x, _at(path, k), bad)


class Obj(Spec):
    """An object with ``fields`` (required), ``optional`` fields, and other keys only if ``extra``
    (their values unchecked: kept for the record, never used)."""

    def __init__(self, fields: Optional[dict] = None, optional: Optional[dict] = None, *, extra: bool = False):
        self.fields, self.optional, self.extra = fields or {}, optional or {}, extra

    def check(self, v, path, bad):
        if not isinstance(v, dict):
            bad(path, f"must be an object, not {_quote(v)}")
        missing = [k for k in self.fields if k not in v]
        if missing:
            bad(path, f"has no {_quote(missing[0])}")
        if not self.extra:
            unknown = [k for k in v if k not in self.fields and k not in self.optional]
            if unknown:
                bad(path, f"has an unknown key {_quote(unknown[0])} (known: "
                          f"{', '.join(list(self.fields) + list(self.optional))})")
        for k, spec in (*self.fields.items(), *self.optional.items()):
            if k in v:
                spec.check(v[k], _at(path, k), bad)


def check(doc, spec: Spec, where: str, error=InvalidConfigError, path: str = ""):
    """``doc`` if it follows ``spec``; else ``error`` with one line naming ``where`` and the field
    (``path``: the name of ``doc`` itself inside its file, e.g. 'labels')."""
    def bad(at, msg):
        raise error(f"{where}: {'the document' if not at else repr(at)} {msg}.")

    spec.check(doc, path, bad)
    return doc


def read_checked(path, spec: Spec, what: str, error=InvalidConfigError, max_bytes: Optional[int] = None):
    """A JSON file read by ``read_json_file`` (bounded, regular file only) and checked against ``spec``."""
    return check(read_json_file(path, what, error, max_bytes), spec, f"{path}", error)


def parse_checked(text, spec: Spec, where: str, error=InvalidConfigError, max_bytes: int = 1 << 20):
    """A JSON document given as text (an environment variable): the same bounds and spec as a file."""
    if not isinstance(text, str):
        raise error(f"{where}: not text.")
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise error(f"{where}: more than {max_bytes:,} bytes; refused.")
    obj = parse_json(text, where, error)
    return check(obj, spec, where, error)


LABEL = Str(MAX_LABEL_CHARS, min_len=1, what="a label")


def check_labels(labels, where: str, error, *, min_len: int = 1, max_len: int = MAX_CLASSES, path: str = "labels"):
    """A list of labels: strings of 1..MAX_LABEL_CHARS printable characters, each once."""
    return check(labels, ListOf(LABEL, min_len=min_len, max_len=max_len, unique=True), where, error, path)


def read_text_lines(path, what: str, error=InvalidConfigError, *, max_bytes: int = 4 << 20,
                    max_lines: int = MAX_ITEMS):
    """[(line number, line)] of a UTF-8 text file (a regular file of at most ``max_bytes``, at most
    ``max_lines`` lines); a control character other than a tab in a line is refused, naming it."""
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    try:
        raw = read_bytes(path, what, max_bytes)
    except DataError as e:
        raise error(e.message) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path}: the {what} is not UTF-8 text ({e.reason} at byte {e.start}).") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > max_lines:
        raise error(f"{path}: the {what} has {len(lines):,} lines; at most {max_lines:,}.")
    out = []
    for n, line in enumerate(lines, 1):
        line = line[:-1] if line.endswith("\r") else line
        ch = unwanted_char(line.replace("\t", " "))
        if ch is not None:
            raise error(f"{path}: line {n} of the {what} holds {describe_char(ch)}; refused.")
        out.append((n, line))
    return out
