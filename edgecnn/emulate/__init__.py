"""ARM truth without a Pi: what a TFLite artifact executes on a Raspberry Pi's core, counted
deterministically under qemu-user, and the latency a calibrated cost model predicts from it.

- ``qemu``: the arm64 root, the counting plugin (``counter.c``), the guest runner.
- ``boards``: Pi 4 / Pi 5 / Pi 3 / Zero 2: core, cpuinfo, clock, caches, DRAM bandwidth.
- ``model``: counts -> predicted latency, calibrated on published Raspberry Pi 4 figures.

``emulate(paths, board, threads)`` is the one call the rest of edgecnn makes.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from edgecnn.measure.boards import BOARDS  # noqa: F401  (re-exported: the board names)

DEFAULT_INVOKES = 2


def emulate(paths: Sequence, board: str, threads: Sequence[int] = (1,), *, invokes: int = DEFAULT_INVOKES) -> List[dict]:
    """One row per (artifact, thread count): the per-inference counts on the emulated ``board``
    and the predicted latency. All artifacts are counted in one emulated process.

    Row keys: label ("emulated pi4 (cortex-a72)"), artifact, path, board, core, threads, instructions,
    classes, bytes_loaded, bytes_stored, misses, dram_bytes, xnnpack, predicted_ms, fps,
    compute_ms, refill_ms, dram_ms, bound, error_pct (None: uncalibrated core), calibrated."""
    from edgecnn.emulate import model, qemu

    paths = [Path(p) for p in paths]
    counts = qemu.count(paths, board, invokes=invokes)
    cal = model.load_calibration()
    rows = []
    b = BOARDS[board]
    for path, c in zip(paths, counts):
        cj = c.to_json()
        for t in threads:
            p = model.predict(cj, board, int(t), cal)
            rows.append({"label": b.label, "artifact": path.name, "path": str(path), "board": board, "core": b.core,
                         "threads": int(t), "instructions": c.instructions, "classes": c.classes,
                         "bytes_loaded": c.bytes_loaded, "bytes_stored": c.bytes_stored, "misses": c.misses,
                         "dram_bytes": (c.misses[-1] + c.writebacks) * model.LINE, "xnnpack": c.xnnpack,
                         "predicted_ms": p.ms, "fps": p.fps, "compute_ms": p.compute_ms, "refill_ms": p.refill_ms,
                         "dram_ms": p.dram_ms, "bound": p.bound, "error_pct": p.error_pct,
                         "calibrated": p.error_pct is not None, "invokes": invokes})
    return rows


def format_error(row: dict) -> str:
    """'±16%' (the calibration's largest left-out error) or 'uncalibrated'."""
    return f"±{row['error_pct']:.0f}%" if row.get("error_pct") is not None else "uncalibrated"
