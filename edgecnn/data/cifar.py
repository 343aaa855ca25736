"""CIFAR-10 and CIFAR-100 in the standard "python version" layout, safely.

The batches are pickles. ``pickle.load`` on a file from the internet runs whatever the file
says, so batches are read with ``SafeUnpickler``: it admits only what the format holds (dicts,
lists, bytes, str, ints; numpy arrays through an allow-list of the numpy globals that rebuild an
ndarray and its dtype; ``_codecs.encode`` for latin-1 only, which is how Python 3 writes bytes at
protocol 2) and refuses every other global with a ``DataError``. Archives are extracted member by member, refusing
absolute paths, ``..`` escapes, links and devices.

numpy only; the download uses urllib and is the one place that needs a network.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import urllib.request
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from edgecnn.errors import DataError

URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

# (module, name) pairs a CIFAR batch may reference: how numpy pickles an ndarray and its dtype,
# under numpy 1 (numpy.core) and numpy 2 (numpy._core) module names.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _latin1_bytes(text, encoding="latin1", errors="strict"):
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise DataError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r}) in a pickle; not a CIFAR batch.")
    return text.encode("latin1", "strict")


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global is refused."""

    def __init__(self, file, *, source: str):
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes  # how Python 3 writes bytes at protocol 2
        raise DataError(
            f"{self._source}: refusing to load a pickle that references {module}.{name}; a CIFAR batch holds "
            f"only dicts, lists, bytes and numbers. The file is corrupt or hostile: replace it with the original.")

    def persistent_load(self, pid):
        raise DataError(f"{self._source}: unexpected persistent id in pickle; not a CIFAR batch file.")


def safe_load_pickle(path) -> object:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, source=str(path)).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e}). Replace the file.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e}).") from None
    _check_plain(obj, path)
    return obj


def _check_plain(obj, path, depth=0):
    """Object arrays could smuggle in structure; a batch has none."""
    if depth > 4:
        return
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        raise DataError(f"{path}: contains an object array; not a CIFAR batch file.")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_plain(v, path, depth + 1)


def _key(d: dict, name: str, path):
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise DataError(f"{path}: missing key '{name}'; not a CIFAR batch in the python layout.")


def _decode(names) -> List[str]:
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def read_batch(path, label_key: str = "labels") -> Tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 N x 32 x 32 x 3, int64 N)."""
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict, found {type(d).__name__}; not a CIFAR batch file.")
    data = np.asarray(_key(d, "data", path))
    labels = np.asarray(_key(d, label_key, path))
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' has shape {tuple(data.shape)}, expected (N, 3072) rows of 32x32x3 "
                        f"images; the file is not CIFAR or is truncated.")
    if data.dtype != np.uint8:
        if data.size and (data.min() < 0 or data.max() > 255):
            raise DataError(f"{path}: pixel values outside 0..255; not a CIFAR batch.")
        data = data.astype(np.uint8)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; the file is inconsistent.")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels.astype(np.int64)


def find_root(path, variant: Optional[str] = None) -> Tuple[Path, str]:
    """The folder holding the batches, and 'cifar10' or 'cifar100', for a folder or its parent."""
    path = Path(path)
    candidates = [path] + [path / f for f in FOLDERS.values()]
    for c in candidates:
        if (c / "data_batch_1").exists() or (c / "test_batch").exists():
            if variant not in (None, "cifar10"):
                raise DataError(f"{c} holds CIFAR-10 batches, not {variant}.")
            return c, "cifar10"
        if (c / "train").is_file() and (c / "meta").is_file():
            if variant not in (None, "cifar100"):
                raise DataError(f"{c} holds CIFAR-100 batches, not {variant}.")
            return c, "cifar100"
    raise DataError(f"{path}: no CIFAR batches found (expected data_batch_1..5 + test_batch + batches.meta, "
                    f"or train + test + meta for CIFAR-100).")


def load_cifar(path, variant: Optional[str] = None, *, cifar100_labels: str = "fine"):
    """A CIFAR folder (or .tar.gz) -> ((x_train, y_train), (x_test, y_test), label_names, root)."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        path = extract_archive(path, path.parent / (path.name.split(".tar")[0].split(".tgz")[0] + "-extracted"))
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.")
    root, variant = find_root(path, variant)
    if variant == "cifar10":
        files = sorted(root.glob("data_batch_*"), key=lambda p: p.name)
        if not files:
            raise DataError(f"{root}: no data_batch_* files.")
        if not (root / "test_batch").exists():
            raise DataError(f"{root}: test_batch is missing.")
        parts = [read_batch(f) for f in files]
        x_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        x_te, y_te = read_batch(root / "test_batch")
        meta_path = root / "batches.meta"
        names = _decode(_key(safe_load_pickle(meta_path), "label_names", meta_path)) if meta_path.exists() \
            else [str(i) for i in range(10)]
    else:
        key = f"{cifar100_labels}_labels"
        x_tr, y_tr = read_batch(root / "train", key)
        x_te, y_te = read_batch(root / "test", key)
        names = _decode(_key(safe_load_pickle(root / "meta"), f"{cifar100_labels}_label_names", root / "meta"))
    for split, y in (("train", y_tr), ("test", y_te)):
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{root}: {split} labels run {y.min()}..{y.max()} but batches.meta names "
                            f"{len(names)} classes.")
    return (x_tr, y_tr), (x_te, y_te), names, root


def extract_archive(archive, dest) -> Path:
    """Extract a tar(.gz) into ``dest``; refuses members that escape it, links and devices."""
    archive, dest = Path(archive), Path(dest)
    dest_abs = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest_abs / m.name).resolve()
                if os.path.isabs(m.name) or not (target == dest_abs or dest_abs in target.parents):
                    raise DataError(f"{archive}: member '{m.name}' would be written outside {dest}; refusing "
                                    f"to extract this archive.")
                if not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: member '{m.name}' is a link or special file; refusing to "
                                    f"extract this archive.")
            dest.mkdir(parents=True, exist_ok=True)
            for m in members:
                target = dest_abs / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with open(target, "wb") as out:
                    out.write(src.read())
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot extract ({e}); re-download it.") from None
    return dest


def download(variant: str, cache_dir) -> Path:
    """Download and extract the standard archive into ``cache_dir`` (once); the batches folder."""
    cache_dir = Path(cache_dir)
    folder = cache_dir / FOLDERS[variant]
    if folder.exists():
        return folder
    url = URLS[variant]
    archive = cache_dir / url.rsplit("/", 1)[-1]
    if not archive.exists():
        from edgecnn.io import atomic_path

        try:
            with urllib.request.urlopen(url, timeout=30) as r, atomic_path(archive) as tmp:
                with open(tmp, "wb") as f:
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        f.write(chunk)
        except OSError as e:
            raise DataError(f"Cannot download {url} ({getattr(e, 'reason', e)}). Without a network, pass "
                            f"--data PATH to a folder or .tar.gz in the standard layout, or use --data sample.") from None
    extract_archive(archive, cache_dir)
    return folder
