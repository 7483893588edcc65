"""The event engine against the clock-driven reference and brute-force op counts."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.encoding import bernoulli_spikes, poisson_process_spikes, sample_rng
from eventsnn.engine.simulator import Simulator

from netgen import random_input, random_network
from eventsnn.reference import simulate_continuous, simulate_discrete

SEEDS = range(30)


def engine_rasters(sim):
    times, pops, idx = sim.recorded_spikes()
    rasters = [np.zeros((sim.timesteps, n), bool) for n in sim.neurons]
    for t, p, i in zip(times, pops, idx):
        assert not rasters[p][int(t), i], "a neuron spiked twice in one step"
        rasters[p][int(t), i] = True
    return rasters


def input_raster(x, steps, seed):
    t, i = bernoulli_spikes(np.asarray(x).reshape(-1), steps, sample_rng(seed, 0))
    raster = np.zeros((steps, x.size), bool)
    raster[t.astype(int), i] = True
    return raster


def run_both(seed, encoding):
    rng = np.random.default_rng(seed)
    net = random_network(rng, encoding)
    steps = int(rng.integers(5, 25))
    x = random_input(rng, net)
    sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=True)
    sim.reset(x)
    assert sim.run() == "done"
    raster = input_raster(x, steps, seed) if encoding == "poisson" else None
    ref = simulate_discrete(net, x, steps, encoding, raster)
    return net, sim, ref


def engine_counts(sim):
    """Spikes per (step, neuron) of every population, from the spike log."""
    times, pops, idx = sim.recorded_spikes()
    counts = [np.zeros((sim.timesteps, n), np.int64) for n in sim.neurons]
    for p in range(len(counts)):
        mine = pops == p
        np.add.at(counts[p], (times[mine].astype(int), idx[mine]), 1)
    return counts


def assert_matches_reference(sim, ref, encoding):
    """Spikes per neuron and step, syn ops, updates, analog MACs and potentials equal the
    clock-driven reference's; returns the engine's counts."""
    counts = engine_counts(sim)
    for p, pop in enumerate(ref["pops"]):
        if p == 0 and encoding == "direct":
            continue
        diff = np.argwhere(counts[p] != ref["counts"][p])
        assert diff.size == 0, f"layer {pop.name}: first mismatch (step, neuron) {diff[0]}"
    np.testing.assert_array_equal(sim.syn_ops, ref["syn_ops"])
    np.testing.assert_array_equal(sim.updates[1:], ref["updates"][1:])
    np.testing.assert_array_equal(sim.analog_macs, ref["analog_macs"])
    np.testing.assert_array_equal(sim.spikes_per_step, np.array([c.sum(axis=1) for c in counts]))
    for p in range(1, len(ref["pops"])):
        if ref["pops"][p].layer.neuron is not None:
            np.testing.assert_array_equal(sim.potentials(p).reshape(-1), ref["v"][p])
    return counts


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("seed", SEEDS)
def test_discrete_spikes_and_counts_match_reference(seed, encoding):
    net, sim, ref = run_both(seed, encoding)
    counts = assert_matches_reference(sim, ref, encoding)
    assert max(int(c.max(initial=0)) for c in counts) <= 1, "a binary neuron spiked twice in one step"
    if net.decoding == "membrane":
        np.testing.assert_array_equal(sim.output(), ref["v"][len(ref["pops"]) - 1].astype(np.float64))


def test_random_networks_are_active():
    """The comparisons above are not vacuous: most random nets spike in every layer."""
    active = 0
    for seed in SEEDS:
        for encoding in ("direct", "poisson"):
            _, sim, _ = run_both(seed, encoding)
            active += int(np.all(sim.per_layer()["spikes"][1:] > 0))
    assert active >= len(SEEDS)  # at least half of the 2 * len(SEEDS) runs


def assert_continuous_matches_reference(net, x, duration, seed):
    """Continuous time on a Poisson-process input: spike times and syn ops equal the heapq reference's."""
    times, idx = poisson_process_spikes(x.reshape(-1), duration, sample_rng(seed, 0), rate=0.7)
    sim = Simulator(net, timesteps=int(duration), mode="continuous", encoding="poisson", record_spikes=True)
    sim.reset(x, input_spikes=(times, idx))
    sim.run()
    ref_spikes, ref_syn = simulate_continuous(net, times, idx, duration)
    t, p, i = sim.recorded_spikes()
    got = sorted(zip(t.tolist(), p.tolist(), i.tolist()))
    want = sorted((float(a), int(b), int(c)) for a, b, c in ref_spikes)
    assert len(got) == len(want)
    for (t1, p1, i1), (t2, p2, i2) in zip(got, want):
        assert (p1, i1) == (p2, i2)
        assert abs(t1 - t2) <= 1e-9
    np.testing.assert_array_equal(sim.per_layer()["syn_ops"], ref_syn)


@pytest.mark.parametrize("seed", range(20))
def test_continuous_spike_times_match_heapq_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    net = random_network(rng, "poisson", continuous=True, decoding="spikes")
    duration = float(rng.integers(8, 30))
    assert_continuous_matches_reference(net, random_input(rng, net), duration, seed)


def _decimal(a):
    """Values on a decimal grid (0.1, 0.2, ...): not representable in binary, and
    sums of them hit thresholds (0.3 = 0.1 + 0.2?) where rounding order matters."""
    return (np.round(np.asarray(a, np.float64) * 10) / 10).astype(np.float32)


def _floatify(net, rng):
    """The same topology with non-dyadic weights, thresholds and leaks."""
    for layer in net.layers:
        if layer.weight is not None:
            layer.weight = _decimal(layer.weight * 2)
        if layer.bias is not None:
            layer.bias = _decimal(layer.bias * 2)
        if layer.neuron is not None:
            thr = np.maximum(_decimal(np.asarray(layer.neuron.threshold) * 2), np.float32(0.1))
            layer.neuron.threshold = thr
            if layer.neuron.kind == "lif":
                layer.neuron.leak = 0.9
    return net


def test_arbitrary_floats_disagree_only_at_near_ties():
    """With non-dyadic values float32 sums in another order may round differently.

    Values on a decimal grid make exact ties in real arithmetic common (0.1 + 0.2
    against a threshold of 0.3), so some runs disagree; in every one of them
    the first disagreement (earliest step, lowest layer) is at a neuron whose
    potential lies within float32 rounding of its threshold.
    """
    runs = mismatched = 0
    for seed in range(60):
        rng = np.random.default_rng(5000 + seed)
        encoding = "direct" if seed % 2 else "poisson"
        net = _floatify(random_network(rng, encoding), rng)
        steps = 30
        x = _decimal(random_input(rng, net))
        sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=True)
        sim.reset(x)
        sim.run()
        raster = input_raster(x, steps, seed) if encoding == "poisson" else None
        ref = simulate_discrete(net, x, steps, encoding, raster)
        rasters = engine_rasters(sim)
        runs += 1
        first = None
        for t in range(steps):
            for p in range(1, len(ref["pops"])):
                bad = np.flatnonzero(rasters[p][t] != ref["raster"][p][t])
                if bad.size and first is None:
                    first = (t, p, bad[0])
            if first is not None:
                break
        if first is None:
            continue
        mismatched += 1
        t, p, n = first
        pop = ref["pops"][p]
        assert not pop.gate, "a max-pool gate has no rounding; its inputs must have diverged first"
        thr = np.broadcast_to(np.asarray(pop.layer.neuron.threshold, np.float32), pop.shape).reshape(-1)[n]
        v = ref["v_before_reset"][p][t, n]
        assert abs(float(v) - float(thr)) <= 1e-5 * max(1.0, abs(float(thr))), (seed, first, v, thr)
    print(f"{mismatched} of {runs} float runs differ, all first at near-ties")
    assert mismatched > 0, "no run reached a near-tie: the check above was vacuous"
