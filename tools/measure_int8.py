"""Measure the int8 speed problem and the PReLU rewrite (issue 4): latency of fp32 vs int8
TFLite (LiteRT, XNNPACK, 1 thread, batch 1, median of N invokes after warm-up), sizes, and the
float agreement of the rewritten model.

    .venv/bin/python tools/measure_int8.py quicknet [--alpha trained|zero|mixed] [--run RUN]

Fresh weights have every PReLU alpha at 0 (the rewrite would then be a plain ReLU); to time
what a trained model runs, ``--alpha trained`` draws per-channel alphas in [0.05, 0.35] and
random BN statistics, ``mixed`` also makes a fifth of them negative.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import edgecnn  # noqa: F401
import numpy as np


def randomize(model, mode, seed=0):
    rng = np.random.default_rng(seed)
    for l in model.layers:
        kind = type(l).__name__
        if kind == "PReLU" and mode != "zero":
            a = l.get_weights()[0]
            v = rng.uniform(0.05, 0.35, a.shape).astype(np.float32)
            if mode == "mixed":
                v[rng.random(a.shape) < 0.2] *= -1
            l.set_weights([v])
        elif kind == "BatchNormalization" and mode != "zero":
            g, b, m, s = l.get_weights()
            l.set_weights([rng.uniform(0.5, 1.5, g.shape).astype(np.float32), rng.normal(0, 0.2, b.shape).astype(np.float32),
                           rng.normal(0, 0.2, m.shape).astype(np.float32), rng.uniform(0.5, 2.0, s.shape).astype(np.float32)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--alpha", default="trained", choices=["trained", "zero", "mixed"])
    ap.add_argument("--calibration", type=int, default=200)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--onnx", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    from edgecnn.export.deploy import prepare_for_deploy
    from edgecnn.export.tflite import convert_tflite, tflite_ops
    from edgecnn.registry import create_model

    (xtr, _), (xte, _), _ = load_sample()
    m = create_model(args.model)
    spec = spec_for(m.inputs[0].shape[1:], source_size=32)
    cal = preprocess(xtr[:args.calibration], spec)
    randomize(m, args.alpha)
    dep, rep = prepare_for_deploy(m, check_inputs=preprocess(xte[:64], spec))
    out = Path(args.out or tempfile.mkdtemp()); out.mkdir(parents=True, exist_ok=True)
    res = {"model": args.model, "alpha": args.alpha, "rewrite": {k: rep.get(k) for k in ("max_abs_diff", "max_abs_diff_logits", "rejected")},
           "rewritten": [e["how"] for e in rep["prelu"]]}
    for tag, mod, prec in [("fp32", m, "fp32"), ("int8", m, "int8"), ("int8_rewrite", dep, "int8"), ("fp32_rewrite", dep, "fp32")]:
        if tag.endswith("rewrite") and dep is m:
            continue
        b = convert_tflite(mod, prec, calibration=cal)
        p = out / f"{tag}.tflite"
        p.write_bytes(b)
        ops = tflite_ops(p)
        res[tag] = {"bytes": len(b), "prelu_ops": ops.count("PRELU"), "ops": len(ops)}
        print(tag, res[tag], file=sys.stderr)
    if args.onnx:
        from edgecnn.export.onnx import export_onnx, onnx_from_tflite, quantize_onnx
        export_onnx(m, out / "fp32.onnx")
        export_onnx(dep, out / "dep_fp32.onnx")
        quantize_onnx(out / "dep_fp32.onnx", out / "int8_qdq.onnx", cal)
        quantize_onnx(out / "dep_fp32.onnx", out / "int8_qdq_s8.onnx", cal, activation_type="int8")
        onnx_from_tflite(out / ("int8_rewrite.tflite" if dep is not m else "int8.tflite"), out / "int8_from_tflite.onnx")
        from edgecnn import runtime
        x = preprocess(xte, spec)
        ref = m.predict(x, verbose=0)
        (_, _), (_, yte), _ = load_sample()
        for tag in ("fp32", "int8_qdq", "int8_qdq_s8", "int8_from_tflite"):
            p = out / f"{tag}.onnx"
            r = runtime.load(p)
            o = r.run(x, batch_size=None if not r._dynamic_batch else 100)
            res["onnx_" + tag] = {"bytes": p.stat().st_size, "agreement": float((o.argmax(1) == ref.argmax(1)).mean()),
                                  "top1": float((o.argmax(1) == yte).mean()), "max_abs_diff": float(abs(o - ref).max())}
    # interleaved timing of everything (the figures reported)
    from edgecnn.benchmark.timing import interleave
    files = sorted(out.glob("*.tflite")) + sorted(p for p in out.glob("*.onnx") if p.name != "dep_fp32.onnx")
    timed = interleave(files, rounds=5, runs=args.n, warmup=20)
    ms = {a["path"]: round(a["best_ms"], 3) for a in timed["artifacts"]}
    for p in files:
        key = p.stem if p.suffix == ".tflite" else "onnx_" + p.stem
        res.setdefault(key, {})["ms"] = ms[str(p)]
    f = res["fp32"]["ms"]
    for tag in ("int8", "int8_rewrite"):
        if tag in res:
            res[tag]["ratio_vs_fp32"] = round(res[tag]["ms"] / f, 3)
            res[tag]["size_ratio"] = round(res[tag]["bytes"] / res["fp32"]["bytes"], 3)
    if args.onnx:
        for tag in ("onnx_int8_qdq", "onnx_int8_qdq_s8", "onnx_int8_from_tflite"):
            res[tag]["ratio_vs_onnx_fp32"] = round(res[tag]["ms"] / res["onnx_fp32"]["ms"], 3)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
