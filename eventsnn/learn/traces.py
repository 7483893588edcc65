"""Exponential spike traces kept online, at the spikes that change them: the state a
pair-based STDP rule reads (Morrison, Diesmann & Gerstner 2008, Biol. Cybern. 98:459).

For every neuron ``n`` of population ``p`` (the input included)::

    x_n(t) = sum over its spikes s <= t of exp(-(t - s) / tau_p)

stored lazily as (x at its last spike, time of that spike): a spike at ``t``
sets ``x <- x * exp(-(t - t_last) / tau_p) + 1``; reading at a later time
decays the stored value (:func:`trace_values`). The plug also counts the
events delivered through each connection (``on_deliver``), so the two plug
points are both exercised. Plug it into a Simulator with ``plug=SpikeTraces.for_simulator(sim)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..engine.jit import inline_kernel
from ..engine.layout import P_OFF
from ..engine.plugs import register_plug


class SpikeTraces(NamedTuple):
    tau: np.ndarray  # float64 per population (inf: never decays)
    x: np.ndarray  # float64 per neuron: the trace at its last spike
    last: np.ndarray  # float64 per neuron: time of its last spike (-inf: none yet)
    delivered: np.ndarray  # int64 per connection: spike events delivered through it

    @classmethod
    def for_simulator(cls, sim, tau) -> "SpikeTraces":
        """Traces for every neuron of ``sim``'s network; ``tau`` a number or one per population."""
        tau = np.broadcast_to(np.asarray(tau, np.float64), (len(sim.layer_names),)).copy()
        if not np.all(tau > 0):
            raise ValueError("trace time constants must be positive")
        n = sim.plan.n_neurons
        return cls(tau=tau, x=np.zeros(n, np.float64), last=np.full(n, -np.inf, np.float64),
                   delivered=np.zeros(len(sim.plan.conn_i), np.int64))

    def clear(self) -> None:
        self.x[:] = 0.0
        self.last[:] = -np.inf
        self.delivered[:] = 0


@inline_kernel
def _on_spike(plug, topo, params, pop, neuron, t):
    n = topo.pop_i[pop, P_OFF] + neuron
    if plug.last[n] > -math.inf:
        plug.x[n] = plug.x[n] * math.exp(-(t - plug.last[n]) / plug.tau[pop]) + 1.0
    else:
        plug.x[n] = 1.0
    plug.last[n] = t


@inline_kernel
def _on_deliver(plug, topo, params, conn, source, t):
    plug.delivered[conn] += 1


register_plug(SpikeTraces, on_deliver=_on_deliver, on_spike=_on_spike)


def trace_values(traces: SpikeTraces, sim, layer, t: float) -> np.ndarray:
    """The traces of one layer's neurons at time ``t`` (>= their last spikes), shape (H, W, C)."""
    p = sim.layer_index(layer)
    sl = sim.plan.pop_slice(p)
    last = traces.last[sl]
    decay = np.where(np.isfinite(last), np.exp(-(t - np.where(np.isfinite(last), last, t)) / traces.tau[p]), 0.0)
    return (traces.x[sl] * decay).reshape(sim.plan.pops[p].shape)
