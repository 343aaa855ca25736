"""The comparison table (terminal, Markdown, CSV, JSON), plots, and merging results from devices.

Every figure carries its unit in its column name and the number of runs it rests on (column
``runs``). A row measured on this x86 host for a device profile is labelled
"x86 baseline of <device>" in every output; plot titles say "not device figures".
matplotlib is optional: without it the plots are skipped and the report says so.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from edgecnn.core.text import shown
from edgecnn.errors import BenchmarkError
from edgecnn.core.files import atomic_write_json, atomic_write_text
from edgecnn.core.plots import pyplot, save_figure

CSV_COLUMNS = (
    "artifact", "precision", "format", "runtime", "runtime_version", "precision_hint", "threads", "batch",
    "device_label", "device_kind", "device_profile", "size_bytes",
    "init_ms", "first_inference_ms", "warmup_count", "warmup_mean_ms",
    "count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "fps",
    "rss_before_mb", "peak_rss_mb", "peak_increase_mb",
    "top1", "agreement_with_keras", "verified", "verified_on",
    "sha256", "model", "run", "hostname", "cpu_model", "board", "machine", "isa_flags", "os", "python",
    "inputs", "isolation",
)


def flat_row(row: dict) -> dict:
    """One result row as the flat dict of CSV_COLUMNS."""
    t, lat, mem = row["timing"], row["timing"]["latency"], row["memory"]
    acc = row.get("accuracy") or {}
    plat, dev = row.get("platform") or {}, row.get("device") or {}
    out = {
        "artifact": row["artifact"], "precision": row.get("precision"), "format": row.get("format"),
        "runtime": row["runtime"], "runtime_version": row.get("runtime_version"),
        "precision_hint": (row.get("runtime_detail") or {}).get("precision_hint"),
        "threads": row["threads"], "batch": row["batch"],
        "device_label": dev.get("label"), "device_kind": dev.get("kind"), "device_profile": dev.get("profile"),
        "size_bytes": row.get("size_bytes"),
        "init_ms": t.get("init_ms"), "first_inference_ms": t.get("first_inference_ms"),
        "warmup_count": (t.get("warmup") or {}).get("count"), "warmup_mean_ms": (t.get("warmup") or {}).get("mean_ms"),
        "fps": t.get("fps"),
        "rss_before_mb": mem.get("rss_before_mb"), "peak_rss_mb": mem.get("peak_rss_mb"),
        "peak_increase_mb": mem.get("peak_increase_mb"),
        "top1": acc.get("top1"), "agreement_with_keras": acc.get("agreement_with_keras"),
        "verified": acc.get("verified"), "verified_on": acc.get("runtime"),
        "sha256": row.get("sha256"), "model": row.get("model"), "run": row.get("run"),
        "hostname": plat.get("hostname"), "cpu_model": plat.get("cpu_model"), "board": plat.get("board"),
        "machine": plat.get("machine"), "isa_flags": " ".join(plat.get("isa_flags") or []),
        "os": plat.get("os"), "python": plat.get("python"),
        "inputs": (row.get("inputs") or {}).get("source"), "isolation": row.get("isolation"),
    }
    out.update({k: lat.get(k) for k in ("count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms",
                                        "p95_ms", "p99_ms", "max_ms")})
    return out


def _pct(v) -> str:
    if v is None:
        return "-"
    v = float(v)
    return f"{v * 100:.1f}%" if v <= 1.0 else f"{v:.1f}%"


def _acc(row) -> str:
    a = row.get("accuracy") or {}
    if a.get("top1") is None:
        return "-"
    if a.get("verified_hint"):  # verified on this runtime under another precision hint
        return _pct(a["top1"]) + f" ({a['verified_hint']} hint)"
    mark = "" if a.get("verified") is None else (" ok" if a["verified"] else " FAILED")
    return _pct(a["top1"]) + mark


def _size(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f}" if n < 1024 * 1024 else f"{n / 1024:.0f}"


HEAD = ("artifact", "runtime", "thr", "batch", "size KiB", "init ms", "first ms", "mean ms", "std ms",
        "p50 ms", "p90 ms", "p99 ms", "FPS", "runs", "peak RSS MiB (+load)", "top-1 (verified)")


def _cells(row, with_device: bool, with_board: bool = False) -> List[str]:
    t, lat, mem = row["timing"], row["timing"]["latency"], row["memory"]
    cells = [shown(row["artifact"], 80), shown(runtime_cell(row), 60), str(row["threads"]), str(row["batch"]), _size(row.get("size_bytes")),
             f"{t['init_ms']:.1f}", f"{t['first_inference_ms']:.3f}", f"{lat['mean_ms']:.3f}", f"{lat['std_ms']:.3f}",
             f"{lat['p50_ms']:.3f}", f"{lat['p90_ms']:.3f}", f"{lat['p99_ms']:.3f}", f"{t['fps']:.1f}",
             str(lat["count"]), f"{mem['peak_rss_mb']:.1f} (+{mem['peak_increase_mb']:.1f})", _acc(row)]
    if with_device:
        cells.append(shown((row.get("device") or {}).get("label") or "-", 80))
    if with_board:
        cells.append(shown(_board(row) or "this host", 80))
    return cells


def runtime_cell(row) -> str:
    """The runtime's name, with the precision hint it ran under where it reports one (OpenVINO)."""
    hint = (row.get("runtime_detail") or {}).get("precision_hint")
    return f"{row['runtime']} ({hint})" if hint else str(row["runtime"])


def _several_boards(rows) -> bool:
    return len({(r.get("remote") or {}).get("host") for r in rows}) > 1


def _labels(rows) -> List[str]:
    seen = []
    for r in rows:
        lab = (r.get("device") or {}).get("label") or "-"
        if lab not in seen:
            seen.append(lab)
    return seen


def headline(rows) -> str:
    labs = [shown(lab, 120) for lab in _labels(rows)]
    base = [l for l in labs if l.startswith("x86 baseline")]
    text = "; ".join(labs)
    if base:
        text += " (x86 baseline: measured on this host, not on the device)"
    return text


def format_table(rows: Sequence[dict]) -> str:
    """The aligned terminal table; one device label in the heading, or a column when they differ."""
    if not rows:
        return "(no results)"
    with_dev, with_board = len(_labels(rows)) > 1, _several_boards(rows)
    head = list(HEAD) + (["device"] if with_dev else []) + (["board"] if with_board else [])
    body = [_cells(r, with_dev, with_board) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    numeric = set(range(2, 15))
    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    out = [headline(rows), line(head), "  ".join("-" * w for w in widths)]
    out += [line(b) for b in body]
    out.append("Latency per batch in ms over 'runs' timed runs after warm-up; FPS = 1000 / mean ms x batch; "
               "peak RSS of the benchmark process, (+ the rise over the runtime before the model loaded).")
    return "\n".join(out)


def markdown_table(rows: Sequence[dict]) -> str:
    with_dev, with_board = len(_labels(rows)) > 1, _several_boards(rows)
    head = list(HEAD) + (["device"] if with_dev else []) + (["board"] if with_board else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r, with_dev, with_board)) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(flat_row(r))
    return buf.getvalue()


# ----------------------------------------------------------------------------- plots
def _row_label(r, with_device: bool) -> str:
    lab = f"{r['artifact']}\n{r['runtime']} x{r['threads']}"
    if r.get("batch", 1) != 1:
        lab += f" b{r['batch']}"
    if with_device:
        lab += f"\n{(r.get('device') or {}).get('profile') or (r.get('platform') or {}).get('machine')}"
    return lab


def _title(kind: str, rows) -> str:
    labs = _labels(rows)
    t = f"{kind} - " + "; ".join(labs)
    if any(l.startswith("x86 baseline") for l in labs):
        t += "\n(x86 baseline measured on this host: not device figures)"
    return t


def _latency_axis(ax, values: Sequence[float], axis: str = "y") -> None:
    """A latency axis that reads plainly: log scale only when the values span more than a decade,
    every tick label a plain number (0.6, not 6x10^-1), minor labels only over short spans."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    vals = [v for v in values if v and v > 0]
    lo, hi = (min(vals), max(vals)) if vals else (1.0, 1.0)
    if hi / lo < 10:
        return  # linear: matplotlib's own ticks are plain and do not crowd
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    target.set_major_formatter(plain)
    target.set_minor_formatter(plain if hi / lo < 100 else NullFormatter())


def plot_latency(rows: Sequence[dict], path, emulated: Sequence[dict] = ()) -> Optional[Path]:
    """Box plot of each row's latency distribution (ms), and beside them the emulated boards'
    predicted latency of each artifact (one marker each, labelled "predicted"); None without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    with_dev = len(_labels(rows)) > 1
    data = [r.get("latencies_ms") or [r["timing"]["latency"]["p50_ms"]] for r in rows]
    emu = [e for e in emulated if e["threads"] == min(x["threads"] for x in emulated)] if emulated else []
    n = len(rows) + len(emu)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * n + 2), 5.2))
    if rows:
        ax.boxplot(data, positions=range(1, len(rows) + 1), showfliers=True, whis=(1, 99))
    boards = _several_boards(rows)
    labels = [_row_label(r, with_dev) + (f"\n{_board(r) or 'this host'}" if boards else "") + f"\nn={len(d)}"
              for r, d in zip(rows, data)]
    for i, e in enumerate(emu, start=len(rows) + 1):
        ax.plot([i], [e["predicted_ms"]], marker="D", color="tab:purple", ms=7, zorder=3)
        labels.append(f"{e['artifact']}\n{e['board']} ({e['threads']} thr)\npredicted")
    ax.set_xticks(range(1, n + 1))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlim(0.4, n + 0.6)
    ax.set_ylabel("latency per batch (ms)")
    _latency_axis(ax, [v for d in data for v in d] + [e["predicted_ms"] for e in emu])
    title = _title("Latency distribution (whiskers p1-p99)", rows) if rows else "Latency"
    if emu:
        title += "\ndiamonds: emulated boards, predicted by the calibrated cost model (not measured)"
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def pareto_front(points: Sequence[tuple]) -> List[int]:
    """Indices of the points (latency, accuracy) that no other point beats on both; by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _label_offsets(pts: Sequence[tuple], near_decades: float = 0.35, near_points: float = 1.5) -> Dict[int, float]:
    """Vertical label offsets (points) so that labels of neighbouring markers do not overlap: a
    marker close to already-labelled ones (within ``near_decades`` of latency on the log axis and
    ``near_points`` of accuracy) takes the next free level, alternating above and below."""
    import math
    levels = [6.0, -8.0, 18.0, -20.0, 30.0, -32.0, 42.0, -44.0]
    taken: List[tuple] = []
    out: Dict[int, float] = {}
    for i in sorted(range(len(pts)), key=lambda j: (pts[j][0], -pts[j][1])):
        x, y = pts[i]
        used = {lv for (px, py, lv) in taken
                if abs(math.log10(max(x, 1e-9)) - math.log10(max(px, 1e-9))) < near_decades and abs(y - py) < near_points}
        level = next((k for k in range(len(levels)) if k not in used), len(taken) % len(levels))
        taken.append((x, y, level))
        out[i] = levels[level]
    return out


def plot_pareto(rows: Sequence[dict], path, recommended: Optional[str] = None, title: Optional[str] = None,
                xlabel: str = "median latency per batch (ms)") -> Optional[Path]:
    """Verified top-1 accuracy vs latency, with the Pareto front and the ``recommended`` artifact
    marked; None without matplotlib or when no row has an accuracy. Rows: measured benchmark rows,
    or any rows with "artifact", "latency_ms" and "top1" (an emulated board's predictions)."""
    rows = [r for r in rows if _top1(r) is not None]
    plt = pyplot()
    if plt is None or not rows:
        return None
    with_dev = len(_labels(rows)) > 1
    pts = [(_latency(r), _top1(r)) for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    devices = _labels(rows)
    markers = "osD^v<>"
    for di, dev in enumerate(devices):
        idx = [i for i, r in enumerate(rows) if ((r.get("device") or {}).get("label") or "-") == dev]
        ax.scatter([pts[i][0] for i in idx], [pts[i][1] for i in idx], marker=markers[di % len(markers)],
                   label=dev if dev != "-" else None, zorder=3)
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--o", color="gray", mfc="none", ms=12,
            label="Pareto front", zorder=2)
    rec = [i for i, r in enumerate(rows) if recommended is not None and r.get("artifact") == recommended]
    if rec:
        ax.scatter([pts[rec[0]][0]], [pts[rec[0]][1]], marker="*", s=320, color="gold", edgecolor="black",
                   zorder=4, label=f"recommended: {recommended}")
    _latency_axis(ax, [p[0] for p in pts], axis="x")
    xs = [p[0] for p in pts]
    lo, hi = min(xs), max(xs)
    if hi == lo:  # one point, or all alike: a symmetric window instead of crowded log ticks
        ax.set_xlim(lo * 0.7, hi * 1.3)
    else:
        ax.margins(x=0.12, y=0.12)
    ys = [p[1] for p in pts]
    if max(ys) == min(ys):
        ax.set_ylim(min(ys) - 5, max(ys) + 5)
    right = sorted(range(len(pts)), key=lambda i: pts[i][0])[-max(1, len(pts) // 3):]
    for i, dy in _label_offsets(pts).items():
        left = i in right and len(pts) > 1  # labels of the right-most points go left: never clipped
        ax.annotate(_row_label(rows[i], with_dev).replace("\n", " "), pts[i], fontsize=7,
                    xytext=(-7 if left else 7, dy), ha="right" if left else "left",
                    textcoords="offset points", va="center",
                    arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5) if abs(dy) > 8 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("verified top-1 accuracy (%)")
    ax.set_title(title or _title("Accuracy vs latency", rows), fontsize=9)
    ax.grid(alpha=0.3)
    # below the axes: inside, a corner legend lands on a point (the slowest is often lowest too)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def _latency(r) -> float:
    return r["latency_ms"] if "latency_ms" in r else r["timing"]["latency"]["p50_ms"]


def _top1(r) -> Optional[float]:
    v = r["top1"] if "top1" in r else (r.get("accuracy") or {}).get("top1")
    if v is None:
        return None
    return float(v) * (100 if v <= 1 else 1)


def plot_target_pareto(doc: dict, target: str, path) -> Optional[Path]:
    """pareto_<target>.png: verified top-1 against the latency on that target (measured here for
    "host", predicted on an emulated board), the recommended artifact marked."""
    rec = (doc.get("recommended") or {}).get(target) or {}
    if target == "host":
        return plot_pareto(doc["rows"], path, rec.get("artifact"),
                           title="Accuracy vs latency on this machine (measured)")
    acc = {r["artifact"]: (r.get("accuracy") or {}).get("top1") for r in doc["rows"]}
    emu = [e for e in doc.get("emulated") or [] if e["board"] == target]
    if not emu:
        return None
    t = min(e["threads"] for e in emu)
    pts = [{"artifact": e["artifact"], "latency_ms": e["predicted_ms"], "top1": e.get("top1", acc.get(e["artifact"])),
            "precision": e.get("precision"), "runtime": "litert", "threads": t} for e in emu if e["threads"] == t]
    from edgecnn.measure.boards import BOARDS

    return plot_pareto(pts, path, rec.get("artifact"),
                       title=f"Accuracy vs latency on the {BOARDS[target].title} (predicted, emulated, {t} thread"
                             f"{'s' * (t != 1)})", xlabel="predicted latency per inference (ms)")


# ----------------------------------------------------------------------------- a fleet of boards
FLEET_HEAD = ("board", "board model", "core", "clock MHz", "ISA", "artifact", "runtime", "thr", "p50 ms", "mean ms",
              "p90 ms", "FPS", "runs", "status")


def _board(r) -> Optional[str]:
    return (r.get("remote") or {}).get("host")


def _fleet_cells(doc: dict) -> List[List[str]]:
    """A row per board x artifact for the boards of this run (``fleet``), in its order; a failed
    board is one row. Rows merged in from elsewhere stay in the main table only."""
    rows = doc["rows"]
    order = list(doc.get("fleet") or [])
    failed = {f["host"]: f for f in doc.get("failures") or []}
    out = []
    for board in order:
        if board in failed:
            out.append([shown(board, 80), "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                        "FAILED: " + shown(failed[board]["reason"], 400)])
            continue
        for r in rows:
            if (_board(r) or "this host") != board:
                continue
            p, t, lat = r.get("platform") or {}, r["timing"], r["timing"]["latency"]
            mhz = p.get("cpu_max_mhz")
            out.append([shown(board, 80), shown(p.get("board") or "-", 80), shown(p.get("cpu_model") or "-", 80),
                        f"{mhz:g}" if mhz else "-", shown(" ".join(p.get("isa_flags") or []) or "-", 400),
                        shown(r["artifact"], 80), shown(r["runtime"], 40), str(r["threads"]),
                        f"{lat['p50_ms']:.3f}", f"{lat['mean_ms']:.3f}", f"{lat['p90_ms']:.3f}", f"{t['fps']:.1f}",
                        str(lat["count"]), "ok"])
    return out


def fleet_table(doc: dict) -> str:
    """The boards side by side, aligned for a terminal (board model, core, clock and ISA as read
    on each board; '-' where the board does not expose it)."""
    body = _fleet_cells(doc)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(FLEET_HEAD)]
    numeric = {3, 7, 8, 9, 10, 11, 12}

    def line(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(FLEET_HEAD), "  ".join("-" * w for w in widths)] + [line(b) for b in body])


def fleet_markdown(doc: dict) -> str:
    lines = ["| " + " | ".join(FLEET_HEAD) + " |", "|" + "|".join("---" for _ in FLEET_HEAD) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in _fleet_cells(doc)]
    return "\n".join(lines)


def plot_fleet(doc: dict, path) -> Optional[Path]:
    """Median latency (bar) and p90 (whisker) per artifact, one bar per board side by side; the
    failed boards are named in the title. None without matplotlib."""
    plt = pyplot()
    rows = doc["rows"]
    if plt is None or not rows:
        return None
    fleet = set(doc.get("fleet") or ())
    rows = [r for r in rows if _board(r) in fleet]
    boards = [b for b in doc.get("fleet") or () if any(_board(r) == b for r in rows)]
    if not rows:
        return None
    combos = list(dict.fromkeys((r["artifact"], r["runtime"], r["threads"], r["batch"]) for r in rows))
    width = 0.8 / max(1, len(boards))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(combos) * max(1, len(boards)) ** 0.5 + 2), 4.5))
    for bi, board in enumerate(boards):
        xs, p50, p90 = [], [], []
        for ci, c in enumerate(combos):
            r = next((r for r in rows if _board(r) == board
                      and (r["artifact"], r["runtime"], r["threads"], r["batch"]) == c), None)
            if r is not None:
                lat = r["timing"]["latency"]
                xs.append(ci - 0.4 + width * (bi + 0.5))
                p50.append(lat["p50_ms"])
                p90.append(lat["p90_ms"])
        ax.bar(xs, p50, width, label=board, zorder=2)
        ax.errorbar(xs, p50, yerr=[[0] * len(p50), [max(0.0, b - a) for a, b in zip(p50, p90)]], fmt="none",
                    ecolor="0.2", capsize=2, lw=0.8, zorder=3)
    ax.set_xticks(range(len(combos)))
    ax.set_xticklabels([f"{a}\n{rt} x{th}" + (f" b{b}" if b != 1 else "") for a, rt, th, b in combos], fontsize=7)
    ax.set_ylabel("median latency per batch (ms); whisker: p90")
    title = f"Latency per artifact on {len(boards)} board(s)"
    failed = [f["host"] for f in doc.get("failures") or []]
    if failed:
        title += f"\nfailed: {', '.join(failed)}"
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- files
def _write_error(out: Path, e: OSError):
    """The operating system's refusal (full, read-only, name too long: exit 17), else a BenchmarkError."""
    from edgecnn.errors import RESOURCE_ERRNOS, system_error

    if e.errno in RESOURCE_ERRNOS:
        e.filename = e.filename or str(out)
        return system_error(e)
    return BenchmarkError(f"{out}: cannot write the results there ({e.strerror or e}).")


def write_results(doc: dict, out_dir) -> Dict[str, Optional[Path]]:
    """results.json, results.csv, results.md, report.md and the plots into ``out_dir``, as one set.

    The rows are validated and every file is rendered into a staging folder first; only then are
    they moved into place, results.json last, so a failure leaves the previous set untouched and a
    reader of results.json never finds it beside another run's table.
    """
    import os
    import shutil
    import tempfile

    validate_doc(doc, "benchmark results")
    out = Path(out_dir)
    rows = doc["rows"]
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".results-", dir=out))
    except OSError as e:
        raise _write_error(out, e) from None
    try:
        staged: Dict[str, Optional[Path]] = {}
        staged["csv"] = atomic_write_text(stage / "results.csv", csv_text(rows))
        emulated = doc.get("emulated") or []
        if emulated:
            from edgecnn.benchmark import emulated as emu
            staged["emulated_csv"] = atomic_write_text(stage / "emulated.csv", emu.csv_text(emulated))
        else:
            staged["emulated_csv"] = None
        staged["latency_plot"] = plot_latency(rows, stage / "latency.png", emulated) if rows or emulated else None
        host_rec = ((doc.get("recommended") or {}).get("host") or {}).get("artifact")
        staged["pareto_plot"] = plot_pareto(rows, stage / "pareto.png", host_rec) if rows else None
        for target in doc.get("recommended") or {}:
            if target != "host":
                staged[f"pareto_{target}"] = plot_target_pareto(doc, target, stage / f"pareto_{target}.png")
        staged["fleet_plot"] = plot_fleet(doc, stage / "fleet.png") if doc.get("fleet") else None
        md = ["# Benchmark results", ""] + _recommended_lines(doc) + [headline(rows), "", markdown_table(rows), "",
              "Latency per batch in ms over the 'runs' timed runs after warm-up; FPS = 1000 / mean ms x batch; "
              "peak RSS in MiB of the benchmark process (+ its rise over the runtime before the model loaded); "
              "top-1 as verified at export (manifest.json)."]
        if doc.get("fleet"):
            md += ["", "## Boards", "", fleet_markdown(doc)]
        if emulated:
            md += [""] + emu.markdown_section(emulated)
        staged["md"] = atomic_write_text(stage / "results.md", "\n".join(md) + "\n")
        staged["report"] = atomic_write_text(stage / "report.md", report_markdown(doc, staged))
        staged["json"] = atomic_write_json(stage / "results.json", doc)
        paths: Dict[str, Optional[Path]] = {}
        for key in ["csv", "emulated_csv", "latency_plot", "pareto_plot", "fleet_plot"] + \
                [k for k in staged if k.startswith("pareto_") and k != "pareto_plot"] + ["md", "report", "json"]:
            src = staged[key]
            paths[key] = None if src is None else out / src.name
            if src is not None:
                os.replace(src, paths[key])
        if not emulated and (out / "emulated.csv").is_file():  # another run's predictions: not of this set
            os.remove(out / "emulated.csv")
    except OSError as e:
        raise _write_error(out, e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return paths


def results_spec():
    """A results document's fields, typed and bounded (every field the tables, plots and a merge
    read; the strings they print free of control characters). Other keys are kept, never read."""
    from edgecnn.contract.checks import Bool, Int, ListOf, Num, Obj, Opt, Str

    num, text, count = Num(), Str(256), Int(1, 1 << 40)
    latency = Obj({k: num for k in ("mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms")} | {"count": count},
                  extra=True)
    timing = Obj({"latency": latency, "init_ms": num, "first_inference_ms": num, "fps": num}, extra=True)
    memory = Obj({"peak_rss_mb": num, "peak_increase_mb": num}, extra=True)
    device = Obj({}, {"label": Opt(text), "kind": Opt(text), "profile": Opt(text)}, extra=True)
    platform = Obj({}, {k: Opt(text) for k in ("hostname", "machine", "cpu_model", "board", "os", "kernel")}
                   | {"isa_flags": Opt(ListOf(Str(64), max_len=4096)), "cpu_max_mhz": Opt(Num(0, 1e6))}, extra=True)
    accuracy = Obj({}, {"top1": Opt(num), "verified": Opt(Bool())}, extra=True)
    row = Obj({"artifact": text, "runtime": Str(64), "threads": Int(1, 1 << 16), "batch": Int(1, 1 << 20),
               "timing": timing, "memory": memory},
              {"latencies_ms": Opt(ListOf(num, max_len=10_000_000)), "device": Opt(device), "platform": Opt(platform),
               "accuracy": Opt(accuracy), "remote": Opt(Obj({}, {"host": Opt(text)}, extra=True)),
               "model": Opt(text), "run": Opt(text), "precision": Opt(Str(16)), "format": Opt(Str(16)),
               "sha256": Opt(Str(64)), "runtime_title": Opt(text), "runtime_version": Opt(text),
               "size_bytes": Opt(Int(0, 1 << 50))}, extra=True)
    emulated = Obj({"artifact": text, "label": text, "board": Str(32), "threads": Int(1, 1 << 16),
                    "instructions": Num(0), "predicted_ms": Num(0), "fps": Num(0)},
                   {"error_pct": Opt(num), "precision": Opt(Str(16)), "model": Opt(text)}, extra=True)
    failure = Obj({"host": text, "reason": Str(10_000), "status": Str(16, choices=("failed",))}, extra=True)
    return Obj({"schema": Int(1, 1), "rows": ListOf(row, max_len=1_000_000)},
               {"emulated": Opt(ListOf(emulated, max_len=100_000)), "fleet": Opt(ListOf(text, max_len=100_000)),
                "failures": Opt(ListOf(failure, max_len=100_000)), "notes": Opt(ListOf(Str(4096), max_len=10_000)),
                "command": Opt(Str(100_000)), "tool": Opt(text), "created": Opt(text)}, extra=True)


def validate_doc(doc, where: str) -> None:
    """A results document whose every row has what the table, the plots and a merge read
    (``results_spec``; one line naming the document and the field)."""
    from edgecnn.contract.checks import check

    check(doc, results_spec(), f"{where}: not a valid edgecnn benchmark results document", BenchmarkError)


def _recommended_lines(doc: dict) -> List[str]:
    """"Recommended" lines, one per target, when the benchmark was asked for targets."""
    targets = doc.get("targets") or list(doc.get("recommended") or {})
    if not targets:
        return []
    from edgecnn.benchmark.recommend import markdown_lines

    return ["## Recommended: the file to ship, per target", ""] + markdown_lines(
        doc.get("recommended") or {}, targets, doc.get("recommend_note", "")) + [""]


def report_markdown(doc: dict, paths: Dict[str, Optional[Path]]) -> str:
    rows = doc["rows"]
    lines = ["# Benchmark report", ""] + _recommended_lines(doc) + [
        f"{headline(rows)}", "", f"Created {doc.get('created')} by {doc.get('tool')}."]
    if doc.get("command"):
        lines += ["", f"Command: `{doc['command']}`"]
    lines += ["", "## Results", "", markdown_table(rows), ""]
    if doc.get("fleet"):
        lines += ["## Boards", "", fleet_markdown(doc), ""]
    if doc.get("emulated"):
        from edgecnn.benchmark.emulated import markdown_section
        lines += markdown_section(doc["emulated"]) + [""]
    plats = {}
    for r in rows:
        p = r.get("platform") or {}
        plats.setdefault((p.get("hostname"), p.get("cpu_model"), p.get("board")), (p, r.get("device") or {}))
    lines += ["## Platform", ""]
    for p, dev in plats.values():
        lines.append(f"- {dev.get('label')}: {p.get('board') or p.get('cpu_model')}, {p.get('machine')}, "
                     f"{p.get('usable_cores')}/{p.get('cores')} cores usable, max clock {p.get('cpu_max_mhz') or 'unknown'} MHz, "
                     f"governor {p.get('governor') or 'unknown'}; ISA: {' '.join(p.get('isa_flags') or []) or '-'}; "
                     f"{p.get('os')}, kernel {p.get('kernel')}, Python {p.get('python')}, numpy {p.get('numpy')}")
        for n in dev.get("notes") or []:
            lines.append(f"  - {n}")
    versions = sorted({f"{r['runtime']} {r.get('runtime_version')}" for r in rows})
    lines += ["", "Runtimes: " + ", ".join(versions), "", "## Method", "",
              "Each artifact/runtime/threads combination ran in "
              + ("a fresh subprocess" if all(r.get("isolation") == "subprocess" for r in rows) else "the listed isolation mode")
              + ": load (init), one first inference, warm-up runs, then timed runs of `invoke()` alone on real "
                "preprocessed test images (a different batch each run, set outside the timed span). Peak RSS is the "
                "process's VmHWM; the rise is measured from RSS with the runtime imported but no model loaded.", ""]
    for n in doc.get("notes") or []:
        lines.append(f"- {n}")
    lines += ["## Plots", ""]
    for key, title in [("latency_plot", "Latency distribution"), ("pareto_plot", "Accuracy vs latency"),
                       ("fleet_plot", "Latency per board")] + [(k, f"Accuracy vs latency, {k[len('pareto_'):]}")
                                                               for k in paths if k.startswith("pareto_") and k != "pareto_plot"]:
        p = paths.get(key)
        if key == "fleet_plot" and not doc.get("fleet"):
            continue
        if p:
            lines.append(f"![{title}]({Path(p).name})")
        elif key == "pareto_plot" and pyplot() is not None:
            lines.append(f"- {title}: no artifact has a verified accuracy (no manifest.json), so no Pareto chart.")
        else:
            lines.append(f"- {title}: skipped, matplotlib is not installed (pip install matplotlib).")
    return "\n".join(lines) + "\n"


def merge_results(results: Iterable[Union[dict, str, Path]]) -> dict:
    """Results documents (dicts or results.json paths, e.g. one from a Pi and one from here) ->
    one document whose rows form one comparison table. Rows keep their own device label and
    platform; a later row for the same artifact sha256, runtime, threads, batch, host and board
    (``remote.host``) replaces an earlier one."""
    merged: Dict[tuple, dict] = {}
    sources = []
    for res in results:
        if not isinstance(res, dict):
            from edgecnn.contract import read_json_file

            res_doc = read_json_file(res, "benchmark results", BenchmarkError)
            sources.append(str(res))
            res = res_doc
        else:
            sources.append(str(res.get("created") or "dict"))
        validate_doc(res, sources[-1])
        for r in res["rows"]:
            key = (r.get("sha256"), r.get("runtime"), r.get("threads"), r.get("batch"),
                   (r.get("platform") or {}).get("hostname"), (r.get("device") or {}).get("label"),
                   _board(r))
            merged[key] = r
    import time
    import edgecnn
    return {"schema": 1, "tool": f"edgecnn {edgecnn.__version__}", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": None, "notes": [f"merged from {len(sources)} result documents"], "merged_from": sources,
            "rows": list(merged.values())}
