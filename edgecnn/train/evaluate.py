"""Evaluation: metrics in plain numpy (reused by export verification) and ``evaluate_run``.

``edgecnn eval RUN`` reports top-1, top-5, macro-F1 and per-class accuracy on the run's test split
(or ``--data``/``--split``), and writes ``eval[_<data>_<split>].json`` and a confusion-matrix PNG
into the run. ``edgecnn eval FILE.tflite|FILE.onnx`` evaluates that artifact on its runtime
(``evaluate_artifact``), with the labels and preprocessing of the manifest beside it, on ``--data``
or on the held-out split the manifest records; it writes nothing and needs no TensorFlow.

Macro-F1 averages the per-class F1 over the classes present in the labels or the predictions
(scikit-learn's ``f1_score(average="macro")`` without ``labels=``); a class with no true and no
predicted samples does not count.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

# eval.json holds the confusion matrix, and the PNG draws it, up to this many classes: beyond, the
# matrix grows with the square of the class count (10,000 classes: 100 M cells, 4.9 GiB as JSON
# lists) and no one reads it; the per-class accuracy (one number per class) is always there.
MAX_CONFUSION_CLASSES = 100


def _pred(scores_or_pred) -> np.ndarray:
    a = np.asarray(scores_or_pred)
    return a.argmax(axis=-1) if a.ndim == 2 else a.astype(np.int64)


def _rows(n_classes: int) -> int:
    """Rows of an (N, classes) score matrix handled at once (a share of the memory budget)."""
    from edgecnn.data.limits import chunk_rows

    return chunk_rows(16 * max(1, n_classes))


def _rank_of_true(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Each row's true class position when its scores are sorted high to low, ties by the lower
    index first (a stable sort of -scores; NaN last), without sorting: O(classes) per row."""
    idx = np.arange(s.shape[1])
    sy = s[np.arange(len(y)), y][:, None]
    nan_y = np.isnan(sy[:, 0])
    rank = (s > sy).sum(axis=1) + ((s == sy) & (idx[None, :] < y[:, None])).sum(axis=1)
    if nan_y.any():  # a NaN true score sorts after every number, among NaNs by index
        nan_s = np.isnan(s[nan_y])
        rank[nan_y] = (~nan_s).sum(axis=1) + (nan_s & (idx[None, :] < y[nan_y][:, None])).sum(axis=1)
    return rank


def top_k_accuracy(y_true, scores, k: int = 1) -> float:
    """Fraction of rows whose true label is among the k highest scores (ties: lower index first)."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores)
    if s.ndim != 2 or len(s) != len(y):
        raise ValueError(f"scores must be (N, classes) with N={len(y)}; got {s.shape}")
    if len(y) == 0:
        return float("nan")
    step = _rows(s.shape[1])
    hits = sum(int((_rank_of_true(y[i:i + step], np.asarray(s[i:i + step], np.float64)) < k).sum())
               for i in range(0, len(y), step))
    return hits / len(y)


def confusion_matrix(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """cm[i, j] = number of samples of true class i predicted as j. ``y_pred`` may be scores.
    Its classes x classes cells go through the memory budget first."""
    from edgecnn.data.limits import check_memory

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = _pred(y_pred).ravel()
    n = num_classes or int(max(y.max(initial=-1), p.max(initial=-1)) + 1)
    check_memory(8 * n * n, f"a confusion matrix of {n:,} classes")
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (diagonal / row sum); NaN for classes with no samples."""
    cm = np.asarray(cm, np.float64)
    return _recall(np.diag(cm), cm.sum(axis=1))


def _recall(tp: np.ndarray, support: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, tp / support, np.nan)


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, np.float64)
    return _f1(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1))


def _f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    denom = predicted + support  # 2tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def _counts(y: np.ndarray, p: np.ndarray, n: int):
    """(true positives, predictions, support) per class: O(samples + classes), no matrix."""
    tp = np.bincount(y[y == p], minlength=n)[:n].astype(np.float64)
    return tp, np.bincount(p, minlength=n)[:n].astype(np.float64), np.bincount(y, minlength=n)[:n].astype(np.float64)


def macro_f1(y_true, y_pred, num_classes: Optional[int] = None) -> float:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = _pred(y_pred).ravel()
    n = num_classes or int(max(y.max(initial=-1), p.max(initial=-1)) + 1)
    f1 = _f1(*_counts(y, p, n))
    present = ~np.isnan(f1)
    return float(f1[present].mean()) if present.any() else float("nan")


def classification_metrics(y_true, scores, labels: Optional[Sequence[str]] = None) -> Dict:
    """top1, top5, macro_f1, per_class_accuracy {label: acc}, confusion_matrix (lists; None beyond
    MAX_CONFUSION_CLASSES classes). Memory and time grow linearly with the class count."""
    s = np.asarray(scores)
    n = s.shape[1]
    y = np.asarray(y_true).astype(np.int64).ravel()
    step = _rows(n)
    p = np.concatenate([s[i:i + step].argmax(axis=1) for i in range(0, len(s), step)]) if len(s) else \
        np.zeros(0, np.int64)
    tp, predicted, support = _counts(y, p, n)
    f1 = _f1(tp, predicted, support)
    present = ~np.isnan(f1)
    names = list(labels) if labels else [str(i) for i in range(n)]
    pca = _recall(tp, support)
    out = {"top1": top_k_accuracy(y, s, 1), "top5": top_k_accuracy(y, s, 5),
           "macro_f1": float(f1[present].mean()) if present.any() else float("nan"), "num_samples": int(len(s)),
           "per_class_accuracy": {names[i]: (None if np.isnan(v) else float(v)) for i, v in enumerate(pca)},
           "confusion_matrix": confusion_matrix(y, p, n).tolist() if n <= MAX_CONFUSION_CLASSES else None}
    if out["confusion_matrix"] is None:
        out["confusion_matrix_note"] = (f"not kept: {n:,} classes, more than the {MAX_CONFUSION_CLASSES} a "
                                        f"confusion matrix is kept and drawn for")
    return out


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], path, title: str = "") -> Path:
    from edgecnn.core.plots import pyplot, save_figure

    plt = pyplot()

    cm = np.asarray(cm)
    n = len(cm)
    size = min(4 + 0.45 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def predict(model, x_u8: np.ndarray, spec, batch_size: int = 256) -> np.ndarray:
    """Softmax scores of a tf_keras model on uint8 images, through the evaluation pipeline, in
    chunks: a chunk's images at their pre-crop size and as float32 model inputs take at most a share
    of the memory budget (a 4096x4096 input is a few images per chunk, not every image at once), and
    the (images, classes) scores go through the budget before the first chunk runs."""
    from edgecnn.data.limits import check_memory, chunk_rows
    from edgecnn.data.tfdata import make_dataset, precrop_size

    x_u8 = np.asarray(x_u8)
    n_out = int(model.outputs[0].shape[-1]) if getattr(model, "outputs", None) else 1
    check_memory(4 * len(x_u8) * n_out, f"the scores of {len(x_u8):,} images for {n_out:,} classes")
    h, w = (x_u8.shape[1:3] if x_u8.ndim >= 3 else spec.input_size)
    ph, pw = precrop_size((h, w), spec)
    th, tw = spec.input_size
    step = chunk_rows(ph * pw * spec.channels + 4 * th * tw * spec.channels + 4 * n_out)
    parts = []
    for i in range(0, len(x_u8), step):
        part = x_u8[i:i + step]
        ds = make_dataset(part, np.zeros(len(part), np.int64), spec, batch_size=min(batch_size, step), training=False)
        parts.append(np.asarray(model.predict(ds.map(lambda a, b: a), verbose=0), np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, n_out), np.float32)


def evaluate_run(run, data: Optional[str] = None, split: str = "test", *, batch_size: int = 256,
                 max_images: Optional[int] = None, write: bool = True, unsafe_load: bool = False) -> Dict:
    """Evaluate a run (path or ``edgecnn.contract.Run``) on its own test split or another dataset."""
    from edgecnn.data.datasets import load_dataset
    from edgecnn.errors import DataError
    from edgecnn.core.files import atomic_write_json
    from edgecnn.contract import dataset_kwargs, load_run

    run = load_run(run) if not hasattr(run, "info") else run
    info = run.info
    if data:
        source, kw = data, {"seed": info.get("seed", 0)}
    else:
        kw = dataset_kwargs(info, run.path)
        source = kw.pop("source")
    if max_images:
        kw["max_test" if split == "test" else "max_train"] = max_images
    ds = load_dataset(source, tuple(info["input_shape"]), **kw)
    if ds.num_classes != run.num_classes:
        raise DataError(f"{source}: {ds.num_classes} classes, but the run's model has {run.num_classes}; "
                        f"evaluate on a dataset with the same classes.")
    x, y = ds.split_arrays(split)
    if len(x) == 0:
        raise DataError(f"{source}: the {split} split is empty.")
    model = run.load_model(unsafe=unsafe_load)
    scores = predict(model, x, run.spec, batch_size)
    m = classification_metrics(y, scores, run.labels)
    m.update({"dataset": ds.info(), "split": split, "run": str(run.path)})
    if write:
        tag = "" if data is None and split == "test" else f"_{_slug(ds.name)}_{split}"
        atomic_write_json(run.path / f"eval{tag}.json", m)
        if m["confusion_matrix"] is not None:
            png = plot_confusion_matrix(np.asarray(m["confusion_matrix"]), run.labels,
                                        run.path / f"confusion_matrix{tag}.png",
                                        f"{run.model_name} on {ds.name} {split}: top-1 {m['top1']:.3f}")
            m["confusion_matrix_png"] = str(png)
    return m


def evaluate_artifact(path, data: Optional[str] = None, split: str = "test", *, max_images: Optional[int] = None,
                      backend: str = "auto", threads: int = 1) -> Dict:
    """Top-1, top-5, macro-F1 and per-class accuracy of one exported artifact (.tflite or .onnx)
    on its runtime, with the labels and preprocessing of the manifest beside it. ``data``: another
    dataset with the same class names (renumbered to the manifest's label order), split as the
    export's own record says (seed, fractions); default: the held-out split the manifest records."""
    from edgecnn import contract
    from edgecnn.data.datasets import load_dataset
    from edgecnn.data.preprocess import PreprocessSpec, preprocess, softmax
    from edgecnn.errors import DataError, ModelFileError
    from edgecnn.measure import runtime

    r = contract.resolve(path, error=ModelFileError)
    if r.artifact is None or r.manifest is None:
        raise ModelFileError(f"No manifest.json beside {path}: the labels and preprocessing of an artifact come from "
                             f"the manifest 'edgecnn export' writes; copy it beside the file.")
    m, name = r.manifest, r.artifact.name
    entry = m["artifacts"][name]
    file = contract.artifact_path(r.export_dir, m, name)  # size and sha256 checked
    spec = PreprocessSpec.from_dict(m["preprocessing"])
    shape = (*spec.input_size, spec.channels)
    if data is None:
        kw = contract.manifest_dataset(m, r.export_dir)
        if kw is None:
            raise DataError(f"{r.export_dir / contract.MANIFEST} records no held-out dataset; give one with --data "
                            f"PATH.")
        source = kw.pop("source")
    else:
        rec = m.get("dataset") or {}
        source, kw = data, {"seed": rec.get("seed") or 0}
        kw.update({k: rec[k] for k in ("val_fraction", "test_fraction") if rec.get(k) is not None})
    kw.setdefault("classes", list(m["labels"]))
    if max_images:
        kw["max_test" if split == "test" else "max_train"] = max_images
    ds = load_dataset(source, shape, **kw)
    x, y = ds.split_arrays(split)
    if len(x) == 0:
        raise DataError(f"{source}: the {split} split is empty.")
    runner = runtime.load(file, backend=backend, threads=threads)
    contract.check_loaded_tensors(runner.inputs, runner.outputs, entry, str(file))
    out = runner.run(preprocess(x, spec), batch_size=100 if getattr(runner, "_dynamic_batch", False) else None)
    scores = out if entry.get("output_kind", "probabilities") == "probabilities" else softmax(out)
    res = classification_metrics(y, scores, m["labels"])
    res.update({"dataset": ds.info(), "split": split, "artifact": str(file), "run": f"{file} ({runner.backend})",
                "verified": bool(entry["verified"]), "trained": bool(m["trained"])})
    return res


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)


def format_report(m: Dict) -> str:
    from edgecnn.core.text import shown

    lines = [f"{shown(m.get('run', ''))}: {shown(m['dataset']['name'])} {m['split']} ({m['num_samples']} images)",
             f"  top-1 {m['top1']:.4f}   top-5 {m['top5']:.4f}   macro-F1 {m['macro_f1']:.4f}", "  per class:"]
    for name, acc in m["per_class_accuracy"].items():
        lines.append(f"    {shown(name, 60):<20} {'-' if acc is None else f'{acc:.3f}'}")
    if "confusion_matrix_png" in m:
        lines.append(f"  confusion matrix: {m['confusion_matrix_png']}")
    elif m.get("confusion_matrix_note"):
        lines.append(f"  confusion matrix {m['confusion_matrix_note']}")
    return "\n".join(lines)
