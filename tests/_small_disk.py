"""Runs inside a private mount namespace (``unshare --user --map-root-user --mount``): a small
tmpfs that really fills up (ENOSPC), made without root outside and gone when this process ends.
Called by tests/test_os_boundary.py with one JSON job; prints one JSON line with what happened.

Jobs: ``command`` copies ``copy`` (a folder) onto the disk, fills it to ``leave`` bytes, runs an
edgecnn command (``{disk}`` in its arguments is the disk) and reports its exit code, output and
the sha256 of every file on the disk before and after. ``train`` trains a tiny run on the disk,
fills the disk while it waits after epoch 1 (EDGECNN_PAUSE_AT), lets it go on, then frees the
space and resumes it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "edgecnn.cli"]
FILLER = "filler.bin"


def digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != FILLER}


def fill(disk: Path, leave: int) -> None:
    st = os.statvfs(disk)
    n = max(0, st.f_bavail * st.f_frsize - leave)
    try:
        with open(disk / FILLER, "ab") as f:
            f.write(b"\0" * n)
    except OSError:
        pass


def run(args, disk: Path, env=None):
    r = subprocess.run(CLI + [str(a).replace("{disk}", str(disk)) for a in args], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})), timeout=900)
    return r.returncode, r.stdout + r.stderr


def command(job, disk: Path) -> dict:
    if job.get("copy"):
        subprocess.run(["cp", "-a", job["copy"], str(disk / "w")], check=True)
    fill(disk, job["leave"])
    before = digest(disk)
    rc, out = run(job["args"], disk)
    return {"rc": rc, "out": out, "before": before, "after": digest(disk),
            "entries": sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.name != FILLER)}


def train(job, disk: Path) -> dict:
    pause = disk.parent / "pause"
    pause.mkdir(exist_ok=True)
    args = [a.replace("{disk}", str(disk)) for a in job["args"]]
    env = dict(os.environ, EDGECNN_PAUSE_AT="train-epoch-1", EDGECNN_PAUSE_DIR=str(pause))
    p = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 900
    while not (pause / "train-epoch-1.paused").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    fill(disk, job["leave"])  # the disk fills up while epoch 2 runs: its checkpoint cannot be written
    (pause / "train-epoch-1.go").touch()
    out1, _ = p.communicate(timeout=900)
    run_dir = disk / "alexnet_tiny_dw" / "full"
    state = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else None
    ckpts = sorted(str(q.relative_to(run_dir)) for q in (run_dir / "checkpoints").rglob("*")) \
        if (run_dir / "checkpoints").is_dir() else []
    (disk / FILLER).unlink()
    rc2, out2 = run(["train", "--resume", str(run_dir), "--quiet"], disk)
    final = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else None
    return {"rc": p.returncode, "out": out1, "state": state, "checkpoints": ckpts, "resume_rc": rc2,
            "resume_out": out2, "final": final}


def main():
    job = json.loads(sys.argv[1])
    disk = Path(job["disk"])
    disk.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={job['size']}", "tmpfs", str(disk)], check=True)
    print(json.dumps((train if job["kind"] == "train" else command)(job, disk)))


if __name__ == "__main__":
    main()
