"""``edgecnn bench paper``: the papers' speed and size claims beside this machine's figures.

The claims are data beside the builders that make them (``PaperClaim`` in the model files,
``edgecnn.models.registry.list_claims``); this module only measures and compares them. It is the stage
after ``benchmark``: every model it times is first exported with ``edgecnn.export.export_model``
(an ordinary export folder per model, ``<cache>/<model>/`` with manifest.json, verified as any
export is) and then timed with the benchmark harness (``edgecnn.benchmark.benchmark``).

- Fresh, seeded weights (``tf_keras.utils.set_random_seed(0)``, as ``edgecnn export`` does for a
  model with no trained run): latency and size do not depend on training. PReLU alphas are drawn
  per channel in [0.05, 0.35], as training leaves them: fresh alphas are all 0, which would reduce
  the int8 deploy rewrite (``edgecnn.export.deploy``) to a plain ReLU and time a graph a trained
  QuickNet never has.
- int8 = full-integer TFLite calibrated on ``calibration`` real bundled CIFAR-10 training images;
  no ONNX (no claim is about it); only the precisions some claim needs.
- A cached export is reused when its manifest reads back with every artifact's sha256 intact, it
  was built from the same model (the Keras model name encodes the configuration) and calibration,
  and it holds the precisions needed. Delete the cache folder to convert again after a change to
  a builder or the converter.
- Timing: LiteRT with XNNPACK, 1 thread, batch 1, real preprocessed test images; ``rounds``
  interleaved rounds over all artifacts so that drift in machine load falls on all alike, the
  rounds' timed runs pooled per artifact and summarized by ``edgecnn.measure.stats``.
  Every latency, FPS and latency/FPS ratio uses the MEAN of the pooled runs, so that
  FPS = ``stats.fps`` = 1000 / mean and an FPS ratio is the inverse of the latency ratio.
"""
from __future__ import annotations

import dataclasses
import operator
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgecnn.core.options import Options
from edgecnn.errors import BenchmarkError, ExportError, InvalidConfigError, ModelFileError, did_you_mean
from edgecnn.core.files import atomic_write_json, atomic_write_text
from edgecnn.models.registry import CLAIM_PRECISIONS, PaperClaim, get_entry, list_claims, list_models

PRECISIONS = CLAIM_PRECISIONS
CALIBRATION_IMAGES = 64
# Timed beside the claims' models so that the structures plot shows all eight of Han & Kwon's Table 3.
CONTEXT_MODELS = tuple(f"mobilenetv2_{s}" for s in ("a", "b", "c", "d", "f", "g"))
_MAX_INLINE_LATENCIES = 20_000  # more timed runs than this go beside the cache, not into paper_claims.json
LATENCY_STATISTIC = "mean"  # of the pooled timed runs, for every latency, FPS and ratio of them
_METRIC = {"latency_ms": "latency_ms", "latency_ratio": "latency_ms", "fps": "fps", "fps_ratio": "fps",
           "size_bytes": "size_bytes", "size_ratio": "size_bytes"}
_OPS: Dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge,
                                                  "<": operator.lt, ">": operator.gt}


# ----------------------------------------------------------------------------- what is measured
@dataclasses.dataclass(frozen=True)
class Planned:
    """One model to export and time: its builder kwargs and the precisions needed."""

    name: str
    build_kwargs: Tuple[Tuple[str, object], ...]
    precisions: Tuple[str, ...]

    @property
    def kwargs(self) -> dict:
        return dict(self.build_kwargs)


def _key(model: str, precision: str) -> str:
    return f"{model}:{precision}"


def plan(models: Optional[Sequence[str]] = None, precisions: Sequence[str] = PRECISIONS,
         claims: Optional[Sequence[PaperClaim]] = None) -> List[Planned]:
    """The models to measure: ``models`` (any registered name), else every model a claim names
    plus ``CONTEXT_MODELS``; each at the precisions its claims need (both for a model no claim
    names), restricted to ``precisions``, built with its claims' ``build_kwargs``."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise InvalidConfigError(f"Received `precisions={list(precisions)}`: choose from {', '.join(PRECISIONS)}.")
    claims = list_claims() if claims is None else list(claims)
    need: Dict[str, set] = {}
    kwargs: Dict[str, dict] = {}
    for c in claims:
        for model, prec in [(c.model, c.precision)] + ([c.denominator] if c.denominator else []):
            need.setdefault(model, set()).add(prec)
            kw = dict(c.build_kwargs or {})
            if kwargs.setdefault(model, kw) != kw:
                raise InvalidConfigError(f"claims build '{model}' two ways: {kwargs[model]} and {kw}")
    if models:
        known = list_models()
        for n in models:
            if n not in known:
                raise InvalidConfigError(f"'{n}' is not a registered model.{did_you_mean(n, known)} "
                                         f"Run 'edgecnn models' for the list.")
        names = list(dict.fromkeys(models))
    else:
        names = list(dict.fromkeys(list(need) + list(CONTEXT_MODELS)))
    out = []
    for n in names:
        precs = tuple(p for p in PRECISIONS if p in need.get(n, PRECISIONS) and p in precisions)
        if precs:
            out.append(Planned(n, tuple(sorted(kwargs.get(n, {}).items())), precs))
    if not out:
        raise InvalidConfigError(f"nothing to measure: no claim of {', '.join(names)} needs "
                                 f"{', '.join(precisions)}")
    return out


# ----------------------------------------------------------------------------- artifacts
def build_model(name: str, kwargs: Optional[dict] = None):
    """The registered model with fresh seeded weights and trained-like PReLU alphas (module doc)."""
    import tf_keras

    from edgecnn.models.registry import create_model

    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    model = create_model(name, **(kwargs or {}))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if type(layer).__name__ == "PReLU":
            a = layer.get_weights()[0]
            layer.set_weights([rng.uniform(0.05, 0.35, a.shape).astype(np.float32)])
    return model


def _reusable(export_dir: Path, keras_name: str, precisions: Sequence[str], calibration: int) -> Optional[dict]:
    """The cached export's manifest if it can stand for a fresh export (module doc), else None."""
    from edgecnn.contract import MANIFEST, read_manifest

    if not (export_dir / MANIFEST).is_file():
        return None
    try:
        m = read_manifest(export_dir, check_files=True)
    except ModelFileError:
        return None
    have = {a["precision"] for a in m["artifacts"].values() if a["format"] == "tflite"}
    cal = (m.get("calibration") or {}).get("images")
    if m["model"] != keras_name or not set(precisions) <= have or ("int8" in precisions and cal != calibration):
        return None
    return m


def ensure_export(p: Planned, cache_dir, calibration: int = CALIBRATION_IMAGES,
                  say: Callable[[str], None] = lambda s: None) -> dict:
    """Export ``p`` into ``cache_dir/<model>/`` (or reuse it there); facts of the built model.

    Returns {"export_dir", "manifest", "artifacts": {precision: path}, "params", "macs",
    "fp32_bytes", "input_shape", "reused", "note"}. A failed verification is a note, not an
    error: the artifact is still timed, marked unverified."""
    import tf_keras

    from edgecnn.models.analysis import analyze
    from edgecnn.errors import VerificationError
    from edgecnn.export import export_model
    from edgecnn.contract import read_manifest

    export_dir = Path(cache_dir) / p.name
    model = build_model(p.name, p.kwargs)
    st = analyze(model)
    facts = {"params": st.params, "macs": st.macs, "fp32_bytes": st.fp32_bytes,
             "input_shape": [int(d) for d in model.inputs[0].shape[1:]], "note": None}
    m = _reusable(export_dir, model.name, p.precisions, calibration)
    facts["reused"] = m is not None
    if m is None:
        t0 = time.perf_counter()
        try:
            m = export_model(model, export_dir, int8="int8" in p.precisions, onnx=False, calibration=calibration,
                             echo=say)
        except VerificationError as e:
            m = read_manifest(export_dir, check_files=True)
            facts["note"] = f"{p.name}: verification failed, timed anyway: {e.message}"
            say(facts["note"])
        say(f"  exported {p.name} in {time.perf_counter() - t0:.1f} s")
    else:
        say(f"  {p.name}: reusing {export_dir} (sha256 checked)")
    del model
    tf_keras.backend.clear_session()
    arts = {a["precision"]: export_dir / name for name, a in m["artifacts"].items() if a["format"] == "tflite"}
    return dict(facts, export_dir=export_dir, manifest=m, artifacts={q: arts[q] for q in p.precisions})


# ----------------------------------------------------------------------------- timing
def pool_rows(rounds: Sequence[Sequence[dict]]) -> List[dict]:
    """Benchmark rows of the same artifacts over several rounds -> one row per artifact with every
    round's timed runs pooled, its latency statistics and FPS recomputed from them
    (``edgecnn.measure.stats``); the rest (init, memory, ...) from the last round."""
    from edgecnn.measure.stats import fps, summarize

    pooled: Dict[str, List[float]] = {}
    last: Dict[str, dict] = {}
    for rows in rounds:
        for r in rows:
            pooled.setdefault(r["path"], []).extend(r["latencies_ms"])
            last[r["path"]] = r
    out = []
    for path, lat in pooled.items():
        r = dict(last[path])
        stats = summarize(lat)
        r["timing"] = dict(r["timing"], latency=stats, fps=fps(stats["mean_ms"], r.get("batch", 1)))
        r["latencies_ms"] = lat
        r["rounds"] = sum(1 for rows in rounds if any(x["path"] == path for x in rows))
        out.append(r)
    return out


def time_artifacts(paths: Sequence, *, runs: Optional[int] = None, seconds: Optional[float] = None,
                   rounds: int = 3, warmup: int = 3, isolate: bool = True,
                   say: Callable[[str], None] = lambda s: None) -> List[dict]:
    """Time every artifact with the benchmark harness, ``rounds`` interleaved rounds of ``runs``
    timed runs in all (split over the rounds) or ``seconds`` per round; pooled rows."""
    from edgecnn.benchmark import benchmark

    if (runs is None) == (seconds is None):
        raise InvalidConfigError("give either runs (in all) or seconds (per round) per artifact, not both")
    if rounds < 1:
        raise InvalidConfigError(f"Received `rounds={rounds}`: at least 1.")
    if runs is not None and runs < 1:
        raise InvalidConfigError(f"Received `runs={runs}`: at least 1.")
    done = []
    for r in range(rounds):
        per_round = None if runs is None else runs // rounds + (1 if r < runs % rounds else 0)
        if per_round == 0:
            continue
        doc = benchmark([str(p) for p in paths], runtimes=["litert"], threads=[1], warmup=warmup,
                        runs=per_round or 1, seconds=seconds, batch=1, in_process=not isolate, progress=say)
        done.append(doc["rows"])
        say(f"  round {r + 1}/{rounds} done")
    return pool_rows(done)


# ----------------------------------------------------------------------------- the comparison
def figures_of(entry: dict) -> Dict[str, float]:
    """The metrics a claim may name, from one measured (model, precision) entry: latency is the
    mean of the timed runs, FPS ``stats.fps`` of it."""
    from edgecnn.measure.stats import fps

    mean = entry["latency"]["mean_ms"]
    return {"latency_ms": mean, "fps": fps(mean), "size_bytes": entry["size_bytes"]}


def _emulated_figure(c: PaperClaim, emulated: Dict[str, dict]) -> Optional[dict]:
    """A timed claim's figure on the emulated board, from the predicted latencies (None for a size
    claim or an artifact not emulated): the value, the predicted ms behind it, and the error."""
    from edgecnn.emulate import format_error

    metric = _METRIC[c.kind]
    if metric == "size_bytes":
        return None
    num = emulated.get(_key(c.model, c.precision))
    den = emulated.get(_key(*c.denominator)) if c.denominator else None
    if num is None or (c.denominator and den is None):
        return None
    value = num["predicted_ms"] if metric == "latency_ms" else num["fps"]
    if den is not None:
        value = value / (den["predicted_ms"] if metric == "latency_ms" else den["fps"])
    return {"value": value, "ms": num["predicted_ms"], "den_ms": den["predicted_ms"] if den is not None else None,
            "error": format_error(num), "label": num["label"]}


def evaluate_claims(measured: Dict[str, dict], claims: Sequence[PaperClaim],
                    emulated: Optional[Dict[str, dict]] = None) -> List[dict]:
    """One row per claim whose artifacts were measured: ours, the paper's, and pass/fail.

    ``measured``: "model:precision" -> {"latency": stats.summarize(...), "size_bytes"}.
    ``emulated``: "model:precision" -> an ``edgecnn.emulate`` row (1 thread): each timed claim's
    row then has "emulated", the same figure from the predicted latencies (None where not emulated);
    pass/fail stays the measured figure's."""
    rows = []
    for c in claims:
        num = measured.get(_key(c.model, c.precision))
        den = measured.get(_key(*c.denominator)) if c.denominator else None
        if num is None or (c.denominator and den is None):
            continue
        metric = _METRIC[c.kind]
        ours = figures_of(num)[metric]
        if den is not None:
            ours = ours / figures_of(den)[metric]
        timed = metric != "size_bytes"
        counts = [e["latency"]["count"] for e in (num, den) if e is not None] if timed else []
        row = {"section": get_entry(c.model).family, "claim": c.label, "kind": c.kind, "ours": ours,
               "paper": c.paper, "paper_note": c.paper_note,
               "ours_vs_paper": (ours / c.paper) if c.paper else None,
               "statistic": LATENCY_STATISTIC if timed else None, "runs": min(counts) if counts else None,
               "num": _key(c.model, c.precision), "den": _key(*c.denominator) if c.denominator else None,
               "source": c.source, "target": None, "passed": None}
        if c.target:
            op, thr = c.target
            row["target"] = f"{op} {thr:g}"
            row["passed"] = bool(_OPS[op](ours, thr))
        if emulated is not None:
            row["emulated"] = _emulated_figure(c, emulated)
        rows.append(row)
    return rows


def _same_build(fig, kwargs: dict) -> bool:
    want, have = dict(fig.build_kwargs or {}), dict(kwargs)
    if fig.metric != "macs":  # every family pools globally: its parameters do not depend on the input size
        want.pop("input_shape", None)
        have.pop("input_shape", None)
    return want == have


def figure_rows(facts: Dict[str, dict], kwargs: Dict[str, dict]) -> List[dict]:
    """The builders' ``PaperFigure``s (params, MACs, fp32 size) of the built models, where the
    models were built as the figure says (the rest: ``edgecnn models --paper``)."""
    rows = []
    for name, f in facts.items():
        for fig in get_entry(name).paper:
            if not _same_build(fig, kwargs[name]):
                continue
            ours = f[fig.metric]
            if fig.relative_to:
                if fig.relative_to not in facts or not _same_build(fig, kwargs[fig.relative_to]):
                    continue
                ours = ours / facts[fig.relative_to][fig.metric]
            ratio = ours / fig.value if fig.value else None
            rows.append({"section": get_entry(name).family, "figure": f"{name} {fig.label}", "ours": ours,
                         "paper": fig.value, "ours_vs_paper": ratio, "rtol": fig.rtol,
                         "ok": ratio is not None and abs(ratio - 1.0) <= fig.rtol + 1e-12, "source": fig.source})
    return rows


def model_rows(planned: Sequence[Planned], facts: Dict[str, dict], measured: Dict[str, dict]) -> List[dict]:
    rows = []
    for p in planned:
        if p.name not in facts:
            continue
        f = facts[p.name]
        paper_params = next((fig.value for fig in get_entry(p.name).paper
                             if fig.metric == "params" and fig.relative_to is None), None)
        row = {"model": p.name, "family": get_entry(p.name).family, "input": "x".join(map(str, f["input_shape"])),
               "build_kwargs": p.kwargs, "params": f["params"], "paper_params": paper_params, "macs": f["macs"]}
        for q in PRECISIONS:
            e = measured.get(_key(p.name, q))
            lat = e["latency"] if e else None
            row[f"{q}_bytes"] = e["size_bytes"] if e else None
            row[f"{q}_mean_ms"] = lat["mean_ms"] if lat else None
            row[f"{q}_p50_ms"] = lat["p50_ms"] if lat else None
            row[f"{q}_runs"] = lat["count"] if lat else None
            row[f"{q}_verified"] = e["verified"] if e else None
        row["int8_speedup"] = (row["fp32_mean_ms"] / row["int8_mean_ms"]
                               if row["fp32_mean_ms"] and row["int8_mean_ms"] else None)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- output
def _fmt(v) -> str:
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


def _emulated_cell(e: Optional[dict]) -> str:
    """'0.512 (13.1 ms vs 25.6 ms ±16%)' for a ratio (numerator's latency vs denominator's, whichever
    way the ratio divides), '13.1 ms ±16%' for a latency, '—' where not emulated."""
    if not e:
        return "—"
    if e["den_ms"] is not None:
        return f"{_fmt(e['value'])} ({e['ms']:.3g} ms vs {e['den_ms']:.3g} ms {e['error']})"
    if abs(e["value"] - e["ms"]) < 1e-12:
        return f"{e['ms']:.3g} ms {e['error']}"
    return f"{_fmt(e['value'])} ({e['ms']:.3g} ms {e['error']})"


def emulate_claims(paths: Dict[str, Path], claims: Sequence[PaperClaim], board: str = "pi4",
                   say: Callable[[str], None] = lambda s: None) -> Tuple[Dict[str, dict], List[str]]:
    """(emulated, notes): the artifacts that timed claims name, counted on the emulated ``board``
    (one thread, as timed here), keyed "model:precision"; none and a note saying why when the
    emulator is not installed (the measured table does not depend on it)."""
    from edgecnn.benchmark.emulated import check_emulator
    from edgecnn.emulate import BOARDS, emulate
    from edgecnn.errors import EmulatorError

    keys = []
    for c in claims:
        if _METRIC[c.kind] == "size_bytes":
            continue
        for k in [_key(c.model, c.precision)] + ([_key(*c.denominator)] if c.denominator else []):
            if k in paths and k not in keys:
                keys.append(k)
    if not keys:
        return {}, []
    try:
        check_emulator()
        say(f"emulating {board} ({BOARDS[board].core}): {len(keys)} artifact{'s' * (len(keys) != 1)}")
        rows = emulate([paths[k] for k in keys], board, threads=(1,))
    except EmulatorError as e:
        note = f"emulated {board} figures skipped: {e.message}"
        say(note)
        return {}, [note]
    return dict(zip(keys, rows)), []


def markdown(doc: dict) -> str:
    from edgecnn.benchmark.report import markdown_table

    ctx = doc["context"]
    out = ["# Paper claims vs. this machine", "",
           f"Measured {doc['created']} on {ctx['device']}; {ctx['runtime']}, 1 thread, batch 1, timed with the "
           f"benchmark harness ({ctx['rounds']} interleaved rounds per artifact, pooled; the `runs` columns say how "
           f"many). **Latency statistic: the {ctx['latency_statistic']} of the pooled timed runs** for every "
           f"latency, FPS and ratio of them; FPS = {ctx['fps']}. Fresh seeded weights (latency and size do not "
           f"depend on training); int8 = full-integer TFLite calibrated on {ctx['calibration_images']} real bundled "
           f"CIFAR-10 training images. Artifacts: `edgecnn export` folders under `{ctx['cache_dir']}`. "
           f"Shared, noisy CPU: ratios are more trustworthy than absolute ms.", ""]
    if doc["targets"]:
        out += ["## Targets", "", "| target | ours | threshold | result |", "|---|---:|---:|---|"]
        for r in doc["targets"]:
            out.append(f"| {r['claim']} | {r['ours']:.3f} | {r['target']} | {'PASS' if r['passed'] else 'FAIL'} |")
        out.append("")
    emu = bool(doc.get("emulated"))
    out += ["## Claims", "", "| family | claim | ours | paper | ours / paper | statistic | runs | target |"
            + (" emulated Pi 4 (predicted) |" if emu else ""), "|---|---|---:|---:|---:|---|---:|---|" + ("---:|" if emu else "")]
    for r in doc["claims"]:
        paper = (_fmt(r["paper"]) + (f" ({r['paper_note']})" if r["paper_note"] else "")) if r["paper"] is not None \
            else (r["paper_note"] or "—")
        tgt = f"{r['target']}: {'PASS' if r['passed'] else 'FAIL'}" if r["target"] else ""
        out.append(f"| {r['section']} | {r['claim']} | {_fmt(r['ours'])} | {paper} | {_fmt(r['ours_vs_paper'])} | "
                   f"{r['statistic'] or '—'} | {r['runs'] if r['runs'] is not None else '—'} | {tgt} |"
                   + (f" {_emulated_cell(r.get('emulated'))} |" if emu else ""))
    if emu:
        from edgecnn.benchmark.emulated import markdown_section
        out += ["", "Emulated Pi 4: the same figure from the latencies the calibrated cost model predicts for the "
                "artifacts counted under qemu-user on a Cortex-A72 core (1 thread; not measured on a board, "
                "docs/arm-emulation.md); pass/fail is the measured figure's.", ""]
        out += markdown_section(doc["emulated"])
    if doc["figures"]:
        out += ["", "## Paper figures of the built models", "",
                "As `edgecnn models --paper` checks them, on the models built here.", "",
                "| family | figure | ours | paper | ours / paper | tolerance | ok |", "|---|---|---:|---:|---:|---:|---|"]
        for r in doc["figures"]:
            out.append(f"| {r['section']} | {r['figure']} | {_fmt(r['ours'])} | {_fmt(r['paper'])} | "
                       f"{_fmt(r['ours_vs_paper'])} | ±{r['rtol'] * 100:g}% | {'yes' if r['ok'] else 'NO'} |")
    out += ["", "## Models", "",
            "| model | input | params (paper) | MACs | fp32 size | int8 size | fp32 ms mean / median (runs) | "
            "int8 ms mean / median (runs) | int8 speed-up (mean) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["models"]:
        pp = f" ({_fmt(r['paper_params'])})" if r["paper_params"] else ""
        size = lambda b: "—" if b is None else f"{b / 1e6:.2f} MB"  # noqa: E731
        ms = lambda q: ("—" if r[f"{q}_mean_ms"] is None else  # noqa: E731
                        f"{r[f'{q}_mean_ms']:.3f} / {r[f'{q}_p50_ms']:.3f} ({r[f'{q}_runs']})")
        out.append(f"| {r['model']} | {r['input']} | {_fmt(r['params'])}{pp} | {_fmt(r['macs'])} | "
                   f"{size(r['fp32_bytes'])} | {size(r['int8_bytes'])} | {ms('fp32')} | {ms('int8')} | "
                   f"{_fmt(r['int8_speedup'])} |")
    out += ["", "## Timing", "", markdown_table(doc["rows"]), "",
            "Per artifact, the benchmark harness's statistics over the pooled runs (`edgecnn benchmark`'s table); "
            "top-1 as verified at export (fresh weights: not meaningful)."]
    if doc.get("notes"):
        out += ["", "Notes:", ""] + [f"- {n}" for n in doc["notes"]]
    if doc.get("plots"):
        out += ["", "Plots: " + ", ".join(f"`{Path(p).name}`" for p in doc["plots"])]
    out.append("")
    return "\n".join(out)


def plot_structures(models: Sequence[dict], path) -> Optional[Path]:
    """TFLite size vs mean latency of the measured MobileNetV2 structures, fp32 and int8."""
    from edgecnn.core.plots import pyplot, save_figure

    hk = [r for r in models if r["family"] == "mobilenetv2" and (r["fp32_mean_ms"] or r["int8_mean_ms"])]
    plt = pyplot()
    if plt is None or not hk:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for q, mark in (("fp32", "o"), ("int8", "s")):
        pts = [r for r in hk if r[f"{q}_mean_ms"]]
        ax.scatter([r[f"{q}_bytes"] / 1e3 for r in pts], [r[f"{q}_mean_ms"] for r in pts], marker=mark, label=q)
        for r in pts:
            label = "[1]" if r["model"].endswith("_ref") else r["model"].rsplit("_", 1)[-1].upper()
            ax.annotate(label, (r[f"{q}_bytes"] / 1e3, r[f"{q}_mean_ms"]), fontsize=8, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("TFLite file size, kB")
    ax.set_ylabel("mean latency, ms")
    ax.set_title("Han & Kwon structures: size vs latency (this machine)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- the command
@dataclasses.dataclass(frozen=True)
class PaperOptions(Options):
    """Where (out_dir, cache_dir of export folders), how long (runs in all, or seconds per
    round; rounds, warmup), how the int8 models are calibrated, which precisions, plots, a fresh
    process per artifact and round (isolate), and the emulated board (emulate, e.g. "pi4")."""

    out_dir: str = "bench"
    cache_dir: Optional[str] = None
    runs: Optional[int] = None
    seconds: Optional[float] = None
    rounds: int = 3
    warmup: int = 3
    calibration: int = CALIBRATION_IMAGES
    precisions: Tuple[str, ...] = PRECISIONS
    make_plots: bool = True
    isolate: bool = True
    emulate: Optional[str] = None

    def check(self) -> None:
        if self.runs is not None and self.seconds is not None:
            raise InvalidConfigError("give --runs or --seconds, not both")


def run_paper_claims(models: Optional[Sequence[str]] = None, options: Optional[PaperOptions] = None, *,
                     claims: Optional[Sequence[PaperClaim]] = None, say: Callable[[str], None] = lambda s: None,
                     **overrides) -> dict:
    """Export (or reuse), time and compare; writes paper_claims.md/.json (and plots) to ``out_dir``.

    ``models``: registered names (default: the claims' models, see ``plan``); ``runs`` timed runs
    per artifact in all, or ``seconds`` per artifact per round (default 1 s); ``claims``: what to
    compare (default every registered claim; those naming an unmeasured artifact are left out);
    ``emulate``: a board ("pi4") to also count the timed claims' artifacts on under qemu-user, each
    such claim then with the figure the predicted latencies give (``emulate_claims``)."""
    from edgecnn.measure.machine import describe

    o = PaperOptions.make(options, **overrides)
    if o.runs is None and o.seconds is None:
        o = dataclasses.replace(o, seconds=1.0)
    claims = list_claims() if claims is None else list(claims)
    planned = plan(models, o.precisions, claims)
    out_dir = Path(o.out_dir)
    cache_dir = Path(o.cache_dir) if o.cache_dir else out_dir / ".cache"
    t0 = time.perf_counter()
    notes: List[str] = []
    if models:
        skipped = sorted({m for c in claims for m in (c.model, c.relative_to) if m} - {p.name for p in planned})
        if skipped:
            notes.append(f"not in this run (--models): {', '.join(skipped)}")
    facts: Dict[str, dict] = {}
    paths: Dict[str, Path] = {}
    for p in planned:
        say(f"export {p.name} ({', '.join(p.precisions)})")
        try:
            f = ensure_export(p, cache_dir, o.calibration, say)
        except ExportError as e:  # one model that does not convert must not hide the others
            notes.append(f"{p.name}: not measured: {e.message}")
            say(f"  {notes[-1]}")
            continue
        facts[p.name] = f
        if f["note"]:
            notes.append(f["note"])
        for q, path in f["artifacts"].items():
            paths[_key(p.name, q)] = path
    export_s = time.perf_counter() - t0
    if not paths:
        raise BenchmarkError("nothing to time: " + "; ".join(notes))
    say(f"timing {len(paths)} artifacts: {o.rounds} rounds, "
        f"{f'{o.runs} runs in all' if o.runs else f'{o.seconds:g} s per round'} (+{o.warmup} warm-up) each")
    rows = time_artifacts(list(paths.values()), runs=o.runs, seconds=o.seconds, rounds=o.rounds, warmup=o.warmup,
                          isolate=o.isolate, say=say)
    by_path = {r["path"]: r for r in rows}
    measured = {}
    for key, path in paths.items():
        r = by_path[str(path)]
        measured[key] = {"artifact": str(path), "sha256": r["sha256"], "size_bytes": r["size_bytes"],
                         "latency": r["timing"]["latency"], "fps": r["timing"]["fps"],
                         "verified": bool((r.get("accuracy") or {}).get("verified"))}
    emulated, emulated_rows = None, []
    if o.emulate:
        t1 = time.perf_counter()
        emulated, more = emulate_claims(paths, claims, o.emulate, say)
        notes += more
        emulated_rows = [dict(r, artifact=key.replace(":", " ")) for key, r in emulated.items()]
        emulate_s = time.perf_counter() - t1
    claim_rows = evaluate_claims(measured, claims, emulated)
    first = rows[0]
    doc = {
        "schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "context": {"device": describe(first["platform"]), "runtime": f"LiteRT {first['runtime_version']} with XNNPACK",
                    "threads": 1, "batch": 1, "rounds": o.rounds, "runs_in_all": o.runs, "seconds_per_round": o.seconds,
                    "warmup": o.warmup, "calibration_images": o.calibration, "cache_dir": str(cache_dir),
                    "inputs": (first.get("inputs") or {}).get("source"),
                    "weights": "fresh, seeded (tf_keras.utils.set_random_seed(0))",
                    "latency_statistic": LATENCY_STATISTIC,
                    "fps": "edgecnn.measure.stats.fps: 1000 / mean latency"},
        "targets": [c for c in claim_rows if c["target"]],
        "claims": claim_rows,
        "figures": figure_rows({n: f for n, f in facts.items()}, {p.name: p.kwargs for p in planned}),
        "models": model_rows(planned, facts, measured),
        "measured": measured,
        "rows": rows,
        "notes": notes,
        "wall_s": {"export_or_cache": round(export_s, 1)},
    }
    if emulated_rows:
        doc["emulated"] = emulated_rows
        doc["wall_s"]["emulate"] = round(emulate_s, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    if o.make_plots:
        from edgecnn.benchmark.report import plot_latency

        # Labelled by registry name and precision: the Keras names in the file names are too long for the axis.
        label = {str(path): key.replace(":", " ") for key, path in paths.items()}
        plots = [plot_latency([dict(r, artifact=label[r["path"]]) for r in rows], out_dir / "paper_claims_latency.png"),
                 plot_structures(doc["models"], out_dir / "paper_claims_structures.png")]
    doc["plots"] = [str(p) for p in plots if p is not None]
    doc["wall_s"]["total"] = round(time.perf_counter() - t0, 1)
    written = doc
    if sum(len(r["latencies_ms"]) for r in rows) > _MAX_INLINE_LATENCIES:
        # Every run's latency is kept, but beside the cache (git-ignored), not in the report's JSON.
        raw = atomic_write_json(cache_dir / "paper_claims_latencies.json", {r["path"]: r["latencies_ms"] for r in rows})
        written = dict(doc, rows=[{k: v for k, v in r.items() if k != "latencies_ms"} for r in rows],
                       latencies_file=str(raw))
    atomic_write_json(out_dir / "paper_claims.json", written)
    atomic_write_text(out_dir / "paper_claims.md", markdown(doc))
    return doc
