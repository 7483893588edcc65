"""The Simulator API: run, run(until), step, peek, state, seeds, snapshot/restore."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.errors import DataError, NetworkError, SimulationError

from netgen import random_input, random_network


def _net_and_input(seed, encoding="poisson"):
    rng = np.random.default_rng(seed)
    net = random_network(rng, encoding, decoding="spikes")
    return net, random_input(rng, net)


def _final(sim):
    return ([sim.spike_counts(p).copy() for p in range(1, len(sim.layer_names))],
            sim.syn_ops.copy(), sim.updates.copy(), sim.recorded_spikes())


@pytest.mark.parametrize("seed", range(6))
def test_step_by_step_equals_full_run(seed):
    net, x = _net_and_input(seed)
    full = Simulator(net, timesteps=15, seed=seed, record_spikes=True)
    full.reset(x)
    full.run()
    stepped = Simulator(net, timesteps=15, seed=seed, record_spikes=True)
    stepped.reset(x)
    n = 0
    while True:
        nxt = stepped.peek()
        res = stepped.step()
        if res is None:
            assert nxt is None
            break
        assert res.event == nxt
        n += 1
    assert n == full.events_processed == stepped.events_processed
    a, b = _final(full), _final(stepped)
    for x1, x2 in zip(a[0], b[0]):
        np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    for x1, x2 in zip(a[3], b[3]):
        np.testing.assert_array_equal(x1, x2)


def test_run_until_is_resumable():
    net, x = _net_and_input(3)
    whole = Simulator(net, timesteps=20, seed=1)
    whole.reset(x)
    whole.run()
    parts = Simulator(net, timesteps=20, seed=1)
    parts.reset(x)
    for until in (0.5, 3, 7, 7, 12.5):
        assert parts.run(until=until) == "until"
        nxt = parts.peek()
        assert nxt is None or nxt.time >= until
        assert parts.spikes_per_step[:, int(np.ceil(until)):].sum() == 0
    assert parts.run() == "done"
    np.testing.assert_array_equal(whole.syn_ops, parts.syn_ops)
    np.testing.assert_array_equal(whole.spikes_per_step, parts.spikes_per_step)


def test_snapshot_restore_then_run_equals_uninterrupted():
    net, x = _net_and_input(4)
    sim = Simulator(net, timesteps=20, seed=2, record_spikes=True)
    sim.reset(x)
    sim.run(until=6)
    snap = sim.snapshot()
    sim.run()
    first = _final(sim)
    sim.restore(snap)
    assert sim.run() == "done"
    second = _final(sim)
    for x1, x2 in zip(first[0], second[0]):
        np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(first[1], second[1])


def test_restore_keeps_the_aligned_arrays_and_parameters():
    """restore() copies into the existing arrays: the 64-byte alignment the vector loops rely
    on survives, and parameters changed after the snapshot (online learning) are rolled back."""
    net, x = _net_and_input(4)
    sim = Simulator(net, timesteps=10)
    sim.reset(x)
    sim.run(until=3)
    snap = sim.snapshot()
    weights = sim.params.weights.copy()
    sim.params.weights[:] += 1.0
    sim.run()
    sim.restore(snap)
    for arr in (sim.state.v, sim.state.inp, sim.state.const, sim.params.weights):
        assert arr.ctypes.data % 64 == 0
    np.testing.assert_array_equal(sim.params.weights, weights)


def test_same_seed_same_spikes_different_seed_differs():
    net, x = _net_and_input(5)
    results = []
    for seed in (11, 11, 12):
        sim = Simulator(net, timesteps=30, seed=seed, record_spikes=True)
        sim.reset(x, sample_index=3)
        sim.run()
        results.append((sim.recorded_spikes(), sim.syn_ops.copy()))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][1], results[1][1])
    t0, p0, _ = results[0][0]
    t2, p2, _ = results[2][0]
    assert not (np.array_equal(t0, t2) and np.array_equal(p0, p2))


def test_state_views_have_layer_shapes():
    net, x = _net_and_input(6, encoding="direct")
    sim = Simulator(net, timesteps=10)
    sim.reset(x)
    sim.run()
    shapes = net.shapes()
    for layer in net.layers:
        if layer.spiking:
            assert sim.spike_counts(layer.name).shape == shapes[layer.name]
        if layer.neuron is not None:
            assert sim.potentials(layer.name).shape == shapes[layer.name]
    with pytest.raises(KeyError):
        sim.potentials("no-such-layer")


def test_queue_grows_under_load():
    """Far more simultaneous events than the initial capacity: the kernel asks to grow, resumes."""
    net, x = _net_and_input(7)
    sim = Simulator(net, timesteps=10, seed=0)
    sim.queue.__init__(len(sim.layer_names), capacity=4, bucket_capacity=2)
    sim.reset(np.ones_like(x))
    sim.run()
    ref = Simulator(net, timesteps=10, seed=0)
    ref.reset(np.ones_like(x))
    ref.run()
    np.testing.assert_array_equal(sim.syn_ops, ref.syn_ops)
    assert sim.queue.ev_conn.size > 4


def test_bad_arguments():
    net, x = _net_and_input(8)
    with pytest.raises(SimulationError, match="timesteps"):
        Simulator(net, timesteps=-1)
    with pytest.raises(SimulationError, match="timesteps"):
        Simulator(net, timesteps=0)
    sim = Simulator(net, timesteps=5)
    with pytest.raises(SimulationError, match="reset"):
        sim.run()
    with pytest.raises(DataError, match="shape"):
        sim.reset(np.zeros((3, 3, 7)))
    with pytest.raises(DataError, match="NaN"):
        sim.reset(np.full(x.shape, np.nan))
    with pytest.raises(NetworkError, match="continuous"):
        Simulator(net, timesteps=5, mode="continuous", encoding="direct")


def test_input_spikes_are_stepped_one_by_one_in_order():
    """Input spikes of one step travel as one queued run, but step() and peek() still
    see one event per spike, in (time, neuron) order, with the right neuron."""
    from eventsnn.network import Layer, Network, Neuron

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (3, 3, 2, 4)).astype(np.float32)
    net = Network(input_shape=(5, 5, 2), encoding="poisson", layers=[
        Layer("conv", "conv2d", weight=w, padding=(1, 1), neuron=Neuron("if", threshold=100.0))])
    times = np.array([0, 0, 0, 2, 2, 1], np.float64)
    idx = np.array([7, 3, 40, 9, 1, 30], np.int32)
    sim = Simulator(net, timesteps=4)
    sim.reset(np.zeros((5, 5, 2), np.float32), input_spikes=(times, idx))
    seen = []
    while (event := sim.peek()) is not None:
        if event.source == "input":
            seen.append((event.time, event.neuron))
        sim.step()
    assert seen == sorted(zip(times.tolist(), idx.tolist()))
    whole = Simulator(net, timesteps=4)
    whole.reset(np.zeros((5, 5, 2), np.float32), input_spikes=(times, idx))
    whole.run()
    assert whole.events_processed == sim.events_processed
    np.testing.assert_array_equal(whole.potentials("conv"), sim.potentials("conv"))


def test_totals_are_totals_and_per_layer_is_per_layer():
    """totals() promises totals: integers summed over layers; per_layer() keeps the arrays."""
    net, x = _net_and_input(4)
    sim = Simulator(net, timesteps=12)
    sim.reset(x)
    sim.run()
    per_layer, totals = sim.per_layer(), sim.totals()
    assert set(per_layer) == set(totals) == {"spikes", "syn_ops", "updates", "analog_macs"}
    for key, arr in per_layer.items():
        assert arr.shape == (len(sim.layer_names),)
        assert isinstance(totals[key], int) and totals[key] == int(arr.sum())
    assert totals["syn_ops"] == int(sim.syn_ops.sum()) > 0
