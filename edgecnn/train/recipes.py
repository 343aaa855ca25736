"""Training recipes: every knob of a training run, declared as data.

A recipe is a frozen dataclass; ``get_recipe(name, **overrides)`` is the one door in, validating
the result. Learning-rate boundaries are fractions of the whole run, so a schedule keeps its
shape when ``epochs`` is overridden. ``edgecnn train --recipe NAME`` and run.json use these.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

from edgecnn.data.tfdata import Augment
from edgecnn.errors import InvalidConfigError, did_you_mean

OPTIMIZERS = ("sgd", "adam", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "step")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every training knob. Learning-rate boundaries are fractions of the whole run, so a schedule
    keeps its shape when ``epochs`` is overridden."""

    name: str
    description: str
    epochs: int
    batch_size: int
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0  # L2 penalty wd * sum(w^2) on conv/dense kernels
    lr_schedule: str = "constant"
    lr_boundaries: Tuple[float, ...] = ()  # "step": fractions of total steps
    lr_factors: Tuple[float, ...] = ()  # "step": multipliers of lr, one more than boundaries
    total_steps: Optional[int] = None  # a schedule given in steps (sepresnet): sets epochs
    early_stopping: int = 0  # patience in epochs on val_loss (0: off); restores the best weights
    label_smoothing: float = 0.0
    crop_pad: int = 0
    flip: bool = False
    brightness: float = 0.0
    contrast: Optional[Tuple[float, float]] = None
    val_fraction: float = 0.1
    folds: int = 1
    # BatchNorm moving-average momentum during training (None: the model's own, 0.99 in Keras).
    # A run of a few hundred steps with 0.99 leaves the moving variances near their initial 1.0
    # (0.99^300 = 0.05 of it remains), and inference-mode accuracy collapses to chance although
    # training accuracy is fine; 0.9 forgets the initial value within ~50 steps.
    bn_momentum: Optional[float] = None

    def augment(self) -> Augment:
        return Augment(self.crop_pad, self.flip, self.brightness, self.contrast)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("lr_boundaries", "lr_factors", "contrast"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "the recorded recipe") -> "Recipe":
        """The recipe a run.json records, through the contract's typed spec (run.json is untrusted
        input): every knob's type and range, one line naming ``where`` and the knob."""
        from edgecnn.contract.checks import check

        check(d, _recipe_spec(), where, InvalidConfigError, path="recipe")
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw.setdefault("description", "")
        for k in ("lr_boundaries", "lr_factors"):
            kw[k] = tuple(float(v) for v in (kw.get(k) or ()))
        if kw.get("contrast") is not None:
            kw["contrast"] = tuple(float(v) for v in kw["contrast"])
        for k in ("lr", "momentum", "weight_decay", "label_smoothing", "brightness", "val_fraction"):
            if k in kw:
                kw[k] = float(kw[k])
        r = cls(**kw)
        _validate_recipe(r)
        return r


def _recipe_spec():
    """What a recorded recipe may hold: every knob typed and bounded (other keys are ignored)."""
    from edgecnn.contract.checks import Bool, Int, ListOf, Num, Obj, Opt, Str

    frac = Num(0, 1)
    return Obj({"name": Str(64, min_len=1), "epochs": Int(0, 1_000_000), "batch_size": Int(1, 1 << 20)},
               {"description": Str(1000), "optimizer": Str(16, choices=OPTIMIZERS), "lr": Num(0, 1e3, gt=0),
                "momentum": frac, "nesterov": Bool(), "weight_decay": Num(0, 1e3),
                "lr_schedule": Str(16, choices=LR_SCHEDULES), "lr_boundaries": ListOf(frac, max_len=64),
                "lr_factors": ListOf(Num(0, 1e6), max_len=65), "total_steps": Opt(Int(1, 1 << 40)),
                "early_stopping": Int(0, 1_000_000), "label_smoothing": frac, "crop_pad": Int(0, 4096),
                "flip": Bool(), "brightness": Num(0, 255), "contrast": Opt(ListOf(Num(0, 1e3), min_len=2, max_len=2)),
                "val_fraction": frac, "folds": Int(1, 1000), "bn_momentum": Opt(frac)}, extra=True)


_CIFAR_AUG = dict(crop_pad=4, flip=True)
RECIPES: Dict[str, Recipe] = {r.name: r for r in (
    Recipe("quick", "Minutes on a laptop CPU: Adam, cosine LR, pad-4 crops + flips. For demos and smoke tests.",
           epochs=12, batch_size=64, optimizer="adam", lr=2e-3, lr_schedule="cosine", bn_momentum=0.9, **_CIFAR_AUG),
    Recipe("quicknet", "QuickNet (Ghosh 2017): BN + dropout 0.5 in the model, augmentation, early stopping.",
           epochs=100, batch_size=64, optimizer="adam", lr=1e-3, early_stopping=10, **_CIFAR_AUG),
    Recipe("structure_e", "Han & Kwon structures A-G: SGD, batch 128, 3 x 100 epochs at LR 0.1 / 0.01 / 0.001.",
           epochs=300, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, lr_schedule="step",
           lr_boundaries=(1 / 3, 2 / 3), lr_factors=(1.0, 0.1, 0.01), **_CIFAR_AUG),
    Recipe("sepresnet", "Separable ResNet thesis: momentum 0.9, LR 0.1/0.01/0.001 at 40k/60k of 80k steps, "
           "batch 128, L2 1e-3, random 24x24 crops, flips, brightness/contrast (TF CIFAR-10 tutorial).",
           epochs=0, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3,
           lr_schedule="step", lr_boundaries=(0.5, 0.75), lr_factors=(1.0, 0.1, 0.01), total_steps=80000,
           flip=True, brightness=63.0, contrast=(0.2, 1.8)),
    Recipe("cmiv4", "CMIV4: Adam, 50 epochs, batch 32; macro-F1 reported; use --folds 3 for the paper's "
           "stratified 3-fold cross-validation.", epochs=50, batch_size=32, optimizer="adam", lr=1e-3,
           early_stopping=10, **_CIFAR_AUG),
)}


def get_recipe(name: str, **overrides) -> Recipe:
    """The named recipe with the given knobs replaced (None means: keep the recipe's value)."""
    if name not in RECIPES:
        raise InvalidConfigError(f"Unknown recipe '{name}'.{did_you_mean(name, RECIPES)} "
                                 f"Choose from: {', '.join(RECIPES)}.")
    known = {f.name for f in dataclasses.fields(Recipe)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise InvalidConfigError(f"Unknown recipe knob(s) {bad}; knobs: {sorted(known - {'name', 'description'})}.")
    kw = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in kw and "total_steps" not in kw:
        kw["total_steps"] = None  # an explicit epoch count wins over a schedule given in steps
    if kw.get("contrast") == ():
        kw["contrast"] = None
    r = dataclasses.replace(RECIPES[name], **kw)
    _validate_recipe(r)
    return r


def _validate_recipe(r: Recipe) -> None:
    if r.optimizer not in OPTIMIZERS:
        raise InvalidConfigError(f"Unknown optimizer '{r.optimizer}'.{did_you_mean(r.optimizer, OPTIMIZERS)} "
                                 f"Choose from: {', '.join(OPTIMIZERS)}.")
    if r.lr_schedule not in LR_SCHEDULES:
        raise InvalidConfigError(f"Unknown LR schedule '{r.lr_schedule}'; choose from: {', '.join(LR_SCHEDULES)}.")
    if r.lr_schedule == "step" and len(r.lr_factors) != len(r.lr_boundaries) + 1:
        raise InvalidConfigError(f"Recipe '{r.name}': a step schedule needs one more factor than boundaries; "
                                 f"received boundaries {r.lr_boundaries}, factors {r.lr_factors}.")
    if r.batch_size < 1 or r.lr <= 0 or (r.epochs < 1 and not r.total_steps):
        raise InvalidConfigError(f"Recipe '{r.name}': batch size, LR and epochs must be positive; received "
                                 f"batch_size={r.batch_size}, lr={r.lr}, epochs={r.epochs}.")
    if r.folds < 1:
        raise InvalidConfigError(f"--folds must be >= 2 for cross-validation (1: none); received {r.folds}.")
    if not 0 <= r.val_fraction < 1:
        raise InvalidConfigError(f"val_fraction must be in [0, 1); received {r.val_fraction}.")
    if r.bn_momentum is not None and not 0 <= r.bn_momentum < 1:
        raise InvalidConfigError(f"bn_momentum must be in [0, 1); received `bn_momentum={r.bn_momentum}`.")
