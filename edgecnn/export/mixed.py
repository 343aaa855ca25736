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

Interpreters are created by edgecnn.runtime; the debugger's own (inside TensorFlow) are the
exception, as they are part of that API.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.errors import ExportError, InvalidConfigError
from edgecnn.quiet import native_silenced

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
    from edgecnn.runtime import load

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


def validate_cost_table(table, where: str = "cost table") -> dict:
    """A cost table from a file is untrusted: finite, non-negative numbers, bounded size."""
    def bad(msg):
        raise InvalidConfigError(f"{where}: {msg}")

    if not isinstance(table, dict):
        bad("must be a JSON object")
    for key, fields in (("ops", ("fp32_us", "int8_us")), ("tensors", ("quantize_us", "dequantize_us"))):
        part = table.get(key, {})
        if not isinstance(part, dict) or len(part) > 100_000:
            bad(f"'{key}' must be an object of at most 100000 entries")
        for name, entry in part.items():
            if not isinstance(entry, dict):
                bad(f"'{key}' entry {name!r} must be an object")
            for f in fields:
                v = entry.get(f, 0.0)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    bad(f"'{key}.{name}.{f}' must be a finite number >= 0, not {v!r}")
    return table


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
    from edgecnn.runtime import load

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


# ----------------------------------------------------------------------------- per-op cost
def _chain_model(model, node: str, op: str = ""):
    """A one-op Keras model for the TFLite op ``node``: the layers its name mentions, from the
    first one's input(s) to the last one's output, with the trained weights (shared layers).
    -> (model, feed) where ``feed(calibration)`` gives its real input activations, or None.

    A SeparableConv2D becomes two TFLite ops (DEPTHWISE_CONV_2D, then CONV_2D 1x1 with what
    follows fused into it); each is rebuilt alone from the layer's two kernels, so that the two
    ops' costs are not both the whole layer's."""
    import tf_keras as keras

    names = _layer_set(node)
    order = {l.name: i for i, l in enumerate(model.layers)}
    layers = sorted((model.get_layer(n) for n in names if n in order), key=lambda l: order[l.name])
    if not layers:
        return None
    first, last = layers[0], layers[-1]
    if type(first).__name__ == "InputLayer":
        return None
    if type(first).__name__ == "SeparableConv2D":
        return _separable_part(model, first, last, op, order)
    ins = first.input if isinstance(first.input, list) else [first.input]
    try:
        sub = keras.Model(ins if len(ins) > 1 else ins[0], last.output)
    except Exception:  # noqa: BLE001 - a group that is not a closed subgraph: no cost measured
        return None
    return sub, lambda cal: _activations(model, ins, cal)


def _separable_part(model, sep, last, op: str, order: dict):
    import tf_keras as keras

    cfg = sep.get_config()
    weights = sep.get_weights()
    dw = keras.layers.DepthwiseConv2D(cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"],
                                      depth_multiplier=cfg["depth_multiplier"], dilation_rate=cfg["dilation_rate"],
                                      use_bias=False)
    x = keras.Input(tuple(sep.input.shape[1:]))
    y = dw(x)
    dw.set_weights([weights[0]])
    if op == "DEPTHWISE_CONV_2D":
        return keras.Model(x, y), lambda cal: _activations(model, [sep.input], cal)
    # the 1x1 part and every layer after it up to ``last`` (BN, activations fused into the conv)
    dw_model = keras.Model(x, y)
    p_in = keras.Input(tuple(y.shape[1:]))
    pw = keras.layers.Conv2D(cfg["filters"], 1, use_bias=cfg["use_bias"], activation=cfg["activation"])
    z = pw(p_in)
    pw.set_weights([weights[1]] + weights[2:3])
    old = sep.output
    for layer in model.layers[order[sep.name] + 1:order[last.name] + 1]:
        if layer.input is old:
            z, old = layer(z), layer.output
    if old is not last.output:
        return None
    return keras.Model(p_in, z), lambda cal: [dw_model.predict(_activations(model, [sep.input], cal)[0], verbose=0)]


def _activations(model, ins, calibration: np.ndarray) -> List[np.ndarray]:
    """The model's real activations at ``ins`` (tensors of the model) on ``calibration``."""
    import tf_keras as keras

    feats = keras.Model(model.inputs, ins if len(ins) > 1 else ins[0])
    out = feats.predict(calibration, batch_size=16, verbose=0)
    return out if isinstance(out, list) else [out]


def _convert_one_op(sub, acts: List[np.ndarray], mode: str) -> bytes:
    import tensorflow as tf

    specs = [tf.TensorSpec([1] + [int(d) for d in t.shape[1:]], tf.float32) for t in sub.inputs]
    fn = tf.function(lambda *xs: sub(list(xs) if len(xs) > 1 else xs[0], training=False))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)], sub)
    conv.experimental_lower_to_saved_model = False
    if mode != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([a[i:i + 1].astype(np.float32) for a in acts] for i in range(len(acts[0])))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8":
            conv.inference_input_type = conv.inference_output_type = tf.int8
    with native_silenced():
        return conv.convert()


def _set_random_inputs(runner) -> None:
    """Random normal inputs (quantized for int8 tensors) on every input of a TFLite runner:
    timing does not depend on the values, but uninitialized memory could hold NaNs."""
    from edgecnn.data.preprocess import quantize

    rng = np.random.default_rng(0)
    xs = []
    for info in runner.inputs:
        x = rng.standard_normal(info.shape).astype(np.float32)
        xs.append(quantize(x, info.scale, info.zero_point, np.dtype(info.dtype)) if info.quantized else x)
    runner.set_inputs(xs)


def _interleaved(runners: Sequence, rounds: int, runs: int) -> List[float]:
    """Lowest round median (us) per runner, all timed in turns in this process, the order
    alternating each round: the convention of edgecnn.benchmark.timing.interleave (which this
    stage may not import), on random inputs set once."""
    clock = time.perf_counter_ns
    for r in runners:
        for _ in range(5):
            r.invoke()
    best = [_INF] * len(runners)
    for k in range(rounds):
        order = range(len(runners)) if k % 2 == 0 else reversed(range(len(runners)))
        for i in order:
            invoke = runners[i].invoke
            ts = []
            for _ in range(runs):
                t0 = clock()
                invoke()
                ts.append(clock() - t0)
            best[i] = min(best[i], float(np.median(ts)) / 1e3)
    return best


def _cpu_label() -> str:
    """The CPU the table was measured on ('AMD EPYC, x86_64'): costs belong to one target."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model or platform.processor() or 'unknown CPU'}, {platform.machine()}"


def _guest_litert_version() -> str:
    """The LiteRT version installed in the emulator's arm64 root (what the emulated board runs)."""
    from edgecnn.emulate import qemu

    try:
        site = qemu.default_root() / qemu.GUEST_SITE.lstrip("/")
        found = sorted(site.glob("ai_edge_litert-*.dist-info"))
    except OSError:
        found = []
    return found[-1].name[len("ai_edge_litert-"):-len(".dist-info")] if found else "unknown"


def cost_target(target: Optional[str], *, threads: int = 1, rounds: int = 5, runs: int = 50) -> Tuple[str, str]:
    """(target, method) texts of a cost table measured by ``model_costs_us`` with these settings."""
    if target is None:
        from edgecnn.runtime import runtime_version

        return (f"{_cpu_label()}, LiteRT {runtime_version('litert')} XNNPACK, {threads} thread(s), batch 1",
                f"interleaved in one process on this machine, lowest of {rounds} round medians of {runs} invokes")
    from edgecnn.emulate.boards import BOARDS

    return (f"{BOARDS[target].label}, LiteRT {_guest_litert_version()} XNNPACK, {threads} thread(s), batch 1, "
            f"predicted by edgecnn's calibrated cost model",
            f"instructions, bytes and simulated cache misses of one invoke counted under qemu-user "
            f"(edgecnn.emulate), all models in one emulated process, turned into a latency by the cost model "
            f"calibrated on published Raspberry Pi 4 figures")


def model_costs_us(blobs: Sequence[bytes], *, target: Optional[str] = None, threads: int = 1, rounds: int = 5,
                   runs: int = 50, inputs: Optional[Sequence[Optional[np.ndarray]]] = None, echo=None) -> List[float]:
    """The latency (us) of each TFLite flatbuffer in ``blobs`` on the target.

    ``target`` None: timed here on LiteRT + XNNPACK, interleaved (``_interleaved``), on
    ``inputs[i]`` (float, set through the runner's ``prepare``) or random inputs. A board name
    (edgecnn.emulate.BOARDS): counted on that emulated board, all models in one qemu process
    (one more when some model is not taken by XNNPACK: those are counted on the builtin kernels,
    as the board would run them), and predicted by the calibrated cost model."""
    if target is None:
        from edgecnn.runtime import load

        runners = []
        for i, blob in enumerate(blobs):
            r = load(blob, threads=threads)
            x = inputs[i] if inputs is not None else None
            if x is None:
                _set_random_inputs(r)
            else:
                r.set_input(r.prepare(np.asarray(x, np.float32)))
            runners.append(r)
        return _interleaved(runners, rounds, runs)
    import tempfile
    from pathlib import Path

    from edgecnn.emulate import model as cost_model
    from edgecnn.emulate import qemu
    from edgecnn.runtime import load

    t0 = time.time()
    out: List[float] = [0.0] * len(blobs)
    cal = cost_model.load_calibration()
    with tempfile.TemporaryDirectory(prefix="edgecnn-opcost-") as tmp:
        groups: Dict[bool, List[int]] = {True: [], False: []}
        paths = []
        for i, blob in enumerate(blobs):
            path = Path(tmp) / f"op{i}.tflite"
            path.write_bytes(blob)
            paths.append(path)
            # The emulator refuses to count a model XNNPACK does not take as if it did; which ones
            # it takes is read here from the same LiteRT (DELEGATE nodes in the graph), and those
            # it does not are counted on the builtin kernels, as the board would run them.
            taken = any(o["op_name"] == "DELEGATE" for o in load(blob).ops())
            groups[taken].append(i)
        for xnn, idx in groups.items():
            if not idx:
                continue
            counts = qemu.count([paths[i] for i in idx], target, xnnpack=xnn)
            for i, c in zip(idx, counts):
                out[i] = cost_model.predict(c.to_json(), target, threads, cal).ms * 1000.0
    if echo:
        echo(f"  emulated {target}: {len(blobs)} model(s) counted in {time.time() - t0:.0f} s"
             + (f" ({len(groups[False])} on builtin kernels: XNNPACK does not take them)" if groups[False] else ""))
    return out


def measure_op_costs(model, graph: dict, calibration: np.ndarray, *, rounds: int = 5, runs: int = 50,
                     threads: int = 1, target: Optional[str] = None, echo=None) -> dict:
    """The cost table of ``model``'s ops on the target's LiteRT + XNNPACK (see module doc).

    ``graph``: ``op_graph`` of the model's int8 TFLite (node names = TFLite output tensors).
    ``target``: None times the one-op models on this machine; a board name (pi4, pi5, pi3,
    pi-zero2) predicts them on that emulated Raspberry Pi (``model_costs_us``), so the choice
    targets the Pi's kernels (XNNPACK picks different int8 kernels on a Pi 5's A76 than on a
    Pi 4's A72) without one. Ops that cannot be rebuilt alone are left out (they cost nothing
    in the choice and are listed under ``"unmeasured"``)."""
    if target is not None:
        from edgecnn.emulate.boards import BOARDS

        if target not in BOARDS:
            raise InvalidConfigError(f"unknown target {target!r}: one of {', '.join(BOARDS)}")
    from edgecnn.runtime import load

    cal = np.asarray(calibration[:16], np.float32)
    built, unmeasured = [], []
    t0 = time.time()
    for node, info in graph["nodes"].items():
        chain = _chain_model(model, node, info["op"])
        if chain is None:
            unmeasured.append(node)
            continue
        sub, feed = chain
        try:
            acts = feed(cal)
            blobs = [_convert_one_op(sub, acts, mode) for mode in ("fp32", "int8", "int8_float_io")]
            for b in blobs:  # a flatbuffer LiteRT cannot load is this op's problem, not the table's
                load(b)
        except Exception as e:  # noqa: BLE001 - the op is left out of the table, with the reason
            unmeasured.append(node)
            if echo:
                echo(f"  cost: {node[:60]}: not measured ({type(e).__name__})")
            continue
        built.append((node, info, blobs))
    times = model_costs_us([b for _, _, blobs in built for b in blobs], target=target, threads=threads,
                           rounds=rounds, runs=runs, echo=echo)
    ops, tensors_q, tensors_dq = {}, {}, {}
    for k, (node, info, _) in enumerate(built):
        f, q, qf = times[3 * k:3 * k + 3]
        ops[node] = {"op": info["op"], "fp32_us": f, "int8_us": q,
                     "layers": sorted(_layer_set(node)), "int8_float_io_us": qf}
        ins = [t for t in info["inputs"]]
        n_in = [graph["elements"].get(t, 0) for t in ins]
        n_out = graph["elements"].get(node, 0)
        per = max(qf - q, 0.0) / max(1, sum(n_in) + n_out)
        for t, n in zip(ins, n_in):
            tensors_q.setdefault(t, []).append(per * n)
        tensors_dq.setdefault(node, []).append(per * n_out)
    tensors = {}
    for t in set(tensors_q) | set(tensors_dq):
        qv, dv = tensors_q.get(t), tensors_dq.get(t)
        # a tensor measured from one side only (e.g. the model input): that side's estimate for both
        qv = float(np.mean(qv)) if qv else float(np.mean(dv))
        dv = float(np.mean(dv)) if dv else qv
        tensors[t] = {"quantize_us": qv, "dequantize_us": dv}
    if echo:
        echo(f"  cost table: {len(ops)} ops measured ({len(unmeasured)} not) in {time.time() - t0:.0f} s")
    target_text, how = cost_target(target, threads=threads, rounds=rounds, runs=runs)
    return {"schema": COST_TABLE_SCHEMA, "target": target_text, "board": target,
            "method": (f"one-op models at their real shapes (fp32; int8 with int8 I/O; int8 with float I/O), {how}; "
                       f"quantize/dequantize = the float-I/O model's extra time split by element count"),
            "ops": ops, "tensors": tensors, "unmeasured": unmeasured}


# ----------------------------------------------------------------------------- PReLU candidates
def _keras_top1(model, x, y) -> float:
    return float(np.mean(np.asarray(model.predict(x, batch_size=128, verbose=0)).argmax(1) == y))


# A snapped PReLU form must beat the exact rewrite's whole-model int8 time by this fraction: the
# candidates' times on a trained QuickNet differ by 0.1-0.2 % when their kernels are the same
# (1277/1278/1279 us), and the cliff this guards against is 3-4x.
PRELU_MIN_GAIN = 0.05


def choose_prelu(model, exact_model, calibration: np.ndarray, val: Tuple[np.ndarray, np.ndarray], max_drop: float, *,
                 threads: int = 1, rounds: int = 5, runs: int = 50, target: Optional[str] = None,
                 echo=None) -> Tuple[object, Optional[dict]]:
    """The int8 graph's PReLU form: the exact rewrite (``exact_model``), or alphas snapped per
    layer to 0 (a ReLU fused into the conv) or to the layer's mean (a LeakyReLU).

    A snapped candidate starts with every PReLU snapped; while the float model's top-1 on
    ``val`` is more than ``max_drop / 2`` points below the original's (half the budget: int8
    adds its own loss), the layer whose alphas moved most gets its exact alphas back. The
    candidates left are converted to full int8 and timed whole, interleaved, in this process:
    the fastest is used when it beats the exact rewrite by ``PRELU_MIN_GAIN``. With ``target`` (a
    board name) the candidates are predicted on that emulated board instead (``model_costs_us``). Timing the whole graph, not assuming a kernel path is fast, is what
    catches slow kernels such as an int8 LEAKY_RELU whose alpha XNNPACK does not take.
    -> (the model to quantize, report or None when the model has no PReLU)."""
    from edgecnn.export import deploy
    from edgecnn.export.tflite import convert_tflite

    echo = echo or (lambda s: None)
    names = deploy.prelu_names(model)
    if not names:
        return exact_model, None
    xv, yv = val
    k_top1 = _keras_top1(model, xv, yv)
    alphas = {n: model.get_layer(n).get_weights()[0] for n in names}
    cands = {"exact": (exact_model, {"layers": [], "float_val_drop": 0.0})}
    for how in ("zero", "mean"):
        moved = {n: float(np.mean(np.abs(a - (0.0 if how == "zero" else np.mean(a))))) for n, a in alphas.items()}
        snapped = sorted(names, key=lambda n: moved[n])
        drop = None
        while snapped:
            m = deploy.snap_prelu(model, {n: how for n in snapped})
            drop = 100.0 * (k_top1 - _keras_top1(m, xv, yv))
            if drop <= max_drop / 2 + _EPS:
                break
            snapped.pop()  # the layer whose alphas moved most gets them back
        if not snapped:
            continue
        dep, rep = deploy.prepare_for_deploy(m, check_inputs=calibration[:64])
        if rep.get("rejected"):
            continue
        cands[how] = (dep, {"layers": sorted(snapped), "float_val_drop": drop})
        echo(f"  PReLU '{how}': {len(snapped)} of {len(names)} layer(s) snapped, float top-1 drop {drop:.2f} points")
    keys = list(cands)
    blobs = [convert_tflite(cands[k][0], "int8", calibration=calibration) for k in keys]
    times = model_costs_us(blobs, target=target, threads=threads, rounds=rounds, runs=runs,
                           inputs=[calibration[:1]] * len(blobs), echo=echo)
    # A snapped form changes the function; it is taken only for a speed-up beyond timing noise.
    fastest = keys[int(np.argmin(times))]
    best = fastest if times[keys.index(fastest)] < times[0] * (1.0 - PRELU_MIN_GAIN) else "exact"
    report = {"keras_val_top1": k_top1, "budget_float_drop": max_drop / 2, "chosen": best,
              "min_gain": PRELU_MIN_GAIN,
              "candidates": {k: dict(cands[k][1], int8_us=t) for k, t in zip(keys, times)},
              "timing": "full int8 of each candidate, " + cost_target(target, threads=threads, rounds=rounds, runs=runs)[1],
              "target": cost_target(target, threads=threads, rounds=rounds, runs=runs)[0]}
    echo(f"  PReLU form for int8: '{best}' ("
         + ", ".join(f"{k} {t:.0f} us" for k, t in zip(keys, times)) + ")")
    return cands[best][0], report


# ----------------------------------------------------------------------------- the whole step
def build_mixed(model, calibration: np.ndarray, *, val: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                held_out: Optional[np.ndarray] = None, keras_model=None, max_drop: float = 1.0,
                cost_table: Optional[dict] = None, target: Optional[str] = None, echo=None) -> Tuple[bytes, dict]:
    """The mixed-precision TFLite of ``model`` and its report.

    ``calibration``: preprocessed training images; ``val``: (preprocessed images, labels) the
    accuracy fallback is judged on (None: untrained weights, no fallback); ``held_out``: images
    for the held-out layer errors; ``keras_model``: the float model ``val`` accuracy is compared
    with (default ``model``); ``cost_table``: use it instead of measuring one; ``target``: measure
    it on this emulated board (``measure_op_costs``) instead of on this machine.
    -> (flatbuffer bytes, report dict with "float_ops", "layers", "cost_table", ...).
    """
    echo = echo or (lambda s: None)
    if cost_table is not None and target is not None:
        raise InvalidConfigError("give a cost table or a target to measure one on, not both")
    q = Quantizer(model, calibration)
    g = q.graph
    echo(f"mixed precision: {len(g['nodes'])} ops; per-layer error on {min(len(calibration), 32)} calibration images")
    err_cal = q.layer_errors(calibration[:32])
    err_held = q.layer_errors(held_out[:32]) if held_out is not None else {}
    if cost_table is None:
        cost_table = measure_op_costs(model, g, calibration, target=target, echo=echo)
    else:
        cost_table = validate_cost_table(cost_table)
    speed = choose_float_ops(g, cost_table)
    why = {n: "speed" for n in speed}
    steps: List[dict] = []
    fallback = None
    if val is not None:
        xv, yv = val
        ref = keras_model if keras_model is not None else model
        k_top1 = float(np.mean(np.asarray(ref.predict(xv, batch_size=128, verbose=0)).argmax(1) == yv))
        errs = err_held or err_cal
        added, steps = accuracy_fallback(q, speed, errs, lambda b: top1(b, xv, yv), k_top1, max_drop, echo=echo)
        why.update({n: "accuracy" for n in added})
        fallback = {"split": "val", "n": int(len(yv)), "keras_top1": k_top1, "max_drop": max_drop,
                    "full_int8_top1": top1(q.full_int8, xv, yv), "steps": steps}
    float_ops = [n for n in g["nodes"] if n in why]
    data = q.build(float_ops)
    ops_cost = cost_table.get("ops", {})
    layers = []
    for n, info in g["nodes"].items():
        c = ops_cost.get(n, {})
        layers.append({"node": n, "op": info["op"], "layers": sorted(_layer_set(n)),
                       "precision": "float" if n in why else "int8", "why": why.get(n),
                       "fp32_us": c.get("fp32_us"), "int8_us": c.get("int8_us"),
                       "calibration": err_cal.get(n), "held_out": err_held.get(n) if err_held else None})
    report = {
        "api": "tf.lite.experimental.QuantizationDebugger (denylisted_nodes, get_nondebug_quantized_model)",
        "float_ops": [{"op": g["nodes"][n]["op"], "node": n, "why": why[n]} for n in float_ops],
        "estimated_us": {"full_int8": plan_cost(g, cost_table, []), "fp32": plan_cost(g, cost_table, list(g["nodes"])),
                         "mixed": plan_cost(g, cost_table, float_ops)},
        "error_metrics": {"rmse_scale": "RMSE of the op's int8 output against the float op on the same inputs, "
                                        "in units of the output scale (the converter debugger's figure)",
                          "rel_rmse": "the same RMSE divided by the RMS of the float output"},
        "error_images": {"calibration": int(min(len(calibration), 32)),
                         "held_out": int(min(len(held_out), 32)) if held_out is not None else 0},
        "target": cost_table.get("target"), "board": cost_table.get("board"),
        "accuracy_fallback": fallback, "layers": layers, "cost_table": cost_table}
    return data, report


def report_markdown(report: dict, model_name: str) -> str:
    """The export's quantization report: the choice and a per-layer error/cost table."""
    est = report["estimated_us"]
    lines = [f"# {model_name}: mixed-precision report", "",
             f"Float ops kept: {len(report['float_ops'])} "
             f"({sum(1 for f in report['float_ops'] if f['why'] == 'speed')} for speed, "
             f"{sum(1 for f in report['float_ops'] if f['why'] == 'accuracy')} for accuracy). "
             f"Cost table estimate (sum of one-op costs): fp32 {est['fp32']:.0f} us, full int8 "
             f"{est['full_int8']:.0f} us, mixed {est['mixed']:.0f} us. Target: {report['cost_table'].get('target')}.", ""]
    fb = report.get("accuracy_fallback")
    if fb and fb.get("skipped"):
        lines += [f"Accuracy fallback: skipped ({fb['skipped']}).", ""]
    elif fb:
        lines += [f"Accuracy fallback on {fb['n']} {fb['split']} images: Keras top-1 {100 * fb['keras_top1']:.2f}%, full "
                  f"int8 {100 * fb['full_int8_top1']:.2f}%, budget {fb['max_drop']:g} points.", ""]
    lines += ["| # | op | layers | precision | why | fp32 us | int8 us | RMSE/scale (cal) | rel. RMSE (cal) | "
              "RMSE/scale (held-out) | rel. RMSE (held-out) |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|"]

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) and v is not None else "-"

    for i, l in enumerate(report["layers"]):
        c, h = l.get("calibration") or {}, l.get("held_out") or {}
        lines.append(f"| {i} | {l['op']} | {', '.join(l['layers'])[:60]} | {l['precision']} | {l['why'] or ''} | "
                     f"{f(l['fp32_us'], '.1f')} | {f(l['int8_us'], '.1f')} | {f(c.get('rmse_scale'), '.3f')} | "
                     f"{f(c.get('rel_rmse'), '.4f')} | {f(h.get('rmse_scale'), '.3f')} | {f(h.get('rel_rmse'), '.4f')} |")
    return "\n".join(lines) + "\n"


def error_plot(report: dict, path, title: str):
    """Per-layer relative RMSE (calibration and held-out), float ops marked: quant_error.png."""
    from edgecnn.io import pyplot, save_figure

    plt = pyplot()
    ls = report["layers"]
    x = np.arange(len(ls))
    fig, ax = plt.subplots(figsize=(max(6, 0.16 * len(ls)), 3.6))
    for key, lab in (("calibration", "calibration"), ("held_out", "held-out")):
        ys = [((l.get(key) or {}).get("rel_rmse", np.nan)) for l in ls]
        ax.plot(x, ys, marker="o", ms=3, lw=1, label=lab)
    for i, l in enumerate(ls):
        if l["precision"] == "float":
            ax.axvspan(i - 0.4, i + 0.4, color="orange" if l["why"] == "speed" else "red", alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("op (graph order); shaded: kept float (orange speed, red accuracy)")
    ax.set_ylabel("int8 RMSE / RMS of float output")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
