"""The mixed-precision step of an export: the PReLU form and the per-op precision chosen
(``choose_prelu``, ``build_mixed``), ``<model>_mixed.tflite`` written with its quant_report.json/.md
and quant_error.png (``export_mixed``, the writer of the ``tflite-mixed`` format).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from edgecnn import contract
from edgecnn.core.files import sha256_file
from edgecnn.errors import InvalidConfigError
from edgecnn.export.mixed import (_EPS, Quantizer, _layer_set, accuracy_fallback, choose_float_ops, plan_cost, top1,
                                  validate_cost_table)
from edgecnn.export.mixed_costs import cost_target, measure_op_costs, model_costs_us


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
    # One copy whose alphas are set for each trial (a copy per trial, and its predict function
    # traced again, cost a second each: 17 s per form on QuickNet's 13 layers); the candidate
    # kept is then made by snap_prelu, the same function.
    trial = deploy.snap_prelu(model, {})
    for how in ("zero", "mean"):
        moved = {n: float(np.mean(np.abs(a - (0.0 if how == "zero" else np.mean(a))))) for n, a in alphas.items()}
        snapped = sorted(names, key=lambda n: moved[n])
        drop = None
        while snapped:
            for n in names:
                trial.get_layer(n).set_weights([deploy.snapped_alpha(alphas[n], how) if n in snapped else alphas[n]])
            drop = 100.0 * (k_top1 - _keras_top1(trial, xv, yv))
            if drop <= max_drop / 2 + _EPS:
                break
            snapped.pop()  # the layer whose alphas moved most gets them back
        if not snapped:
            continue
        m = deploy.snap_prelu(model, {n: how for n in snapped})
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


def _layer_label(layer: dict) -> str:
    """The Keras layer(s) an op computes, short: 'conv2d_3 (CONV_2D)'."""
    names = layer.get("layers") or [str(layer.get("node", "?")).split("/")[-1].split(";")[0]]
    head = names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}"
    return f"{head[:28]} ({layer.get('op', '?')})"


def error_plot(report: dict, path, title: str):
    """Per-layer relative RMSE (calibration and held-out), float ops marked, each op named by its
    Keras layer: quant_error.png."""
    from matplotlib.patches import Patch

    from edgecnn.core.plots import pyplot, save_figure

    plt = pyplot()
    ls = report["layers"]
    x = np.arange(len(ls))
    fig, ax = plt.subplots(figsize=(max(7, 0.22 * len(ls) + 2), 5.2))
    lines = []
    for key, lab in (("calibration", "calibration images"), ("held_out", "held-out images")):
        ys = [((l.get(key) or {}).get("rel_rmse", np.nan)) for l in ls]
        lines += ax.plot(x, ys, marker="o", ms=3, lw=1, label=lab)
    for i, l in enumerate(ls):
        if l["precision"] == "float":
            ax.axvspan(i - 0.4, i + 0.4, color="orange" if l["why"] == "speed" else "red", alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([_layer_label(l) for l in ls], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, len(ls) - 0.4)
    ax.set_xlabel("op, in graph order (its Keras layer and TFLite op)")
    ax.set_ylabel("int8 RMSE / RMS of the float output")
    ax.set_title(title)
    handles = lines + [Patch(color="orange", alpha=0.25, label="kept float for speed"),
                       Patch(color="red", alpha=0.25, label="kept float for accuracy")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return save_figure(fig, path)


# A mixed model is kept only when it beats full int8 on the target by more than this: interleaved
# timing here drifts by ~1-2% between rounds (docs/mixed-precision.md), emulated counts repeat
# exactly but the cost model's relative error between two variants of one model is not zero.
KEEP_MARGIN = {"host": 0.03, "emulated": 0.02}


def keep_if_faster(data: bytes, int8_path: Path, report: dict, target: Optional[str], echo,
                   given_table: bool = False) -> dict:
    """The whole mixed model against the full-int8 artifact on the target's costs (timed here,
    counted on the emulated board, or, for a cost table the user gave, that table's own estimate:
    it describes a target edgecnn cannot measure): -> their latencies; ``formats.Skipped`` when
    the mixed one is not faster beyond ``KEEP_MARGIN`` (a slower file is never written)."""
    from edgecnn.export.options import Skipped

    where = "the cost table's target" if given_table else f"the emulated {target}" if target else "this machine"
    if not report["float_ops"]:
        raise Skipped(f"every op is at its best in int8 on {where}: int8 is already the best on {where}")
    int8 = int8_path.read_bytes()
    if given_table:
        int8_us, mixed_us = report["estimated_us"]["full_int8"], report["estimated_us"]["mixed"]
    elif target:  # counted in one emulated process, a model's cost depends a little on its place: both orders
        a, b = model_costs_us([int8, data], target=target), model_costs_us([data, int8], target=target)
        int8_us, mixed_us = (a[0] + b[1]) / 2, (a[1] + b[0]) / 2
    else:  # timed in turns, the order alternating each round
        int8_us, mixed_us = model_costs_us([int8, data], rounds=9, runs=50)
    margin = 0.0 if given_table else KEEP_MARGIN["emulated" if target else "host"]
    whole = {"target": target or "host", "int8_us": round(int8_us, 2), "mixed_us": round(mixed_us, 2),
             "ratio": round(mixed_us / int8_us, 4), "margin": margin}
    echo(f"mixed vs full int8 on {where}: {mixed_us / 1e3:.3f} vs {int8_us / 1e3:.3f} ms ({mixed_us / int8_us:.3f}x)")
    if mixed_us >= int8_us * (1.0 - margin) or not int8_us:
        raise Skipped(f"{mixed_us / max(int8_us, 1e-9):.2f}x full int8's latency on {where} (needs < {1 - margin:.2f}x): "
                      f"int8 is already the best on {where}")
    return whole


def export_mixed(job, dst: Path) -> dict:
    """Write ``<model>_mixed.tflite`` and its quant_report.json/.md + quant_error.png into the
    stage of ``job`` (``formats.Job``); -> the manifest entry's extra fields (float ops and why,
    the report and its sha256)."""
    from edgecnn.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
    from edgecnn.data.preprocess import preprocess
    from edgecnn.export.compact import compact_tflite
    from edgecnn.export.mixed import REPORT_FILE

    model, dep_model, cal, val, test, spec = job.model, job.deploy_model, job.calibration, job.val, job.test, job.spec
    stage, name, echo, trained = job.stage, job.name, job.echo, job.trained
    max_drop, cost_table, target = job.options.max_drop, job.options.cost_table, job.options.target

    # The accuracy fallback is judged on the validation split (verification then uses the test
    # split); fresh weights have no meaningful top-1, so their choice is by speed alone.
    val_pre = (preprocess(val[0], spec), np.asarray(val[1]).astype(np.int64).ravel()) if trained and val else None
    prelu = None
    if val_pre is not None and dep_model is not model:  # the PReLU rewrite ran: its snapped variants compete
        dep_model, prelu = choose_prelu(model, dep_model, cal, val_pre, max_drop, target=target, echo=echo)
    # Held-out layer errors on validation images where there are some (the test split stays
    # untouched by every choice made here), else on the test split (fresh weights).
    held, held_split = ((val_pre[0][:32], "val") if val_pre is not None else (preprocess(test[0][:32], spec), "test"))
    data, report = build_mixed(dep_model, cal, val=val_pre, held_out=held,
                               keras_model=model, max_drop=max_drop, cost_table=cost_table, target=target,
                               echo=echo)
    report["error_images"]["held_out_split"] = held_split
    if prelu is not None:
        report["prelu"] = prelu
    if val_pre is None:
        report["accuracy_fallback"] = {"skipped": ("untrained weights: top-1 is meaningless" if not trained else
                                                   "the dataset has no validation split")}
    data, fb = compact_tflite(data, [np.asarray(cal[i:i + 1], np.float32) for i in range(min(2, len(cal)))])
    report["whole_model"] = keep_if_faster(data, stage / contract.artifact_name(name, "tflite", "int8"), report,
                                           target, echo, given_table=cost_table is not None)
    atomic_write_bytes(dst, data)
    atomic_write_json(stage / REPORT_FILE, report)
    atomic_write_text(stage / "quant_report.md", report_markdown(report, name))
    try:
        error_plot(report, stage / "quant_error.png", f"{name}: per-op int8 error")
    except Exception as e:  # noqa: BLE001 - matplotlib missing or headless trouble: the table still says it
        echo(f"note: quant_error.png not written ({type(e).__name__})")
    n_speed = sum(1 for f in report["float_ops"] if f["why"] == "speed")
    echo(f"mixed precision: {len(report['float_ops'])} op(s) kept float ({n_speed} for speed, "
         f"{len(report['float_ops']) - n_speed} for accuracy)")
    extra = {"prelu": prelu["chosen"]} if prelu else {}
    return {**extra, "float_ops": report["float_ops"], "quant_report": REPORT_FILE,
            "quant_report_sha256": sha256_file(stage / REPORT_FILE), "flatbuffer": fb}
