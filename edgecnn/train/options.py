"""What a training run is asked to do: the data and run it writes, on top of a recipe.

``TrainOptions`` holds what is not a training hyper-parameter (data, run name and folder, seed,
builder arguments, input shape, strategy, image limits, verbosity) and names the recipe
(``edgecnn.train.recipes``) whose knobs it overrides (``recipe_overrides``: epochs, lr, ...).
``TrainOptions.make(options, **overrides)`` routes each keyword to the options or to the recipe,
so ``train("quicknet", epochs=2, max_train_images=500)`` reads as it did.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Tuple

from edgecnn.core.options import Options
from edgecnn.errors import InvalidConfigError, did_you_mean

STRATEGIES = ("default", "mirrored", "multiworker")


@dataclasses.dataclass(frozen=True)
class TrainOptions(Options):
    data: str = "sample"
    recipe: str = "quick"
    recipe_overrides: Mapping = dataclasses.field(default_factory=dict)
    run_name: Optional[str] = dataclasses.field(default=None, metadata={"flag": "--name"})
    runs_dir: Optional[str] = None
    seed: int = 0
    model_kwargs: Mapping = dataclasses.field(default_factory=dict, metadata={"flag": "--model-arg"})
    input_shape: Optional[Tuple[int, int, int]] = None
    strategy: str = "default"
    cluster_timeout: float = 120.0  # seconds a multi-worker task waits for its peers (edgecnn.train.cluster)
    mixed_precision: bool = False
    max_train_images: Optional[int] = None
    max_test_images: Optional[int] = None
    skip_bad_images: bool = False
    test_fraction: float = 0.2
    verbose: int = 1

    @classmethod
    def make(cls, options=None, **overrides):
        """Options fields go to the options, Recipe knobs to ``recipe_overrides``."""
        from edgecnn.train.recipes import Recipe

        fields = {f.name for f in dataclasses.fields(cls)}
        knobs = {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}
        mine = {k: v for k, v in overrides.items() if k in fields}
        recipe = {k: v for k, v in overrides.items() if k not in fields and v is not None}
        unknown = sorted(k for k in recipe if k not in knobs)
        if unknown:
            raise InvalidConfigError(f"train: no option or recipe knob {unknown[0]!r}."
                                     f"{did_you_mean(unknown[0], fields | knobs)}")
        if recipe:
            base = dict((options.recipe_overrides if options is not None else None) or {})
            mine["recipe_overrides"] = {**base, **mine.get("recipe_overrides", {}), **recipe}
        return super().make(options, **mine)

    def check(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            self._bad("seed", "must be an integer >= 0")
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if len(shape) != 3 or not all(isinstance(v, int) and v >= 1 for v in shape):
                self._bad("input_shape", "must be three positive integers H,W,C")
        if self.strategy not in STRATEGIES:
            self._bad("strategy", f"one of {', '.join(STRATEGIES)}")
        from edgecnn.train.cluster import MAX_TIMEOUT_S

        c = self.cluster_timeout
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 1 <= c <= MAX_TIMEOUT_S:
            self._bad("cluster_timeout", f"seconds from 1 to {MAX_TIMEOUT_S:.0f}")
        for name in ("max_train_images", "max_test_images"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                self._bad(name, "must be at least 1")
        _check_test_fraction(self)


def _check_test_fraction(o) -> None:
    if not isinstance(o.test_fraction, (int, float)) or isinstance(o.test_fraction, bool) \
            or not 0 < o.test_fraction < 1:
        o._bad("test_fraction", "must be a fraction between 0 and 1")


@dataclasses.dataclass(frozen=True)
class ImportOptions(Options):
    """``edgecnn import``: the dataset the model classifies (required), how its pixels are
    preprocessed, names and folders of the run, what the model file cannot say (input size,
    classes, output kind), unsafe loading with custom objects, and an optional fine-tune."""

    data: Optional[str] = None
    name: Optional[str] = None
    run_name: Optional[str] = None
    runs_dir: Optional[str] = None
    labels_file: Optional[str] = dataclasses.field(default=None, metadata={"flag": "--labels"})
    preprocess: Optional[str] = None
    input_size: Optional[Tuple[int, int]] = None
    num_classes: Optional[int] = dataclasses.field(default=None, metadata={"flag": "--classes"})
    output_kind: Optional[str] = None
    unsafe_load: bool = False
    custom_objects: Tuple[str, ...] = ()
    epochs: int = 0
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    max_train_images: Optional[int] = None
    max_test_images: Optional[int] = None
    skip_bad_images: bool = False
    test_fraction: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "custom_objects", tuple(self.custom_objects or ()))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        super().__post_init__()

    def check(self) -> None:
        from edgecnn.contract import OUTPUT_KINDS

        if self.data is None:
            self._bad("data", "the dataset the model classifies is required")
        if self.custom_objects and not self.unsafe_load:
            raise InvalidConfigError("--custom-objects imports and runs the named modules' code: it needs "
                                     "--unsafe-load (only for a model you trust).")
        if self.output_kind is not None and self.output_kind not in OUTPUT_KINDS:
            self._bad("output_kind", f"one of {', '.join(OUTPUT_KINDS)}")
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            self._bad("epochs", "must be an integer >= 0")
        if not isinstance(self.seed, int) or self.seed < 0:
            self._bad("seed", "must be an integer >= 0")
        _check_test_fraction(self)
