"""Deterministic trace STDP inside the event engine, checked against closed forms and
against a plain-Python trace STDP written here, independently of the plug."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventsnn.engine.simulator import Simulator
from eventsnn.errors import NetworkError, SimulationError
from eventsnn.learn.stdp import Plasticity, STDPRule
from eventsnn.network import Layer, Network, Neuron

TAU_P, TAU_M = 4.0, 6.0


def dense_net(n_in, n_out, weight, threshold=1.0):
    return Network((n_in,), [Layer("fc", "dense", ("input",), weight=np.asarray(weight, np.float32),
                                   neuron=Neuron("if", threshold, "zero"))], encoding="poisson")


def hand_made_train(rng, n_in, steps, p=0.35):
    fired = rng.random((steps, n_in)) < p
    t, i = np.nonzero(fired)
    return t.astype(np.float64), i.astype(np.int64)


def plugged(net, steps, rule, layer="fc", **kw):
    sim = Simulator(net, timesteps=steps, record_spikes=True)
    plug = Plasticity.for_simulator(sim, {layer: rule}, **kw)
    sim.plug = plug
    return sim, plug


def test_every_step_change_is_the_pair_closed_form():
    """Additive rule, weights far from the bounds: the change of w_ij during step t is
    eta+ [post j spikes at t] sum_{pre s <= t} e^{-(t-s)/tau+} - eta- [pre i spikes at t]
    sum_{post s < t} e^{-(t-s)/tau-}."""
    rng = np.random.default_rng(1)
    n_in, n_out, steps = 6, 3, 30
    w = rng.uniform(0.3, 0.6, (n_in, n_out))
    rule = STDPRule("additive", eta_plus=0.01, eta_minus=0.007, tau_plus=TAU_P, tau_minus=TAU_M,
                    w_min=-50.0, w_max=50.0)
    sim, plug = plugged(dense_net(n_in, n_out, w), steps, rule)
    times, idx = hand_made_train(rng, n_in, steps)
    plug.begin_sample(sim.params)
    sim.reset(np.zeros(n_in), input_spikes=(times, idx))
    prev = sim.params.weights[:n_in * n_out].astype(np.float64).reshape(n_in, n_out).copy()
    checked = 0
    for t in range(steps):
        sim.run(until=t + 1)
        now = sim.params.weights[:n_in * n_out].astype(np.float64).reshape(n_in, n_out).copy()
        pt, pj = sim.recorded_spikes("fc")
        want = np.zeros((n_in, n_out))
        for j in pj[pt == t]:
            for i in range(n_in):
                want[i, j] += rule.eta_plus * sum(math.exp(-(t - s) / TAU_P) for s in times[idx == i] if s <= t)
        for i in idx[times == t]:
            for j in range(n_out):
                want[i, j] -= rule.eta_minus * sum(math.exp(-(t - s) / TAU_M) for s in pt[pj == j] if s < t)
        np.testing.assert_allclose(now - prev, want, atol=2e-6, rtol=0)
        checked += np.count_nonzero(want)
        prev = now
    assert checked > 20
    assert len(sim.recorded_spikes("fc")[0]) > 5  # the post neurons did fire


def python_trace_stdp(w, pre_t, pre_i, post_t, post_j, steps, rule):
    """Trace STDP written plainly: traces decayed every step, the engine's event order
    within a step (pre spikes delivered and depress, then post spikes potentiate), weights
    rounded to float32 after each change as the engine stores them."""
    n_in, n_out = w.shape
    w = w.astype(np.float32).copy()
    x, y = np.zeros(n_in), np.zeros(n_out)
    traj = []
    for t in range(steps):
        x *= math.exp(-1.0 / rule.tau_plus)
        y *= math.exp(-1.0 / rule.tau_minus)
        pres = pre_i[pre_t == t]
        posts = post_j[post_t == t]
        for i in pres:
            x[i] += 1.0
        for i in pres:
            for j in range(n_out):
                if y[j] > 0:
                    wd = float(w[i, j])
                    f = (wd - rule.w_min) if rule.kind == "multiplicative" else 1.0
                    w[i, j] = np.float32(min(max(wd - rule.eta_minus * y[j] * f, rule.w_min), rule.w_max))
        for j in posts:
            for i in range(n_in):
                if x[i] > 0 or rule.x_tar > 0:
                    wd = float(w[i, j])
                    d = x[i] - rule.x_tar
                    f = 1.0
                    if rule.kind == "multiplicative":
                        f = (rule.w_max - wd) if d >= 0 else (wd - rule.w_min)
                    w[i, j] = np.float32(min(max(wd + rule.eta_plus * d * f, rule.w_min), rule.w_max))
        for j in posts:
            y[j] += 1.0
        traj.append(w.copy())
    return traj


@pytest.mark.parametrize("kind,x_tar", [("multiplicative", 0.0), ("additive", 0.0), ("multiplicative", 0.7),
                                        ("additive", 0.4)])
def test_weight_trajectory_equals_plain_python_trace_stdp(kind, x_tar):
    rng = np.random.default_rng(7)
    n_in, n_out, steps = 8, 4, 25
    w0 = rng.uniform(0.2, 0.7, (n_in, n_out)).astype(np.float32)
    # Large rates so the multiplicative soft bounds and the additive clipping both act.
    rule = STDPRule(kind, eta_plus=0.08, eta_minus=0.06, tau_plus=TAU_P, tau_minus=TAU_M, w_min=0.0, w_max=1.0,
                    x_tar=x_tar)
    sim, plug = plugged(dense_net(n_in, n_out, w0, threshold=0.9), steps, rule)
    w = w0
    for sample in range(3):
        times, idx = hand_made_train(rng, n_in, steps, p=0.3)
        plug.begin_sample(sim.params)
        sim.reset(np.zeros(n_in), input_spikes=(times, idx))
        got = []
        for t in range(steps):
            sim.run(until=t + 1)
            got.append(sim.params.weights[:n_in * n_out].reshape(n_in, n_out).copy())
        pt, pj = sim.recorded_spikes("fc")
        assert pt.size > 3
        want = python_trace_stdp(w, times, idx, pt, pj, steps, rule)
        for t in range(steps):
            np.testing.assert_allclose(got[t], want[t], rtol=0, atol=2e-6, err_msg=f"sample {sample}, step {t}")
        w = got[-1]
    assert np.any(w == 1.0) or kind == "multiplicative"  # additive clipping was exercised
    assert not np.allclose(w, w0)


def conv_net(rng, cin, cout, stride, pad):
    w = rng.uniform(0.1, 0.5, (3, 3, cin, cout)).astype(np.float32)
    return Network((7, 7, cin), [Layer("conv", "conv2d", ("input",), weight=w, stride=(stride, stride),
                                       padding=(pad, pad), neuron=Neuron("if", 1.0, "zero"))],
                   encoding="poisson"), w


def one_conv_sample(sim, plug, x):
    """Run one sample with learning on; (learned conv weight, input spikes, conv spikes)."""
    plug.begin_sample(sim.params)
    sim.reset(x, sample_index=0)
    sim.run()
    learned = sim.to_network().layer("conv").weight.astype(np.float64)
    return learned, sim.recorded_spikes("input"), sim.recorded_spikes("conv")


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 0)])
def test_shared_kernel_update_is_the_sum_of_per_position_updates(stride, pad):
    rng = np.random.default_rng(3)
    cin, cout, steps = 2, 3, 12
    net, w0 = conv_net(rng, cin, cout, stride, pad)
    rule = STDPRule("additive", eta_plus=0.004, eta_minus=0.003, tau_plus=TAU_P, tau_minus=TAU_M,
                    w_min=-50.0, w_max=50.0)
    sim, plug = plugged(net, steps, rule, layer="conv")
    learned, (pre_t, pre_n), (post_t, post_n) = one_conv_sample(sim, plug, rng.uniform(0.0, 0.8, (7, 7, cin)))
    assert post_t.size > 10 and pre_t.size > 10
    ho = (7 + 2 * pad - 3) // stride + 1

    def pre_trace(y, x_, c, t, strict):
        n = (y * 7 + x_) * cin + c
        return sum(math.exp(-(t - s) / TAU_P) for s in pre_t[pre_n == n] if (s < t if strict else s <= t))

    def post_trace(oy, ox, co, t):
        n = (oy * ho + ox) * cout + co
        return sum(math.exp(-(t - s) / TAU_M) for s in post_t[post_n == n] if s < t)

    per_position = {}
    for oy in range(ho):
        for ox in range(ho):
            d = np.zeros_like(learned)
            for co in range(cout):
                n = (oy * ho + ox) * cout + co
                for t in post_t[post_n == n]:  # potentiation at this position's post spikes
                    for ky in range(3):
                        for kx in range(3):
                            y, x_ = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= y < 7 and 0 <= x_ < 7:
                                for c in range(cin):
                                    d[ky, kx, c, co] += rule.eta_plus * pre_trace(y, x_, c, t, False)
                for ky in range(3):  # depression at the pre spikes this position reads
                    for kx in range(3):
                        y, x_ = oy * stride - pad + ky, ox * stride - pad + kx
                        if 0 <= y < 7 and 0 <= x_ < 7:
                            for c in range(cin):
                                for t in pre_t[pre_n == (y * 7 + x_) * cin + c]:
                                    d[ky, kx, c, co] -= rule.eta_minus * post_trace(oy, ox, co, t)
            per_position[(oy, ox)] = d
    total = sum(per_position.values())
    assert sum(np.count_nonzero(d) > 0 for d in per_position.values()) > 4  # many positions contribute
    np.testing.assert_allclose(learned - w0, total, atol=2e-5, rtol=0)


def test_bad_configuration_is_refused():
    rng = np.random.default_rng(0)
    net = dense_net(3, 2, rng.uniform(0, 1, (3, 2)))
    sim = Simulator(net, timesteps=5)
    with pytest.raises(NetworkError, match="no conv2d or dense layer named 'nope'"):
        Plasticity.for_simulator(sim, {"nope": STDPRule()})
    with pytest.raises(SimulationError, match="unknown STDP rule"):
        STDPRule("hebbian")
    with pytest.raises(SimulationError, match="w_max"):
        STDPRule(w_min=1.0, w_max=0.5)
    with pytest.raises(SimulationError, match="order='time'"):
        Plasticity.for_simulator(Simulator(net, timesteps=5, order="layer"), {"fc": STDPRule()})


def test_plug_without_learning_rates_changes_nothing():
    """eta = 0: the plugged engine gives the unplugged one's spikes, potentials and weights."""
    rng = np.random.default_rng(5)
    net, _ = conv_net(rng, 2, 20, 1, 1)  # 20 maps: the wide spike pass
    x = rng.uniform(0, 1, (7, 7, 2))
    plain = Simulator(net, timesteps=15, record_spikes=True)
    plain.reset(x)
    plain.run()
    sim, plug = plugged(net, 15, STDPRule("additive", eta_plus=0.0, eta_minus=0.0), layer="conv")
    plug.begin_sample(sim.params)
    sim.reset(x)
    sim.run()
    np.testing.assert_array_equal(sim.state.spike_count, plain.state.spike_count)
    np.testing.assert_array_equal(sim.state.v, plain.state.v)
    np.testing.assert_array_equal(sim.params.weights, plain.params.weights)


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_once_per_map_update_is_the_pair_rule_of_the_first_spike_of_each_map(kind):
    """With ``once``, map co's kernel changes by the pair rule of one neuron only: the
    potentiation at its first spike (the earliest spike of that map) and the depression
    at the pre spikes after it (with the post trace of all its spikes); others: nothing."""
    rng = np.random.default_rng(5)
    cin, cout, steps, stride, pad = 2, 3, 12, 1, 1
    net, w0 = conv_net(rng, cin, cout, stride, pad)
    rule = STDPRule(kind, eta_plus=0.03, eta_minus=0.02, tau_plus=TAU_P, tau_minus=TAU_M,
                    w_min=-50.0 if kind == "additive" else 0.0, w_max=50.0 if kind == "additive" else 1.0)
    sim, plug = plugged(net, steps, rule, layer="conv", once=("conv",))
    learned, (pre_t, pre_n), (post_t, post_n) = one_conv_sample(sim, plug, rng.uniform(0.0, 0.8, (7, 7, cin)))
    assert post_t.size > 20 and pre_t.size > 10
    learners = np.flatnonzero(plug.learner[sim.plan.pop_slice(sim.layer_index("conv"))])
    assert sorted(learners % cout) == list(range(cout))  # one learner per map
    want = w0.astype(np.float64).copy()
    for n in learners:
        co, pos = n % cout, n // cout
        oy, ox = divmod(pos, 7)
        mine = post_t[post_n == n]
        t0 = mine.min()
        assert t0 == post_t[post_n % cout == co].min()  # the map's earliest spike
        assert np.count_nonzero(post_n % cout == co) > 1  # the map fired again: those spikes must not learn
        # Events in time order: pre spikes deliver (depress) before post spikes of the same step potentiate.
        field = [(ky, kx, c, (oy * stride - pad + ky) * 7 + (ox * stride - pad + kx))
                 for ky in range(3) for kx in range(3) for c in range(cin)
                 if 0 <= oy * stride - pad + ky < 7 and 0 <= ox * stride - pad + kx < 7]
        for t in range(steps):
            for ky, kx, c, p in field:
                src = p * cin + c
                if t in pre_t[pre_n == src]:
                    y = sum(math.exp(-(t - s) / TAU_M) for s in mine if s < t)
                    if y:
                        w = want[ky, kx, c, co]
                        f = 1.0 if kind == "additive" else w - rule.w_min
                        want[ky, kx, c, co] = np.float32(np.clip(w - rule.eta_minus * y * f, rule.w_min, rule.w_max))
            if t == t0:
                for ky, kx, c, p in field:
                    src = p * cin + c
                    xt = sum(math.exp(-(t - s) / TAU_P) for s in pre_t[pre_n == src] if s <= t)
                    if xt:
                        w = want[ky, kx, c, co]
                        f = 1.0 if kind == "additive" else rule.w_max - w
                        want[ky, kx, c, co] = np.float32(np.clip(w + rule.eta_plus * xt * f, rule.w_min, rule.w_max))
    np.testing.assert_allclose(learned, want, atol=2e-6, rtol=0)
    assert not np.allclose(learned, w0)
    plug.begin_sample(sim.params)
    assert not plug.learner.any() and not plug.taken.any()


def test_once_per_map_needs_a_learning_layer():
    rng = np.random.default_rng(0)
    sim = Simulator(dense_net(3, 2, rng.uniform(0, 1, (3, 2))), timesteps=5)
    with pytest.raises(SimulationError, match="once-per-map learning on 'input'"):
        Plasticity.for_simulator(sim, {"fc": STDPRule()}, once=("input",))
