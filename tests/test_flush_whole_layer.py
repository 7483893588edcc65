"""The whole-layer flush (cpu._flush_flat) against the unit-by-unit flush and the reference.

A non-leaky layer whose units are mostly touched is integrated in one pass
over the layer and its spikes are then visited unit by unit in touch order.
The random networks of ``netgen`` have at most 5 channels, below the path's
8-neuron minimum, so these nets are wider: an analog first layer (every unit
touched every step), wide convs, an averaging pool with neurons, a dense
output; blocks that are and are not multiples of 8 (the word scan and the
byte scan); binary and multi-spike neurons; both resets.

Two checks: with 2^-8 weights the engine equals the clock-driven reference
(sums exact in any order); with arbitrary float weights the whole-layer path
gives *the same spike log, in the same order*, as the unit-by-unit path
(forced by ``track_max_input``, which only adds a max over the drive), and
bitwise the same potentials and counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.network import Layer, Network, Neuron
from eventsnn.reference import simulate_discrete

from netgen import dyadic
from test_engine_reference import assert_matches_reference, input_raster

SEEDS = range(12)


def wide_network(rng, encoding, grid):
    def weights(shape, lo, hi):
        if grid:
            return dyadic(rng, shape, lo, hi)
        return rng.uniform(lo, hi, size=shape).astype(np.float32)

    def neuron(kind="if"):
        threshold = float(dyadic(rng, (), 0.5, 1.25)) if grid else float(rng.uniform(0.5, 1.25))
        return Neuron(kind, threshold, str(rng.choice(["subtract", "zero"])), 1.0 if kind == "if" else 0.5,
                      float(rng.choice([0.0, 0.5])), int(rng.choice([1, 1, 3])))

    h = int(rng.integers(6, 10))
    c_in = int(rng.integers(1, 4))
    c1 = int(rng.choice([8, 12, 16]))
    c2 = int(rng.choice([8, 10, 24]))
    n_out = int(rng.choice([8, 10, 16]))
    layers = [
        Layer("conv1", "conv2d", ("input",), weight=weights((3, 3, c_in, c1), -0.2, 0.5), padding=(1, 1),
              bias=weights((c1,), -0.05, 0.1) if rng.random() < 0.5 else None, neuron=neuron()),
        Layer("conv2", "conv2d", ("conv1",), weight=weights((3, 3, c1, c2), -0.15, 0.3),
              stride=(int(rng.choice([1, 2])),) * 2, padding=(1, 1),
              neuron=neuron("if" if rng.random() < 0.8 else "lif")),
        Layer("pool", "avgpool2d", ("conv2",), kernel=(2, 2), stride=(2, 2), neuron=neuron()),
        Layer("flat", "flatten", ("pool",)),
    ]
    n_flat = int(np.prod(Network(input_shape=(h, h, c_in), layers=layers[:3], encoding=encoding).shapes()["pool"]))
    layers.append(Layer("out", "dense", ("flat",), weight=weights((n_flat, n_out), -0.2, 0.4), neuron=neuron()))
    net = Network(input_shape=(h, h, c_in), layers=layers, encoding=encoding, decoding="spikes")
    x = dyadic(rng, (h, h, c_in), 0.0, 1.0)
    x[rng.random(x.shape) > 0.7] = 0
    return net, x


def case(seed, encoding, grid):
    """(net, input, steps) of one random case."""
    rng = np.random.default_rng((1000 if grid else 2000) + seed)
    net, x = wide_network(rng, encoding, grid)
    return net, x, int(rng.integers(8, 30))


def run(net, x, steps, encoding, seed, unit_path):
    sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=True)
    sim.track_max_input = unit_path
    sim.reset(x)
    assert sim.run() == "done"
    return sim


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("seed", SEEDS)
def test_whole_layer_flush_matches_reference(seed, encoding):
    net, x, steps = case(seed, encoding, grid=True)
    sim = run(net, x, steps, encoding, seed, unit_path=False)
    raster = input_raster(x, steps, seed) if encoding == "poisson" else None
    ref = simulate_discrete(net, x, steps, encoding, raster)
    assert_matches_reference(sim, ref, encoding)
    assert sim.spikes_per_step[1:].sum() > 0, "a net that never spikes checks nothing"


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("seed", SEEDS)
def test_whole_layer_flush_is_the_unit_flush_bit_for_bit(seed, encoding):
    net, x, steps = case(seed, encoding, grid=False)
    flat = run(net, x, steps, encoding, seed, unit_path=False)
    unit = run(net, x, steps, encoding, seed, unit_path=True)
    for a, b in zip(flat.recorded_spikes(), unit.recorded_spikes()):
        np.testing.assert_array_equal(a, b)  # same spikes in the same order
    assert flat.recorded_spikes()[0].size > 0
    for name in ("syn_ops", "updates", "spikes_per_step", "analog_macs"):
        np.testing.assert_array_equal(getattr(flat, name), getattr(unit, name))
    for p in range(1, len(flat.neurons)):
        np.testing.assert_array_equal(flat.potentials(p).view(np.uint32), unit.potentials(p).view(np.uint32))
