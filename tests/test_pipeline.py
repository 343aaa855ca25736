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
    for name in ("alexnet_tiny_dw_fp32.tflite", "alexnet_tiny_dw_int8.tflite", "alexnet_tiny_dw_mixed.tflite",
                 "alexnet_tiny_dw_fp32.onnx", "alexnet_tiny_dw_int8.onnx"):
        assert name in manifest["artifacts"] and manifest["artifacts"][name]["verified"]
        assert re.search(rf"\| {re.escape(name)} \|.*\| yes \| \d+\.\d+ ms \(n=5\) \|", report), report
        assert any(r["artifact"] == name for r in bench["rows"])
    assert "## Mixed precision" in report and (run / "export" / "quant_report.json").is_file()
    for png in ("training_curves.png", "confusion_matrix.png", "bench/latency.png", "bench/pareto.png",
                "export/quant_error.png"):
        assert (run / png).stat().st_size > 0 and png in report
