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


# ---------------------------------------------------------------------------- paired accuracy
Z95 = 1.959963984540054  # the two-sided 95 % quantile of the normal distribution


def paired_drop(reference_right, other_right, z: float = Z95) -> Dict[str, float]:
    """How far the top-1 of one classifier (``other_right``: per image, right or not) is below a
    reference's on the same images (``reference_right``), in points, with its 95 % interval.

    Paired: only the images where the two disagree carry information (b: the reference right and
    the other wrong, c: the reverse); the drop is (b - c) / n. The interval is Bonett and Price's
    adjusted Wald interval for a difference of paired proportions (J. Educ. Behav. Stat. 37, 2012):
    with p12 = (b + 1) / (n + 2) and p21 = (c + 1) / (n + 2), p12 - p21 +- z sqrt((p12 + p21 -
    (p12 - p21)^2) / (n + 2)). It keeps its coverage with few disagreements, and it never collapses:
    two classifiers that agree on all 800 images still get +-0.35 points, what 800 images can tell.

    Returns ``n``, ``b``, ``c``, ``drop_images`` (b - c), ``drop_points`` (100 (b - c) / n),
    ``low_points`` and ``high_points``.
    """
    r = np.asarray(reference_right, bool).ravel()
    o = np.asarray(other_right, bool).ravel()
    if r.shape != o.shape or r.size == 0:
        raise ValueError("paired_drop needs two verdicts per image, on at least one image")
    n, b, c = int(r.size), int(np.sum(r & ~o)), int(np.sum(~r & o))
    p12, p21 = (b + 1) / (n + 2), (c + 1) / (n + 2)
    centre = p12 - p21
    half = z * float(np.sqrt(max(p12 + p21 - centre ** 2, 0.0) / (n + 2)))
    return {"n": n, "b": b, "c": c, "drop_images": b - c, "drop_points": 100.0 * (b - c) / n,
            "low_points": 100.0 * (centre - half), "high_points": 100.0 * (centre + half)}


def resolution_points(n: int, z: float = Z95) -> float:
    """Half the width, in points, of the 95 % interval of ``paired_drop`` on ``n`` images when the
    two classifiers agree on every one: the smallest drop ``n`` test images can tell from none."""
    p = 1 / (n + 2)
    return 100.0 * z * float(np.sqrt(2 * p / (n + 2)))
