"""The dense fast path of STDP depression (stdp.py: only the targets that have spiked this
sample are visited) against the general fan-out scan: a dense layer and the same weights
as a 1x1 convolution over a 1x1 image (which takes the general path) learn bit-identical
weights, with and without competition, in discrete and continuous time, and with
once-per-map learning (every neuron of a dense layer is its own map)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.learn.stdp import Plasticity, STDPRule
from eventsnn.network import Layer, Network, Neuron


def learn(kind, w, xs, mode, kwta, rule, once=False):
    n_in, n_out = w.shape
    neuron = Neuron("lif", 1.5, "zero", math.exp(-1 / 8))
    if kind == "dense":
        layer = Layer("exc", "dense", ("input",), weight=w.copy(), neuron=neuron)
        shape = (n_in,)
    else:
        layer = Layer("exc", "conv2d", ("input",), weight=w.reshape(1, 1, n_in, n_out).copy(), neuron=neuron)
        shape = (1, 1, n_in)
    net = Network(shape, [layer], encoding="poisson")
    sim = Simulator(net, timesteps=30, mode=mode, poisson_rate=0.4, seed=9, order="time")
    plug = Plasticity.for_simulator(sim, {"exc": rule}, kwta=None if kwta is None else {"exc": kwta},
                                    once=("exc",) if once else ())
    sim.plug = plug
    thr = sim.params.thr.copy()
    trajectory, spikes = [], 0
    for i, x in enumerate(xs):
        plug.begin_sample(sim.params, thr)
        sim.reset(x.reshape(shape), sample_index=i)
        sim.run()
        spikes += int(sim.spike_counts("exc").sum())
        trajectory.append(sim.params.weights[: w.size].copy())
    return trajectory, spikes, plug


@pytest.mark.parametrize("mode,kwta,once", [("continuous", (1, 0), False), ("continuous", None, False),
                                            ("discrete", (2, 0), False), ("continuous", None, True)])
def test_dense_depression_equals_the_general_scan(mode, kwta, once):
    rng = np.random.default_rng(21)
    n_in, n_out = 24, 10
    w = rng.uniform(0.0, 0.4, (n_in, n_out)).astype(np.float32)
    xs = rng.uniform(0, 1, (4, n_in)).astype(np.float32)
    # eta_- large so the depression is visible in every sample.
    rule = STDPRule("multiplicative", eta_plus=0.05, eta_minus=0.2, tau_plus=5.0, tau_minus=5.0)
    dense, spikes, plug = learn("dense", w, xs, mode, kwta, rule, once)
    conv, conv_spikes, _ = learn("conv", w, xs, mode, kwta, rule, once)
    assert spikes == conv_spikes and spikes > 4
    for d, c in zip(dense, conv):
        np.testing.assert_array_equal(d, c)
    assert not np.array_equal(dense[-1], w.reshape(-1))
    # The list holds exactly the neurons of each population that spiked in the last sample.
    for pop in range(2):
        off = [0, n_in][pop]
        size = [n_in, n_out][pop]
        listed = np.sort(plug.spiked[off: off + plug.n_spiked[pop]])
        np.testing.assert_array_equal(listed, np.flatnonzero(np.isfinite(plug.last[off: off + size])))
