"""The paper-claims table (``make bench``) on a tiny subset: two AlexNet-like models, fp32,
3 timed runs each. Every expected figure is recomputed here from the measured values the run
wrote, never typed in."""
import json

import numpy as np
import pytest

import edgecnn  # noqa: F401
from edgecnn.benchmark import paper_claims as pc
from edgecnn.errors import InvalidConfigError

MODELS = ["alexnet_tiny", "alexnet_tiny_dw"]
# A target over the two measured models, both ways round: exactly one of them passes.
TARGETS = (
    pc.Claim("test", "dw / plain latency <= 1", ("alexnet_tiny_dw", "fp32", "latency_ms"),
             ("alexnet_tiny", "fp32", "latency_ms"), target=("<=", 1.0)),
    pc.Claim("test", "dw / plain latency > 1", ("alexnet_tiny_dw", "fp32", "latency_ms"),
             ("alexnet_tiny", "fp32", "latency_ms"), target=(">", 1.0)),
)


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    doc = pc.run_paper_claims(MODELS, out_dir=out, cache_dir=out / ".cache", runs=3, rounds=1, warmup=1,
                              precisions=("fp32",), claims=pc.CLAIMS + TARGETS)
    return out, doc


def _median(doc, key):
    return float(np.median(doc["latencies_ms"][key]))


def test_writes_md_and_json_with_the_models_rows(subset):
    out, doc = subset
    on_disk = json.loads((out / "paper_claims.json").read_text())
    md = (out / "paper_claims.md").read_text()
    assert [r["model"] for r in on_disk["models"]] == MODELS
    for r in on_disk["models"]:
        assert r["fp32_runs"] == 3 and r["int8_ms"] is None
        assert r["fp32_ms"] == pytest.approx(_median(on_disk, f"{r['model']}:fp32"))
        assert f"| {r['model']} |" in md
    assert all(len(v) == 3 for v in on_disk["latencies_ms"].values())
    assert sorted(on_disk["latencies_ms"]) == sorted(f"{m}:fp32" for m in MODELS)
    assert on_disk["context"]["threads"] == 1 and on_disk["context"]["batch"] == 1
    assert "bundled CIFAR-10 sample" in on_disk["context"]["inputs"]


def test_claims_are_those_of_the_measured_models_only(subset):
    _, doc = subset
    labels = [c["claim"] for c in doc["claims"]]
    assert "plain params" in labels and "depthwise params" in labels
    assert "alexnet_tiny_dw / alexnet_tiny latency, fp32" in labels
    # Nothing about models or precisions not measured in this run.
    assert not any("QuickNet" in l or "E / [1]" in l or "int8" in l or "residual" in l for l in labels)
    params = {c["claim"]: c for c in doc["claims"]}
    for label, model in (("plain params", "alexnet_tiny"), ("depthwise params", "alexnet_tiny_dw")):
        c = params[label]
        assert c["ours"] == doc["measured"][f"{model}:fp32"]["params"]
        assert c["ours_vs_paper"] == pytest.approx(c["ours"] / c["paper"])


def test_ratio_and_pass_fail_follow_the_measured_latencies(subset):
    out, doc = subset
    ratio = _median(doc, "alexnet_tiny_dw:fp32") / _median(doc, "alexnet_tiny:fp32")
    rows = {c["claim"]: c for c in doc["claims"]}
    assert rows["alexnet_tiny_dw / alexnet_tiny latency, fp32"]["ours"] == pytest.approx(ratio)
    le, gt = rows["dw / plain latency <= 1"], rows["dw / plain latency > 1"]
    assert le["ours"] == pytest.approx(ratio) and gt["ours"] == pytest.approx(ratio)
    assert le["passed"] is (ratio <= 1.0) and gt["passed"] is (ratio > 1.0)
    assert le["passed"] != gt["passed"]
    assert [t["claim"] for t in doc["targets"]] == [t.label for t in TARGETS]
    md = (out / "paper_claims.md").read_text()
    for t in doc["targets"]:
        assert f"| {t['claim']} | {t['ours']:.3f} | {t['target']} | {'PASS' if t['passed'] else 'FAIL'} |" in md


def test_evaluate_claims_thresholds_either_side_of_the_measurement(subset):
    _, doc = subset
    measured = {k: dict(v, latency=dict(v["latency"])) for k, v in doc["measured"].items()}
    fps = pc.figures_of(measured["alexnet_tiny:fp32"])["fps"]
    assert fps == pytest.approx(1000.0 / measured["alexnet_tiny:fp32"]["latency"]["p50_ms"])
    below = pc.Claim("t", "fps >= half", ("alexnet_tiny", "fp32", "fps"), target=(">=", fps / 2))
    above = pc.Claim("t", "fps >= double", ("alexnet_tiny", "fp32", "fps"), target=(">=", fps * 2))
    missing = pc.Claim("t", "unmeasured", ("quicknet", "int8", "fps"), target=(">=", 0.0))
    rows = pc.evaluate_claims(measured, [below, above, missing])
    assert [(r["claim"], r["passed"]) for r in rows] == [("fps >= half", True), ("fps >= double", False)]


def test_cache_is_reused(subset):
    out, doc = subset
    cache = out / ".cache"
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")}
    assert len(before) == 2
    again = pc.run_paper_claims(MODELS[:1], out_dir=out / "again", cache_dir=cache, runs=1, rounds=1, warmup=0,
                                precisions=("fp32",), make_plots=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")} == before
    assert again["measured"]["alexnet_tiny:fp32"]["artifact"] == doc["measured"]["alexnet_tiny:fp32"]["artifact"]


def test_unknown_model_and_precision_are_refused(tmp_path):
    with pytest.raises(InvalidConfigError, match="alexnet_tiny"):
        pc.run_paper_claims(["alexnet_tinyy"], out_dir=tmp_path)
    with pytest.raises(InvalidConfigError, match="fp16"):
        pc.run_paper_claims(MODELS, out_dir=tmp_path, precisions=("fp16",))
