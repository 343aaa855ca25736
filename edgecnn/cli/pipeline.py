"""``edgecnn pipeline``: every stage on one model, one report."""
from __future__ import annotations

import click

from edgecnn.cli.group import cli, require_train_extra
from edgecnn.cli.options import data_option, finite_float, runs_dir_option, target_option


@cli.command("pipeline")
@click.argument("model")
@data_option
@click.option("--recipe", default="quick", show_default=True, help="Training recipe (see 'edgecnn train --help').")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the recipe's epochs.")
@click.option("--name", "run_name", default=None, help="Run name (default: <recipe>-<timestamp>).")
@runs_dir_option
@click.option("--calibration", default=200, show_default=True, type=click.IntRange(1),
              help="Calibration images for int8.")
@click.option("--max-drop", default=1.0, show_default=True, type=float, callback=finite_float(0),
              help="Allowed int8 top-1 drop, points.")
@click.option("--bench-runs", default=200, show_default=True, type=click.IntRange(1), help="Timed runs per artifact.")
@click.option("--max-train-images", type=click.IntRange(1), default=None, help="Train on at most N images (seeded).")
@click.option("--mixed/--no-mixed", default=True, show_default=True,
              help="Also the mixed-precision TFLite (per-op int8/float by measured cost; 'edgecnn export --mixed').")
@target_option("Default: pi4,pi5,host. The mixed TFLite is chosen on the first target's costs and written only "
               "where it beats int8 there; report.md and the manifest name the file to ship for each target.")
def pipeline_command(model, **options):
    """Train, export (fp32 + int8 + mixed TFLite, ONNX), verify, benchmark MODEL and write report.md in its run.
    MODEL may be a trained run directory instead (an imported model): training is skipped."""
    require_train_extra("pipeline")
    from edgecnn.report.pipeline import run_pipeline

    if not options["targets"]:
        options.pop("targets")
    run_pipeline(model, echo=click.echo, **{k: v for k, v in options.items() if v is not None})
