"""CIFAR-10 and CIFAR-100 in the standard "python version" layout, safely.

The batches are pickles. ``pickle.load`` on a file from the internet runs whatever the file
says, so batches are read with ``SafeUnpickler``: it admits only what the format holds (dicts,
lists, bytes, str, ints; numpy arrays through an allow-list of the numpy globals that rebuild an
ndarray and its dtype; ``_codecs.encode`` for latin-1 only, which is how Python 3 writes bytes at
protocol 2) and refuses every other global with a ``DataError``. A batch is read whole (it has a
size cap) before it is parsed, and its arrays are checked for dtype, shape and label range.

Archives are streamed member by member into a temporary folder renamed into place at the end,
under a size cap and a compression-ratio cap, refusing absolute paths, ``..`` escapes, links,
sparse files and devices, with tarfile's own ``data`` filter on top where Python has it.

numpy only; the download uses urllib, is checked against the published md5, and is the one
place that needs a network.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import pickle
import shutil
import tarfile
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from edgecnn.core import progress
from edgecnn.data import limits
from edgecnn.errors import DataError

URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
# The archives' published md5 (https://www.cs.toronto.edu/~kriz/cifar.html; torchvision checks the same).
MD5 = {"cifar10": "c58f30108f718f92721af3b95e74349a", "cifar100": "eb9058c3a382ffc7106e4002c42a8d85"}
REQUIRED = {"cifar10": tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
            "cifar100": ("train", "test", "meta")}

# Caps (module constants so tests and users with bigger data can change them). Both archives are
# ~170 MB and expand ~1.05x to ~180 MB; a gzip of zeros expands ~1000x, bzip2 far more.
MAX_DOWNLOAD_BYTES = 512 << 20
MAX_DOWNLOAD_SECONDS = 3 * 3600  # each read has a 30 s timeout; this bounds a server that trickles
MAX_EXTRACT_BYTES = 1 << 30
MAX_COMPRESSION_RATIO = 20
RATIO_FLOOR_BYTES = 64 << 20  # output below this is never a bomb (tars of tiny files pad 512-byte blocks)
MAX_MEMBERS = 10_000
MAX_DATASET_BYTES = 2 << 30  # all batch files of one dataset together
MAX_CLASSES = 10_000

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
        raise pickle.UnpicklingError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1", "strict")


def _empty_bytes(*args):
    # Python 3 writes b"" at protocol 2 as a call of bytes() with no argument; bytes(n) would
    # allocate n bytes, so nothing else is admitted.
    if args:
        raise pickle.UnpicklingError(f"unexpected bytes({', '.join(type(a).__name__ for a in args)})")
    return b""


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
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):
            return _empty_bytes
        raise DataError(
            f"{self._source}: refusing to load a pickle that references {module}.{name}; a CIFAR batch holds "
            f"only dicts, lists, bytes and numbers. The file is corrupt or hostile: replace it with the original.")

    def persistent_load(self, pid):
        raise DataError(f"{self._source}: unexpected persistent id in pickle; not a CIFAR batch file.")


def safe_load_pickle(path) -> object:
    """Unpickle a CIFAR file from memory: read whole (bounded by MAX_BATCH_BYTES) before parsing, so
    a length field claiming gigabytes meets a short buffer ("truncated"), not an allocation."""
    path = Path(path)
    raw = limits.read_bytes(path, "CIFAR batch", limits.MAX_BATCH_BYTES)
    try:
        obj = SafeUnpickler(io.BytesIO(raw), source=str(path)).load()
    except DataError:
        raise
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be a CIFAR batch; the file is corrupt or hostile.") from None
    except MemoryError:
        raise DataError(f"{path}: declares more data than memory holds; not a CIFAR batch.") from None
    except Exception as e:  # the unpickler and numpy's array rebuild raise almost anything on garbage
        raise DataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {str(e)[:160]}). "
                        f"Replace the file.") from None
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


_KINDS = {"f": "floating-point", "c": "complex", "b": "boolean", "U": "string", "S": "bytes", "O": "mixed or object",
          "V": "structured", "M": "datetime", "m": "timedelta"}


def _int_array(value, what: str, path) -> np.ndarray:
    """``value`` as an integer ndarray, or a DataError that says what it holds instead."""
    try:
        arr = np.asarray(value)
    except RecursionError:
        raise DataError(f"{path}: '{what}' is nested too deeply; not a CIFAR batch.") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as e:
        raise DataError(f"{path}: '{what}' is not a regular array ({type(e).__name__}); not a CIFAR batch.") from None
    if arr.size == 0 and arr.dtype.kind == "f":  # np.asarray([]) is float64: an empty list holds no floats
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise DataError(f"{path}: '{what}' holds {_KINDS.get(arr.dtype.kind, str(arr.dtype))} values, expected "
                        f"integers; not a CIFAR batch.")
    return arr


def _decode(names, path, key: str) -> List[str]:
    if isinstance(names, np.ndarray) and names.dtype.kind in "SU" and names.ndim == 1:
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not 2 <= len(names) <= MAX_CLASSES \
            or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: '{key}' must be a list of 2 to {MAX_CLASSES} class names; not CIFAR metadata.")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{path}: '{key}' holds a class name that is not UTF-8; not CIFAR metadata.") from None


def read_label_names(path, key: str = "label_names") -> List[str]:
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict, found {type(d).__name__}; not CIFAR metadata.")
    return _decode(_key(d, key, path), path, key)


def read_batch(path, label_key: str = "labels", num_classes: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 N x 32 x 32 x 3, int64 N); labels in 0..num_classes-1 when given."""
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict, found {type(d).__name__}; not a CIFAR batch file.")
    data = _int_array(_key(d, "data", path), "data", path)
    if data.ndim != 2 or data.shape[1] != 3072 or not len(data):
        raise DataError(f"{path}: 'data' has shape {tuple(data.shape)}, expected (N, 3072) rows of 32x32x3 "
                        f"images; the file is not CIFAR or is truncated.")
    if data.dtype != np.uint8:
        if data.min() < 0 or data.max() > 255:
            raise DataError(f"{path}: pixel values outside 0..255; not a CIFAR batch.")
        data = data.astype(np.uint8)
    labels = _int_array(_key(d, label_key, path), label_key, path)
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; the file is inconsistent.")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        raise DataError(f"{path}: '{label_key}' run {lo}..{hi}, expected 0..{(num_classes or 1) - 1}"
                        f"{'' if num_classes is None else f' for {num_classes} classes'}; the file is inconsistent.")
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
    if path.name.endswith((".tar.gz", ".tgz", ".tar")) and (path.exists() or path.is_symlink()):
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
        files.append(root / "test_batch")
        meta_path = root / "batches.meta"
        names = read_label_names(meta_path) if meta_path.exists() else [str(i) for i in range(10)]
        label_key = "labels"
    else:
        files = [root / "train", root / "test"]
        meta_path = root / "meta"
        label_key = f"{cifar100_labels}_labels"
        names = read_label_names(meta_path, f"{cifar100_labels}_label_names")
    total = sum(limits.check_regular(f, "CIFAR batch", limits.MAX_BATCH_BYTES) for f in files)
    if total > MAX_DATASET_BYTES:
        raise DataError(f"{root}: {len(files)} batch files of {total:,} bytes in all, more than the "
                        f"{MAX_DATASET_BYTES:,} a CIFAR dataset may have.")
    parts = [read_batch(f, label_key, len(names)) for f in files]
    x_tr, y_tr = np.concatenate([p[0] for p in parts[:-1]]), np.concatenate([p[1] for p in parts[:-1]])
    x_te, y_te = parts[-1]
    return (x_tr, y_tr), (x_te, y_te), names, root


# ---------------------------------------------------------------------------- archives
class _Overflow(Exception):
    pass


class _CappedReader:
    """A read-only stream that fails once more than ``limit`` bytes came out of it.

    tarfile reads PAX and GNU long-name headers whole, of the size the header claims; under this
    cap no header can make it hold more than ``limit`` bytes."""

    def __init__(self, f, limit: int, archive):
        self._f, self._limit, self._archive, self.count = f, limit, archive, 0

    def read(self, n: int = -1) -> bytes:
        room = self._limit - self.count + 1
        try:
            data = self._f.read(room if n is None or n < 0 else min(n, room))
        except OSError as e:
            if e.errno is not None:
                raise limits.os_error(self._archive, e, "read this archive") from None
            raise
        self.count += len(data)
        if self.count > self._limit:
            raise _Overflow()
        return data


def _decompressor(f):
    """The decompressed stream of a tar, .tar.gz, .tar.bz2 or .tar.xz file object, by magic bytes."""
    magic = f.read(6)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(f, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f, "rb")
    return f


def _check_member(m: tarfile.TarInfo, archive, dest: Path, dest_abs: Path) -> None:
    target = (dest_abs / m.name).resolve()
    if os.path.isabs(m.name) or not (target == dest_abs or dest_abs in target.parents):
        raise DataError(f"{archive}: member '{m.name}' would be written outside {dest}; refusing to extract "
                        f"this archive.")
    if not (m.isfile() or m.isdir()) or m.issparse():
        raise DataError(f"{archive}: member '{m.name}' is a link, sparse or special file; refusing to extract "
                        f"this archive.")


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, dest_abs: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # 3.11.4+, 3.12, and backports: tarfile's own safe extraction
        # A folder's mode is not applied: one of 000 would lock out the members after it (extractall
        # defers them to the end for this reason) and the cleanup of a failed extraction.
        tar.extract(m, dest_abs, set_attrs=not m.isdir(), filter="data")
        return
    target = dest_abs / m.name
    if m.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(m)
    with open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _extract_into(archive: Path, size: int, dest: Path) -> None:
    """Stream ``archive`` into the empty folder ``dest`` under the size, ratio and member caps."""
    limit = min(MAX_EXTRACT_BYTES, max(RATIO_FLOOR_BYTES, MAX_COMPRESSION_RATIO * size))
    by_ratio = limit < MAX_EXTRACT_BYTES

    def too_big(n):
        why = (f"more than {MAX_COMPRESSION_RATIO}x its {size:,} bytes" if by_ratio
               else f"more than the {MAX_EXTRACT_BYTES:,} bytes allowed")
        return DataError(f"{archive}: expands to {why}{f' ({n:,} bytes declared)' if n else ''}; refusing it as "
                         f"a decompression bomb. Raise edgecnn.data.cifar.MAX_EXTRACT_BYTES for bigger datasets.")

    dest_abs = dest.resolve()
    declared = members = bar_pos = 0
    try:
        with limits.open_regular(archive, "archive") as raw:
            stream = _CappedReader(_decompressor(raw), limit, archive)
            with tarfile.open(fileobj=stream, mode="r|") as tar, \
                    progress.bar(length=size, label=f"Extracting {archive.name}", show_pos=False,
                                 item_show_func=_megabytes(size)) as bar:
                for m in tar:
                    members += 1
                    if members > MAX_MEMBERS:
                        raise DataError(f"{archive}: more than {MAX_MEMBERS:,} members; not a dataset archive.")
                    _check_member(m, archive, dest, dest_abs)
                    declared += m.size
                    if declared > limit:
                        raise too_big(declared)
                    _extract_member(tar, m, dest_abs)
                    bar.update(raw.tell() - bar_pos, raw.tell())  # compressed bytes read so far
                    bar_pos = raw.tell()
    except _Overflow:
        raise too_big(0) from None
    except DataError:
        raise
    except OSError as e:
        if e.errno is not None:  # a write into dest failed; errors of the archive itself carry no errno
            raise limits.os_error(e.filename or dest, e, "extract into it") from None
        raise DataError(f"{archive}: cannot extract ({type(e).__name__}: {e}); re-download it.") from None
    except (tarfile.TarError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
        raise DataError(f"{archive}: cannot extract ({type(e).__name__}: {str(e)[:160]}); re-download it.") from None
    except RecursionError:
        raise DataError(f"{archive}: cannot extract (nested too deeply); re-download it.") from None


def _replace_dir(new: Path, dest: Path) -> None:
    """Rename the finished folder ``new`` to ``dest``, swapping out an earlier ``dest``."""
    try:
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise DataError(f"{dest}: exists and is not a folder; move it away to extract here.")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old)
            os.replace(new, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(new, dest)
    except OSError as e:
        raise limits.os_error(dest, e, "move the extracted files into place") from None


def _staging_dir(dest: Path) -> Path:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    except OSError as e:
        raise limits.os_error(dest.parent, e, "create a folder in it") from None


def extract_archive(archive, dest) -> Path:
    """Extract a tar(.gz/.bz2/.xz) into ``dest``, all or nothing.

    Members are streamed into a hidden temporary folder beside ``dest`` that is renamed into place
    only when every member is out, so an interrupted extraction never looks like a dataset; on
    any failure it is removed. Refused with a DataError: a non-regular archive, members that
    escape ``dest``, links, sparse and special files, more than MAX_MEMBERS members, and output
    beyond MAX_EXTRACT_BYTES or MAX_COMPRESSION_RATIO times the archive's size (above
    RATIO_FLOOR_BYTES) — counted both as declared in the headers and as actually decompressed.
    """
    archive, dest = Path(archive), Path(dest)
    size = limits.check_regular(archive, "archive")
    tmp = _staging_dir(dest)
    try:
        _extract_into(archive, size, tmp)
        _replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------- download
def _md5(path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with limits.open_regular(path, "archive", MAX_DOWNLOAD_BYTES) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _megabytes(total: int):
    return lambda done: None if done is None else f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"


def _fetch(url: str, archive: Path, md5: str) -> None:
    """Download ``url`` to ``archive`` atomically; only an archive with the published md5 stays."""
    from edgecnn.core.files import atomic_path

    def offline(e):
        return DataError(f"Cannot download {url} ({getattr(e, 'reason', None) or e}). Without a network, pass --data "
                         f"PATH to a folder or .tar.gz in the standard layout, or use --data sample.")

    try:
        r = urllib.request.urlopen(url, timeout=30)
    except (OSError, ValueError) as e:  # URLError, HTTPError and timeouts are OSErrors
        raise offline(e) from None
    with r:
        try:
            total = int(r.headers.get("Content-Length") or 0) or None
        except (ValueError, AttributeError):
            total = None
        if total and total > MAX_DOWNLOAD_BYTES:
            raise DataError(f"{url}: the server announces {total:,} bytes, more than the {MAX_DOWNLOAD_BYTES:,} the "
                            f"archive has; refusing to download it.")
        h, done, start = hashlib.md5(usedforsecurity=False), 0, time.monotonic()
        try:
            with atomic_path(archive) as tmp, open(tmp, "wb") as f, \
                    progress.bar(length=total, label=f"Downloading {archive.name}", show_pos=False,
                                 item_show_func=_megabytes(total or 0)) as bar:
                while True:
                    try:
                        chunk = r.read(1 << 20)
                    except (OSError, ValueError) as e:
                        raise offline(e) from None
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > MAX_DOWNLOAD_BYTES:
                        raise DataError(f"{url}: more than {MAX_DOWNLOAD_BYTES:,} bytes; refusing the rest.")
                    if time.monotonic() - start > MAX_DOWNLOAD_SECONDS:
                        raise DataError(f"{url}: {done:,} bytes in {MAX_DOWNLOAD_SECONDS} s and not done; giving up. "
                                        f"Download it by other means and pass --data PATH.")
                    h.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk), done)
                if total and done != total:
                    raise DataError(f"{url}: the download stopped at {done:,} of {total:,} bytes; try again.")
                if h.hexdigest() != md5:
                    raise DataError(f"{url}: checksum mismatch (md5 {h.hexdigest()}, expected {md5}); the "
                                    f"download is corrupt or not the dataset. Nothing was kept; try again.")
        except OSError as e:
            raise limits.os_error(archive, e, "write the download") from None


def missing_files(folder: Path, variant: str) -> List[str]:
    return [n for n in REQUIRED[variant] if not (folder / n).is_file()]


def download(variant: str, cache_dir) -> Path:
    """Download, verify and extract the standard archive into ``cache_dir`` (once); the batches folder.

    The archive is checked against its published md5 (the values torchvision uses) and the
    batches folder appears only by a rename once every file is out, so a folder under the final
    name is a complete dataset; one that is not (made by hand, or by an older edgecnn) is refused.
    """
    cache_dir = Path(cache_dir)
    folder = cache_dir / FOLDERS[variant]
    url = URLS[variant]
    archive = cache_dir / url.rsplit("/", 1)[-1]
    try:
        if folder.is_dir():
            missing = missing_files(folder, variant)
            if missing:
                raise DataError(f"{folder}: incomplete dataset (missing {', '.join(missing)}); delete the folder "
                                f"to download it again.")
            return folder
        if folder.exists() or folder.is_symlink():
            raise DataError(f"{folder}: exists and is not a folder; move it away to download {variant}.")
        cache_dir.mkdir(parents=True, exist_ok=True)
        have_archive = archive.exists() or archive.is_symlink()
    except OSError as e:  # ENAMETOOLONG, EACCES, EROFS, ENOTDIR, ...
        raise limits.os_error(cache_dir, e, "use it as the dataset cache folder (set $EDGECNN_DATA to another)") \
            from None
    if have_archive:
        got = _md5(archive)
        if got != MD5[variant]:
            raise DataError(f"{archive}: checksum mismatch (md5 {got}, expected {MD5[variant]}); delete it to "
                            f"download it again.")
    else:
        _fetch(url, archive, MD5[variant])
    staging = extract_archive(archive, cache_dir / f".{FOLDERS[variant]}.extracted")
    try:
        inner = staging / FOLDERS[variant]
        missing = missing_files(inner, variant) if inner.is_dir() else list(REQUIRED[variant])
        if missing:
            raise DataError(f"{archive}: does not hold {FOLDERS[variant]}/{{{', '.join(missing)}}}; not the "
                            f"{variant} archive.")
        try:
            os.replace(inner, folder)
        except OSError as e:
            raise limits.os_error(folder, e, "move the extracted dataset into place") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
