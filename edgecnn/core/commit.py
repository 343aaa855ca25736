"""All-or-nothing folders: a command writes its whole result into a sibling staging folder and
swaps it in with ONE rename, under a lock on the target.

An export (``runs/<model>/<run>/export``), a bundle (the Android app's ``assets``) and an
imported run (``runs/<name>/<run>``) are folders of files that only make sense together (a
manifest and the artifacts whose sha256 it records; a bundle spec and the model, labels and
images it names). Replacing them file by file leaves, at some instant, a mix of the old and the
new; a SIGKILL at that instant keeps the mix. Here instead:

1. ``locked(target)``: an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside the target, held
   for the whole command, so two commands on one target run one after the other (the second
   says that it waits, and for which pid) and never touch each other's staging. The lock goes
   with the process: a SIGKILL releases it. Whoever takes it first cleans what dead holders
   left: ``.<name>.stage-*`` folders, and rolls back a swap of the fallback below that was cut
   between its two renames.
2. ``staged(target)``: a private folder ``.<name>.stage-XXXX`` beside the target (same parent,
   so the same filesystem and the same relative paths to everything around it), removed on the
   way out whatever happens.
3. ``swap_in(stage, target)``: the staged folder becomes the target in one system call.
   A new target: ``rename(2)``. An existing one: ``renameat2(RENAME_EXCHANGE)`` on Linux
   (``renamex_np(RENAME_SWAP)`` on macOS) exchanges the two folders atomically; the old one,
   now under the staging name, is then removed. Every reader, at every instant, sees the whole
   old folder or the whole new one, and so does whatever a SIGKILL leaves.

Why an exchange and not a symlink flip (``target -> .target-v2``, replaced by ``rename(2)`` of
a new symlink): an exchange keeps the target a plain folder. Runs and exports travel between
people (tar, zip, scp, Windows shares) and a symlink does not survive all of them; a symlink
target would also be one more path every reader has to confine ("every file is untrusted
input": a hostile run's ``export`` could point anywhere); and an existing plain folder cannot be
turned into a symlink atomically. The exchange needs a filesystem that implements it: ext4, xfs,
btrfs, f2fs, tmpfs and overlayfs do (Raspberry Pi OS and Android build machines run on them);
FAT/exFAT (a USB stick), NFS and SMB do not. There (or with ``EDGECNN_NO_EXCHANGE=1``) the swap
falls back to two renames, target -> ``.<name>.old-XXXX`` then stage -> target: a reader may then
find no folder for that instant, and a SIGKILL between the two renames leaves the old folder
under its ``.old-`` name, which the next command that takes the lock renames back (the old
state). docs/atomicity.md lists what each command writes and what a SIGKILL leaves at each step.

Durability: the staged files and the folder are fsynced before the swap and the parent after it,
so a power cut also leaves one whole state (on filesystems that order metadata, as ext4 does).

``pause_point(name)`` is where the tests stop a real process (``EDGECNN_PAUSE_AT=name``) to kill
it there with SIGKILL; it does nothing otherwise.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

STAGE_TAG = ".stage-"
OLD_TAG = ".old-"
MAX_CARRIED = 10_000  # entries carried from an old folder into a new one (beyond: refused by the caller)

_held: Dict[str, Tuple[int, int]] = {}  # lock file -> (fd, depth): re-entrant within a process


# ---------------------------------------------------------------------------- names
def _tag(target) -> str:
    """The target's name in the names beside it, short enough to leave room for a suffix under
    the usual 255-byte limit (a long name keeps its start and gains a hash of the whole)."""
    name = Path(target).name
    if len(os.fsencode(name)) <= 100:
        return name
    import hashlib

    return name[:60] + "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]


def lock_file(target) -> Path:
    target = Path(target)
    return target.parent / f".{_tag(target)}.lock"


def stage_prefix(target) -> str:
    return f".{_tag(target)}{STAGE_TAG}"


def _old_prefix(target) -> str:
    return f".{_tag(target)}{OLD_TAG}"


def is_stage(path) -> bool:
    """Whether ``path`` is a staging folder of this module (a hidden name holding the stage tag)."""
    name = Path(path).name
    return name.startswith(".") and STAGE_TAG in name


# ---------------------------------------------------------------------------- the lock
@contextlib.contextmanager
def locked(target, *, echo: Optional[Callable[[str], None]] = None) -> Iterator[Path]:
    """Hold the exclusive lock on ``target`` (a folder that may not exist yet); yields the target.

    On entry, what dead holders left beside the target is cleaned up (``recover``). The lock file
    is removed on release; a waiting process notices and locks the new one (the path is checked
    against the locked file, so two processes never both believe they hold it).
    """
    target = Path(target)
    path = lock_file(target)
    key = os.path.abspath(path)
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield target
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, target, echo)
    _held[key] = (fd, 1)
    try:
        recover(target)
        yield target
    except Exception as e:  # noqa: BLE001 - only the operating system's refusals are reworded
        from edgecnn.errors import SystemResourceError, system_error

        if isinstance(e, OSError) and e.filename is None:  # a failed write() names no file: name the folder
            e.filename = str(target)
        failure = system_error(e)
        if failure is None:
            raise
        raise SystemResourceError(f"{failure.message} Nothing in {target} was changed.") from e
    finally:
        del _held[key]
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def _acquire(path: Path, target: Path, echo) -> int:
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told and echo is not None:
                    echo(f"waiting: another edgecnn command ({_holder(fd)}) is writing {target}")
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                same = False  # the holder removed it on release: lock the next one
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def holds_lock(target) -> bool:
    return os.path.abspath(lock_file(target)) in _held


def recover(target) -> List[str]:
    """Under the lock: roll back a fallback swap cut between its renames, then remove every
    staging and old folder that dead holders left beside ``target``. Returns what was removed."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return []
    stages = sorted(p for p in parent.iterdir() if p.name.startswith(stage_prefix(target)))
    olds = sorted(p for p in parent.iterdir() if p.name.startswith(_old_prefix(target)))
    if olds and not os.path.lexists(target):
        os.rename(olds[-1], target)  # the old state, whole: the new one was never swapped in
        olds = olds[:-1]
    for p in stages + olds:
        remove_tree(p)
    return [p.name for p in stages + olds]


def remove_tree(p: Path) -> None:
    """Remove a folder we made (a symlink in its place is unlinked, never followed)."""
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------- staging and the swap
@contextlib.contextmanager
def staged(target) -> Iterator[Path]:
    """A new staging folder beside ``target`` (the lock must be held); removed on the way out
    (after ``swap_in`` it holds the old folder, which goes with it)."""
    target = Path(target)
    if not holds_lock(target):
        raise RuntimeError(f"staging {target} without its lock")
    stage = Path(tempfile.mkdtemp(prefix=stage_prefix(target), dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp's 0700 would make the swapped-in folder private
        yield stage
    finally:
        remove_tree(stage)


def swap_in(stage: Path, target: Path) -> None:
    """Make ``stage`` the ``target`` in one rename (see the module doc); afterwards ``stage``
    holds the old folder, or nothing when there was none."""
    stage, target = Path(stage), Path(target)
    _fsync_tree(stage)
    pause_point("commit-before-swap")
    if not os.path.lexists(target):
        os.rename(stage, target)
    elif target.is_symlink() or not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (a file or a symlink is never replaced)", str(target))
    elif not exchange(stage, target):
        old = Path(tempfile.mkdtemp(prefix=_old_prefix(target), dir=target.parent))
        os.rename(target, old)  # onto the empty folder just made: atomic, and the name is ours
        pause_point("commit-between-renames")
        os.rename(stage, target)
        os.rename(old, stage)
    _fsync_dir(target.parent)
    pause_point("commit-after-swap")


_EXCHANGE_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", 95), getattr(errno, "EOPNOTSUPP", 95))


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths of one filesystem; False where the system cannot."""
    if os.environ.get("EDGECNN_NO_EXCHANGE"):
        return False
    fn = _exchange_fn()
    if fn is None:
        return False
    if fn(os.fsencode(str(a)), os.fsencode(str(b))) == 0:
        return True
    err = ctypes.get_errno()
    if err in _EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(b), None, str(a))


_fn_cache: list = []


def _exchange_fn():
    if not _fn_cache:
        _fn_cache.append(_find_exchange())
    return _fn_cache[0]


def _find_exchange():
    """renameat2(RENAME_EXCHANGE) on Linux, renamex_np(RENAME_SWAP) on macOS, else None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b, _f=libc.renameat2: _f(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        return lambda a, b, _f=libc.renamex_np: _f(a, b, 2)  # RENAME_SWAP
    return None


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- carrying files over
def carry_over(old: Path, stage: Path, *, skip: Callable[[str], bool] = lambda rel: False,
               limit: int = MAX_CARRIED) -> List[str]:
    """Hard-link into ``stage`` every entry of ``old`` that ``stage`` does not have (recursively;
    a copy where links are refused), except those ``skip(relative path)`` names. -> the relative
    paths carried. Nothing in ``old`` changes; more than ``limit`` entries is an OverflowError."""
    carried: List[str] = []
    todo = [Path()]
    while todo:
        rel = todo.pop()
        for entry in sorted(os.scandir(old / rel), key=lambda e: e.name):
            r = (rel / entry.name).as_posix()
            if skip(r):
                continue
            dst = stage / r
            if len(carried) >= limit:
                raise OverflowError(f"{old} holds more than {limit} entries to carry over")
            if entry.is_dir(follow_symlinks=False):
                if not dst.exists():
                    dst.mkdir()
                    carried.append(r)
                if dst.is_dir() and not dst.is_symlink():
                    todo.append(rel / entry.name)
            elif not os.path.lexists(dst):
                _link_or_copy(Path(entry.path), dst)
                carried.append(r)
    return carried


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


# ---------------------------------------------------------------------------- test hooks
def pause_point(name: str) -> None:
    """When ``EDGECNN_PAUSE_AT`` (a comma list) names this point, write ``<name>.paused`` (this
    pid) into ``EDGECNN_PAUSE_DIR`` and wait there until ``<name>.go`` appears: a test kills the
    process at this instant, or lets it go on. Does nothing otherwise."""
    names = os.environ.get("EDGECNN_PAUSE_AT")
    if not names or name not in names.split(","):
        return
    folder = Path(os.environ.get("EDGECNN_PAUSE_DIR") or tempfile.gettempdir())
    (folder / f"{name}.paused").write_text(f"{os.getpid()}\n")
    while not (folder / f"{name}.go").exists():
        time.sleep(0.02)
