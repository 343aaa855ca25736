"""Family behaviour of quicknet, mobilenetv2 and alexnet_tiny: validation, knobs, layer names.

Paper figures and the output shape of every registered model are tests/test_zoo.py's job; these
build only tiny models.
"""
import re

import numpy as np
import pytest

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edgecnn.errors import InvalidConfigError
from edgecnn.models.registry import create_model


def _layers(model):
    return {layer.name: layer for layer in model.layers}


# ------------------------------------------------------------------ validation (nothing is built)
@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv2_a", "mobilenetv2_ref"])
@pytest.mark.parametrize("alpha", [0.0, -1, 4.5, "1", True])
def test_bad_alpha_is_quoted(name, alpha):
    with pytest.raises(InvalidConfigError, match=re.escape(f"Received `alpha={alpha!r}`.")) as exc:
        create_model(name, alpha=alpha)
    assert exc.value.exit_code == InvalidConfigError.exit_code
    assert "\n" not in exc.value.message


@pytest.mark.parametrize("wm", [0, -0.5, 5.0, None])
def test_bad_width_multiplier_is_quoted(wm):
    with pytest.raises(InvalidConfigError, match=re.escape(f"Received `width_multiplier={wm!r}`.")):
        create_model("quicknet", width_multiplier=wm)


@pytest.mark.parametrize("expansions", [(3, 3, 2), (3, 3, 2, 2, 1, 0), (3, 3, 2, 2, 1, 1.5), "332211", None])
def test_bad_expansions_are_quoted(expansions):
    with pytest.raises(InvalidConfigError, match=re.escape(f"Received `expansions={expansions!r}`.")):
        create_model("mobilenetv2", expansions=expansions)


@pytest.mark.parametrize("name,kwargs,quoted", [
    ("alexnet_tiny", {"input_shape": (8, 8, 3)}, "input_shape=(8, 8, 3)"),
    ("quicknet", {"input_shape": (32, 32)}, "input_shape=(32, 32)"),
    ("mobilenetv2_d", {"num_classes": 1}, "num_classes=1"),
    ("alexnet_tiny_dw", {"num_classes": "10"}, "num_classes='10'"),
])
def test_bad_shape_or_classes_are_quoted(name, kwargs, quoted):
    with pytest.raises(InvalidConfigError, match=re.escape(f"Received `{quoted}`.")):
        create_model(name, **kwargs)


# ------------------------------------------------------------------ tiny builds
def test_tiny_quicknet_keeps_the_int8_friendly_pattern():
    model = create_model("quicknet", width_multiplier=0.125)
    assert model.name == "quicknet_0.125_32x32"
    assert model.output_shape == (None, 10)
    layers = _layers(model)
    assert layers["stem_conv"].kernel_size == (5, 5) and layers["stem_conv"].padding == "valid"
    # 4 groups x 3 separable layers, each SeparableConv2D (no bias) -> BN -> per-channel PReLU.
    for g in range(1, 5):
        for i in range(1, 4):
            sep = layers[f"group_{g}_layer_{i}_sepconv"]
            assert type(sep).__name__ == "SeparableConv2D" and not sep.use_bias
            assert sep.filters == 16 * 2 ** (g - 1)
            assert type(layers[f"group_{g}_layer_{i}_bn"]).__name__ == "BatchNormalization"
            assert list(layers[f"group_{g}_layer_{i}_prelu"].shared_axes) == [1, 2]
    assert [n for n in layers if n.endswith("_pool") and n.startswith("group_")] == [
        "group_1_pool", "group_2_pool", "group_3_pool"]
    assert not any(type(l).__name__ == "Add" for l in model.layers)  # no residual connections
    assert layers["head_dropout"].rate == 0.5
    probs = model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32), training=False).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_mobilenetv2_custom_expansions_and_shortcuts():
    model = create_model("mobilenetv2", alpha=0.5, expansions=(1, 2, 1, 1, 1, 4), num_classes=3,
                         classifier_activation=None)
    assert model.name == "mobilenetv2_t121114_0.50_32x32"
    assert model.output_shape == (None, 3)
    layers = _layers(model)
    # The expansion conv is kept where t = 1 (block 0 and the c=24 stage here): the paper's sizes need it.
    assert layers["block_0_expand_conv"].filters == 16  # stem: 32 x 0.5
    assert layers["block_1_expand_conv"].filters == 8  # c=16 x 0.5 in, t = 1
    assert layers["block_3_expand_conv"].filters == 16 * 2  # c=24 x 0.5 -> 16 in, t = 2
    assert layers["block_16_expand_conv"].filters == 80 * 4  # c=160 x 0.5 in, t = 4
    # Stride-1 blocks that change channels get a 1x1 conv + BN projection; stride 2 has no shortcut.
    assert "block_0_shortcut_conv" in layers and "block_0_add" in layers
    assert "block_3_add" not in layers and "block_3_shortcut_conv" not in layers
    assert "block_4_add" in layers and "block_4_shortcut_conv" not in layers
    assert layers["block_3_depthwise"].strides == (2, 2)
    assert layers["head_conv"].filters == 1280  # the head does not shrink with alpha
    logits = model(np.zeros((1, 32, 32, 3), np.float32), training=False).numpy()
    assert logits.shape == (1, 3)


def test_mobilenetv2_default_is_structure_e():
    default, e = create_model("mobilenetv2", alpha=0.25), create_model("mobilenetv2_e", alpha=0.25)
    assert default.name == e.name == "mobilenetv2_t332211_0.25_32x32"
    assert default.count_params() == e.count_params()


def test_alexnet_tiny_variants_at_cifar_size():
    kw = dict(input_shape=(32, 32, 3), num_classes=10)
    plain, dw, res = (create_model(n, **kw) for n in ("alexnet_tiny", "alexnet_tiny_dw", "alexnet_tiny_dw_res"))
    assert res.name == "alexnet_tiny_dw_res_32x32_10"
    assert all(m.output_shape == (None, 10) for m in (plain, dw, res))
    assert dw.count_params() == res.count_params() < plain.count_params()
    assert not any(getattr(l, "use_bias", False) for l in plain.layers if type(l).__name__ == "Conv2D")
    assert {n for n in _layers(res) if n.endswith("_add")} == {"layer_4_add", "layer_5_add"}
    assert not any(n.endswith("_add") for n in _layers(dw))
    assert type(_layers(dw)["layer_1_conv"]).__name__ == "Conv2D"
    assert type(_layers(dw)["layer_2_sepconv"]).__name__ == "SeparableConv2D"
