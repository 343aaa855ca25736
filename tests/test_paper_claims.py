"""`edgecnn bench paper`: the papers' speed and size claims, declared beside the builders, against
measured artifacts. The comparison itself is checked on known latencies with hand-computed
answers; the end-to-end run uses a tiny subset (two AlexNet-like models, fp32, 3 timed runs),
and every figure it is checked against is recomputed here from the raw timed runs."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.report import paper
from edgecnn.measure.stats import summarize
from edgecnn.cli import cli
from edgecnn.errors import InvalidConfigError
from edgecnn.models.registry import PaperClaim, list_claims

MODELS = ["alexnet_tiny", "alexnet_tiny_dw"]
DW_VS_PLAIN = "alexnet_tiny_dw / alexnet_tiny latency, fp32"
# A target over the two measured models, both ways round: exactly one of them passes.
TARGETS = (
    PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", target=("<=", 1.0)),
    PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", target=(">", 1.0)),
)


# ----------------------------------------------------------------------------- claims as data
def test_claims_are_declared_beside_the_builders():
    claims = {c.label: c for c in list_claims()}
    e_int8 = claims["mobilenetv2_e / mobilenetv2_ref latency, int8"]
    assert (e_int8.kind, e_int8.paper, e_int8.target) == ("latency_ratio", 0.5, ("<=", 0.60))
    assert claims["mobilenetv2_e / mobilenetv2_ref latency, fp32"].paper == 0.5
    assert claims["mobilenetv2_e / mobilenetv2_ref TFLite size, fp32"].paper == pytest.approx(0.402, abs=5e-4)
    q = claims["quicknet FPS, int8 / fp32"]
    assert (q.kind, q.denominator, q.target) == ("fps_ratio", ("quicknet", "fp32"), (">=", 2.5))
    assert claims["quicknet FPS, fp32"].paper == 15 and claims["quicknet FPS, int8"].paper == 60
    assert {"sepresnet_cifar / resnet20 latency, fp32", "cmiv4_1 / miv4 latency, int8", "rel3 / rel latency, int8",
            "alexnet_tiny_dw_res / alexnet_tiny latency, int8"} <= set(claims)
    # Inception-V4-sized models are built small and converted to int8 only.
    assert paper.plan(["cmiv4_1"]) == [paper.Planned("cmiv4_1", (("input_shape", (75, 75, 3)), ("num_classes", 4)),
                                                     ("int8",))]


def test_a_claim_must_be_well_formed():
    with pytest.raises(ValueError, match="relative_to"):
        PaperClaim("latency_ratio", "alexnet_tiny")
    with pytest.raises(ValueError, match="relative_to"):
        PaperClaim("fps", "alexnet_tiny", relative_to="alexnet_tiny_dw")
    with pytest.raises(ValueError, match="kind"):
        PaperClaim("speed", "alexnet_tiny")
    with pytest.raises(ValueError, match="fp16"):
        PaperClaim("fps", "alexnet_tiny", "fp16")
    with pytest.raises(ValueError, match="target"):
        PaperClaim("fps", "alexnet_tiny", target=("=~", 1.0))


def test_benchmark_stage_neither_builds_nor_converts():
    import edgecnn.benchmark as bench

    root = Path(bench.__file__).parent
    assert not (root / "paper_claims.py").exists()
    for f in root.glob("*.py"):
        text = f.read_text()
        assert "edgecnn.export" not in text and "create_model" not in text, f.name
    src = Path(paper.__file__).read_text()
    assert "getsource" not in src and "tflite._" not in src


# ----------------------------------------------------------------------------- the comparison, on known numbers
def _entry(latencies_ms, size_bytes):
    return {"latency": summarize(latencies_ms), "size_bytes": size_bytes}


KNOWN = {
    # mean 4 ms, median 1 ms: a claim that used the median would come out 8x off.
    "alexnet_tiny_dw:fp32": _entry([1.0, 1.0, 10.0], 300),
    "alexnet_tiny:fp32": _entry([6.0, 10.0], 1000),  # mean 8 ms
    "alexnet_tiny:int8": _entry([2.0, 2.0], 250),  # mean 2 ms
}


def test_ratio_and_pass_fail_follow_the_measured_latencies():
    claims = [
        PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", paper=0.25,
                   target=("<=", 0.6)),
        PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", target=("<=", 0.4)),
        PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", target=(">", 0.5)),
        PaperClaim("latency_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny", target=(">=", 0.5)),
        PaperClaim("fps", "alexnet_tiny_dw", "fp32", paper=500.0),
        PaperClaim("fps_ratio", "alexnet_tiny", "int8", relative_to="alexnet_tiny", relative_precision="fp32",
                   target=(">=", 2.5)),
        PaperClaim("latency_ms", "alexnet_tiny", "int8"),
        PaperClaim("size_ratio", "alexnet_tiny_dw", "fp32", relative_to="alexnet_tiny"),
        PaperClaim("size_bytes", "alexnet_tiny", "int8"),
        PaperClaim("fps", "quicknet", "int8", target=(">=", 0.0)),  # not measured: left out
        PaperClaim("latency_ratio", "alexnet_tiny_dw", "int8", relative_to="alexnet_tiny"),  # numerator not measured
    ]
    rows = paper.evaluate_claims(KNOWN, claims)
    got = [(r["ours"], r["passed"]) for r in rows]
    assert got == [pytest.approx((0.5, True)), pytest.approx((0.5, False)), pytest.approx((0.5, False)),
                   pytest.approx((0.5, True)), pytest.approx((250.0, None)), pytest.approx((4.0, True)),
                   pytest.approx((2.0, None)), pytest.approx((0.3, None)), pytest.approx((250, None))]
    assert rows[0]["ours_vs_paper"] == pytest.approx(2.0) and rows[4]["ours_vs_paper"] == pytest.approx(0.5)
    assert [r["statistic"] for r in rows] == ["mean"] * 7 + [None, None]
    assert [r["runs"] for r in rows] == [2, 2, 2, 2, 3, 2, 2, None, None]
    assert [r["target"] for r in rows[:4]] == ["<= 0.6", "<= 0.4", "> 0.5", ">= 0.5"]
    assert rows[5]["claim"] == "alexnet_tiny FPS, int8 / fp32"


def test_pooled_rounds_are_summarized_by_the_benchmark_statistics():
    def row(path, lat):
        return {"path": path, "batch": 1, "latencies_ms": lat, "timing": {"init_ms": 1.0, "latency": {}, "fps": 0}}

    pooled = paper.pool_rows([[row("a", [1.0, 2.0]), row("b", [5.0])], [row("a", [3.0, 6.0]), row("b", [7.0])]])
    a, b = pooled
    assert a["latencies_ms"] == [1.0, 2.0, 3.0, 6.0] and a["rounds"] == 2
    assert a["timing"]["latency"]["count"] == 4
    assert a["timing"]["latency"]["mean_ms"] == pytest.approx(3.0)
    assert a["timing"]["latency"]["p50_ms"] == pytest.approx(2.5)
    assert a["timing"]["fps"] == pytest.approx(1000.0 / 3.0)
    assert b["timing"]["latency"]["mean_ms"] == pytest.approx(6.0) and b["timing"]["init_ms"] == 1.0


def test_unknown_model_and_precision_are_refused(tmp_path):
    with pytest.raises(InvalidConfigError, match="alexnet_tiny"):
        paper.plan(["alexnet_tinyy"])
    with pytest.raises(InvalidConfigError, match="fp16"):
        paper.plan(MODELS, precisions=("fp16",))
    with pytest.raises(InvalidConfigError, match="not both"):
        paper.run_paper_claims(MODELS, out_dir=tmp_path, runs=3, seconds=1.0)


# ----------------------------------------------------------------------------- end to end, tiny
@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    doc = paper.run_paper_claims(MODELS, out_dir=out, cache_dir=out / ".cache", runs=3, rounds=1, warmup=1,
                                 precisions=("fp32",), claims=list_claims() + list(TARGETS), isolate=False)
    return out, doc


def _raw(doc, model):
    """The timed runs of ``model``'s fp32 artifact, as the harness returned them."""
    (row,) = [r for r in doc["rows"] if Path(r["path"]).parent.name == model]
    return row["latencies_ms"]


def test_writes_md_json_and_plot_with_the_models_rows(subset):
    out, _ = subset
    on_disk = json.loads((out / "paper_claims.json").read_text())
    md = (out / "paper_claims.md").read_text()
    assert [r["model"] for r in on_disk["models"]] == MODELS
    for r in on_disk["models"]:
        assert r["fp32_runs"] == 3 and r["int8_mean_ms"] is None
        assert r["fp32_mean_ms"] == pytest.approx(np.mean(_raw(on_disk, r["model"])))
        assert r["fp32_p50_ms"] == pytest.approx(np.median(_raw(on_disk, r["model"])))
        assert f"| {r['model']} |" in md
        assert (out / ".cache" / r["model"] / "manifest.json").is_file()
    assert all(len(r["latencies_ms"]) == 3 for r in on_disk["rows"])
    assert on_disk["context"]["threads"] == 1 and on_disk["context"]["batch"] == 1
    assert on_disk["context"]["latency_statistic"] == "mean" and "Latency statistic: the mean" in md
    assert "bundled CIFAR-10 sample" in on_disk["context"]["inputs"]
    png = out / "paper_claims_latency.png"
    assert on_disk["plots"] == [str(png)] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_claims_are_those_of_the_measured_models_only(subset):
    from edgecnn.models.zoo_report import measure

    _, doc = subset
    labels = [c["claim"] for c in doc["claims"]]
    assert DW_VS_PLAIN in labels
    # Nothing about models or precisions not measured in this run.
    assert not any("quicknet" in l or "mobilenetv2" in l or "int8" in l or "dw_res" in l for l in labels)
    figures = {f["figure"]: f for f in doc["figures"]}
    assert set(figures) == {"alexnet_tiny params", "alexnet_tiny_dw params"}
    for model in MODELS:
        f = figures[f"{model} params"]
        assert f["ours"] == measure(model)["params"]
        assert f["ours_vs_paper"] == pytest.approx(f["ours"] / f["paper"]) and f["ok"]


def test_end_to_end_ratio_is_the_mean_of_the_timed_runs(subset):
    out, doc = subset
    ratio = np.mean(_raw(doc, "alexnet_tiny_dw")) / np.mean(_raw(doc, "alexnet_tiny"))
    rows = [c for c in doc["claims"] if c["claim"] == DW_VS_PLAIN]
    assert len(rows) == 3  # the registered claim and the two test targets
    for r in rows:
        assert r["ours"] == pytest.approx(ratio) and r["statistic"] == "mean" and r["runs"] == 3
    assert [(t["target"], t["passed"]) for t in doc["targets"]] == [("<= 1", bool(ratio <= 1.0)),
                                                                     ("> 1", bool(ratio > 1.0))]
    md = (out / "paper_claims.md").read_text()
    for t in doc["targets"]:
        assert f"| {t['claim']} | {t['ours']:.3f} | {t['target']} | {'PASS' if t['passed'] else 'FAIL'} |" in md


def test_cache_is_reused_while_the_sha256_holds(subset):
    out, doc = subset
    cache = out / ".cache"
    arts = sorted(cache.glob("*/*.tflite"))
    assert [p.parent.name for p in arts] == MODELS
    before = {p: p.stat().st_mtime_ns for p in arts}
    again = paper.run_paper_claims(MODELS[:1], out_dir=out / "again", cache_dir=cache, runs=1, rounds=1, warmup=0,
                                   precisions=("fp32",), make_plots=False, isolate=False)
    assert {p: p.stat().st_mtime_ns for p in arts} == before
    assert again["measured"]["alexnet_tiny:fp32"]["sha256"] == doc["measured"]["alexnet_tiny:fp32"]["sha256"]
    # A changed artifact no longer matches its manifest: exported again.
    plain = [p for p in arts if p.parent.name == "alexnet_tiny"][0]
    plain.write_bytes(plain.read_bytes()[:-1] + b"\0")
    third = paper.run_paper_claims(MODELS[:1], out_dir=out / "third", cache_dir=cache, runs=1, rounds=1, warmup=0,
                                   precisions=("fp32",), make_plots=False, isolate=False)
    assert third["measured"]["alexnet_tiny:fp32"]["sha256"] == doc["measured"]["alexnet_tiny:fp32"]["sha256"]
    assert plain.stat().st_mtime_ns != before[plain]


def test_cli_bench_paper(subset, tmp_path):
    out, _ = subset
    args = ["bench", "paper", "--out", str(tmp_path), "--cache-dir", str(out / ".cache"), "--models", "alexnet_tiny",
            "--precisions", "fp32", "--runs", "2", "--rounds", "1", "--warmup", "0", "--in-process", "--no-plots"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "# Paper claims vs. this machine" in res.output and "paper_claims.md" in res.output
    written = json.loads((tmp_path / "paper_claims.json").read_text())
    assert [r["fp32_runs"] for r in written["models"]] == [2] and written["plots"] == []
    res = CliRunner().invoke(cli, args + ["--seconds", "0.1"])
    assert res.exit_code == 2 and "not both" in res.output


# ----------------------------------------------------------------------------- emulated Pi 4 beside
def test_emulated_pi4_figures_beside_the_measured_ones(subset, tmp_path):
    from edgecnn.benchmark.emulated import check_emulator
    from edgecnn.emulate import format_error
    from edgecnn.errors import EmulatorError
    try:
        check_emulator()
    except EmulatorError as e:
        pytest.skip(f"no emulator here: {e.message}")
    out, _ = subset
    doc = paper.run_paper_claims(MODELS, out_dir=tmp_path, cache_dir=out / ".cache", runs=1, rounds=1, warmup=0,
                                 precisions=("fp32",), make_plots=False, isolate=False, emulate="pi4")
    em = {r["artifact"]: r for r in doc["emulated"]}
    assert set(em) == {"alexnet_tiny fp32", "alexnet_tiny_dw fp32"}
    assert all(r["label"] == "emulated pi4 (cortex-a72)" and r["threads"] == 1 and r["instructions"] > 0 for r in em.values())
    (row,) = [c for c in doc["claims"] if c["claim"] == DW_VS_PLAIN]
    e = row["emulated"]
    assert e["value"] == pytest.approx(em["alexnet_tiny_dw fp32"]["predicted_ms"] / em["alexnet_tiny fp32"]["predicted_ms"])
    assert e["error"] == format_error(em["alexnet_tiny_dw fp32"]) and e["error"].startswith("±")
    assert e["value"] != row["ours"]  # predicted on the A72, not this host's ratio
    md = (tmp_path / "paper_claims.md").read_text()
    assert "emulated Pi 4 (predicted) |" in md and "## Emulated Raspberry Pi (predicted, not measured)" in md
    assert f"{e['ms']:.3g} ms vs {e['den_ms']:.3g} ms {e['error']}" in md


def test_without_the_emulator_the_claims_table_is_unchanged_and_a_note_says_why(subset, tmp_path, monkeypatch):
    out, doc0 = subset
    monkeypatch.setenv("EDGECNN_ARM_ROOT", str(tmp_path))  # an empty folder: no arm64 root
    doc = paper.run_paper_claims(MODELS, out_dir=tmp_path, cache_dir=out / ".cache", runs=1, rounds=1, warmup=0,
                                 precisions=("fp32",), make_plots=False, isolate=False, emulate="pi4")
    assert "emulated" not in doc and all(c["emulated"] is None for c in doc["claims"])
    (note,) = [n for n in doc["notes"] if "emulated" in n]
    assert note.startswith("emulated pi4 figures skipped:") and "make arm-root" in note
    assert "emulated Pi 4" not in (tmp_path / "paper_claims.md").read_text().split("Notes:")[0]
