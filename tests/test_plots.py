"""Pictures: raster, membrane trace, activity image, energy bars (matplotlib optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.energy import energy_report, get_profile  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402
from eventsnn.plots import plot_activity, plot_energy, plot_membrane, plot_raster, short_name  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
PNG = b"\x89PNG\r\n\x1a\n"
STEPS = 30


def _is_png(path) -> bool:
    path = Path(path)
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


@pytest.fixture(scope="module")
def default():
    net = load_network(DATA / "default_net.h5")
    data = load_dataset(DATA / "fashion-mnist-sample.npz", limit=2)
    return net, data


@pytest.fixture
def sim(default):
    net, data = default
    s = Simulator(net, timesteps=STEPS, record_spikes=True)
    s.watch(s.layer_names[-1], int(data.y[0]))
    s.reset(data.x[0])
    s.run()
    return s


def _axes(ax):
    from matplotlib.axes import Axes
    return isinstance(ax, Axes)


def test_short_name():
    assert short_name("/features/features.0/Conv") == "features.0/Conv"
    assert short_name("/classifier/classifier.4/Gemm") == "classifier.4/Gemm"
    assert short_name("conv1") == "conv1"
    assert short_name("a/b/c") == "b/c"


def test_raster_writes_png(sim, tmp_path):
    ax = plot_raster(sim, path=tmp_path / "r.png")
    assert _axes(ax) and _is_png(tmp_path / "r.png")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(sim.layer_names) - 1  # direct encoding: the input has no spikes
    assert labels[0].startswith("features.0/Conv")
    ax = plot_raster(sim, layers=[sim.layer_names[-1]], path=tmp_path / "r1.png")
    assert _is_png(tmp_path / "r1.png") and len(ax.get_yticks()) == 1


def test_membrane_writes_png(sim, default, tmp_path):
    label = int(default[1].y[0])
    ax = plot_membrane(sim, sim.layer_names[-1], label, path=tmp_path / "m.png")
    assert _axes(ax) and _is_png(tmp_path / "m.png")
    t, pre, post = sim.history(sim.layer_names[-1], label)
    assert t.size == STEPS  # the output layer has a bias: updated every step
    line = ax.get_lines()[0]
    assert np.isclose(np.max(line.get_ydata()), pre.max())


def test_activity_writes_png(sim, tmp_path):
    conv = sim.layer_names[1]
    ax = plot_activity(sim, conv, path=tmp_path / "a.png")
    assert _axes(ax) and _is_png(tmp_path / "a.png")
    img = ax.get_images()[0].get_array()
    assert img.shape == (28, 28) and np.isclose(img.sum(), sim.spike_counts(conv).sum())
    # one step, one channel
    times, idx = sim.recorded_spikes(conv)
    t = float(times[len(times) // 2])
    ax = plot_activity(sim, conv, t=t, channel=3, path=tmp_path / "a3.png")
    img = ax.get_images()[0].get_array()
    want = np.sum((times == t) & (idx % 16 == 3))
    assert _is_png(tmp_path / "a3.png") and img.sum() == want
    # a dense layer is wrapped into a square grid
    ax = plot_activity(sim, sim.layer_names[-2])
    img = ax.get_images()[0].get_array()
    assert img.shape == (11, 12) and np.isclose(np.nansum(img), sim.spike_counts(sim.layer_names[-2]).sum())


def test_functions_draw_into_a_given_axes(sim, tmp_path):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    assert plot_raster(sim, ax=axes[0]) is axes[0]
    assert plot_membrane(sim, sim.layer_names[-1], int(sim.prediction()), ax=axes[1]) is axes[1]
    assert plot_activity(sim, sim.layer_names[2], ax=axes[2], path=tmp_path / "all.png") is axes[2]
    assert _is_png(tmp_path / "all.png")
    plt.close(fig)


def test_energy_writes_png(default, tmp_path):
    net, data = default
    result = run_dataset(net, data.x[:1], data.y[:1], timesteps=STEPS)
    ax = plot_energy(energy_report(result, get_profile(None)), path=tmp_path / "e.png")
    assert _axes(ax) and _is_png(tmp_path / "e.png")
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "features.0/Conv"


def test_unwatched_neuron_is_a_clear_error(sim):
    with pytest.raises(ValueError, match="not watched"):
        plot_membrane(sim, sim.layer_names[-1], 0 if sim.prediction() else 1)


def test_watched_but_not_run_is_a_clear_error(default):
    net, data = default
    s = Simulator(net, timesteps=STEPS)
    s.watch(s.layer_names[-1], 0)
    s.reset(data.x[0])
    with pytest.raises(ValueError, match="no recorded update"):
        plot_membrane(s, s.layer_names[-1], 0)


def test_no_recorded_spikes_is_a_clear_error(default, tmp_path):
    net, data = default
    s = Simulator(net, timesteps=STEPS)  # record_spikes=False
    s.reset(data.x[0])
    s.run()
    with pytest.raises(ValueError, match="record_spikes=True"):
        plot_raster(s)
    with pytest.raises(ValueError, match="record_spikes=True"):
        plot_activity(s, s.layer_names[1], t=3)
    plot_activity(s, s.layer_names[1], path=tmp_path / "ok.png")  # totals need no recording
    assert _is_png(tmp_path / "ok.png")
    r = Simulator(net, timesteps=STEPS, record_spikes=True)
    r.reset(data.x[0])  # not run: nothing recorded yet
    with pytest.raises(ValueError, match="no recorded spikes"):
        plot_raster(r, path=tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()


def test_bad_layer_and_channel(sim):
    with pytest.raises(ValueError, match="no spiking layer"):
        plot_activity(sim, "nope")
    with pytest.raises(ValueError, match="channel 16"):
        plot_activity(sim, sim.layer_names[1], channel=16)


def test_leaky_neuron_decays_between_updates(tmp_path):
    net = Network(input_shape=(2, 2, 1), encoding="poisson", layers=[
        Layer("conv", "conv2d", ("input",), weight=np.full((1, 1, 1, 2), 0.5, np.float32),
              neuron=Neuron.lif(threshold=1.0, tau=4.0)),
        Layer("flat", "flatten", ("conv",)),
        Layer("fc", "dense", ("flat",), weight=np.full((8, 3), 0.4, np.float32), neuron=Neuron())])
    s = Simulator(net, timesteps=40, record_spikes=True, seed=1)
    s.watch("conv", 0)
    s.reset(np.full((2, 2, 1), 0.5, np.float32))
    s.run()
    ax = plot_membrane(s, "conv", 0, path=tmp_path / "lif.png")
    assert _is_png(tmp_path / "lif.png")
    y = np.asarray(ax.get_lines()[0].get_ydata())
    assert np.any((np.diff(y) < 0) & (np.diff(y) > -0.5))  # decay steps, not only resets
    ax = plot_raster(s, path=tmp_path / "lr.png")
    assert _is_png(tmp_path / "lr.png")
    assert len(ax.get_yticks()) == 3  # poisson input spikes: input, conv, fc
