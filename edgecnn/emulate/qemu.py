"""Counting what TFLite models execute on an emulated board's core: qemu-user + a TCG plugin.

``count(models, board)`` runs the guest script (``guest.py``) under ``qemu-aarch64 -L ROOT -cpu
<core> -plugin counter.so`` with the board's /proc/cpuinfo and CPU list in the root, so LiteRT's
XNNPACK sees that board and selects its kernels (dot-product int8 kernels on a Pi 5's A76, not on
a Pi 4's A72). The plugin (``counter.c``, built here with gcc on first use) counts instructions by
class, bytes moved and simulated cache misses between marker syscalls around the invoke loop, so
interpreter start-up is not counted: the counts repeat to within a few instructions in 10^8.

Nothing here needs TensorFlow. The root is built by ``tools/arm_root.sh`` (``make arm-root``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from edgecnn.measure.boards import BOARDS, Board
from edgecnn.errors import EmulatorError

ROOT_FORMAT = "format=1"
GUEST_SITE = "/opt/edgecnn-site"
GUEST_PYTHON = "/usr/bin/python3.11"
HERE = Path(__file__).resolve().parent
RESULT_PREFIX = "EDGECNN-RESULT "
MAKE_ROOT = "make arm-root (tools/arm_root.sh)"


@dataclass
class Counts:
    """What one model executed per invoke on one emulated core (all figures per inference)."""
    board: str
    core: str
    invokes: int
    instructions: float
    classes: Dict[str, float]
    bytes_loaded: float
    bytes_stored: float
    misses: List[float]            # per cache level, L1 first
    writebacks: float              # dirty lines written back from the last level
    xnnpack: bool                  # XNNPACK took the graph (asserted from the interpreter, not assumed)
    delegated_tensors: int
    delegate_nodes: int
    output_sha256: str
    output: list = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def default_root() -> Path:
    """EDGECNN_ARM_ROOT, else the checkout's .arm-root, else ~/.cache/edgecnn/arm64-root."""
    env = os.environ.get("EDGECNN_ARM_ROOT")
    if env:
        return Path(env)
    checkout = HERE.parents[1] / ".arm-root"
    if checkout.exists():
        return checkout
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgecnn" / "arm64-root"


def check_root(root: Path) -> Path:
    """``root`` if its stamp names this edgecnn's root format. The stamp is read like any untrusted
    file (a regular file of at most 4 KiB: a FIFO in its place is refused, not waited on)."""
    from edgecnn.data.limits import read_bytes
    from edgecnn.errors import DataError

    stamp = root / ".edgecnn-root"
    if not os.path.lexists(stamp):
        raise EmulatorError(f"no arm64 root at {root}: build it with {MAKE_ROOT}")
    try:
        text = read_bytes(stamp, "arm64 root stamp", 4096).decode("utf-8", "replace").strip()
    except DataError as e:
        raise EmulatorError(f"{e.message} Rebuild the root with ARM_REBUILD=1 {MAKE_ROOT}") from None
    if not text.startswith(ROOT_FORMAT + " "):
        raise EmulatorError(f"the arm64 root at {root} is of another format ({text[:40]!r}): rebuild it with "
                            f"ARM_REBUILD=1 {MAKE_ROOT}")
    if not (root / GUEST_PYTHON.lstrip("/")).is_file():
        raise EmulatorError(f"the arm64 root at {root} has no {GUEST_PYTHON}: rebuild it with ARM_REBUILD=1 {MAKE_ROOT}")
    return root


def qemu_binary() -> str:
    exe = shutil.which("qemu-aarch64")
    if exe is None:
        static = " (qemu-aarch64-static cannot load plugins)" if shutil.which("qemu-aarch64-static") else ""
        raise EmulatorError(f"qemu-aarch64 not found{static}: apt-get install qemu-user (or {MAKE_ROOT})")
    return exe


def plugin_path() -> Path:
    """counter.c built with gcc, cached by the source's sha256 (a changed source is rebuilt)."""
    src = HERE / "counter.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecnn" / "plugins"
    so = cache / f"counter-{digest}.so"
    if so.is_file():
        return so
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise EmulatorError(f"gcc not found (it builds the counting plugin): apt-get install gcc (or {MAKE_ROOT})")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".counter-", suffix=".so", dir=cache)
    os.close(fd)
    res = subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-Wall", "-o", tmp, str(src)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        first = (res.stderr.strip().splitlines() or ["?"])[0]
        raise EmulatorError(f"building the counting plugin failed: {first}")
    os.replace(tmp, so)
    return so


def ready(root: Optional[Path] = None) -> Path:
    """The root, once the root, qemu-aarch64 and the counting plugin are all there; else the
    EmulatorError naming what to install. Callers check it before any slow work."""
    root = check_root(root or default_root())
    qemu_binary()
    plugin_path()
    return root


@contextlib.contextmanager
def _board_files(root: Path, board: Board):
    """The board's /proc/cpuinfo and CPU lists in the root, held under a lock for the whole run:
    one root serves every board, one board at a time."""
    lock_path = root / ".edgecnn-board.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            files = {root / "proc" / "cpuinfo": board.cpuinfo(),
                     root / "sys/devices/system/cpu/possible": board.cpu_list(),
                     root / "sys/devices/system/cpu/present": board.cpu_list()}
            for path, text in files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _net_regions(raw: List[dict]) -> List[dict]:
    """Per model, region 2k+1 (the invokes) less region 2k (the same loop without invokes)."""
    by = {r["region"]: r for r in raw}
    out = []
    for k in range(len(raw) // 2):
        base, r = by.get(2 * k), by.get(2 * k + 1)
        if base is None or r is None:
            break
        net = {"classes": {c: r["classes"][c] - base["classes"].get(c, 0) for c in r["classes"]},
               "misses": [a - b for a, b in zip(r["misses"], base["misses"])]}
        for key in ("instructions", "bytes_loaded", "bytes_stored", "writebacks", "accesses"):
            net[key] = r[key] - base[key]
        out.append(net)
    return out


def count(models: Sequence[Path], board: str, *, invokes: int = 4, warmup: int = 1, xnnpack: bool = True,
          root: Optional[Path] = None, timeout: float = 900.0) -> List[Counts]:
    """Per-invoke counts of each TFLite file in ``models`` on the emulated ``board``, measured in
    one guest process (one region per model)."""
    if board not in BOARDS:
        raise EmulatorError(f"unknown board {board!r}: one of {', '.join(BOARDS)}")
    b = BOARDS[board]
    if invokes < 1:
        raise EmulatorError("invokes must be at least 1")
    root = ready(root)
    work_rel = f"tmp/edgecnn-emu-{os.getpid()}-{time.monotonic_ns()}"
    work = root / work_rel
    work.mkdir(parents=True)
    try:
        job = {"models": []}
        for k, m in enumerate(models):
            shutil.copyfile(m, work / f"m{k}.tflite")
            job["models"].append({"path": f"/{work_rel}/m{k}.tflite", "invokes": invokes, "warmup": warmup,
                                  "xnnpack": xnnpack})
        (work / "job.json").write_text(json.dumps(job), encoding="utf-8")
        shutil.copyfile(HERE / "guest.py", work / "guest.py")
        out = work / "counts.jsonl"
        levels = ",".join(f"l{i + 1}={size}:{ways}" for i, (size, ways) in enumerate(b.caches))
        res = guest_run([f"/{work_rel}/guest.py", f"/{work_rel}/job.json"], board, root=root,
                        timeout=timeout, plugin_args=f"out={out},{levels}")
        if res.returncode != 0:
            tail = [ln for ln in res.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise EmulatorError(f"the emulated run on {board} failed (exit {res.returncode}): {tail[0][:200]}")
        guest = None
        for line in res.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                guest = json.loads(line[len(RESULT_PREFIX):])
        regions = _net_regions([json.loads(ln) for ln in out.read_text(encoding="utf-8").splitlines() if ln.strip()])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if guest is None or len(guest) != len(models) or len(regions) != len(models):
        raise EmulatorError(f"the emulated run on {board} reported {len(regions)} of {len(models)} regions")
    result = []
    for g, r in zip(guest, regions):
        n = float(invokes)
        engaged = g["delegate_nodes"] > 0
        if xnnpack and not engaged:
            raise EmulatorError(f"XNNPACK did not take the model on the emulated {board}: its counts would be "
                                f"LiteRT's builtin kernels, not what the board runs")
        result.append(Counts(board=board, core=b.core, invokes=invokes, instructions=r["instructions"] / n,
                             classes={k: v / n for k, v in r["classes"].items()},
                             bytes_loaded=r["bytes_loaded"] / n, bytes_stored=r["bytes_stored"] / n,
                             misses=[m / n for m in r["misses"]], writebacks=r["writebacks"] / n,
                             xnnpack=engaged, delegated_tensors=g["delegated_tensors"], delegate_nodes=g["delegate_nodes"],
                             output_sha256=g["output_sha256"], output=g["output"]))
    return result


def guest_run(argv: Sequence[str], board: str, *, root: Optional[Path] = None, site: Sequence[str] = (),
              timeout: float = 900.0, plugin_args: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run ``python3.11 ARGV...`` in the arm64 root on the emulated ``board`` (its core and its
    /proc/cpuinfo), without the counting plugin unless ``plugin_args`` is given. ``site``: extra
    guest directories put before the root's LiteRT + numpy on PYTHONPATH."""
    if board not in BOARDS:
        raise EmulatorError(f"unknown board {board!r}: one of {', '.join(BOARDS)}")
    b = BOARDS[board]
    exe = qemu_binary()
    root = check_root(root or default_root())
    cmd = [exe, "-L", str(root), "-cpu", b.qemu_cpu]
    if plugin_args is not None:
        cmd += ["-plugin", f"{plugin_path()},{plugin_args}"]
    cmd += [str(root / GUEST_PYTHON.lstrip("/")), "-B", *argv]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join([*site, GUEST_SITE]), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0",
           "HOME": "/tmp", "LANG": "C.UTF-8"}
    with _board_files(root, b):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"the emulated run on {board} took over {timeout:.0f} s") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m edgecnn.emulate.qemu --board pi4 [--site DIR] -- ARGS``: run the root's python
    with ARGS on the emulated board (stdout/stderr passed through; exit status returned)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m edgecnn.emulate.qemu")
    ap.add_argument("--board", required=True, choices=sorted(BOARDS))
    ap.add_argument("--site", action="append", default=[], help="guest directory to put on PYTHONPATH")
    ap.add_argument("--root", default=None)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    try:
        res = guest_run(args, ns.board, root=Path(ns.root) if ns.root else None, site=ns.site)
    except EmulatorError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        return e.exit_code
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    raise SystemExit(main())
