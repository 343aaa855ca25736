"""The one error module: every domain error is a click exception with its own exit code.

click prints ``Error: <message>`` on one line and exits with ``exit_code``; no traceback.
Library code raises these deep down with a message that says what to do; the CLI layer does
not catch-and-print.
"""
from __future__ import annotations

import difflib
import errno
import os
import re
from typing import Iterable

import click


class EdgecnnError(click.ClickException):
    """Base class. Exit code 1 is click's generic failure; ours start at 3 (2 is usage)."""

    exit_code = 3

    def __init__(self, message: str):
        # One line, always: a multi-line message would read like a traceback. And one line of
        # text: a message quotes names and labels from untrusted files, so a character that is
        # not printable (ESC, BEL, a right-to-left override) is shown escaped, never obeyed, by
        # the rule of ``edgecnn.core.text.shown`` (this module sits below core).
        super().__init__(_visible(" ".join(str(message).split())))


class UnknownModelError(EdgecnnError):
    exit_code = 4


class InvalidConfigError(EdgecnnError):
    """A builder or command received a value it cannot use (bad alpha, bad k/m/n, bad shape)."""

    exit_code = 5


class DataError(EdgecnnError):
    """Unreadable, hostile, empty or inconsistent data."""

    exit_code = 6


class RunError(EdgecnnError):
    """A run directory is missing, incomplete or inconsistent."""

    exit_code = 7


class TrainingError(EdgecnnError):
    exit_code = 8


class ExportError(EdgecnnError):
    """Conversion failed; nothing half-written is left behind."""

    exit_code = 9


class VerificationError(EdgecnnError):
    """An artifact ran but failed its accuracy or agreement check."""

    exit_code = 10


class ModelFileError(EdgecnnError):
    """A model file is missing, truncated, not a model, or has a shape the runtime cannot take."""

    exit_code = 11


class RuntimeNotAvailableError(EdgecnnError):
    exit_code = 12


class BenchmarkError(EdgecnnError):
    exit_code = 13


class RemoteError(EdgecnnError):
    """SSH connection lost, host key unknown or changed, or the remote command failed."""

    exit_code = 14


class BundleError(EdgecnnError):
    exit_code = 15


class EmulatorError(EdgecnnError):
    """The arm64 emulator (qemu-user, its root, the counting plugin) is missing or failed."""

    exit_code = 16


class SystemResourceError(EdgecnnError):
    """The operating system refused: disk full, a file-size limit, a read-only filesystem,
    permission denied, a name too long, too many open files, out of memory. The message names the
    path and what to free or change; the command has kept what was there before."""

    exit_code = 17


class UnexpectedError(EdgecnnError):
    """Anything else: a bug. One line, and the command that shows the traceback (``-v``).
    Exit code 1, what Python itself exits with on an uncaught exception."""

    exit_code = 1


def _visible(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else
                   (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000
                    else f"\\U{ord(ch):08x}") for ch in text)


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """' Did you mean: a, b?' or '' — for messages that quote an unknown name."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


# ---------------------------------------------------------------------------- the operating system
_ADVICE = {
    errno.ENOSPC: ("no space left on the device that holds it{free}", "free space there, or write elsewhere "
                   "(--out, --runs-dir, --app; TMPDIR for temporary files)"),
    errno.EDQUOT: ("the disk quota is exceeded{free}", "free space in your quota, or write elsewhere"),
    errno.EFBIG: ("the file grew past the largest file allowed here", "raise the file-size limit (`ulimit -f`) "
                  "or write to another filesystem"),
    errno.EROFS: ("the filesystem is read-only", "write elsewhere (--out, --runs-dir, --app), or remount it "
                  "read-write"),
    errno.EACCES: ("permission denied", "make the folder writable for you (chmod/chown), or write elsewhere"),
    errno.EPERM: ("the operation is not permitted (permissions, or an immutable attribute: lsattr)",
                  "make the folder writable for you (chmod/chown, chattr -i), or write elsewhere"),
    errno.ENAMETOOLONG: ("a file or folder name is too long{limit}", "use a shorter name (of the run, the "
                         "model, --out or the file given)"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n`) or close other programs"),
    errno.ENFILE: ("too many open files on this system", "close other programs"),
    errno.ENOENT: ("no such file or folder", "check the path; it may have been moved or deleted meanwhile"),
    errno.ENOMEM: ("not enough memory", "free memory, or use smaller inputs"),
}
# The errors that say "this machine cannot", not "this input is wrong".
RESOURCE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                             errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE, errno.ENOMEM))
# What TensorFlow's own file system layer says (its messages carry the C library's strerror text).
_STRERROR = {os.strerror(n): n for n in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                                         errno.EPERM, errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE)}


def system_error(e: BaseException) -> "SystemResourceError | None":
    """The one-line ``SystemResourceError`` for an error the operating system reported (an
    ``OSError``, ``MemoryError``, or TensorFlow's I/O errors such as ``ResourceExhaustedError``
    from SaveV2 on a full disk), naming the path and what to free or change; None for others."""
    if isinstance(e, MemoryError):
        return SystemResourceError("ran out of memory; " + _ADVICE[errno.ENOMEM][1] + ".")
    if isinstance(e, OSError) and e.errno is not None:
        paths = [p for p in (e.filename, getattr(e, "filename2", None)) if p is not None]
        return _system_error(e.errno, os.fsdecode(paths[0]) if paths else None, e.strerror or str(e))
    if type(e).__module__.startswith("tensorflow"):
        text = re.sub(r"\{\{.*?\}\}", "", str(e))  # TF's "{{function_node ...}}" prefix holds no path
        for message, num in _STRERROR.items():
            if message in text:
                paths = re.findall(r"(/[^\s;:'\"]+)", text[:text.index(message)])
                return _system_error(num, paths[-1] if paths else None, message)
    return None


def _system_error(num: int, path, strerror: str) -> SystemResourceError:
    what, todo = _ADVICE.get(num, (strerror.rstrip(".") or f"errno {num}", "check the path and try again"))
    what = what.format(free=_free_space(path), limit=_name_limit(path))
    name = errno.errorcode.get(num, str(num))
    return SystemResourceError(f"{path or 'a file'}: {what} ({name}); {todo}.")


def _existing_parent(path):
    p = os.path.abspath(os.fsdecode(path))
    for _ in range(64):
        if os.path.isdir(p):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return None


def _free_space(path) -> str:
    import shutil

    d = _existing_parent(path) if path else None
    if d is None:
        return ""
    try:
        return f" ({shutil.disk_usage(d).free / 2**20:.1f} MiB free there now)"
    except OSError:
        return ""


def _name_limit(path) -> str:
    d = _existing_parent(path) if path else None
    try:
        return f" (at most {os.pathconf(d, 'PC_NAME_MAX')} bytes per name here)" if d else ""
    except (OSError, ValueError):
        return ""


def unexpected_error(e: BaseException, argv) -> UnexpectedError:
    """A bug: one line naming the exception, and the command that shows its traceback."""
    import shlex

    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    command = " ".join(["edgecnn", "-v"] + [shlex.quote(str(a)) for a in argv if a not in ("-v", "--verbose")])
    return UnexpectedError(f"unexpected {type(e).__name__}{': ' + first[:200] if first else ''}. This is a bug "
                           f"in edgecnn (please report it); see the traceback with: {command}")
