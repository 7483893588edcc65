"""Compile a :class:`~eventsnn.network.Network` into kernel data, and back.

``Plan(net, timesteps, mode, encoding)`` lowers the layer graph to a
:class:`~.model.Topology` (fixed structure and geometry) and
:class:`~.model.Params` (what learning may change); :meth:`Plan.to_network`
writes a (possibly changed) ``Params`` back into a ``Network``, exactly:
``Network -> Plan -> Network`` is the identity on every weight, bias,
threshold and leak.

Populations: index 0 is the input; then every spiking layer in file order (so a
population's index is its *rank* in the event order). Connections: one per
conv/dense/pool layer, one per input of an ``add`` (identity for a spiking
input, the layer's own kernel for a neuron-less conv/dense/avgpool feeding it).
Flatten layers vanish: with channel-last storage, flattening is the identity on
flat indices.

Parameters and their kernel form (all float32 except the leak):

- conv weights (kh, kw, C_in, C_out) are stored (C_in, kh, kw, C_out) with kx
  reversed, so the taps of one source channel are one contiguous block and the
  kw taps of one kernel row line up with kw adjacent targets (:mod:`.connectivity`);
- dense weights (N_in, N_out) as they are; average pools a scalar 1/(kh*kw)
  (fixed by the kernel size, not learnable); an ``add``'s spiking inputs one
  scalar scale each;
- biases in the layer's own shape, one segment per connection (``C_BOFF``),
  broadcast over positions into the constant current at ``reset``;
- thresholds per neuron; leaks per population (``decay`` holds leak**dt).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, NetworkError, SimulationError
from ..network import Network
from .geometry import channel_shift, connection_fanin_table, connection_table, has_geometry
from .layout import (aligned_zeros, C_BOFF, C_CI, C_CSHIFT, C_FGEO, C_GEO, C_CO, C_DST, C_HI, C_HO, C_KH,
                     C_KIND, C_KW, C_NFIELDS, C_PX, C_PY, C_SRC, C_SX, C_SY, C_WI, C_WO, C_WOFF, K_CONV,
                     K_DENSE, K_GATE, K_IDENT, K_POOL, P_BLOCK, P_C, P_CONST, P_GATE, P_GOFF, P_H, P_IN_CONN,
                     P_INPUT, P_INTEGRATE, P_KIND, P_LEAKY, P_MAX_SPIKES, P_N, P_NFIELDS, P_NUNITS, P_OC_N,
                     P_OC_START, P_OFF, P_RESET, P_SPIKING, P_UOFF, P_W, RESET_SUBTRACT, RESET_ZERO)
from .model import Params, Topology

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


@dataclass
class _Conn:
    """A connection while it is being lowered: its row, weights and where they came from."""

    row: np.ndarray
    delay: float
    weight: np.ndarray  # float32 in kernel order (a conv's a C_in-major view of the layer's weight)
    layer: str  # the layer whose weight (or, for K_IDENT, whose add scale) this is
    scale_index: int = -1  # K_IDENT: the position of the input in the add layer
    bias: np.ndarray | None = None  # the layer's bias, in its own shape


def decay_table(leak: np.ndarray, timesteps: int) -> np.ndarray:
    """(n_pops, T + 1) float32 leak ** dt for dt = 0..T (the discrete-time lazy leak)."""
    steps = np.arange(int(timesteps) + 1, dtype=np.float64)
    return (np.asarray(leak, np.float64)[:, None] ** steps[None, :]).astype(np.float32)


class Plan:
    """The network as kernel data (:attr:`topology`, :attr:`params`) for one
    encoding, time mode and duration, with the Python-side names and shapes."""

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
        for layer in net.layers:
            if layer.spiking:
                kind = P_GATE if layer.kind == "maxpool2d" else P_INTEGRATE
                self.pops.append(Population(layer.name, kind, shapes[layer.name], layer))
        self.pop_index = {pop.name: p for p, pop in enumerate(self.pops)}
        self._conns = self._lower_connections(net, shapes)
        self._check_mode()
        topology, params = self._tables()
        self.topology, self.params = topology, params

    # -- lowering ------------------------------------------------------------------
    def _lower_connections(self, net: Network, shapes: dict) -> list:
        pop_of = self.pop_index
        conns: list[_Conn] = []

        def source(name):
            while name != "input" and net.layer(name).kind == "flatten":
                name = net.layer(name).inputs[0]
            return pop_of[name]

        def add_conn(kind, layer, in_shape, out_shape, src, dst, w, kernel=(1, 1), stride=(1, 1),
                     padding=(0, 0), delay=0.0, scale_index=-1, bias=None):
            row = np.zeros(C_NFIELDS, np.int64)
            row[C_KIND], row[C_SRC], row[C_DST] = kind, src, dst
            row[[C_HI, C_WI, C_CI]] = in_shape
            row[[C_HO, C_WO, C_CO]] = out_shape
            row[[C_KH, C_KW]] = kernel
            row[[C_SY, C_SX]] = stride
            row[[C_PY, C_PX]] = padding
            # A view where it can be (a conv's is transposed to C_in-major): _tables
            # copies it once, into the kernels' aligned array.
            conns.append(_Conn(row, float(delay), np.asarray(w, np.float32), layer, scale_index,
                               None if bias is None else np.asarray(bias, np.float32)))

        def connect(layer, dst):
            in_shape = shapes[layer.inputs[0]]
            src = source(layer.inputs[0])
            out = shapes[layer.name]
            if layer.kind == "conv2d":
                stored = layer.weight.transpose(2, 0, 1, 3)[:, :, ::-1]  # (C_in, kh, kw reversed, C_out)
                add_conn(K_CONV, layer.name, in_shape, out, src, dst, stored, layer.weight.shape[:2], layer.stride,
                         layer.padding, layer.delay, bias=layer.bias)
            elif layer.kind == "dense":
                add_conn(K_DENSE, layer.name, in_shape, out, src, dst, layer.weight, delay=layer.delay,
                         bias=layer.bias)
            elif layer.kind == "avgpool2d":
                k = layer.kernel
                add_conn(K_POOL, layer.name, in_shape, out, src, dst, np.float32(1.0 / (k[0] * k[1])), k,
                         layer.stride, delay=layer.delay, bias=layer.bias)
            elif layer.kind == "maxpool2d":
                add_conn(K_GATE, layer.name, in_shape, out, src, dst, np.zeros(0, np.float32), layer.kernel,
                         layer.stride, delay=layer.delay)

        for dst, pop in enumerate(self.pops[1:], start=1):
            layer = pop.layer
            if layer.kind != "add":
                connect(layer, dst)
                continue
            scales = np.ones(len(layer.inputs), np.float32) if layer.weight is None else layer.weight
            for i, (name, scale) in enumerate(zip(layer.inputs, scales)):
                if name != "input" and not net.layer(name).spiking:
                    connect(net.layer(name), dst)
                else:
                    add_conn(K_IDENT, layer.name, shapes[name], pop.shape, source(name), dst,
                             np.float32(scale), delay=layer.delay, scale_index=i)
        return conns

    def _check_mode(self) -> None:
        has_bias = any(c.bias is not None for c in self._conns)
        delays = np.array([c.delay for c in self._conns], np.float64)
        if self.continuous:
            if self.encoding == "direct":
                raise NetworkError("continuous-time mode needs spike input: use encoding 'poisson'")
            if has_bias:
                raise NetworkError("continuous-time mode does not support biases (constant currents)")
        elif np.any(delays != 0):
            raise NetworkError("synaptic delays are only supported in continuous-time mode")

    def _tables(self) -> tuple:
        conns, pops, encoding = self._conns, self.pops, self.encoding
        n_pops = len(pops)
        conn_i = np.stack([c.row for c in conns]).astype(np.int64)
        geo, fgeo, weights, biases = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)], [], []
        geo_off = fgeo_off = woff = boff = 0
        for c, row in zip(conns, conn_i):
            row[C_CSHIFT] = channel_shift(row[C_CI])
            row[C_GEO], row[C_FGEO], row[C_WOFF] = geo_off, fgeo_off, woff
            if has_geometry(int(row[C_KIND])):
                geo.append(connection_table(row))
                fgeo.append(connection_fanin_table(row))
                geo_off += geo[-1].size
                fgeo_off += fgeo[-1].size
            weights.append(c.weight)
            woff += c.weight.size
            row[C_BOFF] = -1
            if c.bias is not None:
                row[C_BOFF] = boff
                biases.append(c.bias.reshape(-1))
                boff += c.bias.size
        # Straight into the aligned array: VGG16's 58 MB of weights were copied three times here.
        aligned = aligned_zeros(woff, np.float32)
        start = 0
        for w in weights:
            aligned[start:start + w.size].reshape(w.shape)[...] = w
            start += w.size
        if not np.isfinite(aligned).all():
            raise NetworkError("network weights contain NaN or infinite values")

        pop_i = np.zeros((n_pops, P_NFIELDS), np.int64)
        pop_tau = np.full(n_pops, math.inf, np.float64)
        pop_vinit = np.zeros(n_pops, np.float64)
        leaks = np.ones(n_pops, np.float64)
        incoming = [[] for _ in range(n_pops)]
        for c, row in enumerate(conn_i):
            incoming[row[C_DST]].append(c)
        self.analog_conns = np.array(
            [c for c, row in enumerate(conn_i) if row[C_SRC] == 0 and encoding == "direct"], np.int64)
        analog_dst = {int(conn_i[c, C_DST]) for c in self.analog_conns}
        bias_dst = {int(row[C_DST]) for row in conn_i if row[C_BOFF] >= 0}
        if encoding == "direct" and np.any(conn_i[self.analog_conns, C_KIND] == K_GATE):
            raise NetworkError("a maxpool2d layer cannot take the analog (direct) input; use poisson encoding")
        out_conns, thresholds = [], []
        off = uoff = goff = 0
        output = n_pops - 1
        for p, pop in enumerate(pops):
            h, w, ch = pop.shape
            n = h * w * ch
            pop_i[p, P_KIND], pop_i[p, P_N], pop_i[p, P_OFF] = pop.kind, n, off
            pop_i[p, P_H], pop_i[p, P_W], pop_i[p, P_C] = h, w, ch
            kinds = {int(conn_i[c, C_KIND]) for c in incoming[p]}
            block = ch if pop.kind == P_INTEGRATE and kinds <= {K_CONV, K_DENSE} else 1
            units = 0 if pop.kind == P_INPUT else n // block
            pop_i[p, P_BLOCK], pop_i[p, P_UOFF], pop_i[p, P_NUNITS] = block, uoff, units
            pop_i[p, P_OC_START] = len(out_conns)
            mine = [c for c, row in enumerate(conn_i) if row[C_SRC] == p]
            if p == 0 and encoding == "direct":
                mine = []
            out_conns.extend(mine)
            pop_i[p, P_OC_N] = len(mine)
            pop_i[p, P_CONST] = int(p in bias_dst or p in analog_dst)
            pop_i[p, P_SPIKING] = 0 if (p == output and self.net.decoding == "membrane") else 1
            neuron = pop.layer.neuron if pop.layer is not None else None
            thr = np.full((h, w, ch), np.inf, np.float32)
            pop_i[p, P_MAX_SPIKES] = 1
            if neuron is not None:
                pop_i[p, P_MAX_SPIKES] = neuron.max_spikes
                thr[...] = np.asarray(neuron.threshold, np.float32)
                pop_i[p, P_RESET] = RESET_SUBTRACT if neuron.reset == "subtract" else RESET_ZERO
                pop_i[p, P_LEAKY] = int(neuron.leak != 1.0)
                leaks[p] = neuron.leak
                pop_tau[p] = neuron.tau
                if neuron.v_init and pop_i[p, P_SPIKING]:
                    pop_vinit[p] = neuron.v_init
            thresholds.append(thr.reshape(-1))
            if pop.kind == P_GATE:
                pop_i[p, P_IN_CONN] = incoming[p][0]
                pop_i[p, P_GOFF] = goff
                goff += int(np.prod(self.shapes[pop.layer.inputs[0]]))
            off += n
            uoff += units
        self.n_neurons, self.n_units, self.n_gate = off, uoff, goff
        topology = Topology(conn_i=conn_i, conn_delay=np.array([c.delay for c in conns], np.float64),
                            pop_i=pop_i, pop_tau=pop_tau, pop_vinit=pop_vinit,
                            out_conn=np.array(out_conns, np.int32),
                            conn_geo=np.concatenate(geo).astype(np.int32),
                            conn_fgeo=np.concatenate(fgeo).astype(np.int32))
        bias = np.concatenate(biases).astype(np.float32) if biases else np.zeros(0, np.float32)
        params = Params(weights=aligned, bias=bias, thr=np.concatenate(thresholds).astype(np.float32),
                        leak=leaks, decay=decay_table(leaks, self.timesteps))
        return topology, params

    # -- reading the tables ---------------------------------------------------------------
    @property
    def conn_i(self) -> np.ndarray:
        return self.topology.conn_i

    @property
    def pop_i(self) -> np.ndarray:
        return self.topology.pop_i

    @property
    def conn_geo(self) -> np.ndarray:
        return self.topology.conn_geo

    @property
    def weights(self) -> np.ndarray:
        return self.params.weights

    @property
    def thr(self) -> np.ndarray:
        return self.params.thr

    def pop_slice(self, p: int) -> slice:
        off = int(self.pop_i[p, P_OFF])
        return slice(off, off + int(self.pop_i[p, P_N]))

    def initial_potential(self, params: Params | None = None) -> np.ndarray:
        """V before step 0: ``v_init * threshold`` of every neuron (float32)."""
        params = self.params if params is None else params
        v0 = np.zeros(self.n_neurons, np.float32)
        for p in range(1, len(self.pops)):
            if self.topology.pop_vinit[p]:
                sl = self.pop_slice(p)
                v0[sl] = np.float32(self.topology.pop_vinit[p]) * params.thr[sl]
        return v0

    def constant_current(self, params: Params | None = None) -> np.ndarray:
        """Every neuron's bias current: the sum of the biases of its incoming layers."""
        params = self.params if params is None else params
        const = np.zeros(self.n_neurons, np.float32)
        for c, row in enumerate(self.conn_i):
            if row[C_BOFF] < 0:
                continue
            p = int(row[C_DST])
            shape = self._conns[c].bias.shape
            seg = params.bias[row[C_BOFF]: row[C_BOFF] + int(np.prod(shape))].reshape(shape)
            const[self.pop_slice(p)] += np.broadcast_to(seg, self.pops[p].shape).reshape(-1)
        return const

    def fanout_total(self, conn: int) -> int:
        """Sum of the fan-out of every source neuron of a connection (its MACs per full input)."""
        from .geometry import axis_totals
        row = self.conn_i[conn]
        kind = int(row[C_KIND])
        if kind == K_DENSE:
            return int(row[C_HI] * row[C_WI] * row[C_CI] * row[C_CO])
        if kind == K_IDENT:
            return int(row[C_HO] * row[C_WO] * row[C_CO])
        ty = axis_totals(int(row[C_HI]), int(row[C_HO]), int(row[C_KH]), int(row[C_SY]), int(row[C_PY]))
        tx = axis_totals(int(row[C_WI]), int(row[C_WO]), int(row[C_KW]), int(row[C_SX]), int(row[C_PX]))
        return ty * tx * int(row[C_CI]) * (int(row[C_CO]) if kind == K_CONV else 1)

    # -- back to a network ------------------------------------------------------------------
    def to_network(self, params: Params | None = None) -> Network:
        """A copy of the source network carrying ``params`` (default: this plan's).

        The inverse of the lowering: conv blocks go back to (kh, kw, C_in, C_out),
        biases and thresholds to their layer's shapes, leaks to their neurons.
        Raises NetworkError where a parameter shared in the network (a per-channel
        threshold, a pool's fixed weight) was changed per neuron."""
        params = self.params if params is None else params
        net = copy.deepcopy(self.net)
        for c, row in zip(self._conns, self.conn_i):
            kind = int(row[C_KIND])
            seg = params.weights[row[C_WOFF]: row[C_WOFF] + c.weight.size]
            if kind == K_CONV:
                layer = net.layer(c.layer)
                kh, kw, ci, co = layer.weight.shape
                layer.weight = np.array(seg.reshape(ci, kh, kw, co)[:, :, ::-1].transpose(1, 2, 0, 3), np.float32)
            elif kind == K_DENSE:
                layer = net.layer(c.layer)
                layer.weight = seg.reshape(layer.weight.shape).astype(np.float32).copy()
            elif kind == K_POOL and seg[0] != c.weight.reshape(-1)[0]:
                raise NetworkError(f"layer {c.layer!r}: an average pool's weight is fixed by its kernel "
                                   f"(1/{int(row[C_KH] * row[C_KW])}), got {float(seg[0])}")
            elif kind == K_IDENT:
                layer = net.layer(c.layer)
                if layer.weight is not None or seg[0] != 1.0:
                    scales = (np.ones(len(layer.inputs), np.float32) if layer.weight is None
                              else np.array(layer.weight, np.float32))
                    scales[c.scale_index] = seg[0]
                    layer.weight = scales
            if c.bias is not None:
                layer = net.layer(c.layer)
                layer.bias = params.bias[row[C_BOFF]: row[C_BOFF] + c.bias.size].reshape(c.bias.shape).copy()
        for p, pop in enumerate(self.pops):
            neuron = net.layer(pop.name).neuron if p else None
            if neuron is None:
                continue
            thr = params.thr[self.pop_slice(p)].reshape(pop.shape)
            neuron.threshold = _shared_like(neuron.threshold, thr, pop.name)
            neuron.leak = float(params.leak[p])
        return net


def _shared_like(original, per_neuron: np.ndarray, layer: str):
    """``per_neuron`` (H, W, C) folded back to the shape of ``original`` (a scalar
    or one value per channel), refusing values that are no longer shared."""
    shape = np.shape(original)
    if shape == ():
        value = per_neuron.reshape(-1)[0]
        folded = per_neuron.reshape(-1)[:1]
    else:
        folded = per_neuron.reshape(-1, per_neuron.shape[-1])[0]
        value = None
    if not np.array_equal(np.broadcast_to(folded if value is None else value, per_neuron.shape), per_neuron):
        raise NetworkError(f"layer {layer!r}: thresholds differ between positions, but the network "
                           f"stores {'one' if value is not None else 'one per channel'}")
    if value is not None:
        return float(value) if isinstance(original, (float, int)) else np.asarray(value, np.float32).reshape(shape)
    return folded.astype(np.float32).reshape(shape).copy()


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
