"""k-WTA as a readout without learning (the Diehl & Cook label assignment and test runs in
bench/diehl_cook.py): a Plasticity plug with no rule and k = 1 over a dense layer in
continuous time leaves the weights alone and lets exactly the neuron that spikes first
in the unplugged run (the lowest index among those at that instant) keep spiking, with its unplugged spike count (a single feedforward
layer: silencing the others cannot change the winner's own potential)."""

from __future__ import annotations

import numpy as np

from eventsnn.engine.simulator import Simulator
from eventsnn.learn.stdp import Plasticity
from eventsnn.network import Layer, Network, Neuron


def test_k1_readout_keeps_only_the_first_spiker():
    rng = np.random.default_rng(11)
    w = rng.uniform(0, 1, (20, 8)).astype(np.float32)
    thr = rng.uniform(2.0, 4.0, 8).astype(np.float32)  # per-neuron thresholds, as after theta adaptation
    net = Network((20,), [Layer("exc", "dense", ("input",), weight=w,
                                neuron=Neuron("lif", thr, "zero", float(np.exp(-1 / 10))))], encoding="poisson")
    free = Simulator(net, timesteps=60, mode="continuous", poisson_rate=0.3, seed=5, record_spikes=True)
    sim = Simulator(net, timesteps=60, mode="continuous", poisson_rate=0.3, seed=5, order="time")
    plug = Plasticity.for_simulator(sim, {}, kwta={"exc": (1, 0)})
    sim.plug = plug
    start = sim.params.thr.copy()
    weights = sim.params.weights.copy()
    winners = set()
    for i in range(6):
        x = rng.uniform(0, 1, 20).astype(np.float32)
        free.reset(x, sample_index=i)
        free.run()
        t, n = free.recorded_spikes("exc")
        ref = free.spike_counts("exc").reshape(-1)
        plug.begin_sample(sim.params, start)
        sim.reset(x, sample_index=i)
        sim.run()
        got = sim.spike_counts("exc").reshape(-1)
        assert len(t) > 0
        # Neurons cross at input spikes, so several can cross at the same instant: the
        # lower index is visited first and wins (competition.py).
        first = int(n[t == t.min()].min())
        expect = np.zeros_like(ref)
        expect[first] = ref[first]
        np.testing.assert_array_equal(got, expect)
        winners.add(first)
    np.testing.assert_array_equal(sim.params.weights, weights)  # no rule: nothing learned
    assert len(winners) > 1  # the samples really differ in who wins
