"""The learnable leak (one per layer, as PLIF): its gradient, engine identity of the
trained leak, training, resume, weight decay and the --learn-leak option."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from bptt_nets import full_net, inputs, trainable_random_net
from eventsnn.cli.main import main
from eventsnn.datasets import load_dataset
from eventsnn.errors import NetworkError
from eventsnn.io import load_network, save_network
from eventsnn.learn.arch import conv_net
from eventsnn.learn.bptt import IF_LEAK_START, Model, check_engine_identity, leak_logit, leak_of_logit
from eventsnn.learn.optim import Optimizer
from eventsnn.learn.surrogates import DEFAULT_ALPHA
from eventsnn.learn.train import TrainConfig, train
from eventsnn.reference import simulate_discrete
from test_bptt_gradients import assert_matches_finite_differences

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist-sample.npz")


def test_logit_round_trip_and_start_values():
    for leak in (0.05, 0.5, 0.9, 0.999):
        assert abs(float(leak_of_logit(leak_logit(leak), np.float64)) - leak) < 1e-6
    with pytest.raises(NetworkError):
        leak_logit(1.0)
    rng = np.random.default_rng(0)
    model = Model(full_net(rng, "lif", leak=0.75), learn_leak=True)
    assert all(abs(float(model.leak(p)) - 0.75) < 1e-6 for p in model.pops)
    model = Model(full_net(rng, "if"), learn_leak=True)
    assert all(abs(float(model.leak(p)) - IF_LEAK_START) < 1e-6 for p in model.pops)
    model = Model(full_net(rng, "if"), learn_leak=True, leak_init=0.3)
    assert all(abs(float(model.leak(p)) - 0.3) < 1e-6 for p in model.pops)
    assert sorted(k for k in model.params if k.endswith("/leak_logit")) == sorted(
        p.name + "/leak_logit" for p in model.pops)


@pytest.mark.parametrize("surrogate,kind,reset,decoding", [
    ("fast_sigmoid", "if", "subtract", "spikes"), ("arctan", "lif", "zero", "membrane"),
    ("fast_sigmoid", "lif", "subtract", "membrane"), ("arctan", "if", "zero", "spikes")])
def test_leak_gradient_matches_finite_differences(surrogate, kind, reset, decoding):
    """On the smoothed network (spike = F(U - theta)) the backward pass's gradient with
    respect to every leak logit (and every weight) equals central differences."""
    rng = np.random.default_rng(21 + len(surrogate) + len(reset))
    net = full_net(rng, kind, reset, decoding)
    x = inputs(rng, net, 2)
    T = 4
    model = Model(net, learn_leak=True)
    # different leaks per layer, so the test sees each layer's own gradient
    for k, p in enumerate(model.pops):
        model.params[p.name + "/leak_logit"] = leak_logit(0.4 + 0.1 * k)
    smooth = (surrogate, DEFAULT_ALPHA[surrogate])
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    trace = model.forward(x, T, params, smooth=smooth)
    r = rng.standard_normal(trace.out.shape)
    grads, _ = model.backward(trace, r, surrogate, params=params, detach_reset=False)
    assert all(abs(grads[p.name + "/leak_logit"][0]) > 0 for p in model.pops)

    def loss(p):
        return float((model.forward(x, T, p, smooth=smooth).out * r).sum())

    assert_matches_finite_differences(grads, params, loss, rng, per_param=2)


@pytest.mark.parametrize("seed", range(4))
def test_learned_leaks_give_the_engines_spikes(seed):
    """Arbitrary learned leaks: the saved network (LIF layers with float32(leak)) fires,
    in the event engine and in the clock-driven spec, exactly the recorded spikes."""
    rng = np.random.default_rng(100 + seed)
    net = trainable_random_net(rng)
    model = Model(net, add_bias=True, learn_leak=True)
    for p in model.pops:
        model.params[p.name + "/leak_logit"] = leak_logit(rng.uniform(0.3, 0.99))
    T = 8
    x = inputs(rng, net, 3)
    trace = model.forward(x, T)
    saved = model.to_network()
    for p in model.pops:
        layer = saved.layer(p.name)
        assert layer.neuron.kind == "lif" and np.float32(layer.neuron.leak) == model.leak(p)
    assert sum(float(s.sum()) for s in trace.S.values()) > 10
    assert check_engine_identity(saved, trace, T)["differing_spikes"] == 0
    ref = simulate_discrete(saved, x[0], T, "direct")
    for k, p in enumerate(model.pops, start=1):
        assert np.array_equal(ref["raster"][k], trace.S[p.name][:, 0, :] > 0)


def test_weight_decay_leaves_leak_logits_alone():
    params = {"c/weight": np.ones(3, np.float32), "c/leak_logit": np.array([2.0], np.float32)}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    Optimizer("sgd", momentum=0.0, weight_decay=0.5).step(params, grads, lr=0.1)
    assert np.allclose(params["c/weight"], 0.95) and params["c/leak_logit"][0] == 2.0


def test_training_moves_the_leaks_and_resumes_exactly(tmp_path):
    d = load_dataset(SAMPLE, limit=96)
    net = conv_net(channels=(4,), seed=3)
    cfg = TrainConfig(timesteps=3, epochs=2, batch_size=16, lr=2e-2, seed=1, learn_leak=True, leak_init=0.8)
    full = Model(net, add_bias=True, learn_leak=True, leak_init=0.8)
    result = train(full, d.x, d.y, cfg, checkpoint=str(tmp_path / "a.ckpt.npz"))
    moved = [abs(float(full.leak(p)) - 0.8) for p in full.pops]
    assert max(moved) > 1e-3, moved

    class Stop(Exception):
        pass

    def interrupt(epoch, total):
        if epoch == 1:
            raise Stop
        return None

    with pytest.raises(Stop):
        train(Model(net, add_bias=True, learn_leak=True, leak_init=0.8), d.x, d.y, cfg,
              checkpoint=str(tmp_path / "b.ckpt.npz"), progress=interrupt)
    resumed = Model(net, add_bias=True, learn_leak=True, leak_init=0.8)
    again = train(resumed, d.x, d.y, cfg, checkpoint=str(tmp_path / "b.ckpt.npz"), resume=True)
    for k in full.params:
        assert np.array_equal(full.params[k], resumed.params[k]), k
        assert np.array_equal(result["best_params"][k], again["best_params"][k]), k


def test_cli_learn_leak_saves_lif_layers_the_engine_runs_identically(tmp_path):
    arch = tmp_path / "arch.h5"
    save_network(conv_net(channels=(4,), seed=0), arch)
    out = tmp_path / "trained.h5"
    r = CliRunner().invoke(main, ["train-bptt", "--net", str(arch), "--data", SAMPLE, "--samples", "48",
                                  "--timesteps", "3", "--batch-size", "16", "--check-samples", "4",
                                  "--learn-leak", "--leak-init", "0.7", "--lr", "0.02", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["engine_identity"]["samples"] == 4
    assert summary["engine_identity"]["differing_spikes"] == 0
    trained = load_network(out)
    leaks = [layer.neuron.leak for layer in trained.layers if layer.neuron is not None]
    assert leaks and all(layer_leak < 1.0 for layer_leak in leaks)
    assert any(abs(v - 0.7) > 1e-4 for v in leaks)
    assert trained.provenance["bptt"]["config"]["learn_leak"] is True
