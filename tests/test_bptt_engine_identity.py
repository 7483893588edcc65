"""The BPTT forward pass is the engine's network: the spikes it records are the spikes
the event engine fires on the saved network, step by step, neuron by neuron."""

from __future__ import annotations

import numpy as np
import pytest

from bptt_nets import full_net, inputs, trainable_random_net
from eventsnn.errors import NetworkError
from eventsnn.learn.bptt import GRID, Model, check_engine_identity, snap
from eventsnn.network import Layer, Network, Neuron
from eventsnn.reference import simulate_discrete


@pytest.mark.parametrize("seed", range(12))
def test_random_grid_nets_match_engine_and_reference(seed):
    rng = np.random.default_rng(seed)
    net = trainable_random_net(rng)
    T = int(rng.integers(4, 12))
    x = inputs(rng, net, 3)
    model = Model(net)
    trace = model.forward(x, T)
    result = check_engine_identity(model.to_network(), trace, T)
    assert result["differing_spikes"] == 0, result
    # and against the clock-driven spec, independently of the engine
    ref = simulate_discrete(model.to_network(), x[0], T, "direct")
    for k, p in enumerate(model.pops, start=1):
        assert np.array_equal(ref["raster"][k], trace.S[p.name][:, 0, :] > 0)
        assert np.array_equal(ref["v_before_reset"][k], trace.U[p.name][:, 0, :])


@pytest.mark.parametrize("kind,reset,decoding", [("if", "subtract", "spikes"), ("lif", "zero", "membrane"),
                                                 ("lif", "subtract", "spikes"), ("if", "zero", "membrane")])
def test_float_weights_are_put_on_the_grid_and_match_engine(kind, reset, decoding):
    """Arbitrary float weights and a non-power-of-two leak: the spike-driven weights are
    snapped to 2^-16, biases keep every neuron updated each step, and the engine agrees."""
    rng = np.random.default_rng(7)
    net = full_net(rng, kind, reset, decoding, grid=False, leak=0.9)
    x = rng.random((6, 5, 5, 2)).astype(np.float32)  # not on any grid
    model = Model(net, add_bias=True)
    T = 10
    trace = model.forward(x, T)
    saved = model.to_network()
    w = saved.layer("c2").weight
    assert np.array_equal(w, snap(w)) and not np.array_equal(w, net.layer("c2").weight)
    assert np.array_equal(saved.layer("c1").weight, net.layer("c1").weight)  # analog input: no grid
    assert model.exactness_bound() < 256
    n_spikes = sum(float(s.sum()) for s in trace.S.values())
    assert n_spikes > 50
    result = check_engine_identity(saved, trace, T)
    assert result["differing_spikes"] == 0, result
    if decoding == "membrane":
        from eventsnn.engine.simulator import Simulator
        sim = Simulator(saved, timesteps=T)
        for b in range(x.shape[0]):
            sim.reset(x[b])
            sim.run()
            assert np.array_equal(sim.output().astype(np.float32), trace.out[b])


def test_grid_snap():
    w = np.array([0.1, -0.3, 1e-7, 2.0], np.float32)
    s = snap(w)
    assert np.all(np.abs(s - w) <= GRID / 2)
    assert np.array_equal(s / GRID, np.round(s / GRID))


def test_unsupported_layers_are_rejected():
    net = Network((4, 4, 1), [Layer("m", "maxpool2d", ("input",), kernel=(2, 2)),
                              Layer("f", "flatten", ("m",)),
                              Layer("d", "dense", ("f",), weight=np.ones((4, 2), np.float32), neuron=Neuron())])
    with pytest.raises(NetworkError, match="maxpool2d"):
        Model(net)
    net = Network((4,), [Layer("d", "dense", ("input",), weight=np.ones((4, 2), np.float32),
                               neuron=Neuron(max_spikes=2))])
    with pytest.raises(NetworkError, match="max_spikes"):
        Model(net)


@pytest.mark.parametrize("seed", range(6))
def test_rate_coded_input_matches_engine(seed):
    """Poisson (rate-coded) networks: the same input spikes go to the engine; the first
    layer's weights multiply spikes and sit on the grid."""
    from eventsnn.learn.bptt import rate_code

    rng = np.random.default_rng(100 + seed)
    net = trainable_random_net(rng)
    net.encoding = "poisson"
    for layer in net.layers:  # float weights: the model snaps them all
        if layer.weight is not None and layer.kind != "add":
            layer.weight = (layer.weight + rng.uniform(-1e-3, 1e-3, layer.weight.shape)).astype(np.float32)
    T = int(rng.integers(4, 12))
    x = inputs(rng, net, 3)
    model = Model(net)
    spikes = rate_code(x, T, rng)
    trace = model.forward(x, T, input_spikes=spikes)
    saved = model.to_network()
    first = saved.layers[0]
    assert np.array_equal(first.weight, snap(first.weight))
    assert check_engine_identity(saved, trace, T)["differing_spikes"] == 0
    with pytest.raises(NetworkError, match="input_spikes"):
        model.forward(x, T)
