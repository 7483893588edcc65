"""The shipped trained VGG16 (data/vgg16_fashion.onnx) and the training-split calibration sample."""

import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import eventsnn.data
from eventsnn.cli.main import main
from eventsnn.io import load_network

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _stated_digests(section: str) -> tuple:
    """The sha256(x bytes) / sha256(y bytes) lines data/README.md states in ``section``."""
    text = (ROOT / "data" / "README.md").read_text()
    part = text[text.index(section):]
    x = re.search(r"sha256\(x bytes\) = ([0-9a-f]{64})", part).group(1)
    y = re.search(r"sha256\(y bytes\) = ([0-9a-f]{64})", part).group(1)
    return x, y


def test_calibration_sample_is_what_data_readme_states():
    d = np.load(eventsnn.data.path("fashion-mnist-train-calib.npz"))
    assert d["x"].shape == (1000, 28, 28) and d["x"].dtype == np.uint8
    assert d["y"].shape == (1000,) and int(d["y"].max()) <= 9
    x_sha, y_sha = _stated_digests("## `fashion-mnist-train-calib.npz`")
    assert hashlib.sha256(d["x"].tobytes()).hexdigest() == x_sha
    assert hashlib.sha256(d["y"].tobytes()).hexdigest() == y_sha


def _idx(name):
    raw = gzip.decompress((FASHION / name).read_bytes())
    ndim = raw[3]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)


@pytest.mark.skipif(not FASHION.is_dir(), reason="the Fashion-MNIST IDX files are not installed")
def test_calibration_images_come_from_the_training_split_only():
    d = np.load(eventsnn.data.path("fashion-mnist-train-calib.npz"))
    train = _idx("train-images-idx3-ubyte.gz").reshape(-1, 28, 28)
    np.testing.assert_array_equal(d["x"], train[:1000])
    np.testing.assert_array_equal(d["y"], _idx("train-labels-idx1-ubyte.gz")[:1000])
    test_rows = {row.tobytes() for row in _idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784)}
    assert not any(row.tobytes() in test_rows for row in d["x"].reshape(-1, 784))


def test_shipped_onnx_matches_its_metadata():
    meta = json.loads(Path(eventsnn.data.path("vgg16_fashion.json")).read_text())
    onnx_path = Path(eventsnn.data.path("vgg16_fashion.onnx"))
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == meta["onnx_sha256"]
    assert meta["onnx_bytes"] == onnx_path.stat().st_size
    assert meta["test_images"] == 10000 and 0.5 < meta["test_accuracy"] < 1
    assert meta["width"] > 0 and len(meta["history"]) == meta["epochs"]
    assert set(meta["onnx_ops"]) <= {"Conv", "Relu", "AveragePool", "Flatten", "Gemm"}
    # the accuracy the README and data/README.md state is the metadata's
    for doc in ("README.md", "data/README.md"):
        assert f"{100 * meta['test_accuracy']:.2f} %" in (ROOT / doc).read_text(), doc


def test_shipped_vgg16_converts_and_runs(tmp_path, monkeypatch):
    """The README's two commands, on a few images and steps: 13 conv + 3 dense, runs, classifies."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = tmp_path / "converted_vgg16.h5"
    res = runner.invoke(main, ["convert", eventsnn.data.path("vgg16_fashion.onnx"), "-o", str(out),
                               "--calibration", eventsnn.data.path("fashion-mnist-train-calib.npz"),
                               "--calibration-samples", "100", "--v-init", "0.5", "--no-progress"])
    assert res.exit_code == 0, res.output
    net = load_network(out)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("conv2d") == 13 and kinds.count("dense") == 3
    assert net.input_shape == (28, 28, 1)
    # the normalised ANN classifies the calibration images as the source ANN does
    assert net.provenance["normalized_ann_accuracy"] == pytest.approx(net.provenance["ann_accuracy"], abs=0.02)
    assert net.provenance["ann_accuracy"] > 0.8
    res = runner.invoke(main, ["run", "--net", str(out), "--samples", "4", "--timesteps", "30", "--json",
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["samples"] == 4 and summary["accuracy"] is not None
    assert summary["syn_ops_per_sample"] > 0


def _readme_vgg16_commands():
    text = (ROOT / "README.md").read_text()
    convert = re.search(r"^eventsnn convert data/vgg16_fashion\.onnx [^\n]*$", text, re.M).group(0)
    block = re.search(r"^```console\n(\$ eventsnn run --net converted_vgg16\.h5[^\n]*)\n(.*?)^```", text,
                      re.S | re.M)
    return convert, block.group(1), block.group(2)


@pytest.mark.slow
def test_readme_vgg16_commands_print_what_the_readme_shows(tmp_path, monkeypatch):
    """The README's convert command, then its run command on the 500 shipped images: the same output."""
    import shlex

    from test_docs import compare_output

    convert, run, expected = _readme_vgg16_commands()
    monkeypatch.chdir(tmp_path)
    args = [str(ROOT / a) if a.startswith("data/") else a for a in shlex.split(convert)[1:]]
    runner = CliRunner()
    res = runner.invoke(main, args + ["--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, shlex.split(run[len("$ eventsnn "):]) + ["--no-progress"])
    assert res.exit_code == 0, res.output
    compare_output(expected.rstrip("\n"), res.stdout.rstrip("\n"))
