"""A framework-neutral ANN graph, channel-last, and its numpy forward pass.

Importers (ONNX, Keras HDF5, NIR) produce an :class:`AnnGraph`; the converter
turns it into a spiking :class:`~eventsnn.network.Network`. Layout is fixed
here once: activations (N, H, W, C), conv weights (kh, kw, C_in, C_out), dense
weights (N_in, N_out) whose rows follow the HWC flatten order. Importers from
channel-first frameworks permute weights (and the rows of the first dense
layer after a flatten) at import time.

Ops: ``conv2d``, ``dense``, ``relu``, ``avgpool2d``, ``maxpool2d``, ``flatten``,
``batchnorm`` (gamma, beta, mean, var, eps), ``dropout`` (identity at
inference), ``add``, ``softmax`` (over the last axis: the features of a flat
tensor, the channels of a map; only at a model's output, where
:func:`eventsnn.convert.simplify` drops it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import EventsnnError

OPS = ("conv2d", "dense", "relu", "avgpool2d", "maxpool2d", "flatten", "batchnorm", "dropout", "add",
       "softmax")


class ConversionError(EventsnnError):
    """A model that cannot be imported or converted; the message names the node."""


@dataclass
class AnnLayer:
    name: str
    op: str
    inputs: tuple
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: tuple = ()
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    bn: dict = field(default_factory=dict)  # gamma, beta, mean, var, eps


@dataclass
class AnnGraph:
    input_shape: tuple  # (H, W, C)
    layers: list
    source: dict = field(default_factory=dict)

    def layer(self, name: str) -> AnnLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def output(self) -> str:
        return self.layers[-1].name

    def consumers(self, name: str) -> list:
        return [layer for layer in self.layers if name in layer.inputs]


def prune(layers: list, output: str) -> list:
    """Keep only the layers ``output`` depends on, in their order (importers drop dead branches)."""
    by_name = {layer.name: layer for layer in layers}
    need, stack = set(), [output]
    while stack:
        name = stack.pop()
        if name == "input" or name in need:
            continue
        need.add(name)
        stack.extend(by_name[name].inputs)
    return [layer for layer in layers if layer.name in need]


def _conv(x, weight, bias, stride, padding):
    # Accumulated in float64 and rounded to float32 once: float32 BLAS (sgemm) rounds
    # differently per CPU kernel and batch size, which moved calibration scales across machines.
    n, h, w, c = x.shape
    kh, kw, _, co = weight.shape
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (padding[0], padding[0]), (padding[1], padding[1]), (0, 0)))
    w64 = np.asarray(weight, np.float64)
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    out = np.zeros((n, oh, ow, co), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky: ky + stride[0] * oh: stride[0], kx: kx + stride[1] * ow: stride[1], :]
            out += patch @ w64[ky, kx]
    if bias is not None:
        out += bias
    return out.astype(np.float32)


def _dense(x, weight, bias):
    # float64 accumulation, one rounding to float32: the same result on any BLAS kernel (see _conv)
    out = np.asarray(x, np.float64).reshape(x.shape[0], -1) @ np.asarray(weight, np.float64)
    if bias is not None:
        out += bias
    return out.astype(np.float32)


def _pool(x, kernel, stride, reduce):
    n, h, w, c = x.shape
    oh = (h - kernel[0]) // stride[0] + 1
    ow = (w - kernel[1]) // stride[1] + 1
    parts = [x[:, ky: ky + stride[0] * oh: stride[0], kx: kx + stride[1] * ow: stride[1], :]
             for ky in range(kernel[0]) for kx in range(kernel[1])]
    return reduce(np.stack(parts), axis=0)


def apply_layer(layer: AnnLayer, inputs: list) -> np.ndarray:
    x = inputs[0]
    op = layer.op
    if op == "conv2d":
        return _conv(x, layer.weight, layer.bias, layer.stride, layer.padding)
    if op == "dense":
        return _dense(x, layer.weight, layer.bias)
    if op == "relu":
        return np.maximum(x, 0)
    if op == "avgpool2d":
        return _pool(x, layer.kernel, layer.stride, np.mean).astype(np.float32)
    if op == "maxpool2d":
        return _pool(x, layer.kernel, layer.stride, np.max)
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "batchnorm":
        bn = layer.bn
        scale = bn["gamma"] / np.sqrt(bn["var"] + bn["eps"])
        return ((x - bn["mean"]) * scale + bn["beta"]).astype(np.float32)
    if op == "dropout":
        return x
    if op == "add":
        return sum(inputs[1:], inputs[0])
    if op == "softmax":
        z = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return (z / np.sum(z, axis=-1, keepdims=True)).astype(np.float32)
    raise ConversionError(f"layer {layer.name!r}: unsupported op {op!r}")


def forward(graph: AnnGraph, x: np.ndarray, keep: bool = False, batch: int = 256):
    """Run the ANN on x (N, H, W, C); return the output, or every layer's output if ``keep``."""
    x = np.asarray(x, np.float32)
    results = {}
    for start in range(0, x.shape[0], batch):
        acts = {"input": x[start: start + batch]}
        for layer in graph.layers:
            acts[layer.name] = apply_layer(layer, [acts[i] for i in layer.inputs])
        if not keep:
            acts = {graph.output: acts[graph.output]}
        for k, v in acts.items():
            results.setdefault(k, []).append(v)
    merged = {k: np.concatenate(v) for k, v in results.items()}
    return merged if keep else merged[graph.output]
