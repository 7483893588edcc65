"""Conversion with ``max_spikes = K``: every rate scaled by K, up to K spikes per step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

from eventsnn.ann import ConversionError  # noqa: E402
from eventsnn.cli.main import main  # noqa: E402
from eventsnn.convert import convert, rate_model  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io import load_network  # noqa: E402

from annbuild import AnnBuilder, to_onnx  # noqa: E402
from test_convert import agreement_with_ann, rate_errors, residual_cnn, small_cnn  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample.npz"


@pytest.fixture(scope="module")
def data():
    return load_dataset(SAMPLE, limit=32)


@pytest.mark.parametrize("fold", [True, False])
def test_rates_approach_k_times_the_activations(data, fold):
    """Rates reach K x the normalised activation (clipped at K), finer than binary spikes at equal T."""
    ann = small_cnn()
    x = data.x[:4]
    one, _ = convert(ann, data.x, method="max", fold_pools=fold)
    three, report = convert(ann, data.x, method="max", fold_pools=fold, max_spikes=3)
    spiking = [layer for layer in three.layers if layer.neuron is not None]
    assert all(layer.neuron.max_spikes == 3 for layer in spiking)
    assert three.provenance["max_spikes"] == 3
    assert report.thresholds[spiking[0].name] == pytest.approx(1 / 3)
    acts1, acts3 = rate_model(one, x), rate_model(three, x)
    for layer in spiking:
        np.testing.assert_allclose(acts3[layer.name], 3 * acts1[layer.name], rtol=1e-4, atol=1e-5)
    e3 = rate_errors(three, x, (20, 100, 400), k=3)
    e1 = rate_errors(one, x, (20,))
    assert e3[20] > e3[100] > e3[400]
    assert e3[400] < 0.01, e3
    assert e3[20] < e1[20], (e3, e1)


def input_residual(seed=1):
    """add(input, conv(input)) -> ReLU: an add whose one branch is the network input itself."""
    b = AnnBuilder((12, 12, 1), seed)
    branch = b.conv(1)
    b._add("add", inputs=("input", branch))
    b.relu()
    b.conv(4)
    b.relu()
    b.pool("avgpool2d")
    b.flatten()
    b.dense(5)
    return b.graph()


@pytest.mark.parametrize("method", ["max", "percentile", "spike-norm"])
@pytest.mark.parametrize("graph", ["residual", "input-residual"])
def test_multi_spike_snn_follows_the_ann(graph, method):
    """Biases, residual adds (also of the input itself) and every method keep the ANN's decisions."""
    rng = np.random.default_rng(11)
    ann = residual_cnn() if graph == "residual" else input_residual()
    x = rng.random((24,) + tuple(ann.input_shape)).astype(np.float32)
    agreement, _ = agreement_with_ann(ann, x, method, 200, max_spikes=4)
    assert agreement >= 0.85


def test_max_pools_refuse_multi_spike(data, tmp_path):
    with pytest.raises(ConversionError, match="max pool"):
        convert(small_cnn("maxpool2d"), data.x, max_spikes=2)
    model = to_onnx(small_cnn("maxpool2d"), tmp_path / "mp.onnx")
    out = tmp_path / "never.h5"
    res = CliRunner().invoke(main, ["convert", model, "-o", str(out), "--calibration", str(SAMPLE),
                                    "--calibration-samples", "8", "--max-spikes", "3", "--no-progress"])
    assert res.exit_code != 0 and "max pool" in res.output and "Traceback" not in res.output
    assert not out.exists()


@pytest.mark.parametrize("bad", ["0", "1025", "2.5"])
def test_cli_bad_max_spikes(tmp_path, bad):
    model = to_onnx(small_cnn(), tmp_path / "m.onnx")
    res = CliRunner().invoke(main, ["convert", model, "-o", str(tmp_path / "o.h5"), "--calibration", str(SAMPLE),
                                    "--max-spikes", bad, "--no-progress"])
    assert res.exit_code == 2 and "--max-spikes" in res.output
    assert not (tmp_path / "o.h5").exists()


def test_cli_convert_multi_spike_and_run(tmp_path):
    model = to_onnx(small_cnn(), tmp_path / "m.onnx")
    out = tmp_path / "k4.h5"
    res = CliRunner().invoke(main, ["convert", model, "-o", str(out), "--calibration", str(SAMPLE),
                                    "--calibration-samples", "16", "--max-spikes", "4", "--no-progress"])
    assert res.exit_code == 0, res.output
    net = load_network(out)
    assert {layer.neuron.max_spikes for layer in net.layers if layer.neuron is not None} == {4}
    assert net.provenance["max_spikes"] == 4
    res = CliRunner().invoke(main, ["run", "--net", str(out), "--data", str(SAMPLE), "--samples", "4",
                                    "--timesteps", "10", "--json"])
    assert res.exit_code == 0, res.output
