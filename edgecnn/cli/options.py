"""Option checks and the options several commands share, defined once so that help and defaults
cannot drift."""
from __future__ import annotations

import math

import click

from edgecnn.measure.boards import BOARDS as EMULATED_BOARDS  # noqa: F401  (light: names for --target)


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


SEED = click.IntRange(0, 2**32 - 1)  # numpy's legacy seeding takes 32 bits


def check_family(ctx, param, value):
    if value is None:
        return None
    from edgecnn.errors import did_you_mean
    from edgecnn.models.registry import get_entry, list_models

    families = sorted({get_entry(n).family for n in list_models()})
    if value not in families:
        raise click.BadParameter(f"unknown family {value!r}; one of {', '.join(families)}."
                                 f"{did_you_mean(value, families)}")
    return value


MAX_SIDE = 4096  # an input side beyond this builds a model no edge device runs, after minutes of work


def parse_shape(ctx, param, value):
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


def parse_model_args(ctx, param, values):
    """KEY=VALUE pairs; a VALUE that is JSON (bounded by the contract's parser) is taken as its
    value, anything else as a string."""
    from edgecnn.contract.checks import parse_json

    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE; received {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = parse_json(v, k, ValueError)
        except ValueError:
            out[k] = v
    return out


data_option = click.option(
    "--data", default="sample", show_default=True,
    help="sample (bundled real CIFAR-10 sample, offline), cifar10, cifar100 (download), fashion_mnist (Debian "
         "files), or a PATH: CIFAR python batches folder/.tar.gz, class-per-subfolder images, Tiny ImageNet.")
runs_dir_option = click.option("--runs-dir", default=None, help="Runs root (default: $EDGECNN_RUNS or ./runs).")
unsafe_load_option = click.option(
    "--unsafe-load", is_flag=True,
    help="Load a Keras model that is not a .keras zip, or holds Lambda/custom code, WITHOUT safe mode. It can run "
         "code from the file: only for a model you trust.")




PREPROCESS_HELP = ("raw (0..255 floats), unit (0..1), keras-mobilenet (-1..1), imagenet, cifar10, or "
                   "scale=1/255,mean=R,G,B,std=R,G,B[,crop=0.875]")


def labels_option(default: str):
    """``--labels FILE``: one class name per line, in output order; ``default`` says what applies without it."""
    return click.option("--labels", "labels_file", default=None, type=click.Path(dir_okay=False),
                        help=f"Labels file, one per line in the order of the model's outputs (default: {default}).")


def preprocess_option(default: str):
    """``--preprocess SPEC``: what the model takes; ``default`` says what applies without it."""
    return click.option("--preprocess", default=None, metavar="SPEC",
                        help=f"What the model takes: {PREPROCESS_HELP} (default: {default}).")


def runtime_help(formats, auto=False):
    from edgecnn.measure.backends import backend_help
    return backend_help(formats, auto)


def classify_runtime(ctx, param, value):
    from edgecnn.measure.backends import resolve_backend
    return resolve_backend(value, ("tflite", "onnx"), auto=True)


def split_names(ctx, param, values):
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def parse_size(ctx, param, value):
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


def target_option(help_extra: str = ""):
    """``--target BOARD[,BOARD...]``: boards of the one board table (edgecnn.measure.boards) or
    ``host``; repeat or comma-separate. Shared by export, benchmark and pipeline."""
    names = ", ".join(["host", *EMULATED_BOARDS])
    return click.option("--target", "targets", multiple=True, metavar="BOARD[,BOARD...]", callback=_targets,
                        help=f"Target(s): {names} (host: this machine). {help_extra}".strip())


def _targets(ctx, param, values):
    from edgecnn.errors import InvalidConfigError
    from edgecnn.measure.boards import parse_targets

    try:
        return tuple(parse_targets(values))
    except InvalidConfigError as e:
        raise click.BadParameter(e.message.split(": ", 1)[-1]) from None
