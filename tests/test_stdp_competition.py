"""k-WTA across feature maps with an inhibition radius, and adaptive thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.learn.competition import AdaptiveThreshold
from eventsnn.learn.stdp import Plasticity, STDPRule
from eventsnn.network import Layer, Network, Neuron


def conv_net(rng, cout):
    w = rng.uniform(0.05, 0.6, (3, 3, 2, cout)).astype(np.float32)
    return Network((9, 9, 2), [Layer("conv", "conv2d", ("input",), weight=w, padding=(1, 1),
                                     neuron=Neuron("if", 1.0, "zero"))], encoding="poisson")


def winners_around(post_t, post_n, shape, r):
    """For every position q: the distinct maps that spiked within Chebyshev radius r of q."""
    h, w, c = shape
    maps = [set() for _ in range(h * w)]
    for n in post_n:
        pos, ch = divmod(int(n), c)
        y, x = divmod(pos, w)
        for qy in range(max(0, y - r), min(h, y + r + 1)):
            for qx in range(max(0, x - r), min(w, x + r + 1)):
                maps[qy * w + qx].add(ch)
    return [len(m) for m in maps]


@pytest.mark.parametrize("cout", [6, 24])  # narrow and wide (>= 16 maps) spike passes
@pytest.mark.parametrize("k,r", [(1, 0), (2, 1), (3, 2)])
def test_at_most_k_winners_per_position(cout, k, r):
    rng = np.random.default_rng(cout + 10 * k + r)
    net = conv_net(rng, cout)
    x = rng.uniform(0.2, 1.0, (9, 9, 2))
    free = Simulator(net, timesteps=20, record_spikes=True)
    free.reset(x)
    free.run()
    free_counts = winners_around(*free.recorded_spikes("conv"), (9, 9, cout), r)
    assert max(free_counts) > k  # without competition the bound is broken: the test can fail
    sim = Simulator(net, timesteps=20, record_spikes=True)
    plug = Plasticity.for_simulator(sim, {"conv": STDPRule(eta_plus=0.0, eta_minus=0.0)}, kwta={"conv": (k, r)})
    sim.plug = plug
    base = sim.params.thr.copy()
    for sample in range(2):
        plug.begin_sample(sim.params, base)
        sim.reset(x, sample_index=sample)
        sim.run()
        counts = winners_around(*sim.recorded_spikes("conv"), (9, 9, cout), r)
        assert max(counts) <= k
        assert max(counts) == k  # and competition leaves k winners where the input drives them
        # The plug's own bookkeeping agrees with the spikes.
        off = sim.plan.pop_i[1, 2]
        np.testing.assert_array_equal(plug.members[off: off + 81], counts)


def test_begin_sample_restores_silenced_thresholds():
    rng = np.random.default_rng(2)
    net = conv_net(rng, 4)
    sim = Simulator(net, timesteps=20)
    plug = Plasticity.for_simulator(sim, {"conv": STDPRule(eta_plus=0.0, eta_minus=0.0)}, kwta={"conv": (1, 1)})
    sim.plug = plug
    base = sim.params.thr.copy()
    plug.begin_sample(sim.params, base)
    sim.reset(rng.uniform(0.2, 1, (9, 9, 2)))
    sim.run()
    assert np.isinf(sim.params.thr).any()
    plug.begin_sample(sim.params, base)
    np.testing.assert_array_equal(sim.params.thr, base)
    assert plug.members.sum() == 0


def test_adaptive_threshold_per_map():
    a = AdaptiveThreshold(np.full((2, 2, 3), 1.5), (2, 2, 3), theta_plus=0.4, tau_theta=100.0)
    counts = np.zeros((2, 2, 3))
    counts[0, 0, 1] = 2
    counts[1, 1, 1] = 2
    counts[0, 1, 2] = 1
    a.update(counts, duration=10.0)
    np.testing.assert_allclose(a.theta, [0.0, 0.4 * 4 / 4, 0.4 * 1 / 4])
    a.update(np.zeros((2, 2, 3)), duration=10.0)
    np.testing.assert_allclose(a.theta, np.array([0.0, 0.4, 0.1]) * math.exp(-0.1))
    thr = a.thresholds().reshape(2, 2, 3)
    np.testing.assert_allclose(thr[1, 0], 1.5 + a.theta, rtol=1e-6)
