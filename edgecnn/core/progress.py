"""One progress bar for every long step: click's, on the user's terminal.

Drawn only for a person watching: stdout and stderr are terminals, and the running command was
not given ``--json`` or ``--quiet`` (its click parameters ``as_json``/``quiet``). Otherwise
:func:`bar` returns an object with the same interface that prints nothing, so callers never
branch. The bar writes to :func:`edgecnn.core.quiet.terminal`, which stays the real stderr while
native output is silenced (int8 calibration runs inside the converter).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Optional

import click

from edgecnn.core.quiet import on_terminal, terminal


def active() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.params.get("as_json") or ctx.params.get("quiet")):
        return False
    return on_terminal()


class _Silent:
    def __init__(self, iterable):
        self._iterable = iterable

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n_steps: int, current_item=None) -> None:
        pass


def bar(iterable: Optional[Iterable] = None, *, length: Optional[int] = None, label: str = "",
        item_show_func: Optional[Callable] = None, show_percent: bool = True, show_pos: bool = True):
    """``click.progressbar`` on the terminal, or a silent stand-in; use as a context manager.

    Iterate over it, or call ``update(n)``. ``length`` is needed without a sized ``iterable``.
    """
    if not active() or (length is None and iterable is None):
        return _Silent(iterable)
    return _transient(click.progressbar(iterable, length=length, label=label, file=terminal(),
                                        show_percent=show_percent, show_pos=show_pos,
                                        item_show_func=item_show_func, show_eta=True))


@contextlib.contextmanager
def _transient(bar):
    """The bar, erased when done: what stays on the screen is what a log file would hold."""
    with bar:
        yield bar
    bar.file.write("\x1b[1A\x1b[2K")  # click ends the bar with a newline: up one line, clear it
    bar.file.flush()
