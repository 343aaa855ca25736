"""Verification: every artifact runs on the runtime a device uses, on held-out images.

Each artifact in export/manifest.json is loaded with ``edgecnn.measure.runtime.load`` (LiteRT with
XNNPACK for .tflite, ONNX Runtime for .onnx) and run on the held-out split: the run's dataset
test split, or the bundled real CIFAR-10 test images (500) for fresh weights. The Keras model
runs on the same images, preprocessed as the run's model takes them (the manifest's
``keras.preprocessing``) where the artifacts take the camera input (the manifest's
``preprocessing``). Recorded per artifact: top-1, agreement of its top-1 with the Keras top-1,
and the largest absolute difference of the probabilities.

Rules (``passed``):

* fp32 (TFLite and ONNX): the same function as Keras, max |p - p_keras| <= ``fp32_tol`` (1e-4).

Scores are compared as probabilities: for a model whose output is logits (``output_kind``, an
imported model without a final softmax) softmax is applied to the Keras and the artifact outputs
alike, as the device side does.
* fp16, dynamic, int8, mixed of a trained model: the drop of its top-1 below Keras's on the same
  images, in points and in images, with its paired 95 % interval (``edgecnn.measure.stats.
  paired_drop``). It fails only when the whole interval lies beyond ``max_drop`` (default 1.0): a
  drop the test set resolves. When the interval straddles ``max_drop`` the artifact passes and
  the reason says so plainly ("800 images cannot resolve 1 point: ..."): a small test split or a
  briefly trained model must not fail on noise, and a model whose int8 really breaks still fails
  (a drop of 38 points on 800 images has the interval 34-41).
* fp16, dynamic, int8, mixed of an untrained model (fresh weights): top-1 means nothing (the outputs
  are close to uniform; with ties the top-1 itself is arbitrary), so the check is that the
  artifact computes the Keras function within quantization noise: finite probabilities, rows
  summing to 1 within 0.02 (plus n_classes/512 for int8, whose probabilities are rounded to
  1/256 each), and max |p - p_keras| <= ``UNTRAINED_TOL`` (0.1).

The tolerance of the quantized artifacts (``max_drop``) is recorded in the manifest
(``verification_policy``); a later ``edgecnn verify`` uses it unless told otherwise.

An artifact that fails is kept, marked ``"verified": false`` with the reason, and
``verify_export`` raises ``VerificationError`` after writing the manifest, naming the next steps.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from edgecnn.errors import RunError, VerificationError
from edgecnn.measure.stats import paired_drop, resolution_points
from edgecnn.contract import FILENAME, artifact_path, manifest_file, quant_report_path, read_manifest, write_manifest

FP32_TOL = 1e-4
UNTRAINED_TOL = 0.1
MAX_DROP = 1.0
INTERVAL = "paired 95% (Bonett-Price adjusted Wald)"


def held_out(m: dict, export_dir) -> Tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images, labels, description) of the held-out split the artifacts are checked on.

    The run around the export names its dataset; an export elsewhere carries its own record
    (paths relative to the manifest). A trained model is never checked on another dataset than
    its own: when that data is not here, this fails instead of falling back to the bundled sample.
    """
    from edgecnn.data.datasets import load_dataset
    from edgecnn.contract import dataset_kwargs, load_run, manifest_dataset, run_of_export

    run_dir = run_of_export(export_dir)
    if run_dir is not None:
        r = load_run(run_dir)
        kw = dataset_kwargs(r.info, run_dir)
        ds = load_dataset(kw.pop("source"), r.input_shape, **kw)
        return ds.x_test, ds.y_test, f"{ds.name} test"
    kw = manifest_dataset(m, export_dir)
    if kw is not None:
        h, w = m["preprocessing"]["input_size"]
        ds = load_dataset(kw.pop("source"), (h, w, m["preprocessing"].get("channels", 3)), **kw)
        return ds.x_test, ds.y_test, f"{ds.name} test"
    if m["trained"]:
        raise RunError(f"{export_dir}: a trained export without its run or a dataset record; cannot find its "
                       f"held-out split. Re-export it from its run.")
    from edgecnn.data.sample import load_sample

    _, (x, y), _ = load_sample()
    return x, y, "bundled CIFAR-10 sample test"


def verify_export(export_dir, *, model=None, data: Optional[Tuple[np.ndarray, np.ndarray, str]] = None,
                  max_drop: Optional[float] = None, fp32_tol: Optional[float] = None, runtime: Optional[str] = None,
                  write: bool = True, raise_on_failure: bool = True, unsafe_load: bool = False, echo=None) -> dict:
    """Run every artifact of ``export_dir`` on its real runtime; update and return the manifest.

    ``model``: the Keras model (else loaded from the manifest's model_file or run);
    ``data``: (uint8 images, labels, split description) (else the held-out split, see module doc);
    ``max_drop``: the quantized artifacts' tolerance (else the one the manifest records, else 1.0);
    ``fp32_tol``: the fp32 artifacts' (else ``FP32_TOL``).
    ``runtime``: verify on this backend instead (e.g. "openvino": every artifact it reads, with
    the f32 precision hint), recorded under the artifact's ``verified_on`` and leaving its
    ``verified`` (the device runtime's) as it is.
    """
    from edgecnn.core import commit

    p = manifest_file(export_dir)
    if not write or commit.is_stage(p.parent):
        return _verify(p, model, data, max_drop, fp32_tol, runtime, write, raise_on_failure, unsafe_load, echo)
    # The manifest is rewritten: under the export's lock, so that an export committing meanwhile
    # is neither overwritten with this one's older entries nor read half-way.
    with commit.locked(p.parent, echo=echo):
        return _verify(p, model, data, max_drop, fp32_tol, runtime, write, raise_on_failure, unsafe_load, echo)


def _verify(p, model, data, max_drop, fp32_tol, runtime, write, raise_on_failure, unsafe_load, echo) -> dict:
    from edgecnn.core import progress
    from edgecnn.measure import runtime as rt
    from edgecnn.data.preprocess import PreprocessSpec, preprocess, softmax
    from edgecnn.train.evaluate import top_k_accuracy

    from edgecnn.contract import check_loaded_tensors, reference_model

    export_dir = p.parent
    m = read_manifest(p)
    policy = m.get("verification_policy") or {}
    max_drop = float(policy.get("max_drop", MAX_DROP) if max_drop is None else max_drop)
    fp32_tol = FP32_TOL if fp32_tol is None else fp32_tol
    m["verification_policy"] = {"max_drop": max_drop, "interval": INTERVAL}
    paths = {name: artifact_path(export_dir, m, name) for name in m["artifacts"]}  # every sha256, recomputed
    for name in m["artifacts"]:
        quant_report_path(export_dir, m, name)  # a mixed artifact's report, its sha256 too
    keras_model = model if model is not None else reference_model(export_dir, m, unsafe=unsafe_load)
    spec = PreprocessSpec.from_dict(m["keras"].get("preprocessing") or m["preprocessing"])
    _check_input(keras_model, spec, export_dir)
    x_u8, y, split = data if data is not None else held_out(m, export_dir)
    from edgecnn.data.limits import check_memory

    h, w = spec.input_size
    check_memory(4 * len(x_u8) * (2 * h * w * spec.channels + 2 * len(m["labels"])),
                 f"{len(x_u8):,} held-out images at {h}x{w}x{spec.channels} as model inputs, with their scores",
                 "verify on fewer images (--max-test-images when exporting)")
    # The artifacts take the manifest's preprocessing (the camera input); the Keras model the
    # run's own (its normalization was folded into the artifacts: edgecnn.export.fold).
    x = preprocess(x_u8, PreprocessSpec.from_dict(m["preprocessing"]))
    x_keras = preprocess(x_u8, spec)
    y = np.asarray(y).astype(np.int64).ravel()
    ref = np.asarray(keras_model.predict(x_keras, batch_size=128, verbose=0), np.float32)
    logits = {a["output_kind"] for a in m["artifacts"].values()} == {"logits"}
    if logits:
        ref = softmax(ref)
    ref_top1 = ref.argmax(1)
    k_top1 = top_k_accuracy(y, ref, 1)
    m["keras"] = dict(m.get("keras") or {}, top1=k_top1, top5=top_k_accuracy(y, ref, 5), split=split, n=int(len(y)))
    trained = bool(m["trained"])
    failures = []
    backend = _backend(runtime)
    for name, a in m["artifacts"].items():
        if backend != rt.AUTO and not rt.BACKENDS[backend].runs(a["format"]):
            continue
        runner = rt.load(paths[name], backend=backend, threads=1)
        check_loaded_tensors(runner.inputs, runner.outputs, a, str(paths[name]))
        batch = 100 if getattr(runner, "_dynamic_batch", False) else None  # TFLite: batch 1, as on a device
        with progress.bar(length=len(x), label=f"  verifying {name}") as bar:
            out = runner.run(x, batch_size=batch, on_batch=bar.update)
        if a["output_kind"] == "logits":
            out = softmax(out)
        top1 = top_k_accuracy(y, out, 1)
        diff = float(np.max(np.abs(out - ref))) if len(out) else float("nan")
        agree = float(np.mean(out.argmax(1) == ref_top1))
        on = f"{runner.backend} {rt.runtime_version(runner.backend)}" + (
            " (XNNPACK)" if runner.backend == "litert" else
            f" (CPU, {runner.details().get('precision_hint')} precision hint)" if runner.backend == "openvino" else "")
        if a["precision"] == "fp32":
            passed = diff <= fp32_tol
            reason = (f"fp32: max |p - p_keras| {diff:.2e} <= {fp32_tol:g}" if passed else
                      f"fp32 outputs differ from Keras by {diff:.2e} > {fp32_tol:g}")
        elif trained:
            d = paired_drop(ref_top1 == y, out.argmax(1) == y)
            passed, reason, extra = drop_verdict(d, top1, k_top1, max_drop)
        else:
            # int8 softmax outputs are multiples of 1/256: each of the n probabilities may be off by
            # half a step, so n near-uniform probabilities may sum to 1 +- n/512 (200 classes: 0.39).
            sum_tol = 0.02 + (out.shape[1] / 512.0 if a["precision"] in ("int8", "mixed") else 0.0)
            sums_ok = bool(np.all(np.isfinite(out))) and bool(np.all(np.abs(out.sum(1) - 1.0) <= sum_tol))
            passed = sums_ok and diff <= UNTRAINED_TOL
            reason = (f"untrained model: top-1 not checked; probabilities {'valid' if sums_ok else 'INVALID'}, "
                      f"max |p - p_keras| {diff:.3f} (allowed {UNTRAINED_TOL:g})")
        disagree = None if runtime else _metadata_disagrees(paths[name], m, a)
        if disagree:
            passed, reason = False, f"its metadata disagrees with the manifest ({disagree})"
        record = {"runtime": on, "split": split, "n": int(len(y)), "top1": top1, "agreement_with_keras": agree,
                  "max_abs_diff_vs_keras": diff, "passed": bool(passed), "reason": reason}
        if a["precision"] != "fp32" and trained and not disagree:
            record.update(extra)
        if runtime:
            a.setdefault("verified_on", {})[runner.backend] = dict(record, **runner.details())
        else:
            a["verification"] = record
            a["verified"] = bool(passed)
        if echo:
            echo(f"  {'ok  ' if passed else 'FAIL'} {name}: top-1 {100 * top1:.2f}%, agreement {100 * agree:.1f}%, "
                 f"max diff {diff:.2e} [{on}]")
            if a["precision"] != "fp32" and trained:
                echo(f"       {reason}")
        if not passed:
            failures.append(name)
    if m.get("recommended"):  # a recommendation stands for a verified artifact only
        m["recommended"] = {t: r for t, r in m["recommended"].items() if m["artifacts"][r["artifact"]]["verified"]}
    if write:
        write_manifest(export_dir, m)
    if failures and raise_on_failure and runtime:
        on = {n: m["artifacts"][n]["verified_on"] for n in failures}
        raise VerificationError(f"{export_dir}: {len(failures)} artifact(s) failed verification on {runtime}, "
                                f"recorded under verified_on in {FILENAME}: " + "; ".join(
                                    f"{n} ({next(iter(v.values()))['reason']})" for n, v in on.items()))
    if failures and raise_on_failure:
        raise VerificationError(f"{export_dir}: {len(failures)} artifact(s) failed verification, kept and marked "
                                f"unverified in {FILENAME}: {failure_summary(m, failures)}")
    return m


def drop_verdict(d: dict, top1: float, k_top1: float, max_drop: float):
    """(passed, reason, record) for a quantized artifact's paired drop ``d`` (``paired_drop``)."""
    lo, hi = d["low_points"], d["high_points"]
    budget = f"{max_drop:g} point{'' if max_drop == 1 else 's'}"
    said = (f"top-1 {100 * top1:.2f}% vs Keras {100 * k_top1:.2f}%: drop {d['drop_points']:.2f} points "
            f"({d['drop_images']} of {d['n']} images), 95% interval {lo:.2f} to {hi:.2f} points")
    record = {"drop_points": round(d["drop_points"], 9), "drop_images": d["drop_images"],
              "drop_interval_points": [lo, hi], "max_drop": max_drop, "resolved": not lo <= max_drop < hi}
    if lo > max_drop:
        return False, f"{said}: beyond {budget}", record
    if hi <= max_drop:
        return True, f"{said}: within {budget}", record
    return True, (f"{d['n']} images cannot resolve {budget}: {said}; passed, as the drop is not shown to exceed "
                  f"{budget} (a larger test split would tell)"), record


def failure_summary(m: dict, failed) -> str:
    """Each failed artifact with its reason, then the next steps that can fix it."""
    arts = m["artifacts"]
    text = "; ".join(f"{n} ({(arts[n].get('verification') or {}).get('reason')})" for n in failed)
    quantized = [n for n in failed if arts[n]["precision"] != "fp32"]
    if not quantized:
        return text + (". An fp32 artifact computes another function than Keras: a converter or runtime fault; "
                       "re-export with -v and report it.")
    v = arts[quantized[0]].get("verification") or {}
    cal = (m.get("calibration") or {}).get("images")
    n, budget = v.get("n"), (m.get("verification_policy") or {}).get("max_drop", MAX_DROP)
    steps = ["--mixed (keeps float the ops int8 breaks, within the budget)",
             f"more --calibration images{f' (this export used {cal})' if cal else ''}"]
    lo, hi = (v.get("drop_interval_points") or [None, None])
    if n and (lo is None or lo - budget < (hi - lo) / 2):  # near the budget: more images would tell
        steps.append(f"a larger test split ({n} images resolve drops of about {resolution_points(n):.2f} points; "
                     f"--test-fraction or a test/ folder)")
    steps.append(f"a looser --max-drop (now {budget:g})")
    return text + ". Next: " + ", ".join(steps) + "."


def _backend(runtime: Optional[str]) -> str:
    """The backend verification loads with: each format's own (auto), or ``runtime``, OpenVINO with
    its precision pinned to f32 (its bf16 default is a precision change, not the file's function)."""
    from edgecnn.measure.backends import AUTO, BACKENDS, resolve_backend

    if runtime is None:
        return AUTO
    name = resolve_backend(runtime, ("tflite", "onnx"))
    return "openvino-f32" if BACKENDS[name].package == "openvino" else name


def _metadata_disagrees(path, m: dict, a: dict) -> Optional[str]:
    """What the artifact's own metadata says differently from its manifest entry (labels, the
    preprocessing it takes, output kind), or None: the app and MediaPipe read the metadata."""
    from edgecnn.contract.model_metadata import describe, same_input
    from edgecnn.data.preprocess import PreprocessSpec

    if not (a.get("metadata") or {}).get("written"):
        return None
    d = describe(path)
    if d is None:
        return "the file carries none"
    if d.labels != m["labels"]:
        return "labels"
    if d.output_kind != a["output_kind"]:
        return f"output kind {d.output_kind}"
    if d.preprocessing is None or not same_input(d.spec(), PreprocessSpec.from_dict(m["preprocessing"]),
                                                 a["inputs"][0]):
        return "the preprocessing it takes"
    return None


os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _check_input(keras_model, spec, export_dir) -> None:
    """The reference model takes the images the manifest's preprocessing makes, before any is fed."""
    from edgecnn.errors import ModelFileError

    want = [*spec.input_size, spec.channels] if spec.layout == "NHWC" else [spec.channels, *spec.input_size]
    got = [None if d is None else int(d) for d in keras_model.inputs[0].shape[1:]]
    if got != want:
        raise ModelFileError(f"{export_dir}: the manifest's preprocessing makes {want} images (input_size "
                             f"{list(spec.input_size)}), but the Keras model takes {got}; the export and its model "
                             f"disagree. Re-export it.")


def raise_if_unverified(m: dict) -> None:
    """VerificationError (exit 10) naming every artifact of ``m`` that failed, with its reason and
    the next steps."""
    failed = [n for n, a in m["artifacts"].items() if not a["verified"]]
    if failed:
        raise VerificationError(f"{len(failed)} artifact(s) failed verification: {failure_summary(m, failed)}")
