"""Mixed precision: the per-op choice from a cost table, the accuracy-aware fallback, and the
``_mixed.tflite`` artifact in the export contract. Cost tables are synthetic here so that the
choice is deterministic; the measured ones are reported in docs/mixed-precision.md, never asserted."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from edgecnn.errors import InvalidConfigError
from edgecnn.export.mixed import (INPUT_NODE, OUTPUT_NODE, choose_float_ops, plan_cost,
                                  validate_cost_table)


def _graph(edges, elements=None):
    """A graph in op_graph's form from {node: [input tensors]} (node names = their output tensors)."""
    nodes = {n: {"op": n.split("_")[0], "inputs": ins, "index": i} for i, (n, ins) in enumerate(edges.items())}
    consumers, producer = {}, {"in": INPUT_NODE}
    for n, ins in edges.items():
        producer[n] = n
        for t in ins:
            consumers.setdefault(t, []).append(n)
    last = list(edges)[-1]
    consumers.setdefault(last, []).append(OUTPUT_NODE)
    return {"nodes": nodes, "producer": producer, "consumers": consumers, "input": "in", "output": last,
            "elements": elements or {}, "scale": {}}


CHAIN = {"CONV_a": ["in"], "DW_b": ["CONV_a"], "CONV_c": ["DW_b"], "SOFTMAX_d": ["CONV_c"]}


def _costs(dw_int8, boundary):
    ops = {"CONV_a": (20, 8), "DW_b": (10, dw_int8), "CONV_c": (30, 12), "SOFTMAX_d": (3, 1)}
    return {"ops": {n: {"fp32_us": f, "int8_us": q} for n, (f, q) in ops.items()},
            "tensors": {t: {"quantize_us": boundary, "dequantize_us": boundary} for t in ("in", *CHAIN)}}


def test_depthwise_goes_float_only_when_the_cost_table_says_it_pays():
    g = _graph(CHAIN)
    # int8 depthwise 20 us vs fp32 10 us; leaving int8 around it costs a DEQUANTIZE + QUANTIZE
    assert choose_float_ops(g, _costs(dw_int8=20, boundary=2)) == ["DW_b"]       # saves 10, pays 4
    assert choose_float_ops(g, _costs(dw_int8=20, boundary=6)) == []             # saves 10, would pay 12
    assert choose_float_ops(g, _costs(dw_int8=8, boundary=0)) == []              # int8 is faster anyway


def _brute_force(g, costs):
    names = list(g["nodes"])
    best = min((plan_cost(g, costs, [n for n, f in zip(names, bits) if f]), bits)
               for bits in itertools.product((0, 1), repeat=len(names)))
    return best[0]


@pytest.mark.parametrize("seed", range(6))
def test_choice_is_the_cheapest_plan_with_fan_out_and_boundaries(seed):
    # A residual graph: one tensor feeds two consumers (paid once per direction, not per consumer).
    edges = {"CONV_a": ["in"], "CONV_b": ["CONV_a"], "DW_c": ["CONV_b"], "CONV_d": ["DW_c"],
             "ADD_e": ["CONV_a", "CONV_d"], "CONV_f": ["ADD_e"], "ADD_g": ["ADD_e", "CONV_f"], "FC_h": ["ADD_g"]}
    g = _graph(edges)
    rng = np.random.default_rng(seed)
    costs = {"ops": {n: {"fp32_us": float(rng.uniform(1, 30)), "int8_us": float(rng.uniform(1, 30))} for n in edges},
             "tensors": {t: {"quantize_us": float(rng.uniform(0, 8)), "dequantize_us": float(rng.uniform(0, 8))}
                         for t in ["in", *edges]}}
    chosen = choose_float_ops(g, costs)
    assert plan_cost(g, costs, chosen) == pytest.approx(_brute_force(g, costs), rel=1e-9, abs=1e-9)


def test_forced_float_ops_stay_float():
    g = _graph(CHAIN)
    assert "CONV_c" in choose_float_ops(g, _costs(dw_int8=8, boundary=0), forced_float=["CONV_c"])


@pytest.mark.parametrize("bad", [{"ops": {"x": {"fp32_us": -1}}}, {"ops": {"x": {"int8_us": float("nan")}}},
                                 {"tensors": {"t": {"quantize_us": "1"}}}, {"ops": []}, []])
def test_cost_table_from_a_file_is_checked(bad):
    with pytest.raises(InvalidConfigError):
        validate_cost_table(bad)


# ----------------------------------------------------------------------------- real models
def _dw_model(seed=0):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_b")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu", name="conv_c")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    return keras.Model(inp, out, name="dwnet")


def _node_of(q, layer):
    return next(n for n in q.graph["nodes"] if f"/{layer}/" in n)


def _float_op_types(tflite):
    """{op name: input dtype} of the non-boundary ops, as the interpreter sees them."""
    from edgecnn.measure.runtime import load

    r = load(tflite, backend="litert-noxnn")
    dt = {d["index"]: np.dtype(d["dtype"]).name for d in r.tensor_details()}
    return [(o["op_name"], dt[o["inputs"][0]]) for o in r.ops() if o["op_name"] not in ("QUANTIZE", "DEQUANTIZE")]


def test_mixed_model_keeps_the_depthwise_float_when_costs_say_so_and_runs_on_litert():
    from edgecnn.export.mixed import Quantizer
    from edgecnn.export.mixed_export import build_mixed
    from edgecnn.measure.runtime import load

    model = _dw_model()
    x = np.random.default_rng(0).normal(size=(24, 16, 16, 3)).astype(np.float32)
    q = Quantizer(model, x[:16])
    dw = _node_of(q, "dw_b")
    slow_dw = {"ops": {n: {"fp32_us": 10.0, "int8_us": 5.0} for n in q.graph["nodes"]},
               "tensors": {t: {"quantize_us": 0.5, "dequantize_us": 0.5} for t in q.graph["consumers"]}}
    slow_dw["ops"][dw] = {"fp32_us": 10.0, "int8_us": 30.0}
    data, report = build_mixed(model, x[:16], held_out=x[16:], cost_table=slow_dw)
    assert [f["node"] for f in report["float_ops"]] == [dw]
    assert report["float_ops"][0] == {"op": "DEPTHWISE_CONV_2D", "node": dw, "why": "speed"}
    ops = _float_op_types(data)
    assert ("DEPTHWISE_CONV_2D", "float32") in ops
    assert ("CONV_2D", "int8") in ops and ("CONV_2D", "float32") not in ops
    # the same op table with a fast int8 depthwise: everything int8
    fast = json.loads(json.dumps(slow_dw))
    fast["ops"][dw] = {"fp32_us": 10.0, "int8_us": 5.0}
    data2, report2 = build_mixed(model, x[:16], held_out=x[16:], cost_table=fast)
    assert report2["float_ops"] == [] and ("DEPTHWISE_CONV_2D", "float32") not in _float_op_types(data2)
    # both compute the float model's function on LiteRT (XNNPACK)
    ref = model.predict(x[16:], verbose=0)
    for d in (data, data2):
        assert np.max(np.abs(load(d).run(x[16:]) - ref)) < 0.05
    # every quantized op has its error on calibration and held-out images
    int8_layers = [l for l in report["layers"] if l["precision"] == "int8" and l["op"] != "SOFTMAX"]
    assert int8_layers and all(l["calibration"] and l["held_out"] for l in int8_layers)


def _outlier_model():
    """A model that quantizes badly: conv_a's channel 0 carries a huge constant (bias 2000), so one
    int8 scale for conv_a's output rounds every other channel to zero; conv_b ignores channel 0."""
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(8, 3, padding="same", name="conv_a")(inp)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(a)
    c = keras.layers.Conv2D(8, 1, activation="relu", name="conv_c")(b)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(c)
    out = keras.layers.Dense(5, activation="softmax", name="fc")(x)
    model = keras.Model(inp, out, name="outlier")
    w, bias = model.get_layer("conv_a").get_weights()
    bias[0] = 2000.0
    model.get_layer("conv_a").set_weights([w, bias])
    wb, bb = model.get_layer("conv_b").get_weights()
    wb[:, :, 0, :] = 0.0
    model.get_layer("conv_b").set_weights([wb, bb])
    return model


def test_accuracy_fallback_reverts_the_fewest_ops_within_budget():
    from edgecnn.export.mixed import Quantizer, top1
    from edgecnn.export.mixed_export import build_mixed

    model = _outlier_model()
    x = np.random.default_rng(2).normal(size=(264, 8, 8, 3)).astype(np.float32)
    cal, xv = x[:64], x[64:]
    yv = model.predict(xv, verbose=0).argmax(1)  # the float model scores 100% on its own labels
    q = Quantizer(model, cal)
    full = 100.0 * (1.0 - top1(q.full_int8, xv, yv))
    assert full > 1.0, f"the model should fail full int8 (drop {full:.1f} points)"
    flat = {"ops": {n: {"fp32_us": 10.0, "int8_us": 5.0} for n in q.graph["nodes"]}, "tensors": {}}
    data, report = build_mixed(model, cal, val=(xv, yv), held_out=xv[:16], max_drop=1.0, cost_table=flat)
    float_ops = [f["node"] for f in report["float_ops"]]
    assert float_ops and all(f["why"] == "accuracy" for f in report["float_ops"])
    drop = 100.0 * (1.0 - top1(data, xv, yv))
    assert drop <= 1.0
    assert report["accuracy_fallback"]["full_int8_top1"] == pytest.approx(1.0 - full / 100.0)
    # the fewest: handing any one of them back to int8 breaks the budget
    for n in float_ops:
        rest = [o for o in float_ops if o != n]
        assert 100.0 * (1.0 - top1(q.build(rest), xv, yv)) > 1.0, f"{n} was not needed"
    # the damaged tensor is conv_a's output: it must not pass through int8
    assert _node_of(q, "conv_a") in float_ops


def test_export_writes_a_verified_mixed_artifact_and_its_report(tmp_path):
    from edgecnn import contract
    from edgecnn.export import export_model
    from edgecnn.core.files import sha256_file
    from edgecnn.models.registry import create_model

    import tf_keras as keras

    from edgecnn.export.mixed import op_graph
    from edgecnn.export.tflite import convert_tflite

    keras.utils.set_random_seed(0)
    model = create_model("alexnet_tiny_dw", input_shape=(32, 32, 3), num_classes=10)
    # Nothing measured: the choice is free, so all int8, and a file that is full int8 again is not written.
    m = export_model(model, tmp_path / "same", int8=True, onnx=False, mixed=True, calibration=16,
                     cost_table={"ops": {}, "tensors": {}}, echo=lambda s: None)
    assert f"{model.name}_mixed.tflite" not in m["artifacts"]
    assert "int8 is already the best on the cost table's target" in m["skipped"]["tflite-mixed"]
    # A table (the target's costs) where the first depthwise conv is 10x cheaper in float: kept float.
    g = op_graph(convert_tflite(model, "int8", calibration=np.zeros((2, 32, 32, 3), np.float32)))
    dw = next(n for n, v in g["nodes"].items() if v["op"] == "DEPTHWISE_CONV_2D")
    table = {"ops": {n: {"fp32_us": 1.0 if n == dw else 50.0, "int8_us": 10.0} for n in g["nodes"]}, "tensors": {}}
    m = export_model(model, tmp_path / "exp", int8=True, onnx=False, mixed=True, calibration=16,
                     cost_table=table, echo=lambda s: None)
    name = f"{model.name}_mixed.tflite"
    a = m["artifacts"][name]
    assert a["precision"] == "mixed" and a["format"] == "tflite" and a["verified"] is True
    assert [f["op"] for f in a["float_ops"]] == ["DEPTHWISE_CONV_2D"] and a["float_ops"][0]["why"] == "speed"
    rep = tmp_path / "exp" / a["quant_report"]
    assert sha256_file(rep) == a["quant_report_sha256"]
    report = json.loads(rep.read_text())
    assert report["float_ops"] == a["float_ops"]
    assert report["accuracy_fallback"] == {"skipped": "untrained weights: top-1 is meaningless"}
    assert (tmp_path / "exp" / "quant_report.md").is_file()
    contract.read_manifest(tmp_path / "exp", check_files=True)  # the contract accepts it
    assert contract.artifact_name("x", "tflite", "mixed") == "x_mixed.tflite"
    with pytest.raises(ValueError):
        contract.artifact_name("x", "onnx", "mixed")


def test_mixed_needs_int8():
    from edgecnn.export import export_model

    with pytest.raises(InvalidConfigError, match="mixed needs int8"):
        export_model("alexnet_tiny_dw", int8=False, mixed=True)
    with pytest.raises(InvalidConfigError):
        export_model("alexnet_tiny_dw", int8=True, mixed=True, cost_table={"ops": {"a": {"fp32_us": -1}}})


def test_prelu_snapping_keeps_only_layers_within_the_budget():
    import tf_keras as keras

    from edgecnn.export import deploy
    from edgecnn.export.mixed_export import choose_prelu

    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="p_small")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="p_big")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, activation="softmax", name="fc")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(4)
    model.get_layer("p_small").set_weights([rng.uniform(-0.004, 0.004, (1, 1, 8)).astype(np.float32)])
    model.get_layer("p_big").set_weights([rng.uniform(-3.0, 3.0, (1, 1, 8)).astype(np.float32)])
    x = rng.normal(size=(300, 8, 8, 3)).astype(np.float32)
    y = model.predict(x[100:], verbose=0).argmax(1)
    exact, _ = deploy.prepare_for_deploy(model, check_inputs=x[:32])
    chosen, rep = choose_prelu(model, exact, x[:64], (x[100:], y), max_drop=2.0, rounds=1, runs=5)
    zero = rep["candidates"]["zero"]
    assert zero["layers"] == ["p_small"] and zero["float_val_drop"] <= 1.0  # p_big's alphas are kept
    assert rep["chosen"] in rep["candidates"] and "exact" in rep["candidates"]
    # the snapped copy changed the snapped layer only, and the original model is untouched
    snapped = deploy.snap_prelu(model, {"p_small": "zero"})
    assert not np.any(snapped.get_layer("p_small").get_weights()[0])
    np.testing.assert_array_equal(snapped.get_layer("p_big").get_weights()[0], model.get_layer("p_big").get_weights()[0])
    assert np.any(model.get_layer("p_small").get_weights()[0])


def test_the_contract_checks_a_mixed_entry_and_its_report(tmp_path):
    """Mixed entries are validated like the rest of an untrusted manifest; verify checks the report's sha256."""
    from edgecnn import contract
    from edgecnn.errors import ModelFileError
    from edgecnn.core.files import sha256_file

    (tmp_path / "quant_report.json").write_text("{}")
    entry = {"format": "tflite", "precision": "mixed", "sha256": "0" * 64, "bytes": 1, "output_kind": "probabilities",
             "verified": False, "verification": None,
             "inputs": [{"name": "x", "shape": [1, 32, 32, 3], "dtype": "float32", "scale": 0.0, "zero_point": 0}],
             "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32", "scale": 0.0, "zero_point": 0}],
             "float_ops": [{"op": "DEPTHWISE_CONV_2D", "node": "m/dw/depthwise", "why": "speed"}],
             "quant_report": "quant_report.json", "quant_report_sha256": sha256_file(tmp_path / "quant_report.json")}
    from edgecnn.data.preprocess import spec_for

    m = contract.new_manifest("m", trained=False, labels=["a", "b"], preprocessing=spec_for((32, 32, 3)).to_dict(), tools={})
    m["artifacts"]["m_mixed.tflite"] = entry
    contract.validate(m, where="t")
    assert contract.quant_report_path(tmp_path, m, "m_mixed.tflite") == tmp_path / "quant_report.json"
    (tmp_path / "quant_report.json").write_text('{"edited": true}')
    with pytest.raises(ModelFileError, match="sha256"):
        contract.quant_report_path(tmp_path, m, "m_mixed.tflite")
    for bad in ({"float_ops": [{"op": "ADD", "node": "n", "why": "because"}]}, {"float_ops": "all"},
                {"quant_report": "../x.json"}, {"quant_report_sha256": "abc"}):
        broken = json.loads(json.dumps(m))
        broken["artifacts"]["m_mixed.tflite"].update(bad)
        with pytest.raises(ModelFileError):
            contract.validate(broken, where="t")
    onnx = json.loads(json.dumps(m))
    onnx["artifacts"] = {"m_mixed.onnx": dict(entry, format="onnx")}
    with pytest.raises(ModelFileError, match="unknown format/precision"):
        contract.validate(onnx, where="t")


def test_cli_refuses_a_bad_cost_table_before_any_work(tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli import cli

    bad = tmp_path / "costs.json"
    bad.write_text(json.dumps({"ops": {"n": {"fp32_us": 1.0, "int8_us": -3.0}}}))
    out = tmp_path / "exp"
    res = CliRunner().invoke(cli, ["export", "alexnet_tiny_dw", "--int8", "--mixed", "--cost-table", str(bad),
                                   "--out", str(out), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 5, res.output
    assert "int8_us" in res.output and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())
    res = CliRunner().invoke(cli, ["export", "alexnet_tiny_dw", "--mixed", "--out", str(out)])
    assert res.exit_code == 5 and "--mixed needs --int8" in res.output


def test_each_op_of_a_separable_conv_is_costed_alone():
    """SeparableConv2D is one Keras layer but two TFLite ops: each one-op model holds one of them."""
    import tf_keras as keras

    from edgecnn.export.mixed import Quantizer
    from edgecnn.export.mixed_costs import _chain_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4))
    x = keras.layers.SeparableConv2D(16, 3, padding="same", name="sep")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="act")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    cal = np.random.default_rng(0).normal(size=(8, 8, 8, 4)).astype(np.float32)
    q = Quantizer(model, cal)
    parts = {}
    for node, info in q.graph["nodes"].items():
        if info["op"] in ("DEPTHWISE_CONV_2D", "CONV_2D"):
            sub, feed = _chain_model(model, node, info["op"])
            kinds = [type(l).__name__ for l in sub.layers if type(l).__name__ != "InputLayer"]
            parts[info["op"]] = (kinds, tuple(sub.inputs[0].shape[1:]), feed(cal)[0].shape)
    assert parts["DEPTHWISE_CONV_2D"] == (["DepthwiseConv2D"], (8, 8, 4), (8, 8, 8, 4))
    assert parts["CONV_2D"] == (["Conv2D", "BatchNormalization", "ReLU"], (8, 8, 4), (8, 8, 8, 4))


def test_cli_mixed_export_of_fresh_weights_is_quiet_and_verified(tmp_path):
    """The installed command in a fresh process: the converter's per-calibration prints (also the
    ones the QuantizationDebugger's option setter triggers) stay hidden, and the mixed artifact of
    an untrained 200-class model passes the untrained rule like the int8 one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from test_quiet import noise_lines

    exe = Path(sys.executable).with_name("edgecnn")
    env = dict(os.environ, EDGECNN_RUNS=str(tmp_path / "runs"))
    p = subprocess.run([str(exe), "export", "alexnet_tiny_dw", "--int8", "--mixed", "--no-onnx", "--calibration", "16"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert noise_lines(p.stdout + p.stderr) == [], p.stderr
    m = json.loads((tmp_path / "runs" / "alexnet_tiny_dw" / "untrained" / "export" / "manifest.json").read_text())
    if "alexnet_tiny_dw_mixed.tflite" in m["artifacts"]:  # kept only where it beats int8 here
        assert m["artifacts"]["alexnet_tiny_dw_mixed.tflite"]["verified"] is True
    else:
        assert "int8 is already the best on this machine" in m["skipped"]["tflite-mixed"]
        assert "alexnet_tiny_dw_mixed.tflite not written:" in p.stderr


# ----------------------------------------------------------------------------- emulated targets
def test_op_costs_on_an_emulated_pi4_are_predicted_for_every_op():
    """The same one-op models, counted on an emulated Pi 4 under qemu (real emulator, one process)."""
    from edgecnn.export.mixed import Quantizer, validate_cost_table
    from edgecnn.export.mixed_costs import measure_op_costs

    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inp)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_b")(y)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax", name="fc")(y), name="tiny")
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype(np.float32)
    q = Quantizer(model, x)
    table = measure_op_costs(model, q.graph, x, target="pi4")
    assert "emulated pi4" in table["target"] and "qemu" in table["method"] and table["board"] == "pi4"
    measured = {info["op"] for n, info in q.graph["nodes"].items() if n in table["ops"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= measured
    for node, c in table["ops"].items():
        assert c["fp32_us"] > 0 and c["int8_us"] > 0 and c["int8_float_io_us"] > 0, (node, c)
    assert set(table["ops"]) | set(table["unmeasured"]) == set(q.graph["nodes"])
    # the table is a valid --cost-table, and choosing from it works
    validate_cost_table(json.loads(json.dumps(table)))
    choose_float_ops(q.graph, table)


def test_cli_refuses_target_with_cost_table_in_one_line(tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli import cli

    table = tmp_path / "x.json"
    table.write_text(json.dumps({"ops": {}}))
    out = tmp_path / "exp"
    res = CliRunner().invoke(cli, ["export", "alexnet_tiny_dw", "--int8", "--mixed", "--target", "pi4",
                                   "--cost-table", str(table), "--out", str(out), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 5, res.output
    assert res.output.strip().splitlines() == ["Error: --target and --cost-table both give the per-op costs: "
                                               "give one of them."]
    assert not out.exists()
    res = CliRunner().invoke(cli, ["export", "alexnet_tiny_dw", "--int8", "--target", "pi9"])
    assert res.exit_code == 2 and "pi4" in res.output
