"""``make bench``: the papers' speed and size claims beside our measurements, in one run.

On this machine, LiteRT with XNNPACK, one thread, batch 1, fp32 and int8 TFLite, every model
of the claims below is converted (cached under ``bench/.cache/``), timed with the benchmark
harness (``edgecnn.benchmark.harness.measure``, real preprocessed test images from the bundled
CIFAR-10 sample) and set next to the paper's figure:

- Han & Kwon: structure E vs [1] (latency 13/26 ms, size 3691/9179 kB), all eight structures;
- Çallı: separable ResNet vs ResNet-20 (params, MACs, latency);
- Ghosh: QuickNet fp32 vs int8 FPS (15 FPS float, 60 hoped for in 8 bits) and the fraction of
  this machine's practical int8 peak (a large int8 1x1 convolution timed in the same run);
- CMIV4_1/2/3 vs MIV4 and REL1/2/3 vs REL (params, latency) at the smallest valid input, 75x75;
- AlexNet-like plain vs depthwise vs depthwise + residual (params, latency).

Models have fresh (seeded) weights: latency and size do not depend on training. int8 models
are calibrated on real bundled training images. QuickNet's PReLU alphas are drawn per channel
(as training leaves them) so that the int8 deploy rewrite (``edgecnn.export.deploy``) takes the
path a trained QuickNet takes; fresh alphas are all 0 and would reduce it to a plain ReLU.

Latency figures are medians of the pooled timed runs; each artifact is timed in ``rounds``
interleaved blocks so that drift in machine load falls on all models alike. FPS = 1000 / median.

    python -m edgecnn.benchmark.paper_claims [--seconds S] [--rounds R] [--models a,b] [--out bench]
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.errors import BenchmarkError, ExportError, InvalidConfigError
from edgecnn.io import atomic_path, atomic_write_json, atomic_write_text

PRECISIONS = ("fp32", "int8")
CALIBRATION_IMAGES = 64
CMIV4_INPUT = (75, 75, 3)  # the smallest input Inception-V4's valid-padded stem and reductions take
PEAK_MODEL = "peak_int8_conv1x1"  # 1x56x56x256 -> 256 channels, 1x1, int8: the machine's practical int8 peak
_PEAK_SHAPE = (56, 56, 256)
_PRELU_FAMILIES = ("quicknet",)  # families whose int8 artifact goes through the deploy rewrite
_MAX_INLINE_LATENCIES = 20_000  # more raw latencies than this go to the cache dir, not the JSON
_RECIPE_VERSION = "1"  # bump when the conversion recipe below changes (invalidates the cache)


# ----------------------------------------------------------------------------- what is measured
@dataclasses.dataclass(frozen=True)
class BenchModel:
    name: str
    group: str
    build_kwargs: Tuple[Tuple[str, object], ...] = ()
    precisions: Tuple[str, ...] = PRECISIONS
    note: str = ""

    @property
    def kwargs(self) -> dict:
        return dict(self.build_kwargs)


_HK = "Han & Kwon (MobileNetV2 structures)"
_CALLI = "Çallı (separable ResNet)"
_GHOSH = "Ghosh (QuickNet)"
_CMIV4 = "CMIV4 / REL (compact Inception-V4)"
_ALEX = "AlexNet-like (Tiny ImageNet)"
_PEAK = "machine int8 peak"
_INCEPTION_KW = (("input_shape", CMIV4_INPUT), ("num_classes", 4))

MODELS: Tuple[BenchModel, ...] = (
    *(BenchModel(f"mobilenetv2_{s}", _HK) for s in ("ref", "a", "b", "c", "d", "e", "f", "g")),
    BenchModel("sepresnet_cifar", _CALLI), BenchModel("resnet20", _CALLI),
    BenchModel("quicknet", _GHOSH, note="per-channel PReLU alphas drawn in [0.05, 0.35]; int8 with the deploy rewrite"),
    *(BenchModel(n, _ALEX) for n in ("alexnet_tiny", "alexnet_tiny_dw", "alexnet_tiny_dw_res")),
    # int8 only: converting a 41 M-parameter Inception-V4 takes minutes of CPU per precision.
    *(BenchModel(n, _CMIV4, _INCEPTION_KW, precisions=("int8",),
                 note="75x75x3 input (the smallest valid), 4-class head (the paper's), int8 only")
      for n in ("cmiv4_1", "cmiv4_2", "cmiv4_3", "miv4", "rel1", "rel2", "rel3", "rel")),
    BenchModel(PEAK_MODEL, _PEAK, precisions=("int8",), note="one 1x1 Conv2D 56x56x256 -> 256, random-normal inputs"),
)


def model_by_name(name: str) -> BenchModel:
    for m in MODELS:
        if m.name == name:
            return m
    from edgecnn.errors import did_you_mean
    raise InvalidConfigError(f"'{name}' is not a paper-claims model.{did_you_mean(name, [m.name for m in MODELS])}")


# A claim: ours = metric(num) [/ metric(den)], beside the paper's value; a target adds pass/fail.
@dataclasses.dataclass(frozen=True)
class Claim:
    section: str
    label: str
    num: Tuple[str, str, str]  # (model, precision, metric)
    den: Optional[Tuple[str, str, str]] = None
    paper: Optional[float] = None
    paper_note: str = ""
    target: Optional[Tuple[str, float]] = None  # (">=" | "<=", threshold)
    unit: str = ""


_OPS: Dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge,
                                                  "<": operator.lt, ">": operator.gt}


def _lat(model, prec="int8"):
    return (model, prec, "latency_ms")


CLAIMS: Tuple[Claim, ...] = (
    Claim(_HK, "E / [1] latency, int8", _lat("mobilenetv2_e"), _lat("mobilenetv2_ref"), 13 / 26,
          "13 / 26 ms", ("<=", 0.60)),
    Claim(_HK, "E / [1] latency, fp32", _lat("mobilenetv2_e", "fp32"), _lat("mobilenetv2_ref", "fp32"), 13 / 26,
          "13 / 26 ms"),
    Claim(_HK, "E / [1] size, fp32 TFLite", ("mobilenetv2_e", "fp32", "size_bytes"),
          ("mobilenetv2_ref", "fp32", "size_bytes"), 3691 / 9179, "3691 / 9179 kB"),
    Claim(_HK, "E / [1] size, int8 TFLite", ("mobilenetv2_e", "int8", "size_bytes"),
          ("mobilenetv2_ref", "int8", "size_bytes"), 3691 / 9179, "3691 / 9179 kB"),
    Claim(_CALLI, "separable ResNet params", ("sepresnet_cifar", "fp32", "params"), paper=0.12e6, paper_note="0.12 M"),
    Claim(_CALLI, "ResNet-20 params", ("resnet20", "fp32", "params"), paper=0.27e6, paper_note="0.27 M"),
    Claim(_CALLI, "separable ResNet MACs (24x24)", ("sepresnet_cifar", "fp32", "macs"), paper=13e6, paper_note="13 M"),
    Claim(_CALLI, "ResNet-20 MACs (32x32)", ("resnet20", "fp32", "macs"), paper=40e6, paper_note="40 M"),
    Claim(_CALLI, "sep. ResNet / ResNet-20 latency, fp32", _lat("sepresnet_cifar", "fp32"), _lat("resnet20", "fp32"),
          13 / 40, "ops ratio 13/40"),
    Claim(_CALLI, "sep. ResNet / ResNet-20 latency, int8", _lat("sepresnet_cifar"), _lat("resnet20"),
          13 / 40, "ops ratio 13/40"),
    Claim(_GHOSH, "QuickNet fp32 FPS", ("quicknet", "fp32", "fps"), paper=15, paper_note="15 FPS, low-power CPU"),
    Claim(_GHOSH, "QuickNet int8 FPS", ("quicknet", "int8", "fps"), paper=60, paper_note="60 FPS hoped for, 8-bit"),
    Claim(_GHOSH, "QuickNet int8 / fp32 FPS", ("quicknet", "int8", "fps"), ("quicknet", "fp32", "fps"), 60 / 15,
          "60 / 15", (">=", 2.5)),
    Claim(_GHOSH, "machine int8 peak, GMAC/s", (PEAK_MODEL, "int8", "gmacs_per_s"), paper_note="1x1 conv 56x56x256->256"),
    Claim(_GHOSH, "QuickNet int8, GMAC/s", ("quicknet", "int8", "gmacs_per_s")),
    Claim(_GHOSH, "QuickNet int8 / int8 peak", ("quicknet", "int8", "gmacs_per_s"), (PEAK_MODEL, "int8", "gmacs_per_s")),
    *(Claim(_CMIV4, f"{a} / {b} params", (a, "int8", "params"), (b, "int8", "params"), v, note)
      for a, b, v, note in (("cmiv4_1", "miv4", 129 / 323, "129 / 323 MB"), ("cmiv4_2", "miv4", 190 / 323, "190 / 323 MB"),
                            ("cmiv4_3", "miv4", 252 / 323, "252 / 323 MB"), ("rel1", "rel", 129 / 323, "129 / 323 MB"),
                            ("rel2", "rel", 190 / 323, "190 / 323 MB"), ("rel3", "rel", 252 / 323, "252 / 323 MB"))),
    *(Claim(_CMIV4, f"{a} / {b} latency, int8", _lat(a), _lat(b))
      for a, b in (("cmiv4_1", "miv4"), ("cmiv4_2", "miv4"), ("cmiv4_3", "miv4"),
                                       ("rel1", "rel"), ("rel2", "rel"), ("rel3", "rel"))),
    Claim(_ALEX, "plain params", ("alexnet_tiny", "fp32", "params"), paper=415_656, paper_note="415,656"),
    Claim(_ALEX, "depthwise params", ("alexnet_tiny_dw", "fp32", "params"), paper=74_818, paper_note="74,818"),
    Claim(_ALEX, "depthwise+residual params", ("alexnet_tiny_dw_res", "fp32", "params"), paper=74_818,
          paper_note="74,818"),
    *(Claim(_ALEX, f"{a} / alexnet_tiny latency, {p}", _lat(a, p), _lat("alexnet_tiny", p))
      for p in PRECISIONS for a in ("alexnet_tiny_dw", "alexnet_tiny_dw_res")),
)

# Paper latencies per model (ms), where a paper gives one.
PAPER_LATENCY_MS = {"mobilenetv2_ref": 26.0, "mobilenetv2_e": 13.0}


# ----------------------------------------------------------------------------- artifacts
def _source_digest(name: str) -> str:
    """The code version an artifact depends on: the model's family file and the shared blocks,
    the source of the conversion functions used (and of the deploy rewrite, for models with
    PReLU), this recipe, edgecnn's and TensorFlow's versions. Functions, not whole export
    files, so that an unrelated edit there does not throw the cache away."""
    import inspect

    import edgecnn
    from edgecnn.export import tflite

    root = Path(edgecnn.__file__).parent
    h = hashlib.sha256(f"{edgecnn.__version__}:{_RECIPE_VERSION}:{_tf_version()}".encode())
    for fn in (tflite.convert_tflite, tflite._converter, tflite._representative):
        h.update(inspect.getsource(fn).encode())
    if name != PEAK_MODEL:
        from edgecnn.registry import get_entry
        family = get_entry(name).family
        for f in (root / "models_keras" / "blocks.py", root / "models_keras" / f"{family}.py"):
            h.update(f.read_bytes())
        if family in _PRELU_FAMILIES:
            h.update((root / "export" / "deploy.py").read_bytes())
    return h.hexdigest()[:12]


def _tf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tensorflow")
    except PackageNotFoundError:
        return "none"


def cache_path(cache_dir, bm: BenchModel, precision: str, calibration_images: int) -> Path:
    kw = json.dumps(bm.kwargs, sort_keys=True, default=list)
    tag = hashlib.sha256(f"{kw}:{calibration_images}".encode()).hexdigest()[:6]
    return Path(cache_dir) / f"{bm.name}_{precision}_{_source_digest(bm.name)}{tag}.tflite"


def _build(bm: BenchModel):
    import tf_keras

    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    if bm.name == PEAK_MODEL:
        inp = tf_keras.Input(_PEAK_SHAPE, name="input")
        out = tf_keras.layers.Conv2D(_PEAK_SHAPE[-1], 1, use_bias=True, name="conv1x1")(inp)
        return tf_keras.Model(inp, out, name=PEAK_MODEL)
    from edgecnn.registry import create_model
    model = create_model(bm.name, **bm.kwargs)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-like PReLU alphas: see the module docstring
        if type(layer).__name__ == "PReLU":
            a = layer.get_weights()[0]
            layer.set_weights([rng.uniform(0.05, 0.35, a.shape).astype(np.float32)])
    return model


def _calibration(bm: BenchModel, input_shape, n: int, split: str = "train") -> np.ndarray:
    if bm.name == PEAK_MODEL:
        return np.random.default_rng(1).standard_normal((n,) + tuple(input_shape)).astype(np.float32)
    from edgecnn.data.preprocess import preprocess, spec_for
    from edgecnn.data.sample import load_sample
    (xtr, _), (xte, _), _ = load_sample()
    raw = xtr if split == "train" else xte
    # A class-balanced pick: the sample is stored class by class.
    idx = np.random.default_rng(0).permutation(len(raw))[:n]
    return preprocess(raw[np.sort(idx)], spec_for(input_shape, source_size=raw.shape[1]))


def _deploy(model, check_inputs) -> Tuple[object, Optional[dict]]:
    """The export engineer's deploy rewrite (PReLU -> int8-friendly ops), where it exists."""
    try:
        from edgecnn.export.deploy import prepare_for_deploy
    except ImportError:
        return model, None
    new, report = prepare_for_deploy(model, check_inputs=check_inputs)
    if report.get("rejected"):
        raise BenchmarkError(f"{model.name}: deploy rewrite rejected: {report['rejected']}")
    return new, report


def ensure_artifact(bm: BenchModel, precision: str, cache_dir, calibration_images: int = CALIBRATION_IMAGES,
                    say: Callable[[str], None] = lambda s: None) -> Tuple[Path, dict]:
    """The cached .tflite of ``bm`` at ``precision`` (converted on a miss), and facts about the
    built model: params, MACs, input shape, what the deploy rewrite did."""
    path = cache_path(cache_dir, bm, precision, calibration_images)
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        with open(meta_path, "r", encoding="utf-8") as f:
            return path, json.load(f)
    import edgecnn  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    from edgecnn.analysis import analyze
    from edgecnn.export.tflite import convert_tflite

    t0 = time.perf_counter()
    model = _build(bm)
    st = analyze(model)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    meta = {"model": bm.name, "precision": precision, "build_kwargs": bm.kwargs, "params": st.params,
            "macs": st.macs, "input_shape": list(shape), "keras_name": model.name}
    calibration = None
    to_convert = model
    if precision == "int8":
        calibration = _calibration(bm, shape, calibration_images)
        meta["calibration"] = (f"{len(calibration)} random-normal tensors" if bm.name == PEAK_MODEL else
                               f"{len(calibration)} bundled real CIFAR-10 training images, preprocessed")
        if any(type(l).__name__ == "PReLU" for l in model.layers):
            to_convert, report = _deploy(model, _calibration(bm, shape, 16, split="test"))
            if report is not None:
                meta["deploy_rewrite"] = {"rewritten": len(report.get("prelu", [])), "kept": report.get("kept", []),
                                          "max_abs_diff": report.get("max_abs_diff")}
    data = convert_tflite(to_convert, precision, calibration=calibration)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    meta["convert_s"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(meta_path, meta)
    say(f"  converted {path.name} ({len(data) / 1e6:.2f} MB) in {meta['convert_s']:.1f} s")
    import tf_keras
    del model, to_convert
    tf_keras.backend.clear_session()
    return path, meta


# ----------------------------------------------------------------------------- timing
def time_artifacts(items: Sequence[Tuple[str, Path, dict]], *, runs: Optional[int] = None,
                   seconds: Optional[float] = None, rounds: int = 3, warmup: int = 3,
                   say: Callable[[str], None] = lambda s: None) -> Dict[str, dict]:
    """Time each (key, path, meta) with the harness, ``rounds`` interleaved blocks of ``runs``
    invokes (or ``seconds`` each); latencies pooled per key."""
    from edgecnn.benchmark.harness import measure
    from edgecnn.benchmark.stats import summarize
    from edgecnn.data.preprocess import spec_for

    if not runs and not seconds:
        raise InvalidConfigError("give runs or seconds per round")
    if rounds < 1:
        raise InvalidConfigError(f"Received `rounds={rounds}`: at least 1.")
    pooled: Dict[str, List[float]] = {k: [] for k, _, _ in items}
    last: Dict[str, dict] = {}
    for r in range(rounds):
        for key, path, meta in items:
            peak = meta["model"] == PEAK_MODEL
            per_round = None if runs is None else runs // rounds + (1 if r < runs % rounds else 0)
            if per_round == 0:
                continue
            job = {"path": str(path), "runtime": "litert", "threads": 1, "batch": 1, "warmup": warmup,
                   "runs": per_round or 0, "seconds": None if runs else seconds,
                   "spec": None if peak else spec_for(meta["input_shape"], source_size=32).to_dict(),
                   "random_inputs": peak, "cpus": None}
            m = measure(job)
            pooled[key] += m["latencies_ms"]
            last[key] = m
        say(f"  round {r + 1}/{rounds} done")
    out = {}
    for key, path, meta in items:
        lat = summarize(pooled[key])
        out[key] = {"latency": lat, "inputs": last[key]["inputs"], "runtime_version": last[key]["runtime_version"],
                    "init_ms": last[key]["timing"]["init_ms"], "latencies_ms": pooled[key]}
    return out


# ----------------------------------------------------------------------------- the table
def figures_of(entry: dict) -> Dict[str, float]:
    """The metrics a claim may name, from one measured (model, precision) entry."""
    med = entry["latency"]["p50_ms"]
    return {"latency_ms": med, "fps": 1000.0 / med if med > 0 else float("inf"),
            "size_bytes": entry["size_bytes"], "params": entry["params"], "macs": entry["macs"],
            "gmacs_per_s": entry["macs"] / (med / 1000.0) / 1e9 if med > 0 else float("inf")}


def evaluate_claims(measured: Dict[str, dict], claims: Sequence[Claim] = CLAIMS) -> List[dict]:
    """One row per claim whose models were measured: ours, the paper's, and pass/fail of targets."""
    def value(ref):
        model, prec, metric = ref
        e = measured.get(f"{model}:{prec}")
        return None if e is None else figures_of(e)[metric]

    def runs(ref):
        e = measured.get(f"{ref[0]}:{ref[1]}")
        return e["latency"]["count"] if e is not None and ref[2] in ("latency_ms", "fps", "gmacs_per_s") else None

    rows = []
    for c in claims:
        num = value(c.num)
        den = value(c.den) if c.den else 1.0
        if num is None or den is None:
            continue
        ours = num / den if c.den else num
        counts = [n for n in (runs(c.num), runs(c.den) if c.den else None) if n is not None]
        row = {"section": c.section, "claim": c.label, "ours": ours, "paper": c.paper, "paper_note": c.paper_note,
               "ours_vs_paper": (ours / c.paper) if c.paper else None,
               "num": list(c.num), "den": list(c.den) if c.den else None,
               "runs": min(counts) if counts else None, "target": None, "passed": None}
        if c.target:
            op, thr = c.target
            row["target"] = f"{op} {thr:g}"
            row["passed"] = bool(_OPS[op](ours, thr))
        rows.append(row)
    return rows


def _fmt(v, metric_hint: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v >= 1000 and float(v).is_integer()):
        v = float(v)
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= div:
                return f"{v / div:.3g} {unit}"
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def model_rows(measured: Dict[str, dict], models: Sequence[BenchModel]) -> List[dict]:
    rows = []
    from edgecnn.registry import get_entry
    for bm in models:
        entries = {p: measured.get(f"{bm.name}:{p}") for p in bm.precisions}
        any_e = next((e for e in entries.values() if e), None)
        if any_e is None:
            continue
        paper_params = paper_bytes = None
        if bm.name != PEAK_MODEL:
            for f in get_entry(bm.name).paper:
                if f.relative_to is None and f.metric == "params":
                    paper_params = f.value
                if f.relative_to is None and f.metric == "fp32_bytes":
                    paper_bytes = f.value
        row = {"model": bm.name, "group": bm.group, "input": "x".join(str(d) for d in any_e["input_shape"]),
               "params": any_e["params"], "paper_params": paper_params, "macs": any_e["macs"],
               "paper_fp32_bytes": paper_bytes, "paper_latency_ms": PAPER_LATENCY_MS.get(bm.name), "note": bm.note}
        for p in PRECISIONS:
            e = entries.get(p)
            row[f"{p}_bytes"] = e["size_bytes"] if e else None
            row[f"{p}_ms"] = e["latency"]["p50_ms"] if e else None
            row[f"{p}_min_ms"] = e["latency"]["min_ms"] if e else None
            row[f"{p}_runs"] = e["latency"]["count"] if e else None
        row["int8_speedup"] = (row["fp32_ms"] / row["int8_ms"]) if row["fp32_ms"] and row["int8_ms"] else None
        rows.append(row)
    return rows


def markdown(doc: dict) -> str:
    ctx = doc["context"]
    out = ["# Paper claims vs. this machine", "",
           f"Measured {doc['created']} on {ctx['platform']}; {ctx['runtime']}, 1 thread, batch 1. "
           f"Latency = median of the pooled timed runs ({ctx['rounds']} interleaved rounds per artifact; "
           f"the `runs` columns say how many); FPS = 1000 / median. "
           f"Fresh seeded weights (latency and size do not depend on training); int8 = full-integer, "
           f"calibrated on {ctx['calibration_images']} real bundled CIFAR-10 training images. "
           f"Timing inputs: {ctx['inputs']}. Shared, noisy CPU: ratios are more trustworthy than absolute ms.", ""]
    if doc["targets"]:
        out += ["## Targets", "", "| target | ours | threshold | result |", "|---|---:|---:|---|"]
        for r in doc["targets"]:
            out.append(f"| {r['claim']} | {r['ours']:.3f} | {r['target']} | {'PASS' if r['passed'] else 'FAIL'} |")
        out.append("")
    out += ["## Claims", "", "| paper | claim | ours | paper | ours / paper | runs | target |",
            "|---|---|---:|---:|---:|---:|---|"]
    for r in doc["claims"]:
        paper = (_fmt(r["paper"]) + (f" ({r['paper_note']})" if r["paper_note"] else "")) if r["paper"] is not None \
            else (r["paper_note"] or "—")
        tgt = f"{r['target']}: {'PASS' if r['passed'] else 'FAIL'}" if r["target"] else ""
        out.append(f"| {r['section']} | {r['claim']} | {_fmt(r['ours'])} | {paper} | {_fmt(r['ours_vs_paper'])} | "
                   f"{r['runs'] if r['runs'] is not None else '—'} | {tgt} |")
    out += ["", "## Models", "",
            "| model | input | params (paper) | MACs | fp32 size | int8 size | fp32 ms median / min (runs) | "
            "int8 ms median / min (runs) | int8 speed-up | paper ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["models"]:
        pp = f" ({_fmt(r['paper_params'])})" if r["paper_params"] else ""
        size = lambda b: "—" if b is None else f"{b / 1e6:.2f} MB"  # noqa: E731
        ms = lambda p: ("—" if r[f"{p}_ms"] is None else  # noqa: E731
                        f"{r[f'{p}_ms']:.3f} / {r[f'{p}_min_ms']:.3f} ({r[f'{p}_runs']})")
        out.append(f"| {r['model']} | {r['input']} | {_fmt(r['params'])}{pp} | {_fmt(r['macs'])} | "
                   f"{size(r['fp32_bytes'])} | {size(r['int8_bytes'])} | {ms('fp32')} | {ms('int8')} | "
                   f"{_fmt(r['int8_speedup'])} | {_fmt(r['paper_latency_ms'])} |")
    notes = sorted({f"{r['model']}: {r['note']}" for r in doc["models"] if r["note"]})
    if notes or doc.get("notes"):
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes + list(doc.get("notes", []))]
    if doc.get("plots"):
        out += ["", "Plots: " + ", ".join(f"`{Path(p).name}`" for p in doc["plots"])]
    out.append("")
    return "\n".join(out)


def plots(doc: dict, out_dir) -> List[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    written = []
    rows = [r for r in doc["models"] if r["fp32_ms"] or r["int8_ms"]]
    if rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 2), 4.5))
        x = np.arange(len(rows))
        for i, p in enumerate(PRECISIONS):
            ax.bar(x + (i - 0.5) * 0.4, [r[f"{p}_ms"] or 0 for r in rows], 0.4, label=p)
        ax.set_xticks(x)
        ax.set_xticklabels([r["model"] for r in rows], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("median latency, ms (log)")
        ax.set_yscale("log")
        ax.set_title("fp32 vs int8, LiteRT + XNNPACK, 1 thread, batch 1 (this machine)", fontsize=9)
        ax.legend()
        fig.tight_layout()
        target = out_dir / "paper_claims_latency.png"
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(target)
    hk = [r for r in doc["models"] if r["group"] == _HK and r["int8_ms"] and r["fp32_ms"]]
    if hk:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for p, mark in (("fp32", "o"), ("int8", "s")):
            ax.scatter([r[f"{p}_bytes"] / 1e3 for r in hk], [r[f"{p}_ms"] for r in hk], marker=mark, label=p)
            for r in hk:
                label = "[1]" if r["model"].endswith("_ref") else r["model"].rsplit("_", 1)[-1].upper()
                ax.annotate(label, (r[f"{p}_bytes"] / 1e3, r[f"{p}_ms"]), fontsize=8, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel("TFLite file size, kB")
        ax.set_ylabel("median latency, ms")
        ax.set_title("Han & Kwon structures: size vs latency (this machine)", fontsize=9)
        ax.legend()
        fig.tight_layout()
        target = out_dir / "paper_claims_structures.png"
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(target)
    return written


def run_paper_claims(models: Optional[Sequence[str]] = None, *, out_dir="bench", cache_dir=None,
                     runs: Optional[int] = None, seconds: Optional[float] = 1.0, rounds: int = 3, warmup: int = 3,
                     calibration_images: int = CALIBRATION_IMAGES, make_plots: bool = True,
                     precisions: Sequence[str] = PRECISIONS, claims: Sequence[Claim] = CLAIMS,
                     say: Callable[[str], None] = lambda s: None) -> dict:
    """Convert (or reuse), time and compare; writes paper_claims.md/.json (and plots) to ``out_dir``.

    ``models``: a subset of ``MODELS`` by name (default all); ``precisions``: restrict to these;
    ``runs`` timed runs per artifact in all, or ``seconds`` per artifact per round; ``claims``:
    what to compare (claims naming an unmeasured model are left out of the table)."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise InvalidConfigError(f"Received `precisions={list(precisions)}`: choose from {', '.join(PRECISIONS)}.")
    from edgecnn.benchmark.platform import describe, platform_info

    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / ".cache"
    chosen = [model_by_name(n) for n in models] if models else list(MODELS)
    t0 = time.perf_counter()
    items = []
    metas = {}
    notes: List[str] = []
    left_out = [m.name for m in MODELS if m not in chosen]
    if left_out:
        notes.append(f"not in this run (--models): {', '.join(left_out)}")
    for bm in chosen:
        for p in (p for p in bm.precisions if p in precisions):
            say(f"artifact {bm.name} {p}")
            try:
                path, meta = ensure_artifact(bm, p, cache_dir, calibration_images, say)
            except ExportError as e:  # one model that does not convert must not hide the others
                notes.append(f"{bm.name} {p}: not measured: {e.message}")
                say(f"  {notes[-1]}")
                continue
            key = f"{bm.name}:{p}"
            items.append((key, path, meta))
            metas[key] = (path, meta)
    convert_s = time.perf_counter() - t0
    if not items:
        raise BenchmarkError("nothing to time: " + ("; ".join(notes) or "no model/precision selected"))
    say(f"timing {len(items)} artifacts: {rounds} rounds x "
        f"{f'{runs} runs' if runs else f'{seconds:g} s'} (+{warmup} warm-up) each")
    timed = time_artifacts(items, runs=runs, seconds=seconds, rounds=rounds, warmup=warmup, say=say)
    measured = {}
    for key, (path, meta) in metas.items():
        t = timed[key]
        measured[key] = {"model": meta["model"], "precision": meta["precision"], "artifact": path.name,
                         "size_bytes": path.stat().st_size, "params": meta["params"], "macs": meta["macs"],
                         "input_shape": meta["input_shape"], "calibration": meta.get("calibration"),
                         "deploy_rewrite": meta.get("deploy_rewrite"), "latency": t["latency"],
                         "init_ms": t["init_ms"], "inputs": t["inputs"], "latencies_ms": t["latencies_ms"]}
    claims = evaluate_claims(measured, claims)
    info = platform_info()
    first = next(iter(timed.values()))
    real_inputs = [m["inputs"] for m in measured.values() if m["model"] != PEAK_MODEL]
    doc = {
        "schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "context": {"platform": describe(info), "runtime": f"LiteRT {first['runtime_version']} with XNNPACK",
                    "threads": 1, "batch": 1, "rounds": rounds, "runs_per_round": runs,
                    "seconds_per_round": None if runs else seconds, "warmup": warmup,
                    "calibration_images": calibration_images,
                    "inputs": (f"{real_inputs[0]['source']} ({real_inputs[0]['images']} images, preprocessed "
                               f"with spec_for(input shape))" if real_inputs else "random normal"),
                    "weights": "fresh, seeded (tf_keras.utils.set_random_seed(0))",
                    "latency_statistic": "median (p50) of pooled runs", "fps": "1000 / median latency"},
        "platform": info,
        "targets": [c for c in claims if c["target"]],
        "claims": claims,
        "models": model_rows(measured, chosen),
        "measured": {k: {kk: vv for kk, vv in v.items() if kk != "latencies_ms"} for k, v in measured.items()},
        "latencies_ms": {k: v["latencies_ms"] for k, v in measured.items()},
        "notes": notes,
        "wall_s": {"convert_or_cache": round(convert_s, 1)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    doc["plots"] = [str(p) for p in plots(doc, out_dir)] if make_plots else []
    doc["wall_s"]["total"] = round(time.perf_counter() - t0, 1)
    written = doc
    if sum(len(v) for v in doc["latencies_ms"].values()) > _MAX_INLINE_LATENCIES:
        # Every run's latency is kept, but beside the cache (git-ignored), not in the tracked JSON.
        raw = cache_dir / "paper_claims_latencies.json"
        atomic_write_json(raw, doc["latencies_ms"])
        written = {k: v for k, v in doc.items() if k != "latencies_ms"}
        written["latencies_file"] = str(raw)
    atomic_write_json(out_dir / "paper_claims.json", written)
    atomic_write_text(out_dir / "paper_claims.md", markdown(doc))
    return doc


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edgecnn.benchmark.paper_claims", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="Comma-separated subset (default: all).")
    ap.add_argument("--runs", type=int, default=None, help="Timed runs per artifact in all (split over rounds).")
    ap.add_argument("--seconds", type=float, default=1.0, help="Seconds of timed runs per artifact per round.")
    ap.add_argument("--rounds", type=int, default=3, help="Interleaved rounds per artifact.")
    ap.add_argument("--warmup", type=int, default=3, help="Warm-up invokes before each round's timed runs.")
    ap.add_argument("--out", default="bench", help="Output folder (md, json, png).")
    ap.add_argument("--cache-dir", default=None, help="Converted models (default: OUT/.cache).")
    ap.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    args = ap.parse_args(argv)
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    doc = run_paper_claims(models, out_dir=args.out, cache_dir=args.cache_dir, runs=args.runs, seconds=args.seconds, rounds=args.rounds,
                           warmup=args.warmup, make_plots=not args.no_plots, say=say)
    print(markdown(doc))
    print(f"Written: {Path(args.out) / 'paper_claims.md'}, {Path(args.out) / 'paper_claims.json'}"
          + "".join(f", {p}" for p in doc["plots"]))
    print(f"paper claims: {doc['wall_s']['total']:.0f} s ({doc['wall_s']['convert_or_cache']:.0f} s converting or "
          f"reading the cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
