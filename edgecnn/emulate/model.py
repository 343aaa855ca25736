"""From what an emulated core executed to how long a board takes: edgecnn's arm64 cost model.

Instruction counts alone are not latency: on a Cortex-A72, MobileNetV2 int8 executes ~0.92x the
instructions of fp32, yet a Raspberry Pi 4 runs it in 0.37x the time (XNNPACK's published
figures, below). Per instruction, int8 NEON does more work, and fp32 moves 4x the bytes through a
32 KB L1, a 1 MB L2 and LPDDR4. The model therefore has three terms per inference:

    t(N threads) = (C / eta + k * M1) / (f * N)  +  D / B

- C, the **compute bound** in core cycles: the busiest of the core's issue resources for the
  executed instruction mix (the counting plugin's classes), with the throughputs of the core's
  Software Optimization Guide (CORES below): dispatch width, the two 128-bit SIMD pipes (integer
  multiply-accumulate on one of them only, on the A72 and A76), load and store bandwidth per
  cycle, integer ALUs. ``eta`` is the fraction of that bound XNNPACK's kernels achieve.
- M1, the lines that miss the simulated L1 data cache (each a refill from L2, or L3 on a Pi 5),
  ``k`` core cycles each: stalls the out-of-order window does not hide.
- D, the bytes that miss the last simulated level (reads) plus dirty lines written back: DRAM
  traffic, at the board's sustained bandwidth ``B`` (measured figures, edgecnn.measure.boards).
  DRAM is shared, so this term does not shrink with threads; compute and refills split over N
  cores, as XNNPACK splits every operator's output across its threadpool.

``eta`` and ``k`` are fitted (linear least squares on relative error) to the published Raspberry
Pi 4 figures of PUBLISHED, from the counts ``edgecnn bench emulator`` measures and stores in
calibration.json beside this file. Each figure's error is reported twice: in the fit, and left
out of it (fitted on the others), the honest estimate of the model's error on a new model. Only
the Cortex-A72 has published XNNPACK figures to fit; the A76 (Pi 5) and A53 (Pi 3, Zero 2) use
the A72's eta and k with their own throughputs, clocks, caches and DRAM, and say "uncalibrated".

What the model cannot see: thermal throttling (a Pi 4 without a heatsink drops from 1.5 GHz
under sustained 4-thread load), the clock a particular board runs (Pi 4 boards since 2020 run
1.8 GHz), OS noise and other processes, branch mispredictions, TLB misses, the hardware
prefetchers (the cache simulation has none), DRAM refresh and contention between cores beyond
the shared bandwidth, and threadpool synchronization.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from edgecnn.measure.boards import BOARDS

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"
LINE = 64


@dataclass(frozen=True)
class Core:
    """Issue resources per cycle (Arm Software Optimization Guides; LLVM's scheduling models where
    the guide's table was not at hand, as noted)."""
    name: str
    dispatch: float          # instructions decoded/dispatched per cycle
    simd_pipes: float        # 128-bit SIMD/FP pipes (Q-form ops per cycle over all classes)
    mul_per_cycle: float     # SIMD integer multiply(-accumulate) per cycle (one pipe only: MLA, SMLAL)
    dot_per_cycle: float     # SDOT/UDOT per cycle
    load_bytes: float        # bytes loaded per cycle
    store_bytes: float       # bytes stored per cycle
    ldst_per_cycle: float    # load/store instructions per cycle
    int_per_cycle: float     # scalar integer + branch instructions per cycle
    qform_cost: float = 1.0  # cycles a 128-bit SIMD op holds its pipe (2 on a 64-bit datapath)
    source: str = ""

    def cycles(self, classes: Dict[str, float], bytes_loaded: float, bytes_stored: float) -> Tuple[float, str]:
        """(compute-bound cycles, the binding resource)."""
        g = classes.get
        simd = (g("simd_mul", 0.0) + g("simd_dot", 0.0) + g("fp_fma", 0.0) + g("simd_other", 0.0)) * self.qform_cost
        bounds = {
            "dispatch": sum(classes.values()) / self.dispatch,
            "simd pipes": simd / self.simd_pipes,
            "simd multiply": g("simd_mul", 0.0) * self.qform_cost / self.mul_per_cycle,
            "dot product": g("simd_dot", 0.0) / self.dot_per_cycle if self.dot_per_cycle else 0.0,
            "loads": bytes_loaded / self.load_bytes,
            "stores": bytes_stored / self.store_bytes,
            "load/store issue": g("ldst", 0.0) / self.ldst_per_cycle,
            "integer": (g("int", 0.0) + g("branch", 0.0)) / self.int_per_cycle,
        }
        which = max(bounds, key=bounds.get)
        return bounds[which], which


CORES: Dict[str, Core] = {c.name: c for c in (
    # Cortex-A72 Software Optimization Guide (Arm UAN 0016A): 3-wide decode/dispatch; FP/ASIMD
    # pipes F0 and F1 (FMLA Q-form on either); ASIMD integer multiply(-accumulate) on F0 only;
    # one load and one store pipe, 16 B each; two integer ALUs plus branch and multi-cycle units.
    Core("cortex-a72", dispatch=3, simd_pipes=2, mul_per_cycle=1, dot_per_cycle=0, load_bytes=16,
         store_bytes=16, ldst_per_cycle=2, int_per_cycle=2,
         source="Arm Cortex-A72 Software Optimization Guide (UAN 0016A), sections 3 and 4"),
    # Cortex-A76 Software Optimization Guide: 4-wide decode; V0/V1 128-bit pipes (FMLA and SDOT on
    # either; integer MLA/SMLAL on V0 only, as in LLVM's Neoverse-N1 model of the same core);
    # two load/store pipes of 16 B; three integer ALUs.
    Core("cortex-a76", dispatch=4, simd_pipes=2, mul_per_cycle=1, dot_per_cycle=2, load_bytes=32,
         store_bytes=16, ldst_per_cycle=2, int_per_cycle=3,
         source="Arm Cortex-A76 Software Optimization Guide; LLVM AArch64SchedNeoverseN1.td"),
    # Cortex-A53 (no optimization guide; LLVM AArch64SchedA53.td): in-order, dual issue, a 64-bit
    # SIMD datapath (a Q-form op holds its pipe two cycles), one FP/SIMD multiply and one FP/SIMD
    # ALU pipe, one load/store pipe of 8 B.
    Core("cortex-a53", dispatch=2, simd_pipes=2, mul_per_cycle=1, dot_per_cycle=0, load_bytes=8,
         store_bytes=8, ldst_per_cycle=1, int_per_cycle=2, qform_cost=2.0,
         source="LLVM AArch64SchedA53.td (Arm publishes no A53 optimization guide)"),
)}


@dataclass(frozen=True)
class Published:
    """A published latency to calibrate and check against."""
    key: str         # the calibration model it is measured on (calibration.json "counts" key suffix)
    board: str       # whose counts it is predicted from (the emulated core and cpuinfo)
    model: str
    precision: str
    threads: int
    ms: float
    source: str
    ghz: float       # the clock the figure was measured at


_XNN = ("XNNPACK README, 'Raspberry Pi' table benchmarked Feb 8, 2022 (end2end-bench, randomized weights, "
        "as many threads as cores), column RPi 4 (BCM2711, ARM64)")
PUBLISHED: Tuple[Published, ...] = (
    Published("mobilenet_v2_fp32", "pi4", "MobileNet v2 1.0 224", "fp32", 4, 46.0, _XNN, 1.5),
    Published("mobilenet_v2_int8", "pi4", "MobileNet v2 1.0 224", "int8", 4, 17.0, _XNN, 1.5),
    Published("mobilenet_v1_fp32", "pi4", "MobileNet v1 1.0 224", "fp32", 4, 77.0, _XNN, 1.5),
    Published("mobilenet_v1_int8", "pi4", "MobileNet v1 1.0 224", "int8", 4, 24.0, _XNN, 1.5),
)
# The table names the SoC, not the clock: the figures are taken as measured at the BCM2711's
# first clock, 1.5 GHz (the board "pi4-1.5ghz"), as the fit has always assumed. A 1.8 GHz board
# ("pi4") is predicted from the same counts and fit at its own clock.
# Published figures the model is checked against but not fitted on: the Pi 3 B+ column of the same
# table is a 32-bit (armv7, NEON) build, another instruction set than the arm64 code counted here,
# so its errors are indicative only.
_XNN32 = _XNN.replace("column RPi 4 (BCM2711, ARM64)", "column RPi 3+ (BCM2837B0), a 32-bit build")
REFERENCE: Tuple[Published, ...] = (
    Published("mobilenet_v2_fp32", "pi3", "MobileNet v2 1.0 224", "fp32", 4, 79.0, _XNN32, 1.4),
    Published("mobilenet_v2_int8", "pi3", "MobileNet v2 1.0 224", "int8", 4, 30.0, _XNN32, 1.4),
    Published("mobilenet_v1_fp32", "pi3", "MobileNet v1 1.0 224", "fp32", 4, 114.0, _XNN32, 1.4),
    Published("mobilenet_v1_int8", "pi3", "MobileNet v1 1.0 224", "int8", 4, 46.0, _XNN32, 1.4),
)
CALIBRATED_CORES = ("cortex-a72",)


@dataclass
class Prediction:
    board: str
    core: str
    threads: int
    ms: float
    compute_ms: float
    refill_ms: float
    dram_ms: float
    bound: str               # the compute bound's binding resource
    error_pct: Optional[float]   # the calibration's largest left-out error, % (None: uncalibrated core)

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms if self.ms > 0 else 0.0

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["fps"] = self.fps
        return d


def _terms(counts: dict, board: str) -> Tuple[float, float, float, str]:
    """(compute cycles, L1-miss lines, DRAM bytes, binding resource) of one inference."""
    b = BOARDS[board]
    c, which = CORES[b.core].cycles(counts["classes"], counts["bytes_loaded"], counts["bytes_stored"])
    misses = counts["misses"]
    dram = (misses[-1] + counts["writebacks"]) * LINE
    return c, misses[0], dram, which


def predict_from(counts: dict, board: str, threads: int, eta: float, k: float,
                 error_pct: Optional[float] = None, ghz: Optional[float] = None) -> Prediction:
    """``ghz``: another clock than the board's (a published figure's own)."""
    b = BOARDS[board]
    if threads < 1:
        raise ValueError("threads must be at least 1")
    c, m1, dram, which = _terms(counts, board)
    f = (ghz or b.ghz) * 1e9
    n = min(threads, b.cores)
    compute = c / eta / (f * n) * 1e3
    refill = k * m1 / (f * n) * 1e3
    dram_ms = dram / (b.dram_gbs * 1e9) * 1e3
    return Prediction(board, b.core, threads, compute + refill + dram_ms, compute, refill, dram_ms, which, error_pct)


def fit(counts_by_key: Dict[str, dict], figures: Sequence[Published]) -> Tuple[float, float]:
    """(eta, k) minimizing the summed squared relative error over ``figures``."""
    import numpy as np

    rows, rhs = [], []
    for p in figures:
        counts = counts_by_key[f"{p.board}/{p.key}"]
        c, m1, dram, _ = _terms(counts, p.board)
        b = BOARDS[p.board]
        f, n, t = p.ghz * 1e9, min(p.threads, b.cores), p.ms / 1e3
        rows.append([c / (f * n) / t, m1 / (f * n) / t])
        rhs.append(1.0 - dram / (b.dram_gbs * 1e9) / t)
    (inv_eta, k), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    if inv_eta <= 0 or k < 0:
        raise ValueError(f"the calibration fit is unphysical (1/eta {inv_eta:.3g}, k {k:.3g})")
    return 1.0 / float(inv_eta), float(k)


def calibration_table(counts_by_key: Dict[str, dict], figures: Sequence[Published] = PUBLISHED) -> dict:
    """The fit over ``figures`` and, per figure, its prediction in the fit and left out of it."""
    eta, k = fit(counts_by_key, figures)
    rows = []
    for i, p in enumerate(figures):
        counts = counts_by_key[f"{p.board}/{p.key}"]
        inside = predict_from(counts, p.board, p.threads, eta, k, ghz=p.ghz)
        others = [q for j, q in enumerate(figures) if j != i]
        eta_o, k_o = fit(counts_by_key, others)
        out = predict_from(counts, p.board, p.threads, eta_o, k_o, ghz=p.ghz)
        rows.append({"board": p.board, "model": p.model, "precision": p.precision, "threads": p.threads,
                     "published_ms": p.ms, "predicted_ms": inside.ms, "error_pct": (inside.ms / p.ms - 1) * 100,
                     "left_out_ms": out.ms, "left_out_error_pct": (out.ms / p.ms - 1) * 100,
                     "instructions": counts["instructions"], "source": p.source})
    ratios = []
    by = {(r["model"], r["precision"]): r for r in rows}
    for model in sorted({r["model"] for r in rows}):
        if (model, "int8") in by and (model, "fp32") in by:
            q, f = by[(model, "int8")], by[(model, "fp32")]
            pub, pred = q["published_ms"] / f["published_ms"], q["predicted_ms"] / f["predicted_ms"]
            ratios.append({"model": model, "published": pub, "predicted": pred, "error_pct": (pred / pub - 1) * 100})
    checks = []
    for p in REFERENCE:
        counts = counts_by_key.get(f"{p.board}/{p.key}")
        if counts is None:
            continue
        pred = predict_from(counts, p.board, p.threads, eta, k, ghz=p.ghz)
        checks.append({"board": p.board, "model": p.model, "precision": p.precision, "threads": p.threads,
                       "published_ms": p.ms, "predicted_ms": pred.ms, "error_pct": (pred.ms / p.ms - 1) * 100,
                       "instructions": counts["instructions"], "source": p.source})
    return {"eta": eta, "k_cycles_per_line": k, "figures": rows, "ratios": ratios, "unfitted_checks": checks,
            "max_left_out_error_pct": max(abs(r["left_out_error_pct"]) for r in rows)}


def _calibration_spec():
    """calibration.json's fields, typed and bounded (the file is read like any untrusted input)."""
    from edgecnn.contract.checks import Bool, Int, ListOf, MapOf, Num, Obj, Opt, Str

    big = 1e18
    counts = Obj({"instructions": Num(0, big), "classes": MapOf(Num(0, big), key=Str(32), max_len=64),
                  "bytes_loaded": Num(0, big), "bytes_stored": Num(0, big),
                  "misses": ListOf(Num(0, big), min_len=1, max_len=8), "writebacks": Num(0, big)},
                 {"board": Str(32, choices=tuple(BOARDS)), "core": Str(32, choices=tuple(CORES)),
                  "invokes": Int(1, 1 << 20), "xnnpack": Bool(), "delegated_tensors": Int(0, 1 << 30),
                  "delegate_nodes": Int(0, 1 << 30), "output_sha256": Str(64), "output": ListOf(ListOf(Num()))})
    row = Obj({}, {"model": Str(), "published": Num(), "predicted": Num(), "error_pct": Num()}, extra=True)
    fit = Obj({"eta": Num(1e-6, 1e3, gt=0), "k_cycles_per_line": Num(0, 1e9), "max_left_out_error_pct": Num(0, 1e6)},
              {"figures": ListOf(Obj(extra=True), max_len=1000), "ratios": ListOf(row, max_len=1000),
               "unfitted_checks": ListOf(Obj(extra=True), max_len=1000)})
    return Obj({"counts": MapOf(counts, key=Str(96, pattern=r"[a-z0-9_-]+/[A-Za-z0-9_.-]+"), max_len=10_000),
                "fit": fit},
               {"schema": Int(1, 1), "command": Str(200), "litert": Opt(Str(64)), "invokes": Int(1, 1 << 20)})


MAX_CALIBRATION_BYTES = 8 << 20


def load_calibration(path: Optional[Path] = None) -> dict:
    """calibration.json (written by ``edgecnn bench emulator``): the counts and the fit, read with
    the contract's bounded JSON reader and typed spec (a FIFO in its place is refused, not waited
    on; a string, zero or missing eta, a list for the fit: one EmulatorError line naming the field)."""
    from edgecnn.contract.checks import read_checked
    from edgecnn.errors import EmulatorError

    return read_checked(Path(path or CALIBRATION_FILE), _calibration_spec(), "emulator calibration", EmulatorError,
                        MAX_CALIBRATION_BYTES)


def predict(counts: dict, board: str, threads: int = 1, calibration: Optional[dict] = None) -> Prediction:
    """Predicted latency of one inference on ``board`` with ``threads`` threads, from ``counts``
    (a ``Counts.to_json()``), with the shipped calibration."""
    cal = calibration or load_calibration()
    fitted = cal["fit"]
    core = BOARDS[board].core
    err = fitted["max_left_out_error_pct"] if core in CALIBRATED_CORES else None
    return predict_from(counts, board, threads, fitted["eta"], fitted["k_cycles_per_line"], err)


def ratio_rows(doc: dict) -> List[dict]:
    return list(doc["fit"].get("ratios", []))
