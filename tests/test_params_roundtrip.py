"""Parameters back to the network: Network -> kernel data -> Network is the identity, and
parameters changed in place (as learning changes them) reach the network and the file exactly."""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.compile import Plan
from eventsnn.engine.layout import C_KH, C_KIND, C_KW, C_WOFF, K_POOL
from eventsnn.engine.simulator import Simulator
from eventsnn.errors import NetworkError
from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, Neuron

from netgen import dyadic, random_input, random_network


def assert_same_network(a: Network, b: Network):
    assert a.input_shape == b.input_shape and a.encoding == b.encoding and a.decoding == b.decoding
    assert a.provenance == b.provenance
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert (la.kind, tuple(la.inputs), la.kernel, la.stride, la.padding, la.delay) == \
            (lb.kind, tuple(lb.inputs), lb.kernel, lb.stride, lb.padding, lb.delay)
        for field in ("weight", "bias"):
            va, vb = getattr(la, field), getattr(lb, field)
            assert (va is None) == (vb is None), (la.name, field)
            if va is not None:
                assert np.shape(va) == np.shape(vb) and np.array_equal(np.asarray(va), np.asarray(vb)), (la.name, field)
        assert (la.neuron is None) == (lb.neuron is None)
        if la.neuron is not None:
            na, nb = la.neuron, lb.neuron
            assert (na.kind, na.reset, na.leak, na.v_init, na.max_spikes) == \
                (nb.kind, nb.reset, nb.leak, nb.v_init, nb.max_spikes)
            assert np.shape(na.threshold) == np.shape(nb.threshold)
            assert np.array_equal(np.asarray(na.threshold, np.float32), np.asarray(nb.threshold, np.float32))


@pytest.mark.parametrize("seed", range(30))
def test_identity_on_random_nets(seed):
    """Per-channel thresholds, LIF leaks, biases, residual adds with scales, pools."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, "poisson" if seed % 2 else "direct")
    assert_same_network(net, Plan(net, 5).to_network())


def test_identity_on_shipped_and_multi_spike_nets():
    from importlib.resources import files
    shipped = load_network(str(files("eventsnn.data") / "default_net.h5"))
    assert_same_network(shipped, Plan(shipped, 3).to_network())
    for seed in range(40):
        multi = random_network(np.random.default_rng(seed), "poisson", decoding="spikes")
        if not any(layer.kind == "maxpool2d" for layer in multi.layers):
            break
    for layer in multi.layers:
        if layer.neuron is not None:
            layer.neuron.max_spikes = 3
    assert_same_network(multi, Plan(multi, 3).to_network())


def test_folded_pools_provenance_survives(tmp_path):
    net = random_network(np.random.default_rng(7), "direct")
    net.provenance = {"folded_pools": {"out": [1, 1]}, "tool": "test"}
    assert_same_network(net, Plan(net, 2).to_network())


def test_learned_parameters_reach_network_and_file(tmp_path):
    """Change weights, biases, thresholds and leaks in place (as a learning rule does), write
    back, save, load: a new simulator on the loaded file has exactly the changed parameters and
    gives the same spikes as the simulator that was changed."""
    rng = np.random.default_rng(11)
    net = random_network(rng, "direct", decoding="spikes")
    while not any(l.bias is not None for l in net.layers):
        net = random_network(rng, "direct", decoding="spikes")
    sim = Simulator(net, timesteps=12)
    p = sim.params
    p.weights[:] = dyadic(rng, p.weights.shape, -0.5, 0.7)
    for row in sim.plan.conn_i:  # an average pool's weight is fixed by its kernel: keep it
        if row[C_KIND] == K_POOL:
            p.weights[row[C_WOFF]] = np.float32(1.0 / (row[C_KH] * row[C_KW]))
    p.bias[:] = dyadic(rng, p.bias.shape, -0.2, 0.2)
    for q, pop in enumerate(sim.plan.pops[1:], start=1):
        if pop.layer.neuron is not None:
            sl = sim.plan.pop_slice(q)
            shape = np.shape(pop.layer.neuron.threshold)
            new = dyadic(rng, shape if shape else (), 0.5, 1.25)
            p.thr[sl] = np.broadcast_to(new, pop.shape).reshape(-1)
            if pop.layer.neuron.kind == "lif":
                p.leak[q] = 0.25
    p.decay[:] = (p.leak[:, None] ** np.arange(p.decay.shape[1])[None, :]).astype(np.float32)
    learned = sim.to_network()
    path = tmp_path / "learned.h5"
    save_network(learned, path)
    again = Simulator(load_network(path), timesteps=12)
    for field in ("weights", "bias", "thr", "leak", "decay"):
        np.testing.assert_array_equal(getattr(again.params, field), getattr(sim.params, field), err_msg=field)
    x = random_input(rng, net)
    sim.reset(x)
    sim.run()
    again.reset(x)
    again.run()
    np.testing.assert_array_equal(again.state.spike_count, sim.state.spike_count)
    np.testing.assert_array_equal(again.syn_ops, sim.syn_ops)


def test_unshared_threshold_is_refused():
    net = Network((4,), [Layer("out", "dense", ("input",), weight=np.ones((4, 3), np.float32),
                                neuron=Neuron("if", 1.0))], encoding="poisson")
    plan = Plan(net, 2)
    plan.params.thr[plan.pop_slice(1).start + 1] = 0.5
    with pytest.raises(NetworkError, match="thresholds differ"):
        plan.to_network()


def test_pool_weight_is_fixed():
    net = Network((4, 4, 1), [Layer("p", "avgpool2d", ("input",), kernel=(2, 2), stride=(2, 2),
                                    neuron=Neuron())], encoding="poisson")
    plan = Plan(net, 2)
    plan.params.weights[0] = 0.5
    with pytest.raises(NetworkError, match="fixed by its kernel"):
        plan.to_network()
