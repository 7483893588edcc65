"""Stochastic STDP on binary weights: switching frequencies against their probabilities,
and reproducibility of the counter-based random stream."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.learn.rules import splitmix64
from eventsnn.learn.stdp import Plasticity, STDPRule
from eventsnn.network import Layer, Network, Neuron

# Groups of presynaptic neurons, by when they spike before the post spike at t = 3
# (the post layer has bias 0.25, threshold 1, reset to zero: it fires at t = 3 only,
# whatever its tiny binary weights add) and by their starting weight.
GROUP = 200
W_MAX = 1e-4  # 4 * GROUP * W_MAX = 0.08 < 0.25: the pre spikes never move the post spike


def net(n_in, n_out):
    return Network((n_in,), [Layer("fc", "dense", ("input",), weight=np.zeros((n_in, n_out), np.float32),
                                   bias=np.full(n_out, 0.25, np.float32), neuron=Neuron("if", 1.0, "zero"))],
                   encoding="poisson")


def binomial_ok(k, n, p, z=5.0):
    """|k - n p| <= z sqrt(n p (1 - p)) (z = 5: a false alarm once in ~1.7 million)."""
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1e-12


def test_switching_frequencies_match_their_probabilities():
    rule = STDPRule("stochastic", gamma_pot=0.6, tau_pot=2.0, p_dep=0.15, window=1.5, w_min=0.0, w_max=W_MAX,
                    levels=2)
    n_out, steps, samples = 5, 4, 6
    # A: pre at t=3 (dt=0), w=0   -> up with gamma
    # B: pre at t=2 (dt=1), w=0   -> up with gamma e^{-1/tau}
    # C: pre at t=0 (dt=3 > window), w=max -> down with p_dep
    # D: no pre spike, w=max      -> down with p_dep
    # E: pre at t=3, w=max        -> never moves (already up)
    # F: no pre spike, w=0        -> never moves (already down)
    spike_at = {"A": 3, "B": 2, "C": 0, "D": None, "E": 3, "F": None}
    start_up = {"A": False, "B": False, "C": True, "D": True, "E": True, "F": False}
    names = list(spike_at)
    n_in = GROUP * len(names)
    sim = Simulator(net(n_in, n_out), timesteps=steps, record_spikes=True)
    plug = Plasticity.for_simulator(sim, {"fc": rule}, seed=1234)
    sim.plug = plug
    w_init = np.zeros((n_in, n_out), np.float32)
    times, idx = [], []
    for g, name in enumerate(names):
        rows = slice(g * GROUP, (g + 1) * GROUP)
        if start_up[name]:
            w_init[rows] = W_MAX
        if spike_at[name] is not None:
            times += [spike_at[name]] * GROUP
            idx += list(range(g * GROUP, (g + 1) * GROUP))
    moved = {name: 0 for name in names}
    for s in range(samples):
        sim.params.weights[:w_init.size] = w_init.reshape(-1)
        plug.begin_sample(sim.params)
        sim.reset(np.zeros(n_in), input_spikes=(np.array(times, float), np.array(idx)))
        sim.run()
        post_t, _ = sim.recorded_spikes("fc")
        assert np.array_equal(post_t, np.full(n_out, 3.0))  # one post spike per neuron, at t = 3
        w = sim.params.weights[:w_init.size].reshape(n_in, n_out)
        assert set(np.unique(w)) <= {np.float32(0.0), np.float32(W_MAX)}  # binary
        for g, name in enumerate(names):
            rows = slice(g * GROUP, (g + 1) * GROUP)
            moved[name] += int(np.sum(w[rows] != w_init[rows]))
    trials = GROUP * n_out * samples
    p = {"A": rule.gamma_pot, "B": rule.gamma_pot * math.exp(-1.0 / rule.tau_pot), "C": rule.p_dep,
         "D": rule.p_dep}
    for name, prob in p.items():
        assert binomial_ok(moved[name], trials, prob), (name, moved[name], trials * prob)
    assert moved["E"] == 0 and moved["F"] == 0
    # The stats count the same switches.
    assert plug.stats[2] == moved["A"] + moved["B"]
    assert plug.stats[3] == moved["C"] + moved["D"]
    # Sensitivity: A and B differ by far more than the bound, so a rule ignoring dt fails.
    assert not binomial_ok(moved["B"], trials, rule.gamma_pot)


def run_stochastic(seed, samples=2):
    rng = np.random.default_rng(0)
    w = (rng.random((5, 5, 1, 6)) < 0.5).astype(np.float32)
    network = Network((10, 10, 1), [Layer("conv", "conv2d", ("input",), weight=w, neuron=Neuron("if", 3.0, "zero"))],
                      encoding="poisson")
    sim = Simulator(network, timesteps=10, seed=3)
    plug = Plasticity.for_simulator(sim, {"conv": STDPRule("stochastic", gamma_pot=0.2, p_dep=0.2)},
                                    kwta={"conv": (3, 0)}, seed=seed)
    sim.plug = plug
    base = sim.params.thr.copy()
    for s in range(samples):
        plug.begin_sample(sim.params, base)
        sim.reset(rng.uniform(0, 1, (10, 10, 1)) * 0 + np.linspace(0, 1, 100).reshape(10, 10, 1), sample_index=s)
        sim.run()
    sim.params.thr[:] = base  # undo k-WTA's silencing before writing the network back
    return sim.to_network().layer("conv").weight, plug


def test_same_seed_same_weights_and_another_seed_others():
    a, pa = run_stochastic(seed=11)
    b, pb = run_stochastic(seed=11)
    c, _ = run_stochastic(seed=12)
    np.testing.assert_array_equal(a, b)
    assert pa.stats[2] + pa.stats[3] > 10  # switches happened
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) <= {0.0, 1.0}


@pytest.mark.parametrize("key", [0, 1, 2**63 + 5])
def test_counter_stream_is_uniform(key):
    """SplitMix64 outputs of consecutive counters: the mean and the deciles of 20000 draws."""
    u = np.array([(int(splitmix64(np.uint64(key), np.uint64(i))) >> 11) / 2.0 ** 53 for i in range(20000)])
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / u.size)
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 2000) < 5 * math.sqrt(2000 * 0.9))
