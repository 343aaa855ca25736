"""Export: a Keras model or a run -> TFLite (fp32, fp16, dynamic, int8) and ONNX (fp32, int8),
each verified on its real runtime, described in export/manifest.json.

``export_model`` is the one door in (``edgecnn export``). All artifacts are first written into
a staging folder inside the output folder; only when every conversion has succeeded are they
moved into place, manifest.json last. A failed conversion therefore leaves the output folder as
it was. Verification runs at the end: an artifact that fails it is kept and marked unverified,
and ``VerificationError`` is raised after the manifest is written.

Modules: tflite.py (TFLiteConverter), onnx.py (tf2onnx, ONNX Runtime quantization),
deploy.py (exact graph rewrites for fast int8 kernels), mixed.py (per-op precision: int8 where it
is faster and safe, float where it is not), verify.py, manifest handling lives in edgecnn.contract (TF-free),
compress.py (TFMOT pruning/clustering/QAT).
"""
from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgecnn import contract
from edgecnn.contract.checks import EXPORT_DIR
from edgecnn.core.files import sha256_file
from edgecnn.errors import EdgecnnError, ExportError, InvalidConfigError, RunError
from edgecnn.export import formats
from edgecnn.export.options import ExportOptions  # noqa: F401  (the export's options, with export_model)

UNTRAINED_WARNING = ("No trained run of '{name}' found: exporting FRESH (untrained) weights, calibrated on the "
                     "bundled real CIFAR-10 images. Fit for speed and deployability checks only, NOT for "
                     "predictions (manifest: \"trained\": false). Train first with 'edgecnn train {name}'.")


def _echo_default(msg: str) -> None:
    import click

    click.echo(msg, err=True)


def _resolve(model_or_run, runs_dir=None, unsafe_load: bool = False):
    """-> (model, model_name, Run or None, trained, labels, spec, dataset kwargs or None)."""
    from edgecnn.data.preprocess import spec_for
    from edgecnn.models.registry import list_models
    from edgecnn.contract import Run, check_name, dataset_kwargs, load_run, refuse_artifact, resolve

    if isinstance(model_or_run, Run):
        run = model_or_run
    elif isinstance(model_or_run, (str, os.PathLike)):
        ref = str(model_or_run)
        refuse_artifact(ref, "export")
        if Path(ref).exists() or "/" in ref:
            target = resolve(ref, runs_dir, manifest=False)
            if target.run_dir is None:
                raise RunError(f"{ref}: not a run directory (no run.json), and not a model name. A Keras model of "
                               f"your own becomes a run with 'edgecnn import {ref} --data PATH --preprocess SPEC'.")
            run = load_run(target.run_dir)
        else:
            from edgecnn.models.registry import get_entry
            from edgecnn.contract import find_latest_run

            get_entry(check_name(ref, "model name"))  # unknown names fail here, with did-you-mean
            latest = find_latest_run(ref, runs_dir)
            if latest is not None:
                run = load_run(latest)
            else:
                import tf_keras

                from edgecnn.data.sample import load_sample
                from edgecnn.models.registry import create_model

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


def calibration_pixels(x_train_u8: np.ndarray, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` training images (a seeded sample; never the test split), uint8."""
    if n < 1:
        raise InvalidConfigError(f"--calibration must be at least 1 image. Received `calibration={n}`.")
    idx = np.sort(np.random.default_rng(seed).permutation(len(x_train_u8))[:n])
    return x_train_u8[idx]


def calibration_images(x_train_u8: np.ndarray, spec, n: int = 200, seed: int = 0) -> np.ndarray:
    """``n`` preprocessed training images (a seeded sample; never the test split)."""
    from edgecnn.data.preprocess import preprocess

    return preprocess(calibration_pixels(x_train_u8, n, seed), spec)


def export_model(model_or_run, out_dir=None, options: Optional[ExportOptions] = None, *,
                 echo: Optional[Callable[[str], None]] = None, **overrides) -> dict:
    """Export ``model_or_run`` (a run dir, a ``contract.Run``, a model name, or a tf_keras model)
    as ``options`` asks (``ExportOptions``; keyword ``overrides`` change single options:
    ``export_model(run, int8=True, onnx=False)``).

    A model name means its newest trained run under ``options.runs_dir``, else fresh weights (with
    a loud warning, ``"trained": false``). The artifacts are those of ``formats.FORMATS`` the
    options select: fp32 TFLite always; int8/fp16/dynamic TFLite, fp32 (and int8) ONNX, and with
    ``mixed`` ``<model>_mixed.tflite``, each op int8 or float as the cost table (``cost_table``,
    else measured here, or on the emulated board ``target``) and the ``max_drop`` budget choose
    (edgecnn.export.mixed), with quant_report.json/.md and quant_error.png beside it.
    Returns the manifest (also written to ``out_dir/manifest.json``).

    Exports add up: the artifacts of an earlier export in ``out_dir`` that this one does not
    write again are carried over (hard links), listed in the new manifest with their entries,
    sha256-checked and verified again with the rest, against this export's reference model and
    held-out split; so are other files found there. When they cannot belong to the new export
    (another model, other weights, labels or preprocessing) the export is refused before any
    conversion, unless ``clean`` asks to replace the whole folder.

    The commit is all-or-nothing (edgecnn.core.commit): under a lock on ``out_dir``, everything
    is converted into a staging folder beside it, verified there, and swapped in with one rename.
    A new export that fails verification never replaces an existing one: it is kept beside it in
    ``<out_dir>.rejected/`` for inspection.
    """
    from edgecnn.core import commit

    o = ExportOptions.make(options, **overrides)
    echo = echo or _echo_default
    model, name, run, trained, labels, spec, ds_kwargs = _resolve(model_or_run, o.runs_dir, o.unsafe_load)
    rebuild = _tf_keras_rebuild(model, o)  # a step that needs tf_keras is refused here, before anything is written
    run_dir = run.path if run is not None else None
    if not trained:
        echo("WARNING: " + UNTRAINED_WARNING.format(name=name))
    out_dir = _output_folder(out_dir, run_dir, name, o)
    own_run = run_dir is not None and out_dir.resolve() == (Path(run_dir) / EXPORT_DIR).resolve()
    with commit.locked(out_dir, echo=echo):
        x_train, y_train, test, val = _datasets(ds_kwargs, tuple(int(d) for d in model.inputs[0].shape[1:]))
        cal = calibration_images(x_train, spec, o.calibration)
        model, rebuilt = _checked_rebuild(model, rebuild, cal, echo)
        model, qat_model, compression = _compress(model, o, x_train, y_train, spec, echo)
        camera, cal, graphs, folded = _camera_input(model, qat_model, spec, x_train, o.calibration, echo)
        m = _new_manifest(name, own_run, trained, labels, camera, ds_kwargs, out_dir, run, model)
        m["keras"]["preprocessing"] = spec.to_dict()
        m["camera_input"] = folded
        m["calibration"] = {"images": int(len(cal)), "split": "train", "source": test[2].replace(" test", "")}
        if compression is not None:
            m["compression"] = compression
        if rebuilt is not None:
            m["keras"]["rebuilt_as_tf_keras"] = rebuilt
        carried = _carry_plan(out_dir, m, o)
        with commit.staged(out_dir) as stage:
            _reference(m, model, stage, own_run and compression is None, echo)
            deploy_model = _deploy_model(m, graphs[0], graphs[1], cal, o, echo)
            job = formats.Job(o, name, graphs[0], deploy_model, graphs[1], cal, val, test, camera, trained, stage,
                              echo, output_kind=run.output_kind if run is not None else "probabilities",
                              labels=tuple(labels), about=_about(name, run, camera, labels, o))
            for fmt in formats.selected(o):
                try:
                    m["artifacts"][fmt.file_name(name)] = formats.write(fmt, job)
                except formats.Skipped as e:
                    echo(f"{fmt.file_name(name)} not written: {e.reason}")
                    m.setdefault("skipped", {})[fmt.key] = e.reason
            commit.pause_point("export-staged")
            if not o.clean:
                _carry_over(out_dir, stage, m, carried, echo)
            contract.write_manifest(stage, m)
            failure, m = _verify(stage, m, model, test, o, echo)
            if failure is not None and (out_dir / contract.FILENAME).exists():
                # Never replace a previous export with one that failed verification.
                rejected = out_dir.parent / (out_dir.name + ".rejected")
                commit.swap_in(stage, rejected)
                raise type(failure)(f"{str(failure.message).replace(str(stage), str(rejected))} The previous export "
                                    f"in {out_dir} is unchanged; the rejected one is in {rejected}.")
            commit.swap_in(stage, out_dir)
    if failure is not None:
        raise type(failure)(str(failure.message).replace(str(stage), str(out_dir)))
    echo(f"export: {out_dir / contract.FILENAME}")
    return m


def _tf_keras_rebuild(model, o: ExportOptions):
    """TFMOT steps, and the PReLU rewrite and PReLU search of int8 and mixed exports, work on
    tf_keras models: for them a Keras 3 model is rebuilt as tf_keras (edgecnn.models.keras3) ->
    (tf_keras graph, node map, the steps asking) or None. A model that cannot be rebuilt fails a
    TFMOT step in one line; without one, it is exported as it is."""
    from edgecnn.models.keras3 import Untranslatable, build_tf_keras, is_keras3

    if not is_keras3(model):
        return None
    steps = [flag for flag, on in (("--prune", o.prune is not None), ("--cluster", o.cluster is not None),
                                   ("--qat", o.qat)) if on]
    prelu = any(type(layer).__name__ == "PReLU" for layer in model.layers) and o.int8 and (o.rewrite or o.mixed)
    if not steps and not prelu:
        return None
    try:
        return (*build_tf_keras(model), steps)
    except Untranslatable as e:
        if steps:
            raise InvalidConfigError(f"{'/'.join(steps)} {_need(steps)} a tf_keras model: TFMOT 0.8 does not accept "
                                     f"Keras 3 models, and '{model.name}' cannot be rebuilt as tf_keras ({e}). Export "
                                     f"it without {', '.join(steps)}.") from None
        return None  # the PReLU rewrite is a speed-up: the model is exported as it is


def _need(steps) -> str:
    return "needs" if len(steps) == 1 else "need"


def _checked_rebuild(model, rebuild, cal, echo):
    """-> (the model to export, rebuild report or None): the rebuild checked node by node against
    the Keras 3 model on the calibration images."""
    from edgecnn.models.keras3 import Untranslatable, describe, rebuild_as_tf_keras

    if rebuild is None:
        return model, None
    tk, outmap, steps = rebuild
    try:
        tk, report = rebuild_as_tf_keras(model, cal[:64], built=(tk, outmap))
    except Untranslatable as e:
        if not steps:
            echo(f"note: '{model.name}' rebuilt as tf_keras for the PReLU rewrite is not faithful ({e}); exported as "
                 f"it is")
            return model, None
        raise InvalidConfigError(f"{'/'.join(steps)} {_need(steps)} a tf_keras model: TFMOT 0.8 does not accept "
                                 f"Keras 3 models, and '{model.name}' rebuilt as tf_keras is not the same function "
                                 f"({e}). Export it without {', '.join(steps)}.") from None
    echo(f"Keras 3 model {describe(report)} (for {', '.join(steps) or 'the PReLU rewrite'})")
    return tk, report


def _output_folder(out_dir, run_dir, name: str, o: ExportOptions) -> Path:
    """The folder the export replaces as a whole: checked to be one it may replace."""
    from edgecnn.errors import RESOURCE_ERRNOS, system_error

    if out_dir is None:
        out_dir = (Path(run_dir) / EXPORT_DIR if run_dir
                   else contract.runs_root(o.runs_dir) / name / "untrained" / EXPORT_DIR)
    out_dir = Path(out_dir)
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ExportError(f"{out_dir}: not a folder (a file or a symlink); give --out a folder of its own.")
    if (out_dir / contract.RUN_FILE).exists():
        raise ExportError(f"{out_dir} is a run folder; its export goes to {out_dir / EXPORT_DIR} (leave --out out).")
    here = os.path.realpath(os.getcwd())
    there = os.path.realpath(out_dir)
    if os.path.commonpath([here, there]) == there:
        raise ExportError(f"{out_dir} is the current folder or holds it; an export replaces its folder as a whole: "
                          f"give --out a folder of its own.")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(out_dir.name)) > os.pathconf(out_dir.parent, "PC_NAME_MAX"):
            # Found now, not at the swap after every conversion (the writes are checked by the lock).
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(out_dir))
    except OSError as e:
        if e.errno in RESOURCE_ERRNOS:
            raise system_error(e) from None
        raise ExportError(f"{out_dir}: cannot create the output folder ({e.strerror or e}).") from None
    return out_dir


def _new_manifest(name, own_run, trained, labels, spec, ds_kwargs, out_dir, run, model) -> dict:
    from edgecnn.train.fit import weights_sha256

    m = contract.new_manifest(name, run=".." if own_run else None, trained=trained, labels=labels,
                              preprocessing=spec.to_dict(), tools=contract.tool_versions(),
                              dataset=_dataset_record(ds_kwargs, out_dir))
    m["keras"]["weights_sha256"] = weights_sha256(model)
    if own_run and run.info.get("model_sha256"):
        m["keras"]["model_sha256"] = run.info["model_sha256"]
    return m


def _carry_plan(out_dir: Path, m: dict, o: ExportOptions) -> list:
    """The artifacts of the export already in ``out_dir`` that this one will not write again
    (each checked against its sha256), to be carried over; an ExportError when they cannot be
    (another model, weights, labels or preprocessing, a damaged manifest), unless ``o.clean``."""
    from edgecnn.export import formats

    if o.clean or not (out_dir / contract.FILENAME).exists():
        return []
    again = {f.file_name(m["model"]) for f in formats.selected(o)}
    hint = "; pass --clean to replace the whole export, or choose another --out"
    try:
        old = contract.read_manifest(out_dir / contract.FILENAME)
    except EdgecnnError as e:
        raise ExportError(f"{e.message} The export there cannot be added to{hint}.") from None
    keep = [n for n in old["artifacts"] if n not in again]
    if not keep:
        return []
    new_w, old_w = m["keras"].get("weights_sha256"), (old.get("keras") or {}).get("weights_sha256")
    differs = [what for what, a, b in (
        ("model", old["model"], m["model"]), ("trained", old["trained"], m["trained"]),
        ("labels", old["labels"], m["labels"]), ("preprocessing", old["preprocessing"], m["preprocessing"]),
        ("weights", old_w if old_w and new_w else None, new_w if old_w and new_w else None),
        ("compression", old.get("compression") is not None, m.get("compression") is not None)) if a != b]
    if m.get("compression") is not None and old.get("compression") is not None:
        differs.append("compression (each compressed export fine-tunes its own weights)")
    if differs:
        raise ExportError(f"{out_dir} holds {', '.join(sorted(keep))} of an export with other {', '.join(differs)}; "
                          f"this export would not write them again and cannot keep them beside its own{hint}.")
    for n in keep:
        try:
            contract.artifact_path(out_dir, old, n)
        except EdgecnnError as e:
            raise ExportError(f"{e.message} It cannot be carried into the new export{hint}.") from None
    recommended = old.get("recommended") or {}
    return [(n, old["artifacts"][n], {k: old.get(k) for k in ("created", "calibration", "deploy_rewrite")},
             {t: r for t, r in recommended.items() if r["artifact"] == n}) for n in keep]


def _carry_over(out_dir: Path, stage: Path, m: dict, carried: list, echo) -> None:
    """Hard-link into the stage what the old export holds and this one did not write (its
    artifacts, entries kept, to be verified again with the new ones; other files as they are)."""
    from edgecnn.core import commit

    if not out_dir.is_dir():
        return
    mine = set(os.listdir(stage)) | {contract.FILENAME}

    def skip(rel: str) -> bool:
        top = rel.split("/", 1)[0]
        return top in mine or top.startswith(STAGE_PREFIX) or (top == "reference.keras" and "/" not in rel)

    try:
        commit.carry_over(out_dir, stage, skip=skip)
    except OverflowError as e:
        raise ExportError(f"{e}; give --out a folder of its own, or pass --clean.") from None
    for n, entry, origin, recommended in carried:
        m["artifacts"][n] = dict(entry, carried_from={k: v for k, v in origin.items() if v is not None})
        if recommended:  # the benchmark's choice stands for the same bytes (dropped if they fail verification)
            m.setdefault("recommended", {}).update(recommended)
    if carried:
        echo(f"kept from the previous export (verified again): {', '.join(c[0] for c in carried)}")


def _camera_input(model, qat_model, spec, x_train, n_calibration: int, echo):
    """(the artifacts' spec, calibration images in it, (float graph, QAT graph or None) taking it,
    the fold report): the run's normalization moved into the graph (edgecnn.export.fold)."""
    from edgecnn.data.preprocess import preprocess
    from edgecnn.export.fold import QAT_FOLD_TOL, calibration_reaching_ends, camera_spec, fold_normalization

    camera = camera_spec(spec)
    pixels = calibration_pixels(x_train, n_calibration)
    checks = pixels[:64]
    folded, report = fold_normalization(model, spec, check_inputs=checks)
    qat_folded = None
    if qat_model is not None:
        qat_folded, qat_report = fold_normalization(qat_model, spec, check_inputs=checks, tol=QAT_FOLD_TOL)
        report = dict(report, qat=qat_report["how"], qat_max_abs_diff=qat_report.get("max_abs_diff"))
    report = dict(report, run_preprocessing=spec.to_dict())
    if folded is not model:
        echo(f"camera input (pixels / 255): normalization {report['how']}")
    return camera, preprocess(calibration_reaching_ends(pixels), camera), (folded, qat_folded), report


def _about(name: str, run, camera, labels, o: ExportOptions) -> dict:
    """The description, version, author and licence every file's metadata carries."""
    import edgecnn

    origin = f"run {run.path.name}" if run is not None else "fresh, untrained weights"
    data = ((run.info.get("dataset") or {}).get("name") if run is not None else None) or "the bundled CIFAR-10 sample"
    h, w = camera.input_size
    return {"description": (f"{name}: image classifier of {len(labels)} classes, {h}x{w} "
                            f"{'RGB' if camera.channels == 3 else 'gray'} input, trained on {data} ({origin}); "
                            f"exported by edgecnn {edgecnn.__version__}."),
            "version": run.path.name if run is not None else "untrained",
            "author": o.author or f"edgecnn {edgecnn.__version__}", "license": o.license or "not specified"}


def _compress(model, o: ExportOptions, x_train, y_train, spec, echo):
    """TFMOT pruning / clustering / QAT first, when asked: -> (float model, QAT model or None, record)."""
    if o.prune is None and o.cluster is None and not o.qat:
        return model, None, None
    from edgecnn.data.preprocess import preprocess
    from edgecnn.export.compress import compress_model

    idx = np.random.default_rng(1).permutation(len(x_train))
    n_val = max(1, len(idx) // 10)
    val, tr = idx[:n_val], idx[n_val:]
    echo(f"compressing (prune={o.prune}, cluster={o.cluster}, qat={o.qat}) for {o.compress_epochs} epoch(s)")
    stages = {}
    model, compression = compress_model(model, prune=o.prune, cluster=o.cluster, qat=o.qat,
                                        train_data=(preprocess(x_train[tr], spec), y_train[tr]),
                                        val_data=(preprocess(x_train[val], spec), y_train[val]),
                                        epochs=o.compress_epochs, models=stages)
    if o.qat:  # float artifacts (and the Keras reference) from the float model; int8 from QAT's
        return stages["before_qat"], model, compression
    return model, None, compression


def _reference(m: dict, model, stage: Path, use_run_model: bool, echo) -> None:
    """The reference Keras model for `edgecnn verify` later: the run's own (inside the run folder
    around this export), or a copy inside the export with its sha256."""
    from edgecnn import contract

    if use_run_model:
        m["keras"]["model_file"] = "../" + contract.MODEL_FILE
        return
    try:
        model.save(stage / "reference.keras")
        m["keras"]["model_file"] = "reference.keras"
        m["keras"]["model_sha256"] = sha256_file(stage / "reference.keras")
    except Exception as e:  # noqa: BLE001 - e.g. QAT wrappers; verification then needs the model passed in
        echo(f"note: reference Keras model not saved ({type(e).__name__}); 'edgecnn verify' needs the run")


def _deploy_model(m: dict, model, qat_model, cal, o: ExportOptions, echo):
    """The graph int8 artifacts are converted from: the exact PReLU rewrite, or the QAT model."""
    from edgecnn.export import deploy

    if not (o.rewrite and o.int8):
        return model
    if qat_model is not None:
        # The QAT wrappers fix the int8 graph (PReLU is left float in it and calibrated by the
        # converter); rebuilding it around them would drop the trained ranges.
        if deploy.prelu_names(qat_model, nested=True):  # the camera input's wrapper may call it as a layer
            m["deploy_rewrite"] = {"skipped": "quantization-aware model: PReLU kept (int8 PRELU op)"}
            echo("note: PReLU rewrite skipped for the QAT model; its int8 graph keeps PRELU ops")
        return qat_model
    dep_model, report = deploy.prepare_for_deploy(model, check_inputs=cal[:64])
    if report.get("prelu") or report.get("rejected"):
        m["deploy_rewrite"] = report
        if report.get("rejected"):
            echo(f"WARNING: PReLU rewrite {report['rejected']}")
        else:
            echo(f"deploy rewrite: {len(report['prelu'])} PReLU layer(s) rebuilt from int8-fast ops "
                 f"(float max diff {report.get('max_abs_diff', 0):.1e})")
    return dep_model


def _verify(stage: Path, m: dict, model, test, o: ExportOptions, echo):
    """-> (VerificationError or None, the manifest): a failure keeps the files for the caller."""
    from edgecnn import contract
    from edgecnn.errors import VerificationError
    from edgecnn.export.verify import verify_export

    if not o.verify:
        return None, m
    echo("verifying on the held-out split:")
    try:
        return None, verify_export(stage, model=model, data=test, max_drop=o.max_drop, echo=echo)
    except VerificationError as e:
        return e, contract.read_manifest(stage)


STAGE_PREFIX = ".export-"  # staging folders inside an export, as older versions made them: never carried over


def _dataset_record(ds_kwargs, out_dir: Path) -> dict:
    """The held-out dataset, as the manifest records it (a path relative to the export folder)."""
    from edgecnn.contract import NAMED_DATASETS

    kw = dict(ds_kwargs or {"source": "sample"})
    source = str(kw.pop("source"))
    if source in NAMED_DATASETS:
        rec = {"data_arg": source, "data_path": None}
    else:
        rec = {"data_arg": source, "data_path": os.path.relpath(Path(source).resolve(), Path(out_dir).resolve())}
    rec.update({k: kw.get(k) for k in ("val_fraction", "test_fraction", "seed", "max_train", "max_test", "skip_bad")},
               split="test")
    if kw.get("classes") is not None:
        rec["classes"] = list(kw["classes"])
    return rec


def __getattr__(name):  # keep `import edgecnn.export` free of TensorFlow
    if name == "verify_export":
        from edgecnn.export.verify import verify_export

        return verify_export
    raise AttributeError(name)


warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
