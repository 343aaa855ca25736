"""Opening untrusted data files with bounded cost: the size caps, and the guarded openers.

Every data file is untrusted input (DESIGN.md), so before a byte is read:

- it must be a *regular* file (``os.stat`` follows symlinks, so a link to one is checked too):
  opening a FIFO blocks until a writer appears, a character device can stream forever, and
  opening some devices has side effects, so they are refused from the stat alone, and the
  descriptor is opened ``O_NONBLOCK`` and checked again (the path may change in between);
- its size is compared with a cap for its kind, so nothing is allocated for a file that claims
  (or is) gigabytes;
- images go through PIL with its decompression-bomb warning made an error, our own pixel cap,
  and only the formats a dataset holds.

The caps are module constants so that a test (or a user with bigger data) can change them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import warnings
from typing import BinaryIO, Iterator

import numpy as np

from edgecnn.errors import DataError

# One CIFAR-100 train batch is 155 MB; Fashion-MNIST's largest IDX file 47 MB uncompressed.
MAX_BATCH_BYTES = 512 << 20
MAX_IDX_BYTES = 256 << 20
MAX_TEXT_BYTES = 64 << 20  # Tiny ImageNet's words.txt is 2.6 MB
MAX_IMAGE_BYTES = 256 << 20
# 50 MP: a 48 MP phone photo still loads; fit_image works on float32 copies, ~0.6 GB at the cap.
MAX_IMAGE_PIXELS = 50_000_000
# One memory budget for what a command allocates because of what a file or folder declares: the
# uint8 arrays a dataset is loaded into (N x H x W x C at the model's input size, checked from the
# file count before the first image is decoded), the model inputs and outputs of one chunk of a
# prediction (a chunk is at most a CHUNK_SHARE of the budget), and tables that grow with the class
# count. EDGECNN_MEMORY_BUDGET (bytes, or 512M, 8G) replaces the default; a process limit on its
# address space (ulimit -v) lowers it to half that limit.
MEMORY_BUDGET = 4 << 30
CHUNK_SHARE = 8
# What a dataset image may be (PIL opens multi-picture camera JPEGs, MPO, through its JPEG plugin).
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP")


def memory_budget() -> int:
    """The memory budget in bytes (see MEMORY_BUDGET)."""
    budget = MEMORY_BUDGET
    text = os.environ.get("EDGECNN_MEMORY_BUDGET", "").strip()
    if text:
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:].upper(), 1)
        digits = text[:-1] if mult > 1 else text
        if not digits.isdigit() or not 1 <= int(digits) * mult <= 1 << 50:
            raise DataError(f"EDGECNN_MEMORY_BUDGET={text!r}: give bytes, or a number with K, M or G (e.g. 8G).")
        budget = int(digits) * mult
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            budget = min(budget, soft // 2)
    except (ImportError, ValueError, OSError):
        pass
    return budget


def _gib(n: int) -> str:
    if n < 1 << 20:
        return f"{n:,} bytes"
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def check_memory(nbytes: int, what: str, hint: str = "", error=DataError) -> int:
    """``nbytes`` if it fits the memory budget; else ``error`` (a DataError) naming ``what`` (before
    any of it is allocated) and how to raise the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise error(f"{what} need {_gib(nbytes)} of memory, more than the memory budget of {_gib(budget)}"
                        f"{'; ' + hint if hint else ''} (or raise it: EDGECNN_MEMORY_BUDGET=16G).")
    return nbytes


def chunk_rows(row_bytes: int, at_most: int = 1 << 16) -> int:
    """How many rows of ``row_bytes`` one chunk of work may hold (at least 1): a CHUNK_SHARE of the budget."""
    return int(max(1, min(at_most, memory_budget() // CHUNK_SHARE // max(1, int(row_bytes)))))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _a(what: str) -> str:
    return ("an " if what[:1].lower() in "aeiou" else "a ") + what


def os_error(path, e: OSError, doing: str) -> DataError:
    """A one-line DataError for an OSError on ``path``, with what to do for the usual causes."""
    hint = {errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
            errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exhausted", errno.ENAMETOOLONG: "the path is too long",
            errno.ENOENT: "no such file or folder", errno.ENOTDIR: "a part of the path is not a folder",
            errno.ELOOP: "too many levels of symbolic links"}.get(e.errno, "")
    reason = e.strerror or type(e).__name__
    if hint and hint.lower() != reason.lower():
        reason += "; " + hint
    return DataError(f"{path}: cannot {doing} ({reason}).")


def check_regular(path, what: str = "data file", max_bytes: int = None) -> int:
    """The size of ``path`` if it is a regular file (or a link to one) within ``max_bytes``."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise os_error(path, e, f"read this {what}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: is {_kind(st.st_mode)}, not a regular file; refusing to read it as {_a(what)}.")
    if max_bytes is not None and st.st_size > max_bytes:
        raise DataError(f"{path}: {st.st_size:,} bytes is more than the {max_bytes:,} {_a(what)} may have; "
                        f"the file is not one, or is hostile.")
    return st.st_size


@contextlib.contextmanager
def open_regular(path, what: str = "data file", max_bytes: int = None) -> Iterator[BinaryIO]:
    """``open(path, "rb")`` for a regular file only, never blocking on a FIFO or a device."""
    check_regular(path, what, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise os_error(path, e, f"open this {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for something else after the check above
            raise DataError(f"{path}: is {_kind(st.st_mode)}, not a regular file; refusing to read it as {_a(what)}.")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_bytes(path, what: str, max_bytes: int) -> bytes:
    """The whole of a regular file of at most ``max_bytes`` (it is read with that bound, too)."""
    with open_regular(path, what, max_bytes) as f:
        try:
            # read() preallocates what it is asked for: ask for the file's size (plus one byte, to see
            # a file that grew), then in 1 MiB steps, never for the whole cap at once.
            size = os.fstat(f.fileno()).st_size
            parts = [f.read(min(size, max_bytes) + 1)]
            got = len(parts[0])
            while parts[-1] and got <= max_bytes:
                parts.append(f.read(min(1 << 20, max_bytes + 1 - got)))
                got += len(parts[-1])
            data = b"".join(parts) if len(parts) > 1 else parts[0]
        except OSError as e:
            raise os_error(path, e, f"read this {what}") from None
    if len(data) > max_bytes:
        raise DataError(f"{path}: more than the {max_bytes:,} bytes {_a(what)} may have.")
    return data


def read_text(path, what: str = "text file", max_bytes: int = None, errors: str = "strict") -> str:
    data = read_bytes(path, what, MAX_TEXT_BYTES if max_bytes is None else max_bytes)
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None


def load_image(path, mode: str = "RGB", formats=IMAGE_FORMATS, expect_size=None) -> np.ndarray:
    """Decode an image file to a uint8 array in PIL ``mode`` ('RGB' or 'L'), within the caps.

    Refused with a DataError: a non-regular file, more than MAX_IMAGE_BYTES, a format outside
    ``formats``, PIL's decompression bombs (its warning is made an error here), more than
    MAX_IMAGE_PIXELS pixels, a size other than ``expect_size`` (height, width), and anything PIL
    cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open_regular(path, "image", MAX_IMAGE_BYTES) as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f, formats=list(formats) if formats else None) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{path}: image is {im.width}x{im.height} ({im.width * im.height:,} pixels), more "
                                    f"than the {MAX_IMAGE_PIXELS:,} allowed; scale it down first.")
                if expect_size and (im.height, im.width) != tuple(expect_size):
                    raise DataError(f"{path}: image is {im.width}x{im.height}, this dataset's images are all "
                                    f"{expect_size[1]}x{expect_size[0]}; the file is not from it.")
                im.load()
                return np.asarray(im.convert(mode), dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused as a decompression bomb ({str(e)[:160]}).") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (not one of {', '.join(formats)}).") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, IndexError, TypeError, struct.error) as e:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:120]}).") from None
