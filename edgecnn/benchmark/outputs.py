"""What ``edgecnn benchmark`` does around the measurements: pick the output folder, run here or
on a remote host, merge other results in, write the tables and plots, add per-op profiles, or
run the interleaved A/B comparison instead.

Kept out of the CLI so that the command stays a thin wrapper and the same flow is callable
from Python (and testable without a subprocess).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from edgecnn.errors import InvalidConfigError


def default_out_dir(targets: Sequence) -> Path:
    """<run>/bench when the first target is a run directory or a file in a run's export/ folder
    (results beside the run they measure), else ./bench."""
    first = Path(targets[0])
    run_dir = first if first.is_dir() else (first.parent.parent if first.parent.name == "export" else None)
    return (run_dir / "bench") if run_dir is not None and (run_dir / "export").is_dir() else Path("bench")


@dataclasses.dataclass
class BenchmarkOutput:
    doc: dict  # the results document written to results.json
    paths: dict  # what write_results wrote ({"results_json": Path, ..., "latency_plot": Path | None})
    out_dir: Path
    op_profiles: List[Tuple[dict, Path]] = dataclasses.field(default_factory=list)  # (profile, its JSON file)


def run_benchmark(targets: Sequence, *, runtimes=None, threads=None, warmup: int = 10, runs: int = 100,
                  seconds: Optional[float] = None, batch: int = 1, device: Optional[str] = None,
                  out_dir=None, random_inputs: bool = False, op_profile: bool = False, in_process: bool = False,
                  merge_files: Sequence = (), remote: Optional[str] = None, remote_options: Optional[dict] = None,
                  hosts_file=None, emulate=None, progress: Optional[Callable[[str], None]] = None,
                  command: Optional[str] = None) -> BenchmarkOutput:
    """Benchmark ``targets`` here (or on ``remote``, an SSH destination, with ``remote_options``
    for ``run_remote_benchmark``; several, comma-separated, and/or the boards of ``hosts_file``:
    ``run_fleet_benchmark`` on all at once), merge ``merge_files`` in, and write results.json/csv/md,
    report.md and plots into ``out_dir`` (default: ``default_out_dir``). With ``op_profile``,
    one per-op profile per (artifact, runtime) as op_profile_<stem>_<runtime>.json beside them.
    Remote rows join a results.json already in ``out_dir`` (the local table they complete).
    ``emulate`` (board names, e.g. "pi4,pi5"): the TFLite artifacts are also counted on those
    emulated Raspberry Pi cores (``edgecnn.benchmark.emulated``); their predicted rows go under the
    document's "emulated" key, for each thread count asked for (else those measured)."""
    from edgecnn.benchmark.report import merge_results, write_results

    boards = []
    if emulate:
        from edgecnn.benchmark.emulated import check_emulator, parse_boards
        boards = parse_boards(emulate)
        check_emulator()  # a missing qemu or root fails now, not after the measurements
    if merge_files:
        merge_results(list(merge_files))  # every file validated before anything is measured or written
    if remote or hosts_file is not None:
        from edgecnn.benchmark.remote import destinations, run_fleet_benchmark, run_remote_benchmark
        if op_profile:
            raise InvalidConfigError("--op-profile runs here, not on the remote host: leave it out with --remote")
        opts = dict(remote_options or {})
        hosts = destinations(remote, hosts_file, opts.pop("port", None))
        common = dict(runtimes=list(runtimes or []) or None, threads=list(threads or []) or None, warmup=warmup,
                      runs=runs, seconds=seconds, batch=batch, device=device, random_inputs=random_inputs,
                      in_process=in_process, progress=progress, **opts)
        if len(hosts) == 1 and hosts_file is None:
            doc = run_remote_benchmark(list(targets), hosts[0][0], port=hosts[0][1], **common)
        else:
            doc = run_fleet_benchmark(list(targets), hosts, **common)
    else:
        from edgecnn.benchmark.harness import benchmark
        doc = benchmark(list(targets), runtimes=list(runtimes or []) or None, threads=list(threads or []) or None,
                        warmup=warmup, runs=runs, seconds=seconds, batch=batch, device=device,
                        random_inputs=random_inputs, isolate=not in_process, progress=progress, command=command)
    fleet = {k: doc[k] for k in ("fleet", "failures") if k in doc}  # this run's boards, kept through merges
    if merge_files:
        doc = merge_results(list(merge_files) + [doc])
    out = Path(out_dir) if out_dir is not None else default_out_dir(targets)
    if (remote or hosts_file is not None) and (out / "results.json").is_file():  # join the table already there
        doc = merge_results([out / "results.json", doc])
    doc.update(fleet)
    if boards:
        from edgecnn.benchmark.emulated import emulate_targets
        from edgecnn.benchmark.harness import parse_threads
        from edgecnn.benchmark.targets import resolve_targets
        counts = parse_threads(list(threads or [])) or sorted({r["threads"] for r in doc["rows"]}) or [1]
        doc["emulated"], notes = emulate_targets(resolve_targets(list(targets)), boards, counts, progress)
        doc["notes"] = list(doc.get("notes") or []) + notes
    result = BenchmarkOutput(doc, write_results(doc, out), out)
    if op_profile:
        from edgecnn.benchmark.opprofile import op_profile as profile_ops
        from edgecnn.io import atomic_write_json
        done = set()
        for r in doc["rows"]:
            if r["format"] == "keras" or (r["path"], r["runtime"]) in done or not Path(r["path"]).exists():
                continue
            done.add((r["path"], r["runtime"]))
            prof = profile_ops(r["path"], r["runtime"], r["threads"], runs=max(10, min(runs, 200)))
            target = out / f"op_profile_{Path(r['path']).stem}_{r['runtime']}.json"
            atomic_write_json(target, prof)
            result.op_profiles.append((prof, target))
    return result


def run_interleaved(targets: Sequence, *, runtimes=None, threads=None, rounds: int = 9, warmup: int = 10,
                    runs: int = 100, batch: int = 1, device: Optional[str] = None, out_dir=None,
                    random_inputs: bool = False, progress: Optional[Callable[[str], None]] = None,
                    command: Optional[str] = None) -> BenchmarkOutput:
    """``edgecnn benchmark --interleave``: ``timing.interleave`` on the targets in this process,
    pinned to the ``device`` profile's cores where given; results.json in ``out_dir`` holds the
    comparison under "interleaved" (its "rows" stay empty: these are not per-combination rows)."""
    import edgecnn
    from edgecnn.benchmark.harness import SCHEMA, parse_threads
    from edgecnn.benchmark.platform import platform_info, short
    from edgecnn.benchmark.profiles import plan_device
    from edgecnn.benchmark.targets import resolve_targets
    from edgecnn.benchmark.timing import interleave
    from edgecnn.io import atomic_write_json
    from edgecnn.runtime import parse_backends

    names = parse_backends(runtimes)
    if len(names) > 1:
        raise InvalidConfigError(f"--interleave times every artifact on one runtime; received {', '.join(names)}.")
    counts = parse_threads(threads)
    if len(counts) > 1:
        raise InvalidConfigError(f"--interleave takes one thread count; received {', '.join(map(str, counts))}.")
    info = platform_info()
    plan = plan_device(device, short(info), info["machine"], info.get("board") or "")
    items = resolve_targets(list(targets))
    say = progress or (lambda s: None)
    say(f"interleaving {', '.join(t.name for t in items)}: {rounds} rounds x {runs} runs")
    old_affinity = None
    if plan.cpus:
        try:
            old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, plan.cpus)
        except (AttributeError, OSError):
            old_affinity = None
    try:
        result = interleave(items, runtime=names[0] if names else None, threads=counts[0] if counts else (plan.threads or 1),
                            rounds=rounds, runs=runs, warmup=warmup, batch=batch, random_inputs=random_inputs)
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
    result["device"] = plan.to_dict()
    result["platform"] = info
    doc = {"schema": SCHEMA, "tool": f"edgecnn {edgecnn.__version__}", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "command": command, "notes": [], "rows": [], "interleaved": result}
    out = Path(out_dir) if out_dir is not None else default_out_dir(targets)
    path = atomic_write_json(out / "results.json", doc)
    return BenchmarkOutput(doc, {"json": path}, out)
