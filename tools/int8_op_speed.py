"""Where int8 gains (or does not) inside a model: every Conv2D / DepthwiseConv2D / Add / pooling /
Dense layer of MODEL rebuilt as a one-op TFLite model at its real shape (conv + its ReLU6, as the
converter fuses them), converted fp32 and full-integer int8 (int8 in/out, so no QUANTIZE at the
edges), and timed interleaved on LiteRT + XNNPACK, 1 thread, batch 1. Sums per op type.

    .venv/bin/python tools/int8_op_speed.py mobilenetv2_e [--rounds 5 --n 200] [--json out.json]

The sum of the one-op times is not the whole model's latency (no inter-op cache reuse, each op
has its own invoke overhead), but the per-type int8/fp32 ratios say which ops int8 speeds up.
"""
import argparse
import json
import time
from collections import defaultdict

import edgecnn  # noqa: F401  (legacy Keras before TensorFlow)
import numpy as np


def one_op_models(model):
    import tf_keras as keras

    L = keras.layers
    out = []
    nodes = list(model.layers)
    for i, layer in enumerate(nodes):
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Add", "GlobalAveragePooling2D", "Dense"):
            continue
        ins = layer.input if isinstance(layer.input, list) else [layer.input]
        inputs = [keras.Input(tuple(t.shape[1:]), batch_size=1) for t in ins]
        clone = layer.__class__.from_config(layer.get_config())
        y = clone(inputs if kind == "Add" else inputs[0])
        if layer.get_weights():
            clone.set_weights(layer.get_weights())
        # conv -> BN -> ReLU6 in the model: the converter folds BN and fuses the ReLU6 into the conv.
        nxt = [n for n in nodes[i + 1:i + 4] if type(n).__name__ == "ReLU"]
        if kind in ("Conv2D", "DepthwiseConv2D") and nxt and getattr(nxt[0], "max_value", None) is not None:
            y = L.ReLU(6.0)(y)
        out.append((kind, layer.name, keras.Model(inputs, y)))
    return out


def convert(m, int8: bool):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.experimental_lower_to_saved_model = False
    if int8:
        rng = np.random.default_rng(0)
        shapes = [tuple(t.shape) for t in m.inputs]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.normal(size=s).astype(np.float32) for s in shapes]
                                               for _ in range(16))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.registry import create_model

    ops = one_op_models(create_model(a.model))
    runners = []
    for kind, name, m in ops:
        for prec in ("fp32", "int8"):
            it = Interpreter(model_content=convert(m, prec == "int8"), num_threads=1)
            it.allocate_tensors()
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            for _ in range(20):
                it.invoke()
            runners.append((kind, name, prec, it))
    best = defaultdict(lambda: float("inf"))
    for _ in range(a.rounds):
        for kind, name, prec, it in runners:
            ts = []
            for _ in range(a.n):
                t0 = time.perf_counter_ns()
                it.invoke()
                ts.append(time.perf_counter_ns() - t0)
            best[(name, prec)] = min(best[(name, prec)], float(np.median(ts)) / 1e3)
    per_type = defaultdict(lambda: {"count": 0, "fp32_us": 0.0, "int8_us": 0.0})
    rows = []
    for kind, name, _ in ops:
        f, q = best[(name, "fp32")], best[(name, "int8")]
        rows.append({"layer": name, "type": kind, "fp32_us": f, "int8_us": q})
        t = per_type[kind]
        t["count"] += 1
        t["fp32_us"] += f
        t["int8_us"] += q
    tf_, tq = sum(t["fp32_us"] for t in per_type.values()), sum(t["int8_us"] for t in per_type.values())
    print(f"{a.model}: one-op models, LiteRT XNNPACK, 1 thread, batch 1; lowest of {a.rounds} round medians "
          f"of {a.n} invokes")
    print(f"{'op type':24s} {'n':>3s} {'fp32 us':>9s} {'int8 us':>9s} {'int8/fp32':>9s} {'share of fp32':>13s}")
    for kind, t in sorted(per_type.items(), key=lambda kv: -kv[1]["fp32_us"]):
        print(f"{kind:24s} {t['count']:3d} {t['fp32_us']:9.1f} {t['int8_us']:9.1f} {t['int8_us'] / t['fp32_us']:9.2f} "
              f"{t['fp32_us'] / tf_:13.1%}")
    print(f"{'sum':24s} {len(ops):3d} {tf_:9.1f} {tq:9.1f} {tq / tf_:9.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"model": a.model, "rounds": a.rounds, "n": a.n, "per_type": per_type, "layers": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
