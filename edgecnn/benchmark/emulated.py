"""``edgecnn benchmark --emulate pi4,pi5``: the TFLite artifacts of the targets counted on an
emulated Raspberry Pi core (``edgecnn.emulate``), with the latency its calibrated cost model
predicts, beside the rows measured on this host.

These rows are predictions, not measurements: every output keeps them apart from the measured
rows (the "emulated" key of results.json, emulated.csv, a section of their own in results.md
and report.md), and each carries the calibration's error (e.g. "±17%", or "uncalibrated" for a core
the model was not fitted on). ONNX and Keras artifacts are not emulated: the emulated guest runs
LiteRT only.
"""
from __future__ import annotations

import csv
import io
from typing import Callable, Iterable, List, Optional, Sequence, Tuple


EMULATED_TITLE = "Emulated Raspberry Pi (predicted, not measured)"

CSV_COLUMNS = ("label", "board", "core", "artifact", "precision", "model", "threads", "instructions",
               "predicted_ms", "fps", "error", "error_pct", "calibrated", "bound", "compute_ms", "refill_ms",
               "dram_ms", "bytes_loaded", "bytes_stored", "dram_bytes", "xnnpack", "invokes", "sha256")


def parse_boards(values, option: str = "--emulate") -> List[str]:
    """'pi4,pi5' and/or repeated values -> ['pi4', 'pi5'], each a board of the board table."""
    from edgecnn.measure.boards import parse_targets

    return parse_targets(values, option, host=False)


def emulate_targets(targets: Sequence, boards: Sequence[str], threads: Sequence[int],
                    progress: Optional[Callable[[str], None]] = None) -> Tuple[List[dict], List[str]]:
    """(rows, notes): ``edgecnn.emulate.emulate`` rows for every TFLite artifact among ``targets``
    (``benchmark.targets.Target``s) on each board and thread count, each with the artifact's
    precision, model and sha256 added. All artifacts of a board are counted in one emulated process."""
    from edgecnn.emulate import emulate
    from edgecnn.measure.boards import BOARDS
    from edgecnn.core.files import sha256_file

    say = progress or (lambda s: None)
    tfl = [t for t in targets if t.format == "tflite"]
    notes = []
    if not tfl:
        notes.append("not emulated: no TFLite artifact among the targets (the emulated Pi runs LiteRT only; "
                     "ONNX and Keras files are measured here only)")
        say(notes[-1])
        return [], notes
    skipped = [t.name for t in targets if t.format != "tflite"]
    if skipped:
        notes.append(f"not emulated (not TFLite): {', '.join(skipped)}")
    by_path = {str(t.path): t for t in tfl}  # two folders may hold files of the same name
    rows: List[dict] = []
    for board in boards:
        b = BOARDS[board]
        say(f"emulating {board} ({b.core}): {len(tfl)} artifact{'s' * (len(tfl) != 1)}")
        for r in emulate([t.path for t in tfl], board, threads=list(threads)):
            t = by_path.get(r.get("path"))
            if t is not None:
                r = dict(r, precision=t.precision, model=t.model, sha256=sha256_file(t.path))
            rows.append(r)
    return rows, notes


def format_instructions(n) -> str:
    """Instructions per inference in millions: '0.075' for a tiny model, '312.4' for a big one."""
    m = float(n) / 1e6
    return f"{m:.3f}" if m < 10 else f"{m:.1f}"


HEAD = ("artifact", "board", "thr", "instr/inference (M)", "predicted ms", "FPS", "error", "bound", "XNNPACK")


def _cells(r: dict) -> List[str]:
    from edgecnn.core.text import shown
    from edgecnn.emulate import format_error

    return [shown(r["artifact"], 80), shown(r["label"], 80), str(r["threads"]), format_instructions(r["instructions"]),
            f"{r['predicted_ms']:.3f}", f"{r['fps']:.1f}", format_error(r), shown(r.get("bound") or "-", 40),
            "yes" if r.get("xnnpack") else "no"]


NOTE = ("Instructions counted under qemu-user on the board's core (per inference, after warm-up); latency "
        "predicted by the calibrated cost model, not measured on a board; error: the calibration's largest "
        "left-out error (docs/arm-emulation.md).")


def format_table(rows: Sequence[dict]) -> str:
    """The aligned terminal table of emulated rows, under its own heading."""
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(HEAD)]
    numeric = {2, 3, 4, 5}

    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([EMULATED_TITLE, line(HEAD), "  ".join("-" * w for w in widths)] + [line(b) for b in body]
                     + [NOTE])


def markdown_section(rows: Sequence[dict], level: str = "##") -> List[str]:
    """The Markdown section (heading, table, note) for results.md and report.md."""
    lines = [f"{level} {EMULATED_TITLE}", "", "| " + " | ".join(HEAD) + " |", "|" + "|".join("---" for _ in HEAD) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    return lines + ["", NOTE]


def csv_text(rows: Iterable[dict]) -> str:
    from edgecnn.emulate import format_error

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(dict(r, error=format_error(r)))
    return buf.getvalue()


def check_emulator() -> None:
    """EmulatorError (one line naming the install command) when qemu-user, the arm64 root or gcc
    for the counting plugin is missing: checked before anything is measured."""
    from edgecnn.emulate import qemu

    qemu.ready()
