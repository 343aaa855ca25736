"""Interleaved latency of TFLite/ONNX files (1 thread, batch 1): every round runs each model
``--n`` invokes and keeps the median; the figure is the lowest round median, which is the
one least disturbed by other processes on a shared CPU.

    .venv/bin/python tools/time_tflite.py a.tflite b.tflite [--rounds 5 --n 100 --no-xnnpack]
"""
import argparse
import json
import time

import edgecnn  # noqa: F401
import numpy as np


def interleaved_ms(paths, rounds=5, n=100, warmup=20, xnnpack=True):
    from edgecnn import runtime
    runners = []
    for p in paths:
        r = runtime.load(p, threads=1, xnnpack=xnnpack)
        r.resize(1)
        x = np.random.default_rng(0).normal(size=(1,) + tuple(r.input.shape[1:])).astype(np.float32)
        r.set_input(r.prepare(x))
        for _ in range(warmup):
            r.invoke()
        runners.append(r)
    best = [float("inf")] * len(paths)
    for _ in range(rounds):
        for i, r in enumerate(runners):
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                r.invoke()
                ts.append(time.perf_counter() - t)
            best[i] = min(best[i], float(np.median(ts)) * 1e3)
    return {str(p): round(b, 3) for p, b in zip(paths, best)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--no-xnnpack", action="store_true")
    a = ap.parse_args()
    print(json.dumps(interleaved_ms(a.paths, a.rounds, a.n, xnnpack=not a.no_xnnpack), indent=1))
