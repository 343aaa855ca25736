"""Per-op costs for mixed precision (``edgecnn.export.mixed``): each op of the model built as a
one-op Keras model at its real shape (the layers the converter fused into that TFLite op, with
their weights), converted fp32, int8 with int8 I/O and int8 with float I/O, and timed here
interleaved on LiteRT + XNNPACK (``edgecnn.measure.timing.round_medians``), or counted on an
emulated Raspberry Pi and predicted by edgecnn.emulate's cost model (``target``).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.core.quiet import native_silenced
from edgecnn.errors import InvalidConfigError
from edgecnn.export.mixed import COST_TABLE_SCHEMA, _layer_set


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
    """Lowest round median (us) per runner, all timed in turns in this process
    (``measure.timing.round_medians``), bare ``invoke()`` on random inputs set once."""
    from edgecnn.measure.timing import bare_loop, round_medians

    for r in runners:
        bare_loop(r, 5)
    medians = round_medians([lambda n, r=r: bare_loop(r, n) for r in runners], rounds, runs)
    return [min(m) * 1e3 for m in medians]


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
        from edgecnn.measure.runtime import runtime_version

        from edgecnn.measure.machine import cpu_label

        return (f"{cpu_label()}, LiteRT {runtime_version('litert')} XNNPACK, {threads} thread(s), batch 1",
                f"interleaved in one process on this machine, lowest of {rounds} round medians of {runs} invokes")
    from edgecnn.measure.boards import BOARDS

    return (f"{BOARDS[target].label}, LiteRT {_guest_litert_version()} XNNPACK, {threads} thread(s), batch 1, "
            "predicted by edgecnn's calibrated cost model",
            "instructions, bytes and simulated cache misses of one invoke counted under qemu-user "
            "(edgecnn.emulate), all models in one emulated process, turned into a latency by the cost model "
            "calibrated on published Raspberry Pi 4 figures")


def model_costs_us(blobs: Sequence[bytes], *, target: Optional[str] = None, threads: int = 1, rounds: int = 5,
                   runs: int = 50, inputs: Optional[Sequence[Optional[np.ndarray]]] = None, echo=None) -> List[float]:
    """The latency (us) of each TFLite flatbuffer in ``blobs`` on the target.

    ``target`` None: timed here on LiteRT + XNNPACK, interleaved (``_interleaved``), on
    ``inputs[i]`` (float, set through the runner's ``prepare``) or random inputs. A board name
    (edgecnn.emulate.BOARDS): counted on that emulated board, all models in one qemu process
    (one more when some model is not taken by XNNPACK: those are counted on the builtin kernels,
    as the board would run them), and predicted by the calibrated cost model."""
    if target is None:
        from edgecnn.measure.runtime import load

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
    from edgecnn.measure.runtime import load

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
        from edgecnn.measure.boards import BOARDS

        if target not in BOARDS:
            raise InvalidConfigError(f"unknown target {target!r}: one of {', '.join(BOARDS)}")
    from edgecnn.measure.runtime import load

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
