"""Run ``edgecnn`` in a real process within limits, and see what it did: its exit code, its output,
its wall time and its peak resident memory, optionally under an address-space limit (RLIMIT_AS)
so that an allocation past it fails instead of swapping.

The peak is the child's own ``VmHWM`` (/proc), written by the child at exit and sampled while it
runs (a child killed by a signal writes nothing). Not wait4's ``ru_maxrss``: Linux carries the
high-water mark of the memory a process had before ``exec`` into it, and a child forked from a
pytest worker that imported TensorFlow starts with that worker's few hundred MB.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

GIB = 1 << 30
LIMIT_S = 30.0
# Run first in the child: its peak resident memory (kB) into $EDGECNN_TEST_HWM at exit.
_HWM = """
import atexit as _atexit, os as _os
def _edgecnn_test_hwm():
    try:
        with open("/proc/self/status") as _f:
            _kb = next(_l.split()[1] for _l in _f if _l.startswith("VmHWM:"))
        with open(_os.environ["EDGECNN_TEST_HWM"], "w") as _out:
            _out.write(_kb)
    except (OSError, KeyError, StopIteration):
        pass
_atexit.register(_edgecnn_test_hwm)
"""
_CLI = _HWM + "import sys\nsys.argv[0] = 'edgecnn'\nfrom edgecnn.cli import main\nmain()\n"


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    except (OSError, StopIteration, ValueError):
        return 0


@dataclasses.dataclass
class Outcome:
    rc: int
    out: str
    wall_s: float
    max_rss: int  # bytes

    def error_lines(self):
        return [ln for ln in self.out.splitlines() if ln.startswith("Error:")]


def run_edgecnn(args, *, cwd=None, env: Optional[dict] = None, timeout_s: float = LIMIT_S,
                address_space: Optional[int] = GIB, python_args=()) -> Outcome:
    """``edgecnn ARGS`` (or ``python -c CODE ARGS...`` for ``python_args=["-c", CODE, ...]``) in a fresh process."""
    full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(env or {}))

    def limit():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    if python_args:
        assert python_args[0] == "-c", "python_args: ['-c', code, args...]"
        argv = [sys.executable, "-c", _HWM + python_args[1], *python_args[2:]]
    else:
        argv = [sys.executable, "-c", _CLI, *map(str, args)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryDirectory() as d:
        hwm_file = os.path.join(d, "hwm")
        full_env["EDGECNN_TEST_HWM"] = hwm_file
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, preexec_fn=limit)
        status, sampled = None, 0
        while time.monotonic() - t0 < timeout_s + 30:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            sampled = max(sampled, _hwm_kb(p.pid))
            time.sleep(0.05)
        else:
            p.kill()
            _, status, _ = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        try:
            with open(hwm_file) as f:
                peak_kb = int(f.read())
        except (OSError, ValueError):
            peak_kb = sampled
    return Outcome(p.returncode, text, wall, max(peak_kb, sampled) * 1024)


def assert_one_error(o: Outcome, code: int, *words, max_rss: int = GIB, limit_s: float = LIMIT_S):
    """Exit ``code``, exactly one ``Error:`` line holding ``words``, no traceback, within ``limit_s``
    and ``max_rss`` of resident memory."""
    errors = o.error_lines()
    assert o.rc == code, f"exit {o.rc}, expected {code}:\n{o.out[-3000:]}"
    assert len(errors) == 1 and "Traceback" not in o.out, o.out[-3000:]
    for w in words:
        assert w.lower() in errors[0].lower(), errors[0]
    assert o.wall_s < limit_s, f"{o.wall_s:.1f} s"
    assert o.max_rss < max_rss, f"peak RSS {o.max_rss / GIB:.2f} GiB"
    return errors[0]


def digest(root) -> dict:
    """sha256 of every regular file under ``root`` (FIFOs and devices are left unopened)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
