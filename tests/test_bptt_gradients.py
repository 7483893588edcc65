"""Gradients of the BPTT trainer, for every layer type, neuron type, reset and surrogate:

1. against the same network written out here in plain numpy, with dense connection
   matrices from eventsnn.reference.build (no im2col, no numba), same surrogate;
2. against central finite differences on the smoothed network (spike = F(U - theta),
   F' = the surrogate), where the surrogate gradient is the true gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

from bptt_nets import full_net, inputs
from eventsnn.learn.bptt import Model
from eventsnn.learn.surrogates import DEFAULT_ALPHA, SURROGATES
from eventsnn.reference import build, conv_matrix

CASES = [(s, k, r) for s in SURROGATES for k in ("if", "lif") for r in ("subtract", "zero")]


def sigma_prime(name, x, theta, alpha):
    if name == "lee":
        return np.ones_like(x) / theta
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + alpha * np.abs(x)) ** 2
    return 0.5 * alpha / (1.0 + (0.5 * np.pi * alpha * x) ** 2)


def conn_names(net):
    """Layer names of build(net)'s connections, population by population (None: identity)."""
    names = []
    for layer in net.layers:
        if not layer.spiking:
            continue
        if layer.kind != "add":
            names.append([layer.name])
        else:
            names.append([n if n != "input" and not net.layer(n).spiking else None for n in layer.inputs])
    return names


def numpy_bptt(net, x, T, d_out, surrogate):
    """Forward (binary spikes, float64: exact on the 2^-8 grid) and BPTT with detached reset,
    written over dense matrices. Returns grads of dense matrices per layer name, bias grads, spikes."""
    alpha = DEFAULT_ALPHA[surrogate]
    pops = build(net)
    names = conn_names(net)
    B = x.shape[0]
    xf = x.reshape(B, -1).astype(np.float64)
    U = [None] + [np.zeros((T, B, p.n)) for p in pops[1:]]
    S = [np.zeros((T, B, pops[0].n))] + [np.zeros((T, B, p.n)) for p in pops[1:]]
    params = []
    for k, p in enumerate(pops[1:], start=1):
        nr = p.layer.neuron
        thr = np.broadcast_to(np.asarray(nr.threshold, np.float64), p.shape).reshape(-1)
        spiking = not (net.decoding == "membrane" and p.layer is net.layers[-1])
        params.append((thr, float(nr.leak), nr.reset == "subtract", spiking,
                       nr.v_init * thr if spiking else np.zeros(p.n)))
        const = np.tile(p.bias.astype(np.float64), (B, 1))
        for c in p.conns:
            if c.src == 0:
                const = const + xf @ c.matrix
        v = np.tile(params[-1][4], (B, 1))
        for t in range(T):
            cur = sum(S[c.src][t] @ c.matrix for c in p.conns if c.src != 0) + const
            u = v * params[-1][1] + cur
            U[k][t] = u
            if spiking:
                s = (u >= thr).astype(np.float64)
                S[k][t] = s
                v = u - s * thr if params[-1][2] else np.where(s > 0, 0.0, u)
            else:
                v = u
    out = v if not params[-1][3] else S[-1].sum(axis=0)
    gmat = {}
    gbias = {}
    dS = [np.zeros_like(s) for s in S]
    carry = [np.zeros((B, p.n)) for p in pops]
    for t in range(T - 1, -1, -1):
        for k in range(len(pops) - 1, 0, -1):
            p = pops[k]
            thr, leak, subtract, spiking, _ = params[k - 1]
            if k == len(pops) - 1:
                if spiking:
                    dS[k][t] += d_out
                elif t == T - 1:
                    carry[k] = carry[k] + d_out
            if spiking:
                sg = sigma_prime(surrogate, U[k][t] - thr, thr, alpha)
                m = 1.0 if subtract else 1.0 - S[k][t]
                du = dS[k][t] * sg + carry[k] * m
            else:
                du = carry[k]
            carry[k] = leak * du
            for c, name in zip(p.conns, names[k - 1]):
                if name is None:
                    dS[c.src][t] += du @ c.matrix.T
                    continue
                pre = xf if c.src == 0 else S[c.src][t]
                gmat[name] = gmat.get(name, 0) + pre.T @ du
                if net.layer(name).bias is not None:
                    gbias[name] = gbias.get(name, 0) + du.reshape(B, -1, net.layer(name).bias.shape[0]).sum((0, 1))
                if c.src != 0:
                    dS[c.src][t] += du @ c.matrix.T
    return gmat, gbias, S[1:], out


def conv_grad(net, name, gmat):
    """dL/dW of a conv layer from dL/dM of its dense matrix M(W)."""
    layer = net.layer(name)
    shape = net.shapes()[layer.inputs[0]]
    g = np.zeros(layer.weight.shape)
    for e in np.ndindex(*layer.weight.shape):
        unit = np.zeros(layer.weight.shape)
        unit[e] = 1.0
        m, _ = conv_matrix(shape, unit, layer.stride, layer.padding)
        g[e] = (gmat * m).sum()
    return g


@pytest.mark.parametrize("surrogate,kind,reset", CASES)
def test_backward_matches_plain_numpy(surrogate, kind, reset):
    rng = np.random.default_rng(abs(hash((surrogate, kind, reset))) % 1000)
    decoding = "membrane" if reset == "zero" else "spikes"
    net = full_net(rng, kind, reset, decoding)
    x = inputs(rng, net, 3)
    T = 6
    model = Model(net)
    trace = model.forward(x, T)
    d_out = rng.standard_normal(trace.out.shape)
    gmat, gbias, spikes, out = numpy_bptt(net, x, T, d_out, surrogate)
    for p, s in zip(model.pops, spikes):
        assert np.array_equal(trace.S[p.name], s)
    assert np.allclose(trace.out, out)
    grads, stats = model.backward(trace, d_out, surrogate)
    assert sum(float(s.sum()) for s in spikes) > 20  # the test has spikes to backpropagate through
    for layer in net.layers:
        if layer.kind not in ("conv2d", "dense"):
            continue
        want = gmat[layer.name] if layer.kind == "dense" else conv_grad(net, layer.name, gmat[layer.name])
        got = grads[layer.name + "/weight"]
        scale = np.abs(want).max() + 1e-12
        assert np.abs(got - want).max() <= 1e-5 * scale, layer.name
        if layer.bias is not None:
            assert np.allclose(grads[layer.name + "/bias"], gbias[layer.name], rtol=1e-5,
                               atol=1e-5 * np.abs(gbias[layer.name]).max())
    assert 0 < stats["surrogate_nonzero"] <= 1


def assert_matches_finite_differences(grads, params, loss, rng, per_param=1, eps=1e-6):
    """Central differences of ``loss(params)`` at ``per_param`` random entries of every
    parameter equal the backward pass's ``grads`` (to 1e-4 relative)."""
    for name, value in params.items():
        for _ in range(per_param):
            idx = tuple(int(rng.integers(0, d)) for d in value.shape)
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd = (loss(plus) - loss(minus)) / (2 * eps)
            assert abs(grads[name][idx] - fd) <= 1e-6 + 1e-4 * abs(fd), (name, idx, grads[name][idx], fd)


@pytest.mark.parametrize("surrogate,kind,reset", CASES)
def test_backward_matches_finite_differences_on_smoothed_net(surrogate, kind, reset):
    rng = np.random.default_rng(3 + len(surrogate) + len(reset) + len(kind))
    decoding = "membrane" if kind == "lif" else "spikes"
    net = full_net(rng, kind, reset, decoding)
    x = inputs(rng, net, 2)
    # The straight-through F(x) = x / theta with a reset to zero makes V = U (1 - s) a
    # polynomial of degree 2^T in the input: keep T short there, or the loss overflows the FD.
    T = 2 if (surrogate, reset) == ("lee", "zero") else 4
    model = Model(net)
    alpha = DEFAULT_ALPHA[surrogate]
    smooth = (surrogate, alpha)
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    trace = model.forward(x, T, params, smooth=smooth)
    r = rng.standard_normal(trace.out.shape)
    grads, _ = model.backward(trace, r, surrogate, params=params, detach_reset=False)

    def loss(p):
        return float((model.forward(x, T, p, smooth=smooth).out * r).sum())

    assert_matches_finite_differences(grads, params, loss, rng, per_param=3)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan"])
def test_dropout_gradient_matches_finite_differences(surrogate):
    """Dropout masks (one per sample for all steps) on every hidden population."""
    rng = np.random.default_rng(11)
    net = full_net(rng, "lif", "subtract", "spikes")
    x = inputs(rng, net, 2)
    T = 4
    model = Model(net)
    masks = {p.name: (rng.random((2, p.n)) < 0.8) / 0.8 for p in model.pops[:-1]}
    smooth = (surrogate, DEFAULT_ALPHA[surrogate])
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    trace = model.forward(x, T, params, smooth=smooth, masks=masks)
    r = rng.standard_normal(trace.out.shape)
    grads, _ = model.backward(trace, r, surrogate, params=params, detach_reset=False)
    plain = model.forward(x, T, params, smooth=smooth)
    assert not np.allclose(plain.out, trace.out)  # the masks change the network
    assert_matches_finite_differences(
        grads, params, lambda p: float((model.forward(x, T, p, smooth=smooth, masks=masks).out * r).sum()), rng)


def test_rate_coded_input_gradient_matches_finite_differences():
    from eventsnn.learn.bptt import rate_code

    rng = np.random.default_rng(12)
    net = full_net(rng, "lif", "zero", "membrane")
    net.encoding = "poisson"
    x = inputs(rng, net, 2)
    T = 4
    model = Model(net)
    spikes = rate_code(x, T, rng)
    smooth = ("arctan", 2.0)
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    trace = model.forward(x, T, params, smooth=smooth, input_spikes=spikes)
    r = rng.standard_normal(trace.out.shape)
    grads, _ = model.backward(trace, r, "arctan", params=params, detach_reset=False)
    assert_matches_finite_differences(
        grads, params, lambda p: float((model.forward(x, T, p, smooth=smooth, input_spikes=spikes).out * r).sum()),
        rng)
