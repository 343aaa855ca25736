"""MobileNetV2 on CIFAR with smaller channel expansions (Han & Kwon's structures A-G).

Paper: Han & Kwon, "A Study on Channel Expansion Structure for Reducing Model Size and Speeding
Up of Classifier Using Inverted Residual Block". Layout from their Table 2, expansion
structures and model sizes from their Table 3.

Table 2 (32x32 input): 3x3 conv, 32 filters, stride 1; inverted-residual bottlenecks
(c, n, s) = (16,1,1) (24,2,1) (32,3,2) (64,4,2) (96,3,1) (160,3,2) (320,1,1); 1x1 conv to 1280;
4x4 average pool; classifier. Table 3 varies the expansion t of the c = 24, 32, 64, 96, 160,
320 stages (the c = 16 block keeps t = 1):

    structure  t (24,32,64,96,160,320)  paper size   ours (params x 4 B)
    [1] ref    6,6,6,6,6,6              9179 kB      9328 kB  (+1.6%)
    A          6,6,3,3,3,3              5845 kB      5770 kB  (-1.3%)
    B          3,3,6,6,3,3              6727 kB      6652 kB  (-1.1%)
    C          3,3,3,3,6,6              8295 kB      8220 kB  (-0.9%)
    D          6,6,2,2,1,1              3804 kB      3730 kB  (-1.9%)
    E          3,3,2,2,1,1              3691 kB      3617 kB  (-2.0%)   <- ``mobilenetv2``
    F          6,6,6,2,2,2              5162 kB      5088 kB  (-1.4%)
    G          3,3,3,2,2,2              4672 kB      4597 kB  (-1.6%)

The paper's kB are 1000 bytes: with 1024-byte kB every structure but [1] would come out 3.2-4.3%
small. The sizes fit only an implementation that (a) keeps the 1x1 expansion conv even where
t = 1 (Keras' MobileNetV2 drops it in block 0) and (b) gives stride-1 blocks that change the
channel count a 1x1 conv + BN projection shortcut (as in the widely used CIFAR MobileNetV2
code); without them D and E come out 18% small. Both are done here. At 32x32 the feature map
before the head is 4x4, so the paper's 4x4 average pool is the global average pool used here
(which keeps the classifier's size fixed for other input sizes). ReLU6 throughout, linear
bottleneck outputs, no biases before batch norm.
"""
from __future__ import annotations

from typing import Sequence

from edgecnn.errors import InvalidConfigError
from edgecnn.models import blocks
from edgecnn.models.registry import PaperClaim, PaperFigure, register_model

_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
# (c, n, s) of Table 2; the first stage's expansion is fixed at 1, the rest come from Table 3.
_STAGES = ((16, 1, 1), (24, 2, 1), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))

_STRUCTURES = {
    "ref": (6, 6, 6, 6, 6, 6),
    "a": (6, 6, 3, 3, 3, 3),
    "b": (3, 3, 6, 6, 3, 3),
    "c": (3, 3, 3, 3, 6, 6),
    "d": (6, 6, 2, 2, 1, 1),
    "e": (3, 3, 2, 2, 1, 1),
    "f": (6, 6, 6, 2, 2, 2),
    "g": (3, 3, 3, 2, 2, 2),
}


def _check_expansions(expansions, model: str) -> tuple:
    ok = isinstance(expansions, (list, tuple)) and len(expansions) == 6 and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in expansions)
    if not ok:
        raise InvalidConfigError(
            f"{model}: `expansions` must be 6 integers >= 1, the t of the c=24,32,64,96,160,320 stages. "
            f"Received `expansions={expansions!r}`.")
    return tuple(expansions)


def _inverted_residual(x, *, filters: int, stride: int, expansion: int, name: str):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear project, with the shortcut the paper's sizes imply.

    Identity shortcut when the shape is kept, 1x1 conv + BN projection when only the channel
    count changes (stride 1), none when the block downsamples.
    """
    k = blocks.keras().layers
    in_channels = int(x.shape[-1])
    shortcut = x
    y = blocks.conv_bn_act(x, in_channels * expansion, 1, act="relu6", name=f"{name}_expand")
    y = k.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = k.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_depthwise_bn")(y)
    y = blocks.activation("relu6", f"{name}_depthwise_relu6")(y)
    y = blocks.conv_bn_act(y, filters, 1, act=None, name=f"{name}_project")
    if stride != 1:
        return y
    if in_channels != filters:
        shortcut = blocks.conv_bn_act(shortcut, filters, 1, act=None, name=f"{name}_shortcut")
    return k.Add(name=f"{name}_add")([shortcut, y])


def _gen_mobilenetv2(variant: str, expansions: Sequence[int], *, input_shape, num_classes,
                     classifier_activation, alpha):
    alpha = blocks.check_multiplier(alpha, arg="alpha", model=variant)
    expansions = _check_expansions(expansions, variant)
    shape = blocks.check_input_shape(input_shape, min_size=8, model=variant)
    num_classes = blocks.check_num_classes(num_classes, variant)
    keras = blocks.keras()
    k = keras.layers

    inputs = k.Input(shape=shape, name="input")
    x = blocks.conv_bn_act(inputs, blocks.make_divisible(_STEM_FILTERS * alpha), 3, act="relu6", name="stem")
    block_id = 0
    for (c, n, s), t in zip(_STAGES, (1,) + expansions):
        for i in range(n):
            x = _inverted_residual(x, filters=blocks.make_divisible(c * alpha), stride=s if i == 0 else 1,
                                   expansion=t, name=f"block_{block_id}")
            block_id += 1
    # As in Keras' MobileNetV2: the head only grows with alpha > 1, never shrinks.
    head = blocks.make_divisible(_HEAD_FILTERS * alpha) if alpha > 1.0 else _HEAD_FILTERS
    x = blocks.conv_bn_act(x, head, 1, act="relu6", name="head")
    x = k.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = blocks.classifier(x, num_classes, activation_name=classifier_activation)
    t_tag = "".join(map(str, expansions)) if max(expansions) < 10 else "-".join(map(str, expansions))
    return keras.Model(inputs, outputs, name=f"mobilenetv2_t{t_tag}_{blocks.multiplier_tag(alpha)}_{shape[0]}x{shape[1]}")


def _figure(structure: str, kb: float) -> list:
    label = "[1]" if structure == "ref" else structure.upper()
    return [PaperFigure("fp32_bytes", kb * 1000, 0.03,
                        source=f"Han & Kwon, Table 3, structure {label}: {kb:g} kB")]


# Structure E against [1]: Table 3's sizes, and the inference times the paper reports for them.
_HK = "Han & Kwon"
_E_VS_REF = [
    PaperClaim("latency_ratio", "mobilenetv2_e", "int8", relative_to="mobilenetv2_ref", paper=13 / 26,
               paper_note="13 / 26 ms", target=("<=", 0.60), source=_HK + ", inference time of E vs [1]"),
    PaperClaim("latency_ratio", "mobilenetv2_e", "fp32", relative_to="mobilenetv2_ref", paper=13 / 26,
               paper_note="13 / 26 ms", source=_HK + ", inference time of E vs [1]"),
    PaperClaim("size_ratio", "mobilenetv2_e", "fp32", relative_to="mobilenetv2_ref", paper=3691 / 9179,
               paper_note="3691 / 9179 kB", source=_HK + ", Table 3"),
    PaperClaim("size_ratio", "mobilenetv2_e", "int8", relative_to="mobilenetv2_ref", paper=3691 / 9179,
               paper_note="3691 / 9179 kB (fp32 in the paper)", source=_HK + ", Table 3"),
    PaperClaim("latency_ms", "mobilenetv2_e", "fp32", paper=13.0, paper_note="13 ms, the paper's device",
               source=_HK + ", inference time of E"),
]


_ARGS_DOC = """
    Args:
        input_shape: (height, width, channels), height and width at least 8; the paper uses 32x32x3.
        num_classes: number of output classes (>= 2).
        classifier_activation: activation of the output layer; None for logits.
        alpha: width multiplier in (0, 4]; scales every layer's output channels (rounded to
            multiples of 8); the 1280-channel head only grows, for alpha > 1.

    Returns:
        A tf_keras Model mapping images to class probabilities.
"""


@register_model(paper=_figure("ref", 9179), claims=[
    PaperClaim("latency_ms", "mobilenetv2_ref", "fp32", paper=26.0, paper_note="26 ms, the paper's device",
               source=_HK + ", inference time of [1]")])
def mobilenetv2_ref(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, the paper's baseline [1]: t = 6,6,6,6,6,6 (9179 kB)."""
    return _gen_mobilenetv2("mobilenetv2_ref", _STRUCTURES["ref"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("a", 5845))
def mobilenetv2_a(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure A: t = 6,6,3,3,3,3 (5845 kB)."""
    return _gen_mobilenetv2("mobilenetv2_a", _STRUCTURES["a"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("b", 6727))
def mobilenetv2_b(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure B: t = 3,3,6,6,3,3 (6727 kB)."""
    return _gen_mobilenetv2("mobilenetv2_b", _STRUCTURES["b"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("c", 8295))
def mobilenetv2_c(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure C: t = 3,3,3,3,6,6 (8295 kB)."""
    return _gen_mobilenetv2("mobilenetv2_c", _STRUCTURES["c"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("d", 3804))
def mobilenetv2_d(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure D: t = 6,6,2,2,1,1 (3804 kB)."""
    return _gen_mobilenetv2("mobilenetv2_d", _STRUCTURES["d"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("e", 3691), claims=_E_VS_REF)
def mobilenetv2_e(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure E: t = 3,3,2,2,1,1 (3691 kB), the paper's pick."""
    return _gen_mobilenetv2("mobilenetv2_e", _STRUCTURES["e"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("f", 5162))
def mobilenetv2_f(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure F: t = 6,6,6,2,2,2 (5162 kB)."""
    return _gen_mobilenetv2("mobilenetv2_f", _STRUCTURES["f"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


@register_model(paper=_figure("g", 4672))
def mobilenetv2_g(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0):
    """MobileNetV2 on CIFAR, structure G: t = 3,3,3,2,2,2 (4672 kB)."""
    return _gen_mobilenetv2("mobilenetv2_g", _STRUCTURES["g"], input_shape=input_shape,
                            num_classes=num_classes, classifier_activation=classifier_activation, alpha=alpha)


for _fn in (mobilenetv2_ref, mobilenetv2_a, mobilenetv2_b, mobilenetv2_c, mobilenetv2_d, mobilenetv2_e,
            mobilenetv2_f, mobilenetv2_g):
    _fn.__doc__ = (_fn.__doc__ or "") + _ARGS_DOC + """
    Reference: Han & Kwon, "A Study on Channel Expansion Structure for Reducing Model Size and
    Speeding Up of Classifier Using Inverted Residual Block", Tables 2 and 3.
    """
del _fn


@register_model(paper=_figure("e", 3691))
def mobilenetv2(*, input_shape=(32, 32, 3), num_classes=10, classifier_activation="softmax", alpha=1.0,
                expansions=_STRUCTURES["e"]):
    """MobileNetV2 on CIFAR with chosen channel expansions; the default is structure E (3691 kB).

    Args:
        input_shape: (height, width, channels), height and width at least 8; the paper uses 32x32x3.
        num_classes: number of output classes (>= 2).
        classifier_activation: activation of the output layer; None for logits.
        alpha: width multiplier in (0, 4]; scales every layer's output channels (rounded to
            multiples of 8); the 1280-channel head only grows, for alpha > 1.
        expansions: (t24, t32, t64, t96, t160, t320), the expansion of each stage after the
            first (whose t is 1). Table 3's structures: [1] (6,6,6,6,6,6), A (6,6,3,3,3,3),
            B (3,3,6,6,3,3), C (3,3,3,3,6,6), D (6,6,2,2,1,1), E (3,3,2,2,1,1),
            F (6,6,6,2,2,2), G (3,3,3,2,2,2).

    Returns:
        A tf_keras Model mapping images to class probabilities.

    Reference: Han & Kwon, "A Study on Channel Expansion Structure for Reducing Model Size and
    Speeding Up of Classifier Using Inverted Residual Block", Table 2 (layout), Table 3 (structure E).
    """
    return _gen_mobilenetv2("mobilenetv2", expansions, input_shape=input_shape, num_classes=num_classes,
                            classifier_activation=classifier_activation, alpha=alpha)
