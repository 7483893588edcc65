"""ANN-to-SNN conversion: BN folding, layer mapping and threshold/weight normalisation.

A ReLU unit with activation a in [0, lambda] becomes an IF neuron firing at
rate a / lambda when its weights are rescaled layer by layer (Diehl et al.
2015; Rueckauer et al. 2017)::

    W_l <- W_l * lambda_{l-1} / lambda_l ,   b_l <- b_l / lambda_l ,   V_th = 1

with lambda_l the maximum (``max``) or a percentile (``percentile``, default
99.9) of layer l's positive ReLU activations over calibration data, and
lambda_0 = 1 for the analog input. Biases are divided by lambda_l alone: they
are not fed by the previous layer's scale (getting this wrong silently ruins
the normalised ANN, see shared REFERENCE). ``spike-norm`` (Sengupta et al.
2019) keeps the ANN's weights and balances thresholds in the SNN itself: for
each layer in order, with later thresholds at +inf, V_th[l] = the largest
synaptic input sum_j w_ij s_j(t) (+ bias) any neuron of the layer receives
over the calibration run.

Mapping: conv/dense + ReLU -> spiking layer; conv/dense without ReLU feeding an
``add`` -> neuron-less current into the add; add + ReLU -> spiking add;
average pool -> spiking pool (threshold 1, weight 1/k^2: its rate is the mean
of its inputs' rates); max pool -> max-pool gate; the last conv/dense (logits)
-> the output layer (spike counts, or membrane readout). BatchNormalization is
folded into the preceding conv/dense, Dropout removed, ReLU after a pool or on
the non-negative input dropped. A bias becomes a constant input current: its
layer is updated every step (not event-driven), which costs neuron updates
but no synaptic operations.

``max_spikes = K > 1`` (the MultiSpike neuron of the sinabs library) lets every
neuron fire up to K spikes per step and scales every rate by K, so that the
clipping point stays at lambda while the quantisation step of one step shrinks
K-fold: a layer fed by the network input gets its threshold divided by K (its
rate is K times the normalised activation) and every other layer its bias
multiplied by K (its spike input is already K times larger). The accuracy at T
steps approaches that of single spikes at K*T steps, at up to K times the spikes.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from .ann import AnnGraph, ConversionError, forward
from .network import MAX_SPIKES_LIMIT, Layer, Network, Neuron

METHODS = ("max", "percentile", "spike-norm")
_HUGE = float(np.finfo(np.float32).max)


@dataclass
class ConversionReport:
    method: str
    scales: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    ann_accuracy: float | None = None
    normalized_ann_accuracy: float | None = None
    calibration_samples: int = 0


def simplify(ann: AnnGraph) -> AnnGraph:
    """Remove dropout and an output softmax; fold batch normalisation into the preceding conv/dense.

    BN: y = gamma (z - mean) / sqrt(var + eps) + beta with z = W x + b gives
    W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).

    A softmax that is the graph's output (possibly behind dropout) is dropped:
    it is monotonic per sample, so the argmax -- the class the SNN reports --
    is unchanged, and the converted network reads out the logits (spike counts
    or membrane potential) instead of probabilities. A softmax anywhere else
    raises :class:`ConversionError` naming it: it has no spiking equivalent.
    """
    g = copy.deepcopy(ann)
    # The trailing chain output <- dropout/softmax <- ... : softmaxes in it are dropped.
    tail, name = set(), g.output
    while name != "input":
        layer = g.layer(name)
        if layer.op not in ("dropout", "softmax") or len(layer.inputs) != 1 or len(g.consumers(name)) > 1:
            break
        tail.add(name)
        name = layer.inputs[0]
    rename = {}
    kept = []
    for layer in g.layers:
        layer.inputs = tuple(rename.get(i, i) for i in layer.inputs)
        if layer.op == "dropout":
            rename[layer.name] = layer.inputs[0]
            continue
        if layer.op == "softmax":
            if layer.name not in tail:
                users = [l.name for l in g.consumers(layer.name)]
                raise ConversionError(f"node {layer.name!r} (softmax): a softmax converts only as the model's "
                                      f"final layer (where it is dropped), but this one feeds {users}")
            rename[layer.name] = layer.inputs[0]
            continue
        if layer.op == "batchnorm":
            src = layer.inputs[0]
            prev = next((l for l in kept if l.name == src), None)
            users = [l for l in g.layers if src in l.inputs and l is not layer]
            if prev is None or prev.op not in ("conv2d", "dense") or users:
                raise ConversionError(f"node {layer.name!r} (BatchNormalization): can only be folded into "
                                      f"a conv or dense layer that feeds nothing else")
            bn = layer.bn
            scale = (np.asarray(bn["gamma"], np.float64) / np.sqrt(np.asarray(bn["var"], np.float64) + bn["eps"]))
            bias = np.zeros(prev.weight.shape[-1]) if prev.bias is None else prev.bias.astype(np.float64)
            prev.weight = (prev.weight.astype(np.float64) * scale).astype(np.float32)
            prev.bias = ((bias - bn["mean"]) * scale + bn["beta"]).astype(np.float32)
            rename[layer.name] = prev.name
            continue
        kept.append(layer)
    out = ann.output
    while out in rename:
        out = rename[out]
    if not kept or out == "input":
        raise ConversionError(f"node {ann.output!r}: the model has no layer to convert "
                              f"(its output is the input after removing dropout/softmax)")
    if out != kept[-1].name:
        raise ConversionError(f"node {ann.output!r}: after removing dropout/softmax the model's output is "
                              f"{out!r}, which is not its last remaining layer")
    g.layers = kept
    return g


def fold_average_pools(g: AnnGraph, shapes: dict) -> tuple:
    """Fold each non-overlapping average pool into the conv or dense layer after it.

    avgpool(s) then conv(kernel k, stride t, padding p) equals one conv on the
    pool's input with kernel k*s, stride t*s, padding p*s and weights
    W'[ky', kx'] = W[ky' // s, kx' // s] / s^2 (when the map divides by s);
    avgpool then flatten then dense spreads each dense row over the s*s inputs
    it averaged. The SNN then has no spiking pool layer: the spikes of the
    layer before the pool reach the next layer directly (s^2 more events, each
    with the same fan-out as a pooled one), with no extra quantisation step.

    Returns the new graph and ``{name of the layer that absorbed a pool: [sy, sx]}``
    (recorded in the converted file so that energy reports price the source
    ANN, pool and all, not the larger folded layer).
    """
    g = copy.deepcopy(g)
    folded = {}
    for pool in [l for l in g.layers if l.op == "avgpool2d"]:
        k, st = tuple(pool.kernel), tuple(pool.stride)
        h, w, c = shapes[pool.inputs[0]]
        users = g.consumers(pool.name)
        if k != st or h % k[0] or w % k[1] or len(users) != 1:
            continue
        user = users[0]
        sy, sx = k
        if user.op == "conv2d":
            kh, kw = user.weight.shape[:2]
            weight = np.repeat(np.repeat(user.weight, sy, axis=0), sx, axis=1) / np.float32(sy * sx)
            user.weight = weight.astype(np.float32)
            user.stride = (user.stride[0] * sy, user.stride[1] * sx)
            user.padding = (user.padding[0] * sy, user.padding[1] * sx)
        elif user.op == "flatten" and len(g.consumers(user.name)) == 1 and g.consumers(user.name)[0].op == "dense":
            dense = g.consumers(user.name)[0]
            hp, wp = h // sy, w // sx
            rows = dense.weight.reshape(hp, wp, c, -1)
            full = np.repeat(np.repeat(rows, sy, axis=0), sx, axis=1) / np.float32(sy * sx)
            dense.weight = full.reshape(h * w * c, -1).astype(np.float32)
        else:
            continue
        folded[dense.name if user.op == "flatten" else user.name] = [int(sy), int(sx)]
        user.inputs = tuple(pool.inputs[0] if i == pool.name else i for i in user.inputs)
        g.layers.remove(pool)
    return g, folded


def _ann_shapes(g: AnnGraph) -> dict:
    x = np.zeros((1,) + tuple(g.input_shape), np.float32)
    return {k: tuple(v.shape[1:]) if v.ndim == 4 else (1, 1, int(np.prod(v.shape[1:])))
            for k, v in forward(g, x, keep=True).items()}


@dataclass
class _Unit:
    """One SNN layer and the ANN tensor whose (post-ReLU) activation it carries."""
    layer: Layer
    tensor: str
    scaled: bool  # carries its own scale lambda (conv/dense/add); pools inherit


def _map(g: AnnGraph, reset: str, v_init: float = 0.0):
    """ANN ops -> SNN layers. Returns (units in order, alias: ANN name -> SNN name)."""
    alias = {"input": "input"}
    units: list = []
    by_name: dict = {}
    output = g.output

    def consumers(name):
        return g.consumers(name)

    def neuron():
        return Neuron("if", 1.0, reset, 1.0, v_init)

    for layer in g.layers:
        where = f"node {layer.name!r} ({layer.op})"
        ins = tuple(alias[i] for i in layer.inputs)
        if layer.op in ("conv2d", "dense"):
            users = consumers(layer.name)
            relu = len(users) == 1 and users[0].op == "relu"
            to_add = users and all(u.op == "add" for u in users)
            if not (relu or to_add or layer.name == output):
                raise ConversionError(f"{where}: its output is used without a ReLU "
                                      f"(by {[u.name for u in users]}); only ReLU networks convert")
            kind = "conv2d" if layer.op == "conv2d" else "dense"
            snn = Layer(layer.name, kind, ins, weight=layer.weight, bias=layer.bias,
                        stride=layer.stride if kind == "conv2d" else None,
                        padding=layer.padding if kind == "conv2d" else (0, 0),
                        neuron=None if (to_add and not relu) else neuron())
            unit = _Unit(snn, layer.name, True)
        elif layer.op == "relu":
            src = layer.inputs[0]
            unit = by_name.get(alias[src])
            if unit is None:
                raise ConversionError(f"{where}: a ReLU on the network input is not supported")
            if unit.layer.kind in ("avgpool2d", "maxpool2d", "flatten") or unit.tensor != src:
                alias[layer.name] = alias[src]  # already non-negative (spike rates), or ReLU twice
                continue
            if unit.layer.neuron is None:
                raise ConversionError(f"{where}: a ReLU must follow a conv, dense, add or pool layer")
            unit.tensor = layer.name
            alias[layer.name] = unit.layer.name
            continue
        elif layer.op in ("avgpool2d", "maxpool2d"):
            snn = Layer(layer.name, layer.op, ins, kernel=layer.kernel, stride=layer.stride,
                        neuron=neuron() if layer.op == "avgpool2d" else None)
            unit = _Unit(snn, layer.name, False)
        elif layer.op == "flatten":
            snn = Layer(layer.name, "flatten", ins)
            alias[layer.name] = layer.name
            units.append(_Unit(snn, layer.name, False))
            by_name[layer.name] = units[-1]
            continue
        elif layer.op == "add":
            users = consumers(layer.name)
            if not (len(users) == 1 and users[0].op == "relu") and layer.name != output:
                raise ConversionError(f"{where}: a residual add must be followed by a ReLU")
            snn = Layer(layer.name, "add", ins, neuron=neuron())
            unit = _Unit(snn, layer.name, True)
        else:
            raise ConversionError(f"{where}: op {layer.op!r} cannot be converted")
        units.append(unit)
        by_name[snn.name] = unit
        alias[layer.name] = snn.name
    last = units[-1].layer
    if last.neuron is None:
        raise ConversionError(f"node {last.name!r}: the output layer must be a conv, dense, add or avgpool layer")
    return units, alias


_SAMPLE_CAP = 1 << 24  # positive activations kept per layer for the percentile
_BATCH = 32  # samples per ANN pass: also the calibration shard, the same for any number of workers


@dataclass
class ActivationStats:
    """Calibration statistics of some samples: per tensor the largest positive activation
    and the positive activations kept for the percentile; the ANN outputs, per sample.

    Shards of a calibration set merge exactly (:meth:`merge`): the maximum of
    maxima, and the kept activations of each sample in sample order, so the
    percentile of the merged set is that of one pass over all samples. Kept
    activations are all of them while a layer has at most ``_SAMPLE_CAP``
    (2^24) over the whole set: the percentile is then exact. Beyond that each
    is kept with probability p = cap / (neurons * samples), drawn from a
    generator seeded by (seed, sample index) (so the draw never depends on the
    shard that holds the sample): a uniform random sample of m activations,
    whose p-quantile has a rank error of at most eps = sqrt(ln(2/delta) / (2m))
    with probability 1 - delta (Hoeffding, per tail; see docs/SCALING.md).
    """

    top: dict
    kept: dict
    outputs: np.ndarray
    first: int = 0

    @classmethod
    def merge(cls, parts) -> "ActivationStats":
        parts = sorted(parts, key=lambda s: s.first)
        names = parts[0].top.keys()
        return cls(top={k: max(p.top[k] for p in parts) for k in names},
                   kept={k: np.concatenate([p.kept[k] for p in parts]) for k in names},
                   outputs=np.concatenate([p.outputs for p in parts]), first=parts[0].first)


def percentile_rank_error(kept: int, delta: float = 1e-6) -> float:
    """Rank error eps (a fraction of all activations) of a percentile read off ``kept`` uniformly
    sampled activations, exceeded with probability at most ``delta``."""
    return float(np.sqrt(np.log(2.0 / delta) / (2.0 * max(int(kept), 1))))


def activation_stats(g: AnnGraph, x, tensors, seed: int, first: int = 0, total: int | None = None) -> ActivationStats:
    """:class:`ActivationStats` of samples ``first .. first + len(x) - 1`` of a calibration set of
    ``total`` samples (default ``len(x)``), one ANN pass over ``x`` (keep it to one batch for
    results independent of how the set is cut)."""
    total = int(x.shape[0] if total is None else total)
    acts = forward(g, x, keep=True)
    for name, a in acts.items():
        if not np.all(np.isfinite(a)):
            raise ConversionError(f"node {name!r}: NaN or infinite activations on the calibration data")
    top, kept = {}, {}
    for name in tensors:
        a = acts[name]
        keep_p = min(1.0, _SAMPLE_CAP / (a[0].size * total))  # bound: every neuron of every sample
        pos = a[a > 0]
        top[name] = float(pos.max()) if pos.size else -np.inf
        if keep_p < 1.0:
            pieces = []
            for i in range(a.shape[0]):
                p_i = a[i][a[i] > 0]
                rng = np.random.default_rng([int(seed), first + i])
                pieces.append(p_i[rng.random(p_i.size) < keep_p])
            pos = np.concatenate(pieces) if pieces else pos
        kept[name] = pos.astype(np.float32)
    out = acts[g.output].reshape(len(acts[g.output]), -1)
    return ActivationStats(top=top, kept=kept, outputs=out, first=int(first))


def _activation_stats(g: AnnGraph, x, tensors: set, seed: int, progress, batch: int = _BATCH, workers: int = 1):
    """Stream the calibration set through the ANN a batch at a time, on ``workers`` threads.

    Returns ({tensor: (max, kept positives)}, ANN outputs); see
    :class:`ActivationStats`. numpy releases the GIL in the convolutions and
    matrix products, so batches on threads run in parallel; the batches are the
    same for any number of workers, and so are the results.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = x.shape[0]
    starts = list(range(0, n, batch))

    def one(start):
        return activation_stats(g, x[start: start + batch], tensors, seed, first=start, total=n)

    parts = []
    if workers <= 1 or len(starts) == 1:
        results = map(one, starts)
        pool = None
    else:
        pool = ThreadPoolExecutor(max_workers=min(workers, len(starts)), thread_name_prefix="eventsnn-calib")
        results = pool.map(one, starts)
    try:
        for part in results:
            parts.append(part)
            if progress is not None:
                progress(part.outputs.shape[0])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    merged = ActivationStats.merge(parts)
    stats = {name: (merged.top[name], merged.kept[name]) for name in tensors}
    return stats, merged.outputs


def _stat(stat: tuple, method: str, percentile: float, name: str) -> float:
    top, sample = stat
    if not top > 0:
        raise ConversionError(f"layer {name!r} never has a positive activation on the calibration data; "
                              f"cannot normalise it")
    if method == "max" or sample.size == 0:
        return float(top)
    lam = float(np.percentile(sample, percentile))
    return lam if lam > 0 else float(top)


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(ann: AnnGraph, calibration, labels=None, method: str = "percentile", percentile: float = 99.9,
            reset: str = "subtract", decoding: str = "spikes", encoding: str = "direct",
            norm_timesteps: int = 100, progress=None, seed: int = 0, v_init: float = 0.0,
            fold_pools: bool = True, max_spikes: int = 1, workers: int = 1) -> tuple:
    """Convert ``ann`` into a spiking :class:`Network`; return (network, report).

    ``calibration`` is (N, H, W, C) data in the ANN's input range; ``labels``
    (optional) gives the source ANN's accuracy on it. ``progress(n)`` is
    called as calibration samples are processed. ``v_init`` starts every
    spiking neuron at that fraction of its threshold (0.5: Bu et al. 2022).
    ``fold_pools`` (default) folds average pools into the next layer (see
    :func:`fold_average_pools`); ``False`` makes them spiking layers.
    ``max_spikes`` lets each neuron fire up to that many spikes per step (see
    the module doc). ``workers`` threads share the calibration (ANN batches,
    or spike-norm's samples); the result does not depend on their number.
    """
    if method not in METHODS:
        raise ConversionError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if not (0 < percentile <= 100):
        raise ConversionError(f"percentile must lie in (0, 100], got {percentile}")
    if reset not in ("subtract", "zero"):
        raise ConversionError(f"unknown reset {reset!r} (known: subtract, zero)")
    x = np.asarray(calibration, np.float32)
    want = tuple(int(d) for d in ann.input_shape)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ConversionError("the calibration set is empty")
    if tuple(x.shape[1:]) != want and not (int(np.prod(x.shape[1:])) == int(np.prod(want)) and want[:2] == (1, 1)):
        raise ConversionError(f"calibration images have shape {tuple(x.shape[1:])}, the model expects {want}")
    x = x.reshape((x.shape[0],) + want)
    if not np.all(np.isfinite(x)):
        raise ConversionError("the calibration set contains NaN or infinite values")
    y = None if labels is None else np.asarray(labels, np.int64)[: x.shape[0]]

    g = simplify(ann)
    if y is not None:  # labels outside the output's classes would make every accuracy silently 0 %
        shape = _ann_shapes(g)[g.layers[-1].name]
        classes = int(np.prod(shape))
        bad = (y < 0) | (y >= classes)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ConversionError(f"calibration label {int(y[i])} of sample {i} is outside the model's "
                                  f"{classes} classes (0..{classes - 1})")
    folded = {}
    if fold_pools:
        g, folded = fold_average_pools(g, _ann_shapes(g))
    if not 0.0 <= v_init < 1.0:
        raise ConversionError(f"v_init must lie in [0, 1), got {v_init}")
    if isinstance(max_spikes, bool) or not isinstance(max_spikes, (int, np.integer)) \
            or not 1 <= max_spikes <= MAX_SPIKES_LIMIT:
        raise ConversionError(f"max_spikes must be an integer in 1..{MAX_SPIKES_LIMIT}, got {max_spikes!r}")
    if max_spikes > 1:
        pools = [layer.name for layer in g.layers if layer.op == "maxpool2d"]
        if pools:
            raise ConversionError(f"max_spikes {max_spikes}: node {pools[0]!r} is a max pool, whose spiking "
                                  f"gate passes one spike per step; use max_spikes 1 or average pools")
    units, alias = _map(g, reset, v_init)
    report = ConversionReport(method=method, calibration_samples=int(x.shape[0]))
    workers = int(workers)
    if workers < 1:
        raise ConversionError(f"workers must be a positive integer, got {workers}")
    stats, out = _activation_stats(g, x, {u.tensor for u in units}, seed,
                                   None if method == "spike-norm" else progress, workers=workers)
    report.ann_accuracy = None if y is None else float(np.mean(np.argmax(out, axis=1) == y))

    layers = [u.layer for u in units]
    net = Network(input_shape=want if want[:2] != (1, 1) else (want[2],), layers=layers,
                  encoding=encoding, decoding=decoding)
    if method == "spike-norm":
        _spike_norm(net, units, x, norm_timesteps, report, progress, seed, workers)
    else:
        _data_norm(units, stats, method, percentile, report)
        report.normalized_ann_accuracy = _normalized_ann_accuracy(g, units, x, y)
    if max_spikes > 1:
        _multi_spike(net, int(max_spikes), report)
    net.provenance = {
        "converted_by": "eventsnn convert",
        "source": dict(ann.source),
        "method": method,
        "percentile": percentile if method == "percentile" else None,
        "reset": reset,
        "v_init": v_init,
        "fold_pools": fold_pools,
        "folded_pools": folded,
        "max_spikes": int(max_spikes),
        "calibration_samples": report.calibration_samples,
        "scales": report.scales,
        "thresholds": report.thresholds,
        "ann_accuracy": report.ann_accuracy,
        "normalized_ann_accuracy": report.normalized_ann_accuracy,
        "spike_norm_timesteps": norm_timesteps if method == "spike-norm" else None,
    }
    net.shapes()
    return net, report


def _data_norm(units, stats, method, percentile, report):
    """Rescale weights so each layer's activation scale lambda maps to threshold 1."""
    scale = {"input": 1.0}
    by_name = {u.layer.name: u for u in units}

    def rescale(layer, src_scale, lam):
        layer.weight = (layer.weight.astype(np.float64) * (src_scale / lam)).astype(np.float32)
        if layer.bias is not None:
            layer.bias = (layer.bias.astype(np.float64) / lam).astype(np.float32)

    for unit in units:
        layer = unit.layer
        src_scale = scale[layer.inputs[0]]
        lam = src_scale  # pools, gates and flatten carry their input's scale
        if layer.kind in ("conv2d", "dense") and layer.neuron is not None:
            lam = _stat(stats[unit.tensor], method, percentile, layer.name)
            rescale(layer, src_scale, lam)
        elif layer.kind == "add":
            lam = _stat(stats[unit.tensor], method, percentile, layer.name)
            weights = []
            for name in layer.inputs:
                src = by_name.get(name)
                if src is not None and src.layer.neuron is None and src.layer.kind != "maxpool2d":
                    rescale(src.layer, scale[src.layer.inputs[0]], lam)  # neuron-less branch
                    weights.append(1.0)
                else:
                    weights.append(scale[name] / lam)
            layer.weight = np.asarray(weights, np.float32)
        scale[layer.name] = lam
        if layer.neuron is not None:
            report.thresholds[layer.name] = 1.0
        if layer.kind != "flatten" and (layer.neuron is not None or layer.kind == "maxpool2d"):
            report.scales[layer.name] = lam


def _multi_spike(net: Network, k: int, report) -> None:
    """Scale every rate by ``k`` and let each neuron fire up to ``k`` spikes per step.

    Layers fed by the network input divide their threshold by k; every other
    layer multiplies its bias by k, and an add multiplies the scale of a branch
    that is the network input itself. Neuron-less conv/dense branches of an add
    are scaled like the input they read. Rates r_l = a_l / Lambda_l become k r_l.
    """
    def from_input(layer):
        name = layer.inputs[0]
        while name != "input" and net.layer(name).kind == "flatten":
            name = net.layer(name).inputs[0]
        return name == "input"

    def scaled(a):
        return (np.asarray(a, np.float64) * k).astype(np.float32)

    for layer in net.layers:
        fed = from_input(layer) and layer.kind != "add"
        if layer.neuron is None:
            if layer.kind in ("conv2d", "dense"):  # a current into an add: scaled like the add's other inputs
                if fed:
                    layer.weight = scaled(layer.weight)
                if layer.bias is not None:
                    layer.bias = scaled(layer.bias)
            continue
        if fed:
            layer.neuron.threshold = (np.asarray(layer.neuron.threshold, np.float64) / k).astype(np.float32)
            report.thresholds[layer.name] = np.asarray(layer.neuron.threshold).tolist()
        elif layer.bias is not None:
            layer.bias = scaled(layer.bias)
        if layer.kind == "add":
            weights = np.ones(len(layer.inputs)) if layer.weight is None else layer.weight
            layer.weight = np.array([scaled(w) if name == "input" else np.float32(w)
                                     for name, w in zip(layer.inputs, weights)], np.float32)
        layer.neuron.max_spikes = k


def rate_model(net: Network, x: np.ndarray) -> dict:
    """The ReLU network a converted SNN approximates: every layer's output as a
    function of the input, for a spiking layer its spike rate (spikes per step,
    unclipped) ``max(0, I) / threshold``; a membrane readout's raw current."""
    from .ann import _conv, _dense, _pool
    acts = {"input": np.asarray(x, np.float32).reshape((len(x),) + net.shapes()["input"])}
    last = net.layers[-1]
    for layer in net.layers:
        a = acts[layer.inputs[0]]
        if layer.kind == "conv2d":
            out = _conv(a, layer.weight, layer.bias, layer.stride, layer.padding)
        elif layer.kind == "dense":
            out = _dense(a, layer.weight, layer.bias).reshape(len(a), 1, 1, -1)
        elif layer.kind == "avgpool2d":
            out = _pool(a, layer.kernel, layer.stride, np.mean).astype(np.float32)
        elif layer.kind == "maxpool2d":
            out = _pool(a, layer.kernel, layer.stride, np.max)
        elif layer.kind == "flatten":
            out = a.reshape(len(a), 1, 1, -1)
        else:  # add
            scales = np.ones(len(layer.inputs)) if layer.weight is None else layer.weight
            out = sum(acts[n] * (1.0 if (n != "input" and net.layer(n).neuron is None and
                                          net.layer(n).kind != "maxpool2d") else float(w))
                      for n, w in zip(layer.inputs, scales))
        if layer.neuron is not None and not (layer is last and net.decoding == "membrane"):
            out = np.maximum(out, 0) / np.asarray(layer.neuron.threshold, np.float32)
        acts[layer.name] = out
    return acts


def _normalized_ann_accuracy(g, units, x, y):
    """Accuracy of the normalised ReLU network (it must match the source ANN's)."""
    if y is None:
        return None
    net = Network(input_shape=g.input_shape, layers=[u.layer for u in units], decoding="membrane")
    out = rate_model(net, x)[net.layers[-1].name].reshape(len(x), -1)
    return float(np.mean(np.argmax(out, axis=1) == y))


def _spike_norm(net: Network, units, x, steps, report, progress, seed, workers=1):
    """Threshold balancing (Sengupta et al. 2019), layer by layer in the SNN.

    With thresholds theta, a layer's spike rates are its ANN activations divided
    by Lambda, the product of the thresholds on the path from the input. Weights
    stay as trained, so a bias must be divided by the Lambda of the layer's
    input (else it outweighs the scaled-down spikes), and the branches of a
    residual add are brought to a common Lambda by their add weights.
    """
    from .engine.simulator import Simulator
    spiking = [u.layer for u in units if u.layer.neuron is not None]
    for layer in spiking:
        layer.neuron.threshold = np.float32(_HUGE)
    scale = {"input": 1.0}
    by_name = {u.layer.name: u.layer for u in units}

    def rescale(layer, weight_factor, bias_factor):
        layer.weight = (layer.weight.astype(np.float64) * weight_factor).astype(np.float32)
        if layer.bias is not None:
            layer.bias = (layer.bias.astype(np.float64) * bias_factor).astype(np.float32)

    for layer in net.layers:
        src = scale[layer.inputs[0]]
        if layer.kind == "add":
            ref = src
            weights = []
            for name in layer.inputs:
                branch = by_name.get(name)
                if branch is not None and branch.neuron is None and branch.kind != "maxpool2d":
                    rescale(branch, scale[branch.inputs[0]] / ref, 1.0 / ref)  # neuron-less conv
                    weights.append(1.0)
                else:
                    weights.append(scale[name] / ref)
            layer.weight = np.asarray(weights, np.float32)
        elif layer.bias is not None and layer.neuron is not None:
            layer.bias = (layer.bias.astype(np.float64) / src).astype(np.float32)
        if layer.neuron is None:
            scale[layer.name] = src  # flatten, max-pool gate, neuron-less conv (unused)
            continue
        upto = net.layers.index(layer)
        sub = Network(input_shape=net.input_shape, layers=net.layers[: upto + 1],
                      encoding=net.encoding, decoding="spikes")
        top = _largest_input(sub, layer.name, x, steps, seed, workers)
        if not top > 0:
            raise ConversionError(f"spike-norm: layer {layer.name!r} never received positive input "
                                  f"on the calibration data")
        layer.neuron.threshold = np.float32(top)
        report.thresholds[layer.name] = top
        scale[layer.name] = src * top
        report.scales[layer.name] = src * top
        if progress is not None:
            progress(x.shape[0] / len(spiking))


def _largest_input(sub: Network, name: str, x, steps: int, seed: int, workers: int) -> float:
    """The largest synaptic input layer ``name`` of ``sub`` receives over all samples of ``x``:
    a maximum, so samples may run on ``workers`` threads in any order (each sample seeded by its index)."""
    from concurrent.futures import ThreadPoolExecutor

    from .engine.simulator import Simulator

    def shard(rows):
        sim = Simulator(sub, timesteps=steps, seed=seed)
        sim.track_max_input = True
        p = sim.plan.pop_index[name]
        top = -np.inf
        for i in rows:
            sim.reset(x[i], sample_index=int(i))
            sim.run()
            top = max(top, float(sim.max_input[p]))
        return top

    n = x.shape[0]
    if workers <= 1 or n < 2:
        return shard(range(n))
    cuts = np.array_split(np.arange(n), min(workers, n))
    with ThreadPoolExecutor(max_workers=len(cuts), thread_name_prefix="eventsnn-calib") as pool:
        return max(pool.map(shard, cuts))


def source_info(path, fmt: str) -> dict:
    return {"path": os.path.abspath(path), "format": fmt, "sha256": file_sha256(path)}
