"""For each target, the one file to ship (edgecnn/benchmark/recommend.py), the manifest field that
records it (validated like the rest of the contract), and the commands that use it by default."""
from __future__ import annotations

import json
import shutil

import pytest
from _hostile_world import MODEL_ERR, digest_tree, edit_manifest, invoke, run_of
from _refusals import assert_refused

from edgecnn.benchmark.recommend import markdown_lines, recommend
from edgecnn.errors import InvalidConfigError
from edgecnn.measure.boards import parse_targets
from edgecnn.measure.machine import this_board


def _manifest(verified=("m_fp32.tflite", "m_int8.tflite", "m_mixed.tflite", "m_int8.onnx")):
    arts = {}
    for name in ("m_fp32.tflite", "m_int8.tflite", "m_mixed.tflite", "m_int8.onnx"):
        fmt = name.rsplit(".", 1)[1]
        prec = name.split("_")[1].split(".")[0]
        arts[name] = {"format": fmt, "precision": prec, "bytes": 1000, "verified": name in verified,
                      "verification": {"top1": 0.80 if prec == "fp32" else 0.79}}
    return {"artifacts": arts, "keras": {"top1": 0.80}}


def _row(artifact, runtime, ms, threads=1, fmt="tflite"):
    return {"artifact": artifact, "runtime": runtime, "threads": threads, "format": fmt,
            "timing": {"latency": {"p50_ms": ms}, "fps": 1000 / ms}, "memory": {"peak_rss_mb": 50.0}}


def _emu(artifact, board, ms, threads=1):
    return {"artifact": artifact, "board": board, "threads": threads, "predicted_ms": ms, "fps": 1000 / ms,
            "error_pct": 17.0}


DOC = {"rows": [_row("m_fp32.tflite", "litert", 4.0), _row("m_int8.tflite", "litert", 1.5),
                _row("m_mixed.tflite", "litert", 1.2), _row("m_int8.onnx", "onnxruntime", 1.0, fmt="onnx"),
                _row("m_int8.onnx", "keras", 0.1, fmt="keras")],
       "emulated": [_emu("m_fp32.tflite", "pi4", 60.0), _emu("m_int8.tflite", "pi4", 22.0),
                    _emu("m_mixed.tflite", "pi4", 25.0), _emu("m_fp32.tflite", "pi4", 16.0, threads=4),
                    _emu("m_int8.tflite", "pi4", 6.0, threads=4), _emu("m_mixed.tflite", "pi4", 7.0, threads=4),
                    _emu("m_fp32.tflite", "pi5", 30.0), _emu("m_int8.tflite", "pi5", 8.0),
                    _emu("m_mixed.tflite", "pi5", 7.0)]}


def test_the_fastest_verified_artifact_on_each_targets_own_costs():
    recs = recommend(DOC, _manifest(), ["pi4", "pi5", "host"])
    assert recs["pi4"]["artifact"] == "m_int8.tflite"   # on the Pi 4 the mixed file is slower
    assert recs["pi5"]["artifact"] == "m_mixed.tflite"  # on the Pi 5 it is faster
    assert recs["host"]["artifact"] == "m_int8.onnx"    # measured here; the Keras reference is no candidate
    assert recs["pi4"]["latency_ms"] == {"1": 22.0, "4": 6.0} and recs["pi4"]["source"] == "predicted"
    assert recs["pi4"]["reason"] == ("int8: 2.7x faster than fp32 on the Raspberry Pi 4, 1.0 points below Keras")
    assert recs["host"]["source"] == "measured" and recs["host"]["runtime"] == "onnxruntime"


def test_an_unverified_artifact_is_never_recommended_and_targets_without_costs_get_none():
    recs = recommend(DOC, _manifest(verified=("m_fp32.tflite", "m_mixed.tflite")), ["pi4", "pi3", "host"])
    assert recs["pi4"]["artifact"] == "m_mixed.tflite" and recs["host"]["artifact"] == "m_mixed.tflite"
    assert "pi3" not in recs
    lines = markdown_lines(recs, ["pi4", "pi3", "host"], "no costs")
    assert lines[1] == "- **pi3**: no recommendation: no costs."
    assert lines[0].startswith("- **pi4**: `m_mixed.tflite` — predicted 25.00 ms (1 thread) / 7.00 ms (4 threads) ±17%")


def test_targets_parse_with_aliases_and_refuse_unknown_names():
    assert parse_targets(["pi4,HOST", "cm5", "pi4"]) == ["pi4", "host", "pi5"]
    with pytest.raises(InvalidConfigError, match="Did you mean: pi5"):
        parse_targets(["pi6"])


@pytest.mark.parametrize("model, mhz, key", [
    ("Raspberry Pi 4 Model B Rev 1.4", 1800.0, "pi4"), ("Raspberry Pi 4 Model B Rev 1.1", 1500.0, "pi4-1.5ghz"),
    ("Raspberry Pi 5 Model B Rev 1.0", 2400.0, "pi5"), ("Raspberry Pi 3 Model B Plus Rev 1.3", 1400.0, "pi3"),
    ("Raspberry Pi Zero 2 W Rev 1.0", 1000.0, "pi-zero2"), ("Raspberry Pi Compute Module 4 Rev 1.0", 1500.0,
                                                             "pi4-1.5ghz"), ("", None, None),
    ("Some Other Board", 2000.0, None)])
def test_the_board_this_runs_on(model, mhz, key):
    assert this_board(model, mhz) == key


# ----------------------------------------------------------------------------- the manifest field, hostile
def _recommend_int8(world, **changes):
    rec = {"artifact": "alexnet_tiny_dw_int8.tflite", "source": "measured", "runtime": "litert",
           "threads_ranked": 1, "latency_ms": {"1": 0.5}, "fps": {"1": 2000.0}, "peak_rss_mb": 60.0,
           "bytes": 1000, "top1": 0.1, "reason": "int8: 2.0x faster than fp32 on this machine"}
    rec.update(changes)
    edit_manifest(world, lambda m: m.update(recommended={"host": rec}))


@pytest.mark.parametrize("changes, words", [
    ({"artifact": "../../etc/passwd"}, ["not an artifact"]),
    ({"artifact": "alexnet_tiny_dw_fp16.tflite"}, ["not an artifact"]),
    ({"latency_ms": {"1": -1.0}}, ["latency_ms"]),
    ({"latency_ms": {"one": 1.0}}, ["latency_ms"]),
    ({"fps": []}, ["fps"]),
    ({"reason": "fast\x1b]0;pwned\x07"}, ["reason"]),
    ({"source": "guessed"}, ["source"]),
    ({"top1": -1}, ["top1"]),
    ({"bytes": "1000"}, ["bytes"]),
])
def test_hostile_recommendations_are_refused_like_the_rest_of_the_contract(world, tmp_path, changes, words):
    _recommend_int8(world, **changes)
    before = digest_tree(world)
    assert_refused(invoke("classify", run_of(world) / "export", _png(tmp_path)), MODEL_ERR, "recommended", *words)
    assert digest_tree(world) == before


def test_a_recommendation_of_an_unverified_artifact_is_refused(world, tmp_path):
    edit_manifest(world, lambda m: m["artifacts"]["alexnet_tiny_dw_int8.tflite"].update(verified=False))
    _recommend_int8(world)
    assert_refused(invoke("classify", run_of(world) / "export", _png(tmp_path)), MODEL_ERR, "not verified")


def _png(tmp_path):
    from PIL import Image

    p = tmp_path / "img.png"
    Image.new("RGB", (32, 32), (120, 40, 200)).save(p)
    return p


# ----------------------------------------------------------------------------- the defaults that use it
def test_classify_uses_the_artifact_recommended_for_this_machine_and_says_so(world, tmp_path):
    _recommend_int8(world, artifact="alexnet_tiny_dw_fp32.tflite", reason="fp32: the fastest here")
    res = invoke("classify", run_of(world) / "export", _png(tmp_path))
    assert res.exit_code == 0, res.output
    assert "using alexnet_tiny_dw_fp32.tflite, recommended for host: fp32: the fastest here" in res.output
    assert "alexnet_tiny_dw_fp32.tflite on litert" in res.output
    res = invoke("classify", run_of(world) / "export", _png(tmp_path), "--artifact", "alexnet_tiny_dw_int8.tflite")
    assert res.exit_code == 0 and "recommended" not in res.output and "alexnet_tiny_dw_int8.tflite on" in res.output


def test_bundle_android_uses_the_recommendation_for_the_phone_class_core(world, tmp_path):
    from _hostile_world import REPO

    app = tmp_path / "app"
    shutil.copytree(REPO / "android_app", app, ignore=shutil.ignore_patterns("build", ".gradle"))
    rec = {"artifact": "alexnet_tiny_dw_fp32.tflite", "source": "predicted", "runtime": "litert",
           "threads_ranked": 1, "latency_ms": {"1": 5.0, "4": 1.5}, "fps": {"1": 200.0, "4": 660.0},
           "bytes": 1000, "top1": 0.1, "reason": "fp32: the fastest on the Pi 5", "error_pct": None}
    edit_manifest(world, lambda m: m.update(recommended={"pi5": rec}))
    res = invoke("bundle", "android", run_of(world), "--app", app, "--images", 1)
    assert res.exit_code == 0, res.output
    assert "using alexnet_tiny_dw_fp32.tflite, recommended for pi5" in res.output
    spec = json.loads((app / "app" / "src" / "main" / "assets" / "edgecnn.json").read_text())
    assert spec["artifact"] == "alexnet_tiny_dw_fp32.tflite"
    res = invoke("bundle", "android", run_of(world), "--app", app, "--images", 1, "--artifact", "int8")
    assert res.exit_code == 0 and "recommended" not in res.output
    assert json.loads((app / "app" / "src" / "main" / "assets" / "edgecnn.json").read_text())["artifact"] == \
        "alexnet_tiny_dw_int8.tflite"


# ----------------------------------------------------------------------------- a mixed file only when faster
def test_a_mixed_model_no_faster_than_int8_on_the_target_is_not_written(tmp_path):
    """Counted on the emulated Pi 4, a "mixed" model that is the int8 model itself costs exactly
    what int8 does: it is not written, and the reason says int8 is already the best there."""
    from _tiny_export import build_tiny_export

    from edgecnn.export.formats import Skipped
    from edgecnn.export.mixed_export import keep_if_faster

    export = build_tiny_export(tmp_path / "e", precisions=("int8",))
    int8 = export / "tiny_int8.tflite"
    with pytest.raises(Skipped, match="int8 is already the best on the emulated pi4"):
        keep_if_faster(int8.read_bytes(), int8, {"float_ops": [{"op": "CONV_2D", "node": "c", "why": "speed"}]},
                       "pi4", lambda s: None)
    with pytest.raises(Skipped, match="every op is at its best in int8"):
        keep_if_faster(int8.read_bytes(), int8, {"float_ops": []}, "pi4", lambda s: None)
