"""The ``edgecnn`` click group that every command module attaches to, and the one boundary to the
operating system: whatever a command raises that is not already one of edgecnn's errors ends in
one ``Error:`` line. An ``OSError`` (disk full, file-size limit, read-only, permission, name too
long), a ``MemoryError`` or TensorFlow's own I/O errors become ``SystemResourceError`` (exit 17)
naming the path and what to free or change; anything else is a bug, said in one line with the
command that shows its traceback (exit 1). With ``-v`` the traceback is printed first."""
from __future__ import annotations

import errno
import sys
import traceback

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
    """A click group whose commands end in one ``Error:`` line whatever they raise: run on the light
    install, they name the extra they need (exit 12); the operating system's refusals and bugs as
    the module doc says."""

    def invoke(self, ctx):
        argv = [*getattr(ctx, "_protected_args", []), *ctx.args]
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except ModuleNotFoundError as e:
            root = (e.name or "").split(".")[0]
            if root not in TRAIN_EXTRA:
                self._fail(ctx, e, argv)
            raise _needs_extra(ctx.invoked_subcommand or "this command", root) from None
        except OSError as e:
            if e.errno == errno.EPIPE:  # `edgecnn ... | head`: click's own handling
                raise
            self._fail(ctx, e, argv)
        except Exception as e:  # noqa: BLE001 - the one place that turns the rest into one line
            self._fail(ctx, e, argv)

    @staticmethod
    def _fail(ctx, e: BaseException, argv):
        from edgecnn.errors import system_error, unexpected_error

        if ctx.params.get("verbose"):
            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        err = system_error(e) or unexpected_error(e, argv)
        raise err from e


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(edgecnn.__version__, prog_name="edgecnn")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what TensorFlow, the converters and the runtimes print (hidden by default), and the "
                   "traceback of an unexpected error.")
def cli(verbose):
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""
    from edgecnn.core import quiet

    quiet.configure(verbose=verbose)
