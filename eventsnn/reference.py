"""The executable specification of eventsnn's semantics: slow, obviously correct.

Every backend (the CPU event engine today, the numba.cuda backend next) and the
BPTT trainer are tested against this module, and it is written without any of
the engine's code: no kernels, no geometry tables, no lowering. It builds each
connection as a dense matrix by enumerating every (output, tap) pair of the
layer's definition, and simulates every neuron at every step.

- ``conv_matrix`` / ``pool_matrix``: connectivity by enumeration.
- ``build(net)``: populations (input first, then every spiking layer in file
  order) with their dense incoming connections.
- ``simulate_discrete``: the clock-driven simulation that *defines* discrete time.
- ``simulate_continuous``: a heapq event loop for continuous time (poisson
  input, exact exponential leak, synaptic delays).
- Synaptic ops: brute force, every (spike, target) pair with a synapse.

Neuron update of one step, in float32 arithmetic and in this order::

    V[t] = (V[t-1] * leak + I_spikes[t]) + I_const      I_spikes summed in float64, then rounded
    n[t] = min(K, floor(V[t] / theta)) if V[t] >= theta else 0     (K = max_spikes, 1: binary)
    V[t] <- V[t] - n[t] * theta   (reset "subtract")   or   0   (reset "zero")

A layer's input at step t is the spikes of lower layers at step t (layer by
layer within a step); a membrane readout's last layer never fires; a max-pool
gate passes a spike of an input that spikes now with the window's largest
running spike count. Counts: one synaptic op per (delivered spike, synapse),
one update per neuron of a unit (a position's channels) that an event touched,
that was left at threshold, or that has a constant current.

When the event engine is bit-identical to this reference
--------------------------------------------------------

The engine sums a layer's input spike by spike in float32 and applies the leak
lazily, ``V * leak**dt`` with ``leak**dt`` computed in float64 and rounded once
to float32, where this loop multiplies by float32 ``leak`` dt times. So:

- spikes, potentials and every count are **identical** when the weights,
  thresholds, biases and inputs are multiples of 2^-8 (any float32 sum of them
  is then exact in any order) and the leak is exact: **IF neurons (leak 1)**,
  **leaks that are powers of two** (``leak**dt`` is exact in float32), or any
  leak for a neuron updated at every step (dt = 1: a constant current, a
  neuron receiving input each step);
- with arbitrary float32 weights, or another leak on a neuron that skips
  steps, sums and powers may round differently, and spikes may differ only
  where a potential lies within rounding of the threshold (the tests bound
  how often that happens).

The continuous-time loop applies ``exp(-dt / tau)`` in float32, as the engine does.
"""

from __future__ import annotations

import heapq
import math

import numpy as np


def conv_matrix(in_shape, weight, stride, padding):
    h, w, c = in_shape
    kh, kw, ci, co = weight.shape
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    m = np.zeros((h * w * c, oh * ow * co), np.float64)
    s = np.zeros(m.shape, bool)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    y = oy * stride[0] - padding[0] + ky
                    x = ox * stride[1] - padding[1] + kx
                    if not (0 <= y < h and 0 <= x < w):
                        continue
                    for cc in range(c):
                        i = (y * w + x) * c + cc
                        for o in range(co):
                            j = (oy * ow + ox) * co + o
                            m[i, j] += weight[ky, kx, cc, o]
                            s[i, j] = True
    return m, s


def pool_matrix(in_shape, kernel, stride, value):
    h, w, c = in_shape
    oh = (h - kernel[0]) // stride[0] + 1
    ow = (w - kernel[1]) // stride[1] + 1
    m = np.zeros((h * w * c, oh * ow * c), np.float64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kernel[0]):
                for kx in range(kernel[1]):
                    y, x = oy * stride[0] + ky, ox * stride[1] + kx
                    for cc in range(c):
                        m[(y * w + x) * c + cc, (oy * ow + ox) * c + cc] = value
    return m, m != 0


class RefConn:
    def __init__(self, src, matrix, mask, kind, delay=0.0):
        self.src, self.matrix, self.mask, self.kind, self.delay = src, matrix, mask, kind, delay
        self.fanout = mask.sum(axis=1)


class RefPop:
    def __init__(self, name, layer, shape):
        self.name, self.layer, self.shape = name, layer, shape
        self.n = int(np.prod(shape))
        self.conns = []
        self.bias = np.zeros(self.n, np.float32)
        self.gate = layer is not None and layer.kind == "maxpool2d"

    @property
    def block(self):
        if self.gate or self.layer is None:
            return 1
        if all(c.kind in ("conv2d", "dense") for c in self.conns):
            return self.shape[2]
        return 1


def build(net):
    """Populations (input first, then spiking layers) with dense incoming connections.

    Keep this independent of eventsnn.engine: it is the other side of every
    engine-versus-reference comparison."""
    shapes = net.shapes()
    pops = [RefPop("input", None, shapes["input"])]
    index = {"input": 0}

    def source(name):
        while name != "input" and net.layer(name).kind == "flatten":
            name = net.layer(name).inputs[0]
        return index[name]

    def conn_of(layer, pop):
        src_shape = shapes[layer.inputs[0]]
        if layer.kind == "conv2d":
            m, s = conv_matrix(src_shape, layer.weight.astype(np.float64), layer.stride, layer.padding)
        elif layer.kind == "dense":
            m = layer.weight.astype(np.float64)
            s = np.ones(m.shape, bool)
        elif layer.kind == "avgpool2d":
            m, s = pool_matrix(src_shape, layer.kernel, layer.stride, np.float32(1.0 / (layer.kernel[0] * layer.kernel[1])))
        else:
            m, s = pool_matrix(src_shape, layer.kernel, layer.stride, 1.0)
        if layer.bias is not None:
            pop.bias += np.broadcast_to(layer.bias, pop.shape).reshape(-1)
        return RefConn(source(layer.inputs[0]), m, s, layer.kind, layer.delay)

    for layer in net.layers:
        if not layer.spiking:
            continue
        pop = RefPop(layer.name, layer, shapes[layer.name])
        index[layer.name] = len(pops)
        pops.append(pop)
        if layer.kind != "add":
            pop.conns.append(conn_of(layer, pop))
            continue
        scales = [1.0] * len(layer.inputs) if layer.weight is None else list(layer.weight)
        for name, scale in zip(layer.inputs, scales):
            if name != "input" and not net.layer(name).spiking:
                pop.conns.append(conn_of(net.layer(name), pop))
            else:
                pop.conns.append(RefConn(source(name), np.eye(pop.n) * float(scale), np.eye(pop.n, dtype=bool),
                                         "ident", layer.delay))
    return pops


def _params(pop, net):
    neuron = pop.layer.neuron
    thr = np.broadcast_to(np.asarray(neuron.threshold, np.float32), pop.shape).reshape(-1).copy()
    spiking = not (pop is not None and net.decoding == "membrane" and pop.layer is net.layers[-1])
    return thr, np.float32(neuron.leak), neuron.reset == "subtract", spiking


def spikes_fired(vv, thr, max_spikes):
    """Spikes per neuron at potential ``vv`` (float32): min(K, floor(vv / thr)) where vv >= thr."""
    vv = np.asarray(vv, np.float32)
    quotient = np.floor((vv / thr).astype(np.float32))
    return np.where(vv >= thr, np.minimum(quotient, max_spikes), 0).astype(np.int64)


def _initial(pop, net):
    """Potentials at t = 0: v_init * threshold (zero for the input, gates and a membrane readout)."""
    if pop.layer is None or pop.layer.neuron is None:
        return np.zeros(pop.n, np.float32)
    thr, _, _, spiking = _params(pop, net)
    return (np.float32(pop.layer.neuron.v_init) * thr).astype(np.float32) if spiking else np.zeros(pop.n, np.float32)


def simulate_discrete(net, x, timesteps, encoding, input_raster=None):
    """Clock-driven reference. Returns dict with per-population rasters [T, N],
    syn_ops [P, T], updates [P, T], analog_macs [P], final potentials."""
    pops = build(net)
    x = np.asarray(x, np.float32).reshape(-1)
    P, T = len(pops), timesteps
    raster = [np.zeros((T, p.n), bool) for p in pops]
    counts_of = [np.zeros((T, p.n), np.int64) for p in pops]
    syn = np.zeros((P, T), np.int64)
    upd = np.zeros((P, T), np.int64)
    macs = np.zeros(P, np.int64)
    v = [_initial(p, net) for p in pops]
    const = [p.bias.copy() for p in pops]
    counts = {}
    if encoding == "direct":
        for k, p in enumerate(pops):
            for c in p.conns:
                if c.src == 0:
                    const[k] = const[k] + (x.astype(np.float64) @ c.matrix).astype(np.float32)
                    macs[k] += int(c.fanout[x != 0].sum())
    else:
        raster[0][:] = input_raster.astype(bool)
        counts_of[0][:] = raster[0]
    recheck = [np.zeros(p.n, bool) for p in pops]
    vpre = [np.zeros((T, p.n), np.float32) for p in pops]  # potentials before reset
    has_const = [bool(np.any(p.bias != 0) or (encoding == "direct" and any(c.src == 0 for c in p.conns)))
                 for p in pops]
    # A layer with a (possibly zero) bias is constant-driven in the engine too.
    for k, p in enumerate(pops[1:], start=1):
        if p.layer.kind != "add" and p.layer.bias is not None:
            has_const[k] = True
        for name in p.layer.inputs if p.layer.kind == "add" else ():
            if name != "input" and not net.layer(name).spiking and net.layer(name).bias is not None:
                has_const[k] = True
    for t in range(T):
        for k in range(1, P):
            p = pops[k]
            touched = np.zeros(p.n, bool)
            current = np.zeros(p.n, np.float64)
            for c in p.conns:
                if encoding == "direct" and c.src == 0:
                    continue
                s = raster[c.src][t]
                n_s = counts_of[c.src][t]
                syn[k, t] += int((c.fanout * n_s).sum())
                touched |= c.mask[s].any(axis=0)
                current += n_s.astype(np.float64) @ c.matrix
            if p.gate:
                c = p.conns[0]
                cnt = counts.setdefault(k, np.zeros(pops[c.src].n, np.int64))
                s = raster[c.src][t]
                cnt += counts_of[c.src][t]
                for j in np.flatnonzero(touched):
                    window = np.flatnonzero(c.mask[:, j])
                    top = cnt[window].max()
                    raster[k][t, j] = bool(np.any(s[window] & (cnt[window] == top)))
                counts_of[k][t] = raster[k][t]
                upd[k, t] = touched.sum()
                continue
            thr, leak, subtract, spiking = _params(p, net)
            block = p.block
            units = (touched | recheck[k]).reshape(-1, block).any(axis=1)
            if has_const[k]:
                units[:] = True
            upd[k, t] = units.sum() * block
            vv = (v[k] * leak + current.astype(np.float32)) + const[k]
            vpre[k][t] = vv
            fired = (vv >= thr) & spiking
            n_fired = spikes_fired(vv, thr, p.layer.neuron.max_spikes) * spiking
            raster[k][t] = fired
            counts_of[k][t] = n_fired
            if subtract:
                vv = np.where(fired, vv - n_fired.astype(np.float32) * thr, vv).astype(np.float32)
                recheck[k] = fired & (vv >= thr)
                recheck[k] = np.repeat(recheck[k].reshape(-1, block).any(axis=1), block)
            else:
                vv = np.where(fired, np.float32(0), vv).astype(np.float32)
            v[k] = vv
    return {"pops": pops, "raster": raster, "counts": counts_of, "syn_ops": syn, "updates": upd, "analog_macs": macs, "v": v,
            "v_before_reset": vpre}


def simulate_continuous(net, in_times, in_idx, duration):
    """Independent heapq event loop (poisson input, no constant currents).

    Simultaneous arrivals at one layer (same time) are summed before the
    threshold check; a neuron above threshold after a subtractive reset is
    rechecked one time unit later. Returns spikes as a list of
    (time, population, neuron) and syn_ops per population.
    """
    pops = build(net)
    P = len(pops)
    v = [_initial(p, net) for p in pops]
    inp = [np.zeros(p.n, np.float32) for p in pops]
    last = [np.zeros(p.n, np.float64) for p in pops]
    counts = [np.zeros(pops[p.conns[0].src].n, np.int64) if p.gate else None for p in pops]
    gate_last = [np.full(pops[p.conns[0].src].n, -1.0) if p.gate else None for p in pops]
    out_conns = [[(k, c) for k in range(P) for c in pops[k].conns if c.src == src] for src in range(P)]
    heap, seq = [], 0
    for t, i in zip(in_times, in_idx):
        heapq.heappush(heap, (float(t), 0, seq, None, int(i)))
        seq += 1
    spikes = []
    syn = np.zeros(P, np.int64)
    # Units left above threshold join the layer's next update, at the latest
    # one time unit later (when a sentinel event is due).
    pending = [np.zeros(p.n, bool) for p in pops]

    def emit(k, j, t):
        nonlocal seq
        spikes.append((t, k, j))
        for dst, c in out_conns[k]:
            heapq.heappush(heap, (t + c.delay, dst, seq, c, j))
            seq += 1

    while heap and heap[0][0] < duration:
        t, k = heap[0][0], heap[0][1]
        batch = []
        while heap and heap[0][0] == t and heap[0][1] == k:
            batch.append(heapq.heappop(heap))
        if k == 0:
            for _, _, _, _, i in batch:
                emit(0, i, t)
            continue
        p = pops[k]
        touched = np.zeros(p.n, bool)
        for _, _, _, c, i in batch:
            if c is None:  # sentinel: only schedules the update
                continue
            syn[k] += c.fanout[i]
            touched |= c.mask[i]
            inp[k] += c.matrix[i].astype(np.float32)
            if p.gate:
                counts[k][i] += 1
                gate_last[k][i] = t
        if p.gate:
            c = p.conns[0]
            for j in np.flatnonzero(touched):
                window = np.flatnonzero(c.mask[:, j])
                top = counts[k][window].max()
                if np.any((gate_last[k][window] == t) & (counts[k][window] == top)):
                    emit(k, int(j), t)
            continue
        thr, _, subtract, spiking = _params(p, net)
        tau = p.layer.neuron.tau
        units = (touched | pending[k]).reshape(-1, p.block).any(axis=1)
        pending[k][:] = False
        for u in np.flatnonzero(units):
            n0 = u * p.block
            f = np.float32(1.0) if math.isinf(tau) else np.float32(math.exp(-(t - last[k][n0]) / tau))
            again = False
            for n in range(n0, n0 + p.block):
                vv = v[k][n] * f + inp[k][n]
                inp[k][n] = 0
                last[k][n] = t
                if spiking and vv >= thr[n]:
                    fired = int(spikes_fired(vv, thr[n], p.layer.neuron.max_spikes))
                    vv = np.float32(vv - np.float32(fired) * thr[n]) if subtract else np.float32(0)
                    again |= bool(subtract and vv >= thr[n])
                    for _ in range(fired):
                        emit(k, n, t)
                v[k][n] = vv
            if again:
                pending[k][n0:n0 + p.block] = True
        if pending[k].any() and t + 1.0 < duration:
            heapq.heappush(heap, (t + 1.0, k, seq, None, -1))
            seq += 1
    return spikes, syn
