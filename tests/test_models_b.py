"""Family behaviour of sepresnet and cmiv4 that the zoo-wide test does not see.

Inception models are built once, at the smallest input the stem allows (75x75), with a 4-class
head: a 299x299 MIV4 would cost the whole suite's time budget.
"""
import numpy as np
import pytest

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edgecnn.errors import InvalidConfigError
from edgecnn.models import cmiv4 as C
from edgecnn.models import sepresnet as S


# ---------------------------------------------------------------------------- cmiv4
@pytest.mark.parametrize("kmn", [(0, 1, 1), (5, 1, 1), (1, 0, 1), (1, 8, 1), (1, 1, 0), (1, 1, 4),
                                 (4, 7, 3), (1.0, 2, 1), (True, 2, 1)])
def test_cmiv4_rejects_bad_kmn_before_building(kmn):
    k, m, n = kmn
    with pytest.raises(InvalidConfigError) as e:
        C.cmiv4(k=k, m=m, n=n)
    assert f"k={k!r}, m={m!r}, n={n!r}" in e.value.message
    assert "k+m+n < 14" in e.value.message


def test_full_depth_only_through_miv4_and_rel():
    with pytest.raises(InvalidConfigError, match="miv4 or rel"):
        C.cmiv4(k=4, m=7, n=3)
    assert len(C.cmiv4_activation_plan(4, 7, 3, seed=0)) > len(C.cmiv4_activation_plan(3, 4, 3, seed=0))


def test_activation_plan_is_seeded_and_stable():
    a = C.cmiv4_activation_plan(1, 2, 1, seed=7)
    assert a == C.cmiv4_activation_plan(1, 2, 1, seed=7)
    assert a != C.cmiv4_activation_plan(1, 2, 1, seed=8)
    assert set(a.values()) <= set(C.ACTIVATIONS) and len(set(a.values())) == 4
    # A block's draw depends on (seed, name) only: the blocks that two depths share agree.
    big = C.cmiv4_activation_plan(3, 4, 3, seed=7)
    assert all(big[name] == act for name, act in a.items())
    # Pinned: a change here silently changes every trained CMIV4 of the same seed.
    assert [a[x] for x in ("stem_1", "stem_2", "mixed_a1_b0", "mixed_c1_b3")] == ["sigmoid", "relu", "relu", "tanh"]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_cmiv4_rejects_bad_seed(seed):
    with pytest.raises(InvalidConfigError, match="seed"):
        C.cmiv4(seed=seed)


@pytest.mark.parametrize("activations", ["swish", 3, {"stem_1": "relu"}])
def test_cmiv4_rejects_bad_activations(activations):
    with pytest.raises(InvalidConfigError, match="activations"):
        C.cmiv4(k=1, m=1, n=1, activations=activations, input_shape=(75, 75, 3))


@pytest.mark.parametrize("shape", [(74, 74, 3), (299, 60, 3)])
def test_cmiv4_refuses_inputs_below_the_stem_minimum(shape):
    with pytest.raises(InvalidConfigError, match="at least 75"):
        C.cmiv4(k=1, m=1, n=1, input_shape=shape)


@pytest.fixture(scope="module")
def small_cmiv4():
    model = C.cmiv4(k=1, m=1, n=1, seed=3, input_shape=(75, 75, 3), num_classes=4)
    yield model
    import tf_keras
    tf_keras.backend.clear_session()


def test_cmiv4_records_its_plan(small_cmiv4):
    plan = C.cmiv4_activation_plan(1, 1, 1, seed=3)
    assert small_cmiv4.name == "cmiv4_k1_m1_n1_s3_75x75"
    assert small_cmiv4.cmiv4_activation_plan == plan
    assert C.activation_plan_of(small_cmiv4) == plan  # from the layer names, which survive saving
    assert small_cmiv4.get_layer(f"stem_1_{plan['stem_1']}") is not None


def test_cmiv4_runs_at_smallest_input(small_cmiv4):
    # A seeded draw that has tanh convs: they used to crash predict() on TF's oneDNN CPU path.
    assert "tanh" in small_cmiv4.cmiv4_activation_plan.values()
    y = small_cmiv4.predict(np.random.default_rng(0).random((1, 75, 75, 3), dtype=np.float32), verbose=0)
    assert y.shape == (1, 4) and np.allclose(y.sum(), 1.0, atol=1e-5)


def test_cmiv4_uniform_and_explicit_plans():
    plan = {name: "relu" for name in C.cmiv4_activation_plan(1, 1, 1)}
    plan["stem_1"] = "elu"
    model = C.cmiv4(k=1, m=1, n=1, activations=plan, input_shape=(75, 75, 3), num_classes=2)
    assert C.activation_plan_of(model) == plan and model.name.endswith("_custom_75x75")
    import tf_keras
    tf_keras.backend.clear_session()


# ---------------------------------------------------------------------------- sepresnet
@pytest.mark.parametrize("conv_type,layer_kinds", [
    ("standard", {"Conv2D"}),
    ("kernel_composing", {"Conv2D"}),
    ("separable", {"Conv2D", "DepthwiseConv2D"}),
    ("separable_nl", {"Conv2D", "DepthwiseConv2D"}),
])
def test_sepresnet_conv_types(conv_type, layer_kinds):
    model = S.sepresnet_cifar(conv_type=conv_type, num_classes=3)
    assert model.output_shape == (None, 3) and model.name == f"sepresnet_cifar_{conv_type}_24x24"
    block = [l for l in model.layers if l.name.startswith("stage2_block1_1")]
    assert {type(l).__name__ for l in block if "Conv" in type(l).__name__} == layer_kinds
    if conv_type == "kernel_composing":
        assert [l.kernel_size for l in block if type(l).__name__ == "Conv2D"] == [(1, 3), (3, 1)]
    if conv_type == "separable_nl":
        assert model.get_layer("stage2_block1_1_dw_relu") is not None


def test_sepresnet_rejects_unknown_conv_type():
    with pytest.raises(InvalidConfigError, match=r"conv_type='depthwise'"):
        S.sepresnet_cifar(conv_type="depthwise")


@pytest.mark.parametrize("builder,shape", [(S.sepresnet_cifar, (4, 4, 3)), (S.resnet20, (32, 32, 2)),
                                           (S.sepresnet34, (16, 16, 3))])
def test_sepresnet_refuses_bad_inputs(builder, shape):
    with pytest.raises(InvalidConfigError, match=r"input_shape=\("):
        builder(input_shape=shape)


def test_option_a_shortcut_is_parameter_free_and_pads_zeros():
    import tf_keras

    model = S.resnet20()
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    pad = [l for l in model.layers if "shortcut" in l.name]
    assert pad and sum(l.count_params() for l in pad) == 0
    probe = tf_keras.Model(model.input, model.get_layer("stage2_block1_shortcut_pad_to_hw").output)
    before = tf_keras.Model(model.input, model.get_layer("stage1_block3_out_relu").output)
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    out, src = probe.predict(x, verbose=0), before.predict(x, verbose=0)
    assert out.shape == (1, 16, 16, 32)
    np.testing.assert_allclose(out[..., :16], src[:, ::2, ::2, :], rtol=1e-6)
    assert not out[..., 16:].any()
    tf_keras.backend.clear_session()
