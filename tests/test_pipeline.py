"""`edgecnn pipeline`: every stage runs and the report ties them together."""
import json
import re

from click.testing import CliRunner

from edgecnn.cli import cli


def test_pipeline_writes_a_complete_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["pipeline", "alexnet_tiny_dw", "--name", "p", "--epochs", "1",
                                   "--max-train-images", "300", "--bench-runs", "5", "--calibration", "50",
                                   "--max-drop", "100"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "alexnet_tiny_dw" / "p"
    report = (run / "report.md").read_text()
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    bench = json.loads((run / "bench" / "results.json").read_text())
    names = ["alexnet_tiny_dw_fp32.tflite", "alexnet_tiny_dw_int8.tflite", "alexnet_tiny_dw_fp32.onnx",
             "alexnet_tiny_dw_int8.onnx"]
    # The mixed file is chosen on the first target's costs (the emulated Pi 4) and written only when
    # it beats full int8 there; otherwise the manifest and the report say why it is not.
    mixed = "alexnet_tiny_dw_mixed.tflite"
    if mixed in manifest["artifacts"]:
        names.append(mixed)
        assert manifest["artifacts"][mixed]["verified"] and "## Mixed precision" in report
        assert json.loads((run / "export" / "quant_report.json").read_text())["whole_model"]["target"] == "pi4"
    else:
        assert "int8 is already the best on the emulated pi4" in manifest["skipped"]["tflite-mixed"]
        assert f"tflite-mixed not written: {manifest['skipped']['tflite-mixed']}" in report
    for name in names:
        assert name in manifest["artifacts"] and manifest["artifacts"][name]["verified"]
        assert re.search(rf"\| {re.escape(name)} \|.*\| yes \| \d+\.\d+ ms \(n=5\) \|", report), report
        assert any(r["artifact"] == name for r in bench["rows"])
    # The report opens with the file to ship per target, the same as the manifest records.
    head = report.split("## The file to ship, per target", 1)[1].split("Data:", 1)[0]
    for target in ("pi4", "pi5", "host"):
        rec = manifest["recommended"][target]
        assert f"- **{target}**: `{rec['artifact']}`" in head and rec["artifact"] in names
        assert set(rec["latency_ms"]) == ({"1", "4"} if target != "host" else {"1"})
    for png in ("training_curves.png", "confusion_matrix.png", "bench/latency.png", "bench/pareto.png",
                "bench/pareto_pi4.png", "bench/pareto_pi5.png") + (("export/quant_error.png",) if mixed in names else ()):
        assert (run / png).stat().st_size > 0 and png in report
