"""Camera input: the run's per-channel normalization moved into the graph, so that every
artifact takes what a camera gives.

A run's model takes ``x_c = (p * scale - mean_c) / std_c`` of pixels ``p``. MediaPipe's
ImageClassifier (and the TFLite Task Library) apply one mean/std to every channel of a float
input ("Per-channel image normalization is not available") and feed a uint8 input the raw
pixels, whatever its quantization says. So every exported file takes ``u = p / 255`` (the
"unit" spec: NormalizationOptions mean 0, std 255), which an int8 file's uint8 input, with scale
1/255 and zero point 0, reads as the camera's bytes themselves; the rest of the normalization,
``x_c = a_c * u + b_c`` with ``a_c = 255 * scale / std_c`` and ``b_c = -mean_c / std_c``,
becomes part of the model (``fold_normalization``):

* nothing, when the run already takes ``u`` (``a = 1``, ``b = 0``);
* into a first ``Rescaling`` layer (its scale and offset absorb ``a`` and ``b``: exact);
* into the first ``Conv2D``, when it alone reads the input and its padding is 'valid' (or ``b``
  is 0): ``W'[..., c, o] = a_c W[..., c, o]``, and the constant ``K_o = sum W[h, w, c, o] b_c``
  goes into its bias, or into the moving mean of the BatchNormalization that alone follows a
  bias-free conv (``BN(y + K)`` with mean ``m`` is ``BN(y)`` with mean ``m - K``). The graph
  keeps its ops. With 'same' padding this is not exact: the zero padding of ``x`` is ``-b/a``
  in ``u``, where the folded conv pads with 0 (measured on resnet20: border activations off by
  up to 1.9, 4% of top-1 labels changed), so such models get the next form;
* otherwise a 1x1 ``DepthwiseConv2D`` in front, kernel ``a`` and bias ``b``: one op, which XNNPACK
  runs in int8 as well. On a 32x32x3 input (host, LiteRT + XNNPACK, 1 thread) it cost 5-6 us in
  fp32 and int8, where a per-channel ``Rescaling`` (a MUL and an ADD broadcasting a 3-vector) cost
  9 us in fp32 and 20 us in int8.

Each form is checked, not assumed: the folded model's outputs on the check images must equal
the original's on the same images normalized the run's way (``FOLD_TOL``), else the export
fails naming the difference. Measured cost (docs/metadata.md): the conv fold changes no op and
no latency; the Rescaling form adds two elementwise ops on the input.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import numpy as np

from edgecnn.errors import ExportError

FOLD_TOL = 1e-4  # max |p_folded - p_original|: float rounding is ~1e-6
# A quantization-aware model fake-quantizes its input: where float rounding puts a value on the
# other side of a step boundary it moves a whole step (measured 4e-3 on a QuickNet-like model).
QAT_FOLD_TOL = 0.02
CAMERA_LAYER = "camera_normalization"


def camera_spec(spec):
    """The spec every artifact of a run with ``spec`` takes: pixels / 255, one mean (0) and std (1)
    for every channel; the input size, channels and crop of the run."""
    import dataclasses

    c = spec.channels
    return dataclasses.replace(spec, scale=1.0 / 255.0, mean=(0.0,) * c, std=(1.0,) * c)


def affine(spec) -> Tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel with the run's input ``x = a * u + b`` for ``u = pixel / 255``."""
    scale = float(spec.scale)
    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    return 255.0 * scale / std, -mean / std


def fold_normalization(model, spec, check_inputs: Optional[np.ndarray] = None, tol: float = FOLD_TOL):
    """A model taking ``camera_spec(spec)``'s input that computes what ``model`` computes on
    ``spec``'s, and the report of how (``{"how", "layer", "exact", "max_abs_diff"}``).

    ``check_inputs``: uint8 images (N, H, W, C) of the input size; both models run on them and
    must agree within ``tol``, else ``ExportError``."""
    a, b = affine(spec)
    if np.allclose(a, 1.0, rtol=0, atol=1e-12) and np.allclose(b, 0.0, rtol=0, atol=1e-12):
        return model, {"how": "none: the run already takes pixels / 255", "exact": True}
    first = _sole_consumer(model)
    kind = type(first).__name__ if first is not None else None
    if kind == "Rescaling":
        new, report = _into_rescaling(model, first, a, b)
    elif kind == "Conv2D" and (first.padding == "valid" or np.allclose(b, 0.0, rtol=0, atol=1e-12)):
        new, report = _into_conv(model, first, a, b)
    else:
        new, report = _in_front(model, a, b)
        why = (f"the first layer '{first.name}' is a {kind}" if first is not None else
               "the input feeds several layers, or the model is not functional")
        if kind == "Conv2D":
            why = f"the first conv '{first.name}' pads '{first.padding}' (not exact after a fold)"
        report["why"] = why
    if check_inputs is not None and len(check_inputs):
        report.update(_check(model, new, spec, check_inputs, tol))
    return new, report


def _sole_consumer(model):
    """The one layer that reads the model's input, or None (several, or not a functional model)."""
    cfg = _config(model) if len(model.inputs) == 1 else {}
    if "input_layers" not in cfg:  # not functional (a Sequential's config has no graph)
        return None
    names = _io_names(cfg["input_layers"])
    if len(names) != 1:
        return None
    readers = [l for l in _config_layers(cfg) if _reads(l.get("inbound_nodes"), names[0])]
    if len(readers) != 1:
        return None
    layer = model.get_layer(readers[0]["config"]["name"])
    return None if hasattr(layer, "layers") else layer


def _config(model) -> dict:
    """The functional model's config, or {} when it has none Keras can write (a Lambda of a
    TensorFlow function, a subclassed model)."""
    if not (getattr(model, "_is_graph_network", False) or type(model).__name__ == "Functional"):  # tf_keras / Keras 3
        return {}
    try:
        return copy.deepcopy(model.get_config())
    except Exception:  # noqa: BLE001 - TypeError/NotImplementedError from serialization
        return {}


def _io_names(entry) -> list:
    """Layer names of a config's input_layers/output_layers: tf_keras lists [[name, 0, 0], ...],
    Keras 3 writes a single one flat, [name, 0, 0]."""
    return [entry[0]] if entry and isinstance(entry[0], str) else [e[0] for e in entry]


def _config_layers(config: dict) -> list:
    return [l for l in config["layers"] if l["class_name"] != "InputLayer"]


def _reads(nodes, name: str) -> bool:
    """Whether a layer's inbound_nodes refer to layer ``name`` (any nesting of its config; Keras 3
    keeps a ``keras_history`` tuple where tf_keras has a list)."""
    if isinstance(nodes, (list, tuple)):
        if len(nodes) >= 3 and nodes[0] == name and isinstance(nodes[1], int) and isinstance(nodes[2], int):
            return True
        return any(_reads(n, name) for n in nodes)
    if isinstance(nodes, dict):
        return any(_reads(v, name) for v in nodes.values())
    return False


def _rename(nodes, old: str, new: str):
    if isinstance(nodes, (list, tuple)):
        if len(nodes) >= 3 and nodes[0] == old and isinstance(nodes[1], int) and isinstance(nodes[2], int):
            return [new] + nodes[1:]
        return [_rename(n, old, new) for n in nodes]
    if isinstance(nodes, dict):
        return {k: _rename(v, old, new) for k, v in nodes.items()}
    return nodes


def _rebuild(model, config: dict, weights: dict):
    """``model`` rebuilt from ``config``, every layer's weights copied by name, then the layers of
    ``weights`` (name -> list of arrays) set to those."""
    from edgecnn.models.keras3 import keras_module

    keras = keras_module(model)
    objects = {type(l).__name__: type(l) for l in model.layers}
    new = keras.Model.from_config(config, custom_objects=objects)
    for layer in model.layers:
        if layer.name in weights or not layer.weights:
            continue
        new.get_layer(layer.name).set_weights(layer.get_weights())
    for name, w in weights.items():
        new.get_layer(name).set_weights(w)
    return new


def _into_rescaling(model, layer, a, b):
    cfg = _config(model)
    entry = next(l for l in cfg["layers"] if l["config"]["name"] == layer.name)
    s = np.broadcast_to(np.asarray(entry["config"]["scale"], np.float64), a.shape)
    o = np.broadcast_to(np.asarray(entry["config"]["offset"], np.float64), a.shape)
    # (a u + b) s + o = (a s) u + (b s + o)
    entry["config"]["scale"] = [float(v) for v in a * s]
    entry["config"]["offset"] = [float(v) for v in b * s + o]
    return _rebuild(model, cfg, {}), {"how": f"into the first layer '{layer.name}' (Rescaling: scale and offset)",
                                      "layer": layer.name, "exact": True}


def _into_conv(model, conv, a, b):
    w = conv.get_weights()
    kernel = w[0].astype(np.float64)                       # (kh, kw, cin, cout)
    k_o = np.einsum("hwco,c->o", kernel, b)                 # what the input's offset adds per filter
    kernel = (kernel * a[None, None, :, None]).astype(np.float32)
    cfg = _config(model)
    report = {"layer": conv.name, "exact": True}
    if conv.use_bias:
        weights = {conv.name: [kernel, (w[1] + k_o).astype(np.float32)]}
        report["how"] = f"into the first conv '{conv.name}' ({conv.padding}): kernel scaled per input channel, offset into its bias"
    else:
        bn = _sole_batchnorm_after(model, cfg, conv.name)
        if bn is not None:
            names = [v.name.split("/")[-1].split(":")[0] for v in bn.weights]
            bw = bn.get_weights()
            i = names.index("moving_mean")
            bw[i] = (bw[i] - k_o).astype(np.float32)         # BN(y + K) with mean m == BN(y) with mean m - K
            weights = {conv.name: [kernel], bn.name: bw}
            report["how"] = (f"into the first conv '{conv.name}' ({conv.padding}): kernel scaled per input channel, "
                             f"offset into the moving mean of '{bn.name}'")
        else:
            entry = next(l for l in cfg["layers"] if l["config"]["name"] == conv.name)
            entry["config"]["use_bias"] = True
            weights = {conv.name: [kernel, k_o.astype(np.float32)]}
            report["how"] = (f"into the first conv '{conv.name}' ({conv.padding}): kernel scaled per input channel, "
                             f"offset as a new bias")
    return _rebuild(model, cfg, weights), report


def _sole_batchnorm_after(model, cfg: dict, name: str):
    readers = [l for l in _config_layers(cfg) if _reads(l.get("inbound_nodes"), name)]
    outputs = set(_io_names(cfg["output_layers"]))
    if len(readers) == 1 and readers[0]["class_name"] == "BatchNormalization" and name not in outputs:
        return model.get_layer(readers[0]["config"]["name"])
    return None


def _in_front(model, a, b):
    """A 1x1 depthwise conv (kernel ``a``, bias ``b``) between the input and the layers that read
    it (config surgery: the graph stays flat, so the deploy rewrite and the per-op precision
    choice see every layer); a Keras 3 model, or one that is not functional, is called as a layer
    instead (Keras 3 writes its graph in another config format)."""
    from edgecnn.models.keras3 import is_keras3, keras_module

    keras = keras_module(model)
    weights = [np.asarray(a, np.float32).reshape(1, 1, -1, 1), np.asarray(b, np.float32)]
    how = "in front: a 1x1 depthwise conv (per-channel scale and offset on the input image)"
    cfg = {} if is_keras3(model) else _config(model)
    if "input_layers" in cfg and len(_io_names(cfg["input_layers"])) == 1:
        name = _io_names(cfg["input_layers"])[0]
        for l in _config_layers(cfg):
            l["inbound_nodes"] = _rename(l.get("inbound_nodes"), name, CAMERA_LAYER)
        at = next(i for i, l in enumerate(cfg["layers"]) if l["config"]["name"] == name) + 1
        layer = keras.layers.DepthwiseConv2D(1, use_bias=True, name=CAMERA_LAYER)
        cfg["layers"].insert(at, {"class_name": "DepthwiseConv2D", "name": CAMERA_LAYER, "config": layer.get_config(),
                                  "inbound_nodes": [[[name, 0, 0, {}]]]})
        try:
            return _rebuild(model, cfg, {CAMERA_LAYER: weights}), {"how": how, "layer": CAMERA_LAYER, "exact": True}
        except Exception:  # noqa: BLE001 - a config Keras cannot rebuild (wrappers): call the model instead
            pass
    inp = keras.Input(tuple(model.inputs[0].shape[1:]), name="image")
    layer = keras.layers.DepthwiseConv2D(1, use_bias=True, name=CAMERA_LAYER)
    x = layer(inp)
    layer.set_weights(weights)
    return keras.Model(inp, model(x), name=model.name), {"how": how + ", the model called as a layer",
                                                         "layer": CAMERA_LAYER, "exact": True}


def _check(model, new, spec, images: np.ndarray, tol: float) -> dict:
    from edgecnn.data.preprocess import preprocess

    x, u = preprocess(images, spec), preprocess(images, camera_spec(spec))
    p0 = np.asarray(model.predict(x, verbose=0, batch_size=64), np.float64)
    p1 = np.asarray(new.predict(u, verbose=0, batch_size=64), np.float64)
    diff = float(np.max(np.abs(p0 - p1)))
    if not np.isfinite(diff) or diff > tol:
        raise ExportError(f"moving the input normalization into '{model.name}' changed its outputs by {diff:.3g} "
                          f"(> {tol:g}) on {len(images)} images; refused.")
    return {"max_abs_diff": diff, "check_images": int(len(images))}


# ---------------------------------------------------------------------------- int8 camera input
def calibration_reaching_ends(images_u8: np.ndarray) -> np.ndarray:
    """Calibration images whose pixels reach 0 and 255: the converter sets a uint8 input's scale
    and zero point from the calibrated range, and only [0, 1] in ``u`` gives 1/255 and 0, so
    that a camera's bytes are the quantized input (MediaPipe feeds them whatever the scale
    says: a set of 16..235 images gave scale 0.0036, a darker image with no warning). Where the
    set falls short, one pixel of its first image is set to 0, one of its last to 255."""
    x = np.array(images_u8, np.uint8, copy=True)
    if len(x) and x.min() > 0:
        x[0, 0, 0, :] = 0
    if len(x) and x.max() < 255:
        x[-1, -1, -1, :] = 255
    return x


def check_camera_input(tensor: dict, where: str) -> None:
    """An integer input must read pixels / 255 as the pixel bytes: scale 1/255 and zero point 0
    for uint8 (-128 for int8), else ``ExportError`` (a camera's bytes would be misread)."""
    want = float(np.float32(1.0 / 255.0))
    zp = 0 if tensor["dtype"] == "uint8" else -128
    if abs(float(tensor["scale"]) - want) > 1e-9 or int(tensor["zero_point"]) != zp:
        raise ExportError(f"{where}: its {tensor['dtype']} input has scale {tensor['scale']:.9g} and zero point "
                          f"{tensor['zero_point']}, not 1/255 and {zp}: a camera's pixels would be misread. The "
                          f"calibration images must reach 0 and 255.")
