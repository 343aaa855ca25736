"""A Keras 3 model rebuilt as tf_keras, node by node, and the proof that it computes the same.

edgecnn converts, quantizes and verifies a Keras 3 model as it is (the TFLite converter and
tf2onnx take its concrete function). TFMOT (pruning, clustering, quantization-aware training),
the exact PReLU rewrite and the mixed-precision search work on tf_keras models only: TFMOT 0.8
refuses a Keras 3 model (``cluster_weights`` even returns None without a word). For those steps
``rebuild_as_tf_keras`` walks the Keras 3 model's config (its layers and the ``inbound_nodes``
that wire them), builds each node with tf_keras, copies the weights, and compares the output of
every top-level node with the tf_keras tensor that replaced it on real images. What it cannot
rebuild faithfully raises ``Untranslatable`` with a one-line reason.

* Layers: the built-in layers of ``_LAYERS`` become the tf_keras layer of the same name, built
  from the Keras 3 config with the keys tf_keras lacks dropped where their value is the one that
  makes them a no-op (``_DROP``; any other value: untranslatable) and renamed where the two
  spell them differently (``_RENAME``); initializers are dropped (the weights are copied).
  Augmentation layers (``Random*``) are identity at inference and are left out.
* hard_sigmoid / hard_silu (hard_swish): tf_keras's ``hard_sigmoid`` is 0.2x + 0.5, Keras 3's is
  relu6(x + 3) / 6, so they are rebuilt as tf_keras MobileNetV3 builds them (``ReLU(6.)(x + 3.) *
  (1/6)``, then ``Multiply``), which the TFLite converter fuses to HARD_SWISH.
* Op nodes (``keras.ops`` on tensors): element-wise arithmetic, mean, clip and activations
  (``_OPS``); anything else is untranslatable.
* Nested models (a backbone used as a layer) are inlined, so that per-layer TFMOT reaches their
  layers; inner names that clash with the outer model's become ``<backbone>_<name>``.

On Keras 3.15 models (a MobileNetV3Small of 181 compared nodes, nested backbones, Sequential and
``keras.ops`` graphs) the worst node differed by at most 6e-7 relative; the tolerance is 1e-4.
No TensorFlow is imported at module level.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

_LAYERS = frozenset({
    "InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Conv1D", "Dense",
    "BatchNormalization", "LayerNormalization", "ReLU", "LeakyReLU", "Activation", "Softmax", "PReLU", "ELU",
    "Rescaling", "Normalization", "ZeroPadding2D", "Cropping2D", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Reshape", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "Add", "Multiply", "Subtract", "Concatenate", "Average", "Maximum",
    "Minimum", "Identity", "UpSampling2D", "Permute", "Resizing", "CenterCrop", "ActivityRegularization"})
_INFERENCE_IDENTITY = frozenset({"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                                 "RandomBrightness", "RandomCrop", "RandomHeight", "RandomWidth"})
_RENAME = {"LeakyReLU": {"negative_slope": "alpha"}}
_ANY = object()  # dropped whatever its value
_DROP = {
    "*": {"quantization_config": None, "lora_rank": None, "lora_alpha": None},
    "BatchNormalization": {"renorm": False, "renorm_clipping": None, "renorm_momentum": _ANY},
    "LayerNormalization": {"rms_scaling": False},
    "Resizing": {"pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0, "antialias": False,
                 "data_format": "channels_last"},
    "CenterCrop": {"data_format": "channels_last"},
    "InputLayer": {"optional": False},
}
_MODEL_CLASSES = ("Functional", "Sequential", "Model")
_BINARY = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")
_OPS = frozenset(_BINARY + ("Negative", "Mean", "Clip", "Relu", "Relu6", "Sigmoid", "Silu", "HardSigmoid", "HardSilu"))
_HARD = ("hard_sigmoid", "hard_silu", "hard_swish")
ATOL = RTOL = 1e-4


class Untranslatable(ValueError):
    """The model has a part tf_keras cannot rebuild faithfully; the message is the one-line reason."""


def is_keras3(model) -> bool:
    """A Keras 3 model object (``import keras``, or ``tf.keras`` of TF 2.16+ without the legacy flag)."""
    return type(model).__module__.split(".")[0] == "keras"


def keras_module(model):
    """The Keras package a model belongs to: ``keras`` (Keras 3) or ``tf_keras``."""
    if is_keras3(model):
        import keras

        return keras
    import tf_keras

    return tf_keras


# ---------------------------------------------------------------------------- the rebuild
class _Ctx:
    """One rebuild: weight pairs to copy, per-(sub)model layer caches, the names in use, and the
    tf_keras tensor that replaced each top-level node."""

    def __init__(self):
        self.pairs: List[Tuple[object, object]] = []
        self.caches: Dict[int, Dict[str, object]] = {}
        self.used: set = set()
        self.outmap: Dict[str, object] = {}

    def name(self, want: str, prefix: str = "") -> str:
        n = prefix + want if want in self.used and prefix else want
        base, k = n, 1
        while n in self.used:
            n, k = f"{base}_{k}", k + 1
        self.used.add(n)
        return n


def to_tf_keras(model):
    """(tf_keras model with the Keras 3 model's graph and weights, {node name: tf_keras tensor})."""
    ctx = _Ctx()
    out = _build(model, model.get_config(), ctx, name=model.name, top=True)
    for k3_layer, tk_layer in ctx.pairs:
        _copy_weights(k3_layer, tk_layer)
    return out, ctx.outmap


def build_tf_keras(model):
    """``to_tf_keras``, with whatever tf_keras itself rejects in a config as ``Untranslatable``."""
    try:
        return to_tf_keras(model)
    except Untranslatable:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise Untranslatable(f"tf_keras cannot build it ({type(e).__name__}: {' '.join(str(e).split())[:160]})") \
            from None


def rebuild_as_tf_keras(model, x: np.ndarray, built=None):
    """(tf_keras model, report): the rebuild (``built``, from ``build_tf_keras``, else made here),
    checked node by node on the preprocessed images ``x`` against the Keras 3 model;
    ``Untranslatable`` past ``ATOL + RTOL * max |value|`` at any node."""
    import keras
    import tf_keras

    x = np.asarray(x, np.float32)
    tk, outmap = built if built is not None else build_tf_keras(model)
    if _is_sequential(model):  # its layers carry extra build-time nodes: chain them eagerly
        names, k3_vals, y = [], [], x
        for layer in model.layers:
            y = layer(y, training=False)
            if layer.name in outmap:
                names.append(layer.name)
                k3_vals.append(np.asarray(y))
    else:
        ops = {op.name: op for op in model.operations}
        # nested models are compared through the nodes after them; a layer called twice has no one output
        names = [n for n in outmap if n in ops and not isinstance(ops[n], keras.Model)
                 and len(getattr(ops[n], "_inbound_nodes", [])) == 1]
        k3_vals = keras.Model(model.inputs, [ops[n].output for n in names]).predict(x, verbose=0) if names else []
        k3_vals = k3_vals if isinstance(k3_vals, list) else [k3_vals]
    tk_vals = tf_keras.Model(tk.inputs, [outmap[n] for n in names]).predict(x, verbose=0) if names else []
    tk_vals = tk_vals if isinstance(tk_vals, list) else [tk_vals]
    worst = {"node": None, "max_abs_diff": 0.0, "rel": 0.0}
    for n, a, b in zip(names, k3_vals, tk_vals):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise Untranslatable(f"node '{n}' gives {a.shape} in Keras 3 but {b.shape} rebuilt")
        err, scale = float(np.abs(a - b).max()) if a.size else 0.0, float(np.abs(a).max()) if a.size else 0.0
        if err / (scale + 1e-6) >= worst["rel"]:
            worst = {"node": n, "max_abs_diff": err, "rel": err / (scale + 1e-6)}
        if not np.isfinite(err) or err > ATOL + RTOL * scale:
            raise Untranslatable(f"node '{n}' differs by {err:.3g} when rebuilt (max |value| {scale:.3g})")
    ref, got = np.asarray(model.predict(x, verbose=0)), np.asarray(tk.predict(x, verbose=0))
    return tk, {"nodes_compared": len(names), "images": int(len(x)), "worst_node": worst["node"],
                "worst_rel_diff": worst["rel"], "output_max_abs_diff": float(np.abs(ref - got).max())}


def _is_sequential(model) -> bool:
    return type(model).__name__ == "Sequential"


def _refs(spec) -> list:
    return spec if spec and isinstance(spec[0], (list, tuple)) else [spec]


def _build(k3_model, cfg, ctx: _Ctx, name=None, inputs=None, prefix="", top=False):
    """The tf_keras graph of one (sub)model: a tf_keras.Model, or (``inputs`` given: a nested model
    being inlined) its output tensors computed from those tf_keras tensors."""
    import tf_keras

    cache = ctx.caches.setdefault(id(k3_model), {})
    if _is_sequential(k3_model):
        first = next((lc for lc in cfg["layers"] if lc["class_name"] == "InputLayer"), None)
        if inputs is None:
            shape = first["config"]["batch_shape"] if first else [None] + list(k3_model.inputs[0].shape[1:])
            x = inp = tf_keras.Input(batch_shape=tuple(shape), name=ctx.name((first or {}).get("config", {}).get(
                "name", "input"), prefix))
        else:
            x = inp = inputs[0]
        for lc in cfg["layers"]:
            if lc["class_name"] != "InputLayer":
                x = _apply(k3_model, lc, [x], {}, ctx, cache, prefix)
                if top:
                    ctx.outmap[lc["config"]["name"]] = x
        return x if inputs is not None else tf_keras.Model(inp, x, name=name)

    tensors: Dict[Tuple[str, int, int], object] = {}
    in_specs = _refs(cfg["input_layers"])
    given = dict(zip([r[0] for r in in_specs], inputs)) if inputs is not None else {}
    pending = []
    for lc in cfg["layers"]:
        if lc["class_name"] == "InputLayer":
            c = lc["config"]
            tensors[(lc["name"], 0, 0)] = given[lc["name"]] if inputs is not None else tf_keras.Input(
                batch_shape=tuple(c["batch_shape"]), name=ctx.name(lc["name"], prefix))
        else:
            pending += [(lc, i, node) for i, node in enumerate(lc.get("inbound_nodes") or [])]
    while pending:  # the config lists nodes in graph order; loop anyway until nothing more resolves
        progress, rest = False, []
        for lc, i, node in pending:
            try:
                args, kwargs = _fill(node.get("args", []), tensors), _fill(node.get("kwargs", {}), tensors)
            except KeyError:
                rest.append((lc, i, node))
                continue
            y = _apply(k3_model, lc, args, kwargs, ctx, cache, prefix)
            for j, t in enumerate(y if isinstance(y, (list, tuple)) else [y]):
                tensors[(lc["name"], i, j)] = t
            if top and i == 0 and not isinstance(y, (list, tuple)):
                ctx.outmap[lc["name"]] = y
            progress = True
        if not progress:
            raise Untranslatable(f"nodes {[p[0]['name'] for p in rest][:3]} cannot be reached from the inputs")
        pending = rest
    outs = [tensors[tuple(r)] for r in _refs(cfg["output_layers"])]
    if inputs is not None:
        return outs if len(outs) > 1 else outs[0]
    ins = [tensors[tuple(r)] for r in in_specs]
    return tf_keras.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=name)


def _fill(v, tensors):
    if isinstance(v, dict):
        if v.get("class_name") == "__keras_tensor__":
            return tensors[tuple(v["config"]["keras_history"])]
        if v.get("class_name") == "__numpy__":
            return np.array(v["config"]["value"], dtype=v["config"]["dtype"])
        return {k: _fill(x, tensors) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_fill(x, tensors) for x in v]
    return v


def _hard_sigmoid(x, name: str):
    import tf_keras

    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu6")(x + 3.0) * (1.0 / 6.0)


def _hard_swish(x, name: str):
    import tf_keras

    return tf_keras.layers.Multiply(name=f"{name}_mul")([x, _hard_sigmoid(x, name)])


def _apply(k3_model, lc, args, kwargs, ctx: _Ctx, cache, prefix=""):
    """Call the tf_keras counterpart of one Keras 3 layer or op node on tf_keras tensors."""
    cls, lname = lc["class_name"], lc.get("name") or lc["config"]["name"]
    if cls in _INFERENCE_IDENTITY:
        return args[0]
    extra = sorted(k for k, v in kwargs.items() if not (k in ("mask", "training") and v in (None, False)))
    if extra:
        raise Untranslatable(f"layer '{lname}' is called with {extra}")
    if cls in _MODEL_CLASSES:  # a nested model: inline its graph
        sub = k3_model.get_layer(lname)
        return _build(sub, sub.get_config(), ctx, inputs=list(args[0]) if isinstance(args[0], (list, tuple))
                      else [args[0]], prefix=f"{lname}_", name=lname)
    if str(lc.get("module", "")).startswith("keras.src.ops."):
        return _op(cls, lc.get("config") or {}, args, ctx.name(lname, prefix))
    if cls not in _LAYERS:
        raise Untranslatable(f"layer '{lname}' ({cls}) has no tf_keras rebuild")
    import tf_keras

    if lname not in cache:
        k3_layer = k3_model.get_layer(lname)
        cfg, post = _translate_config(cls, k3_layer.get_config(), lname)
        cfg["name"] = ctx.name(lname, prefix)
        tk_layer = getattr(tf_keras.layers, cls).from_config(cfg)
        cache[lname] = (tk_layer, post)
        ctx.pairs.append((k3_layer, tk_layer))
    tk_layer, post = cache[lname]
    y = tk_layer(*args)
    if post == "hard_sigmoid":
        y = _hard_sigmoid(y, ctx.name(tk_layer.name + "_hs"))
    elif post is not None:
        y = _hard_swish(y, ctx.name(tk_layer.name + "_hs"))
    return y


def _op(cls: str, c: dict, a, name: str):
    """One ``keras.ops`` node (its class and config) on tf_keras tensors."""
    import tensorflow as tf
    import tf_keras

    if cls not in _OPS:
        raise Untranslatable(f"op node '{name}' ({cls}) has no tf_keras rebuild")
    if cls in _BINARY:
        x, y = a
        return {"Add": lambda: x + y, "Subtract": lambda: x - y, "Multiply": lambda: x * y,
                "Divide": lambda: x / y, "TrueDivide": lambda: x / y,
                "Maximum": lambda: tf.maximum(x, y), "Minimum": lambda: tf.minimum(x, y)}[cls]()
    if cls == "Negative":
        return -a[0]
    if cls == "Mean":
        axis, keep = c.get("axis"), bool(c.get("keepdims"))
        if axis is not None and sorted(axis if isinstance(axis, list) else [axis]) == [1, 2]:
            return tf_keras.layers.GlobalAveragePooling2D(keepdims=keep, name=name)(a[0])
        return tf.reduce_mean(a[0], axis=axis, keepdims=keep)
    if cls == "Clip":
        return tf.clip_by_value(a[0], c["x_min"], c["x_max"])
    if cls in ("Relu", "Relu6"):
        return tf_keras.layers.ReLU(6.0 if cls == "Relu6" else None, name=name)(a[0])
    if cls in ("Sigmoid", "Silu"):
        return tf_keras.layers.Activation("sigmoid" if cls == "Sigmoid" else "swish", name=name)(a[0])
    return (_hard_sigmoid if cls == "HardSigmoid" else _hard_swish)(a[0], name)


def _translate_config(cls: str, cfg: dict, lname: str):
    """(tf_keras config, hard activation to add after the layer or None) from a Keras 3 layer config."""
    out, post = {}, None
    for k, v in cfg.items():
        rule = next((_DROP[s][k] for s in (cls, "*") if k in _DROP.get(s, {})), None)
        if rule is not None or any(k in _DROP.get(s, {}) for s in (cls, "*")):
            if rule is not _ANY and v is not None and v != rule:
                raise Untranslatable(f"layer '{lname}' sets {k}={str(v)[:40]}, which tf_keras has no equivalent for")
            continue
        if k == "data_format" and v not in ("channels_last", None):
            raise Untranslatable(f"layer '{lname}' is {v}; edgecnn rebuilds channels-last models")
        if k == "dtype":
            out[k] = "float32"
        elif k == "activation" and v in _HARD:  # tf_keras has none, or another function: rebuilt after
            out[k], post = "linear", v
        elif k.endswith("_initializer"):
            continue  # the weights are copied
        elif k.endswith(("_regularizer", "_constraint")):
            out[k] = None if v is None else _tf_keras_object(k, v)
        else:
            out[_RENAME.get(cls, {}).get(k, k)] = _plain(v)
    return out, post


def _tf_keras_object(key: str, obj):
    import tf_keras

    cn, conf = (obj["class_name"], obj.get("config") or {}) if isinstance(obj, dict) else \
        (type(obj).__name__, obj.get_config())
    return (tf_keras.regularizers if key.endswith("_regularizer") else tf_keras.constraints).get(
        {"class_name": cn, "config": conf})


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if type(v).__name__.endswith("DTypePolicy"):
        return v.name
    return v


def _copy_weights(k3_layer, tk_layer) -> None:
    src, dst = k3_layer.weights, tk_layer.weights
    if len(src) != len(dst):
        raise Untranslatable(f"layer '{k3_layer.name}' has {len(src)} weights in Keras 3 and {len(dst)} in tf_keras")
    by_name = {w.name.split("/")[-1].split(":")[0]: w for w in dst}
    values = []
    for i, w in enumerate(src):
        short = w.name.split("/")[-1]
        tgt = by_name.get(short, dst[i])
        if tuple(tgt.shape) != tuple(w.shape):
            raise Untranslatable(f"layer '{k3_layer.name}': weight {short} is {tuple(w.shape)} in Keras 3 and "
                                 f"{tuple(tgt.shape)} in tf_keras")
        values.append((tgt, np.asarray(w.numpy())))
    for tgt, value in values:
        tgt.assign(value)


def describe(report: Optional[dict]) -> str:
    """One line for a rebuild report."""
    if not report:
        return ""
    return (f"rebuilt as tf_keras: {report['nodes_compared']} nodes compared on {report['images']} images, worst "
            f"relative difference {report['worst_rel_diff']:.1e}")
