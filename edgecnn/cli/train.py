"""``edgecnn train``, ``eval`` and ``import``: runs made here or brought in."""
from __future__ import annotations

import json

import click

from edgecnn.cli.group import cli, require_train_extra
from edgecnn.cli.options import (SEED, data_option, finite_float, labels_option, parse_model_args, parse_shape,
                                parse_size, preprocess_option, runs_dir_option, unsafe_load_option)


@cli.command("train")
@click.argument("model", required=False)
@data_option
@click.option("--recipe", default="quick", show_default=True,
              help="quick, quicknet, structure_e, sepresnet, cmiv4 (see edgecnn.train.recipes.RECIPES).")
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
              help="Fraction of train held out for validation (choosing the checkpoint; never the test split).")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              callback=finite_float(0, 1, min_open=True, max_open=True),
              help="For data without a test split of its own (one folder of class folders): the fraction of every "
                   "class held out as the test split.")
@click.option("--folds", type=click.IntRange(1), default=None,
              help="Stratified k-fold cross-validation first (e.g. 3).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed for data split, order, augmentation, init.")
@click.option("--name", "run_name", default=None,
              help="Run name (default <recipe>-<time>). Re-running an interrupted run's command with the same "
                   "--name resumes it.")
@runs_dir_option
@click.option("--resume", default=None, help="Continue an interrupted run (its directory) from its last checkpoint.")
@click.option("--input-shape", callback=parse_shape, default=None,
              help="Model input H,W,C (default: the builder's default).")
@click.option("--model-arg", "model_kwargs", multiple=True, callback=parse_model_args,
              help="Builder keyword argument KEY=VALUE (JSON value), repeatable, e.g. alpha=0.5.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
              show_default=True, help="tf.distribute strategy; default mirrors over all GPUs when there are several.")
@click.option("--cluster-timeout", type=float, default=120.0, show_default=True,
              help="--strategy multiworker: seconds to wait for every task of TF_CONFIG's cluster to come up; "
                   "then one line names the peers that did not answer.")
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on GPU (refused when no GPU is visible).")
@click.option("--max-train-images", type=click.IntRange(1), default=None,
              help="Use at most N training images (seeded).")
@click.option("--max-test-images", type=click.IntRange(1), default=None, help="Use at most N test images (seeded).")
@click.option("--skip-bad-images", is_flag=True, help="Skip unreadable image files (counted) instead of refusing.")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of progress bars.")
def train_command(model, resume, no_augment, quiet, **options):
    """Train MODEL on real images and write runs/MODEL/NAME/ (run.json, model.keras, checkpoints/, ...)."""
    require_train_extra("train")
    from edgecnn.train.fit import train
    from edgecnn.train.options import TrainOptions

    knobs = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "lr_schedule", "early_stopping",
             "bn_momentum", "val_fraction", "folds")
    recipe = {k: options.pop(k) for k in knobs if options.get(k) is not None}
    for k in knobs:
        options.pop(k, None)
    if no_augment:
        recipe.update(crop_pad=0, flip=False, brightness=0.0, contrast=())  # () clears the contrast range
    o = TrainOptions.from_cli(**options, recipe_overrides=recipe, verbose=2 if quiet else 1)
    run = train(model, o, resume=resume, echo=click.echo)
    if run is not None:  # None on a non-chief worker of a multi-worker job: the chief writes the run
        click.echo(str(run.path))


@cli.command("eval")
@click.argument("run")
@click.option("--data", default=None,
              help="Evaluate on another dataset (same class names); default: the run's own, or for an artifact the "
                   "held-out split its manifest records.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Which split of the data.")
@click.option("--max-images", type=click.IntRange(1), default=None, help="Evaluate at most N images (seeded).")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@unsafe_load_option
def eval_command(run, data, split, max_images, runs_dir, as_json, unsafe_load):
    """Top-1, top-5, macro-F1, per-class accuracy and a confusion-matrix PNG for RUN (a run dir or model name).

    RUN may be an exported .tflite or .onnx file instead: that artifact is evaluated on its runtime, with the
    labels and preprocessing of the manifest beside it (needs no TensorFlow; writes nothing)."""
    from edgecnn.train.evaluate import evaluate_artifact, evaluate_run, format_report
    from edgecnn.contract import model_file_kind, refuse_artifact, resolve_run

    if model_file_kind(run) in ("tflite", "onnx"):
        m = evaluate_artifact(run, data, split, max_images=max_images)
    else:
        refuse_artifact(run, "eval")
        m = evaluate_run(resolve_run(run, runs_dir), data, split, max_images=max_images, unsafe_load=unsafe_load)
    click.echo(json.dumps(m, indent=2) if as_json else format_report(m))




@cli.command("import")
@click.argument("model")
@click.option("--data", required=True,
              help="The dataset the model classifies: sample, cifar10, ... or a PATH (class-per-subfolder images, "
                   "CIFAR python batches). Its test split gives the run its accuracy; its train split calibrates int8.")
@click.option("--name", default=None,
              help="The run's model name (default: the file name without .keras; for keras:NAME, name in lower case).")
@click.option("--run-name", default=None, help="Run folder name (default import-<time>).")
@runs_dir_option
@labels_option("the dataset's classes")
@preprocess_option("required for a file; raw for keras:NAME architectures that rescale inside, else keras-mobilenet")
@click.option("--input-size", callback=parse_size, default=None,
              help="Input size for a model whose spatial size is dynamic, or for keras:NAME (e.g. 96 or 96x128).")
@click.option("--classes", "num_classes", type=click.IntRange(2), default=None,
              help="Number of classes (checked against the model and the dataset).")
@click.option("--output-kind", type=click.Choice(["probabilities", "logits"]), default=None,
              help="Whether the model outputs probabilities or logits (default: read from its output layer).")
@unsafe_load_option
@click.option("--custom-objects", "custom_objects", multiple=True, metavar="MODULE:ATTR",
              help="A custom layer or function the model needs, imported from MODULE (runs its code): only with "
                   "--unsafe-load. Repeatable.")
@click.option("--epochs", type=click.IntRange(0), default=0, show_default=True,
              help="Fine-tune on the training split for N epochs first (Adam); keras:NAME starts from fresh weights.")
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=finite_float(0, min_open=True),
              help="Fine-tuning learning rate.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Fine-tuning batch size.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data split and fine-tuning.")
@click.option("--max-train-images", type=click.IntRange(1), default=None, help="Use at most N training images.")
@click.option("--max-test-images", type=click.IntRange(1), default=None, help="Evaluate on at most N test images.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              callback=finite_float(0, 1, min_open=True, max_open=True),
              help="For data without a test split of its own (one folder of class folders): the fraction of every "
                   "class held out as the test split.")
@click.option("--skip-bad-images", is_flag=True, help="Skip unreadable image files (counted) instead of refusing.")
def import_command(model, **options):
    """Import MODEL (a .keras file, or keras:NAME of Keras Applications with fresh weights) and its dataset
    as a run: runs/NAME/RUN/ with run.json, model.keras and the test accuracy. Then export, verify,
    benchmark, classify and bundle it like any run."""
    from edgecnn.contract import refuse_artifact

    refuse_artifact(model, "import")
    require_train_extra("import")
    from edgecnn.train.importer import import_model
    from edgecnn.train.options import ImportOptions

    run = import_model(model, ImportOptions.from_cli(**options), echo=lambda s: click.echo(s, err=True))
    click.echo(str(run.path))
