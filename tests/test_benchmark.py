"""The benchmark harness: statistics, the comparison table and plots, device profiles, bad inputs,
and a TFLite benchmark that never imports TensorFlow (it must run on a Raspberry Pi)."""
import csv
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.measure.boards import get_board
from edgecnn.measure.profiles import plan_device
from edgecnn.benchmark.report import format_table, merge_results, pareto_front
from edgecnn.measure.stats import fps, summarize
from edgecnn.errors import InvalidConfigError

EDGECNN = [sys.executable, "-m", "edgecnn.cli"]
ON_ARM = platform.machine().lower() in ("aarch64", "arm64", "armv7l")


def _onnx_model(path, h=32):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, 32, 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.1).astype(np.float32), "w")
    fw = numpy_helper.from_array((rng.standard_normal((8, 10)) * 0.1).astype(np.float32), "fw")
    nodes = [helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
             helper.make_node("Conv", ["nchw", "w"], ["c"], strides=[2, 2], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fw"], ["logits"], name="fc")]
    m = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], [w, fw]),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """runs/tiny/r1 with model.keras, fp32 + int8 TFLite, an ONNX file and a manifest (as export writes it)."""
    import tf_keras as K
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export.tflite import export_tflite

    root = tmp_path_factory.mktemp("bench") / "runs" / "tiny" / "r1"
    (root / "export").mkdir(parents=True)
    i = K.Input((32, 32, 3))
    x = K.layers.Conv2D(8, 3, strides=2, activation="relu")(i)
    x = K.layers.DepthwiseConv2D(3)(x)
    o = K.layers.Dense(10)(K.layers.GlobalAveragePooling2D()(x))
    model = K.Model(i, o, name="tiny")
    from edgecnn import contract
    from edgecnn.measure.runtime import load

    labels = load_sample()[2]
    spec = spec_for((32, 32, 3), source_size=32)
    info = {"model": "tiny", "input_shape": [32, 32, 3], "num_classes": 10, "labels": labels,
            "preprocessing": spec.to_dict(), "dataset": {"data_arg": "sample", "data_path": None}, "trained": True}
    contract.save_model(root, info, model)
    contract.write_run(root, info)
    cal = preprocess(load_sample()[0][0][:16], spec)
    export_tflite(model, root / "export" / "tiny_fp32.tflite", "fp32")
    export_tflite(model, root / "export" / "tiny_int8.tflite", "int8", calibration=cal)
    _onnx_model(root / "export" / "tiny_fp32.onnx")
    m = contract.new_manifest("tiny", run="..", trained=True, labels=labels, preprocessing=spec.to_dict(), tools={})
    m["keras"].update(top1=0.31, top5=0.8, model_file="../model.keras")
    for name, fmt, prec, top1 in (("tiny_fp32.tflite", "tflite", "fp32", 0.31), ("tiny_int8.tflite", "tflite", "int8", 0.30),
                                  ("tiny_fp32.onnx", "onnx", "fp32", 0.29)):
        r = load(root / "export" / name)
        m["artifacts"][name] = dict(contract.artifact_entry(root / "export" / name, fmt, prec, r.inputs, r.outputs),
                                    verified=True,
                                    verification={"runtime": "litert", "split": "test", "n": 500, "top1": top1,
                                                  "agreement_with_keras": 0.99, "max_abs_diff_vs_keras": 0.01,
                                                  "passed": True, "reason": ""})
    contract.write_manifest(root / "export", m)
    return root


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run(EDGECNN + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


# ----------------------------------------------------------------------------- statistics
def test_statistics_of_a_known_sequence():
    s = summarize([float(v) for v in range(1, 11)])  # 1..10
    assert s["count"] == 10
    assert s["mean_ms"] == 5.5
    assert s["std_ms"] == pytest.approx(math.sqrt(8.25), abs=1e-12)  # population std
    assert (s["min_ms"], s["max_ms"]) == (1.0, 10.0)
    # linear interpolation between closest ranks: rank = p/100 * (n-1)
    assert s["p50_ms"] == pytest.approx(5.5)
    assert s["p90_ms"] == pytest.approx(9.1)
    assert s["p95_ms"] == pytest.approx(9.55)
    assert s["p99_ms"] == pytest.approx(9.91)
    assert summarize([2.0])["p99_ms"] == 2.0
    assert fps(4.0, batch=2) == 500.0
    with pytest.raises(ValueError):
        summarize([])


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.80), (2.0, 0.85), (1.5, 0.70), (3.0, 0.84), (0.5, 0.60)]
    assert pareto_front(pts) == [4, 0, 1]


# ----------------------------------------------------------------------------- devices
def test_device_profiles_labels_threads_and_unknown_device():
    assert get_board("pi4").threads == 4 and get_board("pi5").cores == 4
    assert get_board("Pi-Zero2").name == "pi-zero2" and get_board("cm4").name == "pi4"
    with pytest.raises(InvalidConfigError, match="Did you mean: pi5"):
        get_board("pi6")
    base = plan_device("pi4", "Intel Xeon (x86_64)", machine="x86_64")
    assert base.label == "x86 baseline of Raspberry Pi 4" and base.kind == "baseline" and base.threads == 4
    assert base.cpus and len(base.cpus) <= 4 and set(base.cpus) <= set(os.sched_getaffinity(0))
    arm = plan_device("pi5", "Cortex-A76 (aarch64)", machine="aarch64", host_model="Raspberry Pi 5 Model B Rev 1.0")
    assert arm.kind == "measured" and arm.label == "measured on Raspberry Pi 5 Model B Rev 1.0"
    assert not arm.label.startswith("x86") and arm.cpus is None
    assert plan_device(None, "Intel Xeon (x86_64)").label == "measured on Intel Xeon (x86_64)"


# ----------------------------------------------------------------------------- the table
def test_comparison_table_csv_json_and_plots_for_a_run(run_dir, tmp_path):
    out = tmp_path / "bench"
    r = _cli("benchmark", run_dir, "--runtime", "litert,onnxruntime", "--threads", "1,2", "--runs", 5,
             "--warmup", 1, "--device", "pi4", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("[6/6]") == 2  # a progress line before and after each combination
    for name in ("results.json", "results.csv", "results.md", "report.md", "latency.png", "pareto.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "results.csv")))
    combos = [(x["artifact"], x["runtime"], x["threads"]) for x in rows]
    assert combos == [(a, rt, t) for a, rt in (("tiny_fp32.tflite", "litert"), ("tiny_int8.tflite", "litert"),
                                                ("tiny_fp32.onnx", "onnxruntime")) for t in ("1", "2")]
    label = "measured on" if ON_ARM else "x86 baseline of Raspberry Pi 4"
    assert all(x["device_label"].startswith(label) for x in rows)
    assert [float(x["top1"]) for x in rows] == [0.31, 0.31, 0.30, 0.30, 0.29, 0.29]
    assert all(x["count"] == "5" and float(x["p50_ms"]) > 0 and x["verified"] == "True" for x in rows)
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == 1 and len(doc["rows"]) == 6
    row = doc["rows"][2]
    assert row["precision"] == "int8" and row["input"]["dtype"] == "float32"
    assert len(row["sha256"]) == 64 and len(row["latencies_ms"]) == 5 and row["isolation"] == "subprocess"
    assert row["inputs"]["source"].startswith("bundled CIFAR-10 sample")
    assert row["memory"]["peak_rss_mb"] >= row["memory"]["rss_before_mb"] > 0
    assert row["timing"]["fps"] == pytest.approx(1000 / row["timing"]["latency"]["mean_ms"])
    assert label in (out / "results.md").read_text() and label in r.stdout

    # a Pi's results merge into the same table, each row keeping its own device label
    pi = json.loads(json.dumps(doc))
    for x in pi["rows"]:
        x["platform"]["hostname"] = "raspberrypi"
        x["device"].update(label="measured on Raspberry Pi 4 Model B Rev 1.4 (aarch64)", kind="measured")
    merged = merge_results([out / "results.json", pi])
    assert len(merged["rows"]) == 12
    table = format_table(merged["rows"])
    assert "measured on Raspberry Pi 4 Model B" in table and table.splitlines()[1].rstrip().endswith("device")


def test_op_profile_tflite_structure_and_onnx_measured(run_dir, tmp_path):
    from edgecnn.benchmark.opprofile import op_profile

    p = op_profile(run_dir / "export" / "tiny_int8.tflite")
    assert p["kind"] == "structure" and p["timing_available"] is False and "no per-op timing" in p["note"]
    conv = next(o for o in p["ops"] if o["op"] == "CONV_2D")
    assert conv["macs"] == 15 * 15 * 8 * 3 * 3 * 3 and conv["delegated"].startswith("XNNPACK")
    nox = op_profile(run_dir / "export" / "tiny_fp32.tflite", "litert-noxnn")
    assert nox["delegate_partitions"] == 0 and all(o["delegated"].startswith("no") for o in nox["ops"])
    o = op_profile(run_dir / "export" / "tiny_fp32.onnx", runs=5)
    assert o["kind"] == "measured" and o["runs"] == 5
    assert any(a["op"] == "Conv" and a["calls"] == 5 and a["mean_us"] > 0 for a in o["ops"])
    assert sum(a["time_share"] for a in o["ops"]) == pytest.approx(1.0)


def test_measure_overhead_reports_both_medians(run_dir, monkeypatch):
    """The overhead is the median over rounds of the paired (harness - bare) / bare difference of
    round medians, the loops alternate which goes first, and the pooled medians cover every run.
    Both loops are replaced by scripted timings (one outlier per round, one disturbed round) whose
    paired median (+4.0%) differs from the pooled medians' ratio (+5.0%) and from any mean."""
    import sys

    from edgecnn.measure.timing import format_overhead, measure_overhead

    timing = sys.modules[measure_overhead.__module__]  # where measure_overhead looks up its loops
    bare_ms = [1.00, 1.00, 2.00, 1.00, 1.00, 1.00]
    harness_ms = [1.10, 1.02, 2.50, 0.99, 1.05, 1.03]  # paired: +10, +2, +25, -1, +5, +3 %
    calls = []

    def round_times(which, table, runs):
        value = table[calls.count(which)]
        calls.append(which)
        return [value] * (runs - 1) + [value * 50.0]  # one outlier per round: medians ignore it

    def bare_loop(runner, runs):
        if runs == 20 and not calls:  # the warm-up before the first round
            return [0.0] * runs
        return round_times("bare", bare_ms, runs)

    monkeypatch.setattr(timing, "bare_loop", bare_loop)
    monkeypatch.setattr(timing, "time_loop", lambda runner, batches, runs: round_times("harness", harness_ms, runs))
    r = measure_overhead(run_dir / "export" / "tiny_int8.tflite", runs=60, rounds=6)

    assert calls == ["harness", "bare", "bare", "harness"] * 3  # the order alternates round by round
    assert r["rounds"] == 6 and r["runs"] == {"bare": 60, "harness": 60}
    assert r["overhead_pct"] == pytest.approx(4.0)  # median of +10, +2, +25, -1, +5, +3
    assert r["overhead_pct_rounds"] == pytest.approx([-1.0, 25.0])
    assert r["bare_median_ms"] == pytest.approx(1.0) and r["harness_median_ms"] == pytest.approx(1.05)
    line = format_overhead(r)
    assert "6 paired rounds" in line and "60 + 60 runs" in line and "+4.00% (OUTSIDE 3%)" in line
    assert "harness median 1050.00 us vs bare invoke() median 1000.00 us" in line


def test_keras_reference_runtime_in_process(run_dir):
    from edgecnn.benchmark.harness import measure

    m = measure({"path": str(run_dir / "model.keras"), "runtime": "keras", "threads": 1, "batch": 2,
                 "warmup": 1, "runs": 3, "spec": None})
    assert m["timing"]["latency"]["count"] == 3 and m["input"]["shape"] == [2, 32, 32, 3]
    assert m["runtime_version"].startswith("tensorflow")


# ----------------------------------------------------------------------------- interleaved A/B
def test_interleave_takes_turns_and_ratios_the_lowest_round_medians(run_dir, monkeypatch):
    from edgecnn.benchmark import interleaved as il

    exp = run_dir / "export"
    # Scripted round medians: the figure must be each artifact's lowest round median (not the
    # median of rounds, not the last round), and the rounds must alternate A B, B A, A B.
    script = {"tiny_fp32.tflite": [2.0, 1.0, 3.0], "tiny_int8.tflite": [1.5, 0.9, 2.0]}
    calls = []

    def fake_loop(runner, batches, runs, seconds=None, min_runs=5):
        calls.append(runner.path.name)
        return [script[runner.path.name][sum(c == runner.path.name for c in calls) - 1]] * runs

    monkeypatch.setattr(il, "time_loop", fake_loop)
    r = il.interleave([exp / "tiny_fp32.tflite", exp / "tiny_int8.tflite"], rounds=3, runs=4, warmup=0)
    assert calls == ["tiny_fp32.tflite", "tiny_int8.tflite", "tiny_int8.tflite", "tiny_fp32.tflite",
                     "tiny_fp32.tflite", "tiny_int8.tflite"]
    a, b = r["artifacts"]
    assert (a["artifact"], b["artifact"]) == ("tiny_fp32.tflite", "tiny_int8.tflite") and r["baseline"] == a["artifact"]
    assert a["round_medians_ms"] == [2.0, 1.0, 3.0] and b["round_medians_ms"] == [1.5, 0.9, 2.0]
    assert (a["best_ms"], b["best_ms"]) == (1.0, 0.9) and a["median_of_rounds_ms"] == 2.0
    assert r["ratio"] == pytest.approx(0.9) and b["ratio_to_first"] == pytest.approx(0.9)
    with pytest.raises(InvalidConfigError, match="two or more"):
        il.interleave([exp / "tiny_fp32.tflite"], rounds=1, runs=1)


def test_cli_interleave_writes_round_medians_and_the_ratio(run_dir, tmp_path):
    exp = run_dir / "export"
    out = tmp_path / "ab"
    r = _cli("benchmark", exp / "tiny_fp32.tflite", exp / "tiny_int8.tflite", "--interleave", "--rounds", 3,
             "--runs", 5, "--warmup", 1, "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    res = doc["interleaved"]
    assert doc["schema"] == 1 and doc["rows"] == [] and res["rounds"] == 3 and res["runs_per_round"] == 5
    a, b = res["artifacts"]
    assert (a["artifact"], b["artifact"]) == ("tiny_fp32.tflite", "tiny_int8.tflite")
    assert all(len(x["round_medians_ms"]) == 3 and x["runtime"] == "litert" for x in (a, b))
    assert a["best_ms"] == min(a["round_medians_ms"]) and b["best_ms"] == min(b["round_medians_ms"])
    assert res["ratio"] == pytest.approx(min(b["round_medians_ms"]) / min(a["round_medians_ms"]))
    assert f"ratio tiny_int8.tflite / tiny_fp32.tflite: {res['ratio']:.3f}" in r.stdout
    bad = _cli("benchmark", exp / "tiny_fp32.tflite", "--rounds", 3, "--out", out)
    assert bad.returncode == 2 and "--rounds applies to --interleave" in bad.stderr


# ----------------------------------------------------------------------------- runtime names
def test_one_set_of_runtime_names_with_the_old_spellings_as_aliases():
    from edgecnn.measure import runtime
    from edgecnn.errors import RuntimeNotAvailableError

    assert runtime.parse_backends(["litert_noxnn,ort", "tflite_runtime", "litert"]) == \
        ["litert-noxnn", "onnxruntime", "tflite-runtime", "litert"]
    assert runtime.resolve_backend("tf_lite", auto=True) == "tf-lite"
    assert runtime.resolve_backend("auto", ("tflite", "onnx"), auto=True) == "auto"
    with pytest.raises(RuntimeNotAvailableError, match="Did you mean: litert"):
        runtime.resolve_backend("litrt")
    with pytest.raises(RuntimeNotAvailableError, match="Choose from: auto, litert"):
        runtime.resolve_backend("keras", ("tflite", "onnx"), auto=True)  # classify runs artifacts only
    classify_help = _cli("classify", "--help").stdout
    bench_help = _cli("benchmark", "--help").stdout
    assert "litert-noxnn" in " ".join(classify_help.split()) and "tf-lite" in " ".join(bench_help.split())


def test_keras_and_litert_kernels_load_through_the_runtime(run_dir):
    from edgecnn.measure import runtime

    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    k = runtime.load(run_dir / "model.keras", backend="keras")
    assert (k.backend, k.format) == ("keras", "keras") and k.run(x).shape == (2, 10)
    f = run_dir / "export" / "tiny_fp32.tflite"
    ref = runtime.load(f, backend="litert-ref")
    assert (ref.backend, ref.kernels) == ("litert", "reference")
    np.testing.assert_allclose(ref.run(x), k.run(x), atol=1e-4)
    assert runtime.tflite_ops(f)[0] == "CONV_2D" and runtime.tflite_ops(f.read_bytes()) == runtime.tflite_ops(f)


# ----------------------------------------------------------------------------- bad inputs
@pytest.fixture(scope="module")
def bad_files(run_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = (run_dir / "export" / "tiny_int8.tflite").read_bytes()
    (d / "trunc.tflite").write_bytes(good[: len(good) // 2])
    (d / "notes.tflite").write_text("these are not the weights you are looking for\n")
    _onnx_model(d / "dyn.onnx", h="H")
    return d


@pytest.mark.parametrize("case, code, words", [
    ("missing", 11, "not found"),
    ("not_a_model", 11, "neither a TFLite flatbuffer nor an ONNX model"),
    ("truncated", 11, "cannot load"),
    ("dynamic_onnx", 11, "dynamic dimension"),
    ("unknown_runtime", 12, "Did you mean: litert"),
    ("wrong_runtime", 12, "do not run tflite"),
    ("unknown_device", 5, "Did you mean: pi5"),
])
def test_bad_inputs_give_one_line_errors(case, code, words, run_dir, bad_files, tmp_path):
    good = run_dir / "export" / "tiny_fp32.tflite"
    args = {"missing": [bad_files / "nope.tflite"], "not_a_model": [bad_files / "notes.tflite"],
            "truncated": [bad_files / "trunc.tflite"], "dynamic_onnx": [bad_files / "dyn.onnx"],
            "unknown_runtime": [good, "--runtime", "litrt"], "wrong_runtime": [good, "--runtime", "onnxruntime"],
            "unknown_device": [good, "--device", "pi6"]}[case]
    r = _cli("benchmark", *args, "--runs", 2, "--warmup", 0, "--out", tmp_path / "o")
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    errors = [l for l in r.stderr.splitlines() if l.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], r.stderr


# ----------------------------------------------------------------------------- no TensorFlow
def test_tflite_benchmark_never_imports_tensorflow(run_dir, tmp_path):
    code = f"""
import sys
import edgecnn.benchmark
from edgecnn.cli import cli
cli.main(["benchmark", {str(run_dir / 'export' / 'tiny_int8.tflite')!r}, "--in-process", "--runs", "3",
          "--warmup", "1", "--op-profile", "--out", {str(tmp_path / 'o')!r}], standalone_mode=False)
from edgecnn.measure.timing import measure_overhead
measure_overhead({str(run_dir / 'export' / 'tiny_fp32.tflite')!r}, runs=10)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
print("TF_MODULES", bad)
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TF_MODULES []" in r.stdout
    assert (tmp_path / "o" / "results.json").is_file()
