"""Compile a :class:`~eventsnn.network.Network` into the flat arrays the kernels read.

Populations: index 0 is the input; then every spiking layer in file order (so a
population's index is its *rank* in the event order). Connections: one per
conv/dense/pool layer, one per input of an ``add`` (identity for a spiking
input, the layer's own kernel for a neuron-less conv/dense/avgpool feeding it).
Flatten layers vanish: with channel-last storage, flattening is the identity on
flat indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, NetworkError, SimulationError
from ..network import Network
from .geometry import channel_shift, connection_table, has_geometry
from .layout import (aligned_zeros, C_CI, C_CSHIFT, C_GEO, C_CO, C_DST, C_HI, C_HO, C_KH, C_KIND, C_KW,
                     C_NFIELDS, C_PX, C_PY, C_SRC, C_SX, C_SY, C_WI, C_WO, C_WOFF, K_CONV, K_DENSE, K_GATE, K_IDENT,
                     K_POOL, P_BLOCK, P_C, P_CONST, P_GATE, P_GOFF, P_H, P_IN_CONN, P_INPUT,
                     P_INTEGRATE, P_KIND, P_LEAKY, P_MAX_SPIKES, P_N, P_NFIELDS, P_NUNITS, P_OC_N, P_OC_START,
                     P_OFF, P_RESET, P_SPIKING, P_UOFF, P_W, RESET_SUBTRACT, RESET_ZERO)

MODES = ("discrete", "continuous")


@dataclass
class Population:
    name: str
    kind: int
    shape: tuple
    layer: object = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class Plan:
    """The network as arrays, for one encoding, time mode and duration."""

    def __init__(self, net: Network, timesteps: int, mode: str = "discrete", encoding: str | None = None):
        if mode not in MODES:
            raise SimulationError(f"unknown time mode {mode!r} (known: {', '.join(MODES)})")
        encoding = encoding or net.encoding
        if encoding not in ("direct", "poisson"):
            raise SimulationError(f"unknown encoding {encoding!r} (known: direct, poisson)")
        shapes = net.shapes()
        self.net, self.mode, self.encoding = net, mode, encoding
        self.timesteps = int(timesteps)
        self.continuous = mode == "continuous"
        self.shapes = shapes
        self.pops = [Population("input", P_INPUT, shapes["input"])]
        pop_of = {"input": 0}
        for layer in net.layers:
            if layer.spiking:
                kind = P_GATE if layer.kind == "maxpool2d" else P_INTEGRATE
                pop_of[layer.name] = len(self.pops)
                self.pops.append(Population(layer.name, kind, shapes[layer.name], layer))
        self.pop_index = pop_of

        def source(name):
            while name != "input" and net.layer(name).kind == "flatten":
                name = net.layer(name).inputs[0]
            return pop_of[name]

        n_pops = len(self.pops)
        conns, weights = [], [np.zeros(0, np.float32)]
        woff = 0
        bias = {}

        def add_conn(kind, layer_in_shape, out_shape, src, dst, w, kernel=(1, 1), stride=(1, 1),
                     padding=(0, 0), delay=0.0):
            nonlocal woff
            row = np.zeros(C_NFIELDS, np.int64)
            row[C_KIND], row[C_SRC], row[C_DST] = kind, src, dst
            row[[C_HI, C_WI, C_CI]] = layer_in_shape
            row[[C_HO, C_WO, C_CO]] = out_shape
            row[[C_KH, C_KW]] = kernel
            row[[C_SY, C_SX]] = stride
            row[[C_PY, C_PX]] = padding
            row[C_WOFF] = woff
            flat = np.ascontiguousarray(w, np.float32).reshape(-1)
            weights.append(flat)
            woff += flat.size
            conns.append((row, float(delay)))

        def connect(layer, dst):
            in_shape = shapes[layer.inputs[0]]
            src = source(layer.inputs[0])
            out = shapes[layer.name]
            if layer.kind == "conv2d":
                # (kh, kw, C_in, C_out) -> (C_in, kh, kw, C_out): see .connectivity
                add_conn(K_CONV, in_shape, out, src, dst, layer.weight.transpose(2, 0, 1, 3),
                         layer.weight.shape[:2],
                         layer.stride, layer.padding, layer.delay)
            elif layer.kind == "dense":
                add_conn(K_DENSE, in_shape, out, src, dst, layer.weight, delay=layer.delay)
            elif layer.kind == "avgpool2d":
                k = layer.kernel
                add_conn(K_POOL, in_shape, out, src, dst, np.float32(1.0 / (k[0] * k[1])), k,
                         layer.stride, delay=layer.delay)
            elif layer.kind == "maxpool2d":
                add_conn(K_GATE, in_shape, out, src, dst, np.zeros(0, np.float32), layer.kernel,
                         layer.stride, delay=layer.delay)
            if layer.bias is not None:
                b = bias.setdefault(dst, np.zeros(out, np.float32))
                b += layer.bias.astype(np.float32)

        for dst, pop in enumerate(self.pops[1:], start=1):
            layer = pop.layer
            if layer.kind != "add":
                connect(layer, dst)
                continue
            scales = np.ones(len(layer.inputs), np.float32) if layer.weight is None else layer.weight
            for name, scale in zip(layer.inputs, scales):
                if name != "input" and not net.layer(name).spiking:
                    connect(net.layer(name), dst)
                else:
                    add_conn(K_IDENT, shapes[name], pop.shape, source(name), dst,
                             np.float32(scale), delay=layer.delay)

        self.conn_i = np.stack([row for row, _ in conns]).astype(np.int64)
        tables, geo_off = [np.zeros(0, np.int32)], 0
        for row in self.conn_i:
            row[C_CSHIFT] = channel_shift(row[C_CI])
            row[C_GEO] = geo_off
            if has_geometry(int(row[C_KIND])):
                tables.append(connection_table(row))
                geo_off += tables[-1].size
        self.conn_geo = np.concatenate(tables).astype(np.int32)
        self.conn_delay = np.array([d for _, d in conns], np.float64)
        flat_weights = np.concatenate(weights).astype(np.float32)
        self.weights = aligned_zeros(flat_weights.size, np.float32)
        self.weights[:] = flat_weights
        if not np.all(np.isfinite(self.weights)):
            raise NetworkError("network weights contain NaN or infinite values")

        if self.continuous:
            if encoding == "direct":
                raise NetworkError("continuous-time mode needs spike input: use encoding 'poisson'")
            if bias:
                raise NetworkError("continuous-time mode does not support biases (constant currents)")
        elif np.any(self.conn_delay != 0):
            raise NetworkError("synaptic delays are only supported in continuous-time mode")

        # Populations table.
        pop_i = np.zeros((n_pops, P_NFIELDS), np.int64)
        self.pop_tau = np.full(n_pops, math.inf, np.float64)
        off = uoff = goff = 0
        incoming = [[] for _ in range(n_pops)]
        for c, (row, _) in enumerate(conns):
            incoming[row[C_DST]].append(c)
        self.analog_conns = np.array(
            [c for c, (row, _) in enumerate(conns) if row[C_SRC] == 0 and encoding == "direct"], np.int64)
        analog_dst = {int(self.conn_i[c, C_DST]) for c in self.analog_conns}
        if encoding == "direct" and np.any(self.conn_i[self.analog_conns, C_KIND] == K_GATE):
            raise NetworkError("a maxpool2d layer cannot take the analog (direct) input; use poisson encoding")
        out_conns = []
        thresholds, initial = [], []
        leaks = np.ones(n_pops, np.float64)
        output = n_pops - 1
        for p, pop in enumerate(self.pops):
            h, w, ch = pop.shape
            n = h * w * ch
            pop_i[p, P_KIND], pop_i[p, P_N], pop_i[p, P_OFF] = pop.kind, n, off
            pop_i[p, P_H], pop_i[p, P_W], pop_i[p, P_C] = h, w, ch
            kinds = {int(self.conn_i[c, C_KIND]) for c in incoming[p]}
            block = ch if pop.kind == P_INTEGRATE and kinds <= {K_CONV, K_DENSE} else 1
            units = 0 if pop.kind == P_INPUT else n // block
            pop_i[p, P_BLOCK], pop_i[p, P_UOFF], pop_i[p, P_NUNITS] = block, uoff, units
            pop_i[p, P_OC_START] = len(out_conns)
            mine = [c for c, (row, _) in enumerate(conns) if row[C_SRC] == p]
            if p == 0 and encoding == "direct":
                mine = []
            out_conns.extend(mine)
            pop_i[p, P_OC_N] = len(mine)
            pop_i[p, P_CONST] = int(p in bias or p in analog_dst)
            pop_i[p, P_SPIKING] = 0 if (p == output and net.decoding == "membrane") else 1
            neuron = pop.layer.neuron if pop.layer is not None else None
            thr = np.full((h, w, ch), np.inf, np.float32)
            pop_i[p, P_MAX_SPIKES] = 1
            if neuron is not None:
                pop_i[p, P_MAX_SPIKES] = neuron.max_spikes
                thr[...] = np.asarray(neuron.threshold, np.float32)
                pop_i[p, P_RESET] = RESET_SUBTRACT if neuron.reset == "subtract" else RESET_ZERO
                pop_i[p, P_LEAKY] = int(neuron.leak != 1.0)
                leaks[p] = neuron.leak
                self.pop_tau[p] = neuron.tau
            thresholds.append(thr.reshape(-1))
            v0 = np.zeros(n, np.float32)
            if neuron is not None and neuron.v_init and pop_i[p, P_SPIKING]:
                v0[:] = (np.float32(neuron.v_init) * thr).reshape(-1)
            initial.append(v0)
            if pop.kind == P_GATE:
                pop_i[p, P_IN_CONN] = incoming[p][0]
                pop_i[p, P_GOFF] = goff
                goff += int(np.prod(shapes[pop.layer.inputs[0]]))
            off += n
            uoff += units
        self.pop_i = pop_i
        self.out_conn = np.array(out_conns, np.int32)
        self.thr = np.concatenate(thresholds).astype(np.float32)
        self.v_initial = np.concatenate(initial).astype(np.float32)
        self.n_neurons, self.n_units, self.n_gate = off, uoff, goff
        steps = np.arange(self.timesteps + 1, dtype=np.float64)
        self.decay = (leaks[:, None] ** steps[None, :]).astype(np.float32)
        self.const_base = np.zeros(off, np.float32)
        for p, b in bias.items():
            self.const_base[pop_i[p, P_OFF]: pop_i[p, P_OFF] + pop_i[p, P_N]] = b.reshape(-1)

    def net_arrays(self) -> tuple:
        """The network tuple the kernels take (order is the kernels' contract)."""
        return (self.conn_i, self.conn_delay, self.weights, self.pop_i, self.pop_tau,
                self.out_conn, self.thr, self.decay, self.conn_geo)

    def pop_slice(self, p: int) -> slice:
        off = int(self.pop_i[p, P_OFF])
        return slice(off, off + int(self.pop_i[p, P_N]))

    def fanout_total(self, conn: int) -> int:
        """Sum of the fan-out of every source neuron of a connection (its MACs per full input)."""
        from .cpu import fanout_of
        n_src = int(np.prod(self.conn_i[conn, [C_HI, C_WI, C_CI]]))
        return sum(fanout_of(self.conn_i, self.conn_geo, conn, i) for i in range(n_src))


def flat_input(plan: Plan, x) -> np.ndarray:
    """Validate one input sample against the network and return it flat, float32, HWC."""
    x = np.asarray(x, dtype=np.float32)
    want = plan.shapes["input"]
    allowed = {want, (want[0] * want[1] * want[2],)}
    if want[2] == 1:
        allowed.add(want[:2])
    if want[:2] == (1, 1):
        allowed.add((want[2],))
    if x.shape not in allowed:
        raise DataError(f"input sample has shape {x.shape}, the network expects {want}")
    if not np.all(np.isfinite(x)):
        raise DataError("input sample contains NaN or infinite values")
    return np.ascontiguousarray(x.reshape(-1))
