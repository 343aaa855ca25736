"""Deploy-time graph rewrites: the same function, built from ops that have fast int8 kernels.

Why: per-channel PReLU has no XNNPACK int8 kernel (nor has a standalone RELU; one fused into
a conv is fine), so an int8 QuickNet falls back to reference kernels between every pair of
convolutions and runs no faster than its fp32 model. The rewrite rebuilds the trained Keras
model (copies of its layers and weights; the run's model.keras is untouched) with every
per-channel PReLU replaced by an exact equivalent made of XNNPACK int8 ops:

* all alphas of the layer equal -> LeakyReLU(alpha) (alpha 0 fuses into the conv as ReLU);
* every alpha <= 1 (the usual case) -> ``PReLU(x) = x + relu((a - 1) * x)``: a 1x1
  depthwise conv with fused ReLU and an Add ("inplace"). When every alpha >= 0 and the PReLU
  feeds a MaxPooling2D alone, it is moved after the pool (a monotone function commutes with
  max), so it runs on a quarter of the data;
* otherwise, PReLU followed (alone) by a layer linear per input channel (SeparableConv2D's
  depthwise part, DepthwiseConv2D, Conv2D, Dense), possibly through Dropout and MaxPooling2D
  (alphas >= 0): ``L(PReLU(y)) = L_(1-a)(relu(y)) + L_a(y)`` ("fold"; ``L_s`` is ``L`` with its
  kernel scaled per input channel, zero padding unchanged as PReLU(0) = 0);
* anything else -> ``(1 - a) * relu(x) + a * x`` with 1x1 depthwise convs and an Add.

Measured on QuickNet (docs/int8-export.md): int8 with PReLU 0.9x fp32 latency; "fold" 0.52x;
"inplace" 0.39x.

Every rewrite is exact in real arithmetic; in float32 the outputs agree to ~1e-6.
"""
from __future__ import annotations

import collections
from typing import Dict, List, Tuple

import numpy as np

_FOLD_TARGETS = ("SeparableConv2D", "DepthwiseConv2D", "Conv2D", "Dense")


def _k():
    import tf_keras

    return tf_keras


def _model_nodes(model, layer):
    """The inbound nodes of ``layer`` that belong to ``model`` (layers may be shared)."""
    keys = getattr(model, "_network_nodes", None)
    out = []
    for i, node in enumerate(layer._inbound_nodes):
        if keys is None or f"{layer.name}_ib-{i}" in keys:
            out.append(node)
    return out


def _flat(x):
    import tensorflow as tf

    return tf.nest.flatten(x)


def _prelu_alpha(layer):
    """Per-channel alphas (C,) when the PReLU is shared over every axis but the last, else None."""
    alpha = layer.get_weights()[0]
    if alpha.ndim < 1 or any(d != 1 for d in alpha.shape[:-1]):
        return None
    return alpha.reshape(-1).astype(np.float64)


def _plan(model) -> Dict[str, dict]:
    """For each PReLU layer name: {'alpha', 'through': [layer names], 'target': layer name or None,
    'how': 'leaky_relu'|'fold'|'scale'}; PReLUs with other alpha shapes are left out (kept)."""
    consumers = collections.defaultdict(list)
    for layer in model.layers:
        for node in _model_nodes(model, layer):
            for t in _flat(node.keras_inputs):
                consumers[id(t)].append(layer)
    outputs = {id(t) for t in model.outputs}
    plans = {}
    for layer in model.layers:
        if type(layer).__name__ != "PReLU" or len(_model_nodes(model, layer)) != 1:
            continue
        alpha = _prelu_alpha(layer)
        if alpha is None:
            continue
        if np.all(alpha == alpha[0]):
            plans[layer.name] = {"alpha": alpha, "how": "leaky_relu", "through": [], "target": None}
            continue
        if PREFER == "inplace" and np.all(alpha <= 1.0):
            through = []  # a PReLU with alphas >= 0 is monotone: run it after the max pool, on 1/4 of the data
            cons = consumers[id(layer.output)]
            if (np.all(alpha >= 0) and id(layer.output) not in outputs and len(cons) == 1
                    and type(cons[0]).__name__ == "MaxPooling2D" and len(_model_nodes(model, cons[0])) == 1):
                through = [cons[0].name]
            plans[layer.name] = {"alpha": alpha, "how": "inplace", "through": through, "target": None}
            continue
        through, target = [], None
        cur = layer.output
        while id(cur) not in outputs and len(consumers[id(cur)]) == 1:
            c = consumers[id(cur)][0]
            kind = type(c).__name__
            if len(_model_nodes(model, c)) != 1:
                break
            if kind == "Dropout" or (kind == "MaxPooling2D" and np.all(alpha >= 0)):
                through.append(c.name)
                cur = c.output
                continue
            if kind in _FOLD_TARGETS and _foldable(c):
                target = c.name
            break
        plans[layer.name] = {"alpha": alpha, "how": "fold" if target else "scale",
                             "through": through if target else [], "target": target}
    return plans


def _foldable(layer) -> bool:
    cfg = layer.get_config()
    if cfg.get("data_format") not in (None, "channels_last"):
        return False
    if type(layer).__name__ == "Dense":
        return len(layer.input_shape) == 2
    return True


def _clone(layer, name=None):
    cfg = layer.get_config()
    if name:
        cfg["name"] = name
    return type(layer).from_config(cfg)


def _fold(layer, a: np.ndarray, relu_x, x):
    """``layer(PReLU(x))`` as ``layer_(1-a)(relu(x)) + layer_a(x)``; returns the output tensor."""
    k = _k().layers
    kind = type(layer).__name__
    n = layer.name
    w = layer.get_weights()
    cfg = layer.get_config()
    act = cfg.get("activation", "linear")
    s_pos, s_neg = (1.0 - a).astype(np.float32), a.astype(np.float32)
    if kind == "SeparableConv2D":
        dw, pw = w[0], w[1]
        bias = w[2] if cfg["use_bias"] else None
        branch = dict(kernel_size=cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"],
                      depth_multiplier=cfg["depth_multiplier"], dilation_rate=cfg["dilation_rate"], use_bias=True)
        d_pos = k.DepthwiseConv2D(name=f"{n}_dw_pos", **branch)
        d_neg = k.DepthwiseConv2D(name=f"{n}_dw_neg", **branch)
        y = k.Add(name=f"{n}_dw_add")([d_pos(relu_x), d_neg(x)])
        zeros = np.zeros(dw.shape[2] * dw.shape[3], np.float32)
        d_pos.set_weights([dw * s_pos[None, None, :, None], zeros])
        d_neg.set_weights([dw * s_neg[None, None, :, None], zeros])
        pwl = k.Conv2D(pw.shape[-1], 1, use_bias=bias is not None, activation=act, name=f"{n}_pw")
        out = pwl(y)
        pwl.set_weights([pw] + ([bias] if bias is not None else []))
        return out
    if kind == "DepthwiseConv2D":
        scale = lambda s: w[0] * s[None, None, :, None]  # noqa: E731
    elif kind == "Conv2D":
        if cfg.get("groups", 1) != 1:
            raise ValueError("grouped convolution")
        scale = lambda s: w[0] * s[None, None, :, None]  # noqa: E731
    else:  # Dense
        scale = lambda s: w[0] * s[:, None]  # noqa: E731
    cfg_pos = dict(cfg, name=f"{n}_pos", activation="linear", use_bias=True)
    cfg_neg = dict(cfg, name=f"{n}_neg", activation="linear", use_bias=True)
    l_pos, l_neg = type(layer).from_config(cfg_pos), type(layer).from_config(cfg_neg)
    y = k.Add(name=f"{n}_add")([l_pos(relu_x), l_neg(x)])
    k_pos, k_neg = scale(s_pos), scale(s_neg)
    out_ch = k_neg.shape[-1] * (k_neg.shape[-2] if kind == "DepthwiseConv2D" else 1)
    zeros = np.zeros(out_ch, np.float32)
    l_pos.set_weights([k_pos, zeros])
    l_neg.set_weights([k_neg, w[1] if cfg.get("use_bias") else zeros])
    if act not in (None, "linear"):
        y = k.Activation(act, name=f"{n}_act")(y)
    return y


_INPLACE_HOW = "x + relu((a - 1) * x) (1x1 depthwise with fused ReLU + add)"


def _inplace(name: str, a: np.ndarray, x):
    """PReLU(x) = x + relu((a - 1) * x), exact when every a <= 1 (1 - a >= 0 commutes with relu:
    for x < 0 it adds (1 - a) * (-x), leaving a * x): one 1x1 depthwise with fused ReLU and an
    Add, both XNNPACK int8 ops; the surrounding layers are untouched."""
    k = _k().layers
    d = k.DepthwiseConv2D(1, activation="relu", name=f"{name}_neg")
    y = k.Add(name=f"{name}_add")([x, d(x)])
    d.set_weights([(a - 1.0).astype(np.float32).reshape(1, 1, -1, 1), np.zeros(a.shape, np.float32)])
    return y


def _scale_identity(name: str, a: np.ndarray, relu_x, x):
    """PReLU(x) as (1 - a) * relu(x) + a * x with two 1x1 depthwise (per-channel scale) ops."""
    k = _k().layers
    d_pos = k.DepthwiseConv2D(1, name=f"{name}_pos")
    d_neg = k.DepthwiseConv2D(1, name=f"{name}_neg")
    y = k.Add(name=f"{name}_add")([d_pos(relu_x), d_neg(x)])
    zeros = np.zeros(a.shape, np.float32)
    d_pos.set_weights([(1.0 - a).astype(np.float32).reshape(1, 1, -1, 1), zeros])
    d_neg.set_weights([a.astype(np.float32).reshape(1, 1, -1, 1), zeros])
    return y


PREFER = "inplace"  # "inplace": relu((1-a) y) + a y where every a <= 1; "fold": into the next layer
RELU_AS = "dw1x1"  # "relu": a RELU op; "dw1x1": an identity 1x1 depthwise with fused ReLU


def _relu(name, x):
    k = _k().layers
    if RELU_AS == "relu":
        return k.ReLU(name=f"{name}_relu")(x)
    c = int(x.shape[-1])
    d = k.DepthwiseConv2D(1, activation="relu", name=f"{name}_relu")
    y = d(x)
    d.set_weights([np.ones((1, 1, c, 1), np.float32), np.zeros(c, np.float32)])
    return y


def rewrite_prelu(model) -> Tuple[object, dict]:
    """An int8-friendly copy of ``model`` computing the same function, and what was rewritten.

    Returns ``(model, report)``; ``report`` is ``{"prelu": [{"layer", "how", "through",
    "into"}...], "kept": [...]}`` (``model`` itself when it has no PReLU). Only functional
    (or Sequential) models of single-node layers are rebuilt; anything else is returned as is
    with the reason in ``report["skipped"]``.
    """
    keras = _k()
    report = {"prelu": [], "kept": []}
    prelus = [l for l in model.layers if type(l).__name__ == "PReLU"]
    if not prelus:
        return model, report
    if not getattr(model, "_is_graph_network", False):
        report["skipped"] = "not a functional model"
        return model, report
    if any(hasattr(l, "layers") for l in model.layers):
        report["skipped"] = "nested models"
        return model, report
    plans = _plan(model)
    report["kept"] = [l.name for l in prelus if l.name not in plans]
    targets = {p["target"]: name for name, p in plans.items() if p["target"]}
    passthrough = {t: name for name, p in plans.items() for t in p["through"]}

    tmap = {}  # id(old tensor) -> new tensor
    pending = {}  # id(old tensor) -> (prelu name, new pre-activation tensor): PReLU moved forward
    new_inputs = []
    for t in model.inputs:
        inp = keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])
        tmap[id(t)] = inp
        new_inputs.append(inp)
    k = keras.layers
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        nodes = _model_nodes(model, layer)
        if len(nodes) != 1:
            report["skipped"] = f"layer '{layer.name}' is used {len(nodes)} times"
            return model, {"prelu": [], "kept": [l.name for l in prelus], "skipped": report["skipped"]}
        node = nodes[0]
        old_in = _flat(node.keras_inputs)
        old_out = layer.output
        name = layer.name
        if name in plans:
            p = plans[name]
            x = tmap[id(old_in[0])]
            if p["how"] == "leaky_relu":
                tmap[id(old_out)] = k.LeakyReLU(alpha=float(p["alpha"][0]), name=name)(x)
                report["prelu"].append({"layer": name, "how": "leaky_relu", "alpha": float(p["alpha"][0])})
            elif p["how"] == "inplace" and p["through"]:
                pending[id(old_out)] = (name, x)
            elif p["how"] == "inplace":
                tmap[id(old_out)] = _inplace(name, p["alpha"], x)
                report["prelu"].append({"layer": name, "how": _INPLACE_HOW})
            elif p["how"] == "fold":
                pending[id(old_out)] = (name, x)
            else:
                tmap[id(old_out)] = _scale_identity(name, p["alpha"], _relu(name, x), x)
                report["prelu"].append({"layer": name, "how": "relu + per-channel scales (1x1 depthwise) + add"})
            continue
        if name in passthrough and id(old_in[0]) in pending:
            pname, x = pending.pop(id(old_in[0]))
            if type(layer).__name__ == "MaxPooling2D":
                x = _clone(layer)(x)
            if plans[pname]["how"] == "inplace":  # moved after the pool, then rewritten in place
                tmap[id(old_out)] = _inplace(pname, plans[pname]["alpha"], x)
                report["prelu"].append({"layer": pname, "how": _INPLACE_HOW, "through": [name]})
                continue
            pending[id(old_out)] = (pname, x)  # Dropout: identity at inference, dropped
            continue
        if name in targets and id(old_in[0]) in pending:
            pname, x = pending.pop(id(old_in[0]))
            p = plans[pname]
            relu_x = _relu(pname, x)
            tmap[id(old_out)] = _fold(layer, p["alpha"], relu_x, x)
            entry = {"layer": pname, "how": f"folded into '{name}' ({type(layer).__name__})", "into": name}
            if p["through"]:
                entry["through"] = p["through"]
            report["prelu"].append(entry)
            continue
        if type(layer).__name__ == "Dropout":
            tmap[id(old_out)] = tmap[id(old_in[0])]
            continue
        import tensorflow as tf

        def sub(v):
            return tmap[id(v)] if id(v) in tmap else v
        args = tf.nest.map_structure(sub, node.call_args)
        kwargs = tf.nest.map_structure(sub, dict(node.call_kwargs))
        kwargs.pop("training", None)
        new = _clone(layer)
        out = new(*args, **kwargs)
        new.set_weights(layer.get_weights())
        for o_old, o_new in zip(_flat(old_out), _flat(out)):
            tmap[id(o_old)] = o_new
    if pending:  # a planned fold never found its target: should not happen
        raise RuntimeError(f"PReLU rewrite left {sorted(n for n, _ in pending.values())} unplaced")
    outputs = [tmap[id(t)] for t in model.outputs]
    new_model = keras.Model(new_inputs, outputs if len(outputs) > 1 else outputs[0], name=f"{model.name}_deploy")
    return new_model, report


def prepare_for_deploy(model, *, check_inputs: np.ndarray = None, atol: float = 1e-4) -> Tuple[object, dict]:
    """``rewrite_prelu`` plus the proof: the rewritten model's outputs on ``check_inputs`` (and
    the pre-softmax logits where the model ends in one) against the original's.

    ``report["max_abs_diff"]`` (probabilities) and ``report["max_abs_diff_logits"]`` are
    recorded; a difference above ``atol`` means the rewrite is wrong, and the original model is
    returned instead (with ``report["rejected"]``), never a model with another function.
    """
    try:
        new, report = rewrite_prelu(model)
    except Exception as e:  # noqa: BLE001 - a graph the rewrite does not know: export it as it is
        return model, {"prelu": [], "rejected": f"rewrite failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                                                "exported without the rewrite"}
    if new is model or check_inputs is None:
        return new, report
    x = np.asarray(check_inputs, np.float32)
    a, b = model.predict(x, verbose=0, batch_size=64), new.predict(x, verbose=0, batch_size=64)
    report["max_abs_diff"] = float(np.max(np.abs(a - b)))
    la, lb = _logits(model, x), _logits(new, x)
    if la is not None and lb is not None:
        report["max_abs_diff_logits"] = float(np.max(np.abs(la - lb)))
    report["check_images"] = int(len(x))
    worst = max(report["max_abs_diff"], report.get("max_abs_diff_logits", 0.0) / 10.0)
    if not np.isfinite(worst) or worst > atol:
        report["rejected"] = f"outputs differ by {worst:.3g} > {atol:g}; exported without the rewrite"
        return model, report
    return new, report


def _logits(model, x):
    """The input of the final softmax, where the last layer is one (else None)."""
    keras = _k()
    last = model.layers[-1]
    cfg = last.get_config()
    if cfg.get("activation") != "softmax" or type(last).__name__ not in ("Activation", "Softmax"):
        return None
    m = keras.Model(model.inputs, last.input)
    return m.predict(x, verbose=0, batch_size=64)


def count_layers(model) -> Dict[str, int]:
    return dict(collections.Counter(type(l).__name__ for l in model.layers))


def prelu_names(model, nested: bool = False) -> List[str]:
    """The PReLU layers of ``model``; with ``nested``, also those of models it calls as layers."""
    names = []
    for layer in model.layers:
        if nested and hasattr(layer, "layers"):
            names += prelu_names(layer, nested=True)
        elif type(layer).__name__ == "PReLU":
            names.append(layer.name)
    return names


def snap_prelu(model, values: Dict[str, str]) -> object:
    """A copy of ``model`` with the alphas of each named PReLU layer replaced: ``"zero"`` (the
    layer becomes a ReLU, which the converter fuses into the conv before it) or ``"mean"`` (one
    shared alpha, the layer's mean: a LeakyReLU after ``rewrite_prelu``). Not exact: a candidate
    for the int8 graph that is kept only when its held-out accuracy stays within budget
    (edgecnn.export.mixed.choose_prelu). ``model`` itself is untouched."""
    keras = _k()
    new = keras.models.clone_model(model)
    new.set_weights(model.get_weights())
    for name, how in values.items():
        layer = new.get_layer(name)
        (alpha,) = layer.get_weights()
        layer.set_weights([snapped_alpha(alpha, how)])
    return new


def snapped_alpha(alpha: np.ndarray, how: str) -> np.ndarray:
    """A PReLU layer's alphas snapped as ``snap_prelu`` does: all 0 (``"zero"``) or all their mean."""
    return np.full_like(alpha, 0.0 if how == "zero" else float(np.mean(alpha)))
