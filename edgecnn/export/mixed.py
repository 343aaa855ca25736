"""Mixed precision: each op int8 where it is faster and safe, float where it is not.

Full-integer int8 is not the fastest choice for every op on every CPU. On a Sapphire Rapids
CPU (LiteRT 2.3, XNNPACK, 1 thread) int8 depthwise convs ran ~2x *slower* than fp32 and the
small early GEMMs of structure E gained nothing (docs/int8-export.md: full int8 E near 0.7x
fp32); on an AMD EPYC without AMX the same ops are near par and full int8 E runs at 0.52x
(docs/mixed-precision.md). So costs are measured on the target, never assumed. This module
chooses the precision of every op from two pieces of data:

1. **A cost table** (``measure_op_costs``, or any dict of the same form): per op its fp32 and
   int8 cost on the target, per tensor the cost of a QUANTIZE and a DEQUANTIZE of it. Here it is
   measured by building each op of the model as a one-op Keras model at its real shape (the
   Keras layers the converter fused into that TFLite op, with their weights), converting it fp32,
   int8 with int8 input/output, and int8 with float input/output, and timing the three
   interleaved in one process on LiteRT + XNNPACK (the quantize/dequantize cost of a tensor is
   the float-I/O model's extra time, split over its input and output tensors by element count).
   Each path is timed as built, so a slow kernel (an int8 LEAKY_RELU with a negative alpha,
   say) shows up as slow rather than assumed fast. With a ``target`` board the same one-op
   models are instead counted on that emulated Raspberry Pi under qemu-user and their latency
   predicted by edgecnn.emulate's calibrated cost model, so the choice targets the Pi's kernels
   without a Pi. A cost table can also come from a file (``validate_cost_table`` checks it).
2. **Per-layer quantization error** (``quant_report``): the TFLite converter's
   ``tf.lite.experimental.QuantizationDebugger`` runs the int8 model instrumented with
   NumericVerify ops, on calibration and on held-out images; per quantized op we keep RMSE/scale
   (the converter's own per-layer figure) and the RMSE relative to the float tensor's RMS.

The choice (``choose_float_ops``) is exact for the cost model: the precision labelling that
minimizes the summed op costs plus a QUANTIZE/DEQUANTIZE at every float/int8 boundary it
creates is an s-t minimum cut (each boundary tensor is converted once, however many consumers
it feeds, modelled with one auxiliary node per tensor and direction). Then, when the chosen
model loses more than ``max_drop`` points of top-1 on held-out images, the tensors with the
largest relative error are kept float — their producer and every consumer, so the tensor never
passes through int8 — one at a time until the drop is within budget, and float ops that turn
out not to be needed are handed back to int8 (``accuracy_fallback``).

The mixed model itself is built by the converter's own selective quantization:
``QuantizationDebugOptions(denylisted_nodes=[...])`` + ``debugger.get_nondebug_quantized_model()``
(node names are the TFLite output tensor names of the ops kept float). No flatbuffer is edited.

Interpreters are created by edgecnn.measure.runtime; the debugger's own (inside TensorFlow) are the
exception, as they are part of that API.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.errors import ExportError, InvalidConfigError
from edgecnn.core.quiet import native_silenced

INPUT_NODE = "__input__"
OUTPUT_NODE = "__output__"
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
REPORT_FILE = "quant_report.json"
COST_TABLE_SCHEMA = 1
_INF = float("inf")
_EPS = 1e-9  # points of top-1: 100 * (a - b) of two image fractions is not exact in floating point


# ----------------------------------------------------------------------------- the graph
def op_graph(tflite) -> dict:
    """The dataflow graph of a quantized TFLite model, boundary ops looked through.

    -> {"nodes": {name: {"op", "inputs": [tensor names], "index"}}, "producer": {tensor: node},
    "consumers": {tensor: [nodes]}, "input": tensor, "output": tensor, "elements": {tensor: n},
    "scale": {tensor: float}}. A node's name is its output tensor's name (what the converter's
    ``denylisted_nodes`` takes). QUANTIZE/DEQUANTIZE are not nodes: their output tensor is an
    alias of their input, so the graph is the same whatever precision each op gets.
    """
    from edgecnn.measure.runtime import load

    r = load(tflite, backend="litert-noxnn")
    details = {d["index"]: d for d in r.tensor_details()}

    def name(i):
        return details[i]["name"] if i in details else f"t{i}"

    alias: Dict[int, int] = {}
    ops = r.ops()
    for o in ops:
        if o["op_name"] in BOUNDARY_OPS:
            alias[o["outputs"][0]] = o["inputs"][0]

    def root(i):
        while i in alias:
            i = alias[i]
        return i

    produced = {}
    for o in ops:
        if o["op_name"] not in BOUNDARY_OPS:
            for t in o["outputs"]:
                produced[t] = name(o["outputs"][0])
    ins_idx, outs_idx = r.io_indices()
    in_t, out_t = root(ins_idx[0]), root(outs_idx[0])
    nodes, consumers, producer, elements, scale = {}, {}, {}, {}, {}
    for o in ops:
        if o["op_name"] in BOUNDARY_OPS:
            continue
        n = name(o["outputs"][0])
        ins = []
        for t in o["inputs"]:
            if t < 0:
                continue
            t = root(t)
            if t == in_t or t in produced:
                tn = name(t)
                ins.append(tn)
                consumers.setdefault(tn, []).append(n)
        nodes[n] = {"op": o["op_name"], "inputs": ins, "index": int(o["index"])}
        producer[n] = n
        for t in o["outputs"]:
            elements[name(t)] = int(np.prod(r.tensor_shape(t)))
            q = details.get(t, {}).get("quantization_parameters") or {}
            sc = np.asarray(q.get("scales", []))
            if sc.size:
                scale[name(t)] = float(sc[0])
    elements[name(in_t)] = int(np.prod(r.tensor_shape(in_t)))
    producer[name(in_t)] = INPUT_NODE
    consumers.setdefault(name(out_t), []).append(OUTPUT_NODE)
    return {"nodes": nodes, "producer": producer, "consumers": consumers, "input": name(in_t),
            "output": name(out_t), "elements": elements, "scale": scale}


# ----------------------------------------------------------------------------- the choice
def _min_cut(n_nodes: int, edges: Dict[Tuple[int, int], float], s: int, t: int) -> set:
    """The source side of a minimum s-t cut, the largest one (Edmonds-Karp; graphs here have a
    few hundred nodes)."""
    adj: Dict[int, set] = {i: set() for i in range(n_nodes)}
    cap: Dict[Tuple[int, int], float] = {}
    for (u, v), c in edges.items():
        if c <= 0:
            continue
        cap[(u, v)] = cap.get((u, v), 0.0) + c
        cap.setdefault((v, u), 0.0)
        adj[u].add(v)
        adj[v].add(u)
    while True:
        parent = {s: None}
        q = deque([s])
        while q and t not in parent:
            u = q.popleft()
            for v in adj[u]:
                if v not in parent and cap[(u, v)] > 1e-12:
                    parent[v] = u
                    q.append(v)
        if t not in parent:
            break
        flow, v = _INF, t
        while parent[v] is not None:
            flow = min(flow, cap[(parent[v], v)])
            v = parent[v]
        if flow == _INF:
            raise ExportError("mixed precision: the cost model pins an op both float and int8")
        v = t
        while parent[v] is not None:
            u = parent[v]
            cap[(u, v)] -= flow
            cap[(v, u)] += flow
            v = u
    # Of the minimum cuts, the one with the largest source (int8) side: ties go to int8, the
    # precision asked for. Nodes that can still reach t in the residual graph are float.
    to_t = {t}
    q = deque([t])
    while q:
        v = q.popleft()
        for u in adj[v]:
            if u not in to_t and cap[(u, v)] > 1e-12:
                to_t.add(u)
                q.append(u)
    return set(range(n_nodes)) - to_t


def choose_float_ops(graph: dict, costs: dict, *, forced_float: Iterable[str] = ()) -> List[str]:
    """The ops to keep float so that the summed cost (ops + boundary conversions) is lowest.

    ``costs``: a cost table (``measure_op_costs``'s form): ``costs["ops"][node]`` has
    ``fp32_us``/``int8_us``, ``costs["tensors"][tensor]`` ``quantize_us``/``dequantize_us``.
    Ops the table does not list cost nothing either way (they follow their neighbours).
    ``forced_float``: ops that must stay float (e.g. for accuracy). The model's input and
    output are float. Returns the float ops in graph order.
    """
    op_costs, t_costs = costs.get("ops", {}), costs.get("tensors", {})
    names = list(graph["nodes"])
    idx = {n: i for i, n in enumerate(names)}
    S, T = len(names), len(names) + 1
    nxt = len(names) + 2
    edges: Dict[Tuple[int, int], float] = {}

    def add(u, v, c):
        edges[(u, v)] = edges.get((u, v), 0.0) + c

    forced = set(forced_float)
    for n in names:  # source side = int8, sink side = float
        c = op_costs.get(n, {})
        add(S, idx[n], float(c.get("fp32_us", 0.0)))   # cut when n is float
        add(idx[n], T, float(c.get("int8_us", 0.0)))   # cut when n is int8
        if n in forced:
            add(idx[n], T, _INF)
    for tensor, cons in graph["consumers"].items():
        prod = graph["producer"].get(tensor)
        if prod is None:
            continue
        tc = t_costs.get(tensor, {})
        u = T if prod == INPUT_NODE else idx[prod]   # the model input is float
        vs = [T if c == OUTPUT_NODE else idx[c] for c in cons]
        # float copy of an int8 tensor: aux node d is float when any consumer is; one DEQUANTIZE
        d = nxt
        nxt += 1
        add(u, d, float(tc.get("dequantize_us", 0.0)))
        for v in vs:
            add(d, v, _INF)
        # int8 copy of a float tensor: aux node q is int8 when any consumer is; one QUANTIZE
        qn = nxt
        nxt += 1
        add(qn, u, float(tc.get("quantize_us", 0.0)))
        for v in vs:
            add(v, qn, _INF)
    src = _min_cut(nxt, edges, S, T)
    return [n for n in names if idx[n] not in src]


def plan_cost(graph: dict, costs: dict, float_ops: Iterable[str]) -> float:
    """The summed cost (us) of a precision plan under ``costs``: ops plus one QUANTIZE or
    DEQUANTIZE per tensor that crosses between float and int8 (model input and output float)."""
    fl = set(float_ops)
    op_costs, t_costs = costs.get("ops", {}), costs.get("tensors", {})
    total = sum(float(op_costs.get(n, {}).get("fp32_us" if n in fl else "int8_us", 0.0)) for n in graph["nodes"])
    for tensor, cons in graph["consumers"].items():
        prod = graph["producer"].get(tensor)
        if prod is None:
            continue
        p_float = prod == INPUT_NODE or prod in fl
        c_float = [c == OUTPUT_NODE or c in fl for c in cons]
        tc = t_costs.get(tensor, {})
        if not p_float and any(c_float):
            total += float(tc.get("dequantize_us", 0.0))
        if p_float and not all(c_float):
            total += float(tc.get("quantize_us", 0.0))
    return total


def cost_table_spec():
    """A cost table's fields, typed and bounded: per node and per tensor, finite microseconds >= 0
    (an integer too large for a float is refused, not an OverflowError)."""
    from edgecnn.contract.checks import MapOf, Num, Obj, Str

    us = Num(0, 1e12)
    return Obj({}, {"ops": MapOf(Obj({}, {"fp32_us": us, "int8_us": us}, extra=True), key=Str(4096),
                                 max_len=100_000),
                    "tensors": MapOf(Obj({}, {"quantize_us": us, "dequantize_us": us}, extra=True), key=Str(4096),
                                     max_len=100_000)}, extra=True)


def validate_cost_table(table, where: str = "cost table") -> dict:
    """A cost table from a file is untrusted: checked against ``cost_table_spec`` (one line naming
    the file and the field)."""
    from edgecnn.contract.checks import check

    return check(table, cost_table_spec(), where, InvalidConfigError)


def read_cost_table(path) -> dict:
    """``--cost-table FILE``: the contract's bounded JSON reader (a regular file, 32 MiB at most),
    then ``cost_table_spec``."""
    from edgecnn.contract.checks import read_checked

    return read_checked(path, cost_table_spec(), "cost table", InvalidConfigError)


# ----------------------------------------------------------------------------- conversion
def _debug_converter(model, calibration: np.ndarray):
    import tensorflow as tf

    from edgecnn.export.tflite import _converter, _representative

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(np.asarray(calibration, np.float32))
    return conv


class Quantizer:
    """One calibration of ``model`` through the converter's QuantizationDebugger; then any set
    of ops kept float (``build(float_ops)``) and the per-layer error on any images."""

    def __init__(self, model, calibration: np.ndarray):
        import tensorflow as tf

        self._tf = tf
        try:
            with native_silenced():  # the converter's C++ prints, shown with -v
                self.debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=_debug_converter(model, calibration),
                    debug_dataset=_batches(np.asarray(calibration[:1], np.float32)))
        except Exception as e:  # noqa: BLE001 - ConverterError, ValueError from the MLIR passes
            from edgecnn.export.tflite import describe_converter_error

            raise ExportError(f"mixed-precision calibration of '{model.name}' failed: "
                              f"{describe_converter_error(e)}") from None
        self.full_int8 = self.build([])
        self.graph = op_graph(self.full_int8)

    def build(self, float_ops: Sequence[str], debug: bool = False) -> bytes:
        """The model with ``float_ops`` (node names) float and every other op int8."""
        with native_silenced():  # setting the options re-quantizes the model in the converter
            self.debugger.options = self._tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(float_ops) or None)
            return self.debugger.get_debug_quantized_model() if debug else self.debugger.get_nondebug_quantized_model()

    def layer_errors(self, images: np.ndarray) -> Dict[str, dict]:
        """Per quantized op (node name): RMSE/scale and RMSE relative to the float tensor's RMS,
        each the mean over ``images``, from the debugger's NumericVerify comparison (each op's
        int8 output against the float op on the same dequantized inputs)."""
        tf = self._tf

        def rmse_scale(f, q, scale, zp):
            return float(np.sqrt(np.mean(((q.astype(np.float32) - zp) * scale - f) ** 2)) / scale)

        def rel_rmse(f, q, scale, zp):
            err = np.sqrt(np.mean(((q.astype(np.float32) - zp) * scale - f) ** 2))
            return float(err / (np.sqrt(np.mean(np.square(f))) + 1e-12))

        opts = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"rmse_scale": rmse_scale, "rel_rmse": rel_rmse})
        dbg = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=self.build([], debug=True),
            debug_dataset=_batches(np.asarray(images, np.float32)), debug_options=opts)
        with native_silenced():
            dbg.run()
        out = {}
        for key, stats in dbg.layer_statistics.items():
            node = self._node_of(key)
            if node is None:
                continue
            out[node] = {"rmse_scale": float(stats["rmse_scale"]), "rel_rmse": float(stats["rel_rmse"]),
                         "mean_abs_max_error": float(stats.get("max_abs_error", float("nan")))}
        return out

    def _node_of(self, nv_key: str) -> Optional[str]:
        # NumericVerify outputs are named "NumericVerify/<verified tensor><suffix>:<index>", where the
        # debug model's tensor name may carry one extra character beside the non-debug name.
        name = nv_key.split("NumericVerify/", 1)[-1].rsplit(":", 1)[0]
        nodes = self.graph["nodes"]
        for cand in (name, name[:-1]):
            if cand in nodes:
                return cand
        layers = _layer_set(name)
        hits = [n for n in nodes if _layer_set(n) == layers]
        return hits[0] if len(hits) == 1 else None


def _batches(x: np.ndarray):
    def gen():
        for i in range(len(x)):
            yield [x[i:i + 1]]
    return gen


def _layer_set(tensor_name: str) -> frozenset:
    """The Keras layers a TFLite tensor name mentions ("model/layer/Op;model/other/Op2")."""
    out = set()
    for part in tensor_name.split(";"):
        bits = [b for b in part.split("/") if b]
        if len(bits) >= 2:
            out.add(bits[1])
    return frozenset(out)


# ----------------------------------------------------------------------------- accuracy
def top1(tflite: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of a TFLite model on float images, on LiteRT + XNNPACK (as verification runs it)."""
    from edgecnn.measure.runtime import load

    out = load(tflite).run(x)
    return float(np.mean(out.argmax(1) == y))


def accuracy_fallback(q: "Quantizer", base_float: Sequence[str], errors: Dict[str, dict], evaluate: Callable[[bytes], float],
                      keras_top1: float, max_drop: float, max_steps: int = 24, echo=None) -> Tuple[List[str], List[dict]]:
    """Keep the most damaging tensors float until the drop is within ``max_drop`` points.

    ``errors``: per node ``rel_rmse`` (held-out). Reverting a tensor keeps its producer and every
    consumer float (the tensor then never passes through int8). After the budget is met, each
    op added here is tried back in int8, least damaging first, and stays int8 when the drop
    allows it: the fewest float ops greedy search finds. -> (float ops added, steps taken).
    """
    g = q.graph
    fl = list(base_float)
    steps: List[dict] = []

    def drop_of(ops):
        t = evaluate(q.build(ops))
        d = 100.0 * (keras_top1 - t)
        steps.append({"float_ops": len(ops), "top1": t, "drop": d})
        if echo:
            echo(f"  mixed: {len(ops)} float op(s): top-1 {100 * t:.2f}% (drop {d:.2f} points)")
        return d

    d = drop_of(fl)
    if d <= max_drop + _EPS:
        return [], steps
    ranked = sorted((n for n in errors if n in g["nodes"]), key=lambda n: -errors[n]["rel_rmse"])
    added: List[str] = []
    for n in ranked:
        if len(steps) > max_steps:
            break
        group = [n] + [c for c in g["consumers"].get(n, []) if c != OUTPUT_NODE]
        new = [o for o in group if o not in fl and o not in added]
        if not new:
            continue
        added += new
        d = drop_of(fl + added)
        if d <= max_drop + _EPS:
            break
    if d > max_drop + _EPS:
        return added, steps
    for n in sorted(added, key=lambda n: errors.get(n, {}).get("rel_rmse", 0.0)):
        if len(steps) > 2 * max_steps:
            break
        trial = [o for o in added if o != n]
        if drop_of(fl + trial) <= max_drop + _EPS:
            added = trial
    return added, steps
