"""Training: checkpoint/resume, tf.distribute, k-fold CV, writing a run directory.

``train(model_name, data=..., recipe=..., **overrides)`` writes ``runs/<model>/<run-name>/``:
run.json (the artifact contract, ``edgecnn.contract``), model.keras, checkpoints/ (a
``BackupAndRestore`` checkpoint of model + optimizer + epoch, rewritten after every epoch, and
state.json with the epoch, optimizer step and seed), history.csv, training_curves.png,
logs/ (TensorBoard), and for ``folds > 1`` folds.json. Recipes live in ``edgecnn.train.recipes``.

Multi-worker: ``strategy="multiworker"`` takes the cluster from ``TF_CONFIG`` (as Kubeflow's
TFJob and Ray Train's TensorflowTrainer set it). Every worker runs the same fit on its shard of
each global batch (tf.data ``AutoShardPolicy.DATA``: the arrays are in memory, there are no files
to split). Only the chief (task "chief", else worker 0) writes the run directory; the others keep
their history and state in a private temporary folder removed when they finish. Every worker
gets the run's ``checkpoints/backup`` as its ``BackupAndRestore`` folder because tf_keras
restores every worker from ``<backup>/chief`` (the chief's saves); a non-chief worker's saves go
to ``<backup>/workertemp_<i>``, which tf_keras deletes after each save. So resuming after a lost
worker needs the runs folder on storage all workers see (one machine, NFS, a shared volume).

Resume: ``train(resume=RUN)`` (``edgecnn train --resume RUN``), or the same command again with
the same ``--name``, rebuilds everything from run.json and continues from the last finished
epoch; a crash loses at most the epoch in progress. The data order and augmentation streams
restart from the seed on resume, so a resumed run matches an uninterrupted one within noise,
not bit for bit. TensorFlow is imported inside the functions.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import hashlib
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from edgecnn.errors import (RESOURCE_ERRNOS, InvalidConfigError, RunError, SystemResourceError, TrainingError,
                            system_error)
from edgecnn.core.files import atomic_write_json, atomic_write_text
from edgecnn.train.options import TrainOptions
from edgecnn.train.recipes import Recipe, get_recipe
from edgecnn.contract import (RUN_SCHEMA as SCHEMA, Run, dataset_kwargs, dataset_record, load_run, refuse_artifact,
                              resolve_run, run_dir_for, save_model, versions, write_run)

STRATEGIES = ("default", "mirrored", "multiworker")


def default_input_shape(model_name: str) -> Tuple[int, int, int]:
    from edgecnn.models.registry import get_entry

    p = inspect.signature(get_entry(model_name).builder).parameters.get("input_shape")
    return tuple(p.default) if p is not None and p.default is not inspect.Parameter.empty else (32, 32, 3)




# ---------------------------------------------------------------------------- TF pieces
def make_strategy(name: str = "default", *, cluster_timeout: Optional[float] = None):
    """tf.distribute strategy: 'default' mirrors over all GPUs when there are several.

    'multiworker' reads the cluster from TF_CONFIG, checked before TensorFlow is imported
    (``edgecnn.train.cluster``); without it this is a one-worker cluster. Creating the strategy
    waits for every task of the cluster, at most ``cluster_timeout`` seconds (default
    ``cluster.DEFAULT_TIMEOUT_S``): past it the job ends with one line naming the silent peers."""
    from edgecnn.train import cluster as clusters

    if name not in STRATEGIES:
        raise InvalidConfigError(f"Unknown strategy '{name}'; choose from: {', '.join(STRATEGIES)}.")
    spec = clusters.read_tf_config() if name == "multiworker" else None
    timeout = clusters.DEFAULT_TIMEOUT_S if cluster_timeout is None else cluster_timeout
    clusters.wait_for_peers(spec, timeout)  # before TensorFlow: its wait for them has no limit
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "mirrored" or (name == "default" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        try:
            with clusters.peers_deadline(spec, timeout):
                return tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.OpError as e:
            silent = spec.silent_peers() if spec is not None else []
            first = " ".join(str(e).split())[:160]
            raise TrainingError(f"the multi-worker cluster could not start ({first})"
                                f"{': no answer from ' + ', '.join(silent) if silent else ''}. Start every task "
                                f"with its own TF_CONFIG, then run the same command again.") from None
    return tf.distribute.get_strategy()


def cluster_info(strategy=None) -> Optional[dict]:
    """The cluster of a multi-worker job as this task sees it (from the checked TF_CONFIG), or None
    for one process: ``{"workers": N, "task": {"type": "worker", "index": 0}, "chief": True}``."""
    from edgecnn.train.cluster import read_tf_config

    if strategy is not None and getattr(strategy, "cluster_resolver", None) is None:
        return None
    spec = read_tf_config()
    return spec.info() if spec is not None else None


def weights_sha256(model) -> str:
    """sha256 over every weight array's bytes, in layer order: equal on workers that stayed in sync."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def shard_per_worker(ds):
    """``ds`` with tf.data's DATA auto-sharding: under a multi-worker strategy each worker takes its
    share of every global batch. In-memory arrays have no files to split (AUTO would try files
    first, then fall back with a warning)."""
    import tensorflow as tf

    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def _lr_schedule(r: Recipe, total_steps: int):
    import tf_keras

    if r.lr_schedule == "cosine":
        return tf_keras.optimizers.schedules.CosineDecay(r.lr, decay_steps=max(1, total_steps))
    if r.lr_schedule == "step":
        bounds = [max(1, int(round(b * total_steps))) for b in r.lr_boundaries]
        return tf_keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [r.lr * f for f in r.lr_factors])
    return r.lr


def _optimizer(r: Recipe, total_steps: int):
    import tf_keras

    lr = _lr_schedule(r, total_steps)
    if r.optimizer == "sgd":
        return tf_keras.optimizers.SGD(learning_rate=lr, momentum=r.momentum, nesterov=r.nesterov)
    if r.optimizer == "rmsprop":
        return tf_keras.optimizers.RMSprop(learning_rate=lr, momentum=r.momentum)
    return tf_keras.optimizers.Adam(learning_rate=lr)


def _add_l2(model, wd: float) -> None:
    import tensorflow as tf

    for layer in model.layers:
        for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            w = getattr(layer, attr, None)
            if w is not None:
                model.add_loss(lambda w=w: tf.cast(wd, w.dtype) * tf.reduce_sum(tf.square(w)))


def _build(model_name, model_kwargs, input_shape, num_classes):
    from edgecnn.models.registry import create_model

    return create_model(model_name, input_shape=tuple(input_shape), num_classes=num_classes, **model_kwargs)


def _callbacks_base():
    import tf_keras

    return tf_keras.callbacks.Callback


class _Progress:
    """Callbacks that keep run.json, checkpoints/state.json and history.csv current each epoch."""

    @staticmethod
    def make(run_dir: Path, ckpt_dir: Path, history_csv: Path, seed: int, on_epoch=None):
        Base = _callbacks_base()

        class Progress(Base):
            def __init__(self):
                super().__init__()
                self.rows = _read_history(history_csv)
                self.first_epoch = None

            def on_epoch_begin(self, epoch, logs=None):
                if self.first_epoch is None:
                    self.first_epoch = epoch
                    if on_epoch:
                        on_epoch("begin", epoch, None)
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                row = {"epoch": epoch}
                row.update({k: float(v) for k, v in (logs or {}).items()})
                opt = self.model.optimizer
                try:
                    row["lr"] = float(opt.learning_rate(opt.iterations)) if callable(opt.learning_rate) \
                        else float(opt.learning_rate)
                except Exception:  # schedules of other kinds: the LR is informational only
                    pass
                row["seconds"] = round(time.perf_counter() - self.t0, 3)
                self.rows = [r for r in self.rows if int(r["epoch"]) < epoch] + [row]
                _write_history(history_csv, self.rows)
                atomic_write_json(ckpt_dir / "state.json", {
                    "epoch": epoch + 1, "seed": seed, "optimizer_iterations": int(opt.iterations.numpy()),
                    "time": _now()})
                if on_epoch:
                    on_epoch("end", epoch, row)
                from edgecnn.core.commit import pause_point

                pause_point(f"train-epoch-{epoch + 1}")  # where the tests stop a real run (SIGKILL, disk full)

        return Progress()


def _read_history(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    import csv

    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]


def _write_history(path: Path, rows: List[dict]) -> None:
    keys: List[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = [",".join(keys)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else (str(int(r[k])) if k == "epoch" else repr(float(r[k])))
                              for k in keys))
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_history(history_csv: Path, out_png: Path, title: str = "") -> Optional[Path]:
    rows = _read_history(history_csv)
    if not rows:
        return None
    from edgecnn.core.plots import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        return None

    from matplotlib.ticker import MaxNLocator

    ep = [int(r["epoch"]) + 1 for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, ylabel in (("loss", a1, "cross-entropy loss"), ("accuracy", a2, "top-1 accuracy")):
        for prefix, style, what in (("", "-", "training"), ("val_", "--", "validation")):
            vals = [r.get(prefix + key) for r in rows]
            if any(v is not None for v in vals):
                ax.plot(ep, vals, style, marker="o", ms=3, label=what)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(ep) == 1:
            ax.set_xlim(ep[0] - 1, ep[0] + 1)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=90)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def stratified_kfold(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index (0..k-1) of every sample; each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % k
    return fold


# ---------------------------------------------------------------------------- the training loop
def _fit(*, model_name, model_kwargs, input_shape, num_classes, spec, recipe: Recipe, x_tr, y_tr, x_va, y_va,
         ckpt_dir: Path, history_csv: Path, log_dir: Optional[Path], seed: int, strategy, mixed_precision: bool,
         verbose: int, on_epoch=None, backup_dir: Optional[Path] = None):
    """Build, compile and fit one model with resumable checkpoints; returns the trained model."""
    import tensorflow as tf
    import tf_keras

    from edgecnn.data.tfdata import make_dataset

    tf_keras.utils.set_random_seed(seed)
    steps_per_epoch = max(1, math.ceil(len(x_tr) / recipe.batch_size))
    epochs = recipe.epochs if not recipe.total_steps else math.ceil(recipe.total_steps / steps_per_epoch)
    total_steps = recipe.total_steps or epochs * steps_per_epoch
    train_ds = make_dataset(x_tr, y_tr, spec, batch_size=recipe.batch_size, training=True,
                            augment=recipe.augment(), seed=seed)
    val_ds = make_dataset(x_va, y_va, spec, batch_size=max(recipe.batch_size, 256)) if len(x_va) else None
    train_ds = shard_per_worker(train_ds)
    val_ds = shard_per_worker(val_ds) if val_ds is not None else None
    if mixed_precision:
        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = _build(model_name, model_kwargs, input_shape, num_classes)
            if recipe.bn_momentum is not None:
                _set_bn_momentum(model, recipe.bn_momentum)
            if recipe.weight_decay:
                _add_l2(model, recipe.weight_decay)
            loss = tf_keras.losses.SparseCategoricalCrossentropy() if not recipe.label_smoothing else \
                _smoothed_loss(num_classes, recipe.label_smoothing)
            model.compile(optimizer=_optimizer(recipe, total_steps), loss=loss,
                          metrics=["accuracy", tf_keras.metrics.SparseTopKCategoricalAccuracy(
                              k=min(5, num_classes), name="top5")])
    finally:
        if mixed_precision:
            tf_keras.mixed_precision.set_global_policy("float32")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [tf_keras.callbacks.BackupAndRestore(str(backup_dir or ckpt_dir / "backup"), save_freq="epoch",
                                                     delete_checkpoint=False),
                 _Progress.make(history_csv.parent, ckpt_dir, history_csv, seed, on_epoch)]
    if log_dir is not None and _have_tensorboard():
        callbacks.append(tf_keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0))
    if recipe.early_stopping and val_ds is not None:
        callbacks.append(tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.early_stopping,
                                                          restore_best_weights=True))
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, verbose=verbose)
    # The saved model is the registry's own float32 build with the trained weights: no L2 closures,
    # no mixed-precision policy, nothing training-only.
    clean = _build(model_name, model_kwargs, input_shape, num_classes)
    clean.set_weights(model.get_weights())
    return clean, epochs


def _set_bn_momentum(model, momentum: float) -> None:
    import tf_keras

    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = momentum


def _have_tensorboard() -> bool:
    """tf.summary needs the tensorboard package (pip install tensorboard); without it, no logs/."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _smoothed_loss(num_classes: int, smoothing: float):
    import tensorflow as tf
    import tf_keras

    cce = tf_keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)

    def loss(y_true, y_pred):
        return cce(tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes), y_pred)

    return loss


def _check_mixed_precision(enabled: bool) -> None:
    if not enabled:
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise InvalidConfigError("--mixed-precision needs a GPU and none is visible here; it would only slow a CPU "
                                 "down. Drop the flag.")


def _read_run_info(run_dir: Path) -> dict:
    """run.json of a run being (re)started, validated like any run a later stage reads."""
    return load_run(run_dir).info


def train(model_name: Optional[str] = None, options: Optional[TrainOptions] = None, *, resume=None, echo=print,
          **overrides) -> Optional[Run]:
    """Train a registered model as ``options`` say (``TrainOptions``) and write its run directory;
    see the module docstring. ``resume``: a run to continue from its last checkpoint (its own
    configuration from its run.json).

    Returns the run; None on a multi-worker job's non-chief workers, which write no run.

    ``overrides``: ``TrainOptions`` fields (data, run_name, seed, ...) or Recipe knobs (epochs,
    batch_size, lr, optimizer, momentum, weight_decay, lr_schedule, early_stopping, crop_pad, flip,
    brightness, contrast, val_fraction, folds, ...).
    """
    from edgecnn.data.datasets import load_dataset

    o = TrainOptions.make(options, **overrides)
    if model_name:
        refuse_artifact(model_name, "train")
    if resume is not None:
        run_dir = resolve_run(resume, o.runs_dir)
        info = _read_run_info(run_dir)
        if model_name and model_name != info["model"]:
            raise RunError(f"{run_dir} is a run of '{info['model']}', not '{model_name}'.")
    else:
        if not model_name:
            raise InvalidConfigError("Name a model to train (see 'edgecnn models'), or pass --resume RUN.")
        from edgecnn.models.registry import get_entry

        get_entry(model_name)
        run_name = o.run_name or f"{o.recipe}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        run_dir = run_dir_for(model_name, run_name, o.runs_dir)
        info = _read_run_info(run_dir) if (run_dir / "run.json").exists() else None
        if info is not None and info.get("model") != model_name:
            raise RunError(f"{run_dir} is a run of '{info.get('model')}'; choose another --name.")
    if info is not None:
        if info.get("trained"):
            raise RunError(f"{run_dir} is already trained ({info.get('epochs_completed')} epochs); choose another "
                           f"--name to train again.")
        echo(f"Resuming {run_dir} from its last checkpoint (configuration from its run.json).")
        model_name = info["model"]
        rec = Recipe.from_dict(info["recipe"], f"{run_dir / 'run.json'}")
        kw = dataset_kwargs(info, run_dir)
        o = dataclasses.replace(o, seed=int(info["seed"]), model_kwargs=info.get("model_kwargs") or {},
                                input_shape=tuple(info["input_shape"]), data=kw.pop("source"),
                                mixed_precision=bool(info.get("mixed_precision", False)),
                                strategy=info.get("strategy", o.strategy))
    else:
        rec = get_recipe(o.recipe, **o.recipe_overrides)
        from edgecnn.models.registry import check_kwargs

        check_kwargs(model_name, dict(o.model_kwargs))
        o = dataclasses.replace(o, model_kwargs=dict(o.model_kwargs),
                                input_shape=tuple(int(v) for v in (o.input_shape or default_input_shape(model_name))))
        kw = dict(val_fraction=rec.val_fraction, seed=o.seed, max_train=o.max_train_images,
                  max_test=o.max_test_images, skip_bad=o.skip_bad_images, test_fraction=o.test_fraction)
    model_kwargs, input_shape, seed, data = o.model_kwargs, o.input_shape, o.seed, o.data
    if o.strategy == "multiworker":
        from edgecnn.train.cluster import read_tf_config

        read_tf_config()  # a TF_CONFIG edgecnn cannot run is refused before the data and TensorFlow
    _check_mixed_precision(o.mixed_precision)
    ds = load_dataset(data, input_shape, **kw)
    echo(f"data: {ds.describe()}")
    spec = ds.spec(input_shape)
    strat = make_strategy(o.strategy, cluster_timeout=o.cluster_timeout)
    cluster = cluster_info(strat) if o.strategy == "multiworker" else None
    if cluster is not None and rec.folds > 1:
        raise InvalidConfigError("--folds runs its folds one after the other in one process; drop --folds with "
                                 "--strategy multiworker.")
    if cluster is not None and not cluster["chief"]:
        return _train_worker(run_dir, cluster, rec=rec, ds=ds, spec=spec, strat=strat, model_name=model_name,
                             model_kwargs=model_kwargs, input_shape=input_shape, seed=seed,
                             mixed_precision=o.mixed_precision, verbose=o.verbose, echo=echo)

    new_run = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno in RESOURCE_ERRNOS:
            raise system_error(e) from None
        raise RunError(f"{run_dir}: cannot create the run folder ({e.strerror or e}).") from None
    try:
        return _train_chief(run_dir, info, o, rec=rec, ds=ds, strat=strat, cluster=cluster, model_name=model_name,
                            kw=kw, echo=echo)
    except Exception as e:
        failure = system_error(e)
        if failure is None:
            raise
        raise _kept_or_removed(run_dir, new_run, failure) from None


def _kept_or_removed(run_dir: Path, new_run: bool, failure: SystemResourceError) -> SystemResourceError:
    """After the operating system refused a write: a run with a checkpoint keeps it (and stays
    resumable; TensorFlow's half-written ``*_temp`` folders go, to give the space back); a new
    run that never had one is removed."""
    ckpts = run_dir / "checkpoints"
    good = any(p.name == "checkpoint" for p in ckpts.rglob("checkpoint")) if ckpts.is_dir() else False
    if new_run and not good:
        shutil.rmtree(run_dir, ignore_errors=True)
        return SystemResourceError(f"{failure.message} The new run had no checkpoint yet and was removed: "
                                   f"{run_dir}.")
    for tmp in list(ckpts.rglob("*_temp")) if ckpts.is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)
    done = 0
    try:
        done = int(load_run(run_dir).info.get("epochs_completed") or 0)
    except RunError:
        pass
    return SystemResourceError(f"{failure.message} The run keeps its last checkpoint ({done} epoch(s)); then "
                               f"continue with 'edgecnn train --resume {run_dir}'.")


def _train_chief(run_dir: Path, info: Optional[dict], o: TrainOptions, *, rec: Recipe, ds, strat, cluster,
                 model_name: str, kw: dict, echo) -> Run:
    """The chief's (or the only process's) part of ``train``: run.json, the fit, model.keras."""
    from edgecnn.train.evaluate import classification_metrics, predict

    model_kwargs, input_shape, seed, data = o.model_kwargs, o.input_shape, o.seed, o.data
    spec = ds.spec(input_shape)
    ckpt_dir = run_dir / "checkpoints"
    if info is None:
        info = {
            "schema": SCHEMA, "model": model_name, "model_kwargs": model_kwargs, "run_name": run_dir.name,
            "created": _now(),
            "dataset": dict(ds.info(), **dataset_record(data, run_dir), val_fraction=kw["val_fraction"],
                            test_fraction=kw["test_fraction"], max_train_images=kw["max_train"],
                            max_test_images=kw["max_test"], skip_bad_images=kw["skip_bad"]),
            "input_shape": list(input_shape), "num_classes": ds.num_classes, "labels": list(ds.labels),
            "preprocessing": spec.to_dict(), "recipe": rec.to_dict(), "seed": seed, "versions": versions(),
            "strategy": o.strategy, "mixed_precision": bool(o.mixed_precision), "command": " ".join(sys.argv),
            "trained": False, "epochs_completed": 0, "metrics": None, "history_csv": "history.csv",
        }
    elif info["dataset"].get("num_train") != len(ds.x_train) or info["labels"] != list(ds.labels):
        raise RunError(f"{run_dir}: the data under '{data}' changed since the run started "
                       f"({info['dataset'].get('num_train')} -> {len(ds.x_train)} training images); resume needs "
                       f"the same data, or start a new run.")
    info["num_replicas"] = int(strat.num_replicas_in_sync)
    if cluster is not None:
        info["cluster"] = {"workers": cluster["workers"], "task": cluster["task"]}
    write_run(run_dir, info)

    def on_epoch(kind, epoch, row, fold=None):
        if kind == "begin" and epoch > 0:
            info.setdefault("resumes", []).append({"from_epoch": int(epoch), "fold": fold, "time": _now()})
            echo(f"Resumed at epoch {epoch + 1} (epochs 1..{epoch} restored from {ckpt_dir}).")
        if kind == "end" and fold is None:
            info["epochs_completed"] = int(epoch) + 1
        write_run(run_dir, info)

    common = dict(model_name=model_name, model_kwargs=model_kwargs, input_shape=input_shape,
                  num_classes=ds.num_classes, spec=spec, seed=seed, strategy=strat,
                  mixed_precision=o.mixed_precision, verbose=o.verbose)
    t0 = time.perf_counter()
    try:
        if rec.folds > 1:
            info["cross_validation"] = _cross_validate(ds, rec, run_dir, common, on_epoch, echo)
            write_run(run_dir, info)
        model, epochs = _fit(recipe=rec, x_tr=ds.x_train, y_tr=ds.y_train, x_va=ds.x_val, y_va=ds.y_val,
                             ckpt_dir=ckpt_dir, history_csv=run_dir / "history.csv", log_dir=run_dir / "logs",
                             on_epoch=on_epoch, **common)
    except KeyboardInterrupt:
        raise TrainingError(f"Interrupted; {info['epochs_completed']} epoch(s) are checkpointed in {ckpt_dir}. "
                            f"Continue with 'edgecnn train --resume {run_dir}'.") from None
    except Exception as e:
        if cluster is None or not _is_op_error(e):
            raise
        raise _lost_peer(e, cluster, run_dir) from None
    train_seconds = time.perf_counter() - t0
    save_model(run_dir, info, model)
    if cluster is not None:
        info["cluster"]["weights_sha256"] = weights_sha256(model)
        echo(f"Chief ({cluster['workers']} workers): weights sha256 {info['cluster']['weights_sha256']}")
    scores = predict(model, ds.x_test, spec)
    m = classification_metrics(ds.y_test, scores, ds.labels)
    info["metrics"] = {k: m[k] for k in ("top1", "top5", "macro_f1")}
    info["per_class_accuracy"] = m["per_class_accuracy"]
    hist = _read_history(run_dir / "history.csv")
    info["epochs_completed"] = len(hist)
    info["epochs_planned"] = int(epochs)
    info["train_seconds_last_session"] = round(train_seconds, 1)
    info["trained"] = True
    info["finished"] = _now()
    plot_history(run_dir / "history.csv", run_dir / "training_curves.png", f"{model_name} ({rec.name})")
    write_run(run_dir, info)
    echo(f"{run_dir}: test top-1 {m['top1']:.4f}, top-5 {m['top5']:.4f}, macro-F1 {m['macro_f1']:.4f} "
         f"({len(ds.x_test)} images)")
    return load_run(run_dir)


def _is_op_error(e: BaseException) -> bool:
    import tensorflow as tf

    return isinstance(e, tf.errors.OpError)


def _lost_peer(e: BaseException, cluster: dict, run_dir: Path) -> TrainingError:
    """A collective op that failed because a worker of the cluster died or was unreachable."""
    import re

    text = re.sub(r"\{\{.*?\}\}\s*", "", str(e))  # TF's "{{function_node ...}}" prefix
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return TrainingError(
        f"The {cluster['workers']}-worker job stopped: {first[:240]}. Restart every worker with the same command "
        f"(same TF_CONFIG, --runs-dir and --name): they resume from the chief's last checkpoint in "
        f"{run_dir / 'checkpoints' / 'backup'}.")


def _train_worker(run_dir: Path, cluster: dict, *, rec: Recipe, ds, spec, strat, model_name, model_kwargs,
                  input_shape, seed, mixed_precision, verbose, echo) -> None:
    """A non-chief worker: the same fit as the chief, its history and state in a temporary folder
    (TMPDIR) removed at the end; nothing of its own in the run folder. Its BackupAndRestore folder
    is the chief's (tf_keras restores every worker from the chief's saves and writes a non-chief's
    into ``workertemp_<i>`` beside them, deleted after each save). Returns None."""
    task = cluster["task"]
    backup = run_dir / "checkpoints" / "backup"
    # On a machine without the chief's storage, tf_keras creates the backup path for its temporary
    # saves: remove the folders it made (empty ones only) when done.
    made = [p for p in (backup, *backup.parents) if not p.exists() and run_dir.parent.parent in p.parents]
    # One name per run and task: a restarted worker removes what a killed one left.
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    work = Path(tempfile.gettempdir()) / f"edgecnn-{run_dir.name}-{key}-{task['type']}{task['index']}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        model, _ = _fit(recipe=rec, x_tr=ds.x_train, y_tr=ds.y_train, x_va=ds.x_val, y_va=ds.y_val,
                        ckpt_dir=work / "checkpoints", history_csv=work / "history.csv", log_dir=None,
                        backup_dir=backup, model_name=model_name, model_kwargs=model_kwargs,
                        input_shape=input_shape, num_classes=ds.num_classes, spec=spec, seed=seed, strategy=strat,
                        mixed_precision=mixed_precision, verbose=verbose)
    except KeyboardInterrupt:
        raise TrainingError(f"Interrupted; the chief's checkpoints in {backup} are where the job resumes from.") \
            from None
    except Exception as e:
        if not _is_op_error(e):
            raise
        raise _lost_peer(e, cluster, run_dir) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(backup / f"workertemp_{task['index']}", ignore_errors=True)
        for p in made:
            try:
                p.rmdir()
            except OSError:
                pass
    echo(f"Worker {task['type']}:{task['index']} of {cluster['workers']} done: weights sha256 "
         f"{weights_sha256(model)}; the chief writes {run_dir}.")
    return None


def _read_folds(path: Path, folds: int) -> List[dict]:
    """The folds a resumed cross-validation already finished (folds.json, untrusted like run.json)."""
    from edgecnn.contract.checks import Int, ListOf, Num, Obj, read_checked

    fold = Obj({"fold": Int(0, folds - 1), "num_train": Int(0), "num_eval": Int(0), "top1": Num(0, 1),
                "top5": Num(0, 1), "macro_f1": Num(0, 1)})
    done = read_checked(path, Obj({"per_fold": ListOf(fold, max_len=folds)}, extra=True), "folds file",
                        RunError)["per_fold"]
    if [d["fold"] for d in done] != list(range(len(done))):
        raise RunError(f"{path}: 'per_fold' must list folds 0, 1, ... in order; the file is damaged. Remove it "
                       f"to run the cross-validation again.")
    return done


def _cross_validate(ds, rec: Recipe, run_dir: Path, common: dict, on_epoch, echo) -> dict:
    """Stratified k-fold over train+val; per-fold metrics on the held-out fold, then mean and std."""
    from edgecnn.train.evaluate import classification_metrics, predict

    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    fold_of = stratified_kfold(y, rec.folds, common["seed"])
    folds_json = run_dir / "folds.json"
    done = _read_folds(folds_json, rec.folds) if folds_json.is_file() else []
    for k in range(len(done), rec.folds):
        echo(f"Fold {k + 1}/{rec.folds}")
        tr, te = fold_of != k, fold_of == k
        model, _ = _fit(recipe=dataclasses.replace(rec, early_stopping=0), x_tr=x[tr], y_tr=y[tr],
                        x_va=x[:0], y_va=y[:0], ckpt_dir=run_dir / "checkpoints" / f"fold{k}",
                        history_csv=run_dir / f"history_fold{k}.csv", log_dir=None,
                        on_epoch=lambda kind, e, row, k=k: on_epoch(kind, e, row, fold=k), **common)
        m = classification_metrics(y[te], predict(model, x[te], common["spec"]), ds.labels)
        done.append({"fold": k, "num_train": int(tr.sum()), "num_eval": int(te.sum()),
                     **{n: m[n] for n in ("top1", "top5", "macro_f1")}})
        atomic_write_json(folds_json, {"folds": rec.folds, "per_fold": done})
    keys = ("top1", "top5", "macro_f1")
    out = {"folds": rec.folds, "per_fold": done,
           "mean": {n: float(np.mean([d[n] for d in done])) for n in keys},
           "std": {n: float(np.std([d[n] for d in done])) for n in keys}}
    atomic_write_json(folds_json, out)
    echo("Cross-validation: " + ", ".join(f"{n} {out['mean'][n]:.4f} +- {out['std'][n]:.4f}" for n in keys))
    return out
