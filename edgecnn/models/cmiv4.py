"""Compact Inception-V4 with drawn activations: "Effective, Fast, and Memory-Efficient Compressed
Multi-function Convolutional Neural Networks with Compact Inception-V4" (NeurIPS 2018 workshop
CDNNRIA; openreview rJgfBOlKiQ), on Inception-V4 (Szegedy et al., "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", AAAI 2017, Figures 3-9).

CMIV4 keeps Inception-V4's stem, Reduction-A and Reduction-B, and uses k Inception-A, m
Inception-B and n Inception-C blocks (k in 1..4, m in 1..7, n in 1..3, k+m+n < 14; Inception-V4
is (4, 7, 3)). "Multi-function": the activation of every conv block (conv, BN, activation) is
drawn from {relu, sigmoid, tanh, elu}. The paper's model sizes, 129 / 190 / 252 / 323 MB for
CMIV4_1 (1, 2, 1), CMIV4_2 (2, 3, 2), CMIV4_3 (3, 4, 3) and MIV4 (4, 7, 3), are checked as
ratios to MIV4 (0.40 / 0.59 / 0.78), measured with the 4-class head of the paper's Alzheimer's
application, whose ratios they match within 0.3%. (The absolute MB are about twice the fp32
weights, 41.2 M parameters for MIV4: the authors' files evidently stored more than the weights,
e.g. an optimizer slot.)

The draw, and how it is recorded:

- the activation of a conv block depends only on ``(seed, block name)``
  (``random.Random(f"{seed}:{name}")``): the same seed gives the same network, and the blocks
  that two depths share get the same activation;
- ``cmiv4_activation_plan(k, m, n, seed=...)`` returns the plan (conv block name -> activation)
  without building anything; ``cmiv4(..., activations=plan)`` rebuilds exactly that network;
- in the model, each conv block's activation layer is named ``{block}_{activation}`` (names
  survive saving and loading), ``activation_plan_of(model)`` reads the plan back from them, the
  seed is in the model name (``cmiv4_k1_m2_n1_s0_299x299``), and the built model carries it as the
  attribute ``cmiv4_activation_plan`` (in memory only).

Default input 299x299x3 as in Inception-V4. The stem and the reductions use valid padding, so
the smallest input is 75x75 (8x8 before Reduction-B needs 3x3 after Reduction-A, back to 75 at
the input); the classifier pools globally, so any size from there works. Default num_classes
1000, Inception-V4's ImageNet head: the CMIV4 paper trains on two data sets of its own (four
Alzheimer's disease stages, a CIFAR-10 sample), so it fixes no single class count; pass
``num_classes=4`` or ``10`` for those.
"""
from __future__ import annotations

import random
from typing import Dict, List, Mapping, Tuple, Union

from edgecnn.errors import InvalidConfigError
from edgecnn.models.blocks import activation, check_input_shape, check_num_classes, classifier, keras
from edgecnn.models.registry import PaperClaim, PaperFigure, register_model

ACTIVATIONS = ("relu", "sigmoid", "tanh", "elu")
MIN_SIZE = 75
FULL = (4, 7, 3)  # Inception-V4 itself: MIV4 / REL

_PAPER = "CMIV4 paper (NeurIPS 2018 CDNNRIA), model sizes 129/190/252/323 MB -> ratios to MIV4"

# The conv blocks of each part, in build order: (suffix, filters, kernel[, strides, padding]).
# A suffix's first token is its branch (b0, b1, ...); pooling branches are added by the builders.
# Inception-V4 Figures 3-8 (stem, A, Reduction-A with k/l/m/n = 192/224/256/384, B, Reduction-B, C).
_V = "valid"


def _stem_plan() -> List[Tuple[str, int, tuple, int, str]]:
    return [("stem_1", 32, (3, 3), 2, _V), ("stem_2", 32, (3, 3), 1, _V), ("stem_3", 64, (3, 3), 1, "same"),
            ("stem_4b", 96, (3, 3), 2, _V),
            ("stem_5a_1", 64, (1, 1), 1, "same"), ("stem_5a_2", 96, (3, 3), 1, _V),
            ("stem_5b_1", 64, (1, 1), 1, "same"), ("stem_5b_2", 64, (1, 7), 1, "same"),
            ("stem_5b_3", 64, (7, 1), 1, "same"), ("stem_5b_4", 96, (3, 3), 1, _V),
            ("stem_6a", 192, (3, 3), 2, _V)]


def _inception_a_plan():
    return [("b0", 96, (1, 1)),
            ("b1_1", 64, (1, 1)), ("b1_2", 96, (3, 3)),
            ("b2_1", 64, (1, 1)), ("b2_2", 96, (3, 3)), ("b2_3", 96, (3, 3)),
            ("b3", 96, (1, 1))]


def _reduction_a_plan():
    # k, l, m, n = 192, 224, 256, 384 (Table 1, Inception-V4 row)
    return [("b0", 384, (3, 3), 2, _V),
            ("b1_1", 192, (1, 1), 1, "same"), ("b1_2", 224, (3, 3), 1, "same"), ("b1_3", 256, (3, 3), 2, _V)]


def _inception_b_plan():
    return [("b0", 384, (1, 1)),
            ("b1_1", 192, (1, 1)), ("b1_2", 224, (1, 7)), ("b1_3", 256, (7, 1)),
            ("b2_1", 192, (1, 1)), ("b2_2", 192, (7, 1)), ("b2_3", 224, (1, 7)), ("b2_4", 224, (7, 1)),
            ("b2_5", 256, (1, 7)),
            ("b3", 128, (1, 1))]


def _reduction_b_plan():
    return [("b0_1", 192, (1, 1), 1, "same"), ("b0_2", 192, (3, 3), 2, _V),
            ("b1_1", 256, (1, 1), 1, "same"), ("b1_2", 256, (1, 7), 1, "same"), ("b1_3", 320, (7, 1), 1, "same"),
            ("b1_4", 320, (3, 3), 2, _V)]


def _inception_c_plan():
    return [("b0", 256, (1, 1)),
            ("b1_1", 384, (1, 1)), ("b1_2a", 256, (1, 3)), ("b1_2b", 256, (3, 1)),
            ("b2_1", 384, (1, 1)), ("b2_2", 448, (3, 1)), ("b2_3", 512, (1, 3)),
            ("b2_4a", 256, (1, 3)), ("b2_4b", 256, (3, 1)),
            ("b3", 256, (1, 1))]


def _conv_block_names(k: int, m: int, n: int) -> List[str]:
    """Every conv block of the network, in build order: the keys of an activation plan."""
    names = [c[0] for c in _stem_plan()]
    names += [f"mixed_a{i}_{c[0]}" for i in range(1, k + 1) for c in _inception_a_plan()]
    names += [f"reduction_a_{c[0]}" for c in _reduction_a_plan()]
    names += [f"mixed_b{i}_{c[0]}" for i in range(1, m + 1) for c in _inception_b_plan()]
    names += [f"reduction_b_{c[0]}" for c in _reduction_b_plan()]
    names += [f"mixed_c{i}_{c[0]}" for i in range(1, n + 1) for c in _inception_c_plan()]
    return names


def _check_kmn(k, m, n, model: str, *, allow_full: bool = False) -> Tuple[int, int, int]:
    """The paper's compression rule; ``allow_full`` also admits Inception-V4's own (4, 7, 3)."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (k, m, n))
    if ok and allow_full and (k, m, n) == FULL:
        return k, m, n
    if not (ok and 1 <= k <= 4 and 1 <= m <= 7 and 1 <= n <= 3 and k + m + n < 14):
        hint = " For the full (4, 7, 3) network use miv4 or rel." if ok and (k, m, n) == FULL else ""
        raise InvalidConfigError(
            f"{model}: need k in 1..4 Inception-A, m in 1..7 Inception-B and n in 1..3 Inception-C "
            f"blocks with k+m+n < 14. Received `k={k!r}, m={m!r}, n={n!r}`.{hint}")
    return k, m, n


def _check_seed(seed, model: str) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidConfigError(f"{model}: `seed` must be an integer >= 0. Received `seed={seed!r}`.")
    return seed


def cmiv4_activation_plan(k: int = 4, m: int = 7, n: int = 3, *, seed: int = 0) -> Dict[str, str]:
    """The drawn activation of every conv block (name -> one of relu/sigmoid/tanh/elu), in build order.

    A block's draw depends only on ``seed`` and its name, so the same seed always gives the same
    plan and the blocks two depths share get the same activation.
    """
    k, m, n = _check_kmn(k, m, n, "cmiv4_activation_plan", allow_full=True)
    seed = _check_seed(seed, "cmiv4_activation_plan")
    return {name: random.Random(f"{seed}:{name}").choice(ACTIVATIONS) for name in _conv_block_names(k, m, n)}


def activation_plan_of(model) -> Dict[str, str]:
    """Read the activation plan back from a built or loaded CMIV4 model's activation layer names."""
    plan = {}
    for layer in model.layers:
        base, _, act = layer.name.rpartition("_")
        if act in ACTIVATIONS and type(layer).__name__ == "Activation" and base:
            plan[base] = act
    return plan


def _resolve_plan(k, m, n, seed, activations, model: str) -> Tuple[Dict[str, str], str]:
    """(plan, tag for the model name) from ``activations``: None (draw), one name, or a full plan."""
    names = _conv_block_names(k, m, n)
    if activations is None:
        return cmiv4_activation_plan(k, m, n, seed=seed), f"s{seed}"
    if isinstance(activations, str):
        if activations not in ACTIVATIONS:
            raise InvalidConfigError(f"{model}: `activations` must be None, one of {', '.join(ACTIVATIONS)} "
                                     f"or a plan. Received `activations={activations!r}`.")
        return {name: activations for name in names}, activations
    if isinstance(activations, Mapping):
        missing = [x for x in names if x not in activations]
        unknown = [x for x in activations if x not in names]
        bad = {x: a for x, a in activations.items() if a not in ACTIVATIONS}
        if missing or unknown or bad:
            detail = (f"missing {missing[:3]}" if missing else f"unknown {unknown[:3]}" if unknown
                      else f"bad activations {dict(list(bad.items())[:3])}")
            raise InvalidConfigError(f"{model}: an `activations` plan must map every conv block of "
                                     f"k={k}, m={m}, n={n} to one of {', '.join(ACTIVATIONS)}; {detail}. "
                                     f"Use cmiv4_activation_plan() for the names.")
        return {name: activations[name] for name in names}, "custom"
    raise InvalidConfigError(f"{model}: `activations` must be None, one of {', '.join(ACTIVATIONS)} or a "
                             f"plan (dict). Received `activations={activations!r}`.")


def _conv(x, plan, name, filters, kernel, strides=1, padding="same"):
    """Conv, BN, drawn activation: ``{name}_conv``, ``{name}_bn``, ``{name}_{activation}``."""
    k = keras().layers
    act = plan[name]
    x = k.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    # TF 2.21's oneDNN CPU remapper fuses Conv2D + FusedBatchNorm + Tanh at inference and then
    # fails ("Fusion is not implemented: [FusedBatchNorm,Tanh]") in predict/evaluate; the
    # unfused batch norm is not matched. Same maths; TFLite folds it into the conv all the same.
    x = k.BatchNormalization(fused=False if act == "tanh" else None, name=f"{name}_bn")(x)
    return activation(act, f"{name}_{act}")(x)


def _stem(x, plan):
    k = keras().layers
    c = {row[0]: row for row in _stem_plan()}

    def conv(x, key):
        _, f, kern, s, pad = c[key]
        return _conv(x, plan, key, f, kern, s, pad)

    x = conv(x, "stem_1")
    x = conv(x, "stem_2")
    x = conv(x, "stem_3")
    x = k.Concatenate(name="stem_4")([k.MaxPooling2D(3, strides=2, padding=_V, name="stem_4a_pool")(x),
                                      conv(x, "stem_4b")])
    a = conv(conv(x, "stem_5a_1"), "stem_5a_2")
    b = conv(conv(conv(conv(x, "stem_5b_1"), "stem_5b_2"), "stem_5b_3"), "stem_5b_4")
    x = k.Concatenate(name="stem_5")([a, b])
    return k.Concatenate(name="stem_6")([conv(x, "stem_6a"),
                                         k.MaxPooling2D(3, strides=2, padding=_V, name="stem_6b_pool")(x)])


def _inception_block(x, plan, p: str, rows):
    """Generic Inception-A/B block: chains of convs per branch, the last branch after avg pooling."""
    k = keras().layers
    spec = {r[0]: r for r in rows}
    outs = []
    for branch in ("b0", "b1", "b2", "b3"):
        keys = [r[0] for r in rows if r[0].split("_")[0] == branch]
        y = x
        if branch == "b3":
            y = k.AveragePooling2D(3, strides=1, padding="same", name=f"{p}_b3_pool")(y)
        for key in keys:
            _, f, kern = spec[key]
            y = _conv(y, plan, f"{p}_{key}", f, kern)
        outs.append(y)
    return k.Concatenate(name=f"{p}_concat")(outs)


def _inception_c(x, plan, p: str):
    k = keras().layers
    spec = {r[0]: r for r in _inception_c_plan()}

    def conv(y, key):
        _, f, kern = spec[key]
        return _conv(y, plan, f"{p}_{key}", f, kern)

    b0 = conv(x, "b0")
    y = conv(x, "b1_1")
    b1 = k.Concatenate(name=f"{p}_b1_concat")([conv(y, "b1_2a"), conv(y, "b1_2b")])
    y = conv(conv(conv(x, "b2_1"), "b2_2"), "b2_3")
    b2 = k.Concatenate(name=f"{p}_b2_concat")([conv(y, "b2_4a"), conv(y, "b2_4b")])
    b3 = conv(k.AveragePooling2D(3, strides=1, padding="same", name=f"{p}_b3_pool")(x), "b3")
    return k.Concatenate(name=f"{p}_concat")([b0, b1, b2, b3])


def _reduction(x, plan, p: str, rows):
    k = keras().layers
    outs = []
    for branch in sorted({r[0].split("_")[0] for r in rows}):
        y = x
        for key, f, kern, s, pad in (r for r in rows if r[0].split("_")[0] == branch):
            y = _conv(y, plan, f"{p}_{key}", f, kern, s, pad)
        outs.append(y)
    outs.append(k.MaxPooling2D(3, strides=2, padding=_V, name=f"{p}_pool")(x))
    return k.Concatenate(name=f"{p}_concat")(outs)


def _gen_cmiv4(variant: str, *, k: int, m: int, n: int, seed: int = 0,
               activations: Union[None, str, Mapping[str, str]] = None,
               input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax",
               dropout: float = 0.2):
    """Stem, k x Inception-A, Reduction-A, m x Inception-B, Reduction-B, n x Inception-C, head."""
    k, m, n = _check_kmn(k, m, n, variant, allow_full=variant in ("miv4", "rel"))
    seed = _check_seed(seed, variant)
    shape = check_input_shape(input_shape, min_size=MIN_SIZE, model=variant)
    num_classes = check_num_classes(num_classes, variant)
    plan, tag = _resolve_plan(k, m, n, seed, activations, variant)
    keras_ = keras()
    layers = keras_.layers

    inputs = layers.Input(shape=shape, name="input")
    x = _stem(inputs, plan)
    for i in range(1, k + 1):
        x = _inception_block(x, plan, f"mixed_a{i}", _inception_a_plan())
    x = _reduction(x, plan, "reduction_a", _reduction_a_plan())
    for i in range(1, m + 1):
        x = _inception_block(x, plan, f"mixed_b{i}", _inception_b_plan())
    x = _reduction(x, plan, "reduction_b", _reduction_b_plan())
    for i in range(1, n + 1):
        x = _inception_c(x, plan, f"mixed_c{i}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, activation_name=classifier_activation, dropout=dropout)
    model = keras_.Model(inputs, outputs, name=f"cmiv4_k{k}_m{m}_n{n}_{tag}_{shape[0]}x{shape[1]}")
    model.cmiv4_activation_plan = dict(plan)
    return model


@register_model
def cmiv4(*, k: int = 1, m: int = 2, n: int = 1, seed: int = 0,
          activations: Union[None, str, Mapping[str, str]] = None,
          input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """Compressed multi-function Inception-V4 with k/m/n Inception-A/B/C blocks and drawn activations.

    Args:
        k: Inception-A blocks, 1..4.
        m: Inception-B blocks, 1..7.
        n: Inception-C blocks, 1..3 (and k+m+n < 14).
        seed: seed of the activation draw (same seed, same network).
        activations: None to draw by ``seed``; one of relu/sigmoid/tanh/elu for all conv blocks;
            or a full plan (conv block name -> activation), e.g. ``cmiv4_activation_plan(...)``.
        input_shape: (height, width, channels); at least 75x75 (the valid-padded stem).
        num_classes: number of classes.
        classifier_activation: activation of the last layer ("softmax", or None for logits).

    Reference: "Effective, Fast, and Memory-Efficient Compressed Multi-function Convolutional
        Neural Networks with Compact Inception-V4", NeurIPS 2018 CDNNRIA workshop; blocks from
        Szegedy et al., AAAI 2017, Figures 3-9.
    """
    return _gen_cmiv4("cmiv4", k=k, m=m, n=n, seed=seed, activations=activations, input_shape=input_shape,
                      num_classes=num_classes, classifier_activation=classifier_activation)


def _ratio(value: float, to: str) -> List[PaperFigure]:
    # Measured with the paper's 4-class head (Alzheimer's disease stages): its sizes are those of
    # 4-class models (ratios agree within 0.3%; a 1000-class head shifts them by up to 5%).
    return [PaperFigure("params", value, 0.10, source=_PAPER, relative_to=to, build_kwargs={"num_classes": 4})]


def _faster(name: str, to: str) -> List[PaperClaim]:
    # The paper claims the compact models are faster, with no figure: the ratio is shown, not
    # judged. Built at the smallest valid input with the paper's 4-class head, int8 only, to keep
    # the conversion of a 41 M-parameter network to about a minute of CPU.
    kw = {"input_shape": (MIN_SIZE, MIN_SIZE, 3), "num_classes": 4}
    return [PaperClaim("latency_ratio", name, "int8", relative_to=to, paper_note="faster (no figure)",
                       source="CMIV4 paper (NeurIPS 2018 CDNNRIA)", build_kwargs=kw)]


def _variant(name, kmn, activations, *, seed, input_shape, num_classes, classifier_activation):
    k, m, n = kmn
    return _gen_cmiv4(name, k=k, m=m, n=n, seed=seed, activations=activations, input_shape=input_shape,
                      num_classes=num_classes, classifier_activation=classifier_activation)


@register_model(paper=_ratio(129 / 323, "miv4"), claims=_faster("cmiv4_1", "miv4"))
def cmiv4_1(*, seed: int = 0, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """CMIV4_1: (k, m, n) = (1, 2, 1), drawn activations; 129 MB vs MIV4's 323 MB in the paper.

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), model-size comparison (CMIV4_1, 129 MB).
    """
    return _variant("cmiv4_1", (1, 2, 1), None, seed=seed, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model(paper=_ratio(190 / 323, "miv4"), claims=_faster("cmiv4_2", "miv4"))
def cmiv4_2(*, seed: int = 0, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """CMIV4_2: (k, m, n) = (2, 3, 2), drawn activations; 190 MB vs MIV4's 323 MB in the paper.

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), model-size comparison (CMIV4_2, 190 MB).
    """
    return _variant("cmiv4_2", (2, 3, 2), None, seed=seed, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model(paper=_ratio(252 / 323, "miv4"), claims=_faster("cmiv4_3", "miv4"))
def cmiv4_3(*, seed: int = 0, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """CMIV4_3: (k, m, n) = (3, 4, 3), drawn activations; 252 MB vs MIV4's 323 MB in the paper.

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), model-size comparison (CMIV4_3, 252 MB).
    """
    return _variant("cmiv4_3", (3, 4, 3), None, seed=seed, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model
def miv4(*, seed: int = 0, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """MIV4: full-depth Inception-V4 (4, 7, 3) with drawn activations (323 MB in the paper).

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), MIV4; Szegedy et al., AAAI 2017, Figure 9.
    """
    return _variant("miv4", (4, 7, 3), None, seed=seed, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model(paper=_ratio(129 / 323, "rel"), claims=_faster("rel1", "rel"))
def rel1(*, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """REL1: CMIV4_1's (1, 2, 1) blocks with relu everywhere (the single-function baseline).

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), single-function (relu) comparison models.
    """
    return _variant("rel1", (1, 2, 1), "relu", seed=0, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model(paper=_ratio(190 / 323, "rel"), claims=_faster("rel2", "rel"))
def rel2(*, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """REL2: CMIV4_2's (2, 3, 2) blocks with relu everywhere.

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), single-function (relu) comparison models.
    """
    return _variant("rel2", (2, 3, 2), "relu", seed=0, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model(paper=_ratio(252 / 323, "rel"), claims=_faster("rel3", "rel"))
def rel3(*, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """REL3: CMIV4_3's (3, 4, 3) blocks with relu everywhere.

    Args: see ``cmiv4``.

    Reference: CMIV4 paper (NeurIPS 2018 CDNNRIA), single-function (relu) comparison models.
    """
    return _variant("rel3", (3, 4, 3), "relu", seed=0, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)


@register_model
def rel(*, input_shape=(299, 299, 3), num_classes: int = 1000, classifier_activation="softmax"):
    """REL: Inception-V4 itself, (4, 7, 3) blocks with relu everywhere (Szegedy et al. 2017).

    Args: see ``cmiv4``.

    Reference: Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
        Connections on Learning", AAAI 2017, Figure 9; CMIV4 paper's relu baseline.
    """
    return _variant("rel", (4, 7, 3), "relu", seed=0, input_shape=input_shape, num_classes=num_classes,
                    classifier_activation=classifier_activation)
