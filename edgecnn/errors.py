"""The one error module: every domain error is a click exception with its own exit code.

click prints ``Error: <message>`` on one line and exits with ``exit_code``; no traceback.
Library code raises these deep down with a message that says what to do; the CLI layer does
not catch-and-print.
"""
from __future__ import annotations

import difflib
from typing import Iterable

import click


class EdgecnnError(click.ClickException):
    """Base class. Exit code 1 is click's generic failure; ours start at 3 (2 is usage)."""

    exit_code = 3

    def __init__(self, message: str):
        # One line, always: a multi-line message would read like a traceback.
        super().__init__(" ".join(str(message).split()))


class UnknownModelError(EdgecnnError):
    exit_code = 4


class InvalidConfigError(EdgecnnError):
    """A builder or command received a value it cannot use (bad alpha, bad k/m/n, bad shape)."""

    exit_code = 5


class DataError(EdgecnnError):
    """Unreadable, hostile, empty or inconsistent data."""

    exit_code = 6


class RunError(EdgecnnError):
    """A run directory is missing, incomplete or inconsistent."""

    exit_code = 7


class TrainingError(EdgecnnError):
    exit_code = 8


class ExportError(EdgecnnError):
    """Conversion failed; nothing half-written is left behind."""

    exit_code = 9


class VerificationError(EdgecnnError):
    """An artifact ran but failed its accuracy or agreement check."""

    exit_code = 10


class ModelFileError(EdgecnnError):
    """A model file is missing, truncated, not a model, or has a shape the runtime cannot take."""

    exit_code = 11


class RuntimeNotAvailableError(EdgecnnError):
    exit_code = 12


class BenchmarkError(EdgecnnError):
    exit_code = 13


class RemoteError(EdgecnnError):
    """SSH connection lost, host key unknown or changed, or the remote command failed."""

    exit_code = 14


class BundleError(EdgecnnError):
    exit_code = 15


class EmulatorError(EdgecnnError):
    """The arm64 emulator (qemu-user, its root, the counting plugin) is missing or failed."""

    exit_code = 16


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """' Did you mean: a, b?' or '' — for messages that quote an unknown name."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""
