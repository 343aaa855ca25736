"""Every registered model: builds, has the right output shape, runs a batch, matches the paper
figures its builder claims (within the tolerance stated next to the builder), and its layer summary
matches the snapshot in tests/snapshots/<model>.txt.

After an intended change to a builder, rewrite the snapshots and review their diff:

    EDGECNN_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_zoo.py -k builds
"""
import difflib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import InvalidConfigError, UnknownModelError
from edgecnn.models.registry import create_model, get_entry, list_models
from edgecnn.models.zoo_report import TABLE, measure, paper_rows, stats_of, table_keys

EXPECTED = {
    "quicknet", "mobilenetv2", "mobilenetv2_ref", "mobilenetv2_a", "mobilenetv2_b", "mobilenetv2_c",
    "mobilenetv2_d", "mobilenetv2_e", "mobilenetv2_f", "mobilenetv2_g", "sepresnet_cifar", "resnet20",
    "sepresnet34", "cmiv4", "cmiv4_1", "cmiv4_2", "cmiv4_3", "miv4", "rel1", "rel2", "rel3", "rel",
    "alexnet_tiny", "alexnet_tiny_dw", "alexnet_tiny_dw_res",
}
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("EDGECNN_UPDATE_SNAPSHOTS") == "1"


def layer_summary(model) -> str:
    """One line per layer: name, class, output shape, parameter count; then the model's totals."""
    lines = [f"# {model.name}: input {tuple(model.input_shape)}",
             f"# {'layer':<40} {'class':<28} {'output shape':<24} params"]
    for layer in model.layers:
        try:
            shape = layer.output_shape
        except AttributeError:  # a layer applied more than once has no single output shape
            shape = "multiple"
        lines.append(f"{layer.name:<42} {type(layer).__name__:<28} {str(shape):<24} {layer.count_params()}")
    lines.append(f"# total params {model.count_params()}, layers {len(model.layers)}")
    return "\n".join(lines) + "\n"


def check_snapshot(name: str, summary: str):
    """Compare with tests/snapshots/<name>.txt (EDGECNN_UPDATE_SNAPSHOTS=1 writes it instead)."""
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE_SNAPSHOTS:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(summary)
        return
    assert path.is_file(), f"no snapshot {path}: run with EDGECNN_UPDATE_SNAPSHOTS=1 and review it"
    saved = path.read_text()
    if summary != saved:
        diff = "".join(difflib.unified_diff(saved.splitlines(True), summary.splitlines(True),
                                            f"snapshots/{name}.txt", f"{name} as built now"))
        pytest.fail(f"{name}: layer summary differs from its snapshot (EDGECNN_UPDATE_SNAPSHOTS=1 rewrites "
                    f"it, if the change is intended):\n{diff}", pytrace=False)


def test_every_variant_is_registered():
    assert EXPECTED <= set(list_models())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_builds_runs_and_matches_paper(name):
    import tf_keras

    model = create_model(name)
    n_classes = model.output_shape[-1]
    assert model.output_shape == (None, n_classes)
    assert get_entry(name).builder.__doc__ and "Reference" in get_entry(name).builder.__doc__
    check_snapshot(name, layer_summary(model))
    x = np.random.default_rng(0).normal(size=(1,) + tuple(model.input_shape[1:])).astype(np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (1, n_classes)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-4)  # softmax probabilities
    # `edgecnn models` prints the committed table: it must say what this build says.
    assert measure(name) == stats_of(model), f"{name}: {TABLE.name} is stale; rewrite it: python -m edgecnn.models.zoo_report"
    tf_keras.backend.clear_session()
    for row in paper_rows(name):
        assert row["ok"], f"{name} {row['figure']}: ours {row['ours']:.4g} vs paper {row['paper']:.4g} (±{row['rtol']:.0%})"


def test_zoo_table_holds_exactly_the_builds_the_models_command_needs():
    rows = json.loads(TABLE.read_text())["rows"]
    assert sorted((r["name"], json.dumps(r["kwargs"], sort_keys=True)) for r in rows) == \
        [(n, json.dumps(kw, sort_keys=True)) for n, kw in table_keys()]


@pytest.mark.parametrize("name,kwargs", [(n, kw) for n, kw in table_keys() if kw], ids=lambda v: str(v))
def test_zoo_table_rows_built_with_paper_arguments_match_a_build(name, kwargs):
    # The default builds are checked in test_model_builds_runs_and_matches_paper.
    assert measure(name, **kwargs) == measure(name, exact=True, **kwargs), \
        f"{name} {kwargs}: {TABLE.name} is stale; rewrite it: python -m edgecnn.models.zoo_report"


def test_cli_models_reads_the_table_and_builds_named_models(monkeypatch):
    import edgecnn.models.zoo_report as zr

    built = []
    monkeypatch.setattr(zr, "_build", lambda name, kw: built.append(name) or zr._table()[(name, kw)])
    res = CliRunner().invoke(cli, ["models"])
    assert res.exit_code == 0, res.output
    assert built == [] and len(res.output.strip().splitlines()) == 1 + len(list_models())
    res = CliRunner().invoke(cli, ["models", "quicknet"])
    assert res.exit_code == 0 and built == ["quicknet"] and "3,568,970" in res.output


def test_input_shape_and_num_classes_are_honoured():
    m = create_model("alexnet_tiny_dw", input_shape=(32, 32, 3), num_classes=10)
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 10)


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="quicknet"):
        create_model("quiknet")


@pytest.mark.parametrize("name,kwargs", [
    ("quicknet", {"num_classes": 1}),
    ("quicknet", {"input_shape": (32, 32)}),
    ("mobilenetv2", {"alpha": -1}),
    ("cmiv4", {"k": 5, "m": 7, "n": 3}),
])
def test_bad_arguments_raise_config_errors(name, kwargs):
    with pytest.raises(InvalidConfigError):
        create_model(name, **kwargs)


def test_cli_unknown_model_is_one_line_error():
    res = CliRunner().invoke(cli, ["models", "quiknet"])
    assert res.exit_code == UnknownModelError.exit_code
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert "quicknet" in res.output


def test_cli_models_paper_json_is_parseable():
    res = CliRunner().invoke(cli, ["models", "--paper", "--json", "alexnet_tiny", "alexnet_tiny_dw"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == ["alexnet_tiny", "alexnet_tiny_dw"]
    assert rows[0]["params"] == 415656 and rows[0]["paper"]["params"] == 415656
    assert rows[0]["fp32_bytes"] == 4 * rows[0]["params"] and rows[0]["macs"] > 0


def test_analysis_counts_a_known_network():
    import tf_keras as k
    from edgecnn.models.analysis import analyze

    inp = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c")(inp)          # 8*8*4*27 MACs
    x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="d")(x)     # 8*8*4*9
    x = k.layers.GlobalAveragePooling2D(name="g")(x)
    out = k.layers.Dense(2, name="f")(x)                                              # 4*2
    st = analyze(k.Model(inp, out))
    assert st.params == 4 * 27 + 4 * 9 + 4 * 2 + 2
    assert st.macs == 8 * 8 * 4 * 27 + 8 * 8 * 4 * 9 + 8
    # peak: conv output (8*8*4) and depthwise output alive together, float32
    assert st.peak_activation_bytes == 4 * (2 * 8 * 8 * 4)
