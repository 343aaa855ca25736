"""A/B timing of several artifacts loaded in one process, taking turns in rounds
(``edgecnn.measure.timing.round_medians``): ``edgecnn benchmark A B --interleave``."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from edgecnn.benchmark.targets import Target, resolve_targets
from edgecnn.errors import InvalidConfigError
from edgecnn.measure.timing import input_batches, raw_images, round_medians, time_loop


def interleave(targets: Sequence, *, runtime: Optional[str] = None, threads: int = 1, rounds: int = 9,
               runs: int = 100, warmup: int = 10, batch: int = 1, random_inputs: bool = False) -> dict:
    """Time two or more artifacts in this process, taking turns: ``rounds`` rounds of ``runs``
    timed inferences each (``time_loop``, the benchmark's loop and inputs), after ``warmup``.

    The order within a round alternates (A B, then B A) so that neither artifact always runs
    on a cache the other has just left. Per artifact: every round's median (ms) and the lowest
    of them, the figure least disturbed by other processes; ``ratio_to_first`` divides each
    lowest round median by the first artifact's, and for two artifacts ``ratio`` is B/A.

    ``targets``: paths or ``edgecnn.benchmark.targets.Target``s (their preprocessing feeds the
    real test images). ``runtime``: a backend name for every artifact, or None for each
    format's default (litert for .tflite, onnxruntime for .onnx).
    """
    from edgecnn.measure import runtime as rt

    for flag, value, least in (("--rounds", rounds, 1), ("--runs", runs, 1), ("--warmup", warmup, 0),
                               ("--batch", batch, 1), ("--threads", threads, 1)):
        if value < least:
            raise InvalidConfigError(f"Received `{flag} {value}`: must be {least} or more.")
    items = [t for t in targets if isinstance(t, Target)]
    if len(items) != len(targets):
        items = resolve_targets([t.path if isinstance(t, Target) else t for t in targets])
    if len(items) < 2:
        raise InvalidConfigError(f"Interleaved timing compares two or more artifacts; received {len(items)} "
                                 f"({', '.join(t.name for t in items) or 'none'}).")
    raw = raw_images(random_inputs)
    loaded = []
    for t in items:
        backend = rt.resolve_backend(runtime) if runtime else rt.DEFAULT_BACKEND[t.format]
        runner = rt.load(t.path, backend=backend, threads=threads)
        runner.resize(batch)
        batches, inputs = input_batches(runner, t.spec, raw, batch, source=t.spec_source)
        if warmup:
            time_loop(runner, batches, warmup)
        loaded.append((t, backend, runner, batches, inputs))
    medians = round_medians([lambda n, r=runner, b=batches: time_loop(r, b, n) for _, _, runner, batches, _ in loaded],
                            rounds, runs)
    best = [min(m) for m in medians]
    rows = []
    for (t, backend, runner, _, inputs), m, b in zip(loaded, medians, best):
        rows.append({"artifact": t.name, "path": str(t.path), "format": t.format, "precision": t.precision,
                     "runtime": backend, "runtime_version": rt.runtime_version(backend), "input": runner.input.to_dict(),
                     "inputs": inputs, "round_medians_ms": m, "best_ms": b, "median_of_rounds_ms": float(np.median(m)),
                     "ratio_to_first": b / best[0]})
    return {"kind": "interleaved", "rounds": rounds, "runs_per_round": runs, "warmup_runs": warmup,
            "threads": threads, "batch": batch, "baseline": rows[0]["artifact"],
            "ratio": best[1] / best[0] if len(rows) == 2 else None,
            "method": ("one process, artifacts take turns each round (order alternating); per artifact the "
                       "lowest round median; ratios between those"),
            "artifacts": rows}


def format_interleave(r: dict) -> str:
    """The interleaved comparison as a table: round medians, the lowest, and the ratio to the first."""
    lines = [f"Interleaved timing: {r['rounds']} rounds x {r['runs_per_round']} runs, {r['threads']} thread"
             f"{'s' * (r['threads'] != 1)}, batch {r['batch']}; figure = lowest round median (ms)",
             f"{'artifact':<36} {'runtime':<14} {'lowest ms':>10} {'median ms':>10} {'vs first':>9}  round medians (ms)"]
    for a in r["artifacts"]:
        rounds = " ".join(f"{v:.3f}" for v in a["round_medians_ms"])
        lines.append(f"{a['artifact'][:36]:<36} {a['runtime']:<14} {a['best_ms']:>10.3f} "
                     f"{a['median_of_rounds_ms']:>10.3f} {a['ratio_to_first']:>8.3f}x  {rounds}")
    if r.get("ratio") is not None:
        a, b = r["artifacts"]
        lines.append(f"ratio {b['artifact']} / {a['artifact']}: {r['ratio']:.3f} "
                     f"({b['best_ms']:.3f} / {a['best_ms']:.3f} ms, lowest round medians)")
    return "\n".join(lines)
