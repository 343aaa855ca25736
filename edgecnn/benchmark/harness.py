"""One measurement of one artifact on one runtime, and the loop over combinations.

Each (artifact, runtime, threads) combination runs in a fresh subprocess by default
(``python -m edgecnn.benchmark.worker``): the process's peak RSS (VmHWM) then belongs to that
artifact alone, a runtime's thread pool or TensorFlow's context start clean, and CPU pinning
(``os.sched_setaffinity``) applies before any thread exists. ``isolate=False`` runs in this
process instead (faster, for tests); it resets VmHWM through /proc/self/clear_refs before each
model so the peak is still per artifact where Linux allows it.

What one measurement does, in the order ``measure`` does it:

1. import the runtime; read RSS ("rss_before": the empty runtime, before the model loads);
2. load the model (``init_ms``), set the batch, prepare the input batches (quantized for int8);
3. one inference (``first_inference_ms``), then ``warmup`` more (``warmup.mean_ms``);
4. the timed loop: ``runs`` inferences, or as many as fit in ``seconds``; each iteration sets
   the next real input batch (untimed) and times ``invoke()`` alone with ``perf_counter_ns``;
5. read peak RSS (VmHWM) and the current RSS.

The pieces live beside this module: ``targets`` (what to benchmark), ``timing`` (loops and
inputs), ``memory`` (RSS); runtime names and loading are ``edgecnn.measure.runtime``'s. Only numpy,
the standard library and the runtime that is asked for are imported; TensorFlow only for the
``keras`` runtime.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from edgecnn import errors
from edgecnn.measure.memory import peak_rss_mb, reset_peak_rss, rss_mb
from edgecnn.measure.stats import fps, summarize
from edgecnn.benchmark.options import BenchmarkOptions
from edgecnn.benchmark.targets import Target, resolve_targets
from edgecnn.measure.timing import input_batches, raw_images, time_loop
from edgecnn.errors import BenchmarkError, InvalidConfigError, RuntimeNotAvailableError
from edgecnn.core.files import sha256_file
from edgecnn.measure.runtime import BACKENDS, DEFAULT_BACKEND, load, parse_backends, runtime_version

SCHEMA = 1


def parse_threads(value) -> List[int]:
    """'1,2,4' or 4 or a list -> [1, 2, 4]; each a positive integer."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise InvalidConfigError(f"Received `--threads {part}`: threads must be positive integers, e.g. 1,2,4.")
            if int(part) not in out:
                out.append(int(part))
    return out


def measure(job: dict) -> dict:
    """One measurement in this process (see the module docstring); ``job`` as the worker takes it:
    path, runtime, threads, batch, warmup, runs, seconds, spec, random_inputs, cpus."""
    cpus = job.get("cpus")
    old_affinity = None
    if cpus:
        try:
            old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, cpus)
        except (AttributeError, OSError):
            cpus = None
    try:
        version = runtime_version(job["runtime"])  # imported before rss_before: the empty runtime's RSS
        raw = raw_images(job.get("random_inputs", False))
        rss_before = rss_mb()
        hwm_reset = reset_peak_rss()
        t0 = time.perf_counter_ns()
        runner = load(job["path"], backend=job["runtime"], threads=job["threads"])
        init_ms = (time.perf_counter_ns() - t0) / 1e6
        runner.resize(job["batch"])
        batches, inputs = input_batches(runner, job.get("spec"), raw, job["batch"], job.get("seed", 0),
                                        source=job.get("spec_source"))
        runner.set_input(batches[0])
        t0 = time.perf_counter_ns()
        runner.invoke()
        first_ms = (time.perf_counter_ns() - t0) / 1e6
        out = runner.get_output()
        if not np.all(np.isfinite(np.asarray(out, np.float64))):
            raise BenchmarkError(f"{job['path']}: the model's output is not finite on {job['runtime']}")
        warm = time_loop(runner, batches, job["warmup"]) if job["warmup"] > 0 else []
        lat = time_loop(runner, batches, job["runs"], job.get("seconds"))
        peak = peak_rss_mb()
        rss_after = rss_mb()
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
    stats = summarize(lat)
    return {
        "runtime_version": version,
        "inputs": inputs,
        "input": runner.input.to_dict(),
        "detail": runner.details(),
        "timing": {"init_ms": init_ms, "first_inference_ms": first_ms,
                   "warmup": {"count": len(warm), "mean_ms": float(np.mean(warm)) if warm else None},
                   "latency": stats, "fps": fps(stats["mean_ms"], job["batch"])},
        "latencies_ms": [round(v, 6) for v in lat],
        "memory": {"rss_before_mb": rss_before, "peak_rss_mb": peak, "peak_increase_mb": peak - rss_before,
                   "rss_after_mb": rss_after,
                   "method": ("VmHWM after clear_refs reset, minus VmRSS with the runtime imported"
                              if hwm_reset else "peak RSS of the process (ru_maxrss/VmHWM), not reset")},
        "pinned_cpus": sorted(cpus) if cpus else None,
    }


def measure_in_subprocess(job: dict, timeout: float = 900) -> dict:
    """``measure(job)`` in a fresh ``python -m edgecnn.benchmark.worker``; its errors re-raised here."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecnn.benchmark.worker"], input=json.dumps(job),
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{job['path']} on {job['runtime']}: no result within {timeout:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_MARK):
            msg = json.loads(line[len(WORKER_MARK):])
            if msg.get("ok"):
                return msg["result"]
            cls = getattr(errors, msg.get("error", ""), None)
            if not (isinstance(cls, type) and issubclass(cls, errors.EdgecnnError)):
                cls = BenchmarkError
            raise cls(msg.get("message", "unknown error"))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    raise BenchmarkError(f"{job['path']} on {job['runtime']}: the benchmark worker died ({how}): {tail}")


WORKER_MARK = "EDGECNN_BENCH_RESULT "


def _accuracy(t: Target, runtime: str, m: dict) -> Optional[dict]:
    """The verified accuracy for a row; verified under another precision hint than the row ran
    with (OpenVINO verifies with f32, its default may be bf16), it is shown as that, not as this."""
    acc = t.accuracy(runtime)
    hint = (m.get("detail") or {}).get("precision_hint")
    if acc and acc.get("precision_hint") and hint and acc["precision_hint"] != hint:
        acc = dict(acc, verified=None, verified_hint=acc["precision_hint"])
    return acc


def unspecified_inputs(targets: Sequence[Target], o: BenchmarkOptions) -> List[str]:
    """One note per file fed real images without knowing its preprocessing (no manifest, no
    metadata, no ``--preprocess``): it is timed on the CIFAR-10 default for its input shape."""
    if o.random_inputs or o.preprocess:
        return []
    return [f"{t.name}: no manifest and no metadata say what it takes: fed the CIFAR-10 preprocessing for its "
            f"input shape; give --preprocess SPEC (or --random-inputs)" for t in targets if t.spec is None]


# ----------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class Combination:
    target: Target
    runtime: str
    threads: int


# What to install for a runtime that is missing here (the light device install has LiteRT only).
INSTALL_HINT = {"litert": "pip install ai-edge-litert", "tflite-runtime": "pip install tflite-runtime",
                "tf-lite": "pip install 'edgecnn[train]'", "onnxruntime": "pip install onnxruntime",
                "keras": "pip install 'edgecnn[train]'"}


def _installed(runtime: str) -> bool:
    from edgecnn.measure.runtime import _import_backend

    try:
        _import_backend(runtime)
        return True
    except RuntimeNotAvailableError:
        return False


def plan_combinations(targets: Sequence[Target], runtimes: Sequence[str], threads: Sequence[int]):
    """(combinations, notes): each target with each runtime that runs its format, each thread count.
    A runtime that is not installed here is skipped with one note naming what it would have run and
    how to install it; only when nothing is left to measure is that an error."""
    combos, notes, missing = [], [], {}
    for t in targets:
        fitting = [r for r in runtimes if BACKENDS[r].runs(t.format)] if runtimes else [DEFAULT_BACKEND[t.format]]
        if not fitting:
            if t.explicit:
                raise RuntimeNotAvailableError(
                    f"{t.path} is {t.format}: runtime(s) {', '.join(runtimes)} do not run {t.format} files "
                    f"(for {t.format}: {', '.join(r for r in BACKENDS if BACKENDS[r].runs(t.format))}).")
            notes.append(f"skipped {t.name}: no asked-for runtime runs {t.format}")
            continue
        for r in fitting:
            if BACKENDS[r].package not in missing and _installed(r):
                combos += [Combination(t, r, n) for n in threads]
            else:
                missing.setdefault(BACKENDS[r].package, []).append(t.name)
    for package, names in missing.items():
        notes.append(f"skipped {', '.join(dict.fromkeys(names))}: {package} is not installed here "
                     f"({INSTALL_HINT.get(package, 'install it')})")
    if not combos:
        if missing:
            raise RuntimeNotAvailableError("nothing to benchmark: " + "; ".join(notes))
        raise BenchmarkError(f"nothing to benchmark: runtime(s) {', '.join(runtimes)} run none of the given artifacts")
    return combos, notes


def benchmark(paths: Sequence, options: Optional[BenchmarkOptions] = None, *,
              progress: Optional[Callable[[str], None]] = None, command: Optional[str] = None, **overrides) -> dict:
    """Benchmark artifacts / run directories on runtimes x thread counts, each combination in a
    fresh process unless ``in_process``; the results document (schema in edgecnn.benchmark's
    docstring)."""
    from edgecnn.measure.machine import platform_info, short
    from edgecnn.measure.profiles import plan_device

    o = BenchmarkOptions.make(options, **overrides)
    runtimes = parse_backends(list(o.runtimes) or None)
    threads = parse_threads(list(o.threads) or None)
    info = platform_info()
    plan = plan_device(o.device, short(info), info["machine"], info.get("board") or "")
    if not threads:
        threads = [plan.threads or 1]
    targets = resolve_targets(paths, want_keras="keras" in runtimes)
    combos, notes = plan_combinations(targets, runtimes, threads)
    notes += unspecified_inputs(targets, o)
    say = progress or (lambda s: None)
    for n in notes:
        say(n)
    rows = []
    sha = {}
    for i, c in enumerate(combos, 1):
        t = c.target
        head = f"[{i}/{len(combos)}] {t.name} | {c.runtime} | {c.threads} thread{'s' * (c.threads != 1)} | batch {o.batch}"
        say(head + " ...")
        job = {"path": str(t.path), "runtime": c.runtime, "threads": c.threads, "batch": o.batch,
               "warmup": o.warmup, "runs": o.runs, "seconds": o.seconds, "spec": t.spec or o.preprocess,
               "spec_source": t.spec_source, "random_inputs": o.random_inputs, "cpus": plan.cpus}
        m = measure(job) if o.in_process else measure_in_subprocess(job)
        if str(t.path) not in sha:
            sha[str(t.path)] = sha256_file(t.path)
        lat = m["timing"]["latency"]
        say(f"{head}: p50 {lat['p50_ms']:.3f} ms, mean {lat['mean_ms']:.3f} ms over {lat['count']} runs, "
            f"{m['timing']['fps']:.1f} FPS, peak RSS {m['memory']['peak_rss_mb']:.1f} MiB")
        rows.append({
            "artifact": t.name, "path": str(t.path), "sha256": sha[str(t.path)], "format": t.format,
            "precision": t.precision, "model": t.model, "run": t.run, "size_bytes": t.path.stat().st_size,
            "runtime": c.runtime, "runtime_title": BACKENDS[c.runtime].title,
            "runtime_version": m["runtime_version"], "runtime_detail": m.get("detail") or {},
            "xnnpack": BACKENDS[c.runtime].xnnpack,
            "threads": c.threads, "batch": o.batch, "warmup_runs": o.warmup,
            "device": dict(plan.to_dict(), threads=c.threads, pinned_cpus=m["pinned_cpus"]),
            "platform": info, "inputs": m["inputs"], "input": m["input"],
            "timing": m["timing"], "latencies_ms": m["latencies_ms"], "memory": m["memory"],
            "accuracy": _accuracy(t, c.runtime, m), "isolation": "in-process" if o.in_process else "subprocess",
        })
    import edgecnn
    return {"schema": SCHEMA, "tool": f"edgecnn {edgecnn.__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "notes": notes,
            "rows": rows}
