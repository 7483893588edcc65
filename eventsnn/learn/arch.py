"""Untrained architectures for ``eventsnn train-bptt --net`` (save one with
:func:`eventsnn.io.save_network`).

``conv_net``: [conv 3x3 (padding 1) -> spiking avg-pool 2x2] per entry of
``channels``, then flatten and a dense readout (non-spiking membrane output by
default). Kaiming/He initialisation (He et al. 2015), ``std = sqrt(2 / fan_in)``,
as Lee et al. 2020 use; biases zero; average-pool neurons are IF with threshold
0.75 (Lee et al. 2020).
"""

from __future__ import annotations

import numpy as np

from ..network import Layer, Network, Neuron


def _neuron(kind, leak, reset, threshold):
    if kind == "if":
        return Neuron("if", threshold, reset, 1.0)
    return Neuron("lif", threshold, reset, float(leak))


def conv_net(input_shape=(28, 28, 1), classes=10, channels=(16, 32), kind="lif", leak=0.5, reset="subtract",
             threshold=1.0, pool_threshold=0.75, decoding="membrane", seed=0) -> Network:
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    layers, prev = [], "input"
    for i, co in enumerate(channels):
        weight = (rng.standard_normal((3, 3, c, co)) * np.sqrt(2.0 / (9 * c))).astype(np.float32)
        layers.append(Layer(f"conv{i + 1}", "conv2d", (prev,), weight=weight, bias=np.zeros(co, np.float32),
                            padding=(1, 1), neuron=_neuron(kind, leak, reset, threshold)))
        layers.append(Layer(f"pool{i + 1}", "avgpool2d", (f"conv{i + 1}",), kernel=(2, 2),
                            neuron=Neuron("if", pool_threshold, reset, 1.0)))
        prev, c, h, w = f"pool{i + 1}", co, h // 2, w // 2
    layers.append(Layer("flat", "flatten", (prev,)))
    n_in = h * w * c
    weight = (rng.standard_normal((n_in, classes)) * np.sqrt(2.0 / n_in)).astype(np.float32)
    layers.append(Layer("out", "dense", ("flat",), weight=weight, bias=np.zeros(classes, np.float32),
                        neuron=_neuron(kind, leak, reset, threshold)))
    return Network(input_shape=tuple(input_shape), layers=layers, encoding="direct", decoding=decoding)
