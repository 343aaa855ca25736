"""The model registry: ``@register_model`` keys a builder by its function name.

``create_model(name, **kwargs)`` is the one door in. Paper figures live next to the builder
that claims them (``paper=[PaperFigure(...)]``), so ``edgecnn models --paper`` and the zoo
test can put our numbers beside the paper's. Speed and file-size claims, which need exported
artifacts and a timed runtime, are declared the same way (``claims=[PaperClaim(...)]``) and
measured by ``edgecnn bench paper`` (``edgecnn.report.paper``).
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from edgecnn.errors import InvalidConfigError, UnknownModelError, did_you_mean

# Figures a builder may claim. Measured by edgecnn.models.analysis on the built model:
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


# Claims about exported artifacts, measured by ``edgecnn bench paper`` on one TFLite artifact per
# (model, precision) timed with the benchmark harness (LiteRT + XNNPACK, 1 thread, batch 1):
#   latency_ms     mean latency, ms
#   fps            images per second, edgecnn.measure.stats.fps (1000 / mean latency)
#   size_bytes     the .tflite file's size
#   latency_ratio  latency_ms / latency_ms of ``relative_to``    (both: the mean)
#   fps_ratio      fps / fps of ``relative_to``                  (both: 1000 / mean)
#   size_ratio     size_bytes / size_bytes of ``relative_to``
CLAIM_KINDS = ("latency_ms", "fps", "size_bytes", "latency_ratio", "fps_ratio", "size_ratio")
CLAIM_PRECISIONS = ("fp32", "int8")
CLAIM_TARGET_OPS = ("<=", ">=", "<", ">")


@dataclasses.dataclass(frozen=True)
class PaperClaim:
    """A paper's speed or size claim about a model's exported artifact, beside the builder.

    ``model`` is the model the claim is about (the numerator of a ratio), ``relative_to`` the
    denominator model (a ratio of the same model at two precisions names itself), and
    ``relative_precision`` its precision (default: ``precision``). ``paper`` is the paper's
    figure (None where the paper gives only the direction); ``target`` an (op, threshold) that
    our figure must meet, e.g. ``("<=", 0.60)``. ``build_kwargs`` builds both models (e.g. the
    smallest valid input of a large network, to keep the conversion cheap).
    """

    kind: str
    model: str
    precision: str = "fp32"
    relative_to: Optional[str] = None
    relative_precision: Optional[str] = None
    paper: Optional[float] = None
    paper_note: str = ""
    target: Optional[Tuple[str, float]] = None
    source: str = ""
    build_kwargs: Optional[dict] = None

    def __post_init__(self):
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"unknown claim kind {self.kind!r}; one of {CLAIM_KINDS}")
        for p in (self.precision, self.relative_precision):
            if p is not None and p not in CLAIM_PRECISIONS:
                raise ValueError(f"unknown claim precision {p!r}; one of {CLAIM_PRECISIONS}")
        if self.kind.endswith("_ratio") != (self.relative_to is not None):
            raise ValueError(f"a {self.kind} claim {'needs' if self.kind.endswith('_ratio') else 'takes no'} "
                             f"relative_to (received {self.relative_to!r})")
        if self.target is not None and (len(self.target) != 2 or self.target[0] not in CLAIM_TARGET_OPS):
            raise ValueError(f"target must be (op, threshold) with op one of {CLAIM_TARGET_OPS}; "
                             f"received {self.target!r}")

    @property
    def denominator(self) -> Optional[Tuple[str, str]]:
        """(model, precision) of a ratio's denominator, else None."""
        if self.relative_to is None:
            return None
        return self.relative_to, self.relative_precision or self.precision

    @property
    def label(self) -> str:
        what = {"latency_ms": "latency", "fps": "FPS", "size_bytes": "TFLite size", "latency_ratio": "latency",
                "fps_ratio": "FPS", "size_ratio": "TFLite size"}[self.kind]
        if self.relative_to is None:
            return f"{self.model} {what}, {self.precision}"
        den_model, den_prec = self.denominator
        if den_model == self.model:
            return f"{self.model} {what}, {self.precision} / {den_prec}"
        prec = self.precision if den_prec == self.precision else f"{self.precision} / {den_prec}"
        return f"{self.model} / {den_model} {what}, {prec}"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    family: str
    paper: Sequence[PaperFigure] = ()
    claims: Sequence[PaperClaim] = ()

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.builder) or ""
        return doc.splitlines()[0] if doc else ""


_REGISTRY: Dict[str, ModelEntry] = {}

# Families register themselves on import; the list is here, not discovered, so that importing
# edgecnn.models.registry never walks the file system and a typo in a family name fails loudly.
_FAMILIES = (
    "edgecnn.models.quicknet",
    "edgecnn.models.mobilenetv2",
    "edgecnn.models.sepresnet",
    "edgecnn.models.cmiv4",
    "edgecnn.models.alexnet_tiny",
)
_loaded = False


def register_model(fn: Callable = None, *, paper: Sequence[PaperFigure] = (), claims: Sequence[PaperClaim] = (),
                   name: str = None):
    """Register a builder under its function name (or ``name``). Usable bare or with arguments.

    ``paper``: figures of the built model (params, MACs, fp32 size); ``claims``: speed and size
    claims about its exported artifacts, each naming this model as ``model``."""

    def wrap(f: Callable) -> Callable:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not f:
            raise ValueError(f"model {key!r} registered twice")
        family = f.__module__.rsplit(".", 1)[-1]
        wrong = [c for c in claims if c.model != key]
        if wrong:
            raise ValueError(f"model {key!r}: claims about {sorted({c.model for c in wrong})} belong to that model")
        _REGISTRY[key] = ModelEntry(key, f, family, tuple(paper), tuple(claims))
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


def list_claims(names: Sequence[str] = None) -> List[PaperClaim]:
    """The speed and size claims of the named models (default: every model), in registry order."""
    _load_families()
    return [c for k, e in _REGISTRY.items() if names is None or k in names for c in e.claims]


def create_model(name: str, **kwargs):
    """Build the registered model ``name`` with the builder's keyword arguments."""
    check_kwargs(name, kwargs)
    return get_entry(name).builder(**kwargs)
