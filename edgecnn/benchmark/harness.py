"""Timing and memory of one artifact on one runtime, and the loop over combinations.

Each (artifact, runtime, threads) combination runs in a fresh subprocess by default
(``python -m edgecnn.benchmark.worker``): the process's peak RSS (VmHWM) then belongs to that
artifact alone, a runtime's thread pool or TensorFlow's context start clean, and CPU pinning
(``os.sched_setaffinity``) applies before any thread exists. ``isolate=False`` runs in this
process instead (faster, for tests and ``measure_overhead``); it resets VmHWM through
/proc/self/clear_refs before each model so the peak is still per artifact where Linux allows it.

What one measurement does, in the order ``benchmark_model`` does it:

1. import the runtime; read RSS ("rss_before": the empty runtime, before the model loads);
2. load the model (``init_ms``), set the batch, prepare the input batches (quantized for int8);
3. one inference (``first_inference_ms``), then ``warmup`` more (``warmup.mean_ms``);
4. the timed loop: ``runs`` inferences, or as many as fit in ``seconds``; each iteration sets
   the next real input batch (untimed) and times ``invoke()`` alone with ``perf_counter_ns``;
5. read peak RSS (VmHWM) and the current RSS.

Only numpy, the standard library and the runtime that is asked for are imported here;
TensorFlow only for the ``keras`` runtime, inside ``KerasRunner``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from edgecnn import errors
from edgecnn.benchmark.stats import fps, summarize
from edgecnn.errors import (BenchmarkError, InvalidConfigError, ModelFileError, RunError,
                            RuntimeNotAvailableError, did_you_mean)
from edgecnn.io import sha256_file

SCHEMA = 1


# ----------------------------------------------------------------------------- runtimes
@dataclasses.dataclass(frozen=True)
class RuntimeSpec:
    key: str
    format: str  # the artifact format it runs: tflite | onnx | keras
    backend: Optional[str]  # edgecnn.runtime backend name
    xnnpack: Optional[bool]
    title: str


RUNTIMES: Dict[str, RuntimeSpec] = {r.key: r for r in (
    RuntimeSpec("litert", "tflite", "litert", True, "LiteRT, XNNPACK delegate"),
    RuntimeSpec("litert-noxnn", "tflite", "litert", False, "LiteRT, builtin kernels (no XNNPACK)"),
    RuntimeSpec("tflite-runtime", "tflite", "tflite_runtime", True, "tflite-runtime, XNNPACK delegate"),
    RuntimeSpec("onnxruntime", "onnx", "onnxruntime", None, "ONNX Runtime, CPU execution provider"),
    RuntimeSpec("keras", "keras", None, None, "tf_keras model as a tf.function (float reference)"),
)}
RUNTIME_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "tflite_runtime": "tflite-runtime",
                   "litert-xnnpack": "litert", "litert_noxnn": "litert-noxnn", "tf": "keras"}
DEFAULT_RUNTIME = {"tflite": "litert", "onnx": "onnxruntime", "keras": "keras"}


def parse_runtimes(value) -> List[str]:
    """'litert,onnxruntime' or a list -> runtime keys; an unknown name fails with did-you-mean."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            key = RUNTIME_ALIASES.get(name, name)
            if key not in RUNTIMES:
                raise RuntimeNotAvailableError(
                    f"Unknown runtime '{name}'.{did_you_mean(name, list(RUNTIMES))} "
                    f"Choose from: {', '.join(RUNTIMES)}.")
            if key not in out:
                out.append(key)
    return out


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


# ----------------------------------------------------------------------------- targets
@dataclasses.dataclass
class Target:
    """One file to benchmark, with what its run and manifest say about it."""

    path: Path
    format: str  # tflite | onnx | keras
    explicit: bool  # named on the command line (not found inside a run directory)
    manifest: Optional[dict] = None
    entry: Optional[dict] = None  # the manifest's "artifacts"[name]
    run_json: Optional[dict] = None
    run_dir: Optional[Path] = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def spec(self) -> Optional[dict]:
        for src in (self.manifest, self.run_json):
            if src and src.get("preprocessing"):
                return src["preprocessing"]
        return None

    @property
    def precision(self) -> Optional[str]:
        if self.entry and self.entry.get("precision"):
            return self.entry["precision"]
        if self.format == "keras":
            return "fp32"
        m = re.search(r"_(fp32|fp16|dynamic|int8)$", self.path.stem)
        return m.group(1) if m else None

    @property
    def model(self) -> Optional[str]:
        for src in (self.manifest, self.run_json):
            if src and src.get("model"):
                return src["model"]
        return None

    @property
    def run(self) -> Optional[str]:
        if self.manifest and self.manifest.get("run"):
            return self.manifest["run"]
        return self.run_dir.name if self.run_dir else None

    def accuracy(self) -> Optional[dict]:
        """The verified accuracy beside the speed: the manifest's verification of this artifact."""
        if self.format == "keras":
            k = (self.manifest or {}).get("keras") or ((self.run_json or {}).get("metrics") or {})
            if k.get("top1") is None:
                return None
            return {"top1": k.get("top1"), "top5": k.get("top5"), "verified": True,
                    "source": "manifest keras" if self.manifest else "run.json metrics"}
        if not self.entry or not self.entry.get("verification"):
            return None
        v = self.entry["verification"]
        return {"top1": v.get("top1"), "agreement_with_keras": v.get("agreement_with_keras"),
                "max_abs_diff_vs_keras": v.get("max_abs_diff_vs_keras"),
                "verified": bool(self.entry.get("verified", v.get("passed"))),
                "runtime": v.get("runtime"), "split": v.get("split"), "n": v.get("n"),
                "reason": v.get("reason"), "source": "manifest verification"}


def _read_json(path: Path) -> Optional[dict]:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _run_context(export_dir: Path):
    """(manifest, run.json, run_dir) around an export directory, where they exist."""
    manifest = _read_json(export_dir / "manifest.json")
    run_dir = export_dir.parent if (export_dir.parent / "run.json").is_file() else None
    run_json = _read_json(run_dir / "run.json") if run_dir else None
    return manifest, run_json, run_dir


_PRECISION_ORDER = {"fp32": 0, "fp16": 1, "dynamic": 2, "int8": 3}


def resolve_targets(paths: Sequence, want_keras: bool = False) -> List[Target]:
    """Files and run directories -> the artifacts to benchmark (a run: its export/ artifacts,
    and its model.keras where the keras runtime is asked for)."""
    targets: List[Target] = []
    for arg in paths:
        p = Path(arg)
        if not p.exists():
            raise ModelFileError(f"Model file or run directory not found: {p}")
        if p.is_dir():
            targets.extend(_targets_of_dir(p, want_keras))
            continue
        if p.suffix == ".keras":
            manifest, run_json, run_dir = _run_context(p.parent / "export")
            if run_dir is None and (p.parent / "run.json").is_file():
                run_dir, run_json = p.parent, _read_json(p.parent / "run.json")
            targets.append(Target(p, "keras", True, manifest, None, run_json, run_dir))
            continue
        from edgecnn.runtime import model_format
        fmt = model_format(p)  # ModelFileError for empty / truncated-header / non-model files
        manifest, run_json, run_dir = _run_context(p.parent)
        entry = ((manifest or {}).get("artifacts") or {}).get(p.name)
        targets.append(Target(p, fmt, True, manifest, entry, run_json, run_dir))
    return targets


def _targets_of_dir(d: Path, want_keras: bool) -> List[Target]:
    if (d / "export").is_dir() or (d / "run.json").is_file():
        run_dir, export_dir = d, d / "export"
    elif (d / "manifest.json").is_file():
        run_dir, export_dir = (d.parent if (d.parent / "run.json").is_file() else None), d
    else:
        raise RunError(f"{d} is neither a run directory (run.json, export/) nor an export directory "
                       f"(manifest.json); give a run directory or model files.")
    manifest = _read_json(export_dir / "manifest.json") if export_dir.is_dir() else None
    run_json = _read_json(run_dir / "run.json") if run_dir else None
    files = []
    if manifest and manifest.get("artifacts"):
        files = [export_dir / name for name in manifest["artifacts"] if (export_dir / name).is_file()]
    elif export_dir.is_dir():
        files = sorted(list(export_dir.glob("*.tflite")) + list(export_dir.glob("*.onnx")))
    from edgecnn.runtime import model_format
    out = []
    for f in files:
        entry = ((manifest or {}).get("artifacts") or {}).get(f.name)
        out.append(Target(f, model_format(f), False, manifest, entry, run_json, run_dir))
    out.sort(key=lambda t: (t.format != "tflite", _PRECISION_ORDER.get(t.precision or "", 9), t.name))
    if want_keras and run_dir and (run_dir / "model.keras").is_file():
        out.insert(0, Target(run_dir / "model.keras", "keras", False, manifest, None, run_json, run_dir))
    if not out:
        raise RunError(f"{d} has no exported artifacts (export/*.tflite, *.onnx): run 'edgecnn export' first.")
    return out



# ----------------------------------------------------------------------------- memory
def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_mb() -> float:
    import resource
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / (1024.0 * 1024.0) if sys.platform == "darwin" else v / 1024.0  # bytes on macOS, KiB on Linux


def rss_mb() -> float:
    """Current resident set size (VmRSS), MiB; the peak so far where /proc is absent."""
    kb = _status_kb("VmRSS")
    return kb / 1024.0 if kb is not None else _maxrss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM; ru_maxrss where /proc is absent), MiB."""
    kb = _status_kb("VmHWM")
    return kb / 1024.0 if kb is not None else _maxrss_mb()


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, /proc/self/clear_refs '5'); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- inputs
def _raw_images(random_inputs: bool):
    """uint8 test images to feed (the bundled real CIFAR-10 sample's test split), or None."""
    if random_inputs:
        return None
    from edgecnn.data.sample import load_sample
    return load_sample()[1][0]


def _input_batches(runner, spec: Optional[dict], raw, batch: int, seed: int = 0, max_batches: int = 32):
    """(list of native input batches, description of the inputs)."""
    shape = tuple(runner.input.shape)
    if raw is None:
        rng = np.random.default_rng(seed)
        floats = [rng.standard_normal((batch,) + shape[1:]).astype(np.float32) for _ in range(8)]
        return [runner.prepare(x) for x in floats], {"source": "random normal (--random-inputs)", "images": 8 * batch}
    from edgecnn.data.preprocess import PreprocessSpec, preprocess, spec_for
    nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3)
    hwc = (shape[2], shape[3], shape[1]) if nchw else tuple(shape[1:])
    if spec:
        ps = PreprocessSpec.from_dict(spec)
        note = "preprocessing from the run's manifest/run.json"
    else:
        ps = spec_for(hwc, source_size=raw.shape[1])
        note = "no manifest: default CIFAR-10 preprocessing for the model's input shape"
    if tuple(ps.input_size) != tuple(hwc[:2]) or ps.channels != hwc[2]:
        raise BenchmarkError(f"{runner.path}: input {list(shape)} does not match the preprocessing spec "
                             f"({list(ps.input_size)}, {ps.channels} channels)")
    n = min(len(raw), batch * max_batches)
    x = preprocess(raw[:n], ps)
    if len(x) < batch:
        x = np.concatenate([x] * (batch // len(x) + 1))
    if nchw:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    batches = [runner.prepare(x[i:i + batch]) for i in range(0, len(x) - batch + 1, batch)]
    return batches, {"source": "bundled CIFAR-10 sample, test split", "images": len(batches) * batch, "spec_note": note}


# ----------------------------------------------------------------------------- timing
def time_loop(runner, batches: Sequence[np.ndarray], runs: int, seconds: Optional[float] = None,
              min_runs: int = 5) -> List[float]:
    """The harness's timed loop: set the next batch (untimed), time ``invoke()``; ms per run."""
    clock = time.perf_counter_ns
    set_input, invoke = runner.set_input, runner.invoke
    k = len(batches)
    lat = []
    append = lat.append
    deadline = clock() + int(seconds * 1e9) if seconds else None
    i = 0
    while True:
        set_input(batches[i % k])
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
        i += 1
        if deadline is None:
            if i >= runs:
                break
        elif t1 >= deadline and i >= min_runs:
            break
    return [v / 1e6 for v in lat]


def bare_loop(runner, runs: int) -> List[float]:
    """The reference: nothing but ``invoke()`` between two clock reads, on the input already set."""
    clock = time.perf_counter_ns
    invoke = runner.invoke
    lat = []
    append = lat.append
    for _ in range(runs):
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
    return [v / 1e6 for v in lat]


def _load_runner(path, runtime: str, threads: int):
    spec = RUNTIMES[runtime]
    if spec.format == "keras":
        from edgecnn.benchmark.keras_runner import KerasRunner
        return KerasRunner(path, threads)
    from edgecnn.runtime import load
    return load(path, backend=spec.backend, threads=threads, xnnpack=bool(spec.xnnpack))


def _import_runtime(runtime: str) -> str:
    """Import the runtime (so that rss_before is the empty runtime's RSS); its version."""
    spec = RUNTIMES[runtime]
    if spec.format == "keras":
        import edgecnn  # noqa: F401
        try:
            import tensorflow as tf
            import tf_keras  # noqa: F401
        except ImportError as e:
            raise RuntimeNotAvailableError(f"Runtime 'keras' needs TensorFlow and tf_keras ({e}).") from None
        return f"tensorflow {tf.__version__}"
    from edgecnn.runtime import runtime_version
    return runtime_version(spec.backend)


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
        version = _import_runtime(job["runtime"])
        raw = _raw_images(job.get("random_inputs", False))
        rss_before = rss_mb()
        hwm_reset = reset_peak_rss()
        t0 = time.perf_counter_ns()
        runner = _load_runner(job["path"], job["runtime"], job["threads"])
        init_ms = (time.perf_counter_ns() - t0) / 1e6
        runner.resize(job["batch"])
        batches, inputs = _input_batches(runner, job.get("spec"), raw, job["batch"], job.get("seed", 0))
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


# ----------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class Combination:
    target: Target
    runtime: str
    threads: int


def plan_combinations(targets: Sequence[Target], runtimes: Sequence[str], threads: Sequence[int]):
    """(combinations, notes): each target with each runtime that runs its format, each thread count."""
    combos, notes = [], []
    for t in targets:
        fitting = [r for r in runtimes if RUNTIMES[r].format == t.format] if runtimes else [DEFAULT_RUNTIME[t.format]]
        if not fitting:
            if t.explicit:
                raise RuntimeNotAvailableError(
                    f"{t.path} is {t.format}: runtime(s) {', '.join(runtimes)} do not run {t.format} files "
                    f"(for {t.format}: {', '.join(r for r in RUNTIMES if RUNTIMES[r].format == t.format)}).")
            notes.append(f"skipped {t.name}: no asked-for runtime runs {t.format}")
            continue
        for r in fitting:
            for n in threads:
                combos.append(Combination(t, r, n))
    if not combos:
        raise BenchmarkError(f"nothing to benchmark: runtime(s) {', '.join(runtimes)} run none of the given artifacts")
    return combos, notes


def benchmark(paths: Sequence, *, runtimes=None, threads=None, warmup: int = 10, runs: int = 100,
              seconds: Optional[float] = None, batch: int = 1, device: Optional[str] = None,
              random_inputs: bool = False, isolate: bool = True,
              progress: Optional[Callable[[str], None]] = None, command: Optional[str] = None) -> dict:
    """Benchmark artifacts / run directories on runtimes x thread counts; the results document
    (schema in edgecnn.benchmark's docstring)."""
    from edgecnn.benchmark.platform import platform_info, short
    from edgecnn.benchmark.profiles import plan_device

    if runs < 1 and not seconds:
        raise InvalidConfigError(f"Received `--runs {runs}`: at least 1 timed run is needed.")
    if warmup < 0:
        raise InvalidConfigError(f"Received `--warmup {warmup}`: must be 0 or more.")
    if batch < 1:
        raise InvalidConfigError(f"Received `--batch {batch}`: must be 1 or more.")
    if seconds is not None and seconds <= 0:
        raise InvalidConfigError(f"Received `--seconds {seconds}`: must be positive.")
    runtimes = parse_runtimes(runtimes)
    threads = parse_threads(threads)
    info = platform_info()
    plan = plan_device(device, short(info), info["machine"], info.get("board") or "")
    if not threads:
        threads = [plan.threads or 1]
    targets = resolve_targets(paths, want_keras="keras" in runtimes)
    combos, notes = plan_combinations(targets, runtimes, threads)
    say = progress or (lambda s: None)
    for n in notes:
        say(n)
    rows = []
    sha = {}
    for i, c in enumerate(combos, 1):
        t = c.target
        head = f"[{i}/{len(combos)}] {t.name} | {c.runtime} | {c.threads} thread{'s' * (c.threads != 1)} | batch {batch}"
        say(head + " ...")
        job = {"path": str(t.path), "runtime": c.runtime, "threads": c.threads, "batch": batch,
               "warmup": warmup, "runs": runs, "seconds": seconds, "spec": t.spec,
               "random_inputs": random_inputs, "cpus": plan.cpus}
        m = measure_in_subprocess(job) if isolate else measure(job)
        if str(t.path) not in sha:
            sha[str(t.path)] = sha256_file(t.path)
        lat = m["timing"]["latency"]
        say(f"{head}: p50 {lat['p50_ms']:.3f} ms, mean {lat['mean_ms']:.3f} ms over {lat['count']} runs, "
            f"{m['timing']['fps']:.1f} FPS, peak RSS {m['memory']['peak_rss_mb']:.1f} MiB")
        rows.append({
            "artifact": t.name, "path": str(t.path), "sha256": sha[str(t.path)], "format": t.format,
            "precision": t.precision, "model": t.model, "run": t.run, "size_bytes": t.path.stat().st_size,
            "runtime": c.runtime, "runtime_title": RUNTIMES[c.runtime].title,
            "runtime_version": m["runtime_version"], "xnnpack": RUNTIMES[c.runtime].xnnpack,
            "threads": c.threads, "batch": batch, "warmup_runs": warmup,
            "device": dict(plan.to_dict(), threads=c.threads, pinned_cpus=m["pinned_cpus"]),
            "platform": info, "inputs": m["inputs"], "input": m["input"],
            "timing": m["timing"], "latencies_ms": m["latencies_ms"], "memory": m["memory"],
            "accuracy": t.accuracy(), "isolation": "subprocess" if isolate else "in-process",
        })
    import edgecnn
    return {"schema": SCHEMA, "tool": f"edgecnn {edgecnn.__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "notes": notes,
            "rows": rows}


def measure_overhead(path, runs: int = 2000, runtime: str = "litert", threads: int = 1, rounds: int = 20) -> dict:
    """Median of the harness's timed loop vs a bare ``invoke()`` loop on the same interpreter.

    Both loops alternate in ``rounds`` blocks of ``runs // rounds`` so that drift in machine load
    falls on both alike. The overhead is the median over rounds of the paired difference
    (harness median - bare median) / bare median: a round that another process disturbed moves
    both of its halves and drops out of the median. Returns both pooled medians (ms), the
    overhead in percent with the range of the per-round figures, and the run counts."""
    runner = _load_runner(path, runtime, threads)
    runner.resize(1)
    batches, _ = _input_batches(runner, None, _raw_images(False), 1)
    runner.set_input(batches[0])
    bare_loop(runner, 20)  # warm-up
    bare, harness, paired = [], [], []
    per = max(1, runs // rounds)
    for r in range(rounds):
        # Alternate which loop goes first, so that neither always runs on a just-warmed cache.
        order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
        got = {}
        for which in order:
            if which == "harness":
                got[which] = time_loop(runner, batches, per)
            else:
                runner.set_input(batches[0])
                got[which] = bare_loop(runner, per)
        harness += got["harness"]
        bare += got["bare"]
        hb, bb = float(np.median(got["harness"])), float(np.median(got["bare"]))
        paired.append((hb - bb) / bb * 100.0)
    b, h = float(np.median(bare)), float(np.median(harness))
    return {"artifact": Path(path).name, "runtime": runtime, "threads": threads,
            "bare_median_ms": b, "harness_median_ms": h, "overhead_pct": float(np.median(paired)),
            "overhead_pct_rounds": [float(min(paired)), float(max(paired))], "rounds": rounds,
            "runs": {"bare": len(bare), "harness": len(harness)}}


def format_overhead(r: dict) -> str:
    """One line for ``make bench``: both medians, the overhead, and the runs they rest on."""
    verdict = "within" if abs(r["overhead_pct"]) <= 3.0 else "OUTSIDE"
    rng = r.get("overhead_pct_rounds")
    spread = f"; per-round {rng[0]:+.2f}% to {rng[1]:+.2f}% over {r['rounds']} paired rounds" if rng else ""
    return (f"harness overhead on {r['artifact']} ({r['runtime']}, {r['threads']} thread): harness median "
            f"{r['harness_median_ms'] * 1000:.2f} us vs bare invoke() median {r['bare_median_ms'] * 1000:.2f} us; "
            f"overhead (median of paired rounds) {r['overhead_pct']:+.2f}% ({verdict} 3%){spread}; "
            f"{r['runs']['harness']} + {r['runs']['bare']} runs")
