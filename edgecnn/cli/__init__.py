"""The ``edgecnn`` command: one click group, each command a thin wrapper over a library function,
one module per command group (``models``, ``train``: train, eval, import; ``export``: export,
verify; ``benchmark``: benchmark, bench paper, bench emulator; ``pipeline``; ``device``: classify,
bundle, inspect). Options shared by several commands are defined once, in ``options``.

Domain errors are raised deep in the library as ``edgecnn.errors.EdgecnnError`` subclasses
(click exceptions with their own exit codes); nothing here catches and prints.
"""
from __future__ import annotations

from edgecnn.cli.group import cli


def main():
    cli(prog_name="edgecnn")


# The command modules attach their commands to ``cli`` when imported (all light: every heavy
# import is inside a command's function, so ``edgecnn --help`` stays fast).
from edgecnn.cli import benchmark, device, export, models, pipeline, train  # noqa: E402,F401
