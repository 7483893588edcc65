"""Layer and neuron specifications, the layer graph, shape inference and validation.

A :class:`Network` is an ordered list of :class:`Layer` objects. Every layer names
its inputs (``"input"`` for the network input, otherwise an earlier layer), so the
list order is a topological order. Activations are channel-last: a spatial shape
is ``(H, W, C)``; a flat shape ``(N,)`` is stored internally as ``(1, 1, N)``, so
that flattening an ``(H, W, C)`` map is the identity on flat HWC indices.

Neuron model (discrete time, one step)::

    V[t] = leak * V[t-1] + I[t]          (IF: leak = 1; LIF: leak = exp(-1/tau))
    s[t] = V[t] >= threshold
    V[t] <- V[t] - threshold  (reset "subtract", Rueckauer et al. 2017;
                               Han et al. 2020, RMP-SNN)
    V[t] <- 0                 (reset "zero", Diehl et al. 2015)

With ``max_spikes = K > 1`` a neuron may fire up to K spikes in one step (the
MultiSpike neuron of the sinabs library, with a cap)::

    n[t] = min(K, floor(V[t] / threshold))   if V[t] >= threshold, else 0
    V[t] <- V[t] - n[t] * threshold            (subtract; "zero" still sets 0)

Each of the n spikes is its own event, so spike and synaptic-op counts stay exact.

In continuous time the same neuron decays exactly, ``V(t) = V(t0) exp(-(t-t0)/tau)``,
between the events that reach it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import NetworkError  # re-exported here, its historical home

LAYER_KINDS = ("conv2d", "dense", "avgpool2d", "maxpool2d", "flatten", "add")
NEURON_KINDS = ("if", "lif")
RESETS = ("subtract", "zero")
ENCODINGS = ("direct", "poisson")
DECODINGS = ("spikes", "membrane")

# Layers whose output may be a plain (non-spiking) current summed into an `add`.
_LINEAR_KINDS = ("conv2d", "dense", "avgpool2d")
# Sizes past these are surely a corrupt or hostile file, not a network.
_MAX_DIM = 1 << 16
_MAX_NEURONS = 1 << 31
# Spikes one neuron may fire in one step; past this a layer is better run graded.
MAX_SPIKES_LIMIT = 1 << 10



@dataclass
class Neuron:
    """A spiking population's parameters.

    ``v_init`` is the membrane potential at t = 0 as a fraction of the
    threshold, in [0, 1): 0.5 halves the rounding error of a converted net at
    short latencies (Bu et al. 2022, "Optimal ANN-SNN conversion", ICLR).
    ``threshold`` is a scalar or one value per channel (last axis). ``leak`` is
    the per-step retention factor lambda (1 for IF); ``tau`` the matching time
    constant, ``leak = exp(-1/tau)``, used for exact decay in continuous time.
    ``max_spikes`` is the most spikes a neuron fires in one step (1: the usual
    binary spike; see the module doc).
    """

    kind: str = "if"
    threshold: Any = 1.0
    reset: str = "subtract"
    leak: float = 1.0
    v_init: float = 0.0
    max_spikes: int = 1

    @property
    def tau(self) -> float:
        """Time constant in steps: ``leak = exp(-1/tau)``; ``inf`` for IF."""
        if self.leak >= 1.0:
            return math.inf
        return -1.0 / math.log(self.leak)

    @classmethod
    def lif(cls, threshold=1.0, reset="subtract", leak=None, tau=None) -> "Neuron":
        """A LIF population from either ``leak`` (per step) or ``tau`` (steps)."""
        if (leak is None) == (tau is None):
            raise NetworkError("LIF neuron: give exactly one of leak or tau")
        if tau is not None:
            if not tau > 0:
                raise NetworkError(f"LIF neuron: tau must be positive, got {tau}")
            leak = math.exp(-1.0 / tau)
        return cls("lif", threshold, reset, float(leak))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "threshold": np.asarray(self.threshold, np.float32),
                "reset": self.reset, "leak": float(self.leak), "v_init": float(self.v_init),
                "max_spikes": int(self.max_spikes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Neuron":
        return cls(d.get("kind", "if"), d.get("threshold", 1.0),
                   d.get("reset", "subtract"), float(d.get("leak", 1.0)), float(d.get("v_init", 0.0)),
                   int(d.get("max_spikes", 1)))


@dataclass
class Layer:
    """One node of the graph.

    kinds and their fields:

    - ``conv2d``: ``weight`` (kh, kw, C_in, C_out), optional ``bias`` (C_out,),
      ``stride`` and ``padding`` (y, x). Cross-correlation, as PyTorch and Keras.
    - ``dense``: ``weight`` (N_in, N_out) on a flat input, optional ``bias``.
    - ``avgpool2d``: ``kernel``, ``stride`` (default = kernel); weight 1/(kh*kw).
    - ``maxpool2d``: ``kernel``, ``stride``; a spiking gate, no neuron: an output
      spikes when an input of its window spikes whose running spike count is the
      largest in the window (Rueckauer et al. 2017, Sec. 2.2.3).
    - ``flatten``: (H, W, C) -> (H*W*C,) in HWC order; no neuron.
    - ``add``: sums the currents of two or more same-shaped inputs (residual join).
      An input that is a conv2d/dense/avgpool2d without a neuron contributes its
      weighted current; a spiking input contributes its spikes times its entry
      of the optional ``weight`` (one scale per input, default 1; the scales of
      neuron-less inputs are unused, their own weights carry the scale).

    ``neuron`` is the layer's population; conv2d/dense/avgpool2d may leave it
    ``None`` only when every consumer is an ``add``. ``delay`` is the synaptic
    delay of the layer's incoming connections (continuous-time mode only).
    """

    name: str
    kind: str
    inputs: tuple = ()
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: tuple = ()
    stride: tuple | None = None
    padding: tuple = (0, 0)
    neuron: Neuron | None = None
    delay: float = 0.0

    @property
    def spiking(self) -> bool:
        """Whether the layer emits spikes (has a population or is a max-pool gate)."""
        return self.neuron is not None or self.kind == "maxpool2d"


@dataclass
class Network:
    """An ordered layer graph with its input, encoding and readout.

    ``input_shape`` is (H, W, C) or (N,). ``encoding`` is the default input
    coding (``direct``: the input is an analog current into the first layers;
    ``poisson``: Bernoulli spikes with probability x per step). ``decoding`` is
    how the last layer is read: ``spikes`` (spike counts) or ``membrane`` (the
    last layer integrates without spiking; its final potential is the output).
    """

    input_shape: tuple
    layers: list = field(default_factory=list)
    encoding: str = "direct"
    decoding: str = "spikes"
    provenance: dict = field(default_factory=dict)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    @property
    def output_layer(self) -> Layer:
        return self.layers[-1]

    def shapes(self) -> dict:
        """Validate the graph and return ``{name: (H, W, C)}`` including ``input``."""
        return infer_shapes(self)

    def spiking_layers(self) -> list:
        return [layer for layer in self.layers if layer.spiking]


def as_hwc(shape) -> tuple:
    """A shape as (H, W, C): flat (N,) becomes (1, 1, N)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return (1, 1, shape[0])
    if len(shape) == 3:
        return shape
    raise NetworkError(f"input shape must be (H, W, C) or (N,), got {shape}")


def _pair(value, what: str, where: str) -> tuple:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr.astype(np.float64))) or np.any(arr != np.round(arr)):
        raise NetworkError(f"{where}: field '{what}': expected one or two integers, got {value!r}")
    return (int(arr[0]), int(arr[1]))


def _check_array(arr, what: str, where: str, shape=None) -> np.ndarray:
    if arr is None:
        raise NetworkError(f"{where}: field '{what}' is missing")
    try:
        out = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError):
        raise NetworkError(f"{where}: field '{what}' is not numeric") from None
    if shape is not None and out.shape != tuple(shape):
        raise NetworkError(f"{where}: field '{what}' has shape {out.shape}, expected {tuple(shape)}")
    if not np.all(np.isfinite(out)):
        raise NetworkError(f"{where}: field '{what}' contains NaN or infinite values")
    return out


def _validate_neuron(neuron: Neuron, channels: int, where: str) -> None:
    where = f"{where}: neuron"
    neuron.kind, neuron.reset = str(neuron.kind), str(neuron.reset)
    if neuron.kind not in NEURON_KINDS:
        raise NetworkError(f"{where}: field 'kind': unknown neuron kind {neuron.kind!r} (known: {', '.join(NEURON_KINDS)})")
    if neuron.reset not in RESETS:
        raise NetworkError(f"{where}: field 'reset': unknown reset {neuron.reset!r} (known: {', '.join(RESETS)})")
    thr = np.asarray(neuron.threshold, dtype=np.float32)
    if thr.ndim > 1 or (thr.ndim == 1 and thr.shape[0] != channels):
        raise NetworkError(f"{where}: field 'threshold' must be a scalar or have one value per channel ({channels}), got shape {thr.shape}")
    if not np.all(np.isfinite(thr)) or np.any(thr <= 0):
        raise NetworkError(f"{where}: field 'threshold' must be finite and positive")
    neuron.threshold = thr
    leak = float(neuron.leak)
    if not (0.0 < leak <= 1.0) or math.isnan(leak):
        raise NetworkError(f"{where}: field 'leak' must be in (0, 1], got {neuron.leak}")
    if neuron.kind == "if" and leak != 1.0:
        raise NetworkError(f"{where}: an IF neuron has leak 1; use kind 'lif' for leak {leak}")
    neuron.leak = leak
    v_init = float(neuron.v_init)
    if not (0.0 <= v_init < 1.0):
        raise NetworkError(f"{where}: field 'v_init' must be in [0, 1) (a fraction of the threshold), got {neuron.v_init}")
    neuron.v_init = v_init
    max_spikes = neuron.max_spikes
    if isinstance(max_spikes, (bool, np.bool_)) or not isinstance(max_spikes, (int, np.integer)) \
            or not 1 <= max_spikes <= MAX_SPIKES_LIMIT:
        raise NetworkError(f"{where}: field 'max_spikes' must be an integer in 1..{MAX_SPIKES_LIMIT}, "
                           f"got {max_spikes!r}")
    neuron.max_spikes = int(max_spikes)


def infer_shapes(net: Network) -> dict:
    """Check every layer against its inputs; return the (H, W, C) shape of each."""
    if net.encoding not in ENCODINGS:
        raise NetworkError(f"network: field 'encoding': unknown encoding {net.encoding!r} (known: {', '.join(ENCODINGS)})")
    if net.decoding not in DECODINGS:
        raise NetworkError(f"network: field 'decoding': unknown decoding {net.decoding!r} (known: {', '.join(DECODINGS)})")
    shapes = {"input": as_hwc(net.input_shape)}
    if any(d <= 0 or d > _MAX_DIM for d in shapes["input"]):
        raise NetworkError(f"network: field 'input_shape': dimensions must be in 1..{_MAX_DIM}, got {net.input_shape}")
    if not net.layers:
        raise NetworkError("network: it has no layers")
    consumers: dict = {}
    for i, layer in enumerate(net.layers):
        layer.name, layer.kind = str(layer.name), str(layer.kind)
        where = f"layer {i} ({layer.name!r})"
        if not layer.name or layer.name == "input" or layer.name in shapes:
            raise NetworkError(f"{where}: field 'name': empty, reserved or duplicate name")
        if layer.kind not in LAYER_KINDS:
            raise NetworkError(f"{where}: field 'kind': unknown layer kind {layer.kind!r} (known: {', '.join(LAYER_KINDS)})")
        if not layer.inputs:
            layer.inputs = (net.layers[i - 1].name if i else "input",)
        layer.inputs = tuple(layer.inputs)
        for src in layer.inputs:
            if src not in shapes:
                raise NetworkError(f"{where}: field 'inputs': {src!r} is not the input or an earlier layer")
            consumers.setdefault(src, []).append(layer)
        if layer.kind != "add" and len(layer.inputs) != 1:
            raise NetworkError(f"{where}: field 'inputs': a {layer.kind} layer takes exactly one input")
        in_shape = shapes[layer.inputs[0]]
        shapes[layer.name] = _layer_shape(layer, in_shape, [shapes[s] for s in layer.inputs], where)
        if shapes[layer.name][0] * shapes[layer.name][1] * shapes[layer.name][2] >= _MAX_NEURONS:
            raise NetworkError(f"{where}: output shape {shapes[layer.name]} is too large")
        if layer.kind in ("flatten", "maxpool2d") and layer.neuron is not None:
            raise NetworkError(f"{where}: field 'neuron': a {layer.kind} layer has no neuron population")
        if layer.kind == "add" and layer.neuron is None:
            raise NetworkError(f"{where}: field 'neuron': an add layer needs a neuron population")
        if layer.neuron is not None:
            _validate_neuron(layer.neuron, shapes[layer.name][2], where)
        delay = float(layer.delay)
        if not (math.isfinite(delay) and delay >= 0):
            raise NetworkError(f"{where}: field 'delay' must be finite and >= 0, got {layer.delay}")
        layer.delay = delay
    for i, layer in enumerate(net.layers):
        where = f"layer {i} ({layer.name!r})"
        users = consumers.get(layer.name, [])
        if layer.kind in _LINEAR_KINDS and layer.neuron is None:
            if not users or any(u.kind != "add" for u in users):
                raise NetworkError(f"{where}: field 'neuron': a {layer.kind} layer without a neuron must feed only add layers")
        if layer.kind == "add":
            for src in layer.inputs:
                if src != "input" and not _current_source_ok(net.layer(src)):
                    raise NetworkError(f"{where}: field 'inputs': {src!r} is a {net.layer(src).kind} layer and cannot feed an add")
        if layer.kind == "flatten" and any(u.kind == "add" for u in users):
            raise NetworkError(f"{where}: a flatten layer cannot feed an add layer directly")
        if layer.kind == "maxpool2d" and layer.inputs[0] != "input":
            src = net.layer(layer.inputs[0])
            if src.neuron is not None and src.neuron.max_spikes > 1:
                raise NetworkError(f"{where}: a maxpool2d gate passes one spike per step, but its input "
                                   f"{src.name!r} fires up to {src.neuron.max_spikes}; give it max_spikes 1")
    last = net.layers[-1]
    if not last.spiking:
        raise NetworkError(f"layer {len(net.layers) - 1} ({last.name!r}): the output layer must have a neuron population")
    if net.decoding == "membrane" and last.neuron is None:
        raise NetworkError("network: field 'decoding': membrane readout needs an output layer with a neuron population")
    _check_provenance(net, shapes)
    return shapes


def _check_provenance(net: Network, shapes: dict) -> None:
    """Check the parts of ``provenance`` that a run reads, now rather than after the simulation.

    ``provenance`` is free-form, but ``folded_pools`` ({layer: [sy, sx]}, written by
    ``eventsnn convert``) decides how the source ANN's MACs are counted: every
    entry must name a conv2d/dense layer and give a pool that fits its input.
    """
    if net.provenance is None:
        net.provenance = {}
    if not isinstance(net.provenance, dict):
        raise NetworkError(f"network: field 'provenance' must be a JSON object, got {type(net.provenance).__name__}")
    folded = net.provenance.get("folded_pools")
    if folded is None:
        return
    if not isinstance(folded, dict):
        raise NetworkError("network: field 'provenance': 'folded_pools' must map layer names to [sy, sx]")
    kinds = {layer.name: layer for layer in net.layers}
    for name, pool in folded.items():
        where = f"network: field 'provenance': 'folded_pools' entry {name!r}"
        layer = kinds.get(name)
        if layer is None or layer.kind not in ("conv2d", "dense"):
            raise NetworkError(f"{where}: not a conv2d or dense layer of this network")
        if not (isinstance(pool, list) and len(pool) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= _MAX_DIM for v in pool)):
            raise NetworkError(f"{where}: expected two positive integers [sy, sx], got {pool!r}")
        sy, sx = pool
        h, w, c = shapes[layer.inputs[0]]
        if layer.kind == "conv2d":
            kh, kw = layer.weight.shape[:2]
            fits = all(v % sy == 0 for v in (h, kh, layer.stride[0], layer.padding[0])) \
                and all(v % sx == 0 for v in (w, kw, layer.stride[1], layer.padding[1]))
        else:
            fits = (h * w * c) % (sy * sx) == 0
        if not fits:
            raise NetworkError(f"{where}: pool {pool!r} does not fit the layer's {h}x{w}x{c} input")


def _current_source_ok(layer: Layer) -> bool:
    return layer.spiking or layer.kind in _LINEAR_KINDS


def _layer_shape(layer: Layer, in_shape: tuple, all_in: list, where: str) -> tuple:
    h, w, c = in_shape
    kind = layer.kind
    if kind in ("conv2d", "dense") and layer.kernel:
        raise NetworkError(f"{where}: field 'kernel': not used by {kind} (the weight shape gives it)")
    if kind == "conv2d":
        weight = _check_array(layer.weight, "weight", where)
        if weight.ndim != 4:
            raise NetworkError(f"{where}: field 'weight' must be 4-D (kh, kw, C_in, C_out), got shape {weight.shape}")
        kh, kw, cin, cout = weight.shape
        if cin != c:
            raise NetworkError(f"{where}: field 'weight': shape {weight.shape} expects {cin} input channels but the input {layer.inputs[0]!r} has shape {in_shape}")
        stride = _pair(layer.stride if layer.stride is not None else 1, "stride", where)
        padding = _pair(layer.padding, "padding", where)
        if min(stride) < 1 or min(padding) < 0 or padding[0] >= kh or padding[1] >= kw:
            raise NetworkError(f"{where}: fields 'stride'/'padding': stride must be >= 1 and 0 <= padding < kernel size")
        layer.weight, layer.stride, layer.padding = weight, stride, padding
        layer.bias = None if layer.bias is None else _check_array(layer.bias, "bias", where, (cout,))
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (w + 2 * padding[1] - kw) // stride[1] + 1
        if oh < 1 or ow < 1:
            raise NetworkError(f"{where}: kernel {kh}x{kw} does not fit the input {in_shape} with padding {padding}")
        return (oh, ow, cout)
    if kind == "dense":
        weight = _check_array(layer.weight, "weight", where)
        if weight.ndim != 2:
            raise NetworkError(f"{where}: field 'weight' must be 2-D (N_in, N_out), got shape {weight.shape}")
        if h != 1 or w != 1:
            raise NetworkError(f"{where}: a dense layer needs a flat input; add a flatten layer before it (input shape {in_shape})")
        if weight.shape[0] != c:
            raise NetworkError(f"{where}: field 'weight': shape {weight.shape} expects {weight.shape[0]} inputs but the input {layer.inputs[0]!r} has {c}")
        layer.weight = weight
        layer.bias = None if layer.bias is None else _check_array(layer.bias, "bias", where, (weight.shape[1],))
        return (1, 1, weight.shape[1])
    if kind in ("avgpool2d", "maxpool2d"):
        if layer.weight is not None or layer.bias is not None:
            raise NetworkError(f"{where}: a {kind} layer has no weight or bias")
        kernel = _pair(layer.kernel, "kernel", where) if len(np.atleast_1d(layer.kernel)) else None
        if kernel is None or min(kernel) < 1:
            raise NetworkError(f"{where}: field 'kernel': a positive pool size is required")
        stride = _pair(layer.stride if layer.stride not in (None, ()) else kernel, "stride", where)
        if min(stride) < 1:
            raise NetworkError(f"{where}: field 'stride' must be >= 1")
        if tuple(_pair(layer.padding or 0, "padding", where)) != (0, 0):
            raise NetworkError(f"{where}: field 'padding': pooling layers take no padding")
        layer.kernel, layer.stride, layer.padding = kernel, stride, (0, 0)
        oh = (h - kernel[0]) // stride[0] + 1
        ow = (w - kernel[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            raise NetworkError(f"{where}: pool {kernel} does not fit the input {in_shape}")
        return (oh, ow, c)
    if kind == "flatten":
        return (1, 1, h * w * c)
    # add
    if len(all_in) < 2:
        raise NetworkError(f"{where}: field 'inputs': an add layer joins two or more inputs")
    if any(s != in_shape for s in all_in):
        raise NetworkError(f"{where}: field 'inputs': shapes differ: {all_in}")
    if layer.weight is not None:
        layer.weight = _check_array(layer.weight, "weight", where, (len(all_in),))
    if layer.bias is not None:
        raise NetworkError(f"{where}: field 'bias': an add layer has no bias")
    return in_shape
