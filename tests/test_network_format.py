"""The native HDF5 network file: round trip and validation of bad files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, NetworkError, Neuron

from netgen import random_network


def _small():
    rng = np.random.default_rng(0)
    return Network((6, 6, 1), [
        Layer("c", "conv2d", weight=rng.normal(size=(3, 3, 1, 2)).astype(np.float32), bias=np.zeros(2, np.float32),
              stride=(2, 2), padding=(1, 1), neuron=Neuron.lif(threshold=[0.5, 1.0], reset="zero", tau=4.0)),
        Layer("m", "maxpool2d", kernel=(2, 2)),
        Layer("f", "flatten"),
        Layer("d", "dense", weight=rng.normal(size=(2, 3)).astype(np.float32), neuron=Neuron()),
    ], encoding="poisson", decoding="membrane", provenance={"made_by": "test", "numbers": [1, 2]})


@pytest.mark.parametrize("seed", range(10))
def test_round_trip(tmp_path, seed):
    net = random_network(np.random.default_rng(seed), "direct") if seed else _small()
    path = tmp_path / "net.h5"
    save_network(net, path)
    back = load_network(path)
    assert back.input_shape == tuple(net.input_shape)
    assert (back.encoding, back.decoding, back.provenance) == (net.encoding, net.decoding, net.provenance)
    assert back.shapes() == net.shapes()
    for a, b in zip(net.layers, back.layers):
        assert (a.name, a.kind, tuple(a.inputs), a.stride, a.padding, a.delay) == \
               (b.name, b.kind, tuple(b.inputs), b.stride, b.padding, b.delay)
        for key in ("weight", "bias"):
            if getattr(a, key) is None:
                assert getattr(b, key) is None
            else:
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        if a.neuron is not None:
            assert (a.neuron.kind, a.neuron.reset, a.neuron.leak) == (b.neuron.kind, b.neuron.reset, b.neuron.leak)
            np.testing.assert_array_equal(a.neuron.threshold, b.neuron.threshold)
    assert not list(tmp_path.glob(".tmp-*"))


def _saved(tmp_path):
    path = tmp_path / "net.h5"
    save_network(_small(), path)
    return path


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


def _replace(group, key, data):
    del group[key]
    group.create_dataset(key, data=data)


CASES = {
    "wrong weight shape": (lambda f: _replace(f["layers/0000"], "weight", np.zeros((3, 3, 2, 2), np.float32)),
                           ["layer 0", "'c'", "weight"]),
    "nan weight": (lambda f: _replace(f["layers/0003"], "weight", np.full((2, 3), np.nan, np.float32)),
                   ["layer 3", "'d'", "weight", "NaN"]),
    "unknown kind": (lambda f: f["layers/0001"].attrs.__setitem__("kind", "conv3d"),
                     ["layer 1", "'m'", "kind", "conv3d"]),
    "missing threshold": (lambda f: f["layers/0000/neuron"].__delitem__("threshold"),
                          ["layer 0", "neuron", "threshold"]),
    "negative threshold": (lambda f: _replace(f["layers/0003/neuron"], "threshold", np.float32(-1)),
                           ["layer 3", "threshold", "positive"]),
    "bad reset": (lambda f: f["layers/0000/neuron"].attrs.__setitem__("reset", "sometimes"),
                  ["layer 0", "reset", "sometimes"]),
    "bad leak": (lambda f: f["layers/0000/neuron"].attrs.__setitem__("leak", 1.5), ["layer 0", "leak"]),
    "future version": (lambda f: f.attrs.__setitem__("version", 99), ["version 99"]),
    "unknown input": (lambda f: f["layers/0002"].attrs.__setitem__("inputs", '["nowhere"]'),
                      ["layer 2", "inputs", "nowhere"]),
    "missing layer": (lambda f: f["layers"].__delitem__("0002"), ["layer 2", "missing"]),
    "bad stride": (lambda f: f["layers/0000"].attrs.__setitem__("stride", np.array([0, 0])),
                   ["layer 0", "stride"]),
    "absurd bias shape": (lambda f: _replace(f["layers/0000"], "bias", np.zeros(5, np.float32)),
                          ["layer 0", "bias", "shape"]),
    "not our format": (lambda f: f.attrs.__setitem__("format", "keras"), ["format", "keras"]),
    "text weights": (lambda f: _replace(f["layers/0000"], "weight", np.array([b"abc"])),
                     ["layer 0", "weight", "numeric"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_names_file_layer_and_field(tmp_path, case):
    path = _saved(tmp_path)
    edit, words = CASES[case]
    _edit(path, edit)
    with pytest.raises(NetworkError) as err:
        load_network(path)
    msg = str(err.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)


def test_truncated_and_foreign_files(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkError, match="cut.h5"):
        load_network(cut)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(NetworkError, match="not a readable HDF5"):
        load_network(text)
    with pytest.raises(NetworkError, match="no such"):
        load_network(tmp_path / "absent.h5")


def test_failed_save_leaves_nothing(tmp_path):
    net = _small()
    net.layers[0].weight = np.full((3, 3, 1, 2), np.inf, np.float32)
    with pytest.raises(NetworkError):
        save_network(net, tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []


def test_graph_rules():
    w = np.ones((3, 3, 1, 1), np.float32)
    with pytest.raises(NetworkError, match="feed only add"):
        Network((5, 5, 1), [Layer("c", "conv2d", weight=w), Layer("d", "conv2d", weight=w, neuron=Neuron())]).shapes()
    with pytest.raises(NetworkError, match="flatten"):
        Network((5, 5, 1), [Layer("d", "dense", weight=np.ones((25, 2), np.float32), neuron=Neuron())]).shapes()
    with pytest.raises(NetworkError, match="shapes differ"):
        Network((5, 5, 1), [Layer("a", "conv2d", weight=w, neuron=Neuron()),
                            Layer("b", "conv2d", ("input",), weight=w, padding=(1, 1), neuron=Neuron()),
                            Layer("s", "add", ("a", "b"), neuron=Neuron())]).shapes()
    with pytest.raises(NetworkError, match="IF neuron has leak 1"):
        Network((5, 5, 1), [Layer("a", "conv2d", weight=w, neuron=Neuron("if", 1.0, "zero", 0.5))]).shapes()
