"""Export: a Keras model or a run -> TFLite (fp32, fp16, dynamic, int8) and ONNX (fp32, int8),
each verified on its real runtime, described in export/manifest.json.

``export_model`` is the one door in (``edgecnn export``). All artifacts are first written into
a staging folder inside the output folder; only when every conversion has succeeded are they
moved into place, manifest.json last. A failed conversion therefore leaves the output folder as
it was. Verification runs at the end: an artifact that fails it is kept and marked unverified,
and ``VerificationError`` is raised after the manifest is written.

Modules: tflite.py (TFLiteConverter), onnx.py (tf2onnx, ONNX Runtime quantization),
deploy.py (exact graph rewrites for fast int8 kernels), mixed.py (per-op precision: int8 where it
is faster and safe, float where it is not), verify.py, manifest handling lives in edgecnn.runs (TF-free),
compress.py (TFMOT pruning/clustering/QAT).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgecnn.errors import EdgecnnError, ExportError, InvalidConfigError, RunError
from edgecnn.io import sha256_file

UNTRAINED_WARNING = ("No trained run of '{name}' found: exporting FRESH (untrained) weights, calibrated on the "
                     "bundled real CIFAR-10 images. Fit for speed and deployability checks only, NOT for "
                     "predictions (manifest: \"trained\": false). Train first with 'edgecnn train {name}'.")


def _echo_default(msg: str) -> None:
    import click

    click.echo(msg, err=True)


def _resolve(model_or_run, runs_dir=None, unsafe_load: bool = False):
    """-> (model, model_name, Run or None, trained, labels, spec, dataset kwargs or None)."""
    from edgecnn.data.preprocess import spec_for
    from edgecnn.registry import list_models
    from edgecnn.runs import Run, check_name, dataset_kwargs, load_run, resolve

    if isinstance(model_or_run, Run):
        run = model_or_run
    elif isinstance(model_or_run, (str, os.PathLike)):
        ref = str(model_or_run)
        if Path(ref).exists() or "/" in ref:
            target = resolve(ref, runs_dir, manifest=False)
            if target.run_dir is None:
                raise RunError(f"{ref}: not a run directory (no run.json), and not a model name. A Keras model of "
                               f"your own becomes a run with 'edgecnn import {ref} --data PATH --preprocess SPEC'.")
            run = load_run(target.run_dir)
        else:
            from edgecnn.registry import get_entry
            from edgecnn.runs import find_latest_run

            get_entry(check_name(ref, "model name"))  # unknown names fail here, with did-you-mean
            latest = find_latest_run(ref, runs_dir)
            if latest is not None:
                run = load_run(latest)
            else:
                import tf_keras

                from edgecnn.data.sample import load_sample
                from edgecnn.registry import create_model

                tf_keras.utils.set_random_seed(0)
                model = create_model(ref)
                spec = spec_for(model.inputs[0].shape[1:], source_size=32)
                return model, ref, None, False, _labels_for(model, load_sample()[2]), spec, None
    else:  # a tf_keras model
        model = model_or_run
        list_models()
        spec = spec_for(model.inputs[0].shape[1:], source_size=32)
        from edgecnn.data.sample import load_sample

        return model, model.name, None, False, _labels_for(model, load_sample()[2]), spec, None
    model = run.load_model(unsafe=unsafe_load)
    return model, run.model_name, run, run.trained, run.labels, run.spec, dataset_kwargs(run.info, run.path)


def _labels_for(model, sample_labels):
    """The bundled sample's class names when the model has that many outputs, else class indices."""
    n = int(model.outputs[0].shape[-1])
    return list(sample_labels) if n == len(sample_labels) else [str(i) for i in range(n)]


def _datasets(ds_kwargs, input_shape):
    """(x_train uint8, y_train, (x_test, y_test, split), (x_val, y_val) or None) of the run's
    dataset or the bundled sample (which has no validation split)."""
    if ds_kwargs:
        from edgecnn.data.datasets import load_dataset

        kw = dict(ds_kwargs)
        ds = load_dataset(kw.pop("source"), input_shape, **kw)
        val = (ds.x_val, ds.y_val) if len(ds.x_val) else None
        return ds.x_train, ds.y_train, (ds.x_test, ds.y_test, f"{ds.name} test"), val
    from edgecnn.data.sample import load_sample

    (xtr, ytr), (xte, yte), _ = load_sample()
    return xtr, ytr, (xte, yte, "bundled CIFAR-10 sample test"), None


def calibration_images(x_train_u8: np.ndarray, spec, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` preprocessed training images (a seeded sample; never the test split)."""
    from edgecnn.data.preprocess import preprocess

    if n < 1:
        raise InvalidConfigError(f"--calibration must be at least 1 image. Received `calibration={n}`.")
    idx = np.sort(np.random.default_rng(seed).permutation(len(x_train_u8))[:n])
    return preprocess(x_train_u8[idx], spec)


def export_model(model_or_run, out_dir=None, *, int8: bool = True, fp16: bool = False, dynamic: bool = False,
                 onnx: bool = True, calibration: int = 200, int8_io: bool = False, max_drop: float = 1.0,
                 rewrite: bool = True, int8_onnx_route: str = "ort_qdq", verify: bool = True,
                 prune: Optional[float] = None, cluster: Optional[int] = None, qat: bool = False,
                 compress_epochs: int = 2, mixed: bool = False, cost_table: Optional[dict] = None,
                 target: Optional[str] = None, runs_dir=None, unsafe_load: bool = False,
                 echo: Optional[Callable[[str], None]] = None) -> dict:
    """Export ``model_or_run`` (a run dir, a ``train.Run``, a model name, or a tf_keras model).

    A model name means its newest trained run under ``runs_dir``, else fresh weights (with a
    loud warning, ``"trained": false``). fp32 TFLite is always written; ``int8``/``fp16``/
    ``dynamic`` add TFLite files, ``onnx`` adds fp32 ONNX (and int8 ONNX with ``int8``).
    Returns the manifest (also written to ``out_dir/manifest.json``).

    ``mixed`` (needs ``int8``): also ``<model>_mixed.tflite``, each op int8 or float as the cost
    table (``cost_table``, else measured here) and the ``max_drop`` budget choose
    (edgecnn.export.mixed), with quant_report.json/.md and quant_error.png beside it. ``target``
    (a board of edgecnn.emulate: pi4, pi5, pi3, pi-zero2): measure the cost table on that
    emulated Raspberry Pi instead of on this machine.

    The commit is all-or-nothing: everything is converted into a staging folder, verified there,
    and moved into place manifest last (readers trust only files the manifest names with a
    matching sha256). A new export that fails verification never replaces an existing one: it
    is kept beside it in ``<out_dir>.rejected/`` for inspection.
    """
    from edgecnn import runs as mf
    from edgecnn.export import deploy
    from edgecnn.export.onnx import INT8_ROUTES, export_onnx, onnx_from_tflite, onnx_opset, quantize_onnx
    from edgecnn.export.tflite import export_tflite
    from edgecnn.export.verify import verify_export
    from edgecnn.runtime import load

    echo = echo or _echo_default
    if int8_onnx_route not in INT8_ROUTES:
        raise InvalidConfigError(f"Unknown int8 ONNX route '{int8_onnx_route}'; one of {', '.join(INT8_ROUTES)}.")
    if int8_io and not int8:
        raise InvalidConfigError("--int8-io needs --int8.")
    if mixed and not int8:
        raise InvalidConfigError("--mixed needs --int8.")
    if mixed and qat:
        raise InvalidConfigError("--mixed chooses float ops after post-training calibration; it does not combine "
                                 "with --qat (whose int8 graph is fixed by the QAT wrappers).")
    if cost_table is not None and not mixed:
        raise InvalidConfigError("--cost-table needs --mixed.")
    if target is not None:
        from edgecnn.emulate.boards import BOARDS

        if cost_table is not None:
            raise InvalidConfigError("--target and --cost-table both give the per-op costs: give one of them.")
        if not mixed:
            raise InvalidConfigError("--target needs --mixed.")
        if target not in BOARDS:
            raise InvalidConfigError(f"Unknown --target '{target}'; one of {', '.join(BOARDS)}.")
    if cost_table is not None:
        from edgecnn.export.mixed import validate_cost_table

        validate_cost_table(cost_table)
    _check_options(calibration=calibration, max_drop=max_drop, prune=prune, cluster=cluster,
                   compress_epochs=compress_epochs)
    model, name, run, trained, labels, spec, ds_kwargs = _resolve(model_or_run, runs_dir, unsafe_load)
    run_dir = run.path if run is not None else None
    output_kind = run.output_kind if run is not None else "probabilities"
    if not trained:
        echo("WARNING: " + UNTRAINED_WARNING.format(name=name))
    if out_dir is None:
        out_dir = Path(run_dir) / mf.EXPORT_DIR if run_dir else mf.runs_root(runs_dir) / name / "untrained" / "export"
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{out_dir}: cannot create the output folder ({e.strerror or e}).") from None
    _remove_stale_stages(out_dir)
    own_run = run_dir is not None and out_dir.resolve() == (Path(run_dir) / mf.EXPORT_DIR).resolve()
    x_train, y_train, test, val = _datasets(ds_kwargs, tuple(int(d) for d in model.inputs[0].shape[1:]))
    cal = calibration_images(x_train, spec, calibration)

    compression, qat_model = None, None
    if prune is not None or cluster is not None or qat:
        from edgecnn.data.preprocess import preprocess
        from edgecnn.export.compress import compress_model

        idx = np.random.default_rng(1).permutation(len(x_train))
        n_val = max(1, len(idx) // 10)
        val, tr = idx[:n_val], idx[n_val:]
        echo(f"compressing (prune={prune}, cluster={cluster}, qat={qat}) for {compress_epochs} epoch(s)")
        stages = {}
        model, compression = compress_model(model, prune=prune, cluster=cluster, qat=qat,
                                            train_data=(preprocess(x_train[tr], spec), y_train[tr]),
                                            val_data=(preprocess(x_train[val], spec), y_train[val]),
                                            epochs=compress_epochs, models=stages)
        if qat:  # float artifacts (and the Keras reference) from the float model; int8 from QAT's
            qat_model, model = model, stages["before_qat"]

    tools = mf.tool_versions()
    m = mf.new_manifest(name, run=".." if own_run else None, trained=trained, labels=labels,
                        preprocessing=spec.to_dict(), tools=tools, dataset=_dataset_record(ds_kwargs, out_dir))
    m["calibration"] = {"images": int(len(cal)), "split": "train", "source": test[2].replace(" test", "")}
    if compression is not None:
        m["compression"] = compression

    try:
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=out_dir))
    except OSError as e:
        raise ExportError(f"{out_dir}: cannot write there ({e.strerror or e}).") from None
    try:
        # The reference Keras model for `edgecnn verify` later: the run's own (inside the run folder
        # around this export), or a copy inside the export with its sha256.
        if own_run and compression is None:
            m["keras"]["model_file"] = "../" + mf.MODEL_FILE
        else:
            try:
                model.save(stage / "reference.keras")
                m["keras"]["model_file"] = "reference.keras"
                m["keras"]["model_sha256"] = sha256_file(stage / "reference.keras")
            except Exception as e:  # noqa: BLE001 - e.g. QAT wrappers; verification then needs the model passed in
                echo(f"note: reference Keras model not saved ({type(e).__name__}); 'edgecnn verify' needs the run")

        dep_model, dep_report = model, None
        if rewrite and int8 and qat_model is not None:
            # The QAT wrappers fix the int8 graph (PReLU is left float in it and calibrated by the
            # converter); rebuilding it around them would drop the trained ranges.
            dep_model = qat_model
            if deploy.prelu_names(qat_model):
                m["deploy_rewrite"] = {"skipped": "quantization-aware model: PReLU kept (int8 PRELU op)"}
                echo("note: PReLU rewrite skipped for the QAT model; its int8 graph keeps PRELU ops")
        elif rewrite and int8:
            dep_model, dep_report = deploy.prepare_for_deploy(model, check_inputs=cal[:64])
            if dep_report.get("prelu") or dep_report.get("rejected"):
                m["deploy_rewrite"] = dep_report
                if dep_report.get("rejected"):
                    echo(f"WARNING: PReLU rewrite {dep_report['rejected']}")
                else:
                    echo(f"deploy rewrite: {len(dep_report['prelu'])} PReLU layer(s) rebuilt from int8-fast ops "
                         f"(float max diff {dep_report.get('max_abs_diff', 0):.1e})")

        jobs = [("tflite", "fp32")] + [("tflite", p) for p, on in (("fp16", fp16), ("dynamic", dynamic), ("int8", int8),
                                                                   ("mixed", mixed)) if on]
        if onnx:
            jobs += [("onnx", "fp32")] + ([("onnx", "int8")] if int8 else [])
        for fmt, prec in jobs:
            fname = mf.artifact_name(name, fmt, prec)
            dst = stage / fname
            extra = {}
            if fmt == "tflite" and prec == "mixed":
                extra.update(_export_mixed(dep_model, model, dst, stage, name, cal, val, test, spec, max_drop,
                                           cost_table, trained, echo, target=target))
                extra["graph"] = "deploy" if dep_model is not model else "original"
            elif fmt == "tflite":
                src = dep_model if prec == "int8" else model
                export_tflite(src, dst, prec, calibration=cal if prec == "int8" else cal[:2],
                              int8_io=int8_io and prec == "int8", info=extra)
                extra["graph"] = ("qat" if src is qat_model and qat_model is not None
                                  else "deploy" if src is not model else "original")
            elif prec == "fp32":
                export_onnx(model, dst)
                extra["graph"] = "original"
            elif int8_onnx_route == "from_tflite":
                onnx_from_tflite(stage / mf.artifact_name(name, "tflite", "int8"), dst)
                extra.update(graph="deploy" if dep_model is not model else "original", int8_route="from_tflite")
            else:
                # ORT quantizes a float graph: after QAT, the float model before it (post-training
                # quantization; the QAT ranges go into the int8 TFLite only).
                onnx_src = dep_model if qat_model is None else model
                tmp_fp32 = stage / f".{name}_deploy_fp32.onnx"
                export_onnx(onnx_src, tmp_fp32)
                quantize_onnx(tmp_fp32, dst, cal)
                tmp_fp32.unlink()
                extra.update(graph="deploy" if onnx_src is not model else "original",
                             int8_route="ort_qdq (QDQ, per-channel int8 weights, uint8 activations)")
                if qat_model is not None:
                    extra["qat"] = "not applied: ONNX Runtime post-training quantization of the float model"
            if fmt == "onnx":
                extra["opset"] = onnx_opset(dst)
                extra["batch"] = "dynamic" if int8_onnx_route == "ort_qdq" or prec == "fp32" else 1
            r = load(dst)
            m["artifacts"][fname] = dict(mf.artifact_entry(dst, fmt, prec, r.inputs, r.outputs, output_kind), **extra)
            echo(f"wrote {fname} ({dst.stat().st_size / 1024:.1f} KiB)")
        mf.write_manifest(stage, m)

        failure = None
        if verify:
            echo("verifying on the held-out split:")
            try:
                m = verify_export(stage, model=model, data=test, max_drop=max_drop, echo=echo)
            except Exception as e:  # noqa: BLE001 - VerificationError: keep the files, re-raise after moving
                from edgecnn.errors import VerificationError

                if not isinstance(e, VerificationError):
                    raise
                failure = e
                m = mf.read_manifest(stage)
        if failure is not None and (out_dir / mf.FILENAME).exists():
            # Never replace a previous export with one that failed verification.
            rejected = out_dir.parent / (out_dir.name + ".rejected")
            shutil.rmtree(rejected, ignore_errors=True)
            os.replace(stage, rejected)
            raise type(failure)(f"{str(failure.message).replace(str(stage), str(rejected))} The previous export in "
                                f"{out_dir} is unchanged; the rejected one is in {rejected}.")
        _commit(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if failure is not None:
        raise type(failure)(str(failure.message).replace(str(stage), str(out_dir)))
    echo(f"export: {out_dir / mf.FILENAME}")
    return m


STAGE_PREFIX = ".export-"


def _export_mixed(dep_model, model, dst: Path, stage: Path, name: str, cal, val, test, spec, max_drop: float,
                  cost_table, trained: bool, echo, target: Optional[str] = None) -> dict:
    """Write ``<model>_mixed.tflite`` and its quant_report.json/.md + quant_error.png into the
    stage; -> the manifest entry's extra fields (float ops and why, the report and its sha256)."""
    from edgecnn.data.preprocess import preprocess
    from edgecnn.export.compact import compact_tflite
    from edgecnn.export.mixed import REPORT_FILE, build_mixed, error_plot, report_markdown
    from edgecnn.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    # The accuracy fallback is judged on the validation split (verification then uses the test
    # split); fresh weights have no meaningful top-1, so their choice is by speed alone.
    val_pre = (preprocess(val[0], spec), np.asarray(val[1]).astype(np.int64).ravel()) if trained and val else None
    prelu = None
    if val_pre is not None and dep_model is not model:  # the PReLU rewrite ran: its snapped variants compete
        from edgecnn.export.mixed import choose_prelu

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


def _check_options(*, calibration, max_drop, prune, cluster, compress_epochs) -> None:
    """Range checks before any work (the CLI checks them too; the API gets the same errors)."""
    import math

    if not isinstance(calibration, int) or calibration < 1:
        raise InvalidConfigError(f"--calibration must be at least 1 image. Received `calibration={calibration}`.")
    if not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) or max_drop < 0:
        raise InvalidConfigError(f"--max-drop must be a finite number >= 0. Received `max_drop={max_drop}`.")
    if prune is not None and not (isinstance(prune, (int, float)) and 0 < prune < 1):
        raise InvalidConfigError(f"--prune must be a sparsity in (0, 1). Received `prune={prune}`.")
    if cluster is not None and not (isinstance(cluster, int) and cluster >= 2):
        raise InvalidConfigError(f"--cluster must be at least 2 centroids. Received `cluster={cluster}`.")
    if not isinstance(compress_epochs, int) or compress_epochs < 1:
        raise InvalidConfigError(f"--compress-epochs must be >= 1. Received `compress_epochs={compress_epochs}`.")


def _dataset_record(ds_kwargs, out_dir: Path) -> dict:
    """The held-out dataset, as the manifest records it (a path relative to the export folder)."""
    from edgecnn.runs import NAMED_DATASETS

    kw = dict(ds_kwargs or {"source": "sample"})
    source = str(kw.pop("source"))
    if source in NAMED_DATASETS:
        rec = {"data_arg": source, "data_path": None}
    else:
        rec = {"data_arg": source, "data_path": os.path.relpath(Path(source).resolve(), Path(out_dir).resolve())}
    rec.update({k: kw.get(k) for k in ("val_fraction", "seed", "max_train", "max_test", "skip_bad")}, split="test")
    if kw.get("classes") is not None:
        rec["classes"] = list(kw["classes"])
    return rec


def _remove_stale_stages(out_dir: Path) -> None:
    """Staging folders left by an interrupted export (a crash, SIGKILL) go before a new one starts."""
    for d in out_dir.glob(STAGE_PREFIX + "*"):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)


def _commit(stage: Path, out_dir: Path) -> None:
    """Move the staged export into place, manifest last; drop artifacts only the old manifest named."""
    from edgecnn import runs as mf

    old = set()
    try:
        old = set(mf.read_manifest(out_dir / mf.FILENAME)["artifacts"]) if (out_dir / mf.FILENAME).exists() else set()
    except EdgecnnError:
        pass
    new = set(mf.read_manifest(stage / mf.FILENAME)["artifacts"])
    for f in sorted(stage.iterdir()):
        if f.name != mf.FILENAME:
            os.replace(f, out_dir / f.name)
    os.replace(stage / mf.FILENAME, out_dir / mf.FILENAME)
    for name in old - new:
        stale = out_dir / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()


def __getattr__(name):  # keep `import edgecnn.export` free of TensorFlow
    if name == "verify_export":
        from edgecnn.export.verify import verify_export

        return verify_export
    raise AttributeError(name)


warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
