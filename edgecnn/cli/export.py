"""``edgecnn export`` and ``verify``."""
from __future__ import annotations

import json

import click

from edgecnn.cli.group import cli, require_train_extra
from edgecnn.cli.options import finite_float, runs_dir_option, target_option, unsafe_load_option


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
@click.option("--int8-io", is_flag=True,
              help="int8 input and output tensors (default: the int8 TFLite takes a camera's uint8 RGB bytes and "
                   "gives float32 scores).")
@click.option("--max-drop", type=float, default=1.0, show_default=True, callback=finite_float(0),
              help="Fail verification when a quantized top-1 is more than this many points below Keras on the "
                   "held-out images, beyond its paired 95% interval (a drop the test split cannot resolve passes, "
                   "said so). Recorded in the manifest for 'edgecnn verify'.")
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
@target_option("With --mixed: each op's precision is chosen on the first target's costs (counted on that "
               "emulated Raspberry Pi under qemu-user and predicted by edgecnn's calibrated cost model; host: timed "
               "here), and the mixed file is written only when it beats full int8 there. Not with --cost-table.")
@click.option("--clean", is_flag=True,
              help="Replace the whole export folder. By default the artifacts of an earlier export that this one does "
                   "not write again are kept, listed in the new manifest and verified again.")
@click.option("--author", default="", help="Author in every file's metadata (default: edgecnn <version>).")
@click.option("--license", "license", default="", help="Licence in every file's metadata (default: not specified).")
@runs_dir_option
@unsafe_load_option
def export_command(model_or_run, run_ref, out_dir, no_rewrite, onnx_int8_route, cost_table, **options):
    """Export MODEL_OR_RUN (a run directory, or a model name: its newest run, else fresh weights)
    to TFLite/ONNX and verify every artifact on its real runtime."""
    from edgecnn.contract import refuse_artifact

    for ref in (model_or_run, run_ref):
        if ref:
            refuse_artifact(ref, "export")
    require_train_extra("export")
    from edgecnn.export import ExportOptions, export_model

    from edgecnn.measure.boards import HOST, parse_targets

    targets = parse_targets(options.pop("targets"))
    options["target"] = targets[0] if targets and targets[0] != HOST else None
    runs_dir, target = options["runs_dir"], options["target"]
    source = run_ref or model_or_run
    if not source:
        raise click.UsageError("give a model name or a run directory (or --run RUN)")
    if run_ref and model_or_run:
        from edgecnn.contract import load_run, resolve

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
        from edgecnn.export.mixed import read_cost_table

        table = read_cost_table(cost_table)
    export_model(source, out_dir, ExportOptions.from_cli(**options, rewrite=not no_rewrite,
                                                         int8_onnx_route=onnx_int8_route, cost_table=table))


@cli.command("verify")
@click.argument("run_or_export_dir")
@click.option("--max-drop", type=float, default=None, callback=finite_float(0),
              help="Fail when a quantized top-1 is, beyond its 95% interval, more than this many points below "
                   "Keras. Default: the tolerance the export recorded (else 1.0).")
@click.option("--json", "as_json", is_flag=True, help="Print the updated manifest as JSON.")
@click.option("--runtime", default=None,
              help="Verify on this runtime instead of each file's own (openvino: every .onnx and .tflite on "
                   "OpenVINO's CPU plugin, f32 precision hint); recorded per artifact under verified_on.")
@unsafe_load_option
def verify_command(run_or_export_dir, max_drop, as_json, runtime, unsafe_load):
    """Re-run every artifact of an export (or a run's export/) on its real runtime and update
    manifest.json; exit code 10 when one fails."""
    from edgecnn.contract import refuse_artifact, resolve

    refuse_artifact(run_or_export_dir, "verify")
    require_train_extra("verify")
    from edgecnn.export.verify import raise_if_unverified, verify_export

    target = resolve(run_or_export_dir)
    target.require_manifest()
    m = verify_export(target.export_dir, max_drop=max_drop, echo=lambda s: click.echo(s, err=True),
                      raise_on_failure=runtime is not None, unsafe_load=unsafe_load, runtime=runtime)
    if as_json:
        click.echo(json.dumps(m, indent=2))
    raise_if_unverified(m)
