"""tf.data pipelines from uint8 arrays to normalised model input, following the one spec.

Evaluation input equals ``edgecnn.data.preprocess.preprocess(x, spec)`` exactly: arrays are
first brought to the spec's pre-crop size with ``fit_image`` (numpy, once), then the pipeline
takes the centre crop and computes ``(u8 * scale - mean) / std`` in float32, in that order.
Training takes random crops instead (of the zero-padded image when ``crop_pad`` > 0; a 24x24
model on 32x32 CIFAR gets random 24x24 crops, as the separable-ResNet thesis trains), then the
recipe's flips and brightness/contrast jitter. Random ops are stateless, keyed by a seeded
stream, so a seed gives the same augmentations whatever the thread scheduling.

TensorFlow is imported inside the functions.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from edgecnn.data.preprocess import PreprocessSpec, fit_image


@dataclasses.dataclass(frozen=True)
class Augment:
    crop_pad: int = 0  # zero padding before the random crop (CIFAR: 4)
    flip: bool = False  # random horizontal flip
    brightness: float = 0.0  # max delta in pixel units (TF CIFAR-10 tutorial: 63)
    contrast: Optional[Tuple[float, float]] = None  # (lower, upper) factor (tutorial: 0.2, 1.8)


def precrop_size(shape_hw: Tuple[int, int], spec: PreprocessSpec) -> Tuple[int, int]:
    """The size ``fit_image`` resizes an image of ``shape_hw`` to before its centre crop."""
    th, tw = spec.input_size
    h, w = shape_hw
    short = int(round(min(th, tw) / spec.crop_fraction))
    if min(h, w) == short:
        return h, w
    if h <= w:
        return short, max(tw, int(round(w * short / h)))
    return max(th, int(round(h * short / w))), short


def presize(x: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 at the pre-crop size and the spec's channels (fit_image's resize)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    nh, nw = precrop_size(x.shape[1:3], spec)
    if (nh, nw) == tuple(x.shape[1:3]) and x.shape[3] == spec.channels:
        return x
    inner = dataclasses.replace(spec, input_size=(nh, nw), crop_fraction=1.0)
    return np.stack([fit_image(im, inner) for im in x]) if len(x) else \
        np.zeros((0, nh, nw, spec.channels), np.uint8)


def _normalize_tf(x, spec: PreprocessSpec):
    import tensorflow as tf

    x = x * tf.constant(spec.scale, tf.float32)
    return (x - tf.constant(spec.mean, tf.float32)) / tf.constant(spec.std, tf.float32)


def make_dataset(x: np.ndarray, y: np.ndarray, spec: PreprocessSpec, *, batch_size: int, training: bool = False,
                 augment: Augment = Augment(), seed: int = 0, shuffle: Optional[bool] = None):
    """A batched, prefetched tf.data.Dataset of (float32 NHWC, int64 label)."""
    import tensorflow as tf

    x = presize(x, spec)
    th, tw = spec.input_size
    c = spec.channels
    h, w = x.shape[1:3]
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, np.int64)))
    if shuffle if shuffle is not None else training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if not training:
        top, left = (h - th) // 2, (w - tw) // 2

        def _eval(img, label):
            img = tf.cast(img[top:top + th, left:left + tw, :], tf.float32)
            return _normalize_tf(img, spec), label

        return ds.map(_eval, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    pad = int(augment.crop_pad)
    crop = pad > 0 or (h, w) != (th, tw)
    seeds = tf.data.Dataset.random(seed=seed + 7919, rerandomize_each_iteration=True).batch(2)

    def _train(pair, s):
        img, label = pair
        s = tf.random.experimental.stateless_split(s, 4)
        img = tf.cast(img, tf.float32)
        if pad:
            img = tf.pad(img, [[pad, pad], [pad, pad], [0, 0]])
        if crop:
            img = tf.image.stateless_random_crop(img, [th, tw, c], seed=s[0])
        if augment.flip:
            img = tf.image.stateless_random_flip_left_right(img, seed=s[1])
        if augment.brightness:
            img = tf.image.stateless_random_brightness(img, float(augment.brightness), seed=s[2])
        if augment.contrast:
            img = tf.image.stateless_random_contrast(img, augment.contrast[0], augment.contrast[1], seed=s[3])
        if augment.brightness or augment.contrast:
            img = tf.clip_by_value(img, 0.0, 255.0)
        return _normalize_tf(img, spec), label

    ds = tf.data.Dataset.zip((ds, seeds)).map(_train, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
