"""Parameters, MACs and activation memory of a Keras model, per layer and in total.

Computed from the model graph (layer configs and static shapes), batch 1, no TF session tricks.
MACs are multiply-accumulates of convolutions and dense layers, the quantity the papers call
"operations" (ResNet-20 ~ 41 M); batch norm, activations, pooling and additions are not counted.
Peak activation memory walks the layers in topological order and keeps each tensor alive until
its last consumer has run: the most bytes (float32) alive at once.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List


@dataclasses.dataclass
class LayerStats:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int
    activation_bytes: int  # float32 bytes of this layer's outputs, batch 1


@dataclasses.dataclass
class ModelStats:
    name: str
    layers: List[LayerStats]
    params: int
    trainable_params: int
    macs: int
    peak_activation_bytes: int

    @property
    def fp32_bytes(self) -> int:
        return self.params * 4

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "trainable_params": self.trainable_params,
                "macs": self.macs, "fp32_bytes": self.fp32_bytes,
                "peak_activation_bytes": self.peak_activation_bytes,
                "layers": [dataclasses.asdict(s) for s in self.layers]}


def _shape(t) -> tuple:
    return tuple(int(d) if d is not None else 1 for d in t.shape[1:])


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _layer_macs(layer, in_shapes, out_shapes) -> int:
    kind = type(layer).__name__
    if not out_shapes:
        return 0
    out = out_shapes[0]
    if kind in ("Conv2D", "Conv1D", "Conv3D"):
        groups = getattr(layer, "groups", 1) or 1
        in_c = in_shapes[0][-1]
        return _numel(out) * _numel(layer.kernel_size) * in_c // groups
    if kind == "DepthwiseConv2D":
        return _numel(out) * _numel(layer.kernel_size)
    if kind == "SeparableConv2D":
        in_c = in_shapes[0][-1]
        dm = layer.depth_multiplier
        spatial = _numel(out[:-1])
        return spatial * in_c * dm * _numel(layer.kernel_size) + spatial * in_c * dm * out[-1]
    if kind == "Dense":
        return _numel(in_shapes[0]) // in_shapes[0][-1] * in_shapes[0][-1] * out[-1]
    if hasattr(layer, "layers"):  # a nested model: sum its own layers
        return analyze(layer).macs
    return 0


def analyze(model) -> ModelStats:
    """Per-layer and total statistics of a built tf_keras model (functional or Sequential)."""
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    stats: List[LayerStats] = []
    # Liveness for peak memory: tensor id -> (bytes, index of its last consumer).
    last_use: Dict[int, int] = {}
    step_io = []
    def key(t):
        return t.ref() if hasattr(t, "ref") else id(t)
    produced = {key(t): 4 * _numel(_shape(t)) for t in _as_list(model.inputs)}
    for i, layer in enumerate(layers):
        ins = _as_list(layer.input)
        outs = _as_list(layer.output)
        in_shapes = [_shape(t) for t in ins]
        out_shapes = [_shape(t) for t in outs]
        act = sum(4 * _numel(s) for s in out_shapes)
        stats.append(LayerStats(layer.name, type(layer).__name__, out_shapes[0] if len(out_shapes) == 1 else tuple(out_shapes),
                                int(layer.count_params()), int(_layer_macs(layer, in_shapes, out_shapes)), act))
        for t in ins:
            last_use[key(t)] = i
        for t in outs:
            produced[key(t)] = 4 * _numel(_shape(t))
        step_io.append(([key(t) for t in ins], [key(t) for t in outs]))
    for t in _as_list(model.outputs):
        last_use[key(t)] = len(layers)
    live = {key(t): produced[key(t)] for t in _as_list(model.inputs)}
    peak = sum(live.values())
    for i, (ins, outs) in enumerate(step_io):
        for k in outs:
            live[k] = produced[k]
        peak = max(peak, sum(live.values()))
        for k in list(live):
            if last_use.get(k, -1) <= i:
                del live[k]
    trainable = int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
    return ModelStats(model.name, stats, int(model.count_params()), trainable,
                      int(sum(s.macs for s in stats)), int(peak))
