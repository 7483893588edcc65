"""order='layer' (each layer for all its steps) against the default order='time'.

A layer's input at step t comes only from lower layers at step t, and each
(time, layer) bucket receives its events in the same order either way, so the
two orders must agree bit for bit, also with arbitrary float32 weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.errors import SimulationError
from eventsnn.results import run_dataset

from netgen import random_input, random_network


def _arbitrary_floats(net, rng):
    """The same graph with weights and thresholds off the 2^-8 grid."""
    layers = []
    for layer in net.layers:
        if layer.weight is not None:
            noise = rng.uniform(0.9, 1.1, layer.weight.shape).astype(np.float32)
            layer = dataclasses.replace(layer, weight=(layer.weight * noise).astype(np.float32))
        layers.append(layer)
    return dataclasses.replace(net, layers=layers)


def _run(net, x, order, seed):
    sim = Simulator(net, timesteps=12, seed=seed, record_spikes=True, order=order)
    sim.reset(x)
    assert sim.run() == "done"
    return sim


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_layer_order_equals_time_order(seed, encoding):
    rng = np.random.default_rng(1000 + seed)
    net = random_network(rng, encoding)
    net = _arbitrary_floats(net, rng)
    x = random_input(rng, net)
    a, b = _run(net, x, "time", seed), _run(net, x, "layer", seed)
    assert a.events_processed == b.events_processed
    np.testing.assert_array_equal(a.syn_ops, b.syn_ops)
    np.testing.assert_array_equal(a.updates, b.updates)
    np.testing.assert_array_equal(a.spikes_per_step, b.spikes_per_step)
    for layer in a.layer_names[1:]:
        ta, ia = a.recorded_spikes(layer)
        tb, ib = b.recorded_spikes(layer)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(ia, ib)
        if a.plan.pops[a.layer_names.index(layer)].layer.kind != "maxpool2d":  # a gate has no potential
            np.testing.assert_array_equal(a.potentials(layer, at=11), b.potentials(layer, at=11))  # bit-identical


@pytest.mark.parametrize("seed", range(6))
def test_checkpoints_agree_in_both_orders(seed):
    """run(until=t) in layer order runs the last layer up to t: readouts at t are exact."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, "direct", decoding="membrane" if seed % 2 else "spikes")
    xs = np.stack([random_input(rng, net) for _ in range(3)])
    a = run_dataset(net, xs, timesteps=12, checkpoints=[3, 7, 12], order="time")
    b = run_dataset(net, xs, timesteps=12, checkpoints=[3, 7, 12], order="layer")
    np.testing.assert_array_equal(a.checkpoint_predictions, b.checkpoint_predictions)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.syn_ops, b.syn_ops)
    assert b.settings["order"] == "layer"


def test_layer_order_is_layer_major_and_limits():
    rng = np.random.default_rng(7)
    net = random_network(rng, "poisson")
    x = random_input(rng, net)
    sim = Simulator(net, timesteps=10, order="layer", record_spikes=True)
    sim.reset(x)
    seen = []
    while (event := sim.peek()) is not None:
        seen.append((sim.layer_names.index(event.layer), event.time))
        sim.step()
    assert seen == sorted(seen)  # (layer, time) never goes back
    with pytest.raises(SimulationError, match="order='time'"):
        sim.break_at(3)
    with pytest.raises(SimulationError, match="order='time'"):
        sim.break_when(lambda s: True)
    with pytest.raises(SimulationError, match="discrete"):
        Simulator(net, timesteps=10, mode="continuous", order="layer")
    with pytest.raises(SimulationError, match="unknown event order"):
        Simulator(net, timesteps=10, order="rank")
