"""Networks for the BPTT tests: every layer type the trainer takes, on a 2^-8 grid."""

from __future__ import annotations

import numpy as np

from eventsnn.network import Layer, Network, Neuron
from netgen import dyadic, random_input, random_network, random_neuron


def full_net(rng, kind="if", reset="subtract", decoding="spikes", grid=True, leak=0.5):
    """conv (stride 1, pad 1) -> conv (stride 2, pad 1) -> residual conv + add (scales)
    -> avgpool -> flatten -> dense. Weights on the 2^-8 grid unless ``grid`` is False."""
    def w(shape, lo, hi):
        return dyadic(rng, shape, lo, hi) if grid else rng.uniform(lo, hi, shape).astype(np.float32)

    def neuron(c):
        thr = dyadic(rng, (c,), 0.5, 1.0) if rng.random() < 0.5 else 0.75
        if kind == "if":
            return Neuron("if", thr, reset, 1.0, 0.5 if rng.random() < 0.5 else 0.0)
        return Neuron("lif", thr, reset, leak, 0.0)

    layers = [
        Layer("c1", "conv2d", ("input",), weight=w((3, 3, 2, 3), -0.3, 0.6), bias=w((3,), -0.1, 0.2),
              stride=(1, 1), padding=(1, 1), neuron=neuron(3)),
        Layer("c2", "conv2d", ("c1",), weight=w((3, 3, 3, 4), -0.3, 0.6), stride=(2, 2), padding=(1, 1),
              neuron=neuron(4)),
        Layer("res", "conv2d", ("c2",), weight=w((3, 3, 4, 4), -0.3, 0.5), bias=w((4,), -0.1, 0.1),
              padding=(1, 1)),
        Layer("add", "add", ("res", "c2"), weight=np.array([1.0, 0.75], np.float32), neuron=neuron(4)),
        Layer("pool", "avgpool2d", ("add",), kernel=(2, 2), stride=(1, 1), neuron=neuron(4)),
        Layer("flat", "flatten", ("pool",)),
        Layer("out", "dense", ("flat",), weight=w((2 * 2 * 4, 3), -0.3, 0.6), bias=w((3,), -0.1, 0.2),
              neuron=neuron(3)),
    ]
    return Network(input_shape=(5, 5, 2), layers=layers, encoding="direct", decoding=decoding)


def trainable_random_net(rng):
    """netgen's random direct-input network with max-pool gates turned into spiking avg-pools."""
    net = random_network(rng, "direct")
    for layer in net.layers:
        if layer.kind == "maxpool2d":
            layer.kind = "avgpool2d"
            layer.neuron = Neuron()
            layer.neuron = random_neuron(rng, net.shapes()[layer.inputs[0]][2])
    return net


def inputs(rng, net, n):
    return np.stack([random_input(rng, net) for _ in range(n)])
