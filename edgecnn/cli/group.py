"""The ``edgecnn`` click group that every command module attaches to."""
from __future__ import annotations

import click

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(edgecnn.__version__, prog_name="edgecnn")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show what TensorFlow, the converters and the runtimes print (hidden by default).")
def cli(verbose):
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""
    from edgecnn.core import quiet

    quiet.configure(verbose=verbose)
