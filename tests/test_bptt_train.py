"""The BPTT training loop, optimisers, schedules, checkpoints and the train-bptt command."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from eventsnn.cli.main import main
from eventsnn.datasets import load_dataset
from eventsnn.engine.simulator import Simulator
from eventsnn.errors import EventsnnError
from eventsnn.io import load_network, save_network
from eventsnn.learn.arch import conv_net
from eventsnn.learn.bptt import Model
from eventsnn.learn.optim import Optimizer, learning_rate
from eventsnn.learn.train import TrainConfig, cross_entropy, split, train

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist-sample.npz")


def small_data(n=96):
    d = load_dataset(SAMPLE, limit=n)
    return d.x, d.y


def test_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    y = np.array([0, 3, 4, 1])
    loss, g = cross_entropy(logits, y)
    eps = 1e-6
    for i, j in [(0, 0), (1, 3), (2, 2)]:
        lp, lm = logits.copy(), logits.copy()
        lp[i, j] += eps
        lm[i, j] -= eps
        assert abs((cross_entropy(lp, y)[0] - cross_entropy(lm, y)[0]) / (2 * eps) - g[i, j]) < 1e-6
    assert loss > 0


def test_optimizers_follow_their_formulas():
    w0 = np.array([1.0, -2.0], np.float32)
    g = {"w": np.array([0.5, 0.25], np.float32)}
    p = {"w": w0.copy()}
    sgd = Optimizer("sgd", momentum=0.9, weight_decay=0.1)
    sgd.step(p, g, 0.1)
    sgd.step(p, g, 0.1)
    g1 = g["w"] + np.float32(0.1) * w0
    w1 = w0 - np.float32(0.1) * g1
    g2 = g["w"] + np.float32(0.1) * w1
    w2 = w1 - np.float32(0.1) * (np.float32(0.9) * g1 + g2)
    assert np.allclose(p["w"], w2, rtol=1e-6)
    p = {"w": w0.copy()}
    adam = Optimizer("adam")
    adam.step(p, g, 0.01)
    # first Adam step moves each weight by lr * sign(g) (bias-corrected m/sqrt(v) = g/|g|)
    assert np.allclose(p["w"], w0 - 0.01 * np.sign(g["w"]), rtol=1e-5)
    with pytest.raises(EventsnnError):
        Optimizer("rmsprop")


def test_schedules():
    assert learning_rate(0.1, 0, 10, "cosine") == pytest.approx(0.1)
    assert learning_rate(0.1, 5, 10, "cosine") == pytest.approx(0.05)
    assert learning_rate(0.1, 25, 30, "step", step_size=10, gamma=0.5) == pytest.approx(0.025)
    assert learning_rate(0.1, 7, 10, "constant") == 0.1
    with pytest.raises(EventsnnError):
        learning_rate(0.1, 0, 1, "linear")


def test_validation_split_is_seeded_and_disjoint():
    tr, va = split(100, 0.2, 3)
    assert len(va) == 20 and not set(tr) & set(va) and len(tr) + len(va) == 100
    assert np.array_equal(split(100, 0.2, 3)[1], va)
    assert not np.array_equal(split(100, 0.2, 4)[1], va)


def test_training_lowers_the_loss_and_resume_is_exact(tmp_path):
    x, y = small_data(120)
    net = conv_net(channels=(4,), seed=1)
    cfg = TrainConfig(timesteps=3, epochs=3, batch_size=16, lr=5e-3, seed=2)

    full = Model(net, add_bias=True)
    result = train(full, x, y, cfg, checkpoint=str(tmp_path / "a.ckpt.npz"))
    losses = [row["loss"] for row in result["history"]]
    assert losses[-1] < losses[0]
    assert 0 <= result["best_epoch"] < 3

    class Stop(Exception):
        pass

    def interrupt(epoch, total):
        if epoch == 2:
            raise Stop
        return None

    part = Model(net, add_bias=True)
    with pytest.raises(Stop):
        train(part, x, y, cfg, checkpoint=str(tmp_path / "b.ckpt.npz"), progress=interrupt)
    resumed = Model(net, add_bias=True)
    again = train(resumed, x, y, cfg, checkpoint=str(tmp_path / "b.ckpt.npz"), resume=True)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
        assert np.array_equal(result["best_params"][k], again["best_params"][k]), k
    def untimed(rows):
        return [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_s")} for row in rows]

    assert untimed(again["history"]) == untimed(result["history"])
    with pytest.raises(EventsnnError, match="changed: lr"):
        train(Model(net, add_bias=True), x, y, TrainConfig(timesteps=3, epochs=3, batch_size=16, lr=1e-3, seed=2),
              checkpoint=str(tmp_path / "b.ckpt.npz"), resume=True)


def test_cli_train_bptt_writes_a_net_the_engine_runs_identically(tmp_path):
    arch = tmp_path / "arch.h5"
    save_network(conv_net(channels=(4,), seed=0), arch)
    out = tmp_path / "trained.h5"
    runner = CliRunner()
    r = runner.invoke(main, ["train-bptt", "--net", str(arch), "--data", SAMPLE, "--samples", "64",
                             "--timesteps", "3", "--epochs", "1", "--batch-size", "16", "--check-samples", "4",
                             "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    import json
    summary = json.loads(r.output)
    assert summary["engine_identity"]["samples"] == 4
    assert summary["engine_identity"]["differing_spikes"] == 0
    assert summary["engine_identity"]["differing_membrane_outputs"] == 0
    assert os.path.exists(str(out) + ".ckpt.npz")
    trained = load_network(out)
    assert trained.provenance["bptt"]["best_epoch"] == 0
    sim = Simulator(trained, timesteps=3)
    x, _ = small_data(1)
    sim.reset(x[0])
    assert sim.run() == "done"
    r = runner.invoke(main, ["run", "--net", str(out), "--data", SAMPLE, "--samples", "4", "--timesteps", "3",
                             "--json", "--no-progress"])
    assert r.exit_code == 0, r.output


def test_cli_train_bptt_errors_write_nothing(tmp_path):
    arch = tmp_path / "arch.h5"
    save_network(conv_net(channels=(4,), classes=3, seed=0), arch)
    out = tmp_path / "trained.h5"
    runner = CliRunner()
    base = ["train-bptt", "--data", SAMPLE, "--samples", "32", "--timesteps", "2", "-o", str(out)]
    r = runner.invoke(main, base + ["--net", str(arch), "--init", str(arch)])
    assert r.exit_code != 0 and "exactly one of" in r.output
    r = runner.invoke(main, base + ["--net", str(arch)])  # labels 0..9, but 3 outputs
    assert r.exit_code != 0 and "labels must be in 0..2" in r.output
    arch10 = tmp_path / "arch10.h5"
    save_network(conv_net(channels=(4,), seed=0), arch10)
    r = runner.invoke(main, base + ["--net", str(arch10), "--resume"])
    assert r.exit_code != 0 and "no checkpoint" in r.output
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_hybrid_init_from_the_shipped_converted_net(tmp_path):
    """--init: spike-based fine-tuning of a converted network (its thresholds and weights
    are put on the grid); the result still runs identically in the engine."""
    converted = os.path.join(os.path.dirname(__file__), "..", "data", "default_net.h5")
    out = tmp_path / "tuned.h5"
    r = CliRunner().invoke(main, ["train-bptt", "--init", converted, "--data", SAMPLE, "--samples", "24",
                                  "--timesteps", "2", "--batch-size", "12", "--val-fraction", "0.2",
                                  "--check-samples", "2", "--lr", "1e-4", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    import json
    summary = json.loads(r.output)
    assert summary["engine_identity"] == {"samples": 2, "differing_spikes": 0, "samples_differing": []}
    tuned = load_network(out)
    assert tuned.provenance["bptt"]["hybrid_from"].endswith("default_net.h5")
    before = load_network(converted)
    assert not np.array_equal(tuned.layers[1].weight, before.layers[1].weight)
