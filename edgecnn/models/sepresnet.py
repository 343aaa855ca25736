"""Separable residual networks: Çallı, "Faster and Lighter Convolutional Neural Networks"
(MSc thesis, 2017), and the ResNet-20 it is measured against (He et al., "Deep Residual
Learning for Image Recognition", CVPR 2016, Section 4.2 / Table 6).

The thesis' numbers (its CIFAR-10 comparison table): the separable residual network has
0.12 M parameters, 27 layers and ~13 M operations on 24x24 crops; ResNet-20 has 0.27 M
parameters and ~41 M operations on 32x32 images. "Operations" are multiply-accumulates of
convolutions and dense layers (edgecnn.models.analysis).

Block (full pre-activation, He et al., "Identity Mappings in Deep Residual Networks", 2016):
BN, ReLU, conv, BN, ReLU, conv, add. In a down-sampling block the stride sits in the first
convolution (the first depthwise, for the separable types) and the channels double in the first
(pointwise) convolution. The shortcut stays parameter-free: 2x2 average pooling with stride 2,
then zero channels appended (ResNet "option A" in spirit).

The thesis' convolution alternatives are block options (``conv_type``):

- ``standard``: one KxK convolution;
- ``kernel_composing``: 1xK then Kx1 (a rank-1 factorization of the KxK kernel, no
  non-linearity in between);
- ``separable`` (default): depthwise KxK then pointwise 1x1;
- ``separable_nl``: depthwise KxK, BN, ReLU, pointwise 1x1.

Choices not pinned down by the sources at hand (the thesis text could not be retrieved; the
figures above come from the issue that cites it):

- CIFAR widths 40/80/160 in three stages of two blocks (one conv layer + 6 separable residual
  blocks): with 3x3 kernels the width that fits both figures, 0.135 M parameters (BN statistics
  included) and 12.1 M MACs at 24x24 (36/72/144 would give 0.11 M but only 10.0 M MACs).
  Weight layers: stem conv + 6 x 2 x (depthwise + pointwise) + dense = 26; the thesis' 27
  presumably counts one more (e.g. the final BN/pooling).
- ``sepresnet34``: ResNet-34's stage layout (3, 4, 6, 3 blocks of 64/128/256/512 channels)
  with separable pre-activation blocks. ResNet's 7x7/2 convolution + 3x3/2 max-pool stem
  (118 M MACs, more than the 88 M of all six separable convolutions of the first stage) is
  replaced by a 3x3/2 convolution to 32 channels and a separable 3x3/2 convolution to 64
  channels (18 M MACs; 434 M for the whole network at 224x224): a MobileNet-style stem, chosen
  because a dense 7x7 stem would be a quarter of the cost of a network whose point is cheap
  convolutions.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from edgecnn.errors import InvalidConfigError
from edgecnn.models.blocks import (check_input_shape, check_num_classes, classifier, keras,
                                         pad_channels)
from edgecnn.models.registry import PaperClaim, PaperFigure, register_model

CONV_TYPES = ("standard", "kernel_composing", "separable", "separable_nl")

_THESIS = "Çallı 2017, Faster and Lighter CNNs (MSc thesis), CIFAR-10 comparison table"
_HE = "He et al. 2016, Deep Residual Learning, Table 6 (ResNet-20, 0.27 M)"


def _check_conv_type(conv_type, model: str) -> str:
    if conv_type not in CONV_TYPES:
        raise InvalidConfigError(f"{model}: `conv_type` must be one of {', '.join(CONV_TYPES)}. "
                                 f"Received `conv_type={conv_type!r}`.")
    return conv_type


def _conv(x, filters: int, *, conv_type: str, strides: int = 1, kernel_size: int = 3, name: str):
    """One "convolution" of a residual block, in the thesis' chosen form (no trailing BN/act)."""
    k = keras().layers
    if conv_type == "standard":
        return k.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                        name=f"{name}_conv")(x)
    if conv_type == "kernel_composing":
        # Each factor subsamples along its own axis, so a strided block still sees every row.
        x = k.Conv2D(filters, (1, kernel_size), strides=(1, strides), padding="same", use_bias=False,
                     name=f"{name}_1x{kernel_size}")(x)
        return k.Conv2D(filters, (kernel_size, 1), strides=(strides, 1), padding="same", use_bias=False,
                        name=f"{name}_{kernel_size}x1")(x)
    x = k.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    if conv_type == "separable_nl":
        x = k.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = k.ReLU(name=f"{name}_dw_relu")(x)
    return k.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)


def _shortcut(x, filters: int, strides: int, *, pool: int, name: str):
    """Parameter-free identity: subsample with average pooling, then append zero channels."""
    k = keras().layers
    if strides > 1:
        x = k.AveragePooling2D(pool, strides=strides, padding="same", name=f"{name}_pool")(x)
    extra = filters - int(x.shape[-1])
    return pad_channels(x, extra, name=f"{name}_pad") if extra else x


def _preact_block(x, filters: int, *, strides: int, conv_type: str, name: str):
    """Full pre-activation residual block: (BN, ReLU, conv) x 2 + identity."""
    k = keras().layers
    y = k.BatchNormalization(name=f"{name}_preact_bn")(x)
    y = k.ReLU(name=f"{name}_preact_relu")(y)
    y = _conv(y, filters, conv_type=conv_type, strides=strides, name=f"{name}_1")
    y = k.BatchNormalization(name=f"{name}_1_bn")(y)
    y = k.ReLU(name=f"{name}_1_relu")(y)
    y = _conv(y, filters, conv_type=conv_type, name=f"{name}_2")
    s = _shortcut(x, filters, strides, pool=2, name=f"{name}_shortcut")
    return k.Add(name=f"{name}_add")([s, y])


def _basic_block(x, filters: int, *, strides: int, name: str):
    """ResNet v1 basic block (conv, BN, ReLU, conv, BN, add, ReLU) with the option A shortcut."""
    k = keras().layers
    y = k.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_1_conv")(x)
    y = k.BatchNormalization(name=f"{name}_1_bn")(y)
    y = k.ReLU(name=f"{name}_1_relu")(y)
    y = k.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    y = k.BatchNormalization(name=f"{name}_2_bn")(y)
    # Option A subsamples by taking every other pixel: a 1x1 pooling window with stride 2.
    s = _shortcut(x, filters, strides, pool=1, name=f"{name}_shortcut")
    y = k.Add(name=f"{name}_add")([s, y])
    return k.ReLU(name=f"{name}_out_relu")(y)


def _gen_sepresnet(variant: str, *, input_shape, num_classes: int, classifier_activation,
                   stages: Sequence[Tuple[int, int]], stem: str, stem_filters: int,
                   conv_type: str = "separable", block: str = "preact", min_size: int, name: str):
    """Stem, then ``stages`` = ((blocks, filters), ...) with stride 2 entering every stage but the
    first, then (BN, ReLU for pre-activation), global average pooling and the classifier."""
    shape = check_input_shape(input_shape, min_size=min_size, model=variant)
    num_classes = check_num_classes(num_classes, variant)
    conv_type = _check_conv_type(conv_type, variant)
    keras_ = keras()
    k = keras_.layers

    inputs = k.Input(shape=shape, name="input")
    if stem == "cifar":  # one 3x3 convolution
        x = k.Conv2D(stem_filters, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
        if block == "basic":
            x = k.BatchNormalization(name="stem_bn")(x)
            x = k.ReLU(name="stem_relu")(x)
    elif stem == "imagenet_light":  # 3x3/2 conv to 32, separable 3x3/2 to stem_filters
        x = k.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = k.BatchNormalization(name="stem_bn")(x)
        x = k.ReLU(name="stem_relu")(x)
        x = _conv(x, stem_filters, conv_type="separable", strides=2, name="stem_sep")
    else:
        raise ValueError(f"unknown stem {stem!r}")

    for s, (blocks, filters) in enumerate(stages, start=1):
        for b in range(1, blocks + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            bname = f"stage{s}_block{b}"
            if block == "basic":
                x = _basic_block(x, filters, strides=strides, name=bname)
            else:
                x = _preact_block(x, filters, strides=strides, conv_type=conv_type, name=bname)
    if block == "preact":
        x = k.BatchNormalization(name="post_bn")(x)
        x = k.ReLU(name="post_relu")(x)
    x = k.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, activation_name=classifier_activation)
    # The name says the configuration: variant, conv type (where it has one), input size.
    return keras_.Model(inputs, outputs, name=f"{name}_{shape[0]}x{shape[1]}")


@register_model(paper=[
    PaperFigure("params", 0.12e6, 0.15, source=_THESIS),
    PaperFigure("macs", 13e6, 0.25, source=_THESIS),
], claims=[
    # The thesis argues speed from operations: 13 M vs ResNet-20's 40 M.
    PaperClaim("latency_ratio", "sepresnet_cifar", p, relative_to="resnet20", paper=13 / 40,
               paper_note="operations 13 M / 40 M", source=_THESIS)
    for p in ("fp32", "int8")
])
def sepresnet_cifar(*, input_shape=(24, 24, 3), num_classes: int = 10, classifier_activation="softmax",
                    conv_type: str = "separable"):
    """Separable pre-activation ResNet for CIFAR-10: one conv + 6 residual blocks (0.12 M, ~13 M MACs).

    Stages of two blocks at 40/80/160 channels; 24x24 crops as in the thesis (32x32 works too).

    Args:
        input_shape: (height, width, channels); at least 8x8.
        num_classes: number of classes.
        classifier_activation: activation of the last layer ("softmax", or None for logits).
        conv_type: "separable" (default), "separable_nl", "kernel_composing" or "standard".

    Reference: Çallı, "Faster and Lighter Convolutional Neural Networks", MSc thesis 2017,
        CIFAR-10 comparison table (0.12 M parameters, 27 layers, ~13 M operations).
    """
    return _gen_sepresnet("sepresnet_cifar", input_shape=input_shape, num_classes=num_classes,
                          classifier_activation=classifier_activation, stages=((2, 40), (2, 80), (2, 160)),
                          stem="cifar", stem_filters=40, conv_type=conv_type, min_size=8,
                          name=f"sepresnet_cifar_{conv_type}")


@register_model(paper=[
    PaperFigure("params", 0.27e6, 0.15, source=_HE),
    PaperFigure("macs", 40e6, 0.25, source=_THESIS + " (ResNet-20, ~40 M operations)"),
])
def resnet20(*, input_shape=(32, 32, 3), num_classes: int = 10, classifier_activation="softmax"):
    """ResNet-20 for CIFAR-10 with parameter-free option A shortcuts (0.27 M, ~41 M MACs).

    Args:
        input_shape: (height, width, channels); at least 8x8.
        num_classes: number of classes.
        classifier_activation: activation of the last layer ("softmax", or None for logits).

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Section 4.2
        and Table 6 (3 stages x 3 basic blocks at 16/32/64 channels, 0.27 M parameters).
    """
    return _gen_sepresnet("resnet20", input_shape=input_shape, num_classes=num_classes,
                          classifier_activation=classifier_activation, stages=((3, 16), (3, 32), (3, 64)),
                          stem="cifar", stem_filters=16, block="basic", min_size=8,
                          name="resnet20")


@register_model
def sepresnet34(*, input_shape=(224, 224, 3), num_classes: int = 1000, classifier_activation="softmax",
                conv_type: str = "separable"):
    """Separable pre-activation ResNet-34 for ImageNet with a light stem (3x3/2 conv + separable 3x3/2).

    Args:
        input_shape: (height, width, channels); at least 32x32.
        num_classes: number of classes.
        classifier_activation: activation of the last layer ("softmax", or None for logits).
        conv_type: "separable" (default), "separable_nl", "kernel_composing" or "standard".

    Reference: Çallı, "Faster and Lighter Convolutional Neural Networks", MSc thesis 2017
        (separable ResNet-34); stage layout from He et al., CVPR 2016, Table 1 (34-layer).
    """
    return _gen_sepresnet("sepresnet34", input_shape=input_shape, num_classes=num_classes,
                          classifier_activation=classifier_activation,
                          stages=((3, 64), (4, 128), (6, 256), (3, 512)), stem="imagenet_light",
                          stem_filters=64, conv_type=conv_type, min_size=32,
                          name=f"sepresnet34_{conv_type}")
