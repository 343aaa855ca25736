"""``edgecnn pipeline MODEL``: train -> export (fp32 + int8 + mixed TFLite, ONNX) -> verify -> benchmark,
and one ``report.md`` with its plots in the run. Given a trained RUN instead (an imported model),
training is skipped. Each stage is the library function its own
command wraps; the pipeline only passes the run directory from one to the next.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

from edgecnn.benchmark.options import BenchmarkOptions
from edgecnn.benchmark.recommend import DEFAULT_TARGETS
from edgecnn.core.files import atomic_write_text
from edgecnn.core.options import Options
from edgecnn.errors import VerificationError
from edgecnn.export.options import ExportOptions
from edgecnn.measure.boards import HOST, parse_targets
from edgecnn.train.options import TrainOptions


@dataclasses.dataclass(frozen=True)
class PipelineOptions(Options):
    """The targets (boards of the board table or "host": the mixed precision is chosen on the first
    one's costs, and each gets its recommended artifact) and the stages' own options, whole:
    training (when MODEL is a name), export and benchmark.
    ``make`` routes keyword overrides: ``targets`` to the pipeline; ``calibration``, ``max_drop``, ``mixed`` to the export;
    ``bench_runs``, ``bench_warmup``, ``threads``, ``runtimes`` to the benchmark; the rest
    (data, recipe, run_name, epochs, ...) to training."""

    targets: Tuple[str, ...] = DEFAULT_TARGETS
    train: TrainOptions = dataclasses.field(default_factory=TrainOptions)
    export: ExportOptions = dataclasses.field(default_factory=lambda: ExportOptions(int8=True, onnx=True, mixed=True))
    bench: BenchmarkOptions = dataclasses.field(default_factory=lambda: BenchmarkOptions(
        runs=200, warmup=20, threads=(1,), runtimes=("litert", "onnxruntime")))

    _EXPORT = ("calibration", "max_drop", "mixed")
    _BENCH = {"bench_runs": "runs", "bench_warmup": "warmup", "threads": "threads", "runtimes": "runtimes"}

    @classmethod
    def make(cls, options=None, **overrides):
        base = options if options is not None else cls()
        if "targets" in overrides:
            base = dataclasses.replace(base, targets=tuple(parse_targets(overrides.pop("targets"))))
        export = {k: overrides.pop(k) for k in cls._EXPORT if k in overrides}
        bench = {cls._BENCH[k]: overrides.pop(k) for k in list(cls._BENCH) if k in overrides}
        export.setdefault("runs_dir", overrides.get("runs_dir", base.train.runs_dir))
        return dataclasses.replace(base, train=TrainOptions.make(base.train, **overrides),
                                   export=ExportOptions.make(base.export, **export),
                                   bench=BenchmarkOptions.make(base.bench, **bench))


def run_pipeline(model_name: str, options: Optional[PipelineOptions] = None, *, echo: Callable[[str], None] = print,
                 **overrides) -> Path:
    """Run every stage for one model; returns the run directory (with report.md).

    A failed verification does not stop the report from being written: the report says which
    artifact failed and why, and the error is raised after it, so the exit code is non-zero.
    """
    from edgecnn.benchmark import write_results
    from edgecnn.benchmark.outputs import run_benchmark
    from edgecnn.train.evaluate import evaluate_run
    from edgecnn.export import export_model
    from edgecnn.train.fit import train

    from edgecnn.contract import RUN_FILE, load_run, refuse_artifact

    refuse_artifact(model_name, "pipeline")
    o = PipelineOptions.make(options, **overrides)
    stages: Dict[str, float] = {}
    t0 = time.perf_counter()
    if (Path(model_name) / RUN_FILE).is_file():  # a trained run, e.g. an imported model: no training
        run = load_run(model_name)
        if not run.trained:
            from edgecnn.errors import RunError

            raise RunError(f"{run.path}: not trained; train it first, or give a model name to train.")
        echo(f"[1/3] trained run {run.path}: training skipped")
    else:
        echo(f"[1/3] train {model_name} (recipe {o.train.recipe}, data {o.train.data})")
        run = train(model_name, o.train, echo=echo)
    evaluate_run(run)  # per-class accuracy (eval.json) and the confusion-matrix PNG in the run
    stages["train"] = time.perf_counter() - t0

    targets, skipped_note = _ready_targets(o.targets, echo)
    t1 = time.perf_counter()
    echo(f"[2/3] export + verify {run.path}")
    failure = None
    first = targets[0] if targets and targets[0] != HOST else None
    export = dataclasses.replace(o.export, target=first if o.export.mixed else None)
    try:
        export_model(run.path, run.path / "export", export)
    except VerificationError as e:  # artifacts are kept, marked unverified; report it, then fail
        failure = e
    stages["export_verify"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    echo(f"[3/3] benchmark {run.path / 'export'}" + (f", targets {', '.join(targets)}" if targets else ""))
    out = run_benchmark([run.path], dataclasses.replace(o.bench, targets=tuple(targets)),
                        out_dir=run.path / "bench", progress=echo, command=f"edgecnn pipeline {model_name}")
    if skipped_note:
        out.doc["notes"] = list(out.doc.get("notes") or []) + [skipped_note]
        write_results(out.doc, run.path / "bench")
    stages["benchmark"] = time.perf_counter() - t2
    stages["total"] = time.perf_counter() - t0

    report = build_report(run.path, stages, list(o.targets), skipped_note)
    atomic_write_text(run.path / "report.md", report)
    echo(f"report: {run.path / 'report.md'} (total {stages['total']:.0f} s)")
    if failure is not None:
        raise failure
    return run.path


def _ready_targets(targets: Sequence[str], echo: Callable[[str], None]):
    """The targets the pipeline can cost here: boards need the emulator (qemu-user and its arm64
    root); without it they are left out with one line saying why and how to get them."""
    from edgecnn.benchmark.emulated import check_emulator
    from edgecnn.errors import EmulatorError

    boards = [t for t in targets if t != HOST]
    if not boards:
        return list(targets), ""
    try:
        check_emulator()
        return list(targets), ""
    except EmulatorError as e:
        note = (f"{', '.join(boards)} left out: {e.message} ('make arm-root' installs qemu-user and builds the "
                f"arm64 root; then run the pipeline again)")
        echo(f"targets {note}")
        return [t for t in targets if t == HOST], note


def _emulated_cell(r) -> str:
    if r is None:
        return "-"
    from edgecnn.benchmark.emulated import format_instructions
    from edgecnn.emulate import format_error
    return f"{r['predicted_ms']:.3f} ms {format_error(r)} ({format_instructions(r['instructions'])} M instr)"


def _kb(n) -> str:
    return f"{n / 1024:.1f} KiB" if n is not None else "-"


def _pct(v) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "-"


def _origin(info: dict) -> str:
    """How the run's model came to be: its recipe, or where it was imported from."""
    if isinstance(info.get("recipe"), dict):
        return f"recipe {info['recipe'].get('name')}, {info.get('epochs_completed')} epochs"
    src = info.get("source") if isinstance(info.get("source"), dict) else {}
    what = src.get("file") or src.get("architecture") or "a Keras model"
    tuned = (info.get("fine_tune") or {}).get("epochs")
    tuned = f", fine-tuned {tuned} epochs" if tuned else ""
    return f"imported from {what} (preprocessing {info.get('preprocess_arg')}{tuned})"


def build_report(run_dir: Path, stages: Dict[str, float], targets: Sequence[str] = (), note: str = "") -> str:
    """report.md from run.json, export/manifest.json and bench/results.json (nothing recomputed):
    first the file to ship for each target, then the details."""
    from edgecnn.contract import BENCH_DIR, load_run, read_json_file, read_manifest

    run_dir = Path(run_dir)
    info = load_run(run_dir).info
    manifest = read_manifest(run_dir)
    bench = read_json_file(run_dir / BENCH_DIR / "results.json", "benchmark results")
    m = info.get("metrics") or {}
    from edgecnn.benchmark.recommend import markdown_lines

    recs = manifest.get("recommended") or {}
    lines = [f"# {info['model']}: {run_dir.name}", "", "## The file to ship, per target", ""]
    lines += markdown_lines(recs, list(targets) or list(recs), bench.get("recommend_note", ""))
    if note:
        lines.append(f"- {note}.")
    if manifest.get("skipped"):
        lines += [f"- {k} not written: {v}." for k, v in manifest["skipped"].items()]
    lines += ["", f"Data: {info['dataset'].get('name')} ({info['dataset'].get('num_train')} train / "
             f"{info['dataset'].get('num_test')} test images, real CIFAR-10 unless named otherwise); "
             f"{_origin(info)}, seed {info.get('seed')}.",
             "", "## Keras model (test split)", "",
             f"top-1 {_pct(m.get('top1'))} · top-5 {_pct(m.get('top5'))} · macro-F1 {m.get('macro_f1', 0):.3f}", ""]
    if (run_dir / "training_curves.png").exists():
        lines += ["![training curves](training_curves.png)", ""]
    emulated: Dict[str, Dict[str, dict]] = {}  # board -> artifact -> row at its fewest threads
    for r in bench.get("emulated") or []:
        if r["threads"] == min(x["threads"] for x in bench["emulated"] if x["board"] == r["board"]):
            emulated.setdefault(r["board"], {}).setdefault(r["artifact"], r)
    boards = list(emulated)
    emu_head = "".join(f" emulated {b} (predicted) |" for b in boards)
    lines += ["## Artifacts: size, verified accuracy, speed", "",
              "| artifact | precision | size | runtime | top-1 | agreement with Keras | verified | p50 latency (1 thread) | FPS |"
              + emu_head, "|---|---|---|---|---|---|---|---|---|" + "---|" * len(boards)]
    lat = {}
    for r in bench["rows"]:
        if r["threads"] == min(x["threads"] for x in bench["rows"]):
            lat.setdefault(r["artifact"], r)
    for name, a in manifest["artifacts"].items():
        v = a.get("verification") or {}
        r = lat.get(name)
        p50 = f"{r['timing']['latency']['p50_ms']:.3f} ms (n={r['timing']['latency']['count']})" if r else "-"
        fps = f"{r['timing']['fps']:.0f}" if r else "-"
        lines.append(f"| {name} | {a['precision']} | {_kb(a['bytes'])} | {v.get('runtime', '-')} | {_pct(v.get('top1'))} | "
                     f"{_pct(v.get('agreement_with_keras'))} | {'yes' if a.get('verified') else 'NO: ' + str(v.get('reason'))} | "
                     f"{p50} | {fps} |" + "".join(f" {_emulated_cell(emulated[b].get(name))} |" for b in boards))
    dev = bench["rows"][0]["device"]["label"] if bench["rows"] else ""
    lines += ["", f"Latency measured with LiteRT (XNNPACK) / ONNX Runtime, batch 1, {dev}; "
              "full statistics in [bench/results.md](bench/results.md)."
              + (" Emulated boards: instructions counted under qemu-user on the board's core, latency predicted by "
                 "the calibrated cost model (not measured on a board; docs/arm-emulation.md), 1 thread; the "
                 "recommendations above also give 4 threads." if emulated else ""), "",
              "![latency](bench/latency.png) ![accuracy vs latency here](bench/pareto.png)"
              + "".join(f" ![accuracy vs latency, {b}](bench/pareto_{b}.png)" for b in boards
                        if (run_dir / "bench" / f"pareto_{b}.png").exists()), ""]
    mixed = [(n, a) for n, a in manifest["artifacts"].items() if a["precision"] == "mixed"]
    for name, a in mixed:
        fl = a.get("float_ops") or []
        why = {w: sum(1 for f in fl if f.get("why") == w) for w in ("speed", "accuracy")}
        lines += ["## Mixed precision", "",
                  f"{name}: {len(fl)} op(s) kept float ({why['speed']} for speed, {why['accuracy']} for accuracy)"
                  + (f"; PReLU form '{a['prelu']}'" if a.get("prelu") else "") + ". Per-layer error and op costs: "
                  "[export/quant_report.md](export/quant_report.md).", "",
                  "![per-layer int8 error](export/quant_error.png)", ""]
    if (run_dir / "eval.json").exists():
        ev = read_json_file(run_dir / "eval.json", "evaluation")
        per_class = ev.get("per_class_accuracy") or {}
        if isinstance(per_class, dict) and per_class:
            lines += ["## Per-class accuracy (Keras, test split)", "", "| class | top-1 |", "|---|---|"]
            lines += [f"| {k} | {_pct(v)} |" for k, v in per_class.items()]
            lines.append("")
    if (run_dir / "confusion_matrix.png").exists():
        lines += ["![confusion matrix](confusion_matrix.png)", ""]
    lines += ["## Wall time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in stages.items()]
    return "\n".join(lines) + "\n"
