"""STDP online in the event engine: the :class:`Plasticity` plug.

The rules are in :mod:`.rules` (equations and papers there), the competition
in :mod:`.competition`. This module places them at the events that cause each
weight change (``eventsnn/engine/plugs.py``):

- ``on_spike`` (a neuron spikes, after its reset): if its layer competes,
  the k-WTA claim; then, for every plastic connection into its layer, the
  post-spike part of the rule over its fan-in (``connectivity.fanin_sources``:
  for a conv layer, the receptive field of that position, read through the
  *shared* kernel, so the update of every position lands on the same kernel
  entries); then its own traces ``x <- x e^{-dt/tau_+} + 1``,
  ``y <- y e^{-dt/tau_-} + 1``.
- ``on_deliver`` (a presynaptic event crosses a connection, before its
  fan-out is added): the depression of the deterministic rules over the
  fan-out (``connectivity.fanout_targets``); for a dense connection, over
  the targets that have spiked in this sample (the only ones with a trace;
  the plug lists them as they first spike), which under competition is a
  few neurons instead of the whole layer.

Once per map (``once``, after Kheradpisheh et al. 2018, Neural Netw. 99:56,
where each feature map learns from one winner per image): in a layer marked
``once``, only the first spike of each map in a sample (its *learner*, the
first neuron the engine emits for that map) runs the post-spike part, and the
depression at later pre spikes reaches only the learner's synapses. So each
shared kernel changes by the pair rule of one position per sample instead of
the sum over every position where its map fired, which otherwise pulls every
kernel towards the average patch.

Traces are lazy: each neuron stores (x, y) at its last spike and the time of
that spike, and a rule decays them when it reads them. A presynaptic trace
is updated when its neuron emits (with synaptic delays, the pair is timed at
emission). The plug must run with ``order="time"`` (layer order would let a
lower layer's traces run ahead of the layer reading them).

Build one with :meth:`Plasticity.for_simulator` and set ``sim.plug``; call
:meth:`Plasticity.begin_sample` before each ``sim.reset`` (it clears the
traces and the competition, and restores thresholds silenced by k-WTA).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from ..engine.connectivity import fanin_sources, fanout_targets
from ..engine.jit import kernel
from ..engine.layout import C_CO, C_DST, C_KIND, C_SRC, C_WOFF, K_CONV, K_DENSE, P_C, P_OFF
from ..engine.plugs import register_plug
from ..errors import NetworkError, SimulationError
from .competition import claim
from .rules import (R_NFIELDS, R_RULE, R_STEP, R_W_MIN, R_X_TAR, RULE_ADDITIVE, RULE_MULTIPLICATIVE, RULE_NAMES, RULE_STOCHASTIC, decayed,
                    depressed, potentiated, stochastic_switch, uniform)


@dataclass(frozen=True)
class STDPRule:
    """One layer's rule and constants (see :mod:`.rules` for the equations).

    ``kind``: ``additive``, ``multiplicative`` (deterministic, traces with
    ``tau_plus``/``tau_minus``) or ``stochastic`` (``gamma_pot``, ``tau_pot``,
    ``p_dep``, ``window``, ``levels``). Weights stay in [w_min, w_max]. ``x_tar``: the
    presynaptic target trace of the deterministic rules (0: plain pair STDP).
    """

    kind: str = "multiplicative"
    eta_plus: float = 0.01
    eta_minus: float = 0.0075
    tau_plus: float = 5.0
    tau_minus: float = 5.0
    w_min: float = 0.0
    w_max: float = 1.0
    gamma_pot: float = 0.1
    tau_pot: float = 5.0
    p_dep: float = 0.02
    window: float = 10.0
    levels: int = 2
    x_tar: float = 0.0

    def __post_init__(self):
        if self.kind not in RULE_NAMES:
            raise SimulationError(f"unknown STDP rule {self.kind!r} (known: {', '.join(RULE_NAMES)})")
        for name in ("eta_plus", "eta_minus", "tau_plus", "tau_minus", "w_min", "w_max", "gamma_pot", "tau_pot",
                     "p_dep", "window", "x_tar"):
            if not math.isfinite(float(getattr(self, name))) and name != "window":
                raise SimulationError(f"STDP rule: {name} must be finite, got {getattr(self, name)!r}")
        if not (self.tau_plus > 0 and self.tau_minus > 0 and self.tau_pot > 0):
            raise SimulationError("STDP rule: time constants must be positive")
        if self.eta_plus < 0 or self.eta_minus < 0:
            raise SimulationError("STDP rule: learning rates must be >= 0")
        if not self.w_max > self.w_min:
            raise SimulationError(f"STDP rule: w_max ({self.w_max}) must exceed w_min ({self.w_min})")
        if not (0 <= self.gamma_pot <= 1 and 0 <= self.p_dep <= 1):
            raise SimulationError("STDP rule: gamma_pot and p_dep are probabilities, in [0, 1]")
        if self.x_tar < 0:
            raise SimulationError("STDP rule: x_tar must be >= 0")
        if not (self.window >= 0):
            raise SimulationError("STDP rule: window must be >= 0")
        if int(self.levels) != self.levels or self.levels < 2:
            raise SimulationError(f"STDP rule: levels must be an integer >= 2, got {self.levels!r}")

    @property
    def stochastic(self) -> bool:
        return self.kind == "stochastic"

    def row(self) -> np.ndarray:
        """The rule as one row of the plug's per-connection configuration."""
        step = (self.w_max - self.w_min) / (self.levels - 1)
        return np.array([RULE_NAMES[self.kind], self.eta_plus, self.eta_minus, self.w_min, self.w_max,
                         self.gamma_pot, self.tau_pot, self.p_dep, self.window, step, self.x_tar], np.float64)

    def as_dict(self) -> dict:
        return asdict(self)

    def levels_values(self) -> np.ndarray:
        return np.linspace(self.w_min, self.w_max, int(self.levels))


class Plasticity(NamedTuple):
    """The STDP plug's arrays (module doc). Build with :meth:`for_simulator`."""

    cfg: np.ndarray  # float64 (n_conns, R_NFIELDS): the rule of each connection (RULE_NONE: fixed)
    in_ptr: np.ndarray  # int64 (n_pops + 1): plastic connections into each population, in in_conn
    in_conn: np.ndarray  # int64
    tau_x: np.ndarray  # float64 per population: presynaptic trace time constant (tau_+)
    tau_y: np.ndarray  # float64 per population: postsynaptic trace time constant (tau_-)
    x: np.ndarray  # float64 per neuron: presynaptic trace at its last spike
    y: np.ndarray  # float64 per neuron: postsynaptic trace at its last spike
    last: np.ndarray  # float64 per neuron: time of its last spike (-inf: none this sample)
    kwta: np.ndarray  # int64 (n_pops, 2): k (0: no competition) and inhibition radius
    member: np.ndarray  # uint8 per neuron (position q, map c): c is in S_q (competition.py)
    members: np.ndarray  # int32 per population position (indexed like neurons, off + q): |S_q|
    spiked: np.ndarray  # int64 per neuron: at each population's offset, its neurons that spiked this
    #                     sample (first n_spiked[pop] slots, in first-spike order)
    n_spiked: np.ndarray  # int64 per population: how many of its neurons spiked this sample
    idx_buf: np.ndarray  # int64 scratch: the fan-in / fan-out of one neuron
    w_buf: np.ndarray  # int64 scratch: the weight index of each of those synapses
    rng: np.ndarray  # uint64 [key, counter] of the stochastic rule's stream
    stats: np.ndarray  # float64 [sum |dw|, weight writes, switches up, switches down]
    once: np.ndarray  # uint8 per population: 1 = each map learns at its first spike only (module doc)
    taken: np.ndarray  # uint8 per population position (off + c): map c has had its update this sample
    learner: np.ndarray  # uint8 per neuron: it made its map's update this sample

    @classmethod
    def for_simulator(cls, sim, rules: dict, kwta: dict | None = None, seed: int = 0,
                      once=()) -> "Plasticity":
        """A plug for ``sim``: ``rules`` maps a conv/dense layer name to its :class:`STDPRule`
        (that layer's incoming weights learn); ``kwta`` maps a layer name to (k, radius);
        ``once``: names of learning layers whose maps learn once per sample (module doc)."""
        if sim.order != "time":
            raise SimulationError("STDP needs order='time' (traces of all layers advance together)")
        plan = sim.plan
        n_pops, n_conns, n = len(plan.pops), len(plan.conn_i), plan.n_neurons
        cfg = np.zeros((n_conns, R_NFIELDS), np.float64)
        tau_x = np.full(n_pops, 1.0)
        tau_y = np.full(n_pops, 1.0)
        incoming = [[] for _ in range(n_pops)]
        buf = 1
        for name, rule in rules.items():
            if not isinstance(rule, STDPRule):
                raise SimulationError(f"layer {name!r}: expected an STDPRule, got {type(rule).__name__}")
            conns = [c for c, row in enumerate(plan.conn_i)
                     if plan._conns[c].layer == name and int(row[C_KIND]) in (K_CONV, K_DENSE)]
            if not conns:
                raise NetworkError(f"no conv2d or dense layer named {name!r} to learn; "
                                   f"candidates: {learnable_layers(plan)}")
            for c in conns:
                row = plan.conn_i[c]
                src, dst = int(row[C_SRC]), int(row[C_DST])
                cfg[c] = rule.row()
                incoming[dst].append(c)
                tau_x[src] = rule.tau_plus
                tau_y[dst] = rule.tau_minus
                buf = max(buf, plan.pops[src].size, plan.pops[dst].size)
        k_table = np.zeros((n_pops, 2), np.int64)
        for name, (k, radius) in (kwta or {}).items():
            p = sim.layer_index(name)
            if p == 0 or not (int(k) >= 1 and int(radius) >= 0):
                raise SimulationError(f"k-WTA on {name!r}: need a spiking layer, k >= 1 and radius >= 0")
            k_table[p] = (int(k), int(radius))
        once_pops = np.zeros(n_pops, np.uint8)
        for name in once:
            if name not in rules:
                raise SimulationError(f"once-per-map learning on {name!r}: not a learning layer ({sorted(rules)})")
            once_pops[sim.layer_index(name)] = 1
        in_ptr = np.zeros(n_pops + 1, np.int64)
        in_ptr[1:] = np.cumsum([len(c) for c in incoming])
        in_conn = np.array([c for cs in incoming for c in cs], np.int64)
        return cls(cfg=cfg, in_ptr=in_ptr, in_conn=in_conn, tau_x=tau_x, tau_y=tau_y,
                   x=np.zeros(n), y=np.zeros(n), last=np.full(n, -np.inf), kwta=k_table,
                   member=np.zeros(n, np.uint8), members=np.zeros(n, np.int32),
                   spiked=np.zeros(n, np.int64), n_spiked=np.zeros(n_pops, np.int64),
                   idx_buf=np.zeros(buf, np.int64), w_buf=np.zeros(buf, np.int64),
                   rng=np.array([np.uint64(seed & 0xFFFFFFFFFFFFFFFF), 0], np.uint64),
                   stats=np.zeros(4, np.float64), once=once_pops, taken=np.zeros(n, np.uint8),
                   learner=np.zeros(n, np.uint8))

    def begin_sample(self, params, thresholds: np.ndarray | None = None) -> None:
        """Clear traces and competition before a sample; ``thresholds`` (one per neuron)
        are the thresholds it starts with (undoing k-WTA's silencing of the last sample)."""
        self.x[:] = 0.0
        self.y[:] = 0.0
        self.last[:] = -np.inf
        self.n_spiked[:] = 0
        self.member[:] = 0
        self.members[:] = 0
        self.taken[:] = 0
        self.learner[:] = 0
        if thresholds is not None:
            params.thr[:] = thresholds


def learnable_layers(plan) -> list:
    return sorted({plan._conns[c].layer for c, row in enumerate(plan.conn_i) if int(row[C_KIND]) in (K_CONV, K_DENSE)})


@kernel
def _potentiate(plug, topo, params, c, neuron, t):
    """The post-spike part of connection ``c``'s rule for target ``neuron`` spiking at ``t``."""
    cfg = plug.cfg[c]
    weights, last = params.weights, plug.last
    soff = topo.pop_i[topo.conn_i[c, C_SRC], P_OFF]
    tau = plug.tau_x[topo.conn_i[c, C_SRC]]
    n = fanin_sources(topo.conn_i, topo.conn_fgeo, c, neuron, plug.idx_buf, plug.w_buf)
    stats = plug.stats
    if cfg[R_RULE] == RULE_STOCHASTIC:
        for j in range(n):
            s = soff + plug.idx_buf[j]
            k = plug.w_buf[j]
            dt = t - last[s]  # inf when the source has not spiked this sample
            level, move = stochastic_switch(np.float64(weights[k]), dt, uniform(plug.rng), cfg)
            if move != 0:
                weights[k] = np.float32(cfg[R_W_MIN] + level * cfg[R_STEP])
                if move > 0:
                    stats[2] += 1.0
                else:
                    stats[3] += 1.0
        return
    quiet_too = cfg[R_X_TAR] != 0.0  # with a target trace, quiet inputs change too
    for j in range(n):
        s = soff + plug.idx_buf[j]
        trace = decayed(plug.x[s], last[s], t, tau)
        if trace != 0.0 or quiet_too:
            k = plug.w_buf[j]
            w0 = np.float64(weights[k])
            w = np.float32(potentiated(w0, trace, cfg))
            weights[k] = w
            stats[0] += abs(np.float64(w) - w0)
            stats[1] += 1.0


@kernel
def _on_spike(plug, topo, params, pop, neuron, t):
    if plug.kwta[pop, 0] > 0:
        claim(plug, topo, params, pop, neuron)
    off = topo.pop_i[pop, P_OFF]
    g = off + neuron
    learns = True
    if plug.once[pop] != 0:
        c = off + neuron % topo.pop_i[pop, P_C]
        learns = plug.taken[c] == 0
        if learns:
            plug.taken[c] = 1
            plug.learner[g] = 1
    if learns:
        for i in range(plug.in_ptr[pop], plug.in_ptr[pop + 1]):
            _potentiate(plug, topo, params, plug.in_conn[i], neuron, t)
    if plug.last[g] == -math.inf:  # its first spike this sample
        plug.spiked[off + plug.n_spiked[pop]] = neuron
        plug.n_spiked[pop] += 1
    plug.x[g] = decayed(plug.x[g], plug.last[g], t, plug.tau_x[pop]) + 1.0
    plug.y[g] = decayed(plug.y[g], plug.last[g], t, plug.tau_y[pop]) + 1.0
    plug.last[g] = t


@kernel
def _on_deliver(plug, topo, params, conn, source, t):
    rule = plug.cfg[conn, R_RULE]
    if rule != RULE_ADDITIVE and rule != RULE_MULTIPLICATIVE:
        return
    cfg = plug.cfg[conn]
    dst = topo.conn_i[conn, C_DST]
    doff = topo.pop_i[dst, P_OFF]
    tau = plug.tau_y[dst]
    weights = params.weights
    if topo.conn_i[conn, C_KIND] == K_DENSE:
        # Only targets that spiked this sample have a trace: visit those (under competition,
        # a few of the layer) instead of the whole fan-out; the same updates.
        co = topo.conn_i[conn, C_CO]
        base = topo.conn_i[conn, C_WOFF] + source * co
        for m in range(plug.n_spiked[dst]):
            j = plug.spiked[doff + m]
            g = doff + j
            if plug.once[dst] != 0 and plug.learner[g] == 0:
                continue
            trace = decayed(plug.y[g], plug.last[g], t, tau)
            if trace != 0.0:
                k = base + j
                w0 = np.float64(weights[k])
                w = np.float32(depressed(w0, trace, cfg))
                weights[k] = w
                plug.stats[0] += abs(np.float64(w) - w0)
                plug.stats[1] += 1.0
        return
    n = fanout_targets(topo.conn_i, topo.conn_geo, conn, source, plug.idx_buf, plug.w_buf)
    for j in range(n):
        g = doff + plug.idx_buf[j]
        if plug.once[dst] != 0 and plug.learner[g] == 0:
            continue
        trace = decayed(plug.y[g], plug.last[g], t, tau)
        if trace != 0.0:
            k = plug.w_buf[j]
            w0 = np.float64(weights[k])
            w = np.float32(depressed(w0, trace, cfg))
            weights[k] = w
            plug.stats[0] += abs(np.float64(w) - w0)
            plug.stats[1] += 1.0


register_plug(Plasticity, on_deliver=_on_deliver, on_spike=_on_spike)
