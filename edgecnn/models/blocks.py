"""Blocks shared by the families. Families add what more than one of them needs here, not in
their own file. Every layer gets a stable name from the caller's ``name`` prefix."""
from __future__ import annotations

from typing import Optional, Sequence

from edgecnn.errors import InvalidConfigError


def keras():
    """tf_keras (Keras 2), never Keras 3: TFMOT and the TFLite converter paths need it."""
    import tf_keras

    return tf_keras


def check_input_shape(input_shape: Sequence[int], *, min_size: int, model: str, channels=(1, 3)) -> tuple:
    """Validate (H, W, C) once for every family; errors quote the bad value."""
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise InvalidConfigError(f"{model}: input_shape must be (height, width, channels). Received `input_shape={input_shape!r}`.") from None
    if len(shape) != 3:
        raise InvalidConfigError(f"{model}: input_shape must be (height, width, channels). Received `input_shape={input_shape!r}`.")
    h, w, c = shape
    if channels and c not in channels:
        raise InvalidConfigError(f"{model}: input channels must be one of {tuple(channels)}. Received `input_shape={shape}`.")
    if min(h, w) < min_size:
        raise InvalidConfigError(f"{model}: height and width must be at least {min_size}. Received `input_shape={shape}`.")
    return shape


def check_num_classes(num_classes, model: str) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise InvalidConfigError(f"{model}: num_classes must be an integer >= 2. Received `num_classes={num_classes!r}`.")
    return num_classes


def activation(kind: str, name: str, shared_axes: Optional[Sequence[int]] = (1, 2)):
    """A named activation layer: relu, relu6, prelu (per channel), leaky_relu, sigmoid, tanh, elu."""
    k = keras().layers
    if kind == "prelu":
        return k.PReLU(shared_axes=list(shared_axes) if shared_axes else None, name=name)
    if kind == "relu6":
        return k.ReLU(max_value=6.0, name=name)
    if kind == "leaky_relu":
        return k.LeakyReLU(name=name)
    if kind in ("relu", "sigmoid", "tanh", "elu", "linear"):
        return k.Activation(kind, name=name)
    raise InvalidConfigError(f"unknown activation `{kind}`")


def conv_bn_act(x, filters: int, kernel, *, strides=1, padding="same", act: Optional[str] = "relu",
                name: str, use_bias: bool = False, bn_epsilon: float = 1e-3, bn_momentum: float = 0.99):
    """Conv2D -> BatchNorm -> activation, named ``{name}_conv``, ``{name}_bn``, ``{name}_{act}``."""
    k = keras().layers
    x = k.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=use_bias, name=f"{name}_conv")(x)
    x = k.BatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, name=f"{name}_bn")(x)
    if act:
        x = activation(act, f"{name}_{act}")(x)
    return x


def classifier(x, num_classes: int, *, activation_name: Optional[str] = "softmax", dropout: float = 0.0,
               name: str = "predictions"):
    """Dropout (optional) -> Dense(num_classes) -> activation; the usual head after pooling."""
    k = keras().layers
    if dropout:
        x = k.Dropout(dropout, name=f"{name}_dropout")(x)
    return k.Dense(num_classes, activation=activation_name, name=name)(x)


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a scaled channel count to a multiple of ``divisor``, never more than 10% below it.

    The rule of the TensorFlow MobileNet code: multiples of 8 map well onto SIMD lanes and int8
    kernels, and not losing more than 10% keeps a width multiplier's capacity honest.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def check_multiplier(value, *, arg: str, model: str, low: float = 0.0, high: float = 4.0) -> float:
    """Validate a width multiplier (``alpha``, ``width_multiplier``): a number in (low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < float(value) <= high):
        raise InvalidConfigError(f"{model}: `{arg}` must be a number > {low:g} and <= {high:g}. Received `{arg}={value!r}`.")
    return float(value)


def pad_channels(x, extra: int, *, name: str):
    """Append ``extra`` all-zero channels: the parameter-free shortcut of ResNet "option A".

    Built from Permute + ZeroPadding2D + Permute (channels moved onto a spatial axis and back)
    rather than a Lambda or custom layer, so that the model saves without custom objects, TFMOT
    quantizes it (both are in its registry) and int8 TFLite pads with the zero point.
    Layers: ``{name}_to_hc``, ``{name}_zeros``, ``{name}_to_hw``.
    """
    k = keras().layers
    if extra < 0:
        raise InvalidConfigError(f"pad_channels: `extra` must be >= 0. Received `extra={extra!r}`.")
    x = k.Permute((1, 3, 2), name=f"{name}_to_hc")(x)  # (H, W, C) -> (H, C, W)
    x = k.ZeroPadding2D(((0, 0), (0, int(extra))), name=f"{name}_zeros")(x)
    return k.Permute((1, 3, 2), name=f"{name}_to_hw")(x)


def multiplier_tag(value: float) -> str:
    """A width multiplier as it appears in model names: 1.00, 0.50, 0.125 (never rounded away)."""
    two = f"{value:.2f}"
    return two if abs(float(two) - value) < 1e-9 else f"{value:g}"
