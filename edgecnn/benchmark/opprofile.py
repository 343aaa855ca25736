"""``--op-profile``: where the time goes, per op, as far as each runtime lets us see.

- ONNX: measured. ONNX Runtime's own profiler (``SessionOptions.enable_profiling``) records a
  ``<node>_kernel_time`` event per node per run; we aggregate them (mean microseconds per node
  and share of the summed node time).
- TFLite: **ai-edge-litert 2.3's Python Interpreter exposes no per-op timing** (no profiler hook;
  ``experimental_force_delegate_node_profiling`` only feeds the C++ profiler of
  ``benchmark_model --enable_op_profiling=true``, which the pip wheel does not ship). The nearest
  real thing it does expose is the model structure: every op with its output shape, its MACs
  (from the tensor shapes, batch 1), its share of the model's MACs, and whether XNNPACK took it
  (ops inside a DELEGATE node's partition). MAC share is not time share: memory-bound ops
  (pooling, quantize, depthwise) take more time than their MACs say.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

TFLITE_GAP = ("ai-edge-litert's Python Interpreter exposes no per-op timing; shown instead: the ops, their MACs "
              "(batch 1) and whether XNNPACK runs them. For measured per-op times use LiteRT's C++ benchmark_model "
              "--enable_op_profiling=true, or benchmark the ONNX export with --op-profile.")


def _numel(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if len(shape) else 1


def _tflite_macs(op: str, in_shapes: List[tuple], out_shape: tuple) -> int:
    if not out_shape:
        return 0
    per_image_out = _numel(out_shape[1:]) if len(out_shape) > 1 else _numel(out_shape)
    if op == "CONV_2D" and len(in_shapes) > 1:
        o, kh, kw, ci = in_shapes[1]  # OHWI filter
        return per_image_out * kh * kw * ci
    if op == "DEPTHWISE_CONV_2D" and len(in_shapes) > 1:
        _, kh, kw, _ = in_shapes[1]  # 1 x H x W x (C*m)
        return per_image_out * kh * kw
    if op == "TRANSPOSE_CONV" and len(in_shapes) > 2:
        o, kh, kw, ci = in_shapes[1]
        return _numel(in_shapes[2][1:]) * kh * kw * o
    if op == "FULLY_CONNECTED" and len(in_shapes) > 1:
        units, k = in_shapes[1]
        rows = per_image_out // max(1, units)
        return rows * units * k
    if op == "BATCH_MATMUL" and len(in_shapes) > 1:
        return per_image_out * int(in_shapes[0][-1])
    return 0


def profile_tflite(path, threads: int = 1, xnnpack: bool = True) -> dict:
    """The op list of a .tflite with MACs and delegation (no timing: see TFLITE_GAP)."""
    from edgecnn.measure.runtime import load
    runner = load(path, backend="litert" if xnnpack else "litert-noxnn", threads=threads)
    ops = runner.ops()
    shape = runner.tensor_shape

    producer: Dict[int, int] = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = op["index"]
    delegated: Dict[int, int] = {}
    partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
    for pi, d in enumerate(partitions):
        boundary = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if n is None or t in boundary or n in delegated:
                continue
            delegated[n] = pi
            stack.extend(int(x) for x in ops[n]["inputs"] if x >= 0)
    rows = []
    for op in ops:
        if op["op_name"] == "DELEGATE":
            continue
        ins = [shape(t) for t in op["inputs"] if t >= 0]
        out = shape(op["outputs"][0]) if len(op["outputs"]) else ()
        rows.append({"index": op["index"], "op": op["op_name"], "output_shape": list(out),
                     "dtype": np.dtype(op["result_types"][0]).name if op["result_types"] else None,
                     "macs": _tflite_macs(op["op_name"], ins, out),
                     "delegated": (f"XNNPACK (partition {delegated[op['index']]})" if op["index"] in delegated
                                   else "no (builtin kernel)")})
    total = sum(r["macs"] for r in rows)
    for r in rows:
        r["mac_share"] = r["macs"] / total if total else 0.0
    return {"artifact": Path(path).name, "runtime": "litert" if xnnpack else "litert-noxnn", "threads": threads,
            "kind": "structure", "timing_available": False, "note": TFLITE_GAP, "total_macs": total,
            "delegate_partitions": len(partitions), "ops": rows}


def profile_onnx(path, threads: int = 1, runs: int = 50, warmup: int = 5) -> dict:
    """Measured per-node times from ONNX Runtime's profiler, mean over ``runs`` runs."""
    from edgecnn.measure.runtime import load

    # Loading validates the file and its shape; the profiler records every run of this session.
    runner = load(path, backend="onnxruntime", threads=threads, profile=True)
    x = np.random.default_rng(0).standard_normal(runner.input.shape).astype(np.float32)
    runner.set_input(runner.prepare(x))
    for _ in range(warmup + runs):
        runner.invoke()
    events = runner.end_profiling()
    node_events = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    run_events = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    # The profiler records warm-up runs too: keep the last ``runs`` model_run spans and their nodes.
    run_events = sorted(run_events, key=lambda e: e["ts"])[-runs:]
    t_from = run_events[0]["ts"] if run_events else 0
    node_events = [e for e in node_events if e["ts"] >= t_from]
    agg: Dict[str, dict] = {}
    for e in node_events:
        name = e["name"][: -len("_kernel_time")]
        a = agg.setdefault(name, {"node": name, "op": (e.get("args") or {}).get("op_name"),
                                  "provider": (e.get("args") or {}).get("provider"), "calls": 0, "total_us": 0.0,
                                  "first_ts": e["ts"]})
        a["calls"] += 1
        a["total_us"] += float(e.get("dur", 0))
    rows = sorted(agg.values(), key=lambda a: a["first_ts"])
    total = sum(a["total_us"] for a in rows)
    for i, a in enumerate(rows):
        a.pop("first_ts")
        a["index"] = i
        a["mean_us"] = a["total_us"] / a["calls"]
        a["time_share"] = a["total_us"] / total if total else 0.0
    run_mean = float(np.mean([e["dur"] for e in run_events])) if run_events else None
    return {"artifact": Path(path).name, "runtime": "onnxruntime", "threads": threads, "kind": "measured",
            "timing_available": True, "runs": len(run_events), "model_run_mean_us": run_mean,
            "note": f"ONNX Runtime profiler: kernel time per node, mean over {len(run_events)} runs (us)",
            "ops": rows}


def op_profile(path, runtime: str = None, threads: int = 1, runs: int = 50) -> dict:
    from edgecnn.measure.runtime import model_format
    fmt = model_format(path)
    if fmt == "onnx":
        return profile_onnx(path, threads, runs)
    return profile_tflite(path, threads, xnnpack=(runtime != "litert-noxnn"))


def format_op_profile(p: dict, limit: int = 40) -> str:
    lines = [f"Op profile of {p['artifact']} on {p['runtime']} ({p['threads']} thread(s)): {p['note']}"]
    if p["timing_available"]:
        lines.append(f"{'#':>3}  {'op':<22} {'node':<40} {'mean us':>9} {'share':>7}  calls")
        for a in sorted(p["ops"], key=lambda a: -a["total_us"])[:limit]:
            lines.append(f"{a['index']:>3}  {str(a['op']):<22} {a['node'][:40]:<40} {a['mean_us']:>9.2f} "
                         f"{a['time_share'] * 100:>6.1f}%  {a['calls']}")
        if p.get("model_run_mean_us") is not None:
            lines.append(f"whole run (model_run): mean {p['model_run_mean_us']:.1f} us over {p['runs']} runs")
    else:
        lines.append(f"{'#':>3}  {'op':<22} {'output shape':<18} {'dtype':<8} {'MACs':>12} {'MAC share':>9}  delegated")
        for r in p["ops"][:limit]:
            lines.append(f"{r['index']:>3}  {r['op']:<22} {str(r['output_shape']):<18} {str(r['dtype']):<8} "
                         f"{r['macs']:>12,} {r['mac_share'] * 100:>8.1f}%  {r['delegated']}")
        lines.append(f"total {p['total_macs']:,} MACs (batch 1); {p['delegate_partitions']} XNNPACK partition(s)")
    if len(p["ops"]) > limit:
        lines.append(f"... {len(p['ops']) - limit} more ops in the JSON")
    return "\n".join(lines)
