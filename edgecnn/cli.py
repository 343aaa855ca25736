"""The ``edgecnn`` command: one click group, each command a thin wrapper over a library function.

Domain errors are raised deep in the library as ``edgecnn.errors.EdgecnnError`` subclasses
(click exceptions with their own exit codes); nothing here catches and prints.
"""
from __future__ import annotations

import json
import math

import click

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(edgecnn.__version__, prog_name="edgecnn")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what TensorFlow, the converters and the runtimes print (hidden by default).")
def cli(verbose):
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""
    from edgecnn import quiet

    quiet.configure(verbose=verbose)


# ---------------------------------------------------------------------------- option checks
# Every number is range-checked while the command line is parsed, before any work: a bad value
# is click's one-line usage error (exit 2), not a crash an hour into training.
def finite_float(min: float = None, max: float = None, *, min_open: bool = False, max_open: bool = False):
    """A callback for a ``type=float`` option: finite and within the bounds. click.FloatRange
    alone lets ``nan`` (every comparison with it is False) and ``inf`` through."""
    bounds = " and ".join(b for b in (
        None if min is None else f"{'>' if min_open else '>='} {min:g}",
        None if max is None else f"{'<' if max_open else '<='} {max:g}") if b)

    def check(ctx, param, value):
        if value is None:
            return None
        if not (math.isfinite(value) and (min is None or (value > min if min_open else value >= min))
                and (max is None or (value < max if max_open else value <= max))):
            raise click.BadParameter(f"expected a finite number{' ' + bounds if bounds else ''}; received {value!r}.")
        return value

    return check


_SEED = click.IntRange(0, 2**32 - 1)  # numpy's legacy seeding takes 32 bits


def _check_family(ctx, param, value):
    if value is None:
        return None
    from edgecnn.errors import did_you_mean
    from edgecnn.registry import get_entry, list_models

    families = sorted({get_entry(n).family for n in list_models()})
    if value not in families:
        raise click.BadParameter(f"unknown family {value!r}; one of {', '.join(families)}."
                                 f"{did_you_mean(value, families)}")
    return value


# ---------------------------------------------------------------------------- models
@cli.command("models")
@click.argument("names", nargs=-1)
@click.option("--paper", is_flag=True, help="Show our params/MACs/size next to each paper's figure and the ratio.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {name, params, macs, fp32_bytes, paper}.")
@click.option("--family", default=None, callback=_check_family,
              help="Only the models of this family (file name in models_keras).")
def models_command(names, paper, as_json, family):
    """List the registered models with parameters, MACs and fp32 size."""
    from edgecnn.registry import get_entry, list_models
    from edgecnn.zoo_report import format_table, zoo_table

    for n in names:
        get_entry(n)  # unknown names fail before anything is built
    # Named models are built (exact, a few seconds each); the whole zoo comes from the committed table.
    rows = zoo_table(list(names) or list_models(family), paper=paper, exact=bool(names))
    if as_json:
        out = [{k: r[k] for k in ("name", "params", "macs", "fp32_bytes")} | ({"paper": r["paper"]} if paper else {})
               for r in rows]
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_table(rows, paper=paper))
    if paper and any(not c["ok"] for r in rows for c in r["paper_check"]):
        raise click.ClickException("some models are outside their paper tolerance (rows marked NO)")


# ---------------------------------------------------------------------------- train / eval
MAX_SIDE = 4096  # an input side beyond this builds a model no edge device runs, after minutes of work


def _parse_shape(ctx, param, value):
    if value is None:
        return None
    try:
        shape = tuple(int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) == 3 and all(1 <= v <= MAX_SIDE for v in shape[:2]) and shape[2] in (1, 3):
        return shape
    raise click.BadParameter(f"expected H,W,C such as 32,32,3: sides 1 to {MAX_SIDE}, 1 or 3 channels; "
                             f"received {value!r}")


def _parse_model_args(ctx, param, values):
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE; received {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


_data_option = click.option(
    "--data", default="sample", show_default=True,
    help="sample (bundled real CIFAR-10 sample, offline), cifar10, cifar100 (download), fashion_mnist (Debian "
         "files), or a PATH: CIFAR python batches folder/.tar.gz, class-per-subfolder images, Tiny ImageNet.")
_runs_dir_option = click.option("--runs-dir", default=None, help="Runs root (default: $EDGECNN_RUNS or ./runs).")
_unsafe_load_option = click.option(
    "--unsafe-load", is_flag=True,
    help="Load a Keras model that is not a .keras zip, or holds Lambda/custom code, WITHOUT safe mode. It can run "
         "code from the file: only for a model you trust.")


@cli.command("train")
@click.argument("model", required=False)
@_data_option
@click.option("--recipe", default="quick", show_default=True,
              help="quick, quicknet, structure_e, sepresnet, cmiv4 (see edgecnn.recipes.RECIPES).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the recipe's epochs.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Override the recipe's global batch size.")
@click.option("--lr", type=float, default=None, callback=finite_float(0, min_open=True),
              help="Override the recipe's (initial) learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "rmsprop"]), default=None,
              help="Override the optimizer.")
@click.option("--momentum", type=float, default=None, callback=finite_float(0, 1),
              help="Override SGD/RMSprop momentum.")
@click.option("--weight-decay", type=float, default=None, callback=finite_float(0),
              help="Override the L2 penalty on kernels.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine", "step"]), default=None,
              help="Override the LR schedule.")
@click.option("--early-stopping", type=click.IntRange(0), default=None, help="Patience in epochs on val_loss (0: off).")
@click.option("--bn-momentum", type=float, default=None, callback=finite_float(0, 1, max_open=True),
              help="Override BatchNorm's moving-average momentum during training (quick recipe: 0.9).")
@click.option("--no-augment", is_flag=True, help="Turn off crops-with-padding, flips and colour jitter.")
@click.option("--val-fraction", type=float, default=None, callback=finite_float(0, 1, max_open=True),
              help="Fraction of train held out for validation.")
@click.option("--folds", type=click.IntRange(1), default=None,
              help="Stratified k-fold cross-validation first (e.g. 3).")
@click.option("--seed", type=_SEED, default=0, show_default=True,
              help="Seed for data split, order, augmentation, init.")
@click.option("--name", "run_name", default=None,
              help="Run name (default <recipe>-<time>). Re-running an interrupted run's command with the same "
                   "--name resumes it.")
@_runs_dir_option
@click.option("--resume", default=None, help="Continue an interrupted run (its directory) from its last checkpoint.")
@click.option("--input-shape", callback=_parse_shape, default=None,
              help="Model input H,W,C (default: the builder's default).")
@click.option("--model-arg", "model_args", multiple=True, callback=_parse_model_args,
              help="Builder keyword argument KEY=VALUE (JSON value), repeatable, e.g. alpha=0.5.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
              show_default=True, help="tf.distribute strategy; default mirrors over all GPUs when there are several.")
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on GPU (refused when no GPU is visible).")
@click.option("--max-train-images", type=click.IntRange(1), default=None,
              help="Use at most N training images (seeded).")
@click.option("--max-test-images", type=click.IntRange(1), default=None, help="Use at most N test images (seeded).")
@click.option("--skip-bad-images", is_flag=True, help="Skip unreadable image files (counted) instead of refusing.")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of progress bars.")
def train_command(model, data, recipe, epochs, batch_size, lr, optimizer, momentum, weight_decay, lr_schedule,
                  early_stopping, bn_momentum, no_augment, val_fraction, folds, seed, run_name, runs_dir, resume, input_shape,
                  model_args, strategy, mixed_precision, max_train_images, max_test_images, skip_bad_images, quiet):
    """Train MODEL on real images and write runs/MODEL/NAME/ (run.json, model.keras, checkpoints/, ...)."""
    from edgecnn.train import train

    overrides = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                     weight_decay=weight_decay, lr_schedule=lr_schedule, early_stopping=early_stopping,
                     bn_momentum=bn_momentum, val_fraction=val_fraction, folds=folds)
    if no_augment:
        overrides.update(crop_pad=0, flip=False, brightness=0.0, contrast=())  # () clears the contrast range
    run = train(model, data=data, recipe=recipe, run_name=run_name, runs_dir=runs_dir, seed=seed,
                model_kwargs=model_args, input_shape=input_shape, strategy=strategy,
                mixed_precision=mixed_precision, max_train_images=max_train_images, max_test_images=max_test_images,
                skip_bad_images=skip_bad_images, resume=resume, verbose=2 if quiet else 1, echo=click.echo,
                **overrides)
    if run is not None:  # None on a non-chief worker of a multi-worker job: the chief writes the run
        click.echo(str(run.path))


@cli.command("eval")
@click.argument("run")
@click.option("--data", default=None, help="Evaluate on another dataset (same classes); default: the run's own.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Which split of the data.")
@click.option("--max-images", type=click.IntRange(1), default=None, help="Evaluate at most N images (seeded).")
@_runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@_unsafe_load_option
def eval_command(run, data, split, max_images, runs_dir, as_json, unsafe_load):
    """Top-1, top-5, macro-F1, per-class accuracy and a confusion-matrix PNG for RUN (a run dir or model name)."""
    from edgecnn.evaluate import evaluate_run, format_report
    from edgecnn.runs import resolve_run

    m = evaluate_run(resolve_run(run, runs_dir), data, split, max_images=max_images, unsafe_load=unsafe_load)
    click.echo(json.dumps(m, indent=2) if as_json else format_report(m))


# ---------------------------------------------------------------------------- export / verify
from edgecnn.emulate.boards import BOARDS as _EMULATED_BOARDS  # noqa: E402  (light: names for --target)


@cli.command("export")
@click.argument("model_or_run", required=False)
@click.option("--run", "run_ref", default=None, help="Export this run directory (instead of MODEL_OR_RUN).")
@click.option("--int8", is_flag=True, help="Full-integer int8 TFLite (and int8 ONNX), calibrated on training images.")
@click.option("--fp16", is_flag=True, help="Also a float16-weights TFLite.")
@click.option("--dynamic", is_flag=True, help="Also a dynamic-range (int8 weights, float activations) TFLite.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Also write ONNX (fp32; int8 with --int8).")
@click.option("--calibration", type=click.IntRange(1), default=200, show_default=True,
              help="Number of training images (never test) to calibrate int8 ranges on.")
@click.option("--out", "out_dir", default=None,
              help="Output folder (default: the run's export/, or runs/<model>/untrained/export for fresh weights).")
@click.option("--int8-io", is_flag=True, help="int8 input and output tensors (default: float32 in/out).")
@click.option("--max-drop", type=float, default=1.0, show_default=True, callback=finite_float(0),
              help="Fail verification when a quantized top-1 is more than this many points below Keras.")
@click.option("--no-rewrite", is_flag=True,
              help="Keep PReLU as is in the int8 graph (default: rewrite it exactly into int8-fast ops).")
@click.option("--onnx-int8-route", type=click.Choice(["ort_qdq", "from_tflite"]), default="ort_qdq", show_default=True,
              help="int8 ONNX from ONNX Runtime static quantization, or from the int8 TFLite via tf2onnx.")
@click.option("--prune", type=float, default=None, callback=finite_float(0, 1, min_open=True, max_open=True),
              help="Magnitude-prune to this sparsity (0-1) first (TFMOT).")
@click.option("--cluster", type=click.IntRange(2, 256), default=None, help="Cluster weights into K centroids first (TFMOT).")
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning first (TFMOT).")
@click.option("--compress-epochs", type=click.IntRange(1), default=2, show_default=True,
              help="Fine-tuning epochs per compression step.")
@click.option("--mixed", is_flag=True,
              help="Also <model>_mixed.tflite (needs --int8): each op int8 or float by its measured cost, with "
                   "boundaries paid for, and layers reverted to float while full int8 drops more than --max-drop.")
@click.option("--cost-table", "cost_table", default=None, type=click.Path(dir_okay=False),
              help="With --mixed: per-op costs of the target from this JSON file (the form of quant_report.json's "
                   "cost_table) instead of measuring them on this machine.")
@click.option("--target", "target", type=click.Choice(list(_EMULATED_BOARDS)), default=None,
              help="With --mixed: measure the per-op costs on this emulated Raspberry Pi (instructions counted under "
                   "qemu-user, latency predicted by edgecnn's calibrated cost model) instead of on this machine; "
                   "not with --cost-table. The table lands in quant_report.json's cost_table, reusable with "
                   "--cost-table.")
@click.option("--runs-dir", default=None, help="Runs root (default: $EDGECNN_RUNS or ./runs).")
@_unsafe_load_option
def export_command(model_or_run, run_ref, int8, fp16, dynamic, onnx, calibration, out_dir, int8_io, max_drop,
                   no_rewrite, onnx_int8_route, prune, cluster, qat, compress_epochs, mixed, cost_table, target,
                   runs_dir, unsafe_load):
    """Export MODEL_OR_RUN (a run directory, or a model name: its newest run, else fresh weights)
    to TFLite/ONNX and verify every artifact on its real runtime."""
    from edgecnn.export import export_model

    source = run_ref or model_or_run
    if not source:
        raise click.UsageError("give a model name or a run directory (or --run RUN)")
    if run_ref and model_or_run:
        from edgecnn.runs import load_run, resolve

        run_model = load_run(resolve(run_ref, runs_dir, manifest=False).run_dir or run_ref).model_name
        if model_or_run != run_model:
            from edgecnn.errors import InvalidConfigError

            raise InvalidConfigError(f"MODEL '{model_or_run}' disagrees with --run {run_ref}, a run of '{run_model}'; "
                                     f"give one of them.")
    if target is not None and cost_table is not None:
        from edgecnn.errors import InvalidConfigError

        raise InvalidConfigError("--target and --cost-table both give the per-op costs: give one of them.")
    table = None
    if cost_table is not None:
        from edgecnn.errors import InvalidConfigError
        from edgecnn.runs import read_json_file

        table = read_json_file(cost_table, "cost table", InvalidConfigError)
    export_model(source, out_dir, int8=int8, fp16=fp16, dynamic=dynamic, onnx=onnx, calibration=calibration,
                 int8_io=int8_io, max_drop=max_drop, rewrite=not no_rewrite, int8_onnx_route=onnx_int8_route,
                 prune=prune, cluster=cluster, qat=qat, compress_epochs=compress_epochs, mixed=mixed,
                 cost_table=table, target=target, runs_dir=runs_dir, unsafe_load=unsafe_load)


@cli.command("verify")
@click.argument("run_or_export_dir")
@click.option("--max-drop", type=float, default=1.0, show_default=True, callback=finite_float(0),
              help="Fail when a quantized top-1 is more than this many points below Keras.")
@click.option("--json", "as_json", is_flag=True, help="Print the updated manifest as JSON.")
@_unsafe_load_option
def verify_command(run_or_export_dir, max_drop, as_json, unsafe_load):
    """Re-run every artifact of an export (or a run's export/) on its real runtime and update
    manifest.json; exit code 10 when one fails."""
    from edgecnn.export.verify import raise_if_unverified, verify_export
    from edgecnn.runs import resolve

    target = resolve(run_or_export_dir)
    target.require_manifest()
    m = verify_export(target.export_dir, max_drop=max_drop, echo=lambda s: click.echo(s, err=True),
                      raise_on_failure=False, unsafe_load=unsafe_load)
    if as_json:
        click.echo(json.dumps(m, indent=2))
    raise_if_unverified(m)


# ---------------------------------------------------------------------------- benchmark / pipeline
def _runtime_help(formats, auto=False):
    from edgecnn.backends import backend_help
    return backend_help(formats, auto)


@cli.command("benchmark")
@click.argument("targets", nargs=-1, required=True, metavar="ARTIFACT_OR_RUN...")
@click.option("--runtime", "runtimes", multiple=True,
              help=f"{_runtime_help(('tflite', 'onnx', 'keras'))}; repeat or comma-separate. "
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
@click.option("--remote-timeout", default=3600, show_default=True, type=float, callback=finite_float(0, min_open=True),
              help="With --remote/--hosts-file: seconds a board may take before it is stopped and reported failed.")
@click.option("--remote-python", default="edgecnn-venv/bin/python", show_default=True,
              help="With --remote: the Python of the venv with edgecnn there (relative to the remote home).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="With --remote: an extra ssh -o option, repeatable (host keys are always checked).")
@click.option("--identity", default=None, type=click.Path(dir_okay=False), help="With --remote: SSH key (ssh -i).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="With --remote: SSH port.")
def benchmark_command(targets, runtimes, threads, warmup, runs, seconds, batch, device, out_dir, random_inputs,
                      op_profile, in_process, interleave, rounds, merge_files, as_json, emulate, remote, hosts_file,
                      remote_timeout, remote_python, ssh_options, identity, port):
    """Benchmark artifacts or run directories: latency statistics, FPS, init time, peak RSS and the
    verified accuracy side by side; writes results.json/csv/md, report.md and plots."""
    import shlex
    import sys

    from edgecnn.benchmark.outputs import run_benchmark, run_interleaved
    from edgecnn.benchmark.report import format_table

    command = "edgecnn " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    progress = lambda s: click.echo(s, err=True)  # noqa: E731
    if (remote or hosts_file) and op_profile:
        raise click.UsageError("--op-profile runs here, not on the remote host: leave it out with --remote")
    if rounds is not None and not interleave:
        raise click.UsageError("--rounds applies to --interleave only")
    if interleave:
        clash = [f for f, on in (("--remote", remote or hosts_file), ("--merge", merge_files),
                                 ("--op-profile", op_profile), ("--seconds", seconds), ("--emulate", emulate)) if on]
        if clash:
            raise click.UsageError(f"--interleave times in this process for --rounds x --runs: leave out {', '.join(clash)}")
        res = run_interleaved(list(targets), runtimes=list(runtimes) or None, threads=list(threads) or None,
                              rounds=9 if rounds is None else rounds, warmup=warmup, runs=runs, batch=batch,
                              device=device, out_dir=out_dir, random_inputs=random_inputs, progress=progress,
                              command=command)
        from edgecnn.benchmark.timing import format_interleave
        click.echo(json.dumps(res.doc, indent=2) if as_json else format_interleave(res.doc["interleaved"]))
        if not as_json:
            click.echo(f"Written: {res.paths['json']}")
        return
    res = run_benchmark(list(targets), runtimes=runtimes, threads=threads, warmup=warmup, runs=runs, seconds=seconds,
                        batch=batch, device=device, out_dir=out_dir, random_inputs=random_inputs, op_profile=op_profile,
                        in_process=in_process, merge_files=merge_files, remote=remote, hosts_file=hosts_file,
                        remote_options=dict(remote_python=remote_python, port=port, identity=identity,
                                            ssh_options=ssh_options, timeout=remote_timeout),
                        emulate=list(emulate) or None, progress=progress, command=command)
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
        click.echo("Written: " + ", ".join(str(p) for p in res.paths.values() if p))
        for key, what in (("latency_plot", "latency plot"), ("pareto_plot", "accuracy-vs-latency plot")):
            if res.paths.get(key) is None:
                click.echo(f"Note: no {what} (matplotlib missing, or no verified accuracy in a manifest).")
    for f in res.doc.get("failures") or []:
        click.echo(f"Warning: {f['host']} failed: {f['reason']}", err=True)


@cli.command("pipeline")
@click.argument("model")
@click.option("--data", default="sample", show_default=True,
              help="Dataset: sample (bundled real CIFAR-10), cifar10, cifar100, or a path.")
@click.option("--recipe", default="quick", show_default=True, help="Training recipe (see 'edgecnn train --help').")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the recipe's epochs.")
@click.option("--name", "run_name", default=None, help="Run name (default: <recipe>-<timestamp>).")
@click.option("--runs-dir", default=None, type=click.Path(file_okay=False),
              help="Root of run directories (default: runs/).")
@click.option("--calibration", default=200, show_default=True, type=click.IntRange(1),
              help="Calibration images for int8.")
@click.option("--max-drop", default=1.0, show_default=True, type=float, callback=finite_float(0),
              help="Allowed int8 top-1 drop, points.")
@click.option("--bench-runs", default=200, show_default=True, type=click.IntRange(1), help="Timed runs per artifact.")
@click.option("--max-train-images", type=click.IntRange(1), default=None, help="Train on at most N images (seeded).")
@click.option("--mixed/--no-mixed", default=True, show_default=True,
              help="Also the mixed-precision TFLite (per-op int8/float by measured cost; 'edgecnn export --mixed').")
def pipeline_command(model, data, recipe, epochs, run_name, runs_dir, calibration, max_drop, bench_runs, max_train_images,
                     mixed):
    """Train, export (fp32 + int8 + mixed TFLite, ONNX), verify, benchmark MODEL and write report.md in its run.
    MODEL may be a trained run directory instead (an imported model): training is skipped."""
    from edgecnn.pipeline import run_pipeline

    overrides = {k: v for k, v in {"epochs": epochs, "max_train_images": max_train_images}.items() if v is not None}
    run_pipeline(model, data=data, recipe=recipe, run_name=run_name, runs_dir=runs_dir, calibration=calibration,
                 max_drop=max_drop, bench_runs=bench_runs, echo=click.echo, mixed=mixed, **overrides)


# ---------------------------------------------------------------------------- classify / bundle
def _classify_runtime(ctx, param, value):
    from edgecnn.backends import resolve_backend
    return resolve_backend(value, ("tflite", "onnx"), auto=True)


@cli.command("classify")
@click.argument("target", type=click.Path())
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--artifact", default=None, help="Artifact file name in the export folder (default: the int8 TFLite).")
@click.option("--manifest", default=None, type=click.Path(), help="manifest.json, when it is not beside the model.")
@click.option("--runtime", "backend", default="auto", show_default=True, callback=_classify_runtime,
              help=f"{_runtime_help(('tflite', 'onnx'), auto=True)}.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads.")
@click.option("--no-xnnpack", is_flag=True, help="TFLite builtin kernels instead of the XNNPACK delegate.")
@click.option("--reference-kernels", is_flag=True,
              help="TFLite portable reference kernels (slow; the same integer arithmetic on every CPU). A debugging aid: "
                   "LiteRT aborts in them on degenerate quantization (e.g. int8 models of untrained weights).")
@click.option("-k", "--top-k", "k", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Labels per image.")
@click.option("--camera", is_flag=True,
              help="Classify the live camera stream (picamera2, else OpenCV) instead of files.")
@click.option("--camera-index", default=0, show_default=True, type=click.IntRange(0),
              help="OpenCV camera index (/dev/videoN).")
@click.option("--frames", default=0, show_default=True, type=click.IntRange(0),
              help="With --camera: stop after N frames (0: until Ctrl-C).")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1),
              help="With --camera: print every Nth frame.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image or frame, then a summary line.")
def classify_command(target, images, artifact, manifest, backend, threads, no_xnnpack, reference_kernels, k, camera, camera_index, frames,
                     every, as_json):
    """Classify image files (or the --camera stream) with an export folder or a .tflite beside its manifest.

    Prints the top-k labels and a rolling FPS. Needs only the light install (no TensorFlow).
    """
    from edgecnn.classify import classify

    if camera == bool(images):
        raise click.UsageError("give image files, or --camera, not both" if camera else "give image files or --camera")
    classify(target, images, artifact=artifact, manifest=manifest, backend=backend, threads=threads,
             xnnpack=not no_xnnpack, reference=reference_kernels, k=k, camera=camera, camera_index=camera_index,
             frames=frames, every=every, as_json=as_json, echo=click.echo, warn=lambda s: click.echo(s, err=True))


@cli.group("bundle")
def bundle_group():
    """Put a verified export into a device-side app (android)."""


@bundle_group.command("android")
@click.argument("run", type=click.Path())
@click.option("--app", default="android_app", show_default=True, type=click.Path(),
              help="The sample Android app (the folder holding app/build.gradle.kts).")
@click.option("--artifact", default="int8", show_default=True,
              help="Precision (int8, fp32, fp16, dynamic) or the artifact's file name in the export folder.")
@click.option("--images", default=10, show_default=True, type=click.IntRange(0, 100),
              help="Sample test images (real CIFAR-10, with true labels) to bundle.")
def bundle_android_command(run, app, artifact, images):
    """Copy a verified .tflite, labels, the preprocessing/tensor spec and sample images into the app's assets.

    RUN is a run dir (runs/<model>/<run>) or its export/ folder. Refuses unverified artifacts and
    tensors the app cannot feed (it needs NHWC, batch 1, one input, one [1, classes] output).
    """
    from edgecnn.bundle import bundle_android

    bundle_android(run, app=app, artifact=artifact, images=images, echo=click.echo)


# ---------------------------------------------------------------------------- inspect
@cli.command("inspect")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per artifact (with every op in order).")
def inspect_command(artifacts, as_json):
    """Where the bytes of a .tflite file go, and the ops it runs.

    For each ARTIFACT: constant tensors by type, quantization scales and zero points (a vector
    shared by several tensors counted once), named metadata, and the rest (graph, names,
    padding), each with its share of the file; then the op counts. Needs no TensorFlow.
    """
    from edgecnn.errors import ModelFileError
    from edgecnn.inspect import format_breakdown, tflite_breakdown

    for path in artifacts:
        if not path.endswith(".tflite"):
            raise ModelFileError(f"edgecnn inspect reads .tflite files; got '{path}'")
        b = tflite_breakdown(path)
        click.echo(json.dumps(b) if as_json else format_breakdown(b))


# ---------------------------------------------------------------------------- bench suites
@cli.group("bench")
def bench_group():
    """Benchmark suites: many models exported with 'edgecnn export', timed with the benchmark harness."""


def _split_names(ctx, param, values):
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@bench_group.command("paper")
@click.option("--out", "out_dir", default="bench", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: paper_claims.md, paper_claims.json, paper_claims_*.png.")
@click.option("--models", "models", multiple=True, callback=_split_names, metavar="NAMES",
              help="Measure only these models (comma-separated or repeated; any registered model). "
                   "Default: every model a paper claim names, and Han & Kwon's other structures.")
@click.option("--precisions", "precisions", multiple=True, callback=_split_names, metavar="LIST",
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
def bench_paper_command(out_dir, models, precisions, runs, seconds, rounds, warmup, calibration, cache_dir, no_plots,
                        in_process, no_emulate):
    """The papers' speed and size claims (declared beside each builder) against this machine.

    Exports every model with fresh seeded weights (cached), times each TFLite artifact with the
    benchmark harness (LiteRT + XNNPACK, 1 thread, batch 1) and writes the claims table, with
    targets passed or failed. Latencies, FPS and their ratios use the mean of the timed runs.
    """
    from pathlib import Path

    from edgecnn.paper import PRECISIONS, markdown, run_paper_claims

    if runs is not None and seconds is not None:
        raise click.UsageError("give --runs or --seconds, not both")
    doc = run_paper_claims(models or None, out_dir=out_dir, cache_dir=cache_dir, runs=runs, seconds=seconds,
                           rounds=rounds, warmup=warmup, calibration=calibration,
                           precisions=tuple(precisions) or PRECISIONS, make_plots=not no_plots,
                           isolate=not in_process, emulate=None if no_emulate else "pi4",
                           say=lambda s: click.echo(s, err=True))
    click.echo(markdown(doc))
    click.echo("Written: " + ", ".join([str(Path(out_dir) / "paper_claims.md"), str(Path(out_dir) / "paper_claims.json")]
                                       + doc["plots"]))
    click.echo(f"paper claims: {doc['wall_s']['total']:.0f} s ({doc['wall_s']['export_or_cache']:.0f} s exporting "
               f"or checking the cache)")


@bench_group.command("emulator")
@click.option("--out", "out_dir", default="bench", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: emulator_calibration.md and .json.")
@click.option("--boards", "boards", multiple=True, callback=_split_names, metavar="NAMES",
              help="Boards to count on besides the Pi 4 the model is fitted on (default: pi5, pi3).")
@click.option("--invokes", type=click.IntRange(1, 100), default=2, show_default=True,
              help="Invokes counted per model (the counts are per inference).")
@click.option("--write", is_flag=True, help="Also replace the calibration edgecnn ships with this one.")
def bench_emulator_command(out_dir, boards, invokes, write):
    """The arm64 cost model against published Raspberry Pi 4 figures (docs/arm-emulation.md).

    Builds MobileNet v1 and v2 (224x224, random weights, fp32 and int8), counts what each executes
    on the emulated boards' cores, fits the cost model on the Pi 4 figures and prints the
    calibration table: published vs predicted latency per figure, also left out of the fit."""
    from edgecnn.arm_calibration import markdown, run
    from edgecnn.benchmark.emulated import parse_boards

    boards = parse_boards(boards, "--boards")
    doc = run(out_dir, boards=tuple(boards) or ("pi4", "pi5", "pi3"), invokes=invokes, write=write,
              say=lambda s: click.echo(s, err=True))
    click.echo(markdown(doc))


# ---------------------------------------------------------------------------- import (bring your own model)
def _parse_size(ctx, param, value):
    if value is None:
        return None
    parts = value.lower().replace("x", ",").split(",")
    try:
        size = tuple(int(v) for v in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) == 2 and all(1 <= v <= MAX_SIDE for v in size):
        return size
    raise click.BadParameter(f"expected a side such as 96, or HxW such as 96x128 (1 to {MAX_SIDE}); received {value!r}")


@cli.command("import")
@click.argument("model")
@click.option("--data", required=True,
              help="The dataset the model classifies: sample, cifar10, ... or a PATH (class-per-subfolder images, "
                   "CIFAR python batches). Its test split gives the run its accuracy; its train split calibrates int8.")
@click.option("--name", default=None,
              help="The run's model name (default: the file name without .keras; for keras:NAME, name in lower case).")
@click.option("--run-name", default=None, help="Run folder name (default import-<time>).")
@_runs_dir_option
@click.option("--labels", "labels_file", default=None, type=click.Path(dir_okay=False),
              help="Labels file, one per line in the order of the model's outputs (default: the dataset's classes).")
@click.option("--preprocess", default=None,
              help="What the model expects: raw (0..255, it rescales inside), unit (0..1), keras-mobilenet (-1..1), "
                   "imagenet, cifar10, or scale=1/255,mean=R,G,B,std=R,G,B[,crop=0.875]. Required for a file.")
@click.option("--input-size", callback=_parse_size, default=None,
              help="Input size for a model whose spatial size is dynamic, or for keras:NAME (e.g. 96 or 96x128).")
@click.option("--classes", "num_classes", type=click.IntRange(2), default=None,
              help="Number of classes (checked against the model and the dataset).")
@click.option("--output-kind", type=click.Choice(["probabilities", "logits"]), default=None,
              help="Whether the model outputs probabilities or logits (default: read from its output layer).")
@_unsafe_load_option
@click.option("--custom-objects", "custom_objects", multiple=True, metavar="MODULE:ATTR",
              help="A custom layer or function the model needs, imported from MODULE (runs its code): only with "
                   "--unsafe-load. Repeatable.")
@click.option("--epochs", type=click.IntRange(0), default=0, show_default=True,
              help="Fine-tune on the training split for N epochs first (Adam); keras:NAME starts from fresh weights.")
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=finite_float(0, min_open=True),
              help="Fine-tuning learning rate.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Fine-tuning batch size.")
@click.option("--seed", type=_SEED, default=0, show_default=True, help="Seed of the data split and fine-tuning.")
@click.option("--max-train-images", type=click.IntRange(1), default=None, help="Use at most N training images.")
@click.option("--max-test-images", type=click.IntRange(1), default=None, help="Evaluate on at most N test images.")
@click.option("--skip-bad-images", is_flag=True, help="Skip unreadable image files (counted) instead of refusing.")
def import_command(model, data, name, run_name, runs_dir, labels_file, preprocess, input_size, num_classes,
                   output_kind, unsafe_load, custom_objects, epochs, lr, batch_size, seed, max_train_images,
                   max_test_images, skip_bad_images):
    """Import MODEL (a .keras file, or keras:NAME of Keras Applications with fresh weights) and its dataset
    as a run: runs/NAME/RUN/ with run.json, model.keras and the test accuracy. Then export, verify,
    benchmark, classify and bundle it like any run."""
    from edgecnn.importer import import_model

    run = import_model(model, data=data, name=name, run_name=run_name, runs_dir=runs_dir, labels_file=labels_file,
                       preprocess=preprocess, input_size=input_size, num_classes=num_classes, output_kind=output_kind,
                       unsafe_load=unsafe_load, custom_objects=custom_objects, epochs=epochs, lr=lr,
                       batch_size=batch_size, seed=seed, max_train_images=max_train_images,
                       max_test_images=max_test_images, skip_bad_images=skip_bad_images,
                       echo=lambda s: click.echo(s, err=True))
    click.echo(str(run.path))


def main():
    cli(prog_name="edgecnn")


if __name__ == "__main__":
    main()
