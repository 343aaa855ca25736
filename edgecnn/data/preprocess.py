"""The one place that knows preprocessing.

A ``PreprocessSpec`` is recorded in run.json and manifest.json and used unchanged by training,
evaluation, calibration, export verification, benchmarks, raspi and the Android app (whose Java
port, ``android_app/.../Preprocess.java``, must give the same bytes; golden vectors check it).

Steps, from a uint8 RGB image of any size to the model's input tensor:

1. ``fit_image``: resize so the shorter side is ``round(size / crop_fraction)`` (bilinear,
   half-pixel centres, edge-clamped, computed in float32, rounded half-up back to uint8),
   then take the centre ``size`` crop. A CIFAR image for a 32x32 model with crop_fraction 1.0
   is left untouched; for a 24x24 model (crop_fraction 0.75) it is centre-cropped, as the
   separable-ResNet thesis evaluates.
   RGB -> gray (for 1-channel models) is ``(299 R + 587 G + 114 B + 500) // 1000``, exact.
2. ``normalize``: ``(u8 * scale - mean) / std`` in float32, in exactly that order.
3. For an int8 model, ``quantize``: ``clip(rint(x / input_scale) + zero_point)``, rint being
   round-half-to-even (numpy's and Java's ``Math.rint``).

numpy only: this module runs on a Raspberry Pi without TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Sequence, Tuple

import numpy as np

from edgecnn.errors import DataError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


MAX_SIDE = 4096  # as `--input-shape`: a bigger input is no edge model, and fit_image would allocate GBs
# fit_image's resize before the crop, in pixels (float32, ~200 MB at the cap): a 1 x 100,000 strip,
# a 1 KB PNG, fitted to 32x32 would otherwise be resized to 32 x 3,200,000.
MAX_FIT_PIXELS = 4096 * 4096
# The model input a spec may give for pixels 0..255: the presets give at most 255 in magnitude.
MAX_INPUT_MAGNITUDE = 1e6
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32, ~1.2e-38


class PreprocessError(DataError, ValueError):
    """A spec or an image it cannot be applied to. A ValueError too, so that readers of a manifest
    that wrap ValueError/KeyError/TypeError into their own error (classify: ModelFileError) keep
    doing so; a DataError, so that an image folder's bad image is refused (or skipped) by name."""


@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
    input_size: Tuple[int, int]  # (height, width) of the model input
    channels: int = 3
    channel_order: str = "RGB"
    layout: str = "NHWC"
    crop_fraction: float = 1.0
    resize: str = "bilinear"
    scale: float = 1.0 / 255.0
    mean: Tuple[float, ...] = CIFAR10_MEAN
    std: Tuple[float, ...] = CIFAR10_STD
    dtype: str = "float32"

    def __post_init__(self):
        # Specs travel in run.json and manifest.json, which are untrusted input: a crop fraction of
        # 1e-9 or a 10^6-pixel side would have fit_image allocate without bound, a zero std divides.
        def bad(what):
            raise PreprocessError(f"preprocessing spec: {what}; the run or manifest is corrupt or hostile.")

        size = tuple(self.input_size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and 1 <= v <= MAX_SIDE for v in size):
            bad(f"input_size must be two integers from 1 to {MAX_SIDE}; received {size!r}")
        if self.channels not in (1, 3):
            bad(f"channels must be 1 or 3; received {self.channels!r}")
        for key, want in (("channel_order", "RGB"), ("layout", "NHWC"), ("resize", "bilinear"), ("dtype", "float32")):
            if getattr(self, key) != want:
                bad(f"{key} must be {want!r}; received {getattr(self, key)!r}")
        cf, scale = self.crop_fraction, self.scale
        if not (isinstance(cf, (int, float)) and math.isfinite(cf) and 0.1 <= cf <= 1):
            bad(f"crop_fraction must be a number from 0.1 to 1; received {cf!r}")
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            bad(f"scale must be a finite number > 0; received {scale!r}")
        for key in ("mean", "std"):
            v = tuple(getattr(self, key))
            if len(v) != self.channels or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
                bad(f"{key} must be {self.channels} finite number(s); received {v!r}")
        if not all(x > 0 for x in self.std):
            bad(f"std must be > 0; received {tuple(self.std)!r}")
        # The arithmetic is float32 (here, in tf.data, in the converters and on the device): a std
        # of 1e-320 is 0 there (the export divided by it and crashed), 1e39 is inf.
        for key in ("scale", "mean", "std"):
            v = (getattr(self, key),) if key == "scale" else tuple(getattr(self, key))
            if any(abs(x) > _F32_MAX or (key != "mean" and x < _F32_TINY) for x in v):
                bad(f"{key} {v!r} is not a normal float32 number (0 or inf in the float32 arithmetic the model runs)")
        lo, hi = input_range(self)
        if max(abs(lo), abs(hi)) > MAX_INPUT_MAGNITUDE:
            bad(f"pixels 0..255 become {lo:.3g}..{hi:.3g}; a model input beyond +-{MAX_INPUT_MAGNITUDE:g} is no "
                f"preprocessing a model is trained with")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        if not isinstance(d, dict):
            raise PreprocessError(f"preprocessing spec: expected an object, found {type(d).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "input_size" not in kw:
            raise PreprocessError("preprocessing spec: input_size is missing.")
        convert = {"input_size": lambda v: tuple(int(x) for x in v), "mean": lambda v: tuple(float(x) for x in v),
                   "std": lambda v: tuple(float(x) for x in v), "crop_fraction": float, "scale": float}
        for key, fn in convert.items():
            if key in kw:
                try:
                    kw[key] = fn(kw[key])
                except (TypeError, ValueError, OverflowError):
                    raise PreprocessError(f"preprocessing spec: {key} is not a number or list of numbers; received "
                                    f"{str(kw[key])[:80]!r}.") from None
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def spec_for(input_shape: Sequence[int], mean=CIFAR10_MEAN, std=CIFAR10_STD, source_size: int = None) -> PreprocessSpec:
    """The spec for a model input (H, W, C); ``source_size`` is the dataset's native image side
    (32 for CIFAR): a smaller model input means centre crops of it, as in the papers."""
    h, w, c = (int(v) for v in input_shape)
    crop = 1.0 if not source_size or source_size <= min(h, w) else min(h, w) / float(source_size)
    if c == 1:
        mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
    return PreprocessSpec(input_size=(h, w), channels=c, crop_fraction=crop, mean=tuple(mean), std=tuple(std))


# Named presets for ``parse_preprocess``: (scale, mean, std) of ``(u8 * scale - mean) / std``.
PRESETS = {
    "raw": (1.0, (0.0,), (1.0,)),  # 0..255 floats: the model rescales inside (a Rescaling layer)
    "unit": (1.0 / 255.0, (0.0,), (1.0,)),  # 0..1
    "keras-mobilenet": (1.0 / 127.5, (1.0,), (1.0,)),  # -1..1, Keras' "tf" mode (MobileNet, Inception)
    "imagenet": (1.0 / 255.0, IMAGENET_MEAN, IMAGENET_STD),  # Keras' "torch" mode
    "cifar10": (1.0 / 255.0, CIFAR10_MEAN, CIFAR10_STD),  # edgecnn's own zoo runs
}
_SPEC_KEYS = {"scale": "scale", "mean": "mean", "std": "std", "crop": "crop_fraction", "crop_fraction": "crop_fraction"}


def parse_preprocess(text: str, input_size: Sequence[int], channels: int = 3) -> PreprocessSpec:
    """A ``--preprocess`` string -> the spec for a model input of ``input_size`` (H, W) and ``channels``.

    A preset (``raw``, ``unit``, ``keras-mobilenet``, ``imagenet``, ``cifar10``), then or instead
    ``key=value`` items, comma-separated: ``scale=1/255,mean=0.485,0.456,0.406,std=0.229,0.224,0.225``
    (bare numbers after ``mean=``/``std=`` continue the list; a single value applies to every
    channel; ``crop=0.875`` centre-crops). Unset keys: scale 1/255, mean 0, std 1.
    """
    from edgecnn.errors import InvalidConfigError, did_you_mean

    def bad(msg):
        raise InvalidConfigError(f"--preprocess {text!r}: {msg}")

    def number(tok):
        try:
            num, _, den = tok.strip().partition("/")
            v = float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError):
            bad(f"{tok.strip()!r} is not a number (such as 0.5 or 1/255)")
        if not math.isfinite(v):
            bad(f"{tok.strip()!r} is not a finite number")
        return v

    if not isinstance(text, str) or not text.strip():
        bad(f"empty; give a preset ({', '.join(PRESETS)}) or scale=...,mean=...,std=...")
    items = [t.strip() for t in text.split(",")]
    scale, mean, std = 1.0 / 255.0, [0.0], [1.0]
    values = {}
    key = None
    for i, tok in enumerate(items):
        if "=" in tok:
            name, _, val = tok.partition("=")
            name = name.strip().lower()
            if name not in _SPEC_KEYS:
                bad(f"unknown key {name!r}; keys: scale, mean, std, crop.{did_you_mean(name, _SPEC_KEYS)}")
            key = _SPEC_KEYS[name]
            if key in values:
                bad(f"{name} is given twice")
            values[key] = [number(val)]
        elif i == 0 and tok.lower() in PRESETS:
            scale, mean, std = PRESETS[tok.lower()]
            mean, std = list(mean), list(std)
        elif i == 0 and not tok.replace(".", "").replace("/", "").replace("-", "").isdigit():
            bad(f"unknown preset {tok!r}; one of {', '.join(PRESETS)}, or key=value items."
                f"{did_you_mean(tok.lower(), PRESETS)}")
        elif key in ("mean", "std"):
            values[key].append(number(tok))
        else:
            bad(f"{tok!r} follows {key or 'nothing'}; only mean= and std= take several numbers")
    for key in ("scale", "crop_fraction"):
        if len(values.get(key, [0])) != 1:
            bad(f"{key} takes one number")
    scale = values.get("scale", [scale])[0]
    mean, std = values.get("mean", mean), values.get("std", std)
    fit = []
    for key, v in (("mean", mean), ("std", std)):
        if len(v) == 1:
            v = v * channels
        if len(v) != channels:
            bad(f"{key} has {len(v)} values for a {channels}-channel model")
        fit.append(tuple(v))
    try:
        return PreprocessSpec(input_size=tuple(int(s) for s in input_size), channels=int(channels),
                              crop_fraction=values.get("crop_fraction", [1.0])[0], scale=scale,
                              mean=fit[0], std=fit[1])
    except PreprocessError as e:
        bad(e.message.replace("; the run or manifest is corrupt or hostile", ""))


def input_range(spec: PreprocessSpec) -> Tuple[float, float]:
    """(lowest, highest) model input the spec gives for pixels 0..255, over the channels."""
    lo = min((0.0 * spec.scale - m) / s for m, s in zip(spec.mean, spec.std))
    hi = max((255.0 * spec.scale - m) / s for m, s in zip(spec.mean, spec.std))
    return lo, hi


def describe_range(spec: PreprocessSpec) -> str:
    """The model input range a spec gives, e.g. '-1.00..1.00' (a line for logs and the README)."""
    lo, hi = input_range(spec)
    return f"{lo:.2f}..{hi:.2f}"


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 HxWxC -> uint8 out_h x out_w x C; half-pixel centres, edge clamp, float32 math."""
    in_h, in_w = img.shape[:2]
    if (in_h, in_w) == (out_h, out_w):
        return img.copy()
    src = img.astype(np.float32)

    def coords(n_out, n_in):
        s = np.float32(n_in) / np.float32(n_out)
        x = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * s - np.float32(0.5)
        x = np.clip(x, np.float32(0.0), np.float32(n_in - 1))
        x0 = np.floor(x).astype(np.int64)
        x1 = np.minimum(x0 + 1, n_in - 1)
        return x0, x1, (x - x0.astype(np.float32)).astype(np.float32)

    y0, y1, fy = coords(out_h, in_h)
    x0, x1, fx = coords(out_w, in_w)
    fx = fx[None, :, None]
    fy = fy[:, None, None]
    top = src[y0][:, x0] + (src[y0][:, x1] - src[y0][:, x0]) * fx
    bot = src[y1][:, x0] + (src[y1][:, x1] - src[y1][:, x0]) * fx
    out = top + (bot - top) * fy
    return np.floor(out + np.float32(0.5)).clip(0, 255).astype(np.uint8)


def fit_image(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Any uint8 image (HxW, HxWx1, HxWx3 or HxWx4) -> uint8 of the spec's size and channels."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if spec.channels == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif spec.channels == 1 and img.shape[2] == 3:
        # ITU-R 601 luma in exact integer arithmetic, (299 R + 587 G + 114 B + 500) // 1000: a float
        # dot product rounds differently with and without FMA, so it would differ between machines.
        luma = (img.astype(np.int32) * np.array([299, 587, 114], np.int32)).sum(axis=2) + 500
        img = (luma // 1000).astype(np.uint8)[:, :, None]
    th, tw = spec.input_size
    h, w = img.shape[:2]
    short = int(round(min(th, tw) / spec.crop_fraction))
    if min(h, w) != short:
        if h <= w:
            nh, nw = short, max(tw, int(round(w * short / h)))
        else:
            nh, nw = max(th, int(round(h * short / w))), short
        if nh * nw > MAX_FIT_PIXELS:
            raise PreprocessError(f"a {w}x{h} image would be resized to {nw}x{nh} before its {tw}x{th} centre crop, "
                                  f"more than {MAX_FIT_PIXELS:,} pixels; its aspect ratio is too extreme for this "
                                  f"model input.")
        img = resize_bilinear(img, nh, nw)
    h, w = img.shape[:2]
    if h < th or w < tw:
        raise PreprocessError(f"a {w}x{h} image cannot be centre-cropped to {tw}x{th} with crop_fraction "
                         f"{spec.crop_fraction} (non-square model input): resize it to the input's aspect first")
    top, left = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(img[top:top + th, left:left + tw])


def normalize(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 (..., H, W, C) of the spec's size -> float32 model input, same shape."""
    x = np.asarray(images, dtype=np.float32) * np.float32(spec.scale)
    return (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)


def preprocess(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A batch (N, H, W, C) or list of uint8 images -> float32 (N, h, w, c) model input."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and tuple(images.shape[1:3]) == tuple(spec.input_size) \
            and images.shape[3] == spec.channels:
        return normalize(images, spec)
    return normalize(np.stack([fit_image(im, spec) for im in images]), spec)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale)) + np.float32(zero_point)
    return q.clip(info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def top_k(scores: np.ndarray, k: int = 5):
    """Indices of the k largest scores, largest first; ties broken by the lower index."""
    s = np.asarray(scores).ravel()
    order = np.lexsort((np.arange(s.size), -s.astype(np.float64)))
    return order[: min(k, s.size)]
