"""Layer-by-layer STDP training: exact resume, frozen lower layers, the record in the file,
the readout, and the two CLI commands (including their refusals)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from eventsnn.cli.main import main
from eventsnn.errors import DataError, NetworkError, SimulationError
from eventsnn.io import load_network, save_network
from eventsnn.learn.readout import RidgeReadout, labels_per_class, pool_counts
from eventsnn.learn.stdp import STDPRule
from eventsnn.learn.stdp_train import TrainSettings, read_checkpoint, train_stdp
from eventsnn.network import Layer, Network, Neuron


def two_conv_net(seed=0):
    rng = np.random.default_rng(seed)
    return Network((10, 10, 1), [
        Layer("conv1", "conv2d", ("input",), weight=rng.uniform(0, 1, (3, 3, 1, 4)).astype(np.float32),
              neuron=Neuron("if", 2.0, "zero")),
        Layer("pool1", "maxpool2d", ("conv1",), kernel=(2, 2), stride=(2, 2)),
        Layer("conv2", "conv2d", ("pool1",), weight=rng.uniform(0, 1, (2, 2, 4, 5)).astype(np.float32),
              neuron=Neuron("if", 1.5, "zero")),
    ], encoding="poisson")


def images(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 10, 10, 1)).astype(np.float32)


def settings(kind="multiplicative", samples=6, layers=("conv1", "conv2")):
    return TrainSettings(layers=list(layers), rule=STDPRule(kind, eta_plus=0.02, eta_minus=0.015), samples=samples,
                         timesteps=8, kwta=(1, 1), theta_plus=0.1, seed=3)


@pytest.mark.parametrize("kind", ["multiplicative", "stochastic"])
def test_resume_continues_exactly(kind, tmp_path):
    net, x = two_conv_net(), images(5)
    s = settings(kind)
    if kind == "stochastic":
        s.init = "random"
    straight = train_stdp(net, x, s)
    # Stop after 4 samples, write, read back, resume; then again inside the second layer.
    part = train_stdp(net, x, s, stop_after=4)
    save_network(part, tmp_path / "a.h5")
    part = train_stdp(load_network(tmp_path / "a.h5"), x, resume=True, stop_after=5)
    _, state, finished = read_checkpoint(part)
    assert (state.layer, state.sample, finished) == (1, 3, False)
    save_network(part, tmp_path / "b.h5")
    resumed = train_stdp(load_network(tmp_path / "b.h5"), x, resume=True)
    for name in ("conv1", "conv2"):
        np.testing.assert_array_equal(resumed.layer(name).weight, straight.layer(name).weight)
        np.testing.assert_array_equal(np.asarray(resumed.layer(name).neuron.threshold),
                                      np.asarray(straight.layer(name).neuron.threshold))
    assert not np.array_equal(straight.layer("conv1").weight, net.layer("conv1").weight)
    assert read_checkpoint(resumed)[2] and read_checkpoint(straight)[2]


def test_lower_layers_stay_frozen_and_the_record_says_what_ran(tmp_path):
    net, x = two_conv_net(), images(4)
    only_first = train_stdp(net, x, settings(layers=["conv1"]))
    np.testing.assert_array_equal(only_first.layer("conv2").weight, net.layer("conv2").weight)
    both = train_stdp(net, x, settings())
    # conv1 learned the same in both runs (conv2 does not take part while conv1 learns) ...
    np.testing.assert_array_equal(both.layer("conv1").weight, only_first.layer("conv1").weight)
    # ... and stays as it was while conv2 learns.
    assert not np.array_equal(both.layer("conv2").weight, net.layer("conv2").weight)
    save_network(both, tmp_path / "l.h5")
    rec = load_network(tmp_path / "l.h5").provenance["stdp"]
    assert rec["finished"] and rec["settings"]["rule"]["eta_plus"] == 0.02
    assert rec["settings"]["rule"]["kind"] == "multiplicative" and rec["settings"]["kwta"] == [1, 1]
    assert len(rec["progress"]["theta"]["conv1"]) == 4  # adaptive thresholds, one per map
    thr = np.asarray(both.layer("conv1").neuron.threshold)
    np.testing.assert_allclose(thr, 2.0 + np.array(rec["progress"]["theta"]["conv1"]), rtol=1e-6)


def test_training_refuses_bad_input():
    net, x = two_conv_net(), images(3)
    with pytest.raises(NetworkError, match="pool1"):
        train_stdp(net, x, settings(layers=["pool1"]))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        train_stdp(net, x * 3, settings())
    with pytest.raises(SimulationError, match="samples"):
        settings(samples=0)
    with pytest.raises(NetworkError, match="no STDP training record"):
        train_stdp(net, x, resume=True)
    with pytest.raises(SimulationError, match="differ"):
        part = train_stdp(net, x, settings(), stop_after=1)
        train_stdp(part, x, settings(samples=7), resume=True)


def test_ridge_leave_one_out_matches_refitting():
    """The closed-form LOO error equals refitting without each sample (small problem)."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 6))
    y = (f[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(np.int64) + 2 * (f[:, 1] > 0.8)
    r = RidgeReadout(lambdas=[3.0]).fit(f, y, n_classes=4)
    with pytest.raises(DataError, match="labels"):
        RidgeReadout().fit(f, y, n_classes=3)
    # Brute force with the same standardisation (scales from all samples, as documented),
    # the intercept refitted without the left-out sample.
    z = (f - r.mu) / r.sd
    t = np.eye(4)[y]
    tc = t - r.t_mean
    wrong = 0
    for i in range(40):
        keep = np.arange(40) != i
        zm, tm = z[keep].mean(axis=0), t[keep].mean(axis=0)
        w = np.linalg.solve((z[keep] - zm).T @ (z[keep] - zm) + 3.0 * np.eye(6), (z[keep] - zm).T @ (t[keep] - tm))
        wrong += int(np.argmax((z[i] - zm) @ w + tm) != y[i])
    assert r.loo_error == pytest.approx(wrong / 40)
    w_full = np.linalg.solve(z.T @ z + 3.0 * np.eye(6), z.T @ tc)
    np.testing.assert_allclose(r.w, w_full, rtol=1e-8, atol=1e-10)
    assert r.accuracy(f, y) > 0.7


@pytest.mark.parametrize("n,f", [(40, 6), (12, 30)])
def test_ridge_leave_one_out_predictions_match_refitting_with_fewer_samples_than_features(n, f):
    """The LOO predictions of both forms (primal N > F, Gram N <= F) equal refits without
    each sample (intercept refitted too), down to a tiny lambda where N <= F nearly
    interpolates (there a fixed centring leaks the left-out label and the primal 1 - h cancels)."""
    from eventsnn.learn.readout import _loo_path

    rng = np.random.default_rng(4)
    z = rng.normal(size=(n, f))
    tc = rng.normal(size=(n, 3))
    lambdas = [1e-6, 0.5, 40.0]
    z -= z.mean(axis=0)
    tc -= tc.mean(axis=0)
    for lam, loo, weights in _loo_path(z, tc, lambdas):
        want = np.empty_like(tc)
        for i in range(n):  # refit without sample i, intercept (the means) included
            keep = np.arange(n) != i
            zm, tm = z[keep].mean(axis=0), tc[keep].mean(axis=0)
            w = np.linalg.solve((z[keep] - zm).T @ (z[keep] - zm) + lam * np.eye(f), (z[keep] - zm).T @ (tc[keep] - tm))
            want[i] = (z[i] - zm) @ w + tm
        np.testing.assert_allclose(loo, want, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(want).max()))
        np.testing.assert_allclose(weights(), np.linalg.solve(z.T @ z + lam * np.eye(f), z.T @ tc),
                                   rtol=1e-6, atol=1e-8)


def test_pooling_and_label_picks():
    c = np.arange(5 * 4 * 2, dtype=float).reshape(5, 4, 2)
    p = pool_counts(c, 2).reshape(2, 2, 2)
    np.testing.assert_array_equal(p[0, 0], c[:2, :2].sum(axis=(0, 1)))
    np.testing.assert_array_equal(p[1, 1], c[2:, 2:].sum(axis=(0, 1)))
    assert pool_counts(c, 2).sum() == c.sum()
    y = np.repeat(np.arange(3), 10)
    pick = labels_per_class(y, 4, seed=1)
    assert np.bincount(y[pick]).tolist() == [4, 4, 4]
    assert np.array_equal(pick, labels_per_class(y, 4, seed=1))


def write_npz(path, x, y):
    np.savez(path, x=x, y=y)


def test_cli_train_resume_and_evaluate(tmp_path):
    net = two_conv_net()
    save_network(net, tmp_path / "arch.h5")
    x = images(6)
    y = np.arange(6) % 2
    write_npz(tmp_path / "d.npz", x, y)
    runner = CliRunner()
    out = tmp_path / "learned.h5"
    args = ["train-stdp", "--net", str(tmp_path / "arch.h5"), "--data", str(tmp_path / "d.npz"), "--layers",
            "conv1,conv2", "--rule", "stochastic", "--samples", "5", "--timesteps", "6", "--init", "random",
            "--checkpoint-every", "2", "-o", str(out), "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    info = json.loads(res.output.strip().splitlines()[-1])
    assert info["rule"]["kind"] == "stochastic" and info["layers"] == ["conv1", "conv2"]
    learned = load_network(out)
    assert set(np.unique(learned.layer("conv1").weight)) <= {0.0, 1.0}
    assert not (tmp_path / "learned.h5.ckpt.h5").exists()
    # Resume from a checkpoint written by the library gives the same file content.
    s = TrainSettings(**{**read_checkpoint(learned)[0].__dict__})
    part = train_stdp(net, x, s, stop_after=3)
    save_network(part, tmp_path / "part.h5")
    res = runner.invoke(main, ["train-stdp", "--resume", str(tmp_path / "part.h5"), "--data",
                               str(tmp_path / "d.npz"), "-o", str(tmp_path / "again.h5"), "--no-progress"])
    assert res.exit_code == 0, res.output
    again = load_network(tmp_path / "again.h5")
    for name in ("conv1", "conv2"):
        np.testing.assert_array_equal(again.layer(name).weight, learned.layer(name).weight)
    res = runner.invoke(main, ["evaluate-features", "--net", str(out), "--train", str(tmp_path / "d.npz"),
                               "--test", str(tmp_path / "d.npz"), "--layers", "conv1", "--timesteps", "6",
                               "--grid", "2", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["features"] == 4 * 2 * 2 and 0.0 <= report["accuracy"] <= 1.0


def test_once_per_map_training_resumes_and_the_cli_records_it(tmp_path):
    net, x = two_conv_net(), images(5)
    s = settings(layers=["conv1"], samples=5)
    s.once = True
    s.rule = STDPRule("multiplicative", eta_plus=0.05, eta_minus=0.0, x_tar=0.5)
    straight = train_stdp(net, x, s)
    every = train_stdp(net, x, TrainSettings(**{**s.__dict__, "once": False}))
    assert not np.array_equal(straight.layer("conv1").weight, every.layer("conv1").weight)
    part = train_stdp(net, x, s, stop_after=2)
    save_network(part, tmp_path / "p.h5")
    resumed = train_stdp(load_network(tmp_path / "p.h5"), x, resume=True)
    np.testing.assert_array_equal(resumed.layer("conv1").weight, straight.layer("conv1").weight)
    save_network(net, tmp_path / "arch.h5")
    write_npz(tmp_path / "d.npz", x, np.arange(5) % 2)
    out = tmp_path / "o.h5"
    res = CliRunner().invoke(main, ["train-stdp", "--net", str(tmp_path / "arch.h5"), "--data", str(tmp_path / "d.npz"),
                                    "--layers", "conv1", "--samples", "5", "--timesteps", "8", "--kwta", "1,1",
                                    "--theta-plus", "0.1", "--seed", "3", "--eta-plus", "0.05", "--eta-minus", "0",
                                    "--x-tar", "0.5", "--once-per-map", "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = load_network(out).provenance["stdp"]["settings"]
    assert rec["once"] is True and rec["rule"]["x_tar"] == 0.5
    np.testing.assert_array_equal(load_network(out).layer("conv1").weight, straight.layer("conv1").weight)


def test_cli_refusals_write_nothing(tmp_path):
    save_network(two_conv_net(), tmp_path / "arch.h5")
    write_npz(tmp_path / "d.npz", images(3), np.zeros(3, np.int64))
    runner = CliRunner()
    base = ["train-stdp", "--data", str(tmp_path / "d.npz"), "--samples", "2", "--timesteps", "4", "--no-progress"]
    cases = [
        (["--net", str(tmp_path / "arch.h5"), "--layers", "pool1", "-o", str(tmp_path / "o1.h5")], "pool1"),
        (["--net", str(tmp_path / "arch.h5"), "--layers", "conv1", "--kwta", "0,1", "-o", str(tmp_path / "o2.h5")],
         "K >= 1"),
        (["--net", str(tmp_path / "arch.h5"), "--layers", "conv1", "--w-min", "2", "-o", str(tmp_path / "o3.h5")],
         "w_max"),
        (["--layers", "conv1", "-o", str(tmp_path / "o4.h5")], "exactly one of --net"),
        (["--resume", str(tmp_path / "arch.h5"), "-o", str(tmp_path / "o5.h5")], "no STDP training record"),
        (["--net", str(tmp_path / "arch.h5"), "--layers", "conv1", "-o", str(tmp_path / "nodir" / "o.h5")],
         "does not exist"),
    ]
    for extra, message in cases:
        res = runner.invoke(main, base + extra)
        assert res.exit_code != 0, extra
        assert message in res.output, (extra, res.output)
        assert "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.h5", "d.npz"]


def test_kernel_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from eventsnn.learn.figures import kernel_tiles, plot_kernels

    w = np.zeros((3, 3, 2, 5), np.float32)
    w[1, 1, :, 2] = 1.0
    tiles = kernel_tiles(w)
    assert tiles.shape == (5, 3, 3) and tiles[2, 1, 1] == 1.0 and tiles[2].sum() == 1.0
    plot_kernels(w, path=tmp_path / "k.png")
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dog_on_off_channels():
    from eventsnn.learn.preprocess import dog_on_off

    x = np.zeros((2, 15, 15, 1), np.float32)
    x[0, 5:10, 5:10, 0] = 1.0  # a bright square: on inside its edges, off just outside
    d = dog_on_off(x)
    assert d.shape == (2, 15, 15, 2) and d.dtype == np.float32
    assert d[0].max() == 1.0 and d.min() >= 0.0
    assert np.all(d[1] == 0.0)  # a blank image stays blank
    assert d[0, 5, 5, 0] > d[0, 5, 5, 1]  # inside corner: on
    assert d[0, 4, 7, 1] > d[0, 4, 7, 0]  # just outside the edge: off
    assert np.all(np.minimum(d[..., 0], d[..., 1]) == 0.0)  # never both
    with pytest.raises(DataError):
        dog_on_off(np.zeros((1, 5, 5, 2)))


def test_weight_normalisation_per_map():
    net, x = two_conv_net(), images(3)
    s = settings(layers=["conv1"], samples=3)
    s.normalize = 4.0
    out = train_stdp(net, x, s)
    sums = out.layer("conv1").weight.astype(np.float64).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(sums, 4.0, rtol=1e-5)
    assert read_checkpoint(out)[0].normalize == 4.0


def test_continuous_time_dense_training_resumes_exactly(tmp_path):
    """The Diehl & Cook shape in miniature: dense layer, continuous time, hard WTA, normalisation."""
    rng = np.random.default_rng(4)
    net = Network((12,), [Layer("exc", "dense", ("input",), weight=np.zeros((12, 6), np.float32),
                                neuron=Neuron("lif", 2.0, "zero", float(np.exp(-1 / 10))))], encoding="poisson")
    x = rng.uniform(0, 1, (5, 1, 1, 12)).astype(np.float32)
    s = TrainSettings(layers=["exc"], rule=STDPRule("multiplicative", eta_plus=0.05, eta_minus=0.01), samples=7,
                      timesteps=40, kwta=(1, 0), theta_plus=0.1, tau_theta=1e4, seed=2, poisson_rate=0.5,
                      init="random", normalize=3.0, mode="continuous")
    straight = train_stdp(net, x, s)
    part = train_stdp(net, x, s, stop_after=3)
    save_network(part, tmp_path / "c.h5")
    resumed = train_stdp(load_network(tmp_path / "c.h5"), x, resume=True)
    np.testing.assert_array_equal(resumed.layer("exc").weight, straight.layer("exc").weight)
    np.testing.assert_allclose(straight.layer("exc").weight.sum(axis=0), 3.0, rtol=1e-5)
    assert np.any(np.asarray(straight.layer("exc").neuron.threshold) > 2.0)  # thresholds adapted
