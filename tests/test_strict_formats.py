"""Strict formats (issue 12, items 6, 7, 9, 10), each on the issue's original input:
nested JSON, provenance that drives the run, lenient version/count/labels, and
energy-report on corrupted results files. Every case: our own error, before any run."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from eventsnn.errors import DataError, NetworkError, ResultsError
from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, Neuron
from eventsnn.results import load_results, run_dataset

from cliutil import invoke, one_error as _one_error


def one_error(result, *needles):
    """One error line, and refused before any simulation started."""
    line = _one_error(result, *needles)
    assert "Simulating" not in result.stderr and result.stdout == ""
    return line


def conv_net(**provenance) -> Network:
    rng = np.random.default_rng(5)
    return Network(input_shape=(4, 4, 1), provenance=dict(provenance), layers=[
        Layer("conv", "conv2d", weight=rng.normal(0, 0.5, (2, 2, 1, 2)).astype(np.float32), neuron=Neuron()),
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=rng.normal(0, 0.5, (18, 3)).astype(np.float32), neuron=Neuron()),
    ])


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.h5"
    save_network(conv_net(), path)
    return path


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).random((3, 4, 4)).astype(np.float32), y=np.array([0, 1, 2]))
    return path


def edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


def run_args(net, data):
    return ["run", "--net", net, "--data", data, "--timesteps", "3", "--no-progress"]


# -- item 6: deeply nested JSON ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["provenance", "inputs"])
def test_deeply_nested_json_is_our_error(net_file, data_file, where):
    deep = "[" * 100_000 + "]" * 100_000
    if where == "provenance":
        edit(net_file, lambda f: f.attrs.__setitem__("provenance", '{"a": ' + deep + "}"))
    else:
        edit(net_file, lambda f: f["layers/0001"].attrs.__setitem__("inputs", deep))
    with pytest.raises(NetworkError, match="nested 100001 levels deep|nested 100000 levels deep") as err:
        load_network(net_file)
    assert where in str(err.value)
    one_error(invoke(run_args(net_file, data_file)), str(net_file), "nested")


# -- item 7: provenance is checked at load, not after the run ---------------------------------


def test_provenance_that_is_not_an_object_is_refused_at_load(net_file, data_file):
    edit(net_file, lambda f: f.attrs.__setitem__("provenance", "[1,2]"))
    with pytest.raises(NetworkError, match="'provenance' must be a JSON object"):
        load_network(net_file)
    one_error(invoke(run_args(net_file, data_file)), "provenance")


@pytest.mark.parametrize("folded,why", [({"nowhere": [2, 2]}, "not a conv2d or dense"),
                                         ({"conv": [3, 3]}, "does not fit"),
                                         ({"fc": [0, 1]}, "two positive integers"),
                                         ({"fc": "2x2"}, "two positive integers"),
                                         ([["fc", [2, 2]]], "must map layer names")])
def test_stale_folded_pools_are_refused_at_load(net_file, data_file, folded, why):
    edit(net_file, lambda f: f.attrs.__setitem__("provenance", json.dumps({"folded_pools": folded})))
    with pytest.raises(NetworkError, match=why):
        load_network(net_file)
    one_error(invoke(run_args(net_file, data_file)), "folded_pools")


def test_valid_folded_pools_still_load(net_file):
    edit(net_file, lambda f: f.attrs.__setitem__("provenance", json.dumps({"folded_pools": {"fc": [1, 2]}})))
    assert load_network(net_file).provenance["folded_pools"] == {"fc": [1, 2]}


# -- item 9: version, count, labels -----------------------------------------------------------


@pytest.mark.parametrize("version", [1.99, 1.0, "1", True])
def test_version_must_be_the_integer_1(net_file, version):
    edit(net_file, lambda f: f.attrs.__setitem__("version", version))
    with pytest.raises(NetworkError, match="version"):
        load_network(net_file)


def test_count_smaller_than_the_layers_present_is_refused(net_file, data_file):
    edit(net_file, lambda f: f["layers"].attrs.__setitem__("count", 2))  # would drop the output layer
    with pytest.raises(NetworkError, match="'count' is 2, but the group also holds 0002"):
        load_network(net_file)
    one_error(invoke(run_args(net_file, data_file)), "count")


def test_float_count_is_refused(net_file):
    edit(net_file, lambda f: f["layers"].attrs.__setitem__("count", 3.0))
    with pytest.raises(NetworkError, match="count"):
        load_network(net_file)


def test_labels_outside_the_class_range_are_refused(net_file, tmp_path):
    data = tmp_path / "bad_labels.npz"
    np.savez(data, x=np.random.default_rng(0).random((3, 4, 4)).astype(np.float32), y=np.array([0, 7, 2]))
    one_error(invoke(run_args(net_file, data)), "label 7 of sample 1", "3 classes")
    with pytest.raises(DataError, match="outside the network's 3 classes"):
        run_dataset(conv_net(), np.zeros((2, 4, 4, 1), np.float32), y=np.array([0, 3]), timesteps=2)


# -- item 10: energy-report on corrupted results ---------------------------------------------


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "r.h5"
    x = np.random.default_rng(0).random((3, 4, 4, 1)).astype(np.float32)
    run_dataset(conv_net(), x, np.array([0, 1, 2]), timesteps=4).save(path)
    return path


def _replace(f, key, data):
    del f[key]
    f[key] = data


CORRUPT = {
    "zero neurons": (lambda f: _replace(f, "neurons", np.zeros_like(f["neurons"][()])), "neurons"),
    "nan spikes": (lambda f: _replace(f, "spikes", np.full(f["spikes"].shape, np.nan)), "spikes"),
    "nan outputs": (lambda f: _replace(f, "outputs", np.full(f["outputs"].shape, np.nan)), "NaN"),
    "negative syn ops": (lambda f: _replace(f, "syn_ops", -np.ones(f["syn_ops"].shape, np.int64)), "negative"),
    "missing layers attr": (lambda f: f.attrs.__delitem__("layers"), "layers"),
    "layers not a list": (lambda f: f.attrs.__setitem__("layers", '{"a": 1}'), "layers"),
    "settings a list": (lambda f: f.attrs.__setitem__("settings", "[1]"), "settings"),
    "nested settings": (lambda f: f.attrs.__setitem__("settings", "[" * 50_000 + "]" * 50_000), "nested"),
    "text timesteps": (lambda f: f.attrs.__setitem__("timesteps", "many"), "timesteps"),
    "short per-step": (lambda f: _replace(f, "syn_ops_per_step", f["syn_ops_per_step"][:, :2]), "syn_ops_per_step"),
    "group for dataset": (lambda f: (f.__delitem__("seconds"), f.create_group("seconds")), "seconds"),
    "bad layer sources": (lambda f: f.attrs.__setitem__("settings", json.dumps({"layer_sources": [[9]] * 3})),
                          "layer_sources"),
    "prediction out of range": (lambda f: _replace(f, "predictions", np.array([0, 1, 99])), "predictions"),
    "float version": (lambda f: f.attrs.__setitem__("version", 1.5), "version"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupted_results_are_refused(results_file, case):
    fn, needle = CORRUPT[case]
    edit(results_file, fn)
    with pytest.raises(ResultsError, match=needle):
        load_results(results_file)
    one_error(invoke(["energy-report", results_file]), str(results_file))  # no table of inf/nan


def test_intact_results_still_report(results_file):
    r = invoke(["energy-report", results_file, "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["layers"] and all(np.isfinite(row["snn_pj"]) and np.isfinite(row["spike_rate"]) for row in doc["layers"])


def test_convert_refuses_calibration_labels_outside_the_classes(tmp_path):
    from annbuild import AnnBuilder, to_onnx
    b = AnnBuilder((4, 4, 1))
    b.flatten()
    b.dense(3)
    b.relu()
    model = tmp_path / "m.onnx"
    to_onnx(b.graph(), model)
    data = tmp_path / "cal.npz"
    np.savez(data, x=np.random.default_rng(0).random((3, 4, 4)).astype(np.float32), y=np.array([0, 5, 1]))
    out = tmp_path / "out.h5"
    one_error(invoke(["convert", model, "-o", out, "--calibration", data, "--no-progress"]),
              "label 5 of sample 1", "3 classes")
    assert not out.exists()


def test_deeply_nested_profile_toml_is_our_error(tmp_path, results_file):
    toml = tmp_path / "p.toml"
    toml.write_text("[x]\nmac_pj = 1.0\nsynop_pj = 0.1\nextra = " + "[" * 100_000 + "]" * 100_000 + "\n")
    one_error(invoke(["energy-report", results_file, "--profile", toml]), str(toml), "nested too deeply")
