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

from edgecnn.benchmark.options import BenchmarkOptions
from edgecnn.errors import InvalidConfigError


def default_out_dir(targets: Sequence) -> Path:
    """Results beside what they measure: <run>/bench for a run directory; <export>/../bench for an
    export folder or an artifact in one (a run's export/, or ~/models/quicknet/export copied to a
    Pi: ~/models/quicknet/bench, as raspi/README.md says); else ./bench."""
    from edgecnn.contract import MANIFEST, RUN_FILE

    first = Path(targets[0])
    folder = first if first.is_dir() else first.parent
    if (folder / RUN_FILE).is_file():
        return folder / "bench"
    if (folder / MANIFEST).is_file():
        return folder.parent / "bench"
    return Path("bench")


@dataclasses.dataclass
class BenchmarkOutput:
    doc: dict  # the results document written to results.json
    paths: dict  # what write_results wrote ({"results_json": Path, ..., "latency_plot": Path | None})
    out_dir: Path
    op_profiles: List[Tuple[dict, Path]] = dataclasses.field(default_factory=list)  # (profile, its JSON file)


def run_benchmark(targets: Sequence, options: Optional[BenchmarkOptions] = None, *, out_dir=None,
                  merge_files: Sequence = (), progress: Optional[Callable[[str], None]] = None,
                  command: Optional[str] = None, **overrides) -> BenchmarkOutput:
    """Benchmark ``targets`` as ``options`` say (``BenchmarkOptions``; keyword ``overrides``):
    here, or on ``remote``, an SSH destination (``run_remote_benchmark``; several, comma-separated,
    and/or the boards of ``hosts_file``: ``run_fleet_benchmark`` on all at once); merge
    ``merge_files`` in, and write results.json/csv/md, report.md and plots into ``out_dir``
    (default: ``default_out_dir``). With ``op_profile``, one per-op profile per (artifact,
    runtime) as op_profile_<stem>_<runtime>.json beside them. Remote rows join a results.json
    already in ``out_dir`` (the local table they complete). ``emulate`` (board names, e.g.
    "pi4,pi5"): the TFLite artifacts are also counted on those emulated Raspberry Pi cores
    (``edgecnn.benchmark.emulated``); their predicted rows go under the document's "emulated" key,
    for each thread count asked for (else those measured)."""
    from edgecnn.benchmark.report import merge_results, write_results

    o = BenchmarkOptions.make(options, **overrides)
    boards = []
    if o.emulate or any(t != "host" for t in o.targets):
        from edgecnn.benchmark.emulated import check_emulator, parse_boards
        boards = parse_boards(list(o.emulate) + [t for t in o.targets if t != "host" and t not in o.emulate])
        check_emulator()  # a missing qemu or root fails now, not after the measurements
    if merge_files:
        merge_results(list(merge_files))  # every file validated before anything is measured or written
    if o.remote_run:
        from edgecnn.benchmark.remote import destinations, run_fleet_benchmark, run_remote_benchmark
        hosts = destinations(o.remote, o.hosts_file, o.port)
        if len(hosts) == 1 and o.hosts_file is None:
            doc = run_remote_benchmark(list(targets), hosts[0][0], o, port=hosts[0][1], progress=progress)
        else:
            doc = run_fleet_benchmark(list(targets), hosts, o, progress=progress)
    else:
        from edgecnn.benchmark.harness import benchmark
        doc = benchmark(list(targets), o, progress=progress, command=command)
    fleet = {k: doc[k] for k in ("fleet", "failures") if k in doc}  # this run's boards, kept through merges
    if merge_files:
        doc = merge_results(list(merge_files) + [doc])
    out = Path(out_dir) if out_dir is not None else default_out_dir(targets)
    if o.remote_run and (out / "results.json").is_file():  # join the table already there
        doc = merge_results([out / "results.json", doc])
    doc.update(fleet)
    if boards:
        from edgecnn.benchmark.emulated import emulate_targets
        from edgecnn.benchmark.harness import parse_threads
        from edgecnn.benchmark.targets import resolve_targets
        counts = parse_threads(list(o.threads)) or sorted({r["threads"] for r in doc["rows"]}) or [1]
        if o.targets:  # a recommendation states 1 and 4 threads (the Pis' four cores): predictions, so cheap
            counts = sorted(set(counts) | {1, 4})
        doc["emulated"], notes = emulate_targets(resolve_targets(list(targets)), boards, counts, progress)
        doc["notes"] = list(doc.get("notes") or []) + notes
    if o.targets:
        record_recommendations(doc, targets, o.targets, progress)
    result = BenchmarkOutput(doc, write_results(doc, out), out)
    if o.op_profile:
        from edgecnn.benchmark.opprofile import op_profile as profile_ops
        from edgecnn.core.files import atomic_write_json, fit_name
        done = set()
        for r in doc["rows"]:
            if r["format"] == "keras" or (r["path"], r["runtime"]) in done or not Path(r["path"]).exists():
                continue
            done.add((r["path"], r["runtime"]))
            prof = profile_ops(r["path"], r["runtime"], r["threads"], runs=max(10, min(o.runs, 200)))
            target = out / fit_name(f"op_profile_{Path(r['path']).stem}_{r['runtime']}.json")
            atomic_write_json(target, prof)
            result.op_profiles.append((prof, target))
    return result


def record_recommendations(doc: dict, targets: Sequence, wanted: Sequence[str],
                           progress: Optional[Callable[[str], None]] = None) -> dict:
    """``doc["recommended"]``: per target the artifact to ship (``benchmark.recommend``), also written
    into the manifest of the one export benchmarked (atomically, by the contract); the document
    says why when there is none."""
    from edgecnn import contract
    from edgecnn.benchmark.recommend import recommend
    from edgecnn.benchmark.targets import resolve_targets

    say = progress or (lambda s: None)
    doc["targets"] = list(wanted)
    exports = {str(t.manifest_path): t for t in resolve_targets(list(targets)) if t.manifest_path is not None}
    if len(exports) != 1:
        doc["recommend_note"] = ("the benchmark covers several exports" if exports else
                                 "no artifact with a manifest (verified accuracy) was benchmarked")
        doc["recommended"] = {}
        return doc
    path = next(iter(exports))
    from edgecnn.core import commit

    with commit.locked(Path(path).parent, echo=say):  # read, add, write: no export commits in between
        manifest = contract.read_manifest(path)
        recs = recommend(doc, manifest, wanted)
        doc["recommended"] = recs
        missing = [w for w in wanted if w not in recs]
        if missing:
            doc["recommend_note"] = f"no verified artifact has costs on {', '.join(missing)}"
        manifest["recommended"] = dict(manifest.get("recommended") or {}, **recs)
        contract.write_manifest(Path(path).parent, manifest)
    for target, r in recs.items():
        say(f"recommended for {target}: {r['artifact']} ({r['reason']})")
    return doc


def run_interleaved(targets: Sequence, options: Optional[BenchmarkOptions] = None, *, out_dir=None,
                    progress: Optional[Callable[[str], None]] = None, command: Optional[str] = None,
                    **overrides) -> BenchmarkOutput:
    """``edgecnn benchmark --interleave``: ``benchmark.interleaved`` on the targets in this process,
    pinned to the ``device`` profile's cores where given; results.json in ``out_dir`` holds the
    comparison under "interleaved" (its "rows" stay empty: these are not per-combination rows)."""
    import edgecnn
    from edgecnn.benchmark.harness import SCHEMA, parse_threads
    from edgecnn.measure.machine import platform_info, short
    from edgecnn.measure.profiles import plan_device
    from edgecnn.benchmark.targets import resolve_targets
    from edgecnn.benchmark.interleaved import interleave
    from edgecnn.core.files import atomic_write_json
    from edgecnn.measure.runtime import parse_backends

    o = BenchmarkOptions.make(options, **overrides)
    clash = [f for f, on in (("--remote", o.remote_run), ("--op-profile", o.op_profile), ("--seconds", o.seconds),
                             ("--emulate", o.emulate)) if on]
    if clash:
        raise InvalidConfigError(f"--interleave times in this process for --rounds x --runs: leave out "
                                 f"{', '.join(clash)}")
    names = parse_backends(list(o.runtimes) or None)
    if len(names) > 1:
        raise InvalidConfigError(f"--interleave times every artifact on one runtime; received {', '.join(names)}.")
    counts = parse_threads(list(o.threads) or None)
    if len(counts) > 1:
        raise InvalidConfigError(f"--interleave takes one thread count; received {', '.join(map(str, counts))}.")
    info = platform_info()
    plan = plan_device(o.device, short(info), info["machine"], info.get("board") or "")
    items = resolve_targets(list(targets))
    say = progress or (lambda s: None)
    say(f"interleaving {', '.join(t.name for t in items)}: {o.rounds} rounds x {o.runs} runs")
    old_affinity = None
    if plan.cpus:
        try:
            old_affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, plan.cpus)
        except (AttributeError, OSError):
            old_affinity = None
    try:
        result = interleave(items, runtime=names[0] if names else None,
                            threads=counts[0] if counts else (plan.threads or 1), rounds=o.rounds, runs=o.runs,
                            warmup=o.warmup, batch=o.batch, random_inputs=o.random_inputs)
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
