"""``edgecnn benchmark`` and the ``bench`` suites (paper claims, emulator calibration)."""
from __future__ import annotations

import json

import click

from edgecnn.cli.group import cli
from edgecnn.cli.options import finite_float, preprocess_option, runtime_help, split_names, target_option
from edgecnn.core.text import shown


@cli.group("bench")
def bench_group():
    """Benchmark suites: many models exported with 'edgecnn export', timed with the benchmark harness."""


@cli.command("benchmark")
@click.argument("artifacts", nargs=-1, required=True, metavar="ARTIFACT_OR_RUN...")
@click.option("--runtime", "runtimes", multiple=True,
              help=f"{runtime_help(('tflite', 'onnx', 'keras'))}; repeat or comma-separate. "
                   "Default: litert for .tflite, onnxruntime for .onnx.")
@click.option("--threads", "threads", multiple=True,
              help="Thread count(s), e.g. --threads 1,2,4. Default: the --device's cores, else 1.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(0),
              help="Warm-up runs after the first inference.")
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1),
              help="Timed runs per combination (with --interleave: per artifact per round).")
@click.option("--seconds", default=None, type=float, callback=finite_float(0, min_open=True),
              help="Time each combination for this long instead of --runs.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1), help="Images per inference.")
@click.option("--device", default=None,
              help="Device profile (pi5, pi4, pi3, pi-zero2): its thread count and core pinning. On x86 the "
                   "results are labelled 'x86 baseline of <device>'; on ARM they are measured on this board.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output directory. Default: <run>/bench for a run, else ./bench.")
@click.option("--random-inputs", is_flag=True, help="Feed random normal inputs instead of real test images.")
@preprocess_option("from the manifest, else the model file's own metadata; for a file with neither, CIFAR-10's for "
                   "its input shape")
@click.option("--op-profile", is_flag=True,
              help="Per-op profile: measured per-node times for ONNX; for TFLite the op list with MACs and "
                   "XNNPACK delegation (LiteRT's Python API exposes no per-op timing).")
@click.option("--in-process", is_flag=True,
              help="Measure in this process instead of a fresh subprocess per combination (peak RSS less clean).")
@click.option("--interleave", is_flag=True,
              help="A/B timing: load every artifact in one process and let them take turns for --rounds rounds; "
                   "reports each one's round medians and the ratio of the lowest ones (B/A).")
@click.option("--rounds", default=None, type=click.IntRange(1),
              help="With --interleave: rounds (default 9).")
@click.option("--merge", "merge_files", multiple=True, type=click.Path(dir_okay=False),
              help="results.json from elsewhere (e.g. a Pi) to merge into this table; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the results document as JSON instead of the table.")
@click.option("--emulate", "emulate", multiple=True, metavar="BOARD[,BOARD...]",
              help="Also count every TFLite artifact on an emulated Raspberry Pi core (pi4, pi5, pi3, pi-zero2; "
                   "qemu-user, see docs/arm-emulation.md) and add its predicted latency, per --threads value, as "
                   "rows of their own (predicted, not measured); repeat or comma-separate.")
@click.option("--remote", default=None, metavar="USER@HOST[:PORT][,...]",
              help="Run it on this SSH host (a Pi set up with raspi/install.sh); its rows join the table in --out. "
                   "Several, comma-separated: every board at once, one table with a row per board x artifact; a "
                   "board that fails is a row saying why (exit code 14 only when every board fails).")
@click.option("--hosts-file", default=None, type=click.Path(dir_okay=False),
              help="Boards to benchmark on, one USER@HOST[:PORT] per line ('#' comments); with or without --remote.")
@click.option("--remote-timeout", "timeout", default=3600, show_default=True, type=float, callback=finite_float(0, min_open=True),
              help="With --remote/--hosts-file: seconds a board may take before it is stopped and reported failed.")
@click.option("--remote-python", default="edgecnn-venv/bin/python", show_default=True,
              help="With --remote: the Python of the venv with edgecnn there (relative to the remote home).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="With --remote: an extra ssh -o option, repeatable (host keys are always checked).")
@click.option("--identity", default=None, type=click.Path(dir_okay=False), help="With --remote: SSH key (ssh -i).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="With --remote: SSH port.")
@target_option("For each, the fastest verified artifact on that target's costs (measured here for host, "
               "predicted on the emulated board otherwise) goes at the top of results.md and into the manifest.")
def benchmark_command(artifacts, out_dir, interleave, merge_files, as_json, **options):
    """Benchmark artifacts or run directories: latency statistics, FPS, init time, peak RSS and the
    verified accuracy side by side; writes results.json/csv/md, report.md and plots."""
    import shlex
    import sys

    from edgecnn.benchmark.options import BenchmarkOptions
    from edgecnn.benchmark.outputs import run_benchmark, run_interleaved
    from edgecnn.benchmark.report import format_table

    command = "edgecnn " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    progress = lambda s: click.echo(s, err=True)  # noqa: E731
    if (options["remote"] or options["hosts_file"]) and options["op_profile"]:
        raise click.UsageError("--op-profile runs here, not on the remote host: leave it out with --remote")
    if options["rounds"] is not None and not interleave:
        raise click.UsageError("--rounds applies to --interleave only")
    if options["rounds"] is None:
        options.pop("rounds")
    o = BenchmarkOptions.from_cli(**options)
    if interleave:
        clash = [f for f, on in (("--remote", o.remote_run), ("--merge", merge_files), ("--op-profile", o.op_profile),
                                 ("--seconds", o.seconds), ("--emulate", o.emulate), ("--target", o.targets)) if on]
        if clash:
            raise click.UsageError(f"--interleave times in this process for --rounds x --runs: leave out {', '.join(clash)}")
        res = run_interleaved(list(artifacts), o, out_dir=out_dir, progress=progress, command=command)
        from edgecnn.benchmark.interleaved import format_interleave
        click.echo(json.dumps(res.doc, indent=2) if as_json else format_interleave(res.doc["interleaved"]))
        if not as_json:
            click.echo(f"Written: {res.paths['json']}")
        return
    res = run_benchmark(list(artifacts), o, out_dir=out_dir, merge_files=merge_files, progress=progress,
                        command=command)
    if res.op_profiles:
        from edgecnn.benchmark.opprofile import format_op_profile
        for prof, target in res.op_profiles:
            click.echo(format_op_profile(prof) + f"\n(written to {target})\n", err=as_json)
    if as_json:
        click.echo(json.dumps(res.doc, indent=2))
    else:
        click.echo(format_table(res.doc["rows"]))
        if res.doc.get("fleet"):
            from edgecnn.benchmark.report import fleet_table
            click.echo("\n" + fleet_table(res.doc))
        if res.doc.get("emulated"):
            from edgecnn.benchmark.emulated import format_table as emulated_table
            click.echo("\n" + emulated_table(res.doc["emulated"]))
        if res.doc.get("targets"):
            from edgecnn.benchmark.recommend import markdown_lines
            click.echo("\nRecommended, per target:\n" + "\n".join(
                markdown_lines(res.doc.get("recommended") or {}, res.doc["targets"], res.doc.get("recommend_note", ""))))
        click.echo("Written: " + ", ".join(str(p) for p in res.paths.values() if p))
        for key, what in (("latency_plot", "latency plot"), ("pareto_plot", "accuracy-vs-latency plot")):
            if res.paths.get(key) is None:
                click.echo(f"Note: no {what} (matplotlib missing, or no verified accuracy in a manifest).")
    for f in res.doc.get("failures") or []:
        click.echo(f"Warning: {shown(f['host'])} failed: {shown(f['reason'], 400)}", err=True)




@bench_group.command("paper")
@click.option("--out", "out_dir", default="bench", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: paper_claims.md, paper_claims.json, paper_claims_*.png.")
@click.option("--models", "models", multiple=True, callback=split_names, metavar="NAMES",
              help="Measure only these models (comma-separated or repeated; any registered model). "
                   "Default: every model a paper claim names, and Han & Kwon's other structures.")
@click.option("--precisions", "precisions", multiple=True, callback=split_names, metavar="LIST",
              help="Only these precisions, fp32 and/or int8 (comma-separated). Default: those the claims need.")
@click.option("--runs", type=click.IntRange(1), default=None,
              help="Timed runs per artifact in all, split over the rounds.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of timed runs per artifact per round instead of --runs (default 1).")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True,
              help="Interleaved rounds over all artifacts (drift in machine load falls on all alike).")
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True,
              help="Warm-up runs before each round's timed runs.")
@click.option("--calibration", type=click.IntRange(1), default=64, show_default=True,
              help="Training images to calibrate int8 on.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Export folders, one per model, reused while their manifest and sha256 hold (default: OUT/.cache).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--in-process", is_flag=True,
              help="Time in this process instead of a fresh subprocess per artifact and round (faster, less clean).")
@click.option("--no-emulate", is_flag=True,
              help="Leave out the emulated Raspberry Pi 4 figures (the timed claims' artifacts counted under qemu-user, "
                   "latency predicted; skipped with a note where the emulator is not installed).")
def bench_paper_command(models, precisions, no_plots, in_process, no_emulate, **options):
    """The papers' speed and size claims (declared beside each builder) against this machine.

    Exports every model with fresh seeded weights (cached), times each TFLite artifact with the
    benchmark harness (LiteRT + XNNPACK, 1 thread, batch 1) and writes the claims table, with
    targets passed or failed. Latencies, FPS and their ratios use the mean of the timed runs.
    """
    from pathlib import Path

    from edgecnn.report.paper import PRECISIONS, PaperOptions, markdown, run_paper_claims

    if options["runs"] is not None and options["seconds"] is not None:
        raise click.UsageError("give --runs or --seconds, not both")
    out_dir = options["out_dir"]
    o = PaperOptions.from_cli(**options, precisions=tuple(precisions) or PRECISIONS, make_plots=not no_plots,
                              isolate=not in_process, emulate=None if no_emulate else "pi4")
    doc = run_paper_claims(models or None, o, say=lambda s: click.echo(s, err=True))
    click.echo(markdown(doc))
    click.echo("Written: " + ", ".join([str(Path(out_dir) / "paper_claims.md"), str(Path(out_dir) / "paper_claims.json")]
                                       + doc["plots"]))
    click.echo(f"paper claims: {doc['wall_s']['total']:.0f} s ({doc['wall_s']['export_or_cache']:.0f} s exporting "
               f"or checking the cache)")


@bench_group.command("emulator")
@click.option("--out", "out_dir", default="bench", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: emulator_calibration.md and .json.")
@click.option("--boards", "boards", multiple=True, callback=split_names, metavar="NAMES",
              help="Boards to count on besides the Pi 4 the model is fitted on (default: pi5, pi3).")
@click.option("--invokes", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Invokes counted per model (the counts are per inference).")
@click.option("--write", is_flag=True, help="Also replace the calibration edgecnn ships with this one.")
def bench_emulator_command(out_dir, boards, invokes, write):
    """The arm64 cost model against published Raspberry Pi 4 figures (docs/arm-emulation.md).

    Builds MobileNet v1 and v2 (224x224, random weights, fp32 and int8), counts what each executes
    on the emulated boards' cores, fits the cost model on the Pi 4 figures and prints the
    calibration table: published vs predicted latency per figure, also left out of the fit."""
    from edgecnn.benchmark.emulated import parse_boards
    from edgecnn.emulate.calibration import markdown, run
    from edgecnn.export.calibration_models import calibration_models

    boards = parse_boards(boards, "--boards")
    say = lambda s: click.echo(s, err=True)  # noqa: E731
    doc = run(out_dir, build=lambda d: calibration_models(d, say), boards=tuple(boards) or ("pi4", "pi5", "pi3"),
              invokes=invokes, write=write, say=say)
    click.echo(markdown(doc))
