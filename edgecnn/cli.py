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
def cli():
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""


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
    rows = zoo_table(list(names) or list_models(family), paper=paper)
    if as_json:
        out = [{k: r[k] for k in ("name", "params", "macs", "fp32_bytes")} | ({"paper": r["paper"]} if paper else {})
               for r in rows]
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_table(rows, paper=paper))
    if paper and any(not c["ok"] for r in rows for c in r["paper_check"]):
        raise click.ClickException("some models are outside their paper tolerance (rows marked NO)")


# ---------------------------------------------------------------------------- train / eval
# (issue 3: train_command, eval_command)
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


@cli.command("train")
@click.argument("model", required=False)
@_data_option
@click.option("--recipe", default="quick", show_default=True,
              help="quick, quicknet, structure_e, sepresnet, cmiv4 (see edgecnn.train.RECIPES).")
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
    click.echo(str(run.path))


@cli.command("eval")
@click.argument("run")
@click.option("--data", default=None, help="Evaluate on another dataset (same classes); default: the run's own.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Which split of the data.")
@click.option("--max-images", type=click.IntRange(1), default=None, help="Evaluate at most N images (seeded).")
@_runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_command(run, data, split, max_images, runs_dir, as_json):
    """Top-1, top-5, macro-F1, per-class accuracy and a confusion-matrix PNG for RUN (a run dir or model name)."""
    from edgecnn.evaluate import evaluate_run, format_report
    from edgecnn.train import resolve_run

    m = evaluate_run(resolve_run(run, runs_dir), data, split, max_images=max_images)
    click.echo(json.dumps(m, indent=2) if as_json else format_report(m))


# ---------------------------------------------------------------------------- export / verify
# (issue 4: export_command, verify_command)
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
@click.option("--runs-dir", default=None, help="Runs root (default: $EDGECNN_RUNS or ./runs).")
def export_command(model_or_run, run_ref, int8, fp16, dynamic, onnx, calibration, out_dir, int8_io, max_drop,
                   no_rewrite, onnx_int8_route, prune, cluster, qat, compress_epochs, runs_dir):
    """Export MODEL_OR_RUN (a run directory, or a model name: its newest run, else fresh weights)
    to TFLite/ONNX and verify every artifact on its real runtime."""
    from edgecnn.export import export_model

    source = run_ref or model_or_run
    if not source:
        raise click.UsageError("give a model name or a run directory (or --run RUN)")
    export_model(source, out_dir, int8=int8, fp16=fp16, dynamic=dynamic, onnx=onnx, calibration=calibration,
                 int8_io=int8_io, max_drop=max_drop, rewrite=not no_rewrite, int8_onnx_route=onnx_int8_route,
                 prune=prune, cluster=cluster, qat=qat, compress_epochs=compress_epochs, runs_dir=runs_dir)


@cli.command("verify")
@click.argument("run_or_export_dir")
@click.option("--max-drop", type=float, default=1.0, show_default=True, callback=finite_float(0),
              help="Fail when a quantized top-1 is more than this many points below Keras.")
@click.option("--json", "as_json", is_flag=True, help="Print the updated manifest as JSON.")
def verify_command(run_or_export_dir, max_drop, as_json):
    """Re-run every artifact of an export (or a run's export/) on its real runtime and update
    manifest.json; exit code 10 when one fails."""
    from edgecnn.export.verify import verify_export

    m = verify_export(run_or_export_dir, max_drop=max_drop, echo=lambda s: click.echo(s, err=True),
                      raise_on_failure=False)
    if as_json:
        click.echo(json.dumps(m, indent=2))
    failed = [n for n, a in m["artifacts"].items() if not a["verified"]]
    if failed:
        from edgecnn.errors import VerificationError

        raise VerificationError(f"{len(failed)} artifact(s) failed verification: "
                                + "; ".join(f"{n} ({m['artifacts'][n]['verification']['reason']})" for n in failed))


# ---------------------------------------------------------------------------- benchmark / pipeline
# (issue 5: benchmark_command, pipeline_command)
@cli.command("benchmark")
@click.argument("targets", nargs=-1, required=True, metavar="ARTIFACT_OR_RUN...")
@click.option("--runtime", "runtimes", multiple=True,
              help="litert, litert-noxnn, tflite-runtime, onnxruntime, keras; repeat or comma-separate. "
                   "Default: litert for .tflite, onnxruntime for .onnx.")
@click.option("--threads", "threads", multiple=True,
              help="Thread count(s), e.g. --threads 1,2,4. Default: the --device's cores, else 1.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(0),
              help="Warm-up runs after the first inference.")
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1), help="Timed runs per combination.")
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
@click.option("--merge", "merge_files", multiple=True, type=click.Path(dir_okay=False),
              help="results.json from elsewhere (e.g. a Pi) to merge into this table; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the results document as JSON instead of the table.")
@click.option("--remote", default=None, metavar="USER@HOST",
              help="Run it on this SSH host (a Pi set up with raspi/install.sh); its rows join the table in --out.")
@click.option("--remote-python", default="edgecnn-venv/bin/python", show_default=True,
              help="With --remote: the Python of the venv with edgecnn there (relative to the remote home).")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="With --remote: an extra ssh -o option, repeatable (host keys are always checked).")
@click.option("--identity", default=None, type=click.Path(dir_okay=False), help="With --remote: SSH key (ssh -i).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="With --remote: SSH port.")
def benchmark_command(targets, runtimes, threads, warmup, runs, seconds, batch, device, out_dir, random_inputs,
                      op_profile, in_process, merge_files, as_json, remote, remote_python, ssh_options, identity, port):
    """Benchmark artifacts or run directories: latency statistics, FPS, init time, peak RSS and the
    verified accuracy side by side; writes results.json/csv/md, report.md and plots."""
    import shlex
    import sys
    from pathlib import Path

    from edgecnn.benchmark import benchmark, format_table, merge_results, write_results

    if remote:
        from edgecnn.benchmark.remote import run_remote_benchmark
        if op_profile:
            raise click.UsageError("--op-profile runs here, not on the remote host: leave it out with --remote")
        doc = run_remote_benchmark(list(targets), remote, remote_python=remote_python, port=port, identity=identity,
                                   ssh_options=ssh_options, runtimes=list(runtimes) or None,
                                   threads=list(threads) or None, warmup=warmup, runs=runs, seconds=seconds,
                                   batch=batch, device=device, random_inputs=random_inputs, in_process=in_process,
                                   progress=lambda s: click.echo(s, err=True))
    else:
        doc = benchmark(list(targets), runtimes=list(runtimes) or None, threads=list(threads) or None, warmup=warmup,
                        runs=runs, seconds=seconds, batch=batch, device=device, random_inputs=random_inputs,
                        isolate=not in_process, progress=lambda s: click.echo(s, err=True),
                        command="edgecnn " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if merge_files:
        doc = merge_results(list(merge_files) + [doc])
    if out_dir is None:
        first = Path(targets[0])
        run_dir = first if first.is_dir() else (first.parent.parent if first.parent.name == "export" else None)
        out_dir = (run_dir / "bench") if run_dir is not None and (run_dir / "export").is_dir() else Path("bench")
    if remote and (Path(out_dir) / "results.json").is_file():  # the device's rows join the table already there
        doc = merge_results([Path(out_dir) / "results.json", doc])
    paths = write_results(doc, out_dir)
    if op_profile:
        from edgecnn.benchmark.opprofile import format_op_profile, op_profile as profile_ops
        from edgecnn.io import atomic_write_json
        done = set()
        for r in doc["rows"]:
            if r["format"] == "keras" or (r["path"], r["runtime"]) in done or not Path(r["path"]).exists():
                continue
            done.add((r["path"], r["runtime"]))
            prof = profile_ops(r["path"], r["runtime"], r["threads"], runs=max(10, min(runs, 200)))
            target = Path(out_dir) / f"op_profile_{Path(r['path']).stem}_{r['runtime']}.json"
            atomic_write_json(target, prof)
            click.echo(format_op_profile(prof) + f"\n(written to {target})\n", err=as_json)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(format_table(doc["rows"]))
        click.echo("Written: " + ", ".join(str(p) for p in paths.values() if p))
        for key, what in (("latency_plot", "latency plot"), ("pareto_plot", "accuracy-vs-latency plot")):
            if paths.get(key) is None:
                click.echo(f"Note: no {what} (matplotlib missing, or no verified accuracy in a manifest).")


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
def pipeline_command(model, data, recipe, epochs, run_name, runs_dir, calibration, max_drop, bench_runs, max_train_images):
    """Train, export (fp32 + int8 TFLite, ONNX), verify, benchmark MODEL and write report.md in its run."""
    from edgecnn.pipeline import run_pipeline

    overrides = {k: v for k, v in {"epochs": epochs, "max_train_images": max_train_images}.items() if v is not None}
    run_pipeline(model, data=data, recipe=recipe, run_name=run_name, runs_dir=runs_dir, calibration=calibration,
                 max_drop=max_drop, bench_runs=bench_runs, echo=click.echo, **overrides)


# ---------------------------------------------------------------------------- classify / bundle
# (issue 6: classify_command; issue 7: bundle group with `android`)
@cli.command("classify")
@click.argument("target", type=click.Path())
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--artifact", default=None, help="Artifact file name in the export folder (default: the int8 TFLite).")
@click.option("--manifest", default=None, type=click.Path(), help="manifest.json, when it is not beside the model.")
@click.option("--runtime", "backend", default="auto", show_default=True,
              help="auto, litert, tflite_runtime, tf_lite or onnxruntime.")
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
    from edgecnn.classify import Classifier, camera_frames, classify_files, classify_stream

    if camera == bool(images):
        raise click.UsageError("give image files, or --camera, not both" if camera else "give image files or --camera")
    clf = Classifier(target, artifact=artifact, manifest=manifest, backend=backend, threads=threads,
                     xnnpack=not no_xnnpack, reference=reference_kernels)
    if not clf.verified:
        click.echo(f"warning: {clf.path.name} is not marked verified in its manifest", err=True)
    if camera:
        preds = classify_stream(clf, camera_frames(camera_index), k, max_frames=frames)
    else:
        preds = classify_files(clf, images, k)
    n = 0
    last = None
    try:
        for n, p in enumerate(preds, 1):
            last = p
            if camera and n % every:
                continue
            click.echo(json.dumps(p.to_dict()) if as_json else p.format())
    except KeyboardInterrupt:
        pass
    summary = {"artifact": clf.path.name, "runtime": clf.runner.backend, "threads": threads, "images": n,
               "fps": round(last.fps, 2) if last else 0.0}
    click.echo(json.dumps({"summary": summary}) if as_json else
               f"{n} {'frames' if camera else 'images'}, {clf.path.name} on {clf.runner.backend}, "
               f"{summary['fps']:.1f} FPS (rolling, incl. decode and preprocessing)")


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


def main():
    cli(prog_name="edgecnn")


if __name__ == "__main__":
    main()
