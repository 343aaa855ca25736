"""The model registry: ``@register_model`` keys a builder by its function name.

``create_model(name, **kwargs)`` is the one door in. Paper figures live next to the builder
that claims them (``paper=[PaperFigure(...)]``), so ``edgecnn models --paper`` and the zoo
test can put our numbers beside the paper's.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Callable, Dict, List, Optional, Sequence

from edgecnn.errors import InvalidConfigError, UnknownModelError, did_you_mean

# Figures a builder may claim. Measured by edgecnn.analysis on the built model:
#   params      trainable + non-trainable parameters
#   fp32_bytes  params x 4 (the papers' "model size at 32 bits")
#   macs        multiply-accumulates of one forward pass (batch 1), the papers' "ops"
# A figure with ``relative_to`` is the ratio ours(metric) / ours(metric of that model).
METRICS = ("params", "fp32_bytes", "macs")


@dataclasses.dataclass(frozen=True)
class PaperFigure:
    metric: str
    value: float
    rtol: float
    source: str = ""
    relative_to: Optional[str] = None
    build_kwargs: Optional[dict] = None  # e.g. the input size the paper measured ops at

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; one of {METRICS}")

    @property
    def label(self) -> str:
        return f"{self.metric}/{self.relative_to}" if self.relative_to else self.metric


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    family: str
    paper: Sequence[PaperFigure] = ()

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.builder) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: Dict[str, ModelEntry] = {}

# Families register themselves on import; the list is here, not discovered, so that importing
# edgecnn.registry never walks the file system and a typo in a family name fails loudly.
_FAMILIES = (
    "edgecnn.models_keras.quicknet",
    "edgecnn.models_keras.mobilenetv2",
    "edgecnn.models_keras.sepresnet",
    "edgecnn.models_keras.cmiv4",
    "edgecnn.models_keras.alexnet_tiny",
)
_loaded = False


def register_model(fn: Callable = None, *, paper: Sequence[PaperFigure] = (), name: str = None):
    """Register a builder under its function name (or ``name``). Usable bare or with arguments."""

    def wrap(f: Callable) -> Callable:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not f:
            raise ValueError(f"model {key!r} registered twice")
        family = f.__module__.rsplit(".", 1)[-1]
        _REGISTRY[key] = ModelEntry(key, f, family, tuple(paper))
        return f

    return wrap(fn) if fn is not None else wrap


def _load_families() -> None:
    global _loaded
    if not _loaded:
        for mod in _FAMILIES:
            importlib.import_module(mod)
        _loaded = True


def list_models(family: str = None) -> List[str]:
    _load_families()
    return sorted(k for k, e in _REGISTRY.items() if family is None or e.family == family)


def get_entry(name: str) -> ModelEntry:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown model '{name}'.{did_you_mean(name, _REGISTRY)} "
            f"Run 'edgecnn models' for the list."
        ) from None


def check_kwargs(name: str, kwargs) -> None:
    """Refuse keyword arguments the builder does not take, naming the ones it does."""
    params = inspect.signature(get_entry(name).builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        hint = did_you_mean(unknown[0], params)
        raise InvalidConfigError(f"{name} takes no argument(s) {', '.join(map(repr, unknown))}.{hint} "
                                 f"It takes: {', '.join(params)}.")


def create_model(name: str, **kwargs):
    """Build the registered model ``name`` with the builder's keyword arguments."""
    check_kwargs(name, kwargs)
    return get_entry(name).builder(**kwargs)
