"""Random networks for the reference comparisons.

Every weight, threshold, bias and input is a multiple of 2**-8 with small
magnitude, so float32 sums are exact in any order and the engine must agree
with the references bit for bit. LIF layers use leak 0.5 (exact in float32).
"""

from __future__ import annotations

import numpy as np

from eventsnn.network import Layer, Network, Neuron

Q = 256.0


def dyadic(rng, shape, lo, hi):
    return (rng.integers(int(lo * Q), int(hi * Q) + 1, size=shape) / Q).astype(np.float32)


def random_neuron(rng, channels, continuous=False):
    kind = rng.choice(["if", "lif"])
    reset = rng.choice(["subtract", "zero"])
    if rng.random() < 0.3:
        threshold = dyadic(rng, (channels,), 0.25, 1.5)
        threshold[threshold <= 0] = 0.25
    else:
        threshold = float(dyadic(rng, (), 0.25, 1.25)) or 0.5
    v_init = 0.5 if rng.random() < 0.3 else 0.0
    if kind == "if":
        return Neuron("if", threshold, reset, 1.0, v_init)
    return Neuron("lif", threshold, reset, 0.5 if not continuous else float(rng.choice([0.5, 0.8, 0.95])), v_init)


def random_network(rng, encoding="poisson", continuous=False, decoding=None) -> Network:
    """A small random graph: convs (stride 1/2, padding 0/1), avg/max pools,
    optionally a residual add, flatten, dense."""
    h = int(rng.integers(5, 9))
    c = int(rng.integers(1, 3))
    shape = (h, h, c)
    layers = []
    prev = "input"
    use_bias = (not continuous) and rng.random() < 0.5

    def delay():
        return float(rng.choice([0.0, 0.5, 1.25, float(rng.random())])) if continuous else 0.0

    for i in range(int(rng.integers(1, 3))):
        k = int(rng.choice([1, 2, 3]))
        stride = int(rng.choice([1, 2]))
        pad = int(rng.choice([0, 1])) if k > 1 else 0
        if shape[0] + 2 * pad < k:
            pad = 1
        cout = int(rng.integers(1, 4))
        weight = dyadic(rng, (k, k, shape[2], cout), -0.3, 0.6)
        bias = dyadic(rng, (cout,), -0.1, 0.2) if use_bias and rng.random() < 0.5 else None
        layer = Layer(f"conv{i}", "conv2d", (prev,), weight=weight, bias=bias, stride=(stride, stride),
                      padding=(pad, pad), neuron=random_neuron(rng, cout, continuous), delay=delay())
        layers.append(layer)
        oh = (shape[0] + 2 * pad - k) // stride + 1
        shape = (oh, oh, cout)
        prev = layer.name
    if rng.random() < 0.5:
        # Residual block: conv (no neuron, "same" padding) + identity, joined by add.
        weight = dyadic(rng, (3, 3, shape[2], shape[2]), -0.3, 0.5)
        bias = dyadic(rng, (shape[2],), -0.1, 0.1) if use_bias and rng.random() < 0.5 else None
        layers.append(Layer("res", "conv2d", (prev,), weight=weight, bias=bias, padding=(1, 1), delay=delay()))
        scales = dyadic(rng, (2,), 0.25, 1.5) if rng.random() < 0.5 else None
        layers.append(Layer("add", "add", ("res", prev), weight=scales,
                            neuron=random_neuron(rng, shape[2], continuous), delay=delay()))
        prev = "add"
    if shape[0] >= 2 and rng.random() < 0.8:
        kind = "maxpool2d" if (rng.random() < 0.5 and not (encoding == "direct" and prev == "input")) else "avgpool2d"
        stride = int(rng.choice([1, 2]))
        neuron = random_neuron(rng, shape[2], continuous) if kind == "avgpool2d" else None
        layers.append(Layer("pool", kind, (prev,), kernel=(2, 2), stride=(stride, stride), neuron=neuron,
                            delay=delay()))
        oh = (shape[0] - 2) // stride + 1
        shape = (oh, oh, shape[2])
        prev = "pool"
    layers.append(Layer("flat", "flatten", (prev,)))
    n_in = shape[0] * shape[1] * shape[2]
    n_out = int(rng.integers(2, 6))
    bias = dyadic(rng, (n_out,), -0.1, 0.2) if use_bias and rng.random() < 0.5 else None
    layers.append(Layer("out", "dense", ("flat",), weight=dyadic(rng, (n_in, n_out), -0.3, 0.5), bias=bias,
                        neuron=random_neuron(rng, n_out, continuous), delay=delay()))
    if decoding is None:
        decoding = "membrane" if rng.random() < 0.25 else "spikes"
    return Network(input_shape=(h, h, c), layers=layers, encoding=encoding, decoding=decoding)


def random_input(rng, net, density=0.6):
    shape = net.shapes()["input"]
    x = dyadic(rng, shape, 0.0, 1.0)
    x[rng.random(shape) > density] = 0
    return x
