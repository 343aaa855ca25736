"""The ``edgecnn`` click group that every command module attaches to."""
from __future__ import annotations

import click

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

# The packages of the training extra (setup.py's TRAIN): on the light device install a command
# that needs one of them says so in one line instead of ending in a ModuleNotFoundError.
TRAIN_EXTRA = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx", "onnx", "onnxruntime",
               "matplotlib", "h5py", "tensorboard")


def _needs_extra(command: str, missing: str):
    from edgecnn.errors import RuntimeNotAvailableError

    return RuntimeNotAvailableError(f"edgecnn {command} needs the training extra ({missing} is not installed here; the "
                                    f"light device install runs classify, benchmark, inspect and eval of .tflite "
                                    f"files): pip install 'edgecnn[train]'")


def require_train_extra(command: str) -> None:
    """Before a command that always needs TensorFlow does anything: one line when it is missing."""
    import importlib.machinery

    for name in ("tensorflow", "tf_keras"):
        # PathFinder directly: the meta path holds edgecnn.core.quiet's finder, which makes the first
        # real import of tensorflow silent and steps aside once asked
        if importlib.machinery.PathFinder.find_spec(name) is None:
            raise _needs_extra(command, name)


class Group(click.Group):
    """A click group whose commands, run on the light install, name the extra they need (exit 12)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as e:
            root = (e.name or "").split(".")[0]
            if root not in TRAIN_EXTRA:
                raise
            raise _needs_extra(ctx.invoked_subcommand or "this command", root) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(edgecnn.__version__, prog_name="edgecnn")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what TensorFlow, the converters and the runtimes print (hidden by default).")
def cli(verbose):
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""
    from edgecnn.core import quiet

    quiet.configure(verbose=verbose)
