"""Benchmarks of exported artifacts: the command's flow, tables, plots, remote boards, emulated rows.

Runs on a Raspberry Pi without TensorFlow: this package imports numpy, click, the standard
library, the runtime that is asked for (ai_edge_litert / tflite_runtime / onnxruntime) and
matplotlib for plots where installed; TensorFlow only for the ``keras`` reference runtime.

Modules: ``targets`` (files and run directories -> what to benchmark), ``harness`` (one
measurement and the loop over combinations; ``worker`` runs one measurement in a fresh process),
``interleaved`` (A/B timing in one process), ``outputs`` (the command's flow: output folder,
merging, op profiles), ``report`` (tables, plots, merging), ``remote`` (ssh), ``opprofile``
(``--op-profile``), ``emulated`` (``--emulate``: emulated Raspberry Pi rows). The timed loops,
statistics, memory, the machine description, device profiles and runtime loading are the
measuring layer's (``edgecnn.measure``), shared with export.

Results document, ``bench/results.json`` (schema 1; stable: add keys, never rename)::

    {
      "schema": 1, "tool": "edgecnn 0.1.0", "created": ISO-8601, "command": str | null,
      "notes": [str],                       # e.g. artifacts skipped for want of a runtime
      "merged_from": [str],                 # only in merge_results() output
      "rows": [ROW, ...],
      "interleaved": {...},                 # only from --interleave (rows empty): interleaved.interleave()
      "emulated": [EMULATED_ROW, ...]       # only from --emulate: predicted, not measured (emulated.py)
    }

Each EMULATED_ROW is an ``edgecnn.emulate.emulate`` row (label "emulated pi4 (cortex-a72)", board,
core, artifact, threads, instructions per inference, predicted_ms, fps, error_pct, ...) with the
artifact's precision, model and sha256; it is written to emulated.csv and its own Markdown section.

Each ROW is self-describing, so rows from a Pi and from here merge into one table::

    artifact        file name ("quicknet_int8.tflite", "model.keras")
    path, sha256    where it was and what exactly it was
    format          "tflite" | "onnx" | "keras";  precision: "fp32"|"fp16"|"dynamic"|"int8"|"mixed"|null
    model, run      from manifest.json / run.json, else null
    size_bytes      file size
    runtime         a canonical name of edgecnn.measure.runtime.BACKENDS: "litert" | "litert-noxnn" | "litert-ref" |
                    "tflite-runtime" | "tf-lite" | "onnxruntime" | "keras"
    runtime_title, runtime_version, xnnpack (bool | null)
    threads, batch, warmup_runs
    device          {"label": "x86 baseline of Raspberry Pi 4" | "measured on <board or CPU> (<arch>)",
                     "kind": "baseline" | "measured", "profile": "pi4" | null, "threads",
                     "pinned_cpus": [int] | null, "notes": [str]}
    platform        {"hostname", "machine", "cpu_model", "board", "cores", "usable_cores",
                     "cpu_max_mhz", "governor", "isa_flags": [str], "os", "kernel", "python", "numpy"}
    inputs          {"source", "images", "spec_note"?};  input: the model's input TensorInfo dict
    timing          {"init_ms", "first_inference_ms", "warmup": {"count", "mean_ms"},
                     "latency": {"count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms",
                                 "p95_ms", "p99_ms", "max_ms"},
                     "fps"}                 # latency per batch; fps = 1000 / mean_ms * batch
    latencies_ms    every timed run, ms (for the distribution plots)
    memory          {"rss_before_mb", "peak_rss_mb", "peak_increase_mb", "rss_after_mb", "method"}  (MiB)
    accuracy        {"top1", "agreement_with_keras", "max_abs_diff_vs_keras", "verified", "runtime",
                     "split", "n", "reason", "source"} from manifest.json, or null
    isolation       "subprocess" (default: one fresh process per row) | "in-process"

Statistics conventions are in ``edgecnn.measure.stats``.
"""
from edgecnn.benchmark.harness import SCHEMA, benchmark  # noqa: F401
from edgecnn.benchmark.interleaved import interleave  # noqa: F401
from edgecnn.measure.timing import measure_overhead  # noqa: F401
from edgecnn.benchmark.report import format_table, merge_results, write_results  # noqa: F401
