"""Neurons that fire up to K spikes per step (``Neuron.max_spikes``, sinabs' MultiSpike):
the engine against the clock-driven and heapq references, in spikes per neuron and
step, potentials and exact synaptic-op counts; validation and the file format."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.io.native import load_network, save_network
from eventsnn.network import Layer, Network, NetworkError, Neuron

from netgen import dyadic, random_input, random_network
from eventsnn.reference import simulate_discrete
from test_engine_reference import (assert_continuous_matches_reference, assert_matches_reference,
                                   engine_counts, input_raster)
from test_wide_layers import wide_network


def multi_spiking(net, rng, gain=2.0):
    """Give every population a random max_spikes in 1..4 (1 where a max-pool gate
    reads it) and scale the weights up so that several spikes per step happen."""
    gated = {layer.inputs[0] for layer in net.layers if layer.kind == "maxpool2d"}
    for layer in net.layers:
        if layer.weight is not None and layer.kind != "add":
            layer.weight = (layer.weight * np.float32(gain)).astype(np.float32)
        if layer.neuron is not None:
            layer.neuron.max_spikes = 1 if layer.name in gated else int(rng.integers(1, 5))
    return net


def compare(sim, ref, encoding):
    """The engine equals the reference; returns the most spikes one neuron fired in one step."""
    counts = assert_matches_reference(sim, ref, encoding)
    return max(int(c.max(initial=0)) for c in counts[1:])


@pytest.mark.parametrize("order", ["time", "layer"])
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("seed", range(16))
def test_multi_spike_matches_reference(seed, encoding, order):
    rng = np.random.default_rng(7000 + seed)
    net = multi_spiking(random_network(rng, encoding), rng)
    steps = int(rng.integers(5, 20))
    x = random_input(rng, net)
    sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=True, order=order)
    sim.reset(x)
    assert sim.run() == "done"
    ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
    compare(sim, ref, encoding)


def test_multi_spike_comparisons_are_not_vacuous():
    """Most of the random nets above fire several spikes from one neuron in one step."""
    several = 0
    for seed in range(16):
        rng = np.random.default_rng(7000 + seed)
        net = multi_spiking(random_network(rng, "direct"), rng)
        steps = int(rng.integers(5, 20))
        x = random_input(rng, net)
        sim = Simulator(net, timesteps=steps, seed=seed, record_spikes=True)
        sim.reset(x)
        sim.run()
        several += int(max(c.max(initial=0) for c in engine_counts(sim)[1:]) >= 2)
    assert several >= 10


@pytest.mark.parametrize("seed", range(8))
def test_wide_multi_spike_layers_match_reference(seed):
    """The mask spike pass of wide units (>= 16 channels) with several spikes per step."""
    rng = np.random.default_rng(900 + seed)
    net = wide_network(rng, "direct")
    for layer in net.layers:
        if layer.weight is not None:
            layer.weight = (layer.weight * np.float32(3)).astype(np.float32)
        if layer.neuron is not None:
            layer.neuron.max_spikes = int(rng.integers(2, 6))
    x = dyadic(rng, net.input_shape, 0.0, 1.0)
    sim = Simulator(net, timesteps=10, seed=seed, record_spikes=True)
    sim.reset(x)
    sim.run()
    ref = simulate_discrete(net, x, 10, "direct")
    assert compare(sim, ref, "direct") >= 2


@pytest.mark.parametrize("seed", range(10))
def test_continuous_multi_spike_matches_heapq_reference(seed):
    rng = np.random.default_rng(3000 + seed)
    net = multi_spiking(random_network(rng, "poisson", continuous=True, decoding="spikes"), rng, gain=3.0)
    duration = float(rng.integers(8, 25))
    assert_continuous_matches_reference(net, random_input(rng, net), duration, seed)


def one_neuron(max_spikes, reset="subtract", bias=3.7):
    """One dense neuron driven by a constant current ``bias`` (threshold 1)."""
    layer = Layer("n", "dense", weight=np.zeros((1, 1), np.float32), bias=np.array([bias], np.float32),
                  neuron=Neuron("if", 1.0, reset, max_spikes=max_spikes))
    return Network(input_shape=(1,), layers=[layer])


def test_cap_and_carry_over():
    """Drive 3.7 per step: K = 8 fires 3 then 4 (3.7 + 0.7 = 4.4) ...; K = 2 fires 2 every
    step while the surplus grows; K = 1 is the binary neuron; reset to zero drops the rest."""
    steps = 10
    for k, want in [(8, None), (2, [2] * steps), (1, [1] * steps)]:
        sim = Simulator(one_neuron(k), timesteps=steps, record_spikes=True)
        sim.reset(np.zeros(1, np.float32))
        sim.run()
        per_step = engine_counts(sim)[1][:, 0]
        if want is None:
            v, want = np.float32(0), []
            for _ in range(steps):
                v = np.float32(v + np.float32(3.7))
                n = int(np.floor(v / np.float32(1)))
                want.append(n)
                v = np.float32(v - np.float32(n))
            assert want[:2] == [3, 4]
        assert per_step.tolist() == want
        assert sim.syn_ops.sum() == 0  # the output layer has no targets
    sim = Simulator(one_neuron(8, "zero"), timesteps=5, record_spikes=True)
    sim.reset(np.zeros(1, np.float32))
    sim.run()
    assert engine_counts(sim)[1][:, 0].tolist() == [3] * 5
    assert float(sim.potentials(1).reshape(-1)[0]) == 0.0


def test_each_spike_is_an_event_with_its_fan_out():
    """A neuron firing k spikes in one step delivers k events: k times its fan-out in ops."""
    pre = Layer("pre", "dense", weight=np.zeros((1, 1), np.float32), bias=np.array([2.5], np.float32),
                neuron=Neuron("if", 1.0, max_spikes=4))
    post = Layer("post", "dense", inputs=("pre",), weight=np.full((1, 6), 0.25, np.float32),
                 neuron=Neuron("if", 100.0))
    sim = Simulator(Network(input_shape=(1,), layers=[pre, post]), timesteps=4, record_spikes=True)
    sim.reset(np.zeros(1, np.float32))
    sim.run()
    spikes = engine_counts(sim)[1][:, 0]
    assert spikes.tolist() == [2, 3, 2, 3]
    assert sim.syn_ops[2].tolist() == (6 * spikes).tolist()
    np.testing.assert_array_equal(sim.potentials(2).reshape(-1), np.full(6, 0.25 * spikes.sum(), np.float32))


@pytest.mark.parametrize("bad", [0, -1, 1025, 1.5, True, "2"])
def test_bad_max_spikes_is_refused(bad):
    net = one_neuron(bad)
    with pytest.raises(NetworkError, match="max_spikes"):
        net.shapes()


def test_max_pool_gate_needs_binary_input():
    layers = [Layer("c", "conv2d", weight=np.ones((1, 1, 1, 2), np.float32), neuron=Neuron(max_spikes=3)),
              Layer("mp", "maxpool2d", ("c",), kernel=(2, 2)),
              Layer("f", "flatten", ("mp",)),
              Layer("d", "dense", ("f",), weight=np.ones((2, 2), np.float32), neuron=Neuron())]
    with pytest.raises(NetworkError, match="maxpool2d gate passes one spike per step"):
        Network(input_shape=(2, 2, 1), layers=layers).shapes()


def test_file_round_trip_and_default(tmp_path):
    net = one_neuron(5)
    save_network(net, tmp_path / "m.h5")
    assert load_network(tmp_path / "m.h5").layers[0].neuron.max_spikes == 5
    import h5py
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        del f["layers/0000/neuron"].attrs["max_spikes"]
    assert load_network(tmp_path / "m.h5").layers[0].neuron.max_spikes == 1
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        f["layers/0000/neuron"].attrs["max_spikes"] = 2.5
    with pytest.raises(NetworkError, match="max_spikes"):
        load_network(tmp_path / "m.h5")


def test_huge_potential_fires_the_cap():
    """A potential far above threshold (quotient past any integer) fires exactly K spikes."""
    layer = Layer("n", "dense", weight=np.zeros((1, 1), np.float32), bias=np.array([3e38], np.float32),
                  neuron=Neuron("if", 1e-30, "subtract", max_spikes=7))
    sim = Simulator(Network(input_shape=(1,), layers=[layer]), timesteps=3, record_spikes=True)
    sim.reset(np.zeros(1, np.float32))
    sim.run()
    assert engine_counts(sim)[1][:, 0].tolist() == [7, 7, 7]
