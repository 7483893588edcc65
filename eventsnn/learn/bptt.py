"""Spike-based backpropagation through time on recorded traces.

The forward pass is a batched clock-driven simulation that computes exactly
what the event engine computes (:mod:`eventsnn.reference` semantics, float32,
this order per neuron and step)::

    U[t] = (V[t-1] * leak + I_spikes[t]) + I_const        s[t] = U[t] >= theta
    V[t] = U[t] - s[t] theta  (subtract)   or   0 where s[t]  (zero)

It records U[t] (before reset) and s[t] of every population: the traces the
backward pass reads (Lee et al. 2020, Front. Neurosci. 14:119; the surrogate
derivatives of :mod:`.surrogates`)::

    dL/dU[t] = dL/ds[t] sigma'(U[t] - theta) + leak dL/dU[t+1] m[t]
    dL/dW    = sum_t  s_pre[t]^T dL/dU[t]            dL/ds_pre[t] = dL/dU[t] W^T

Why the trained network gives the engine's spikes exactly
---------------------------------------------------------

The engine sums a layer's input spike by spike in float32, in its event
order; a matrix product sums in another order, so arbitrary float weights
could round differently near threshold. Instead of copying the engine's event
order, every weight that multiplies spikes is kept on a dyadic grid
(multiples of ``GRID = 2**-16``, straight-through: the optimiser updates float
master weights, the forward pass and the saved network use the snapped ones).
A sum of such values is exact in float32 in *any* order while its partial sums
stay below ``2**(24-16) = 256`` in magnitude (:meth:`Model.exactness_bound`
checks the worst case, sum |w| over a neuron's fan-in), so ``I_spikes`` is the
same number in the engine and here. The rest is elementwise and in the same
order: ``I_const`` (biases, then the analog input ``x W`` of a direct-input
layer accumulated in ascending input index, as the engine's ``inject_analog``
does) is computed here in that order; the leak is multiplied once per step,
which the engine does too when the neuron is updated every step, i.e. for IF
neurons, power-of-two leaks, or any layer with a bias (a constant current;
the trainer gives every conv/dense layer one). A LIF avg-pool layer with
another leak is the one case left where the engine's lazy ``leak**dt`` may
round differently; :func:`check_engine_identity` would report it.

The first (direct-input) layer's weights multiply analog pixels, not spikes,
and need no grid: its current is computed in the engine's order.

Because the spike sums are exact in any order, the forward pass may take the
cheapest one: a spike-driven scatter (:mod:`._layer_kernels`, cost in
proportion to the spikes, as in the engine) while few inputs are nonzero, an
im2col matrix product otherwise; the weight gradient likewise. The pools,
the input gradients' col2im and the neuron recurrences are numba kernels that
add in place, so no (T, B, n) temporaries are made beyond the recorded traces.

Supported: conv2d (stride, padding), dense, avgpool2d (spiking), flatten, add
(spiking inputs with scales, neuron-less conv/dense/avgpool current sources),
IF/LIF, subtract/zero reset, v_init, direct input, spike-count or membrane
readout, and a learnable leak per layer (``learn_leak``; below). Not supported
(a clear error): maxpool2d gates, max_spikes > 1, ``add`` of the raw input. Rate-coded (poisson) input: the input spikes are given
per step (:func:`rate_code`), the first layer's weights then multiply spikes and
sit on the grid too, and the engine is given the same input spikes.

Learnable leak
--------------

``Model(net, learn_leak=True)`` trains each population's leak, one scalar per
layer, as PLIF does (Fang et al. 2021, ICCV: a learnable membrane time
constant per layer). Here the leak multiplies the potential and the input is
not rescaled (snnTorch's ``Leaky(learn_beta=True)`` form), and it is kept in
(0, 1) through a logistic parameter ``a`` (``layer/leak_logit``)::

    leak = 1 / (1 + exp(-a))
    dL/da = leak (1 - leak) sum_{t,b,j} dL/dU[t] V[t-1]      V[-1] = v_init theta

``V[t-1]`` (after reset) is rebuilt from the recorded ``U`` and ``s``. The
forward pass uses ``float32(leak)``, the value the saved network holds, so the
engine's spikes stay identical (every neuron is updated each step when the
layers have biases, as ``train-bptt`` gives them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import NetworkError
from ..network import Network
from . import _kernels, _layer_kernels
from .surrogates import DEFAULT_ALPHA, smooth_spike, surrogate_id

GRID = 2.0 ** -16
EXACT_LIMIT = 2.0 ** 8  # partial sums of GRID multiples are exact in float32 below this
IF_LEAK_START = 0.9  # where a learnable leak starts on an IF layer (leak 1 has no finite logit)


def leak_logit(leak: float) -> np.ndarray:
    """The logistic parameter of a leak in (0, 1), as a (1,) float32 array."""
    leak = float(leak)
    if not 0.0 < leak < 1.0:
        raise NetworkError(f"a learnable leak must start in (0, 1), got {leak}")
    return np.array([np.log(leak / (1.0 - leak))], np.float32)


def leak_of_logit(a, dtype=np.float32):
    """``1 / (1 + exp(-a))`` in float64, then cast to ``dtype`` (the value the network holds)."""
    return dtype(1.0 / (1.0 + np.exp(-float(np.asarray(a).reshape(-1)[0]))))


def snap(w) -> np.ndarray:
    """``w`` rounded to the nearest multiple of GRID (float32)."""
    return (np.round(np.asarray(w, np.float64) / GRID) * GRID).astype(np.float32)


# -- linear maps on (N, H, W, C) -------------------------------------------------------

# Spike-driven (scatter) paths cost in proportion to the spikes, the dense im2col + BLAS
# paths do not: below these fractions of nonzero inputs the scatter was the faster one
# for a 3x3 conv of 8 or 16 into 16 or 32 channels on the 2-core development machine
# (bench/bptt_conv_paths.py, BENCHMARKS §6). Both give the same sums (exact on the
# grid), so the switch never changes a spike.
SPARSE_FORWARD_MAX = 0.1
SPARSE_WEIGHT_GRAD_MAX = 0.08


def _density(x) -> float:
    return np.count_nonzero(x) / max(x.size, 1)


# im2col temporaries are made a slice of samples at a time, at most about this many
# bytes: past glibc's 32 MiB mmap threshold every batch would fault in fresh pages.
CHUNK_BYTES = 8 << 20


def _chunks(n, op):
    """(start, stop) slices of the n images (time steps x batch) whose im2col matrix
    (oh*ow rows of kh*kw*C_in float32) stays under CHUNK_BYTES."""
    kh, kw = op.kernel
    per = op.out_shape[0] * op.out_shape[1] * kh * kw * max(op.in_shape[2], op.out_shape[2]) * 4
    step = max(1, CHUNK_BYTES // max(per, 1))
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _cols(x, op):
    """im2col: (N, H, W, C) -> (N*oh*ow, kh*kw*C), columns in (ky, kx, c) order."""
    kh, kw = op.kernel
    (sy, sx), (py, px) = op.stride, op.padding
    oh, ow = op.out_shape[:2]
    n, h, w, c = x.shape
    if kh == kw == 1 and sy == sx == 1 and not (py or px):
        return x.reshape(n * h * w, c)
    if py or px:
        x = np.pad(x, ((0, 0), (py, py), (px, px), (0, 0)))
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sy, ::sx][:, :oh, :ow]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)


def _col2im_add(dcols, op, dsrc):
    """dsrc (N, H, W, C) += col2im(dcols): the input gradient of a conv, in place."""
    kh, kw = op.kernel
    (sy, sx), (py, px) = op.stride, op.padding
    oh, ow = op.out_shape[:2]
    if kh == kw == 1 and sy == sx == 1 and not (py or px):
        dsrc += dcols.reshape(dsrc.shape)
        return
    _layer_kernels.col2im_add(dcols, oh, ow, kh, kw, sy, sx, py, px, dsrc)


def _pool(s, op, dtype):
    """Non-overlapping average pool of spikes: the window's spike count times the pool
    weight, exact (a small integer times a float32 weight), as the engine's sum is."""
    kh, kw = op.kernel
    out = np.empty((s.shape[0],) + tuple(op.out_shape), dtype)
    _layer_kernels.pool_forward(np.ascontiguousarray(s), kh, kw, op.fixed[0, 0, 0, 0].astype(dtype), out)
    return out


def _pool_back_add(d, op, dtype, dsrc):
    """dsrc += the pool's transpose applied to d, in place."""
    kh, kw = op.kernel
    _layer_kernels.pool_backward_add(d, kh, kw, op.fixed[0, 0, 0, 0].astype(dtype), dsrc)


@dataclass
class _Op:
    """One linear layer (conv2d, dense as a 1x1 conv on (1, 1, N), avgpool2d as a fixed
    diagonal conv) from a source population (or ``input``) into a population."""
    layer: str
    kind: str
    src: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    fixed: np.ndarray | None = None  # avgpool weight (kh, kw, C, C)
    has_bias: bool = False
    analog: bool = False  # driven by the analog (direct) input: a constant current

    def weight4(self, params, dtype=np.float32, grid=True):
        if self.fixed is not None:
            return self.fixed.astype(dtype)
        w = params[self.layer + "/weight"]
        if grid and not self.analog:
            w = snap(w)
        w = w.astype(dtype, copy=False)
        kh, kw = self.kernel
        return w.reshape(kh, kw, self.in_shape[2], self.out_shape[2])


@dataclass
class _Pop:
    name: str
    shape: tuple
    n: int
    thr: np.ndarray
    leak: float
    subtract: bool
    spiking: bool
    v0: np.ndarray
    conns: list  # ("op", _Op) | ("ident", src, scale), in the engine's connection order


@dataclass
class Trace:
    """What the forward pass recorded: per population U (before reset) and s, (T, B, n)."""
    x: np.ndarray
    U: dict
    S: dict
    out: np.ndarray  # membrane (B, n_out) or spike counts (B, n_out)
    grid: bool
    masks: dict | None = None  # dropout: per population (B, n), one mask for all steps
    input_spikes: np.ndarray | None = None  # rate-coded input (T, B, n_in)
    density: dict | None = None  # fraction of nonzero passed spikes per source (picks the conv path)

    def passed(self, name):
        """The spikes population ``name`` passes on (after its dropout mask)."""
        if name == "input":
            return self.input_spikes
        if self.masks and name in self.masks:
            return self.S[name] * self.masks[name][None]
        return self.S[name]


class Model:
    """A Network lowered for batched training. ``params`` maps ``layer/weight`` and
    ``layer/bias`` to float32 master arrays (the network's own shapes)."""

    def __init__(self, net: Network, add_bias: bool = False, snap_thresholds: bool = False,
                 learn_leak: bool = False, leak_init: float | None = None):
        """``add_bias``: give every conv/dense layer a (zero) trainable bias, which also
        makes the engine update each neuron every step (exact leak for any LIF);
        ``snap_thresholds``: put thresholds on the grid (a converted net's, for --init);
        ``learn_leak``: train one leak per population (``layer/leak_logit``), starting
        from ``leak_init``, or else the layer's own leak (IF_LEAK_START for IF layers)."""
        net = copy.deepcopy(net)
        shapes = net.shapes()
        self.direct = net.encoding == "direct"
        for layer in net.layers:
            if layer.kind == "maxpool2d":
                raise NetworkError(f"train-bptt: layer {layer.name!r}: maxpool2d gates are not differentiable "
                                   "here; use avgpool2d")
            if layer.neuron is not None and layer.neuron.max_spikes != 1:
                raise NetworkError(f"train-bptt: layer {layer.name!r}: max_spikes must be 1")
            if snap_thresholds and layer.neuron is not None:
                layer.neuron.threshold = snap(layer.neuron.threshold)
            if add_bias and layer.kind in ("conv2d", "dense") and layer.bias is None:
                layer.bias = np.zeros(shapes[layer.name][2], np.float32)
        self.net = net
        self.shapes = shapes
        self.params = {}
        for layer in net.layers:
            if layer.kind in ("conv2d", "dense"):
                self.params[layer.name + "/weight"] = np.array(layer.weight, np.float32)
                if layer.bias is not None:
                    self.params[layer.name + "/bias"] = np.array(layer.bias, np.float32)

        def source(name):
            while name != "input" and net.layer(name).kind == "flatten":
                name = net.layer(name).inputs[0]
            return name

        def op_of(layer):
            op = _op_of(layer)
            op.analog = op.src == "input" and self.direct
            return op

        def _op_of(layer):
            src = source(layer.inputs[0])
            in_shape = shapes[src]
            if layer.kind == "dense":
                in_shape = (1, 1, int(np.prod(in_shape)))
                return _Op(layer.name, "dense", src, in_shape, shapes[layer.name], (1, 1), (1, 1), (0, 0),
                           has_bias=layer.bias is not None)
            if layer.kind == "conv2d":
                return _Op(layer.name, "conv2d", src, in_shape, shapes[layer.name], layer.weight.shape[:2],
                           tuple(layer.stride), tuple(layer.padding), has_bias=layer.bias is not None)
            kh, kw = layer.kernel
            c = in_shape[2]
            fixed = np.zeros((kh, kw, c, c), np.float32)
            fixed[:, :, np.arange(c), np.arange(c)] = np.float32(1.0 / (kh * kw))  # the engine's pool weight
            return _Op(layer.name, "avgpool2d", src, in_shape, shapes[layer.name], (kh, kw), tuple(layer.stride),
                       (0, 0), fixed=fixed)

        self.pops = []
        last = net.layers[-1]
        for layer in net.layers:
            if layer.neuron is None:
                continue
            shape = shapes[layer.name]
            n = int(np.prod(shape))
            neuron = layer.neuron
            thr = np.broadcast_to(np.asarray(neuron.threshold, np.float32), shape).reshape(-1).copy()
            spiking = not (net.decoding == "membrane" and layer is last)
            v0 = (np.float32(neuron.v_init) * thr).astype(np.float32) if spiking else np.zeros(n, np.float32)
            conns = []
            if layer.kind != "add":
                conns.append(("op", op_of(layer)))
            else:
                scales = np.ones(len(layer.inputs), np.float32) if layer.weight is None else layer.weight
                for name, scale in zip(layer.inputs, scales):
                    if name != "input" and not net.layer(name).spiking:
                        conns.append(("op", op_of(net.layer(name))))
                    else:
                        conns.append(("ident", source(name), np.float32(scale)))
            self.pops.append(_Pop(layer.name, shape, n, thr, np.float32(neuron.leak),
                                  neuron.reset == "subtract", spiking, v0, conns))
            if learn_leak:
                start = leak_init if leak_init is not None else (
                    neuron.leak if neuron.leak < 1.0 else IF_LEAK_START)
                self.params[layer.name + "/leak_logit"] = leak_logit(start)
        for p in self.pops:
            for kind, *rest in p.conns:
                if kind == "ident" and rest[0] == "input":
                    raise NetworkError(f"train-bptt: layer {p.name!r}: an add taking the analog input directly "
                                       "is not supported")
                if kind == "ident" and snap(rest[1]) != rest[1]:
                    raise NetworkError(f"train-bptt: layer {p.name!r}: add scale {rest[1]} is not a multiple of "
                                       "2^-16 (needed for exact sums)")
            if not np.array_equal(snap(p.thr), p.thr):
                raise NetworkError(f"train-bptt: layer {p.name!r}: thresholds must be multiples of 2^-16")

    def leak(self, p, params=None, dtype=np.float32):
        """Population ``p``'s leak: learned (from its logit) or the network's."""
        params = self.params if params is None else params
        key = p.name + "/leak_logit"
        return leak_of_logit(params[key], dtype) if key in params else dtype(p.leak)

    # -- forward ---------------------------------------------------------------------------
    def _const(self, p, x, params, dtype, grid):
        """Biases (in connection order), then the analog input in ascending input index."""
        B = x.shape[0]
        c = np.zeros((B,) + p.shape, dtype)
        for kind, *rest in p.conns:
            if kind == "op" and rest[0].has_bias:
                c += params[rest[0].layer + "/bias"].astype(dtype)
        for kind, *rest in p.conns:
            if kind != "op" or not rest[0].analog:
                continue
            op = rest[0]
            w = op.weight4(params, dtype, grid)
            xin = x.reshape((B,) + op.in_shape).astype(dtype, copy=False)
            (sy, sx), (py, px) = op.stride, op.padding
            if py or px:
                xin = np.pad(xin, ((0, 0), (py, py), (px, px), (0, 0)))
            _layer_kernels.analog_conv_add(np.ascontiguousarray(xin), w, sy, sx, c)
        return c.reshape(B, p.n)

    def forward(self, x, timesteps, params=None, smooth=None, masks=None, input_spikes=None):
        """Run a batch ``x`` (B, *input_shape) for ``timesteps`` steps; return the Trace.

        ``masks`` (training only): dropout, ``{population: (B, n)}`` multiplying the
        spikes it passes on, the same mask at every step (Lee et al. 2020).
        ``input_spikes`` (T, B, *input_shape): the input spikes of a rate-coded network.

        ``smooth=(surrogate, alpha)`` replaces the step by its smooth antiderivative, in
        float64 and without the grid (gradient tests only)."""
        params = self.params if params is None else params
        dtype = np.float64 if smooth else np.float32
        grid = not smooth
        x = np.ascontiguousarray(x, np.float32)
        B, T = x.shape[0], int(timesteps)
        U, S = {}, {}
        out = None
        if not self.direct:
            if input_spikes is None:
                raise NetworkError("a rate-coded (poisson) network needs input_spikes (see rate_code)")
            S["input"] = np.asarray(input_spikes, dtype).reshape(T, B, -1)

        density = {}

        def passed(name):
            return S[name] * masks[name][None] if masks and name in masks else S[name]

        for p in self.pops:
            I = np.zeros((T * B, p.n), dtype)
            for kind, *rest in p.conns:
                if kind == "op":
                    op = rest[0]
                    if op.analog:
                        continue
                    src = passed(op.src).reshape((T * B,) + op.in_shape)
                    if op.fixed is not None and op.stride == op.kernel:
                        I += _pool(src, op, dtype).reshape(T * B, p.n)
                        continue
                    w = op.weight4(params, dtype, grid)
                    if op.src not in density:
                        density[op.src] = _density(src)
                    if density[op.src] <= SPARSE_FORWARD_MAX:
                        (sy, sx), (py, px) = op.stride, op.padding
                        _layer_kernels.conv_scatter_add(np.ascontiguousarray(src), w, sy, sx, py, px,
                                                        I.reshape((T * B,) + op.out_shape))
                    else:
                        w2, out = w.reshape(-1, w.shape[3]), I.reshape((T * B,) + op.out_shape)
                        for a, b in _chunks(T * B, op):
                            out[a:b] += (_cols(src[a:b], op) @ w2).reshape(out[a:b].shape)
                else:
                    I += rest[1] * passed(rest[0]).reshape(T * B, p.n)
            c = self._const(p, x, params, dtype, grid)
            u = np.empty((T, B, p.n), dtype)
            s = np.empty((T, B, p.n), dtype)
            v_end = np.empty((B, p.n), dtype)
            leak = self.leak(p, params, dtype)
            if smooth:
                _smooth_forward(I.reshape(T, B, p.n), c, p, leak, smooth, u, s, v_end)
            else:
                _kernels.neuron_forward(I.reshape(T, B, p.n), c, p.v0, p.thr, leak,
                                        leak != 1.0 or p.name + "/leak_logit" in params, p.subtract,
                                        p.spiking, u, s, v_end)
            U[p.name], S[p.name] = u, s
            out = v_end if not p.spiking else s.sum(axis=0)
        raster = S.pop("input", None)
        return Trace(x, U, S, out, grid, masks, raster, density)

    # -- backward --------------------------------------------------------------------------
    def backward(self, trace, d_out, surrogate="fast_sigmoid", alpha=None, params=None, detach_reset=True):
        """Gradients of the loss (given dL/d out) with respect to every parameter.

        Returns (grads, stats): grads maps parameter names to arrays of their shapes;
        stats["surrogate_nonzero"] is the fraction of (t, b, neuron) with sigma' != 0."""
        params = self.params if params is None else params
        sid = surrogate_id(surrogate)
        alpha = DEFAULT_ALPHA[surrogate] if alpha is None else float(alpha)
        dtype = trace.U[self.pops[0].name].dtype.type
        T, B = trace.U[self.pops[0].name].shape[:2]
        grads = {k: np.zeros(v.shape, np.float64) for k, v in params.items()}
        dS = {p.name: np.zeros((T, B, p.n), dtype) for p in self.pops}
        last = self.pops[-1]
        g_end = np.zeros((B, last.n), dtype)
        if last.spiking:
            dS[last.name] += np.asarray(d_out, dtype)[None]
        else:
            g_end[:] = d_out
        nonzero = total = 0
        for p in reversed(self.pops):
            dU = np.empty((T, B, p.n), dtype)
            ge = g_end if p is last else np.zeros((B, p.n), dtype)
            if trace.masks and p.name in trace.masks:
                dS[p.name] *= trace.masks[p.name][None]
            leak = self.leak(p, params, dtype)
            nonzero += _kernels.neuron_backward(dS[p.name], trace.U[p.name], trace.S[p.name], p.thr.astype(dtype),
                                                leak, p.subtract, p.spiking, detach_reset, sid, alpha,
                                                ge, dU)
            total += dU.size if p.spiking else 0
            if p.name + "/leak_logit" in grads:
                v_prev = _potentials_before(trace, p, dtype)
                grads[p.name + "/leak_logit"] += float(leak) * (1.0 - float(leak)) * float(
                    np.einsum("tbj,tbj->", dU, v_prev, dtype=np.float64))
            for kind, *rest in p.conns:
                if kind == "ident":
                    dS[rest[0]] += rest[1] * dU.reshape(dS[rest[0]].shape)
                    continue
                op = rest[0]
                co = op.out_shape[2]
                if op.has_bias:
                    grads[op.layer + "/bias"] += _layer_kernels.channel_sum(dU.reshape(-1, co))
                w = op.weight4(params, dtype, trace.grid)
                if op.analog:
                    dc = dU.sum(axis=0).reshape(-1, co)
                    xin = trace.x.reshape((B,) + op.in_shape).astype(dtype, copy=False)
                    if op.fixed is None:
                        grads[op.layer + "/weight"] += (_cols(xin, op).T @ dc).reshape(grads[op.layer + "/weight"].shape)
                    continue
                if op.fixed is not None and op.stride == op.kernel:
                    if op.src in dS:
                        _pool_back_add(dU.reshape((T * B,) + op.out_shape), op, dtype,
                                       dS[op.src].reshape((T * B,) + op.in_shape))
                    continue
                src = trace.passed(op.src).reshape((T * B,) + op.in_shape)
                dflat = dU.reshape(-1, co)
                if op.fixed is None:
                    dw = grads[op.layer + "/weight"].reshape(w.shape)  # a view: added in place
                    known = trace.density.get(op.src) if trace.density else None
                    if (_density(src) if known is None else known) <= SPARSE_WEIGHT_GRAD_MAX:
                        (sy, sx), (py, px) = op.stride, op.padding
                        _layer_kernels.conv_weight_grad_add(np.ascontiguousarray(src),
                                                            dU.reshape((T * B,) + op.out_shape),
                                                            *op.kernel, sy, sx, py, px, dw)
                    else:
                        rows = op.out_shape[0] * op.out_shape[1]
                        for a, b in _chunks(T * B, op):
                            dw += (_cols(src[a:b], op).T @ dflat[a * rows:b * rows]).reshape(dw.shape)
                if op.src not in dS:
                    continue  # the input spikes need no gradient
                w2t, dsrc = w.reshape(-1, co).T, dS[op.src].reshape((T * B,) + op.in_shape)
                rows = op.out_shape[0] * op.out_shape[1]
                for a, b in _chunks(T * B, op):
                    _col2im_add(dflat[a * rows:b * rows] @ w2t, op, dsrc[a:b])
        grads = {k: v.astype(params[k].dtype) for k, v in grads.items()}
        return grads, {"surrogate_nonzero": nonzero / max(total, 1)}

    # -- back to a network -------------------------------------------------------------------
    def to_network(self, params=None) -> Network:
        """The network with these parameters, exactly as the forward pass used them
        (spike-driven weights on the grid)."""
        params = self.params if params is None else params
        net = copy.deepcopy(self.net)
        ops = {op.layer: op for p in self.pops for kind, *rest in p.conns if kind == "op" for op in rest[:1]}
        for layer in net.layers:
            if layer.kind in ("conv2d", "dense"):
                w = params[layer.name + "/weight"]
                layer.weight = (snap(w) if not ops[layer.name].analog else w).astype(np.float32).reshape(
                    layer.weight.shape)
                if layer.bias is not None:
                    layer.bias = params[layer.name + "/bias"].astype(np.float32).copy()
            if layer.name + "/leak_logit" in params:
                # the float32 value the forward pass multiplied by; float32 -> float -> float32 is exact
                layer.neuron.kind = "lif"
                layer.neuron.leak = float(leak_of_logit(params[layer.name + "/leak_logit"]))
        net.provenance = dict(net.provenance, trained="eventsnn train-bptt")
        return net

    def exactness_bound(self, params=None) -> float:
        """The largest sum of |w| over one neuron's spike-driven fan-in (add scales
        included): the spike sums are exact in float32 while this is below 256."""
        params = self.params if params is None else params
        worst = 0.0
        for p in self.pops:
            total = np.zeros(p.shape[2])
            for kind, *rest in p.conns:
                if kind == "ident":
                    total += abs(float(rest[1]))
                elif not rest[0].analog:
                    w = np.abs(rest[0].weight4(params).astype(np.float64))
                    total += w.sum(axis=(0, 1, 2))
            worst = max(worst, float(total.max()))
        return worst


def _potentials_before(trace, p, dtype):
    """V[t-1] (after reset) of population ``p`` for t = 0..T-1, rebuilt from U and s:
    V = U - s theta (subtract), U (1 - s) (zero), U (non-spiking); V[-1] = v_init theta."""
    u, s = trace.U[p.name], trace.S[p.name]
    if not p.spiking:
        v = u
    elif p.subtract:
        v = u - s * p.thr.astype(dtype)
    else:
        v = u * (1 - s)
    out = np.empty_like(u)
    out[0] = p.v0.astype(dtype)
    out[1:] = v[:-1]
    return out


def _smooth_forward(I, c, p, leak, smooth, U, S, v_end):
    """The smoothed network of the gradient tests: s = F(U - theta) (numpy, float64)."""
    name, alpha = smooth
    v = np.broadcast_to(p.v0.astype(np.float64), c.shape).copy()
    for t in range(I.shape[0]):
        u = v * leak + I[t] + c
        U[t] = u
        if not p.spiking:
            S[t] = 0
            v = u
            continue
        s = smooth_spike(name, u - p.thr, p.thr, alpha)
        S[t] = s
        v = u - p.thr * s if p.subtract else u * (1 - s)
    v_end[:] = v


def check_engine_identity(net: Network, trace: Trace, timesteps: int, samples=None) -> dict:
    """Run ``net`` (as saved) in the event engine on the trace's inputs (and input spikes)
    and compare every population's spikes per step with the recorded ones, and a
    membrane readout's final potentials bit for bit. Returns counts of samples, of
    differing (step, neuron) pairs and of differing membrane outputs."""
    from ..engine.simulator import Simulator

    model_pops = list(trace.S)
    idx = range(trace.x.shape[0]) if samples is None else samples
    sim = Simulator(net, timesteps=timesteps, record_spikes=True)
    flat = len(net.input_shape) == 1
    diff = out_diff = 0
    bad = []
    for b in idx:
        x = trace.x[b]
        spikes = None
        if trace.input_spikes is not None:
            t_in, i_in = np.nonzero(trace.input_spikes[:, b, :])
            spikes = (t_in.astype(np.float64), i_in)
        sim.reset(x.reshape(-1) if flat else x, input_spikes=spikes)
        sim.run()
        times, pops, neurons = sim.recorded_spikes()
        for k, name in enumerate(model_pops, start=1):
            mine = pops == k
            raster = np.zeros(trace.S[name].shape[::2], np.int64)
            np.add.at(raster, (times[mine].astype(int), neurons[mine]), 1)
            d = int(np.count_nonzero(raster != trace.S[name][:, b, :]))
            if d:
                bad.append(int(b))
            diff += d
        if net.decoding == "membrane" and not np.array_equal(sim.output().astype(np.float32), trace.out[b]):
            bad.append(int(b))
            out_diff += 1
    result = {"samples": len(list(idx)), "differing_spikes": diff, "samples_differing": sorted(set(bad))}
    if net.decoding == "membrane":
        result["differing_membrane_outputs"] = out_diff
    return result


def rate_code(x, timesteps, rng, rate=1.0):
    """Rate-coded input spikes (T, B, *shape): a spike with probability min(1, rate x)
    per step and pixel (Bernoulli, as the engine's poisson encoder), drawn from ``rng``."""
    x = np.asarray(x, np.float32)
    p = np.clip(x * rate, 0.0, 1.0)
    return (rng.random((timesteps,) + x.shape) < p).astype(np.float32)
