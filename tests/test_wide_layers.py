"""Layers with 16 or more channels per position take the engine's wide spike pass
(crossings marked in a byte mask, scanned 8 at a time): against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.network import Layer, Network

from netgen import dyadic, random_neuron
from eventsnn.reference import simulate_discrete
from test_engine_reference import assert_matches_reference, input_raster


def wide_network(rng, encoding):
    c1, c2 = (int(v) for v in rng.choice([16, 24, 40, 64], 2))
    h = int(rng.integers(4, 7))
    layers = [
        Layer("conv1", "conv2d", weight=dyadic(rng, (3, 3, 2, c1), -0.4, 0.6), padding=(1, 1),
              neuron=random_neuron(rng, c1)),
        Layer("conv2", "conv2d", weight=dyadic(rng, (3, 3, c1, c2), -0.2, 0.3), padding=(1, 1),
              neuron=random_neuron(rng, c2)),
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=dyadic(rng, (h * h * c2, 10), -0.1, 0.15), neuron=random_neuron(rng, 10)),
    ]
    return Network(input_shape=(h, h, 2), layers=layers, encoding=encoding)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_wide_layers_match_reference(seed, encoding):
    rng = np.random.default_rng(500 + seed)
    net = wide_network(rng, encoding)
    x = dyadic(rng, net.input_shape, 0.0, 1.0)
    steps = 12
    sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=True)
    sim.reset(x)
    sim.run()
    ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
    counts = assert_matches_reference(sim, ref, encoding)
    assert max(int(c.max(initial=0)) for c in counts) <= 1, "a binary neuron spiked twice in one step"
    assert sum(c.sum() for c in counts[1:]) > 0  # the nets do spike
