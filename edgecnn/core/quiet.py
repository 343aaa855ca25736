"""Quiet by default: every line a command prints is edgecnn's own; ``edgecnn -v`` shows the rest.

TensorFlow, absl, the TFLite converter and LiteRT write to the process's stderr/stdout from
C++: about seven start-up lines (absl's "log messages before absl::InitializeLog()", oneDNN,
"Could not find cuda drivers", an ``E0000 ... failed call to cuInit ... (303)`` that reads like
a failure), the converter's ``fully_quantize: 0, inference_type: 6, ...`` and LiteRT's
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` on every interpreter. None of them
goes through Python logging, and the start-up lines come before absl reads any setting
(``TF_CPP_MIN_LOG_LEVEL`` does not stop them). So:

- ``TF_CPP_MIN_LOG_LEVEL=3`` stops what TensorFlow logs after start-up (the cuInit line);
- the first ``import tensorflow`` runs with the native file descriptors 1 and 2 pointed at
  /dev/null (an import hook, so every module keeps its plain ``import tensorflow as tf``);
- :func:`native_silenced` does the same around converter calls (``export/tflite.py``) and
  interpreter creation (``runtime.py``);
- Python warnings raised by dependencies are ignored, and the ``tensorflow``/``absl``/
  ``tf2onnx`` loggers show errors only (tf.function retracing, deprecations).

Errors are unaffected: they come back as Python exceptions and edgecnn's one-line messages.
Edgecnn's own warnings are printed by edgecnn (``click.echo(..., err=True)``), not hidden here.
:func:`terminal` is the user's stderr even inside :func:`native_silenced` (progress bars use it:
int8 calibration runs inside the converter).

Nothing here imports TensorFlow; the light device install uses this module too.
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import os
import sys
import threading
import warnings
from typing import Optional, TextIO, Tuple

_verbose = False
_lock = threading.RLock()
_silenced: Optional[Tuple[bool, TextIO]] = None  # (user on a terminal, user's stderr) while silenced
_NOISY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "tf_keras", "h5py", "onnx", "onnxruntime", "matplotlib")


def verbose() -> bool:
    return _verbose


def configure(verbose: bool = False) -> None:
    """Quiet (default) or verbose output for this process; call before TensorFlow is imported.

    Quiet sets ``TF_CPP_MIN_LOG_LEVEL=3`` (at the common 2 TensorFlow's cuInit error still
    shows); verbose leaves the libraries at their defaults, or at the level the user exported.
    """
    global _verbose
    _verbose = bool(verbose)
    import edgecnn

    if _verbose:
        if not edgecnn.TF_LOG_LEVEL_GIVEN:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if not sys.warnoptions:  # -W or PYTHONWARNINGS given by the user wins
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=r"edgecnn(\.|$)")
    import logging  # here, not at the top: `edgecnn --help` imports this module and should stay fast

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _SilentImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentImport())


def terminal() -> TextIO:
    """The user's stderr, also inside :func:`native_silenced` (progress bars draw on it)."""
    return _silenced[1] if _silenced else sys.stderr


def on_terminal() -> bool:
    """Whether the user's stdout and stderr are both terminals (also inside :func:`native_silenced`)."""
    if _silenced:
        return _silenced[0]
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def native_silenced():
    """Point file descriptors 1 and 2 at /dev/null for the duration, unless verbose.

    For C++ libraries that print straight to the descriptors (the TFLite converter, LiteRT's
    delegate messages). Python's own streams are flushed first so nothing of ours is lost.
    """
    global _silenced
    if _verbose:
        yield
        return
    with _lock:
        if _silenced:  # nested: already silenced
            yield
            return
        ttys = on_terminal()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            saved = [(fd, os.dup(fd)) for fd in (1, 2)]
        except OSError:  # no descriptors to redirect (closed stdio)
            saved = []
        devnull = os.open(os.devnull, os.O_WRONLY)
        err = os.fdopen(os.dup(saved[1][1]), "w", encoding="utf-8", errors="replace") if saved else sys.stderr
        try:
            for fd, _ in saved:
                os.dup2(devnull, fd)
            _silenced = (ttys, err)
            yield
        finally:
            _silenced = None
            for stream in (sys.stdout, sys.stderr, err):
                with contextlib.suppress(Exception):
                    stream.flush()
            _flush_c_stdio()  # C/C++ output buffered while silenced must land in /dev/null, not later
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            os.close(devnull)
            if err is not sys.stderr:
                err.close()


def _flush_c_stdio() -> None:
    """fflush(NULL): the C library's stdout buffer (C++'s std::cout writes through it) is flushed
    only when full or at exit when stdout is not a terminal, after the descriptors are restored."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


class _SilentLoader:  # the loader protocol; importlib.abc would cost `edgecnn --help` 4 ms
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with native_silenced():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)


class _SilentImport:  # a meta path finder
    """Runs the first ``import tensorflow`` inside :func:`native_silenced` (its start-up lines
    are printed while the package initialises), then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader)
        return spec
