"""Run ``edgecnn`` in a real process within limits, and see what it did: its exit code, its output,
its wall time and its peak resident memory (this child's own, from wait4), optionally under an
address-space limit (RLIMIT_AS) so that an allocation past it fails instead of swapping."""
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
    """``python -m edgecnn.cli ARGS`` (or ``python python_args`` when given) in a fresh process."""
    full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(env or {}))

    def limit():
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    argv = [sys.executable, *python_args] if python_args else [sys.executable, "-m", "edgecnn.cli",
                                                                 *map(str, args)]
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, preexec_fn=limit)
        status, usage = None, None
        while time.monotonic() - t0 < timeout_s + 30:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            p.kill()
            _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return Outcome(p.returncode, text, wall, usage.ru_maxrss * 1024)


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
