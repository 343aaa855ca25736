"""A five-layer AlexNet for Tiny ImageNet, plain, depthwise-separable, and with shortcuts.

Paper: Tong, Cho & Sun, final report of the AVLSI course, 2017: a small AlexNet-like classifier
for Tiny ImageNet (64x64x3, 200 classes) and its depthwise-separable and residual variants,
with the parameter counts of their parameter table: 415,656 (plain), 74,818 (depthwise),
the same for depthwise + residual.

Layout (64x64x3 input, 200 classes):

    layer 1   Conv 3x3 / 2, 32          -> BN -> ReLU -> MaxPool 2x2 / 2     16x16x32
    layer 2   Conv 3x3 / 2, 64          -> BN -> ReLU -> MaxPool 2x2 / 2      4x4x64
    layer 3   Conv 3x3, 128             -> BN -> ReLU                         4x4x128
    layer 4   Conv 3x3, 128             -> BN (+ shortcut) -> ReLU            4x4x128
    layer 5   Conv 3x3, 128             -> BN (+ shortcut) -> ReLU            4x4x128
    head      global average pool -> Dense(num_classes) -> softmax

Convolutions have no bias (BN follows each), which gives the plain model's 415,656 parameters
exactly. In ``alexnet_tiny_dw`` layers 2-5 are depthwise-separable (SeparableConv2D, no bias,
one BN after the pointwise part): 74,760 parameters, 0.08% below the report's 74,818.
``alexnet_tiny_dw_res`` adds identity shortcuts around layers 4 and 5 (128 -> 128, stride 1),
added before the ReLU as in ResNet; they add no parameters. The models also build at 32x32x3
with 10 classes (CIFAR), the size the training and export tests use.
"""
from __future__ import annotations

from edgecnn.models import blocks
from edgecnn.models.registry import PaperClaim, PaperFigure, register_model

# (filters, stride, max pool after) of the five layers.
_LAYERS = ((32, 2, True), (64, 2, True), (128, 1, False), (128, 1, False), (128, 1, False))
_RESIDUAL_LAYERS = (4, 5)
_SOURCE = "Tong, Cho & Sun, AVLSI 2017 final report, parameter table"


def _conv_layer(x, filters: int, stride: int, *, separable: bool, residual: bool, name: str):
    """(Separable) 3x3 conv -> BN [-> + input] -> ReLU, named ``{name}_conv|_sepconv|_bn|_add|_relu``."""
    k = blocks.keras().layers
    shortcut = x
    if separable:
        x = k.SeparableConv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_sepconv")(x)
    else:
        x = k.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = k.BatchNormalization(name=f"{name}_bn")(x)
    if residual:
        x = k.Add(name=f"{name}_add")([shortcut, x])
    return blocks.activation("relu", f"{name}_relu")(x)


def _gen_alexnet_tiny(variant: str, *, depthwise: bool, residual: bool, input_shape, num_classes,
                      classifier_activation):
    shape = blocks.check_input_shape(input_shape, min_size=16, model=variant)
    num_classes = blocks.check_num_classes(num_classes, variant)
    keras = blocks.keras()
    k = keras.layers

    inputs = k.Input(shape=shape, name="input")
    x = inputs
    for i, (filters, stride, pool) in enumerate(_LAYERS, start=1):
        x = _conv_layer(x, filters, stride, separable=depthwise and i > 1,
                        residual=residual and i in _RESIDUAL_LAYERS, name=f"layer_{i}")
        if pool:
            x = k.MaxPooling2D(2, strides=2, padding="same", name=f"layer_{i}_pool")(x)
    x = k.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = blocks.classifier(x, num_classes, activation_name=classifier_activation)
    return keras.Model(inputs, outputs, name=f"{variant}_{shape[0]}x{shape[1]}_{num_classes}")


_ARGS_DOC = """
    Args:
        input_shape: (height, width, channels), height and width at least 16; the report uses
            64x64x3 (Tiny ImageNet); 32x32x3 works too.
        num_classes: number of output classes (>= 2); the report uses 200.
        classifier_activation: activation of the output layer; None for logits.

    Returns:
        A tf_keras Model mapping images to class probabilities.

    Reference: Tong, Cho & Sun, AVLSI 2017 final report (Tiny ImageNet), parameter table.
"""


@register_model(paper=[PaperFigure("params", 415_656, 0.0, source=_SOURCE + ": 415,656 (plain)")])
def alexnet_tiny(*, input_shape=(64, 64, 3), num_classes=200, classifier_activation="softmax"):
    """Five-layer AlexNet for Tiny ImageNet, plain 3x3 convolutions (415,656 params)."""
    return _gen_alexnet_tiny("alexnet_tiny", depthwise=False, residual=False, input_shape=input_shape,
                             num_classes=num_classes, classifier_activation=classifier_activation)


def _faster(name: str) -> list:
    # The report argues speed from the parameter count, with no timing: shown, not judged.
    return [PaperClaim("latency_ratio", name, p, relative_to="alexnet_tiny", paper_note="fewer parameters (no timing)",
                       source=_SOURCE) for p in ("fp32", "int8")]


@register_model(paper=[PaperFigure("params", 74_818, 0.002, source=_SOURCE + ": 74,818 (depthwise)")],
                claims=_faster("alexnet_tiny_dw"))
def alexnet_tiny_dw(*, input_shape=(64, 64, 3), num_classes=200, classifier_activation="softmax"):
    """Five-layer AlexNet for Tiny ImageNet, layers 2-5 depthwise-separable (74,818 params)."""
    return _gen_alexnet_tiny("alexnet_tiny_dw", depthwise=True, residual=False, input_shape=input_shape,
                             num_classes=num_classes, classifier_activation=classifier_activation)


@register_model(paper=[PaperFigure("params", 74_818, 0.002, source=_SOURCE + ": 74,818 (depthwise + residual)")],
                claims=_faster("alexnet_tiny_dw_res"))
def alexnet_tiny_dw_res(*, input_shape=(64, 64, 3), num_classes=200, classifier_activation="softmax"):
    """Five-layer AlexNet for Tiny ImageNet, depthwise-separable with shortcuts around layers 4-5."""
    return _gen_alexnet_tiny("alexnet_tiny_dw_res", depthwise=True, residual=True, input_shape=input_shape,
                             num_classes=num_classes, classifier_activation=classifier_activation)


for _fn in (alexnet_tiny, alexnet_tiny_dw, alexnet_tiny_dw_res):
    _fn.__doc__ = (_fn.__doc__ or "") + _ARGS_DOC
del _fn
