"""The timed loops, the inputs they feed, and the turn-taking that comparisons are built on.

- ``time_loop``: the benchmark's loop. Each iteration sets the next real input batch (untimed)
  and times ``invoke()`` alone with ``perf_counter_ns``, so that a model is timed on varied
  images and the clock brackets nothing but inference.
- ``bare_loop``: nothing but ``invoke()`` between two clock reads; the reference that
  ``measure_overhead`` holds the harness's loop against.
- ``round_medians``: several loops taking turns in rounds, in one process. Latency on a shared
  machine drifts between processes by more than the int8/fp32 differences worth knowing; within
  one process, alternating rounds, the drift falls on every loop alike. A loop's figure is its
  lowest round median, the round least disturbed by other processes; ratios are taken between
  those figures. ``benchmark.interleaved`` (artifacts A/B) and ``export.mixed`` (per-op costs)
  both time with it.

Only numpy and the runtime asked for are imported (edgecnn.measure.runtime loads the model).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from edgecnn.errors import BenchmarkError


# ----------------------------------------------------------------------------- inputs
def raw_images(random_inputs: bool):
    """uint8 test images to feed (the bundled real CIFAR-10 sample's test split), or None."""
    if random_inputs:
        return None
    from edgecnn.data.sample import load_sample
    return load_sample()[1][0]


def input_batches(runner, spec, raw, batch: int, seed: int = 0, max_batches: int = 32,
                  source: Optional[str] = None):
    """(list of native input batches, description of the inputs). ``spec``: a PreprocessSpec dict,
    or a ``--preprocess`` string for this model's input, or None; ``source``: where it came from."""
    shape = tuple(runner.input.shape)
    if raw is None:
        rng = np.random.default_rng(seed)
        floats = [rng.standard_normal((batch,) + shape[1:]).astype(np.float32) for _ in range(8)]
        return [runner.prepare(x) for x in floats], {"source": "random normal (--random-inputs)", "images": 8 * batch}
    from edgecnn.data.preprocess import PreprocessSpec, preprocess, spec_for
    nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3)
    hwc = (shape[2], shape[3], shape[1]) if nchw else tuple(shape[1:])
    if isinstance(spec, str):
        from edgecnn.data.preprocess import parse_preprocess

        ps = parse_preprocess(spec, hwc[:2], hwc[2])
        note = f"preprocessing from --preprocess {spec}"
    elif spec:
        ps = PreprocessSpec.from_dict(spec)
        note = f"preprocessing from the {source or 'manifest/run.json'}"
    else:
        ps = spec_for(hwc, source_size=raw.shape[1])
        note = "no manifest, no metadata: default CIFAR-10 preprocessing for the model's input shape"
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


# ----------------------------------------------------------------------------- loops
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


# ----------------------------------------------------------------------------- overhead
def measure_overhead(path, runs: int = 2000, runtime: str = "litert", threads: int = 1, rounds: int = 20) -> dict:
    """Median of the harness's timed loop vs a bare ``invoke()`` loop on the same interpreter.

    Both loops alternate in ``rounds`` blocks of ``runs // rounds`` so that drift in machine load
    falls on both alike. The overhead is the median over rounds of the paired difference
    (harness median - bare median) / bare median: a round that another process disturbed moves
    both of its halves and drops out of the median. Returns both pooled medians (ms), the
    overhead in percent with the range of the per-round figures, and the run counts."""
    from edgecnn.measure.runtime import load

    runner = load(path, backend=runtime, threads=threads)
    runner.resize(1)
    batches, _ = input_batches(runner, None, raw_images(False), 1)
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


# ----------------------------------------------------------------------------- taking turns
def round_medians(loops: Sequence[Callable[[int], List[float]]], rounds: int, runs: int) -> List[List[float]]:
    """Every loop's median (ms) in each of ``rounds`` rounds of ``runs`` timed runs, the loops
    taking turns within a round and the order alternating (A B, then B A) so that neither
    always runs on a cache the other has just left. ``loops[i](n)`` times n runs (ms each):
    ``time_loop`` or ``bare_loop`` bound to a loaded runner. The lowest round median is the
    figure least disturbed by other processes; ratios are taken between those."""
    medians: List[List[float]] = [[] for _ in loops]
    for r in range(rounds):
        order = range(len(loops)) if r % 2 == 0 else reversed(range(len(loops)))
        for i in order:
            medians[i].append(float(np.median(loops[i](runs))))
    return medians
