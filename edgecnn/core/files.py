"""Atomic outputs: write to a temporary file in the same folder, then rename over the target.

A crash or a failed conversion therefore never leaves a half-written artifact under the final
name. ``atomic_path`` is for writers that want a path (TFLite/ONNX savers, matplotlib).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path


NAME_BYTES = 200  # derived file names stay under this, leaving room below the usual 255-byte limit


def fit_name(name: str, limit: int = NAME_BYTES) -> str:
    """``name`` if it has at most ``limit`` bytes, else its start, a hash of the whole and its
    extension: a name derived from another (``op_profile_<artifact>_<runtime>.json``, a temporary
    file beside a target) never exceeds the filesystem's limit because its source was long."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    ext = "." + ext if dot and len(ext) <= 16 else ""
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = os.fsencode(name[: len(name) - len(ext)])[: limit - len(ext) - 17]
    keep = head.decode("utf-8", "ignore")  # a character cut in half is dropped
    return f"{keep}~{digest}{ext}"


@contextlib.contextmanager
def atomic_path(target, suffix: str = None):
    """Yield a temp path beside ``target``; on success rename it to ``target``, else delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{fit_name(target.name, 150)}.", suffix=suffix or f".tmp{target.suffix[:16]}",
                               dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600; give the artifact the usual umask-based mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as e:
        if e.filename is None:  # a failed write() names no file: the error names the one being written
            e.filename = str(target)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(target)


def atomic_write_text(target, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target, obj) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def dist_version(dist: str):
    """The installed version of a distribution (``ai-edge-litert``, ``tensorflow``, ...), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except (PackageNotFoundError, ValueError):
        return None
