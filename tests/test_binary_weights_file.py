"""Binary weight tensors (e.g. the stochastic STDP rule's kernels) are stored as packed
bits, 32x smaller, and read back to the identical float32 tensor; a damaged or hostile
packed field gets one clear error."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, Neuron, NetworkError


def binary_net(rng, levels=(0.0, 1.0)):
    w = np.where(rng.random((5, 5, 2, 32)) < 0.4, levels[1], levels[0]).astype(np.float32)
    dense = rng.standard_normal((24 * 24 * 32, 10)).astype(np.float32)
    return Network((28, 28, 2), [
        Layer("conv1", "conv2d", ("input",), weight=w, neuron=Neuron("if", 8.0, "zero", 1.0)),
        Layer("flat", "flatten", ("conv1",)),
        Layer("out", "dense", ("flat",), weight=dense, neuron=Neuron("if", 1.0, "subtract", 1.0)),
    ])


@pytest.mark.parametrize("levels", [(0.0, 1.0), (-0.25, 0.75)])
def test_binary_kernels_are_stored_as_bits_and_read_back_exactly(tmp_path, levels):
    net = binary_net(np.random.default_rng(0), levels)
    path = tmp_path / "net.h5"
    save_network(net, path)
    with h5py.File(path) as f:
        conv, dense = f["layers/0000"], f["layers/0002"]
        assert "weight" not in conv and conv["weight_bits"].dtype == np.uint8
        assert conv["weight_bits"].shape == (5 * 5 * 2 * 32 // 8,)  # 1 bit per weight: 32x less than float32
        assert "weight" in dense and "weight_bits" not in dense  # many values: float32 as before
    back = load_network(path)
    for a, b in zip(net.layers, back.layers):
        if a.weight is not None:
            assert b.weight.dtype == np.float32 and b.weight.shape == a.weight.shape
            np.testing.assert_array_equal(a.weight, b.weight)


def _damage(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f["layers/0000"])


@pytest.mark.parametrize("edit,message", [
    (lambda g: g["weight_bits"].attrs.__setitem__("shape", np.array([5, 5, 2, 64])), "needs"),
    (lambda g: g["weight_bits"].attrs.__setitem__("shape", np.array([0, 5])), "positive sizes"),
    (lambda g: g["weight_bits"].attrs.__setitem__("levels", np.array([0.0, np.nan], np.float32)), "two finite"),
    (lambda g: g["weight_bits"].attrs.__setitem__("levels", np.array([1.0], np.float32)), "two finite"),
    (lambda g: g["weight_bits"].attrs.__setitem__("levels", "zero and one"), "two finite"),
    (lambda g: g["weight_bits"].attrs.__delitem__("shape"), "'shape' is missing"),
    (lambda g: g.create_dataset("weight", data=np.zeros((5, 5, 2, 32), np.float32)), "both"),
])
def test_damaged_packed_weights_are_refused_by_name(tmp_path, edit, message):
    path = tmp_path / "net.h5"
    save_network(binary_net(np.random.default_rng(1)), path)
    _damage(path, edit)
    with pytest.raises(NetworkError, match=message):
        load_network(path)


def test_a_huge_declared_shape_is_refused_before_unpacking(tmp_path):
    """A few bytes of bits cannot declare more weights than they hold (no 32x blow-up
    beyond what the file carries), and the unpacked size is checked against the limit."""
    path = tmp_path / "net.h5"
    save_network(binary_net(np.random.default_rng(2)), path)
    _damage(path, lambda g: g["weight_bits"].attrs.__setitem__("shape", np.array([1 << 20, 1 << 20, 2, 32])))
    with pytest.raises(NetworkError, match="needs"):
        load_network(path)
