"""Spikes travel through the queue as runs (one event per connection per layer update,
see eventsnn.engine.queue): step() and peek() still see one event per spike, in
order, with the right neuron; a run buffer that fills up mid-sample is compacted
(paused runs keep their place) or grown, and the results never change."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.layout import Q_RUN_N
from eventsnn.engine.simulator import Simulator

from netgen import random_input, random_network


def _net_and_input(seed, continuous=False):
    rng = np.random.default_rng(seed)
    net = random_network(rng, "poisson", continuous=continuous, decoding="spikes")
    return net, random_input(rng, net)


def _outcome(sim):
    return ([sim.spike_counts(p).copy() for p in range(1, len(sim.layer_names))],
            [sim.potentials(p).copy() for p in range(1, len(sim.layer_names)) if _has_v(sim, p)],
            sim.syn_ops.copy(), sim.updates.copy(), sim.recorded_spikes(), sim.events_processed)


def _has_v(sim, p):
    try:
        sim.potentials(p)
    except KeyError:
        return False
    return True


def _assert_same(a, b):
    for xa, xb in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])
    for xa, xb in zip(a[4], b[4]):
        np.testing.assert_array_equal(xa, xb)
    assert a[5] == b[5]


@pytest.mark.parametrize("seed", range(8))
def test_stepped_events_are_the_recorded_spikes_in_order(seed):
    """Every layer's spikes at time t reach each of its connections as one event per
    spike, in the order the layer emitted them (the spike log's order)."""
    net, x = _net_and_input(seed)
    sim = Simulator(net, timesteps=12, seed=seed, record_spikes=True)
    sim.reset(x)
    delivered = {}
    while (event := sim.peek()) is not None:
        if event.conn is not None and event.conn >= 0:
            delivered.setdefault((event.conn, event.source, event.time), []).append(event.neuron)
        sim.step()
    times, pops, neurons = sim.recording.arrays.spike_t, sim.recording.arrays.spike_pop, \
        sim.recording.arrays.spike_neuron
    n = int(sim.recording.arrays.spike_n[0])
    emitted = {}
    for t, p, k in zip(times[:n], pops[:n], neurons[:n]):
        emitted.setdefault((sim.layer_names[int(p)], float(t)), []).append(int(k))
    assert delivered, "the network delivered no spike"
    for (conn, source, t), ks in delivered.items():
        assert ks == emitted[(source, t)], (conn, source, t)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("continuous", [False, True])
def test_tiny_run_buffer_compacts_and_grows_mid_run(seed, continuous):
    """A run buffer of 2 entries, stepped a few events at a time (so runs are paused
    inside when the buffer is compacted): the same spikes, potentials and counts as a
    plain run."""
    net, x = _net_and_input(seed, continuous)
    mode = "continuous" if continuous else "discrete"
    plain = Simulator(net, timesteps=12, seed=seed, record_spikes=True, mode=mode)
    plain.reset(x)
    plain.run()
    tiny = Simulator(net, timesteps=12, seed=seed, record_spikes=True, mode=mode)
    q = tiny.queue
    q.__init__(q.n_ranks, capacity=4, bucket_capacity=2, layer_major=q.layer_major, max_bytes=q.max_bytes,
               run_capacity=2)
    compactions = []
    original = q._compact_runs

    def counting():
        before = int(q.qs[Q_RUN_N])
        original()
        compactions.append(before - int(q.qs[Q_RUN_N]))
    q._compact_runs = counting
    tiny.reset(x)
    while tiny.advance(max_events=3) == "paused":
        pass
    _assert_same(_outcome(plain), _outcome(tiny))
    assert compactions, "the tiny buffer was never compacted"
    if plain.events_processed > 40:
        assert max(compactions) > 0, "no compaction freed anything"


def test_run_buffer_is_emptied_with_the_queue():
    net, x = _net_and_input(2)
    sim = Simulator(net, timesteps=10, seed=0)
    sim.reset(x)
    sim.run(until=5)
    assert sim.queue.qs[Q_RUN_N] > 0
    sim.run()
    assert sim.queue.qs[Q_RUN_N] == 0
    size = sim.queue.runs.size
    for _ in range(3):  # samples after samples: the buffer does not creep
        sim.reset(x)
        sim.run()
    assert sim.queue.runs.size == size


def test_run_buffer_growth_is_bounded_by_the_memory_limit():
    from eventsnn.errors import ResourceError

    net, x = _net_and_input(4)
    sim = Simulator(net, timesteps=10, seed=0)
    q = sim.queue
    q.__init__(q.n_ranks, layer_major=q.layer_major, run_capacity=2)
    sim.reset(np.ones_like(x))
    q.max_bytes = q.ev_conn.size * 16 + q.b_time.size * 36 + 3 * 4  # room for what is there, and one entry
    with pytest.raises(ResourceError, match="queued spikes"):
        sim.run()
