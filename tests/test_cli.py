"""Tests for the ``eventsnn`` command line (cli/main.py), on networks built here."""

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from eventsnn.datasets import load_dataset
from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, Neuron
from eventsnn.results import run_dataset

from eventsnn.cli.main import main

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "fashion-mnist-sample.npz"
SMALL = ["--samples", "5", "--timesteps", "20"]
LAYERS = ("input", "conv", "pool", "fc")


def make_runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def invoke(args):
    return make_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def conv_net() -> Network:
    rng = np.random.default_rng(1)
    return Network(input_shape=(28, 28, 1), layers=[
        Layer("conv", "conv2d", weight=rng.normal(0, 0.5, (3, 3, 1, 4)).astype(np.float32),
              neuron=Neuron()),
        Layer("pool", "avgpool2d", kernel=(2, 2), neuron=Neuron(threshold=0.5)),
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=rng.normal(0, 0.1, (13 * 13 * 4, 10)).astype(np.float32),
              neuron=Neuron()),
    ])


@pytest.fixture(scope="module")
def net_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "net.h5"
    save_network(conv_net(), path)
    return path


def run_json(net_path, *extra):
    result = invoke(["run", "--net", net_path, "--data", SAMPLE, *SMALL, "--json", "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- good runs ------------------------------------------------------------------------------


def test_help_and_version():
    result = invoke(["--help"])
    assert result.exit_code == 0 and "run" in result.stdout
    result = invoke(["run", "--help"])
    assert result.exit_code == 0 and "--timesteps" in result.stdout
    result = invoke(["--version"])
    assert result.exit_code == 0 and "0." in result.stdout


def test_text_output_with_default_data(net_path):
    result = invoke(["run", "--net", net_path, *SMALL, "--no-progress"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fashion-mnist-sample.npz" in out  # the shipped data set is the default
    assert "accuracy" in out and "%" in out
    assert "time/sample" in out and "ms" in out
    lines = out.splitlines()
    for name in (*LAYERS, "total"):
        rows = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(rows) == 1, (name, out)
        assert len(rows[0].split()) == 7
    assert "syn ops/sample" in out and "analog MACs/sample" in out
    assert result.stderr == ""


def test_json_matches_library_and_output_file(net_path, tmp_path):
    out_file = tmp_path / "results.h5"
    # With the progress bar on: it goes to stderr, stdout stays pure JSON.
    result = invoke(["run", "--net", net_path, "--data", SAMPLE, *SMALL, "--json",
                     "--output", out_file])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "Simulating" in result.stderr
    assert summary["network"] == str(net_path) and summary["data"] == str(SAMPLE)
    assert summary["samples"] == 5 and summary["accuracy"] is not None
    cli_ops = {row["layer"]: row["syn_ops_per_sample"] for row in summary["layers"]}
    assert tuple(cli_ops) == LAYERS
    assert sum(cli_ops.values()) > 0 and summary["spikes_per_sample"] > 0

    data = load_dataset(SAMPLE, limit=5)
    lib = run_dataset(load_network(net_path), data.x, data.y, timesteps=20)
    assert {row["layer"]: row["syn_ops_per_sample"] for row in lib.layer_table()} == cli_ops
    assert lib.accuracy == summary["accuracy"]

    with h5py.File(out_file, "r") as f:
        assert f.attrs["format"] == "eventsnn.results"
        layers = json.loads(f.attrs["layers"])
        syn_ops = f["syn_ops"][()]
        settings = json.loads(f.attrs["settings"])
    assert syn_ops.shape == (5, len(LAYERS))
    assert {name: float(syn_ops[:, i].sum() / 5) for i, name in enumerate(layers)} == cli_ops
    assert settings["network"] == str(net_path) and settings["data"] == str(SAMPLE)
    assert settings["options"]["timesteps"] == 20 and settings["options"]["samples"] == 5


def test_poisson_seed_reproducible(net_path):
    def counts(seed):
        s = run_json(net_path, "--encoding", "poisson", "--seed", seed)
        assert s["settings"]["encoding"] == "poisson"
        return [(r["spikes_per_sample"], r["syn_ops_per_sample"]) for r in s["layers"]]

    first = counts(3)
    assert counts(3) == first
    assert counts(4) != first


def test_flat_input_network_gets_flattened_images(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "mlp.h5"
    save_network(Network(input_shape=(784,), layers=[
        Layer("fc", "dense", weight=rng.normal(0, 0.1, (784, 10)).astype(np.float32), neuron=Neuron()),
    ]), path)
    result = invoke(["run", "--net", path, "--data", SAMPLE, "--samples", "2", "--timesteps", "10",
                     "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 2


def test_missing_default_network_is_a_clear_error(tmp_path):
    from importlib import resources

    if (resources.files("eventsnn.data") / "default_net.h5").is_file():
        pytest.skip("a default network is shipped")
    result = invoke(["run", "--output", tmp_path / "out.h5"])
    assert result.exit_code != 0
    assert "no default network is shipped" in result.stderr and "--net" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.h5").exists()


# -- bad input ------------------------------------------------------------------------------


def _edit(src: Path, dst: Path, edit) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _truncated(net_path, tmp):
    raw = net_path.read_bytes()
    (tmp / "trunc.h5").write_bytes(raw[: len(raw) // 2])
    return ["--net", tmp / "trunc.h5"]


def _not_hdf5(net_path, tmp):
    (tmp / "text.h5").write_text("this is not an HDF5 file\n")
    return ["--net", tmp / "text.h5"]


def _bad_weight_shape(net_path, tmp):
    def edit(f):
        del f["layers/0003/weight"]
        f["layers/0003"].create_dataset("weight", data=np.zeros((100, 10), np.float32))
    return ["--net", _edit(net_path, tmp / "shape.h5", edit)]


def _nan_weights(net_path, tmp):
    def edit(f):
        w = f["layers/0000/weight"][()]
        w[0, 0, 0, 0] = np.nan
        f["layers/0000/weight"][...] = w
    return ["--net", _edit(net_path, tmp / "nan.h5", edit)]


def _unknown_kind(net_path, tmp):
    def edit(f):
        f["layers/0001"].attrs["kind"] = "conv3d"
    return ["--net", _edit(net_path, tmp / "kind.h5", edit)]


def _data_shape(net_path, tmp):
    np.savez(tmp / "small.npz", x=np.zeros((4, 20, 20), np.uint8), y=np.zeros(4, np.int64))
    return ["--net", net_path, "--data", tmp / "small.npz"]


BAD = {
    "truncated-hdf5": _truncated,
    "not-hdf5": _not_hdf5,
    "weight-shape": _bad_weight_shape,
    "nan-weights": _nan_weights,
    "unknown-layer-kind": _unknown_kind,
    "timesteps-negative": lambda net, tmp: ["--net", net, "--timesteps", "-1"],
    "timesteps-zero": lambda net, tmp: ["--net", net, "--timesteps", "0"],
    "samples-zero": lambda net, tmp: ["--net", net, "--samples", "0"],
    "missing-data": lambda net, tmp: ["--net", net, "--data", tmp / "nope.npz"],
    "missing-net": lambda net, tmp: ["--net", tmp / "nope.h5"],
    "data-shape": _data_shape,
    "data-not-a-dataset": lambda net, tmp: ["--net", net, "--data", net],
    "continuous-direct": lambda net, tmp: ["--net", net, "--mode", "continuous", "--encoding", "direct"],
    "layer-order-continuous": lambda net, tmp: ["--net", net, "--mode", "continuous", "--encoding", "poisson",
                                                "--order", "layer"],
    "unknown-order": lambda net, tmp: ["--net", net, "--order", "rank"],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line(case, net_path, tmp_path):
    out_file = tmp_path / "out.h5"
    args = BAD[case](net_path, tmp_path)
    for option, value in (("--data", SAMPLE), ("--timesteps", 20), ("--samples", 2)):
        if option not in args:
            args += [option, value]
    result = invoke(["run", *args, "--output", out_file])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.stderr
    assert len(errors[0]) > len("Error: ") + 10
    assert result.stdout == ""
    assert not out_file.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_missing_output_directory(net_path, tmp_path):
    result = invoke(["run", "--net", net_path, *SMALL, "--output", tmp_path / "no" / "out.h5"])
    assert result.exit_code != 0 and "does not exist" in result.stderr


# -- the installed console script -------------------------------------------------------------


def test_installed_console_script(tmp_path):
    exe = shutil.which("eventsnn")
    if exe is None:
        pytest.skip("the eventsnn console script is not installed")
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "run" in done.stdout
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    done = subprocess.run([exe, "run", "--net", str(bad), "--output", str(tmp_path / "o.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("Error:") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.h5").exists()


def test_order_option_gives_identical_results(net_path):
    """--order time and --order layer (the default in discrete time) count the same."""
    runs = {}
    for order in ("time", "layer", "auto"):
        result = invoke(["run", "--net", net_path, "--data", SAMPLE, "--samples", 3, "--timesteps", 20,
                         "--order", order, "--json", "--sweep-timesteps", "5,20"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        runs[order] = (doc["accuracy"], doc["layers"], doc["sweep"])
    assert runs["time"] == runs["layer"] == runs["auto"]
