"""``edgecnn bench emulator``: the arm64 cost model against published Raspberry Pi figures.

The calibration models are built exactly as the published figures describe them (MobileNet v1
and v2 1.0 at 224x224 from keras.applications, random weights; fp32, and full-integer int8 with
int8 input/output calibrated on random images) by ``export.calibration_models`` (this package
sits below export and never converts); ``run`` counts each on every emulated board in one emulated
process per board (``edgecnn.emulate.qemu.count``), fits the cost model on the Pi 4 figures
(``edgecnn.emulate.model.calibration_table``) and writes the calibration table: published vs
predicted per figure, in the fit and left out of it, and the int8/fp32 ratios. ``--write``
replaces the calibration the package ships (edgecnn/emulate/calibration.json) with this one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from edgecnn.emulate import BOARDS, model, qemu
from edgecnn.core.files import atomic_write_json, atomic_write_text, dist_version

CAL_MODELS = {"mobilenet_v2": "MobileNetV2", "mobilenet_v1": "MobileNet"}
PRECISIONS = ("fp32", "int8")


def run(out_dir="bench", *, build: Callable[[Path], Dict[str, Path]], boards: Sequence[str] = ("pi4", "pi5", "pi3"),
        cache_dir=None, invokes: int = 2, write: bool = False, say: Optional[Callable[[str], None]] = None) -> dict:
    """Count the calibration models ``build(cache_dir)`` returns ({"mobilenet_v2_fp32": path, ...},
    see ``CAL_MODELS`` and ``PRECISIONS``) on every board, fit, and write the calibration table."""
    say = say or (lambda s: None)
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / ".cache" / "emulator"
    if "pi4" not in boards:
        boards = ("pi4", *boards)
    t0 = time.time()
    qemu.ready()  # a missing qemu, root or gcc fails now, not after building the models
    paths = build(cache_dir)
    counts, walls = {}, {}
    for board in boards:
        say(f"counting {len(paths)} models on the {BOARDS[board].label}")
        t = time.time()
        for key, c in zip(paths, qemu.count(list(paths.values()), board, invokes=invokes)):
            counts[f"{board}/{key}"] = c.to_json()
        walls[board] = round(time.time() - t, 1)
    table = model.calibration_table(counts)
    predictions = []
    for board in boards:
        for key in paths:
            for threads in (1, 4):
                p = model.predict_from(counts[f"{board}/{key}"], board, threads, table["eta"], table["k_cycles_per_line"])
                predictions.append({"board": board, "model": key, "threads": threads,
                                    "instructions": counts[f"{board}/{key}"]["instructions"], **p.to_json()})
    doc = {"schema": 1, "command": "edgecnn bench emulator" + (" --write" if write else ""),
           "litert": dist_version("ai-edge-litert"), "invokes": invokes, "boards": list(boards),
           "counts": counts, "fit": table, "predictions": predictions,
           "wall_s": {"total": round(time.time() - t0, 1), "count_per_board": walls}}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "emulator_calibration.json", doc)
    atomic_write_text(out_dir / "emulator_calibration.md", markdown(doc))
    if write:
        atomic_write_json(model.CALIBRATION_FILE, {k: doc[k] for k in ("schema", "command", "litert", "invokes",
                                                                       "counts", "fit")})
    return doc


def markdown(doc: dict) -> str:
    fit = doc["fit"]
    lines = ["# The arm64 cost model against published Raspberry Pi figures", "",
             f"`{doc['command']}` (LiteRT {doc['litert']}, {doc['invokes']} counted invokes per model). "
             f"Fitted on the Pi 4 figures: eta = {fit['eta']:.3f} of the compute bound achieved, "
             f"k = {fit['k_cycles_per_line']:.1f} core cycles per L1-missing line.", "",
             "| board | model | precision | threads | published ms | predicted ms | error | left out: ms | left-out error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in fit["figures"]:
        lines.append(f"| {r['board']} | {r['model']} | {r['precision']} | {r['threads']} | {r['published_ms']:.0f} | "
                     f"{r['predicted_ms']:.1f} | {r['error_pct']:+.0f}% | {r['left_out_ms']:.1f} | "
                     f"{r['left_out_error_pct']:+.0f}% |")
    lines += ["", "| model | int8/fp32 published | predicted | error |", "|---|---|---|---|"]
    for r in fit["ratios"]:
        lines.append(f"| {r['model']} | {r['published']:.3f} | {r['predicted']:.3f} | {r['error_pct']:+.0f}% |")
    if fit.get("unfitted_checks"):
        lines += ["", "Outside the fit (another instruction set: indicative only):", "",
                  "| board | model | precision | threads | published ms | predicted ms | error |", "|---|---|---|---|---|---|---|"]
        for r in fit["unfitted_checks"]:
            lines.append(f"| {r['board']} | {r['model']} | {r['precision']} | {r['threads']} | {r['published_ms']:.0f} | "
                         f"{r['predicted_ms']:.1f} | {r['error_pct']:+.0f}% |")
    lines += ["", "Sources: " + "; ".join(sorted({r["source"] for r in fit["figures"] + fit.get("unfitted_checks", [])})), "",
              "## Predictions per board (instructions counted per inference)", "",
              "| board | model | M instructions | threads | predicted ms | compute / refill / DRAM ms | bound |",
              "|---|---|---|---|---|---|---|"]
    for p in doc["predictions"]:
        lines.append(f"| {p['board']} | {p['model']} | {p['instructions'] / 1e6:.1f} | {p['threads']} | {p['ms']:.1f} | "
                     f"{p['compute_ms']:.1f} / {p['refill_ms']:.1f} / {p['dram_ms']:.1f} | {p['bound']} |")
    lines += ["", f"Wall: {doc['wall_s']['total']:.0f} s (counting per board: "
                  + ", ".join(f"{b} {s:.0f} s" for b, s in doc["wall_s"]["count_per_board"].items()) + ")."]
    return "\n".join(lines) + "\n"
