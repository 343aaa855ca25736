"""Latency statistics, the same quantities LiteRT's ``benchmark_model`` prints, plus FPS.

Conventions (fixed, so that figures from a Pi and from here compare):

- ``std_ms`` is the population standard deviation (ddof=0), as ``benchmark_model``'s ``std=``.
- Percentiles use linear interpolation between closest ranks (numpy's default ``"linear"``
  method, the same as ``statistics.quantiles(..., method="inclusive")``): p50 of [1, 2, 3, 4] is 2.5.
- ``fps`` is images per second at the mean latency: ``1000 / mean_ms * batch``.

numpy only: this runs on the device.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
STAT_KEYS = ("count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def summarize(latencies_ms: Sequence[float]) -> Dict[str, float]:
    """count, mean, std, min, p50, p90, p95, p99, max of a latency sample, in milliseconds."""
    x = np.asarray(latencies_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latencies to summarize")
    out = {"count": int(x.size), "mean_ms": float(x.mean()), "std_ms": float(x.std(ddof=0)),
           "min_ms": float(x.min())}
    for p, v in zip(PERCENTILES, np.percentile(x, PERCENTILES, method="linear")):
        out[f"p{p}_ms"] = float(v)
    out["max_ms"] = float(x.max())
    return out


def fps(mean_ms: float, batch: int = 1) -> float:
    """Images per second at a mean latency per batch."""
    return 1000.0 / mean_ms * batch if mean_ms > 0 else float("inf")
