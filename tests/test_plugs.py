"""Plug points: a registered per-event / per-spike hook runs inside the event loop, sees
every spike and every delivered event, and leaves the simulation itself unchanged."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.errors import SimulationError
from eventsnn.learn.traces import SpikeTraces, trace_values

from netgen import random_input, random_network


def closed_form(times, t, tau):
    """sum over spikes s <= t of exp(-(t - s) / tau), written independently of the plug."""
    return sum(math.exp(-(t - s) / tau) for s in times if s <= t)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("order", ["time", "layer"])
def test_traces_plug_on_random_nets(seed, order):
    rng = np.random.default_rng(seed)
    net = random_network(rng, "poisson")
    x = random_input(rng, net)
    steps = 15
    plain = Simulator(net, timesteps=steps, seed=seed, record_spikes=True, order=order)
    plain.reset(x)
    plain.run()
    sim = Simulator(net, timesteps=steps, seed=seed, record_spikes=True, order=order)
    tau = rng.uniform(1.0, 8.0, len(sim.layer_names))
    traces = SpikeTraces.for_simulator(sim, tau)
    sim.plug = traces
    sim.reset(x)
    sim.run()
    # The plug observes; it changes nothing.
    np.testing.assert_array_equal(sim.state.spike_count, plain.state.spike_count)
    np.testing.assert_array_equal(sim.syn_ops, plain.syn_ops)
    np.testing.assert_array_equal(sim.state.v, plain.state.v)
    # on_spike saw every spike: the trace of every neuron equals the closed form at the end.
    t_end = float(steps)
    for p, name in enumerate(sim.layer_names):
        times, idx = sim.recorded_spikes(p)
        got = trace_values(traces, sim, p, t_end).reshape(-1)
        want = np.array([closed_form(times[idx == n], t_end, tau[p]) for n in range(got.size)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # on_deliver saw every event: per connection, the spikes of its source population.
    _, pops, _ = sim.recorded_spikes()
    for c, row in enumerate(sim.plan.conn_i):
        src = int(row[1])
        sent = int(np.sum(pops == src)) if not (src == 0 and sim.plan.encoding == "direct") else 0
        assert traces.delivered[c] == sent


def test_stepping_and_running_give_the_same_plug_state():
    rng = np.random.default_rng(4)
    net = random_network(rng, "poisson")
    x = random_input(rng, net)
    stepped = Simulator(net, timesteps=6)
    stepped.plug = SpikeTraces.for_simulator(stepped, 2.0)
    stepped.reset(x)
    steps = 0
    while stepped.step() is not None:
        steps += 1
    ran = Simulator(net, timesteps=6)
    ran.plug = SpikeTraces.for_simulator(ran, 2.0)
    ran.reset(x)
    ran.run()
    assert steps > 0 and ran.plug.delivered.sum() > 0
    for field in ("x", "last", "delivered"):
        np.testing.assert_array_equal(getattr(stepped.plug, field), getattr(ran.plug, field))


class Unregistered(NamedTuple):
    a: np.ndarray


def test_unregistered_plug_is_refused():
    net = random_network(np.random.default_rng(0), "poisson")
    with pytest.raises(SimulationError, match="not registered"):
        Simulator(net, timesteps=3, plug=Unregistered(np.zeros(1)))


def test_unknown_backend_is_refused():
    net = random_network(np.random.default_rng(0), "poisson")
    with pytest.raises(SimulationError, match="unknown backend"):
        Simulator(net, timesteps=3, backend="tpu")
