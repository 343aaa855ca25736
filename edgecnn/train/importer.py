"""Bring your own model: a Keras image classifier trained elsewhere -> an ordinary run directory.

``import_model(source, data=...)`` (``edgecnn import``) is the stage beside ``train``: it writes
``runs/<name>/<run-name>/`` with run.json and model.keras as training does, so that ``eval``,
``export``, ``verify``, ``benchmark``, ``classify`` and ``bundle android`` take it unchanged.

* ``source``: a ``.keras`` file (loaded in safe mode; ``unsafe_load`` for HDF5, SavedModel,
  Lambda layers or custom layers given as ``custom_objects=["module:attr"]``, recorded loudly in
  run.json and required again by every later stage that loads the model), a tf_keras model
  object, or ``keras:<Application>`` (``keras:MobileNetV3Small``): a Keras Applications
  architecture built with fresh weights (no download), fine-tuned here with ``epochs``.
* The input size and channels come from the model (``input_size`` only for a model whose
  spatial size is dynamic); the labels from the dataset (class folders, CIFAR batches) or a
  labels file in the model's output order (the dataset is renumbered to it by name); the
  preprocessing from an explicit spec (``edgecnn.data.preprocess.parse_preprocess``): a model
  trained elsewhere expects what it was trained on, which no file records.
* What edgecnn cannot deploy is refused before anything is written, with the reason: several
  inputs or outputs, an input that is not an image (rank 4, 1 or 3 channels), a dynamic
  spatial size without ``input_size``, an output that is not one score per class. Whether
  the output is probabilities (a final softmax) or logits is read from the output layer
  (``output_kind`` overrides) and checked on the test images; the manifest carries it, and the
  device side applies softmax to logits.
* The model is evaluated on the dataset's test split, so the run has its accuracy, as a
  trained run does; ``epochs`` > 0 fine-tunes it on the training split first (Adam, no
  augmentation, BatchNorm momentum at most 0.9 while fitting, as the quick recipe).

TensorFlow is imported inside the functions.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from edgecnn.errors import DataError, InvalidConfigError, ModelFileError, RunError
from edgecnn.data.labels import read_labels_file
from edgecnn.train.options import ImportOptions

KERAS_PREFIX = "keras:"
# Layers that pass class scores through unchanged in shape-meaning: the output kind is decided
# by the layer before them.
_PASS_THROUGH = ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Reshape", "Dropout", "Identity",
                 "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "ActivityRegularization")
_PROB_TOL = 1e-3  # rows of "probabilities" must sum to 1 within this on every test image


def _refuse(what: str, reason: str):
    raise ModelFileError(f"{what}: {reason}")


# ---------------------------------------------------------------------------- what edgecnn deploys
def _producer(tensor):
    """The layer (or Keras 3 op) that computed a symbolic tensor of tf_keras or Keras 3."""
    history = tensor._keras_history
    return getattr(history, "layer", None) or getattr(history, "operation", None) or history[0]


def output_kind_of(model) -> Tuple[Optional[str], str]:
    """("probabilities" | "logits" | None, reason) from the layers that produce the model's output."""
    layer = _producer(model.outputs[0])
    for _ in range(16):
        if hasattr(layer, "outputs") and hasattr(layer, "layers") and layer.outputs:  # a nested model
            layer = _producer(layer.outputs[0])
            continue
        kind = type(layer).__name__
        if kind == "Softmax":
            return "probabilities", f"its output layer '{layer.name}' is a softmax"
        act = getattr(layer, "activation", None)
        if act is not None:
            name = getattr(act, "__name__", str(act))
            if name == "softmax":
                return "probabilities", f"its output layer '{layer.name}' ends in softmax"
            if name == "linear":
                return "logits", f"its output layer '{layer.name}' has no activation (logits)"
            if name == "sigmoid":
                return None, (f"its output layer '{layer.name}' ends in sigmoid: independent per-class scores "
                              f"(multi-label), not one class per image; edgecnn deploys single-label classifiers "
                              f"(softmax probabilities or logits)")
            return None, (f"its output layer '{layer.name}' ends in {name}, which gives no class scores "
                          f"(softmax probabilities or logits)")
        if kind in _PASS_THROUGH:
            inbound = layer.input
            if isinstance(inbound, (list, tuple)):
                break
            layer = _producer(inbound)
            continue
        break
    return None, (f"its output layer '{layer.name}' ({type(layer).__name__}) does not say whether it gives "
                  f"probabilities or logits; say which with --output-kind")


def check_deployable(model, where: str, input_size: Optional[Tuple[int, int]] = None):
    """(model with a fixed input size, (H, W, C), output kind or None, reason) or a one-line refusal."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        _refuse(where, f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; edgecnn "
                       f"deploys one image input and one class-score output.")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        _refuse(where, f"its input {_fmt(shape)} is not an image batch [batch, height, width, channels]; refused.")
    h, w, c = shape[1:]
    if c not in (1, 3):
        _refuse(where, f"its input {_fmt(shape)} has {c} channels; edgecnn feeds 1 (gray) or 3 (RGB), "
                       f"channels last.")
    if h is None or w is None:
        if input_size is None:
            _refuse(where, f"its input {_fmt(shape)} has a dynamic spatial size; pass --input-size (e.g. "
                           f"--input-size 96) for the size it was trained at.")
        model = _fix_input(model, (*input_size, c))
        h, w = input_size
    elif input_size is not None and tuple(input_size) != (h, w):
        _refuse(where, f"--input-size {input_size[0]}x{input_size[1]} disagrees with the model's fixed input "
                       f"{h}x{w}; leave --input-size out.")
    from edgecnn.data.preprocess import MAX_SIDE

    if max(h, w) > MAX_SIDE:
        _refuse(where, f"its input is {h}x{w}; at most {MAX_SIDE} per side.")
    out = tuple(model.outputs[0].shape)
    if len(out) != 2 or out[-1] is None or out[-1] < 2:
        _refuse(where, f"its output {_fmt(out)} is not class scores [batch, classes] for 2 or more classes; "
                       f"edgecnn deploys image classifiers.")
    kind, reason = output_kind_of(model)
    return model, (int(h), int(w), int(c)), kind, reason


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if v is None else str(v) for v in shape) + "]"


def _fix_input(model, shape):
    """The same model (same weights) on a fixed-size input, so that converters see static shapes."""
    from edgecnn.models.keras3 import keras_module

    k = keras_module(model)
    inp = k.Input(shape, name=model.inputs[0].name.split(":")[0])
    try:
        fixed = k.models.clone_model(model, input_tensors=inp)
        fixed.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a subclassed model cannot be cloned: wrap it instead
        fixed = k.Model(inp, model(inp), name=model.name)
    return fixed


# ---------------------------------------------------------------------------- sources
def _keras_application(spec: str, input_size, num_classes: int, where: str):
    """``keras:MobileNetV3Small`` -> the Keras Applications model with fresh weights (no download)."""
    import tf_keras

    name = spec[len(KERAS_PREFIX):]
    mod = tf_keras.applications
    apps = sorted(n for n in dir(mod) if n[:1].isupper() and callable(getattr(mod, n)))
    if name not in apps:
        from edgecnn.errors import UnknownModelError, did_you_mean

        raise UnknownModelError(f"'{spec}': no Keras Applications architecture '{name}'.{did_you_mean(name, apps)} "
                                f"One of: {', '.join(apps)}.")
    if input_size is None:
        raise InvalidConfigError(f"'{spec}': pass --input-size (e.g. 96) for a Keras Applications architecture.")
    try:
        return getattr(tf_keras.applications, name)(input_shape=(*input_size, 3), classes=num_classes, weights=None)
    except ValueError as e:  # e.g. an input below the architecture's minimum
        msg = " ".join(str(e).split())[:200]
        raise InvalidConfigError(f"'{spec}' at {input_size[0]}x{input_size[1]}: {msg}") from None


def _rescales_inside(model) -> bool:
    """Whether the model's first layers rescale raw pixels (Rescaling / Normalization layers)."""
    return any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in model.layers[:4])


# ---------------------------------------------------------------------------- the stage
def import_model(source, options: Optional[ImportOptions] = None, *, echo=print, **overrides):
    """Import a Keras classifier and its dataset as a run, as ``options`` say (``ImportOptions``;
    keyword ``overrides``); returns ``edgecnn.contract.Run``. See the module doc."""
    from edgecnn import contract
    from edgecnn.contract.checks import check_labels
    from edgecnn.data.datasets import load_dataset
    from edgecnn.data.preprocess import describe_range, parse_preprocess
    from edgecnn.core.files import sha256_file

    o = ImportOptions.make(options, **overrides)
    labels = None
    if o.labels_file is not None:
        labels = check_labels(read_labels_file(o.labels_file), str(o.labels_file), DataError, min_len=2)
    ds_kw = dict(val_fraction=0.1, seed=o.seed, max_train=o.max_train_images, max_test=o.max_test_images,
                 skip_bad=o.skip_bad_images, test_fraction=o.test_fraction)

    is_app = isinstance(source, str) and source.startswith(KERAS_PREFIX)
    src_record: dict
    if is_app:
        where = source
        if o.input_size is None:
            raise InvalidConfigError(f"'{source}': pass --input-size (e.g. 96) for a Keras Applications architecture.")
        ds = load_dataset(o.data, (*o.input_size, 3), classes=labels, **ds_kw)
        if o.num_classes is not None and o.num_classes != ds.num_classes:
            raise InvalidConfigError(f"--classes {o.num_classes} disagrees with the {ds.num_classes} classes of "
                                     f"'{o.data}'.")
        model = _keras_application(source, o.input_size, ds.num_classes, where)
        default_name = source[len(KERAS_PREFIX):].lower()
        src_record = {"kind": "keras_application", "architecture": source[len(KERAS_PREFIX):], "weights": None}
    else:
        if isinstance(source, (str, Path)):
            where = str(source)
            objs = contract.custom_objects_from(o.custom_objects) if o.custom_objects else None
            contract.refuse_artifact(source, "import")
            model = contract.load_keras(source, unsafe=o.unsafe_load, custom_objects=objs)
            p = Path(source)
            default_name = p.stem if p.is_file() else p.name
            src_record = {"kind": "import", "file": p.name, "sha256": sha256_file(p) if p.is_file() else None,
                          "keras": _keras_version(model)}
        else:  # a tf_keras or Keras 3 model object (Python API)
            model, where = source, f"model '{getattr(source, 'name', '?')}'"
            default_name = getattr(source, "name", "model")
            src_record = {"kind": "import", "file": None, "sha256": None, "keras_name": default_name,
                          "keras": _keras_version(model)}
        ds = None
    model, input_shape, kind, kind_reason = check_deployable(model, where, o.input_size)
    if o.output_kind is not None:
        kind, kind_reason = o.output_kind, "given with --output-kind"
    if kind is None:
        _refuse(where, kind_reason + "; refused.")
    n_out = int(model.outputs[0].shape[-1])
    if o.num_classes is not None and o.num_classes != n_out:
        raise InvalidConfigError(f"--classes {o.num_classes} disagrees with the model's {n_out} outputs.")
    if labels is not None and len(labels) != n_out:
        raise DataError(f"{o.labels_file}: {len(labels)} labels for the model's {n_out} outputs.")

    if o.preprocess is None:
        if not is_app:
            hint = (" It starts with a Rescaling/Normalization layer: --preprocess raw is likely." if
                    _rescales_inside(model) else "")
            raise InvalidConfigError(f"{where}: say how the model expects its pixels, with --preprocess: a preset "
                                     f"(raw, unit, keras-mobilenet, imagenet, cifar10) or scale=...,mean=...,std=... "
                                     f"(what it was trained with; no file records it).{hint}")
        o = dataclasses.replace(o, preprocess="raw" if _rescales_inside(model) else "keras-mobilenet")
    spec = parse_preprocess(o.preprocess, input_shape[:2], input_shape[2])

    model_name = contract.check_name(o.name or _plain(default_name), "--name")
    from edgecnn.models.registry import list_models

    if model_name in list_models():
        raise InvalidConfigError(f"--name '{model_name}' is a zoo model; runs of it must hold the zoo's architecture. "
                                 f"Choose another --name.")
    if o.run_name is not None:
        contract.check_name(o.run_name, "--run-name")
    run_dir = contract.run_dir_for(model_name, o.run_name or f"import-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}",
                               o.runs_dir)
    if (run_dir / contract.RUN_FILE).exists():
        raise RunError(f"{run_dir} already holds a run; choose another --run-name.")

    if ds is None:
        ds = load_dataset(o.data, input_shape, classes=labels, **ds_kw)
    if ds.num_classes != n_out:
        raise DataError(f"{o.data}: {ds.num_classes} classes, but the model has {n_out} outputs; import it with the "
                        f"dataset it classifies (or a --labels file naming its {n_out} classes).")
    if len(ds.x_test) == 0:
        raise DataError(f"{o.data}: the test split is empty; the import evaluates the model on it.")

    echo(f"{where}: input {input_shape[0]}x{input_shape[1]}x{input_shape[2]} (model inputs {describe_range(spec)}), "
         f"{n_out} classes, output {kind} ({kind_reason}).")
    if src_record.get("keras", "").startswith("3."):
        echo(f"{where}: a Keras {src_record['keras']} model, kept as it is: converted and verified as Keras 3 "
             f"(rebuilt as tf_keras only for --prune, --cluster, --qat and the PReLU rewrite).")
    echo(f"data: {ds.describe()}")
    if o.unsafe_load:
        echo(f"WARNING: {where} loaded with --unsafe-load (no safe mode"
             f"{'; custom objects ' + ', '.join(o.custom_objects) if o.custom_objects else ''}): the run records it.")
    fine_tune = None
    if o.epochs:
        fine_tune = _fine_tune(model, ds, spec, kind, epochs=o.epochs, lr=o.lr, batch_size=o.batch_size, seed=o.seed)
    scores = _scores(model, ds.x_test, spec, kind, where)
    from edgecnn.train.evaluate import classification_metrics

    m = classification_metrics(ds.y_test, scores, ds.labels)
    trained = not is_app or bool(o.epochs)
    info = {
        "schema": contract.RUN_SCHEMA, "model": model_name, "model_kwargs": {}, "run_name": run_dir.name,
        "created": contract.now(), "source": src_record, "output_kind": kind, "output_kind_reason": kind_reason,
        "unsafe_load": bool(o.unsafe_load), "custom_objects": list(o.custom_objects),
        "dataset": dict(ds.info(), **contract.dataset_record(o.data, run_dir), val_fraction=ds_kw["val_fraction"],
                        test_fraction=ds_kw["test_fraction"],
                        max_train_images=o.max_train_images, max_test_images=o.max_test_images,
                        skip_bad_images=o.skip_bad_images, **({"classes": list(labels)} if labels else {})),
        "input_shape": list(input_shape), "num_classes": n_out, "labels": list(ds.labels),
        "preprocessing": spec.to_dict(), "preprocess_arg": o.preprocess, "seed": o.seed, "versions": contract.versions(),
        "command": " ".join(sys.argv), "trained": trained, "fine_tune": fine_tune,
        "metrics": {k: m[k] for k in ("top1", "top5", "macro_f1")}, "per_class_accuracy": m["per_class_accuracy"],
        "finished": contract.now(),
    }
    _write_run(run_dir, info, model, o.unsafe_load, echo)
    if info["unsafe_load"]:
        echo(f"WARNING: {run_dir / contract.MODEL_FILE} holds code that safe mode refuses; every later command that "
             f"loads it (eval, export, verify) needs --unsafe-load too.")
    echo(f"{run_dir}: test top-1 {m['top1']:.4f}, top-5 {m['top5']:.4f}, macro-F1 {m['macro_f1']:.4f} "
         f"({len(ds.x_test)} images{'' if trained else '; FRESH weights, not trained: pass --epochs'})")
    return contract.load_run(run_dir)


def _keras_version(model) -> str:
    """The version of the Keras that builds ``model``: Keras 3's, or tf_keras's."""
    from edgecnn.models.keras3 import keras_module

    return str(keras_module(model).__version__)


def _write_run(run_dir: Path, info: dict, model, unsafe_load: bool, echo) -> None:
    """Write the run folder all or nothing (edgecnn.core.commit): model.keras and run.json into a
    staging folder beside it, renamed into place in one step under a lock on it. A run that is
    there is never replaced; a SIGKILL at any instant leaves no run or the whole run."""
    from edgecnn import contract
    from edgecnn.core import commit

    made = [p for p in (run_dir.parent, run_dir.parent.parent) if not p.exists()]
    try:
        with commit.locked(run_dir, echo=echo):
            if os.path.lexists(run_dir) and (not run_dir.is_dir() or any(run_dir.iterdir())):
                raise RunError(f"{run_dir} already exists; choose another --run-name.")
            with commit.staged(run_dir) as stage:
                saved = contract.save_model(stage, info, model)
                # What later stages need: an HDF5 model loaded with --unsafe-load is saved as a plain
                # .keras zip that loads safely; a Lambda or custom layer keeps needing --unsafe-load.
                refusal = contract.safe_load_refusal(saved) if unsafe_load else None
                info["unsafe_load"] = refusal is not None
                info["source"]["loaded_with_unsafe_load"] = bool(unsafe_load)
                if unsafe_load and refusal is None:
                    info["custom_objects"] = []
                contract.write_run(stage, info)
                commit.pause_point("import-staged")
                commit.swap_in(stage, run_dir)  # an empty folder of that name is exchanged, then removed
    except BaseException:
        for p in made:  # folders this import made and left empty
            try:
                p.rmdir()
            except OSError:
                pass
        raise


def _plain(name: str) -> str:
    """A file stem or Keras name as a plain run-model name (letters, digits, '.', '_', '+', '-')."""
    out = "".join(ch if ch.isalnum() or ch in "._+-" else "_" for ch in str(name)).lstrip("._+-")
    return out[:128] or "model"


def _scores(model, x_u8, spec, kind: str, where: str) -> np.ndarray:
    """Probabilities on the test images; a model said to give probabilities must really give them."""
    from edgecnn.data.preprocess import softmax
    from edgecnn.train.evaluate import predict

    out = predict(model, x_u8, spec)
    if not np.all(np.isfinite(out)):
        _refuse(where, "its outputs on the test images are not finite (NaN or inf); refused.")
    if kind == "logits":
        return softmax(out)
    sums = out.sum(axis=1)
    if np.any(out < -_PROB_TOL) or np.any(np.abs(sums - 1.0) > _PROB_TOL):
        worst = float(sums[np.argmax(np.abs(sums - 1.0))])
        _refuse(where, f"its outputs are not probabilities (a row sums to {worst:.4g}); if they are logits, "
                       f"pass --output-kind logits.")
    return out


def _sublayers(model) -> list:
    """Every layer of a model, nested models' included (tf_keras: submodules; Keras 3: _flatten_layers)."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False))
    return list(model.submodules)


def _fine_tune(model, ds, spec, kind: str, *, epochs: int, lr: float, batch_size: int, seed: int) -> dict:
    """Fit the model on the training split (validation on val); returns what run.json records."""
    from edgecnn.data.tfdata import make_dataset
    from edgecnn.models.keras3 import keras_module

    k = keras_module(model)  # a Keras 3 model is fitted with Keras 3, a tf_keras one with tf_keras
    k.utils.set_random_seed(seed)
    # Fit a copy, so that the model saved into the run carries no optimizer state (Adam's two
    # slots per weight would triple model.keras); a model that cannot be cloned is fitted itself.
    try:
        work = k.models.clone_model(model)
        work.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - subclassed models
        work = model
    bns = [layer for layer in _sublayers(work) if isinstance(layer, k.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in bns]
    for layer in bns:  # moving statistics that follow a short fine-tune (README: "A measured change")
        layer.momentum = min(layer.momentum, 0.9)
    work.compile(k.optimizers.Adam(lr),
                 k.losses.SparseCategoricalCrossentropy(from_logits=kind == "logits"), metrics=["accuracy"])
    train = make_dataset(ds.x_train, ds.y_train, spec, batch_size=batch_size, training=True, seed=seed)
    val = make_dataset(ds.x_val, ds.y_val, spec, batch_size=256) if len(ds.x_val) else None
    hist = work.fit(train, validation_data=val, epochs=epochs, verbose=2)
    for layer, mom in zip(bns, momenta):
        layer.momentum = mom
    if work is not model:
        model.set_weights(work.get_weights())
    last = {k: float(v[-1]) for k, v in hist.history.items()}
    return {"epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": "adam", "augment": None,
            "num_train": int(len(ds.x_train)), "last_epoch": last}
