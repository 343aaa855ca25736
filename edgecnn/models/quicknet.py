"""QuickNet: the Darknet reference model rebuilt from depthwise-separable convolutions and PReLU.

Paper: T. Ghosh, "QuickNet: Maximizing Efficiency and Efficacy in Deep Architectures",
arXiv 1701.02291 (2017), https://arxiv.org/abs/1701.02291. The figures claimed here come from the
paper's model-size comparison on CIFAR-10 (32x32x3, 10 classes): 3.56 M parameters, 14.24 MB at
32 bits.

The paper describes the network in words, not as a layer table: a single 5x5 convolution with no
padding as the entry; then quasi-repetitive 3x3 depthwise-separable convolutions, each followed
by batch norm and a PReLU, the number of filters doubling every N layers and the resolution
halved between groups by max pooling as in the Darknet reference model; no residual
connections; global average pooling instead of fully connected layers; dropout 0.5; softmax.

Layer plan chosen here (32x32x3 input, 10 classes, width_multiplier=1):

    stem      Conv2D 5x5, 64 filters, padding "valid", no bias -> BN -> PReLU     28x28x64
    group 1   3 x [SeparableConv2D 3x3 -> BN -> PReLU], 128 filters             28x28x128
              MaxPool 2x2 / 2                                                   14x14
    group 2   3 x [SeparableConv2D 3x3 -> BN -> PReLU], 256 filters             14x14x256
              MaxPool 2x2 / 2                                                    7x7
    group 3   3 x [SeparableConv2D 3x3 -> BN -> PReLU], 512 filters              7x7x512
              MaxPool 2x2 / 2 ("same")                                           4x4
    group 4   3 x [SeparableConv2D 3x3 -> BN -> PReLU], 1024 filters             4x4x1024
    head      Dropout 0.5 -> Conv2D 1x1, num_classes (with bias) -> global average pool -> softmax

3,568,970 parameters (14.28 MB at 32 bits), 0.25% above the paper. Why this plan: among plans
of the form "stem C0, then groups of N separable layers whose filters double from C1" (C0 in
{32, 64}, C1 in {32, 64, 128}, 3-5 groups, N = 1..6) only four land within 15% of 3.56 M, all
within 1%, and all have N = 3 and a last group of 1024 filters, the top width of the Darknet
reference model. Of those four, this one doubles at every step from the stem on (64 -> 128) and
needs three pools, so its widest group runs at 4x4 on CIFAR-10; the five-group plans would run it
at 2x2.

The head is Darknet's: a 1x1 convolution to the classes, then the global average (the same
parameters as a Dense layer after pooling, hence "instead of fully connected layers").
PReLU is per channel (``shared_axes=[1, 2]``), and no layer before a BN has a bias, so every
separable layer folds into one int8 depthwise + pointwise pair at export.
"""
from __future__ import annotations

from edgecnn.models import blocks
from edgecnn.models.registry import PaperClaim, PaperFigure, register_model

_STEM_FILTERS = 64
_GROUP_FILTERS = (128, 256, 512, 1024)
_LAYERS_PER_GROUP = 3
_DROPOUT = 0.5
_GHOSH = "Ghosh 2017 (arXiv 1701.02291), speed on a low-power CPU"


def _sep_bn_prelu(x, filters: int, name: str):
    """SeparableConv2D 3x3 (no bias) -> BN -> per-channel PReLU, named ``{name}_sepconv|_bn|_prelu``."""
    k = blocks.keras().layers
    x = k.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv")(x)
    x = k.BatchNormalization(name=f"{name}_bn")(x)
    return blocks.activation("prelu", f"{name}_prelu", shared_axes=(1, 2))(x)


def _gen_quicknet(variant: str, *, input_shape, num_classes, classifier_activation, width_multiplier):
    wm = blocks.check_multiplier(width_multiplier, arg="width_multiplier", model=variant)
    shape = blocks.check_input_shape(input_shape, min_size=5, model=variant)  # the 5x5 valid stem
    num_classes = blocks.check_num_classes(num_classes, variant)
    keras = blocks.keras()
    k = keras.layers

    inputs = k.Input(shape=shape, name="input")
    x = blocks.conv_bn_act(inputs, blocks.make_divisible(_STEM_FILTERS * wm), 5, padding="valid",
                           act="prelu", name="stem")
    for g, filters in enumerate(_GROUP_FILTERS, start=1):
        if g > 1:
            x = k.MaxPooling2D(2, strides=2, padding="same", name=f"group_{g - 1}_pool")(x)
        for i in range(1, _LAYERS_PER_GROUP + 1):
            x = _sep_bn_prelu(x, blocks.make_divisible(filters * wm), name=f"group_{g}_layer_{i}")
    x = k.Dropout(_DROPOUT, name="head_dropout")(x)
    x = k.Conv2D(num_classes, 1, name="head_conv")(x)
    x = k.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = k.Activation(classifier_activation or "linear", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{variant}_{blocks.multiplier_tag(wm)}_{shape[0]}x{shape[1]}")


@register_model(paper=[
    PaperFigure("params", 3.56e6, 0.05, source="Ghosh 2017 (arXiv 1701.02291), CIFAR-10 model size"),
    PaperFigure("fp32_bytes", 14.24e6, 0.05, source="Ghosh 2017 (arXiv 1701.02291), 14.24 MB at 32 bits"),
], claims=[
    PaperClaim("fps", "quicknet", "fp32", paper=15, paper_note="15 FPS, low-power CPU", source=_GHOSH),
    PaperClaim("fps", "quicknet", "int8", paper=60, paper_note="60 FPS hoped for in 8 bits", source=_GHOSH),
    PaperClaim("fps_ratio", "quicknet", "int8", relative_to="quicknet", relative_precision="fp32", paper=60 / 15,
               paper_note="60 / 15 FPS", target=(">=", 2.5), source=_GHOSH),
])
def quicknet(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", width_multiplier=1.0):
    """QuickNet: Darknet-style separable convolutions with PReLU, 3.56 M params on CIFAR-10.

    Args:
        input_shape: (height, width, channels); height and width at least 5 (the 5x5 valid stem).
        num_classes: number of output classes (>= 2).
        classifier_activation: activation of the output layer; None for logits.
        width_multiplier: scales every layer's filters (rounded to multiples of 8), in (0, 4];
            0.125 gives a tiny QuickNet for tests.

    Returns:
        A tf_keras Model mapping images to class probabilities.

    Reference: Ghosh, "QuickNet: Maximizing Efficiency and Efficacy in Deep Architectures",
    arXiv 1701.02291, 2017 (CIFAR-10 model size: 3.56 M params, 14.24 MB).
    """
    return _gen_quicknet("quicknet", input_shape=input_shape, num_classes=num_classes,
                         classifier_activation=classifier_activation, width_multiplier=width_multiplier)
