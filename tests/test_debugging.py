"""Step-through debugging: breakpoints, step details, watches, NIR event export."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator

from netgen import random_input, random_network
from eventsnn.reference import build, simulate_discrete
from test_engine_reference import input_raster


def _setup(seed, steps=25, encoding="poisson"):
    rng = np.random.default_rng(seed)
    net = random_network(rng, encoding, decoding="spikes")
    x = random_input(rng, net)
    return net, x, steps


def _full(net, x, steps, seed):
    sim = Simulator(net, timesteps=steps, seed=seed, record_spikes=True)
    sim.reset(x)
    sim.run()
    return sim


@pytest.mark.parametrize("seed", range(8))
def test_neuron_breakpoint_stops_at_its_first_spike(seed):
    for trial in range(10 * seed, 10 * seed + 10):  # the first random net with hidden spikes
        seed = trial
        net, x, steps = _setup(seed)
        full = _full(net, x, steps, seed)
        t, p, i = full.recorded_spikes()
        hidden = [k for k in range(1, len(full.layer_names)) if np.any(p == k)]
        if hidden:
            break
    assert hidden, "no hidden spikes to break on"
    layer = hidden[-1]
    neuron = int(i[p == layer][-1])  # a neuron that spikes, possibly late
    first = float(t[(p == layer) & (i == neuron)].min())
    sim = Simulator(net, timesteps=steps, seed=seed, record_spikes=True)
    sim.reset(x)
    sim.break_on_spike(layer, neuron)
    assert sim.run() == "breakpoint"
    assert sim.last_break.kind == "spike"
    assert (sim.last_break.time, sim.last_break.neuron) == (first, neuron)
    assert sim.time == first
    assert sim.spike_counts(layer).reshape(-1)[neuron] == 1
    # Everything strictly before the spike's time matches the full run.
    tt, pp, _ = sim.recorded_spikes()
    assert np.sum(tt < first) == np.sum(t < first)
    # Continuing finishes the sample exactly like the uninterrupted run.
    assert sim.run() in ("done", "breakpoint")
    while sim.run() == "breakpoint":
        pass
    np.testing.assert_array_equal(sim.syn_ops, full.syn_ops)
    np.testing.assert_array_equal(sim.spikes_per_step, full.spikes_per_step)


def test_layer_time_and_predicate_breakpoints():
    net, x, steps = _setup(2)
    full = _full(net, x, steps, 2)
    t, p, _ = full.recorded_spikes()
    sim = Simulator(net, timesteps=steps, seed=2, record_spikes=True)
    sim.reset(x)
    sim.break_on_spike(1)
    assert sim.run() == "breakpoint" and sim.last_break.time == t[p == 1].min()
    sim.clear_breakpoints()
    sim.break_at(10)
    assert sim.run() == "breakpoint" and sim.last_break.kind == "time"
    nxt = sim.peek()
    assert nxt is None or nxt.time >= 10
    assert sim.spikes_per_step[:, 10:].sum() == 0
    threshold = full.spikes_per_step[1, :15].sum()
    sim.break_when(lambda s: s.spikes_per_step[1].sum() >= threshold)
    assert sim.run() == "breakpoint" and sim.last_break.kind == "predicate"
    assert sim.spikes_per_step[1].sum() >= threshold
    assert sim.spikes_per_step[1, : int(sim.time)].sum() < threshold
    sim.clear_breakpoints()
    assert sim.run() == "done"
    np.testing.assert_array_equal(sim.syn_ops, full.syn_ops)


@pytest.mark.parametrize("seed", range(4))
def test_step_reports_targets_weights_and_spikes(seed):
    net, x, steps = _setup(seed, steps=8)
    sim = Simulator(net, timesteps=steps, seed=seed, record_spikes=True)
    sim.reset(x)
    pops = build(net)
    index = {name: k for k, name in enumerate(sim.layer_names)}
    seen_spikes = 0
    while True:
        res = sim.step()
        if res is None:
            break
        seen_spikes += len(res.spikes)
        if res.event.source is None:
            continue
        dst = pops[index[res.event.layer]]
        # the reference lists a layer's connections in the engine's order
        into = [c for c, row in enumerate(sim.plan.conn_i) if row[2] == index[res.event.layer]]
        conn = dst.conns[into.index(res.event.conn)]
        want = np.flatnonzero(conn.mask[res.event.neuron])
        np.testing.assert_array_equal(np.sort(res.targets), want)
        order = np.argsort(res.targets)
        if not dst.gate:  # a max-pool gate carries no weights
            np.testing.assert_allclose(res.weights[order], conn.matrix[res.event.neuron, want], rtol=1e-6)
        assert len(res.v_before) == len(res.v_after) == len(res.targets) or dst.gate
    assert seen_spikes == len(sim.recorded_spikes()[0])


def test_watch_history_matches_reference_potentials():
    net, x, steps = _setup(5, steps=20)
    sim = Simulator(net, timesteps=steps, seed=5, record_spikes=True)
    sim.reset(x)
    layer = next(k for k, pop in enumerate(build(net)) if k and pop.layer.neuron is not None)
    sim.watch(layer, 0)
    sim.watch(layer, (0, 0, 0))
    sim.run()
    times, before, after = sim.history(layer, 0)
    ref = simulate_discrete(net, x, steps, "poisson", input_raster(x, steps, 5))
    assert times.size > 0
    np.testing.assert_array_equal(before, ref["v_before_reset"][layer][times.astype(int), 0])
    assert np.all(after <= before)


def test_nir_event_data_round_trip(tmp_path):
    nir = pytest.importorskip("nir")
    net, x, steps = _setup(1)
    sim = _full(net, x, steps, 1)
    path = tmp_path / "events.h5"
    data = sim.to_nir_event_data(path)
    back = nir.read_data(str(path))
    for p, name in enumerate(sim.layer_names):
        times, idx = sim.recorded_spikes(p)
        ev = back.nodes[name].observables["spikes"]
        np.testing.assert_array_equal(ev.idx[0], idx)
        np.testing.assert_array_equal(ev.time[0], times)
        assert ev.n_neurons == sim.plan.pops[p].size
    assert set(data.nodes) == set(sim.layer_names)
