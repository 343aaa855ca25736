"""For each target, the one file to ship: the fastest artifact that passed verification, on that
target's own costs.

A target is a board of the one board table (``edgecnn.measure.boards``: pi4, pi5, pi3, ...) or
``host``, this machine. The costs come from the results document of a benchmark:

* ``host``: the measured rows (p50 latency, FPS, peak RSS), each artifact on the runtime that ran it
  fastest (LiteRT for .tflite, ONNX Runtime for .onnx; the Keras reference is no candidate);
* a board: the emulated rows (``--emulate``/``--target``): instructions counted under qemu-user on
  that board's core and the latency the calibrated cost model predicts, TFLite artifacts only
  (what XNNPACK runs on a Pi; ONNX Runtime's kernels are not emulated), with the model's error.

Artifacts are ranked by their latency at the fewest threads measured (one thread unless only more
were), and the fastest is recommended, with its latency at 1 and 4 threads where known, FPS, size,
verified top-1 and the reason in one sentence ("int8: 2.6x faster than fp32 on the Raspberry Pi 4,
0.4 points below Keras"). A target without costs for any verified artifact gets no entry, and the
caller says why.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from edgecnn.measure.boards import HOST, target_names  # noqa: F401  (parse_targets beside them)

DEFAULT_TARGETS = ("pi4", "pi5", HOST)


def _title(target: str) -> str:
    if target == HOST:
        return "this machine"
    from edgecnn.measure.boards import BOARDS

    return f"the {BOARDS[target].title}"


def _host_costs(doc: dict) -> Dict[str, Dict[int, dict]]:
    """artifact -> threads -> the fastest measured row (by p50) at that thread count."""
    out: Dict[str, Dict[int, dict]] = {}
    for r in doc.get("rows") or []:
        if r.get("format") == "keras" or r.get("remote"):
            continue
        lat = r["timing"]["latency"]["p50_ms"]
        cell = out.setdefault(r["artifact"], {})
        best = cell.get(r["threads"])
        if best is None or lat < best["ms"]:
            cell[r["threads"]] = {"ms": lat, "fps": r["timing"]["fps"], "runtime": r["runtime"],
                                  "peak_rss_mb": (r.get("memory") or {}).get("peak_rss_mb")}
    return out


def _board_costs(doc: dict, board: str) -> Dict[str, Dict[int, dict]]:
    out: Dict[str, Dict[int, dict]] = {}
    for r in doc.get("emulated") or []:
        if r.get("board") != board:
            continue
        out.setdefault(r["artifact"], {})[r["threads"]] = {
            "ms": r["predicted_ms"], "fps": r["fps"], "runtime": "litert", "peak_rss_mb": None,
            "error_pct": r.get("error_pct")}
    return out


def _points(keras_top1: Optional[float], top1: Optional[float]) -> str:
    if keras_top1 is None or top1 is None:
        return ""
    d = 100.0 * (keras_top1 - top1)
    if abs(d) < 0.05:
        return ", the same top-1 as Keras"
    return f", {abs(d):.1f} points {'below' if d > 0 else 'above'} Keras"


def recommend(doc: dict, manifest: dict, targets: Sequence[str]) -> Dict[str, dict]:
    """{target: recommendation} for every target with costs for a verified artifact of ``manifest``."""
    arts = manifest["artifacts"]
    keras_top1 = (manifest.get("keras") or {}).get("top1")
    out: Dict[str, dict] = {}
    for target in targets:
        costs = _host_costs(doc) if target == HOST else _board_costs(doc, target)
        cand = {a: c for a, c in costs.items() if a in arts and arts[a].get("verified") and c}
        if not cand:
            continue
        rank_threads = min(min(c) for c in cand.values())
        ranked = sorted((c[rank_threads]["ms"], a) for a, c in cand.items() if rank_threads in c)
        if not ranked:
            continue
        best_ms, best = ranked[0]
        a, c = arts[best], cand[best]
        top1 = (a.get("verification") or {}).get("top1")
        fp32 = next((n for n, x in arts.items() if x["precision"] == "fp32" and x["format"] == a["format"]), None)
        where = _title(target)
        if fp32 is not None and fp32 != best and rank_threads in cand.get(fp32, {}):
            speed = f"{cand[fp32][rank_threads]['ms'] / best_ms:.1f}x faster than fp32 on {where}"
        elif len(ranked) > 1:
            speed = f"the fastest verified artifact on {where} ({ranked[1][1]} {ranked[1][0] / best_ms:.1f}x slower)"
        else:
            speed = f"the only verified artifact with costs on {where}"
        rec = {"artifact": best, "source": "measured" if target == HOST else "predicted",
               "runtime": c[rank_threads]["runtime"], "threads_ranked": rank_threads,
               "latency_ms": {str(t): round(float(v["ms"]), 4) for t, v in sorted(c.items())},
               "fps": {str(t): round(float(v["fps"]), 2) for t, v in sorted(c.items())},
               "peak_rss_mb": c[rank_threads].get("peak_rss_mb"), "bytes": a["bytes"], "top1": top1,
               "reason": f"{a['precision']}: {speed}{_points(keras_top1, top1)}"}
        if target != HOST:
            rec["error_pct"] = c[rank_threads].get("error_pct")
        out[target] = rec
    return out


def markdown_lines(recs: Dict[str, dict], targets: Sequence[str], missing_reason: str = "") -> List[str]:
    """One line per target, for the top of report.md and results.md."""
    lines = []
    for t in targets:
        r = recs.get(t)
        if r is None:
            lines.append(f"- **{t}**: no recommendation{': ' + missing_reason if missing_reason else ''}.")
            continue
        lat = " / ".join(f"{v:.2f} ms ({k} thread{'s' * (k != '1')})" for k, v in r["latency_ms"].items())
        err = f" ±{r['error_pct']:.0f}%" if r.get("error_pct") else ""
        kind = "predicted" if r["source"] == "predicted" else "measured"
        lines.append(f"- **{t}**: `{r['artifact']}` — {kind} {lat}{err}; {r['reason']}.")
    return lines
