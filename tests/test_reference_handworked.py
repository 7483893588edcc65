"""Tiny networks whose spikes and counts are worked out by hand, here in the comments.

They check the reference (eventsnn.reference, the executable spec) independently of
the engine's lowering, and then the engine against the same hand-made numbers. All
values are multiples of 2^-8, so every float32 sum is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.network import Layer, Network, Neuron
from eventsnn.reference import simulate_discrete


def raster_of(steps, n_in, spikes):
    """Input raster [T, N] from {step: [neurons]}."""
    r = np.zeros((steps, n_in), bool)
    for t, ids in spikes.items():
        r[t, ids] = True
    return r


def run_engine(net, steps, raster=None, x=None):
    sim = Simulator(net, timesteps=steps, record_spikes=True)
    if raster is not None:
        t, i = np.nonzero(raster)
        x = np.zeros(raster.shape[1], np.float32) if x is None else x
        sim.reset(x.reshape(net.input_shape), input_spikes=(t.astype(np.float64), i))
    else:
        sim.reset(x)
    assert sim.run() == "done"
    return sim


def layer_counts(sim, layer):
    """Spikes per (step, neuron) of one layer from the engine's log."""
    t, i = sim.recorded_spikes(layer)
    out = np.zeros((sim.timesteps, sim.plan.pops[sim.layer_index(layer)].size), np.int64)
    np.add.at(out, (t.astype(int), i), 1)
    return out


def dense_net(weights, neuron, encoding="poisson", bias=None):
    w = np.array(weights, np.float32).reshape(-1, 1)
    return Network((w.shape[0],), [Layer("out", "dense", ("input",), weight=w, neuron=neuron,
                                         bias=None if bias is None else np.array([bias], np.float32))],
                   encoding=encoding)


def check(net, steps, raster, layer, want_counts, want_syn, want_updates, x=None, encoding="poisson"):
    """Reference and engine both give the hand-made spike counts per step, syn ops and updates."""
    ref = simulate_discrete(net, np.zeros(net.input_shape, np.float32) if x is None else x, steps, encoding, raster)
    p = [pop.name for pop in ref["pops"]].index(layer)
    np.testing.assert_array_equal(ref["counts"][p][:, 0] if ref["counts"][p].shape[1] == 1 else ref["counts"][p],
                                  want_counts)
    np.testing.assert_array_equal(ref["syn_ops"][p], want_syn)
    np.testing.assert_array_equal(ref["updates"][p], want_updates)
    sim = run_engine(net, steps, raster, x)
    got = layer_counts(sim, layer)
    np.testing.assert_array_equal(got[:, 0] if got.shape[1] == 1 else got, want_counts)
    np.testing.assert_array_equal(sim.syn_ops[p], want_syn)
    np.testing.assert_array_equal(sim.updates[p], want_updates)
    return ref, sim


def test_if_subtract_by_hand():
    # w = (0.5, 0.25), theta 1. Input 0 spikes at t = 0..3, input 1 at t = 1, 3.
    # t0: V = 0.5            t1: 0.5 + 0.75 = 1.25 -> spike, V = 0.25
    # t2: 0.25 + 0.5 = 0.75  t3: 0.75 + 0.75 = 1.5 -> spike, V = 0.5
    net = dense_net([0.5, 0.25], Neuron("if", 1.0, "subtract"))
    raster = raster_of(4, 2, {0: [0], 1: [0, 1], 2: [0], 3: [0, 1]})
    ref, sim = check(net, 4, raster, "out", [0, 1, 0, 1], [1, 2, 1, 2], [1, 1, 1, 1])
    assert ref["v"][1][0] == 0.5
    assert sim.potentials("out").reshape(-1)[0] == 0.5


def test_if_reset_to_zero_by_hand():
    # Same input, reset to zero: t1: 1.25 -> spike, V = 0; t2: 0.5; t3: 0.5 + 0.75 = 1.25 -> spike, V = 0
    net = dense_net([0.5, 0.25], Neuron("if", 1.0, "zero"))
    raster = raster_of(4, 2, {0: [0], 1: [0, 1], 2: [0], 3: [0, 1]})
    ref, sim = check(net, 4, raster, "out", [0, 1, 0, 1], [1, 2, 1, 2], [1, 1, 1, 1])
    assert ref["v"][1][0] == 0.0 and sim.potentials("out").reshape(-1)[0] == 0.0


def test_lif_by_hand():
    # leak 0.5, w 0.75, theta 1; input spikes at t = 0, 1, 2, none at t = 3 and 4.
    # t0: 0.75   t1: 0.375 + 0.75 = 1.125 -> spike, V = 0.125   t2: 0.0625 + 0.75 = 0.8125
    # t3, t4: no event; at the end V = 0.8125 * 0.25 = 0.203125 (the lazy leak: exact for leak 2^-1)
    net = dense_net([0.75], Neuron("lif", 1.0, "subtract", leak=0.5))
    raster = raster_of(5, 1, {0: [0], 1: [0], 2: [0]})
    ref, sim = check(net, 5, raster, "out", [0, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0])
    assert ref["v"][1][0] == np.float32(0.203125)
    assert sim.potentials("out", at=4).reshape(-1)[0] == np.float32(0.203125)


def test_conv_fanout_by_hand():
    # 3x3 input, one channel, kernel 2x2 [[1, 0.5], [0.25, 0.125]], stride 1: output 2x2.
    # An input spike at the centre (1, 1) reaches output (oy, ox) through tap (1 - oy, 1 - ox):
    #   (0,0) <- 0.125, (0,1) <- 0.25, (1,0) <- 0.5, (1,1) <- 1.0   -> 4 syn ops
    # With theta 0.5: (1,0) fires (V = 0) and (1,1) fires leaving V = 0.5 >= theta, so it is
    # rechecked at t1 and fires again. A spike at the corner (0, 0) reaches only (0,0): 1 syn op.
    k = np.array([[1.0, 0.5], [0.25, 0.125]], np.float32).reshape(2, 2, 1, 1)
    net = Network((3, 3, 1), [Layer("conv", "conv2d", ("input",), weight=k, neuron=Neuron("if", 0.5))],
                  encoding="poisson")
    raster = raster_of(2, 9, {0: [4], 1: [0]})
    want = np.zeros((2, 4), np.int64)
    want[0, [2, 3]] = 1  # flat (oy * 2 + ox): (1,0) = 2, (1,1) = 3
    # t1: (0,0) holds 0.125 + 1.0 (tap (0,0) of the corner) = 1.125 -> fires; (1,1) fires from
    # its leftover 0.5. Updates at t1: the touched (0,0) and the rechecked (1,1).
    want[1, [0, 3]] = 1
    check(net, 2, raster, "conv", want, [4, 1], [4, 2])


def test_strided_padded_conv_fanout_by_hand():
    # 3x3 input, kernel 3x3, stride 2, padding 1: output 2x2; output o reads rows 2o - 1 + t.
    # Input (1,1): rows o with 2o - 1 + t = 1 -> (o=0, t=2), (o=1, t=0): 2 x 2 = 4 outputs.
    # Input (2,2): only o = 1 (t = 1) per axis: 1 output. Input (0,0): only o = 0 (t = 1): 1 output.
    k = np.full((3, 3, 1, 1), 0.25, np.float32)
    net = Network((3, 3, 1), [Layer("conv", "conv2d", ("input",), weight=k, stride=(2, 2), padding=(1, 1),
                                    neuron=Neuron("if", 1.0))], encoding="poisson")
    raster = raster_of(3, 9, {0: [4], 1: [8], 2: [0]})
    check(net, 3, raster, "conv", np.zeros((3, 4), np.int64), [4, 1, 1], [4, 1, 1])


def test_multi_spike_by_hand():
    # K = 3, theta 1, w 5: t0: V = 5 -> min(3, 5) = 3 spikes, V = 2 (still >= theta: rechecked)
    # t1: V = 2 -> 2 spikes, V = 0. Updates: t0 touched, t1 the recheck.
    net = dense_net([5.0], Neuron("if", 1.0, "subtract", max_spikes=3))
    raster = raster_of(3, 1, {0: [0]})
    check(net, 3, raster, "out", [3, 2, 0], [1, 0, 0], [1, 1, 0])
    # w 2.5: 2 spikes at t0, V = 0.5, nothing more
    net = dense_net([2.5], Neuron("if", 1.0, "subtract", max_spikes=3))
    check(net, 3, raster, "out", [2, 0, 0], [1, 0, 0], [1, 0, 0])


def test_maxpool_gate_by_hand():
    # 2x2 input, one channel, 2x2 max pool. Running counts: t0 (0,0) -> 1: top, passes;
    # t1 (0,0) -> 2: passes; t2 (0,1) -> 1 < 2: blocked; t3 (0,1) -> 2 = top: passes.
    net = Network((2, 2, 1), [Layer("pool", "maxpool2d", ("input",), kernel=(2, 2), stride=(2, 2))],
                  encoding="poisson")
    raster = raster_of(4, 4, {0: [0], 1: [0], 2: [1], 3: [1]})
    check(net, 4, raster, "pool", [1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1])


def test_constant_current_by_hand():
    # Direct input x = 0 (no analog current), bias 0.375, theta 1, subtract:
    # V = .375, .75, 1.125 -> spike (.125), .5, .875, 1.25 -> spike (.25), .625, 1.0 -> spike (0)
    # Spikes at t = 2, 5, 7; a constant-current layer is updated at every step.
    net = dense_net([0.5], Neuron("if", 1.0), encoding="direct", bias=0.375)
    x = np.zeros(1, np.float32)
    want = [0, 0, 1, 0, 0, 1, 0, 1]
    check(net, 8, None, "out", want, [0] * 8, [1] * 8, x=x, encoding="direct")


def test_residual_add_by_hand():
    # add(0.5 * input spikes, dense(input) with w 0.25, no neuron) into an IF neuron, theta 1:
    # each input spike brings 0.5 + 0.25 = 0.75 (2 syn ops: the identity branch and the dense one).
    # t0: 0.75; t1: 1.5 -> spike, V = 0.5; t2: 1.25 -> spike, V = 0.25
    net = Network((1,), [
        Layer("d", "dense", ("input",), weight=np.array([[0.25]], np.float32)),
        Layer("sum", "add", ("input", "d"), weight=np.array([0.5, 1.0], np.float32), neuron=Neuron("if", 1.0)),
    ], encoding="poisson")
    raster = raster_of(3, 1, {0: [0], 1: [0], 2: [0]})
    check(net, 3, raster, "sum", [0, 1, 1], [2, 2, 2], [1, 1, 1])


@pytest.mark.parametrize("order", ["time", "layer"])
def test_two_layers_within_one_step_by_hand(order):
    # input -> a (w 1, theta 1) -> b (w 1, theta 1): a spike crosses both layers in the step it
    # is made (layer by layer within a step), in either event order.
    net = Network((1,), [
        Layer("a", "dense", ("input",), weight=np.ones((1, 1), np.float32), neuron=Neuron("if", 1.0)),
        Layer("b", "dense", ("a",), weight=np.ones((1, 1), np.float32), neuron=Neuron("if", 1.0)),
    ], encoding="poisson")
    raster = raster_of(3, 1, {1: [0]})
    ref = simulate_discrete(net, np.zeros(1, np.float32), 3, "poisson", raster)
    assert ref["counts"][2][:, 0].tolist() == [0, 1, 0]
    sim = Simulator(net, timesteps=3, order=order, record_spikes=True)
    sim.reset(np.zeros(1, np.float32), input_spikes=(np.array([1.0]), np.array([0])))
    sim.run()
    assert layer_counts(sim, "b")[:, 0].tolist() == [0, 1, 0]
