"""Property-based tests (Hypothesis) of the readers of untrusted input: the flatbuffer reader behind
``edgecnn inspect``, every JSON reader (run.json, manifest.json, TF_CONFIG, the emulator's
calibration, cost tables, benchmark results, recorded recipes, the bounded JSON parser itself),
the line reader of labels and hosts files, and the preprocessing-spec parser.

Each property says: whatever the input, the reader returns a value or raises its one domain error
(an ``EdgecnnError`` with its exit code), never another exception; and what a reader accepts, the
code that uses it can use (a validated results document formats, a validated spec normalizes to
finite float32). The documents are arbitrary JSON and valid documents with one field replaced or
removed; the TFLite files are valid small models with bytes overwritten or cut.

Bounded for the suite (2 cores shared): a fixed number of examples per property, derandomized
(the same examples on every run, in CI too), no example database, and a deadline per example.
docs/trust.md has the figures and the command.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import _hostile_tflite as flat
from edgecnn.errors import EdgecnnError

# EDGECNN_FUZZ_EXAMPLES=5000 EDGECNN_FUZZ_RANDOM=1 explores further (new examples on each run).
EXAMPLES = int(os.environ.get("EDGECNN_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, derandomize=not os.environ.get("EDGECNN_FUZZ_RANDOM"),
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values that have broken readers before: integers beyond a float, denormals, float32 overflow,
# empty and control-character strings, wrong containers.
EDGE = st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 64, 10 ** 400, -10 ** 400, 1e-320, 1e39, -1e308, 0.0, "", "0",
                        "\x1b]0;x\x07", "a\nb", "\u202e", "NaN", [], {}, None, True, False])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12) | EDGE)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=20)


def _paths(doc, prefix=(), out=None, limit=400):
    """Every place in ``doc`` a mutation can hit: (path to the container, key or index)."""
    out = [] if out is None else out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        if len(out) >= limit:
            break
        out.append((prefix, k))
        _paths(v, prefix + (k,), out, limit)
    return out


def _like(v):
    """Values of the same JSON type as ``v`` (the mutations a reader must check the range of)."""
    if isinstance(v, bool):
        return st.booleans()
    if isinstance(v, int):
        return st.integers() | st.sampled_from([0, -1, 1, 2 ** 31, 10 ** 400])
    if isinstance(v, float):
        return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 1e-320, 1e39, -1e308])
    if isinstance(v, str):
        return st.text(max_size=20) | st.just(v + "\x1b[2J") | st.just(v * 300)
    if isinstance(v, list):
        return st.just(v[:-1]) | st.just(v + v[-1:]) | st.just(v[::-1])
    return JSON


@st.composite
def mutated(draw, base):
    """``base`` with one field replaced (by a value of its own type or by arbitrary JSON), or removed."""
    doc = copy.deepcopy(base)
    where, key = draw(st.sampled_from(_paths(doc)))
    parent = doc
    for k in where:
        parent = parent[k]
    if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(_like(parent[key]) | JSON)
    return doc


def _documents(base):
    return JSON | mutated(base)


# ---------------------------------------------------------------------------- the documents
def _spec():
    from edgecnn.data.preprocess import spec_for

    return spec_for((32, 32, 3), source_size=32).to_dict()


LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RUN = {"model": "alexnet_tiny_dw", "model_kwargs": {}, "input_shape": [32, 32, 3], "num_classes": 10,
       "labels": LABELS, "preprocessing": _spec(), "recipe": {"name": "quick", "epochs": 1, "batch_size": 8},
       "seed": 0, "trained": False, "dataset": {"data_arg": "sample", "data_path": None, "classes": LABELS},
       "output_kind": "probabilities", "custom_objects": []}
_TENSOR_IN = {"name": "in", "shape": [1, 32, 32, 3], "dtype": "int8", "scale": 0.02, "zero_point": -1}
_TENSOR_OUT = {"name": "out", "shape": [1, 10], "dtype": "int8", "scale": 1 / 256, "zero_point": -128}
MANIFEST = {"schema": 1, "model": "m", "run": "..", "trained": True, "labels": LABELS, "preprocessing": _spec(),
            "keras": {"top1": 0.5, "top5": 0.9, "model_file": "../model.keras"}, "tools": {"edgecnn": "0.1.0"},
            "created": "2026-01-01T00:00:00+00:00", "dataset": None,
            "artifacts": {"m_int8.tflite": {"format": "tflite", "precision": "int8", "sha256": "a" * 64, "bytes": 9000,
                                            "inputs": [_TENSOR_IN], "outputs": [_TENSOR_OUT],
                                            "output_kind": "probabilities", "verified": True,
                                            "verification": {"passed": True, "top1": 0.5}}},
            "recommended": {"pi4": {"artifact": "m_int8.tflite", "source": "predicted", "runtime": "litert",
                                    "threads_ranked": 1, "latency_ms": {"1": 2.0, "4": 0.8},
                                    "fps": {"1": 500.0, "4": 1250.0}, "peak_rss_mb": None, "bytes": 9000,
                                    "top1": 0.5, "reason": "int8: 3.0x faster than fp32 on a Pi 4",
                                    "error_pct": 17.0}},
            "skipped": {"onnx": "onnxruntime is not installed"}}
TF_CONFIG = {"cluster": {"chief": ["10.0.0.1:2222"], "worker": ["10.0.0.2:2222", "[::1]:2223"]},
             "task": {"type": "worker", "index": 1}}
COST_TABLE = {"schema": 1, "ops": {"conv": {"op": "CONV_2D", "fp32_us": 12.5, "int8_us": 4.0}},
              "tensors": {"x": {"quantize_us": 0.5, "dequantize_us": 0.25}}}
_LAT = {"count": 3, "mean_ms": 1.0, "std_ms": 0.1, "p50_ms": 1.0, "p90_ms": 1.1, "p99_ms": 1.2}
_ROW = {"artifact": "m_int8.tflite", "runtime": "litert", "threads": 1, "batch": 1, "size_bytes": 9000,
        "timing": {"latency": _LAT, "init_ms": 1.0, "first_inference_ms": 2.0, "fps": 1000.0},
        "memory": {"peak_rss_mb": 50.0, "peak_increase_mb": 1.0}, "latencies_ms": [1.0, 0.9, 1.1],
        "device": {"label": "measured on a Pi"}, "platform": {"hostname": "pi", "cpu_model": "Cortex-A72",
                                                                 "isa_flags": ["neon"], "cpu_max_mhz": 1800},
        "accuracy": {"top1": 0.5, "verified": True}, "remote": {"host": "pi@a"}, "sha256": "a" * 64}
RESULTS = {"schema": 1, "rows": [_ROW, dict(_ROW, threads=2, remote={"host": "pi@b"})], "fleet": ["pi@a", "pi@b", "pi@c"],
           "failures": [{"host": "pi@c", "reason": "no route", "status": "failed"}],
           "emulated": [{"artifact": "m_int8.tflite", "label": "emulated pi4", "board": "pi4", "threads": 1,
                         "instructions": 1e6, "predicted_ms": 2.0, "fps": 500.0, "error_pct": 17.0}]}


def _recipe():
    from edgecnn.train.recipes import RECIPES

    return RECIPES["structure_e"].to_dict()


def _calibration():
    from edgecnn.emulate.model import CALIBRATION_FILE

    return json.loads(CALIBRATION_FILE.read_text())


# ---------------------------------------------------------------------------- JSON readers
def _accepts(fn, doc, error):
    """``fn(doc)``'s value, or None when it raised ``error`` (an EdgecnnError); anything else fails."""
    try:
        value = fn(doc)
    except error as e:
        assert isinstance(e, EdgecnnError) and "\n" not in e.message and e.message.isprintable(), e.message
        event("refused")
        return None, False
    event("accepted")
    return value, True


@FUZZ
@given(doc=_documents(RUN))
def test_run_json(doc):
    from edgecnn.contract.run import Run, spec_from, validate_run_info
    from edgecnn.errors import RunError

    _, ok = _accepts(lambda d: validate_run_info(d, "run.json"), doc, RunError)
    if ok:
        run = Run(Path("r"), doc, spec_from(doc["preprocessing"], "run.json", RunError), list(doc["labels"]),
                  doc["model"])
        assert run.num_classes == len(run.labels) and len(run.input_shape) == 3


@FUZZ
@given(doc=_documents(MANIFEST))
def test_manifest_json(doc):
    from edgecnn.benchmark.recommend import markdown_lines
    from edgecnn.contract.manifest import validate
    from edgecnn.core.text import shown, unwanted_char
    from edgecnn.data.preprocess import PreprocessSpec
    from edgecnn.device.classify import PREFERENCE
    from edgecnn.errors import ModelFileError

    _, ok = _accepts(lambda d: validate(d, "manifest.json"), doc, ModelFileError)
    if ok:
        PreprocessSpec.from_dict(doc["preprocessing"])
        arts = doc["artifacts"]
        sorted(arts, key=lambda n: (not arts[n]["verified"], PREFERENCE.index(arts[n]["precision"])
                                    if arts[n]["precision"] in PREFERENCE else len(PREFERENCE), n))
        assert all(unwanted_char(label) is None and shown(label).isprintable() for label in doc["labels"])
        recs = doc.get("recommended") or {}
        markdown_lines(recs, list(recs) + ["pi5"])


@FUZZ
@given(doc=_documents(TF_CONFIG) | st.text(max_size=40))
def test_tf_config(doc):
    from edgecnn.errors import InvalidConfigError
    from edgecnn.train.cluster import parse_tf_config

    text = doc if isinstance(doc, str) else json.dumps(doc)
    cluster, ok = _accepts(parse_tf_config, text, InvalidConfigError)
    if ok:
        info = cluster.info()
        assert 1 <= info["workers"] <= 128 and all(1 <= int(a.rpartition(":")[2]) <= 65535 for _, a in cluster.peers())


@FUZZ
@given(doc=_documents({"fit": _calibration()["fit"], "counts": dict(list(_calibration()["counts"].items())[:2])}))
def test_emulator_calibration(doc):
    from edgecnn.contract.checks import check
    from edgecnn.emulate import model
    from edgecnn.errors import EmulatorError
    from edgecnn.measure.boards import BOARDS

    _, ok = _accepts(lambda d: check(d, model._calibration_spec(), "calibration.json", EmulatorError), doc,
                     EmulatorError)
    if ok:
        for counts in doc["counts"].values():
            p = model.predict(counts, counts.get("board", "pi4") if counts.get("board") in BOARDS else "pi4", 4, doc)
            assert np.isfinite(p.ms) and p.ms >= 0
        model.ratio_rows(doc)


@FUZZ
@given(doc=_documents(COST_TABLE))
def test_cost_table(doc):
    from edgecnn.errors import InvalidConfigError
    from edgecnn.export.mixed import validate_cost_table

    table, ok = _accepts(validate_cost_table, doc, InvalidConfigError)
    if ok:
        for part, fields in (("ops", ("fp32_us", "int8_us")), ("tensors", ("quantize_us", "dequantize_us"))):
            for entry in table.get(part, {}).values():
                assert all(np.isfinite(float(entry.get(f, 0.0))) for f in fields)


@FUZZ
@given(doc=_documents(RESULTS))
def test_benchmark_results(doc):
    from edgecnn.benchmark.emulated import format_table as emulated_table
    from edgecnn.benchmark.report import (csv_text, fleet_table, format_table, markdown_table, merge_results,
                                          validate_doc)
    from edgecnn.errors import BenchmarkError

    _, ok = _accepts(lambda d: validate_doc(d, "results.json"), doc, BenchmarkError)
    if ok:
        text = format_table(doc["rows"]) + markdown_table(doc["rows"]) + csv_text(doc["rows"]) + fleet_table(doc)
        if doc.get("emulated"):
            text += emulated_table(doc["emulated"])
        assert "\x1b" not in text
        merge_results([doc])


@FUZZ
@given(doc=_documents(_recipe()))
def test_recorded_recipe(doc):
    from edgecnn.errors import InvalidConfigError
    from edgecnn.train.recipes import Recipe

    recipe, ok = _accepts(Recipe.from_dict, doc, InvalidConfigError)
    if ok:
        assert recipe.batch_size >= 1 and recipe.lr > 0 and recipe.to_dict()["name"] == doc["name"]


@FUZZ
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()) | st.sampled_from(
    [b"[" * 5000, b'{"a": NaN}', b'{"a": 1e400}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}']))
def test_bounded_json_parser(raw):
    from edgecnn.contract.checks import read_json_file
    from edgecnn.errors import ModelFileError

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "doc.json"
        p.write_bytes(raw)
        doc, ok = _accepts(lambda f: read_json_file(f, "document", ModelFileError), p, ModelFileError)
    if ok:
        assert isinstance(doc, dict)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_line_reader(raw):
    from edgecnn.contract.checks import read_text_lines
    from edgecnn.core.text import unwanted_char
    from edgecnn.errors import DataError

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "labels.txt"
        p.write_bytes(raw)
        lines, ok = _accepts(lambda f: read_text_lines(f, "labels file", DataError), p, DataError)
    if ok:
        assert all(unwanted_char(line.replace("\t", " ")) is None for _, line in lines)


# ---------------------------------------------------------------------------- the preprocessing spec
SPEC_TEXT = st.text(alphabet="0123456789.,=/-+e scalemnstdropaiwkfx", max_size=40) | st.sampled_from(
    ["raw", "unit", "imagenet", "scale=1/255,std=1e-320", "scale=1e-320", "mean=1e39", "std=0", "crop=0.05",
     "scale=1/0", "std=1,2,3,4", "keras-mobilenet,std=1e-30", "mean=nan", "std=inf"])


@FUZZ
@given(text=SPEC_TEXT | st.text(max_size=30), channels=st.sampled_from([1, 3]))
def test_preprocess_argument(text, channels):
    from edgecnn.data.preprocess import parse_preprocess
    from edgecnn.errors import InvalidConfigError

    spec, ok = _accepts(lambda t: parse_preprocess(t, (8, 8), channels), text, InvalidConfigError)
    if ok:
        _usable(spec)


@FUZZ
@given(doc=_documents(_spec()))
def test_preprocess_spec_from_a_file(doc):
    from edgecnn.contract.run import validate_spec
    from edgecnn.data.preprocess import PreprocessError, PreprocessSpec
    from edgecnn.errors import ModelFileError

    _, ok = _accepts(lambda d: validate_spec(d, "manifest.json"), doc, ModelFileError)
    spec, direct_ok = _accepts(PreprocessSpec.from_dict, doc, PreprocessError)
    if ok:
        assert direct_ok
        _usable(spec)


def _usable(spec):
    """A spec that passed: 0 and 255 normalize to finite float32 within the stated bound, and an image
    of the model's size fits."""
    from edgecnn.data.preprocess import MAX_INPUT_MAGNITUDE, fit_image, normalize

    x = normalize(np.array([0, 255], np.uint8).reshape(1, 1, 2, 1).repeat(spec.channels, axis=3), spec)
    assert x.dtype == np.float32 and np.all(np.isfinite(x)) and np.all(np.abs(x) <= MAX_INPUT_MAGNITUDE * 1.01)
    h, w = spec.input_size
    if h * w <= 1 << 16:
        assert fit_image(np.zeros((h, w, 3), np.uint8), spec).shape == (h, w, spec.channels)


# ---------------------------------------------------------------------------- the flatbuffer reader
BASES = {"quantized": flat.quantized_model(), "names": flat.control_names(), "tensors": flat.many_tensors(5)}


@st.composite
def damaged(draw):
    data = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        chunk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
            [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x04\x00\x00\x00"]))
        data[at:at + len(chunk)] = chunk
    if draw(st.booleans()) and draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(data=damaged() | st.binary(max_size=64).map(lambda b: b[:4].ljust(4, b"\0") + b"TFL3" + b[4:]))
def test_flatbuffer_reader(data):
    from edgecnn.errors import ModelFileError
    from edgecnn.measure.anatomy import format_breakdown, tflite_breakdown

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.tflite"
        p.write_bytes(data)
        b, ok = _accepts(tflite_breakdown, p, ModelFileError)
    if ok:
        assert b["bytes"] == len(data) and b["tensors"] >= 0 and len(b["ops"]) <= len(data) // 4
        text = format_breakdown(b)
        assert not any(ch in text for ch in "\x1b\x07\r")


def test_the_bases_read_cleanly():
    """The undamaged models the flatbuffer property starts from are valid (so damage is what it tests)."""
    from edgecnn.measure.anatomy import tflite_breakdown

    with tempfile.TemporaryDirectory() as d:
        for name, data in BASES.items():
            p = Path(d) / f"{name}.tflite"
            p.write_bytes(data)
            assert tflite_breakdown(p)["bytes"] == len(data), name


@pytest.mark.parametrize("base", [RUN, MANIFEST, TF_CONFIG, COST_TABLE, RESULTS])
def test_the_base_documents_are_valid(base):
    """The documents the mutations start from pass their readers (a property over invalid bases
    would only test the first refusal)."""
    from edgecnn.benchmark.report import validate_doc
    from edgecnn.contract.manifest import validate
    from edgecnn.contract.run import validate_run_info
    from edgecnn.export.mixed import validate_cost_table
    from edgecnn.train.cluster import parse_tf_config

    check = {id(RUN): lambda d: validate_run_info(d, "r"), id(MANIFEST): validate,
             id(TF_CONFIG): lambda d: parse_tf_config(json.dumps(d)), id(COST_TABLE): validate_cost_table,
             id(RESULTS): lambda d: validate_doc(d, "r")}[id(base)]
    check(copy.deepcopy(base))
