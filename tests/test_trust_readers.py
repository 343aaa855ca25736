"""Every structured input through one bounded, typed reader; bounded parsers and waits; strings from
files shown, never obeyed. Each hostile case runs the real command in a fresh process: it must end
in one `Error:` line with its exit code, within 30 s and 1 GiB of resident memory (under an
address-space limit of 1 GiB where TensorFlow is not involved), leaving every file as it was."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

import _hostile_tflite as hostile
from _ports import free_ports
from _limited import GIB, assert_one_error, digest, run_edgecnn

CONFIG, DATA, RUN, TRAINING, MODEL, BENCH, EMU = 5, 6, 7, 8, 11, 13, 16


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------------- inspect: a bounded flatbuffer reader
@pytest.mark.parametrize("build, words", [
    (hostile.repeated_tensor, "repeats a table"),            # the audit's 160 KB file: 7.2 GiB, 172 s
    (lambda: hostile.many_operators(20_000, 1), "repeats a table"),
    (lambda: hostile.many_operators(2_000, 4_000), "repeats a table"),  # one subgraph listed 4,000 times
    (hostile.huge_vector_claim, "do not fit"),
], ids=["one-tensor-20000-times", "one-operator-20000-times", "one-subgraph-4000-times", "4-billion-entries"])
def test_inspect_refuses_tables_that_point_at_the_same_bytes(tmp_path, build, words):
    f = tmp_path / "hostile.tflite"
    f.write_bytes(build())
    before = digest(tmp_path)
    assert_one_error(run_edgecnn(["inspect", f]), MODEL, "malformed", words)
    assert digest(tmp_path) == before


def test_inspect_reads_20000_distinct_tensors_quickly_within_limits(tmp_path):
    f = tmp_path / "many.tflite"
    f.write_bytes(hostile.many_tensors(20_000))
    o = run_edgecnn(["inspect", "--json", f])
    assert o.rc == 0, o.out[-2000:]
    assert json.loads(o.out)["tensors"] == 20_000
    assert o.wall_s < 30 and o.max_rss < GIB


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_inspect_refuses_what_is_not_a_regular_file_without_waiting(tmp_path, kind):
    f = tmp_path / "model.tflite"
    if kind == "fifo":
        _fifo(f)
    else:
        f.symlink_to("/dev/zero")
    assert_one_error(run_edgecnn(["inspect", f]), MODEL, "not a regular file")


def test_inspect_shows_names_from_the_file_escaped(tmp_path):
    f = tmp_path / "names.tflite"
    f.write_bytes(hostile.control_names())
    o = run_edgecnn(["inspect", f])
    assert o.rc == 0, o.out
    assert "\x1b" not in o.out and "\x07" not in o.out and "\nFAKE LINE" not in o.out
    assert "\\x1b]0;owned\\x07weights\\nFAKE LINE" in o.out and "CUSTOM:\\x1b[2Jevil" in o.out


# ---------------------------------------------------------------------------- TF_CONFIG: refused before TensorFlow
TRAIN = ["train", "alexnet_tiny_dw", "--input-shape", "32,32,3", "--epochs", "1", "--max-train-images", "64",
         "--max-test-images", "16", "--strategy", "multiworker", "--name", "mw"]
W2 = ["127.0.0.1:2222", "127.0.0.1:2223"]


@pytest.mark.parametrize("tf_config, words", [
    ("{cluster", "not json"),
    ({"cluster": "127.0.0.1:2222", "task": {"type": "worker", "index": 0}}, "'cluster' must be an object"),
    ({"cluster": {"worker": W2}, "task": {"type": "worker", "index": -1}}, "'task.index' -1"),
    ({"cluster": {"worker": W2}, "task": {"type": "worker", "index": "0"}}, "'task.index' must be an integer"),
    ({"cluster": {"worker": W2}, "task": {"type": "worker", "index": 2}}, "out of range"),
    ({"cluster": {"worker": W2}, "task": {"type": "chief", "index": 0}}, "no 'chief' job"),
    ({"cluster": {"worker": W2, "ps": ["127.0.0.1:2224"]}, "task": {"type": "worker", "index": 0}}, "'ps' job"),
    ({"cluster": {"worker": W2}, "task": {"type": "ps", "index": 0}}, "'task.type' 'ps'"),
    ({"cluster": {"worker": ["127.0.0.1:99999", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 0}},
     "port 99999"),
    ({"cluster": {"worker": [f"127.0.0.1:{3000 + i}" for i in range(1000)]}, "task": {"type": "worker", "index": 0}},
     "1 to 128 entries, not 1000"),
    ({"cluster": {"worker": W2, "chief": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, "one chief"),
    ({"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2222"]}, "task": {"type": "worker", "index": 0}},
     "own address"),
    ({"cluster": {"worker": ["host\x1b]0;x\x07:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, "ESC"),
    ("[" * 20_000 + "]" * 20_000, "nested too deeply"),
], ids=["not-json", "string-cluster", "negative-index", "string-index", "index-out-of-range", "no-chief", "ps-job",
        "ps-task", "port-99999", "1000-workers", "two-chiefs", "same-address", "escape", "deep"])
def test_a_malformed_tf_config_is_refused_before_tensorflow_starts(tmp_path, tf_config, words):
    text = tf_config if isinstance(tf_config, str) else json.dumps(tf_config)
    o = run_edgecnn([*TRAIN, "--runs-dir", tmp_path / "runs"], env={"TF_CONFIG": text})
    assert_one_error(o, CONFIG, "TF_CONFIG", words, max_rss=GIB // 4)  # no TensorFlow: a few dozen MiB
    assert not (tmp_path / "runs").exists()


def test_a_peer_that_never_comes_up_is_named_within_the_cluster_timeout(tmp_path):
    """A real unreachable loopback port: nothing listens on worker 1's address."""
    mine, silent = free_ports(2)
    cfg = {"cluster": {"worker": [f"127.0.0.1:{mine}", f"127.0.0.1:{silent}"]}, "task": {"type": "worker", "index": 0}}
    o = run_edgecnn([*TRAIN, "--runs-dir", tmp_path / "runs", "--cluster-timeout", "3"],
                    env={"TF_CONFIG": json.dumps(cfg)})
    assert_one_error(o, TRAINING, "within 3 s", f"worker:1 (127.0.0.1:{silent})")
    assert not (tmp_path / "runs").exists()


def test_a_peer_that_answers_but_never_joins_ends_within_the_cluster_timeout(tmp_path):
    """Worker 1's port is held by a plain TCP listener: the wait for peers passes, TensorFlow's own
    wait would not end; the watcher process ends it with one line."""
    mine = free_ports(1)[0]
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(8)
    try:
        cfg = {"cluster": {"worker": [f"127.0.0.1:{mine}", f"127.0.0.1:{squatter.getsockname()[1]}"]},
               "task": {"type": "worker", "index": 0}}
        o = run_edgecnn([*TRAIN, "--runs-dir", tmp_path / "runs", "--cluster-timeout", "8"],
                        env={"TF_CONFIG": json.dumps(cfg)}, address_space=None, timeout_s=90)
    finally:
        squatter.close()
    assert_one_error(o, -signal.SIGKILL, "within 8 s", "not all joined", limit_s=90)  # a shell shows 137
    assert not (tmp_path / "runs").exists()


def test_cluster_timeout_is_checked():
    o = run_edgecnn(["train", "alexnet_tiny_dw", "--strategy", "multiworker", "--cluster-timeout", "0"])
    assert_one_error(o, CONFIG, "--cluster-timeout")


# ---------------------------------------------------------------------------- the emulator's calibration and root
def _calibration(tmp_path, edit) -> Path:
    from edgecnn.emulate.model import CALIBRATION_FILE

    doc = json.loads(CALIBRATION_FILE.read_text())
    edit(doc)
    p = tmp_path / "calibration.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["fit"].update(eta="0.7"), "'fit.eta' must be a finite number"),
    (lambda d: d["fit"].update(eta=0), "'fit.eta' 0 must be more than 0"),
    (lambda d: d.update(fit=[1, 2]), "'fit' must be an object"),
    (lambda d: d.pop("fit"), "has no 'fit'"),
    (lambda d: d["fit"].update(k_cycles_per_line=10 ** 400), "'fit.k_cycles_per_line' must be a finite number"),
    (lambda d: d["counts"]["pi4/mobilenet_v2_fp32"].update(misses=[]), "'counts.pi4/mobilenet_v2_fp32.misses'"),
], ids=["string-eta", "zero-eta", "list-fit", "no-fit", "huge-int", "no-misses"])
def test_a_broken_calibration_is_one_emulator_error_naming_the_field(tmp_path, edit, words):
    from edgecnn.emulate.model import load_calibration
    from edgecnn.errors import EmulatorError

    with pytest.raises(EmulatorError) as e:
        load_calibration(_calibration(tmp_path, edit))
    assert words in e.value.message and e.value.exit_code == EMU


def test_a_calibration_that_is_not_json_or_a_fifo_is_refused_unopened(tmp_path):
    from edgecnn.emulate.model import load_calibration
    from edgecnn.errors import EmulatorError

    (tmp_path / "text.json").write_text("eta = 0.7\n")
    with pytest.raises(EmulatorError, match="unreadable emulator calibration"):
        load_calibration(tmp_path / "text.json")
    code = ("import sys; from edgecnn.emulate.model import load_calibration\n"
            "from edgecnn.errors import EmulatorError\n"
            "try:\n    load_calibration(sys.argv[1])\nexcept EmulatorError as e:\n    e.show(); sys.exit(e.exit_code)")
    o = run_edgecnn([], python_args=["-c", code, str(_fifo(tmp_path / "fifo.json"))])
    assert_one_error(o, EMU, "FIFO")


def test_a_fifo_as_the_arm_roots_stamp_is_refused_unopened(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _fifo(root / ".edgecnn-root")
    model = tmp_path / "m.tflite"
    model.write_bytes(hostile.many_tensors(2))
    o = run_edgecnn(["benchmark", model, "--emulate", "pi4", "--runs", "2", "--in-process", "--out", tmp_path / "b"],
                    env={"EDGECNN_ARM_ROOT": str(root)})
    assert_one_error(o, EMU, "FIFO", "arm64 root stamp")
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------- cost tables, hosts and labels files
@pytest.mark.parametrize("table, words", [
    ({"ops": {"conv": {"fp32_us": 10 ** 400, "int8_us": 1}}}, "'ops.conv.fp32_us' must be a finite number"),
    ({"ops": {"conv": {"fp32_us": -1, "int8_us": 1}}}, "'ops.conv.fp32_us' -1 is not from 0"),
    ({"ops": {"conv": "fast"}}, "'ops.conv' must be an object"),
    ({"ops": {"conv\x1b[2J": {"fp32_us": 1}}}, "ESC"),
    ({"tensors": [1]}, "'tensors' must be an object"),
], ids=["integer-too-large-for-a-float", "negative", "string-entry", "escape-in-name", "list"])
def test_a_hostile_cost_table_is_one_line_before_anything_is_built(tmp_path, table, words):
    f = tmp_path / "costs.json"
    f.write_text(json.dumps(table))
    before = digest(tmp_path)
    o = run_edgecnn(["export", "alexnet_tiny_dw", "--int8", "--mixed", "--cost-table", f, "--runs-dir", tmp_path / "runs",
                     "--out", tmp_path / "out"])
    assert_one_error(o, CONFIG, "costs.json", words)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("content, words", [
    ("fifo", "FIFO"),
    ("pi@a\npi@b\x1b]0;owned\x07\n", "line 2"),
    ("pi@a\n" * 200_000, "more than the 65,536"),
    (b"\xff\xfe pi@a\n", "not UTF-8"),
], ids=["fifo", "escape", "huge", "not-utf8"])
def test_a_hostile_hosts_file_is_one_line(tmp_path, content, words):
    f = tmp_path / "boards.txt"
    if content == "fifo":
        _fifo(f)
    else:
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
    model = tmp_path / "m.tflite"
    model.write_bytes(hostile.many_tensors(2))
    o = run_edgecnn(["benchmark", model, "--hosts-file", f, "--out", tmp_path / "b"])
    assert_one_error(o, CONFIG, words)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("content, words", [
    ("fifo", "FIFO"),
    ("cat\ndog\x1b]0;owned\x07\n", "line 2"),
    ("cat\ndog\u202ecod\n", "RIGHT-TO-LEFT OVERRIDE"),
    ("cat\n" + "x" * 300 + "\n", "'labels[1]' must have 1 to 256 characters"),
], ids=["fifo", "escape", "bidi-override", "too-long"])
def test_a_hostile_labels_file_is_refused_before_the_model_is_read(tmp_path, content, words):
    f = tmp_path / "labels.txt"
    if content == "fifo":
        _fifo(f)
    else:
        f.write_text(content)
    (tmp_path / "model.keras").write_bytes(b"not read")
    o = run_edgecnn(["import", tmp_path / "model.keras", "--data", tmp_path, "--labels", f, "--preprocess", "raw",
                     "--runs-dir", tmp_path / "runs"])
    assert_one_error(o, DATA, words)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------- run.json written by hand
def _run(tmp_path: Path, **changes) -> Path:
    """An untrained run.json of alexnet_tiny_dw (no model file: every case is refused before one is read)."""
    from edgecnn.data.preprocess import spec_for
    from edgecnn.data.sample import load_sample

    run = tmp_path / "runs" / "alexnet_tiny_dw" / "r"
    run.mkdir(parents=True)
    info = {"model": "alexnet_tiny_dw", "model_kwargs": {}, "input_shape": [32, 32, 3], "num_classes": 10,
            "labels": load_sample()[2], "preprocessing": spec_for((32, 32, 3), source_size=32).to_dict(),
            "recipe": {"name": "quick", "epochs": 1, "batch_size": 8}, "seed": 0, "trained": False,
            "dataset": {"data_arg": "sample", "data_path": None}}
    for key, fn in changes.items():
        fn(info)
    (run / "run.json").write_text(json.dumps(info))
    return run


@pytest.mark.parametrize("edit, words", [
    (lambda i: i["recipe"].update(lr="fast"), "'recipe.lr' must be a finite number"),
    (lambda i: i["recipe"].update(epochs=-3), "'recipe.epochs' -3"),
    (lambda i: i["recipe"].update(batch_size=10 ** 400), "'recipe.batch_size'"),
    (lambda i: i["recipe"].update(optimizer="sgd; rm -rf"), "'recipe.optimizer'"),
    (lambda i: i["recipe"].pop("name"), "has no 'name'"),
], ids=["string-lr", "negative-epochs", "huge-batch", "unknown-optimizer", "no-name"])
def test_a_hostile_recipe_in_run_json_is_refused_on_resume(tmp_path, edit, words):
    run = _run(tmp_path, recipe=edit)
    before = digest(tmp_path)
    o = run_edgecnn(["train", "--resume", run, "--runs-dir", tmp_path / "runs"])
    assert_one_error(o, CONFIG, "run.json", words)
    assert digest(tmp_path) == before


@pytest.mark.parametrize("text, words", [
    ('{"per_fold": [{"fold": 1, "num_train": 9, "num_eval": 1, "top1": 0.5, "top5": 1, "macro_f1": 0.5}]}',
     "in order"),
    ('{"per_fold": [{"fold": 0, "num_train": 9, "num_eval": 1, "top1": "0.5", "top5": 1, "macro_f1": 0.5}]}',
     "'per_fold[0].top1' must be a finite number"),
    ('{"per_fold": "' + "x" * 100 + '"}', "'per_fold' must be a list"),
], ids=["out-of-order", "string-metric", "string"])
def test_a_damaged_folds_file_is_one_run_error(tmp_path, text, words):
    from edgecnn.errors import RunError
    from edgecnn.train.fit import _read_folds

    (tmp_path / "folds.json").write_text(text)
    with pytest.raises(RunError, match="folds.json") as e:
        _read_folds(tmp_path / "folds.json", 3)
    assert words in e.value.message


@pytest.mark.parametrize("edit, code, words", [
    (lambda i: i["preprocessing"].update(std=[1e-320] * 3), RUN, "not a normal float32"),
    (lambda i: i["preprocessing"].update(std=[1e-30] * 3), RUN, "beyond +-1e+06"),
    (lambda i: i["labels"].__setitem__(3, "cat\x1b]0;owned\x07"), RUN, "'labels[3]'"),
    (lambda i: i["labels"].__setitem__(3, "cat\nFAKE"), RUN, "a line break"),
    (lambda i: i["labels"].__setitem__(3, "dog"), RUN, "listed twice"),
], ids=["std-1e-320", "std-1e-30", "escape-label", "newline-label", "duplicate-label"])
def test_values_that_are_not_what_they_claim_are_refused_before_export(tmp_path, edit, code, words):
    run = _run(tmp_path, x=edit)
    before = digest(tmp_path)
    o = run_edgecnn(["export", run, "--int8", "--runs-dir", tmp_path / "runs"])
    assert_one_error(o, code, "run.json", words)
    assert digest(tmp_path) == before


def test_a_std_of_1e_320_given_to_import_is_refused():
    o = run_edgecnn(["import", "m.keras", "--data", ".", "--preprocess", "scale=1,std=1e-320"])
    assert o.rc in (CONFIG, MODEL, DATA) and len(o.error_lines()) == 1, o.out


# ---------------------------------------------------------------------------- benchmark --merge
@pytest.mark.parametrize("edit, words", [
    (lambda d: d["rows"][0]["timing"]["latency"].update(mean_ms=10 ** 400), "'rows[0].timing.latency.mean_ms'"),
    (lambda d: d["rows"][0].update(artifact="x\x1b]0;owned\x07.tflite"), "ESC"),
    (lambda d: d["rows"][0].update(threads=True), "'rows[0].threads' must be an integer"),
    (lambda d: d["rows"][0]["device"].update(label=["a"]), "'rows[0].device.label'"),
    (lambda d: d.update(failures=[{"host": "pi@a", "reason": 3, "status": "failed"}]), "'failures[0].reason'"),
], ids=["huge-int", "escape", "bool-threads", "list-label", "failure-reason"])
def test_a_hostile_results_document_is_refused_by_merge(tmp_path, edit, words):
    doc = _results_doc()
    edit(doc)
    f = tmp_path / "other.json"
    f.write_text(json.dumps(doc))
    before = digest(tmp_path)
    o = run_edgecnn(["benchmark", "--merge", f, "--out", tmp_path / "b", tmp_path / "m.tflite"])
    assert_one_error(o, BENCH, "other.json", words)
    assert digest(tmp_path) == before


def test_a_results_document_nested_too_deeply_is_refused(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text('{"schema": 1, "rows": ' + "[" * 50_000 + "]" * 50_000 + "}")
    o = run_edgecnn(["benchmark", "--merge", f, "--out", tmp_path / "b", tmp_path / "m.tflite"])
    assert_one_error(o, BENCH, "nested")


def _results_doc() -> dict:
    lat = {"count": 3, "mean_ms": 1.0, "std_ms": 0.1, "p50_ms": 1.0, "p90_ms": 1.1, "p99_ms": 1.2}
    row = {"artifact": "m.tflite", "runtime": "litert", "threads": 1, "batch": 1,
           "timing": {"latency": lat, "init_ms": 1.0, "first_inference_ms": 1.0, "fps": 1000.0},
           "memory": {"peak_rss_mb": 50.0, "peak_increase_mb": 1.0}, "device": {"label": "measured on a Pi"}}
    return {"schema": 1, "rows": [row]}


def test_strings_in_benchmark_tables_are_shown_escaped():
    from edgecnn.benchmark.report import fleet_table, format_table

    row = _results_doc()["rows"][0]
    row["artifact"] = "m\x1b]0;owned\x07.tflite"
    other = dict(row, device={"label": "x86\x1b[2J"}, remote={"host": "pi@b\r"})
    text = format_table([row, other]) + fleet_table({"rows": [other], "fleet": ["pi@b\r", "pi@c"],
                                                      "failures": [{"host": "pi@c", "reason": "\x1b[31mred",
                                                                    "status": "failed"}]})
    assert not any(ch in text for ch in "\x1b\x07\r")
    assert "m\\x1b]0;owned\\x07.tflite" in text and "\\x1b[31mred" in text


# ---------------------------------------------------------------------------- memory: declared sizes, classes, trees
def test_a_tflite_declaring_huge_tensors_is_refused_before_the_runtime_allocates(tmp_path):
    f = tmp_path / "big.tflite"
    f.write_bytes(hostile.huge_input_model(40_000))
    before = digest(tmp_path)
    o = run_edgecnn(["benchmark", f, "--runs", "2", "--in-process", "--out", tmp_path / "b"])
    assert_one_error(o, MODEL, "the tensors this model declares", "memory budget")
    assert digest(tmp_path) == before


def _png_folder(root: Path, classes: int, per_class: int = 1) -> Path:
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    for c in range(classes):
        d = root / f"c{c:05d}"
        d.mkdir(parents=True)
        for i in range(per_class):
            (d / f"{i}.png").write_bytes(data)
    return root


def test_a_model_declaring_a_4096_input_is_refused_by_the_memory_budget_at_import(tmp_path):
    """The audit's 11 KB model with a 4096x4096 input: 120 images at that size are 6 GB."""
    import tf_keras as keras

    inp = keras.Input((4096, 4096, 3))
    x = keras.layers.Conv2D(4, 3, strides=8)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "wide.keras")
    assert (tmp_path / "wide.keras").stat().st_size < 32 << 10
    data = _png_folder(tmp_path / "photos", 3, 40)
    before = digest(tmp_path)
    o = run_edgecnn(["import", tmp_path / "wide.keras", "--data", data, "--preprocess", "raw",
                     "--runs-dir", tmp_path / "runs"], address_space=None)
    assert_one_error(o, DATA, "120 images", "4096x4096x3", "memory budget")
    assert digest(tmp_path) == before and not (tmp_path / "runs").exists()


_CLASSES_PROBE = r"""
import sys, time
import numpy as np
from edgecnn.data.datasets import load_dataset
from edgecnn.train.evaluate import classification_metrics
t = time.monotonic()
ds = load_dataset(sys.argv[1], (8, 8, 3), val_fraction=0.0)
n = ds.num_classes
rng = np.random.default_rng(0)
scores = rng.random((2000, n), dtype=np.float32)
m = classification_metrics(rng.integers(0, n, 2000), scores, ds.labels)
print(n, m["confusion_matrix"] is None, len(m["per_class_accuracy"]), round(time.monotonic() - t, 1))
"""


def test_25000_classes_load_and_score_within_a_gigabyte(tmp_path):
    """A folder of 25,000 classes (an _ArrayMemoryError before) and metrics for 25,000 classes (a
    25,000 x 25,000 confusion matrix): linear in the class count, under RLIMIT_AS 1 GiB."""
    data = _png_folder(tmp_path / "many", 25_000)
    o = run_edgecnn([], python_args=["-c", _CLASSES_PROBE, str(data)], timeout_s=60)
    assert o.rc == 0, o.out[-3000:]
    n, no_matrix, per_class, _ = o.out.split()[-4:]
    assert (n, no_matrix, per_class) == ("25000", "True", "25000")
    assert o.max_rss < GIB


def test_10000_class_metrics_stay_small():
    from edgecnn.train.evaluate import MAX_CONFUSION_CLASSES, classification_metrics

    rng = np.random.default_rng(0)
    m = classification_metrics(rng.integers(0, 10_000, 500), rng.random((500, 10_000), dtype=np.float32))
    assert m["confusion_matrix"] is None and str(MAX_CONFUSION_CLASSES) in m["confusion_matrix_note"]
    assert len(json.dumps(m)) < 1 << 20
    small = classification_metrics([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert small["confusion_matrix"] == [[1, 0], [1, 1]]


def test_a_deeply_nested_folder_is_refused_not_a_recursion_error(tmp_path):
    from edgecnn.data.datasets import load_dataset
    from edgecnn.errors import DataError

    root = _png_folder(tmp_path / "deep", 2)
    deep = root / "c00000"
    levels = []
    for _ in range(1500):  # rglob's recursion ended in a RecursionError near 1,000 levels
        deep = deep / "d"
        os.mkdir(deep)
        levels.append(deep)
    try:
        with pytest.raises(DataError, match="nested more than 32 levels"):
            load_dataset(str(root), (8, 8, 3))
    finally:  # shutil.rmtree recurses too: pytest's cleanup of old temporary folders would fail on it
        for level in reversed(levels):
            os.rmdir(level)


def test_the_memory_budget_follows_its_variable_and_the_address_space_limit(monkeypatch):
    from edgecnn.data import limits
    from edgecnn.errors import DataError

    monkeypatch.setenv("EDGECNN_MEMORY_BUDGET", "512M")
    assert limits.memory_budget() == 512 << 20
    with pytest.raises(DataError, match="more than the memory budget of 512.0 MiB"):
        limits.check_memory(600 << 20, "six hundred MiB")
    monkeypatch.setenv("EDGECNN_MEMORY_BUDGET", "lots")
    with pytest.raises(DataError, match="EDGECNN_MEMORY_BUDGET"):
        limits.memory_budget()
    code = "from edgecnn.data.limits import memory_budget; print(memory_budget())"
    o = run_edgecnn([], python_args=["-c", code], env={"EDGECNN_MEMORY_BUDGET": ""})
    assert o.rc == 0 and int(o.out.split()[-1]) == GIB // 2, o.out


# ---------------------------------------------------------------------------- shown, never obeyed
def test_shown_escapes_every_character_that_is_not_printable():
    from edgecnn.core.text import shown, unwanted_char
    from edgecnn.errors import DataError

    hostile_text = "a\x1b]0;x\x07b\nc\rd\u202ee\x00f\x85g\u2028h"
    out = shown(hostile_text)
    assert out.isprintable() and "\\x1b" in out and "\\u202e" in out and "\\n" in out
    assert DataError(hostile_text).message == shown(" ".join(hostile_text.split()), None)
    assert shown("日本語 🐱 café") == "日本語 🐱 café"
    assert unwanted_char("👩\u200d💻") is None and unwanted_char("a\u202eb") == "\u202e"
    assert shown("x" * 500).endswith("...") and len(shown("x" * 500)) == 203


def test_classify_lines_show_labels_escaped():
    from edgecnn.device.classify import Prediction

    line = Prediction("img\n.png", [{"index": 0, "label": "cat\x1b]0;owned\x07", "score": 0.9}], 1.0, 2.0).format()
    assert "\x1b" not in line and "\n" not in line and "cat\\x1b]0;owned\\x07" in line


def test_eval_report_shows_labels_escaped():
    from edgecnn.train.evaluate import format_report

    m = {"run": "r", "dataset": {"name": "d"}, "split": "test", "num_samples": 1, "top1": 1.0, "top5": 1.0,
         "macro_f1": 1.0, "per_class_accuracy": {"cat\x1b[2J": 1.0}}
    assert "\x1b" not in format_report(m) and "cat\\x1b[2J" in format_report(m)


def test_a_class_folder_named_with_an_escape_is_refused_at_load(tmp_path):
    from edgecnn.data.datasets import load_dataset
    from edgecnn.errors import DataError

    root = _png_folder(tmp_path / "imgs", 2)
    (root / "c00001").rename(root / "dog\x1b]0;owned\x07")
    with pytest.raises(DataError, match=r"class 'dog\\x1b\]0;owned\\x07' holds ESC"):
        load_dataset(str(root), (8, 8, 3))


if sys.platform != "linux":  # pragma: no cover - FIFOs, /dev/zero and RLIMIT_AS as Linux has them
    pytestmark = pytest.mark.skip("Linux only")


def test_names_with_a_trailing_line_break_are_not_plain_names():
    """Python's '$' matches before a final newline: every name pattern is matched whole."""
    from edgecnn.benchmark.remote import parse_host
    from edgecnn.contract.checks import check_name, sha256_ok
    from edgecnn.errors import InvalidConfigError

    for bad in ("quicknet\n", "run\r\n"):
        with pytest.raises(InvalidConfigError):
            check_name(bad)
    assert not sha256_ok("a" * 64 + "\n") and sha256_ok("a" * 64)
    with pytest.raises(InvalidConfigError):
        parse_host("pi@a\nb")


@pytest.mark.parametrize("edit, words", [
    (lambda r: r.update(latency_ms={"²": 1.0}), "thread counts"),            # a digit to isdigit(), not to int()
    (lambda r: r.update(reason="int8 \x9b2J faster"), "one line of printable text"),  # C1 CSI
    (lambda r: r.update(reason="int8 \u202efaster"), "one line of printable text"),
], ids=["superscript-thread-count", "c1-control", "bidi-override"])
def test_a_hostile_recommendation_in_a_manifest_is_refused(edit, words):
    import copy

    from edgecnn.contract.manifest import validate
    from edgecnn.errors import ModelFileError
    from test_fuzz import MANIFEST

    m = copy.deepcopy(MANIFEST)
    edit(m["recommended"]["pi4"])
    with pytest.raises(ModelFileError, match=words):
        validate(m, "manifest.json")
