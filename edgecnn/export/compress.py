"""Compression before export, with TFMOT: magnitude pruning, weight clustering, quantization-aware
training (``edgecnn export --prune/--cluster/--qat``).

Each method wraps the model *per layer* (``tf_keras.models.clone_model`` + ``clone_function``)
rather than handing the whole model to TFMOT, because TFMOT refuses a whole model that holds one
layer it has no registry entry for (PReLU, in every QuickNet). Layers with weights that a method
cannot touch stay dense, and the report says which and why. Steps run in the order
prune -> cluster -> QAT; a later step preserves what an earlier one did (sparsity-preserving
clustering, prune/cluster-preserving QAT, TFMOT's "collaborative optimization").

What the TFLite int8 converter does with the result (measured with TF 2.21 / TFMOT 0.8.1):

- Pruned or clustered models are ordinary float Keras models once stripped; zeros and shared
  values survive int8 conversion and show up in the *zipped* file size only (TFLite does not
  store sparse or palettized tensors by default).
- A QAT model converted with ``Optimize.DEFAULT`` alone keeps every layer TFMOT could not
  annotate (PReLU) in float, between DEQUANTIZE and QUANTIZE ops. With a
  ``representative_dataset`` as well, the converter calibrates those layers and the whole graph
  is int8 (also with ``supported_ops=[TFLITE_BUILTINS_INT8]`` and int8 input/output): the QAT
  ranges are kept where they exist and the calibrated ones fill the gaps. So: give the converter
  representative data for a QAT QuickNet. A custom ``QuantizeConfig`` for PReLU (fake-quant on
  ``alpha`` and on the output) does *not* help: Keras computes PReLU as
  ``relu(x) - alpha * relu(-x)``, the converter fuses that into PRELU, and the negated fake-quant
  alpha is no longer a quantized operand, so PRELU stays float.

The measurements in the report (sizes, top-1, sparsity, the int8 TFLite of a result) are
``edgecnn.export.compress_report``'s.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from edgecnn.core import progress
from edgecnn.core.options import Options
from edgecnn.errors import ExportError, InvalidConfigError
from edgecnn.export.compress_report import (accuracy, int8_measure, kernel_sparsity, unique_weights,  # noqa: F401
                                            weights_of, zipped_size)

CENTROID_INITS = ("KMEANS_PLUS_PLUS", "LINEAR")
_PRUNE_END_FRACTION = 0.7  # reach the target sparsity at 70% of the steps, fine-tune the rest


# ----------------------------------------------------------------------------- validation

def check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not (0.0 < float(sparsity) < 1.0):
        raise InvalidConfigError(f"--prune: sparsity must be a number strictly between 0 and 1. Received `sparsity={sparsity!r}`.")
    return float(sparsity)


def check_clusters(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (2 <= int(k) <= 256):
        raise InvalidConfigError(f"--cluster: the number of clusters must be an integer from 2 to 256. Received `cluster={k!r}`.")
    return int(k)


def check_centroid_init(init: str) -> str:
    name = str(init).upper()
    if name not in CENTROID_INITS:
        raise InvalidConfigError(f"centroid init must be one of {', '.join(CENTROID_INITS)}. Received `cluster_init={init!r}`.")
    return name


# ----------------------------------------------------------------------------- helpers

_WEIGHT_ATTRS = ("kernel", "pointwise_kernel", "depthwise_kernel", "embeddings", "alpha")


def _attr_names(layer, variables) -> List[str]:
    """Which of the usual weight attributes of ``layer`` the given variables are."""
    ids = {id(v) for v in variables}
    return [a for a in _WEIGHT_ATTRS if id(getattr(layer, a, None)) in ids]


def _copy_model(model):
    """A deep copy with fresh layers: TFMOT's wrappers share the layer objects they wrap, and
    fine-tuning must not change the caller's model."""
    import tf_keras

    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _fresh_built_copy(layer):
    """An unconnected copy of ``layer``, built, to ask a TFMOT registry about its weights."""
    copy = layer.__class__.from_config(layer.get_config())
    copy.build(layer.input_shape)
    return copy


def _prunable_weight_names(layer) -> Tuple[List[str], Optional[str]]:
    """(weights TFMOT would prune, None) or ([], why not)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prunable_layer, prune_registry

    if isinstance(layer, prunable_layer.PrunableLayer):
        return _attr_names(layer, layer.get_prunable_weights()), None
    if not prune_registry.PruneRegistry.supports(layer):
        return [], f"no TFMOT pruning registry entry for {type(layer).__name__} (not a PrunableLayer)"
    copy = prune_registry.PruneRegistry.make_prunable(_fresh_built_copy(layer))
    names = _attr_names(copy, copy.get_prunable_weights())
    if not names:
        return [], f"TFMOT's pruning registry prunes no weights of {type(layer).__name__}"
    return names, None


def _clusterable_weights(layer, k: int) -> Tuple[List[str], Optional[str]]:
    """(weights TFMOT would cluster, None) or ([], why not)."""
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry

    if isinstance(layer, clusterable_layer.ClusterableLayer):
        return [n for n, _ in layer.get_clusterable_weights()], None
    reg = clustering_registry.ClusteringRegistry
    if not reg.supports(layer):
        return [], f"no TFMOT clustering registry entry for {type(layer).__name__} (not a ClusterableLayer)"
    copy = reg.make_clusterable(_fresh_built_copy(layer))
    pairs = copy.get_clusterable_weights()
    n = sum(int(np.prod(w.shape)) for _, w in pairs)
    if n == 0:
        return [], f"TFMOT's clustering registry clusters no weights of {type(layer).__name__}"
    if n <= k:  # TFMOT itself silently skips such a Conv2D
        return [], f"{n} clusterable weights, not more than the {k} clusters"
    return [name for name, _ in pairs], None


def _untouched_kernels(layer, touched, verb) -> List[dict]:
    """Kernels of a wrapped layer that TFMOT leaves alone (SeparableConv2D's depthwise_kernel)."""
    kept = [a for a in _WEIGHT_ATTRS[:4] if a not in touched and getattr(layer, a, None) is not None]
    return [{"layer": layer.name, "weight": a,
             "reason": f"TFMOT {verb} only {', '.join(touched)} of {type(layer).__name__}; {a} stays dense"}
            for a in kept]


def _has_weights(layer) -> bool:
    return bool(layer.weights)


def _is_input(layer) -> bool:
    import tf_keras

    return isinstance(layer, tf_keras.layers.InputLayer)


def _fit(model, train_data, *, epochs, batch_size, learning_rate, callbacks=(), label="fine-tuning"):
    import tf_keras

    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    x, y = train_data
    with progress.bar(length=epochs * math.ceil(len(x) / batch_size), label=label) as bar:
        step = tf_keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: bar.update(1))
        model.fit(x, np.asarray(y).reshape(-1), epochs=epochs, batch_size=batch_size, verbose=0,
                  callbacks=[*callbacks, step], shuffle=True)


def _steps(n: int, batch_size: int, epochs: int) -> int:
    return max(1, math.ceil(n / batch_size)) * epochs


def _check_data(name, data):
    try:
        x, y = data
        x = np.asarray(x)
        y = np.asarray(y).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidConfigError(f"{name} must be a pair (x_float, y_int).") from None
    if len(x) == 0 or len(x) != len(y):
        raise InvalidConfigError(f"{name} must be a non-empty pair (x, y) of equal length; got {len(x)} images and {len(y)} labels.")
    return x, y


# ----------------------------------------------------------------------------- the three methods

def prune_model(model, sparsity: float, *, train_data, epochs: int = 2, batch_size: int = 64,
                learning_rate: float = 1e-4):
    """Magnitude pruning to ``sparsity`` with a polynomial-decay schedule, fine-tuned, stripped.

    Returns (stripped tf_keras model, step report).
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sparsity = check_sparsity(sparsity)
    sk = tfmot.sparsity.keras
    total = _steps(len(train_data[0]), batch_size, epochs)
    if total >= 2:
        end = max(1, int(_PRUNE_END_FRACTION * (total - 1)))
        freq = max(1, min(100, end // 10))
        end = max(freq, end // freq * freq)  # a pruning step falls exactly on end_step
        schedule = sk.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                      end_step=end, frequency=freq)
        sched_desc = {"schedule": "PolynomialDecay", "begin_step": 0, "end_step": end, "frequency": freq}
    else:  # one step: nothing to decay over
        schedule = sk.ConstantSparsity(sparsity, begin_step=0, frequency=1)
        sched_desc = {"schedule": "ConstantSparsity", "begin_step": 0, "frequency": 1}

    base = _copy_model(model)
    targets, dense = {}, []
    for layer in base.layers:
        if _is_input(layer) or not _has_weights(layer):
            continue
        names, why = _prunable_weight_names(layer)
        if why:
            dense.append({"layer": layer.name, "reason": why})
        else:
            targets[layer.name] = names
            dense.extend(_untouched_kernels(layer, names, "prunes"))

    def wrap(layer):
        if layer.name in targets:
            return sk.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    with sk.prune_scope():
        pruned = tf_keras.models.clone_model(base, clone_function=wrap)
    _fit(pruned, train_data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, label="pruning",
         callbacks=[sk.UpdatePruningStep()])
    stripped = sk.strip_pruning(pruned)
    per_layer = kernel_sparsity(stripped, targets)
    sizes = {n: sum(w.size for w in weights_of(stripped.get_layer(n), a)) for n, a in targets.items()}
    n_zero = sum(per_layer[n] * sizes[n] for n in per_layer)
    n_all = sum(sizes.values())
    step = {
        "method": "prune",
        "params": {"target_sparsity": sparsity, **sched_desc, "epochs": epochs, "batch_size": batch_size,
                   "learning_rate": learning_rate},
        "layers_wrapped": list(targets),
        "weights_pruned": targets,
        "layers_left_dense": dense,
        "sparsity_achieved": {"overall": (n_zero / n_all) if n_all else 0.0, "per_layer": per_layer},
    }
    return stripped, step


def cluster_model(model, clusters: int, *, train_data, init: str = "KMEANS_PLUS_PLUS",
                  preserve_sparsity: bool = False, epochs: int = 2, batch_size: int = 64,
                  learning_rate: float = 1e-4):
    """Weight clustering to ``clusters`` shared values per kernel, fine-tuned, stripped."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    k = check_clusters(clusters)
    init = check_centroid_init(init)
    ck = tfmot.clustering.keras
    base = _copy_model(model)
    targets, dense = {}, []
    for layer in base.layers:
        if _is_input(layer) or not _has_weights(layer):
            continue
        names, why = _clusterable_weights(layer, k)
        if why:
            dense.append({"layer": layer.name, "reason": why})
        else:
            targets[layer.name] = names
            dense.extend(_untouched_kernels(layer, names, "clusters"))

    params = {"number_of_clusters": k, "cluster_centroids_init": getattr(ck.CentroidInitialization, init),
              "preserve_sparsity": bool(preserve_sparsity)}

    def wrap(layer):
        if layer.name in targets:
            return ck.cluster_weights(layer, **params)
        return layer

    with ck.cluster_scope():
        clustered = tf_keras.models.clone_model(base, clone_function=wrap)
    _fit(clustered, train_data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
         label="clustering")
    stripped = ck.strip_clustering(clustered)
    step = {
        "method": "cluster",
        "params": {"clusters": k, "centroid_init": init, "preserve_sparsity": bool(preserve_sparsity),
                   "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate},
        "layers_wrapped": list(targets),
        "weights_clustered": targets,
        "layers_left_dense": dense,
        "unique_weights_per_layer": unique_weights(stripped, targets),
    }
    return stripped, step


_FOLDED_BY_TRANSFORMS = ("BatchNormalization", "SeparableConv2D", "SeparableConv1D")


def quantize_aware_model(model, *, train_data, preserve: Optional[str] = None, epochs: int = 2,
                         batch_size: int = 64, learning_rate: float = 1e-4):
    """Quantization-aware fine-tuning (8-bit, TFMOT's default scheme), annotated per layer.

    ``preserve`` = "prune", "cluster" or "prune+cluster" keeps an earlier step's zeros / shared
    values through QAT (TFMOT's collaborative-optimization schemes). Returns the quantize-aware
    model, which the TFLite converter turns into int8 (give it a representative dataset too, so
    that the layers left unannotated — PReLU — get int8 ranges).
    """
    import tensorflow_model_optimization as tfmot
    import tf_keras

    qk = tfmot.quantization.keras
    registry = qk.default_8bit.Default8BitQuantizeRegistry()
    if preserve is None:
        scheme = qk.default_8bit.Default8BitQuantizeScheme()
    elif preserve == "prune":
        scheme = qk.collab_opts.Default8BitPrunePreserveQuantizeScheme()
    elif preserve in ("cluster", "prune+cluster"):
        # Not exported by tfmot 0.8.1's public API; the class itself is stable since 0.6.
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
            default_8bit_cluster_preserve_quantize_scheme as cqat)

        scheme = cqat.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=preserve == "prune+cluster")
    else:
        raise InvalidConfigError(f"QAT: preserve must be None, 'prune', 'cluster' or 'prune+cluster'. Received `preserve={preserve!r}`.")

    base = _copy_model(model)
    skip: Dict[str, str] = {}
    for layer in base.layers:
        if _is_input(layer) or isinstance(layer, tf_keras.Model):
            continue
        if not registry.supports(layer) and type(layer).__name__ not in _FOLDED_BY_TRANSFORMS:
            skip[layer.name] = (f"no QuantizeConfig for {type(layer).__name__} in TFMOT's default 8-bit registry; "
                                "left float in the QAT graph, the TFLite converter quantizes it from its "
                                "representative_dataset")

    # BatchNormalization and SeparableConv are only quantizable where a transform folds or splits
    # them (BN after Conv/Dense); TFMOT says which layer it cannot place, so drop that one and retry.
    for _ in range(len(base.layers) + 1):
        def annotate(layer):
            if layer.name in skip or _is_input(layer):
                return layer
            return qk.quantize_annotate_layer(layer)

        annotated = tf_keras.models.clone_model(base, clone_function=annotate)
        try:
            with qk.quantize_scope():
                qat = qk.quantize_apply(annotated, scheme)
            break
        except RuntimeError as e:
            name = _unsupported_layer_name(str(e))
            if name is None or name in skip or name not in {l.name for l in base.layers}:
                raise ExportError(f"QAT: TFMOT could not quantize the model: {str(e).splitlines()[0]}") from None
            skip[name] = f"TFMOT's quantize_apply cannot place it ({type(base.get_layer(name)).__name__} not folded); left float"
    else:  # pragma: no cover - bounded by the number of layers
        raise ExportError("QAT: TFMOT kept refusing layers; giving up.")

    _fit(qat, train_data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
         label="quantization-aware training")
    wrapped = [l.layer.name for l in qat.layers if hasattr(l, "quantize_config") and getattr(l, "layer", None) is not None]
    dense = [{"layer": n, "reason": r} for n, r in skip.items()]
    step = {
        "method": "qat",
        "params": {"scheme": type(scheme).__name__, "epochs": epochs, "batch_size": batch_size,
                   "learning_rate": learning_rate},
        "layers_wrapped": wrapped,
        "layers_left_dense": dense,
    }
    return qat, step


def _unsupported_layer_name(message: str) -> Optional[str]:
    # "Layer stem_prelu:<class '...PReLU'> is not supported. ..."
    if message.startswith("Layer ") and " is not supported" in message:
        return message[len("Layer "):].split(":", 1)[0]
    return None


# ----------------------------------------------------------------------------- the public entry

@dataclasses.dataclass(frozen=True)
class CompressOptions(Options):
    """Which TFMOT steps (prune to a sparsity, cluster into k centroids with an init, QAT) and
    how each fine-tunes (epochs, batch size, learning rate); ``measure_int8`` adds int8 sizes
    and top-1 before and after QAT. Checked before any training starts."""

    prune: Optional[float] = None
    cluster: Optional[int] = None
    qat: bool = False
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-4
    cluster_init: str = "KMEANS_PLUS_PLUS"
    measure_int8: bool = False

    def check(self) -> None:
        if self.prune is not None:
            check_sparsity(self.prune)
        if self.cluster is not None:
            check_clusters(self.cluster)
        check_centroid_init(self.cluster_init)
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise InvalidConfigError(f"epochs must be an integer >= 1. Received `epochs={self.epochs!r}`.")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise InvalidConfigError(f"batch_size must be an integer >= 1. Received `batch_size={self.batch_size!r}`.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise InvalidConfigError(f"learning_rate must be a number > 0. Received "
                                     f"`learning_rate={self.learning_rate!r}`.")
        if self.prune is None and self.cluster is None and not self.qat:
            raise InvalidConfigError("compress_model: nothing to do; give prune, cluster and/or qat.")


def compress_model(model, options: Optional[CompressOptions] = None, *, train_data=None, val_data=None,
                   models: Optional[dict] = None, **overrides):
    """Apply prune -> cluster -> QAT (any subset) to a tf_keras model; fine-tune each on
    ``train_data`` and measure on ``val_data`` (both (x_float, y_int), preprocessed).

    Returns (model, report). The model is stripped of pruning/clustering wrappers; after QAT it
    is the quantize-aware model the TFLite converter turns into int8. ``report["steps"]`` holds,
    per step, the method, its parameters, the layers wrapped and those left dense (with the
    reason), top-1 and zipped weight-file bytes before and after, and the achieved sparsity or
    the unique weights per clustered layer. The caller's model is not modified.

    ``measure_int8`` adds to the QAT step the int8 TFLite of the model before QAT (post-training
    quantization) and after it: bytes, zipped bytes and top-1 in ai_edge_litert.
    ``models`` (a dict), when given, receives the float model before QAT as ``"before_qat"``
    (the export writes its float artifacts from that one and only the int8 ones from QAT's).
    """
    o = CompressOptions.make(options, **overrides)  # everything checked before any training starts
    sparsity = check_sparsity(o.prune) if o.prune is not None else None
    k = check_clusters(o.cluster) if o.cluster is not None else None
    cluster_init = check_centroid_init(o.cluster_init)
    train_data = _check_data("train_data", train_data)
    val_data = _check_data("val_data", val_data)
    fit_kw = dict(train_data=train_data, epochs=o.epochs, batch_size=o.batch_size, learning_rate=o.learning_rate)

    steps = []
    current = model
    acc = accuracy(current, val_data)
    size = zipped_size(current)

    def record(new_model, step):
        nonlocal current, acc, size
        after_acc, after_size = accuracy(new_model, val_data), zipped_size(new_model)
        step.update({"accuracy_before": acc, "accuracy_after": after_acc,
                     "zipped_bytes_before": size, "zipped_bytes_after": after_size,
                     "size_measure": "ZIP_DEFLATED archive of the model's weights file (save_weights .h5)"})
        steps.append(step)
        current, acc, size = new_model, after_acc, after_size

    if sparsity is not None:
        record(*prune_model(current, sparsity, **fit_kw))
    if k is not None:
        record(*cluster_model(current, k, init=cluster_init, preserve_sparsity=sparsity is not None, **fit_kw))
    if o.qat:
        model_before_qat = current
        if models is not None:
            models["before_qat"] = model_before_qat
        preserve = "+".join(n for n, on in (("prune", sparsity is not None), ("cluster", k is not None)) if on) or None
        new, step = quantize_aware_model(current, preserve=preserve, **fit_kw)
        record(new, step)
        step["size_measure"] = ("ZIP_DEFLATED archive of the weights file; after QAT it holds float weights plus "
                                "quantizer ranges, so compare int8 TFLite sizes (measure_int8) instead")
        if o.measure_int8:
            step["int8_tflite"] = {"ptq_before": int8_measure(model_before_qat, train_data[0], val_data),
                                   "qat_after": int8_measure(current, train_data[0], val_data)}
    return current, {"steps": steps}
