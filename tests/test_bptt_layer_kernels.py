"""The BPTT trainer's numba layer kernels against plain numpy versions written here
(the reference), on random inputs, and the vectorised neuron backward against a
per-element loop."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from eventsnn.learn import _kernels, _layer_kernels
from eventsnn.learn.surrogates import DEFAULT_ALPHA, SURROGATES


def _im2col(x, kh, kw, sy, sx, py, px, oh, ow):
    x = np.pad(x, ((0, 0), (py, py), (px, px), (0, 0)))
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sy, ::sx][:, :oh, :ow]
    n, c = x.shape[0], x.shape[3]
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c)


def _col2im_numpy(dcols, shape, kh, kw, sy, sx, py, px, oh, ow):
    n, h, w, c = shape
    d = dcols.reshape(n, oh, ow, kh, kw, c)
    out = np.zeros((n, h + 2 * py, w + 2 * px, c), dcols.dtype)
    for ky in range(kh):
        for kx in range(kw):
            out[:, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx] += d[:, :, :, ky, kx]
    return out[:, py:py + h, px:px + w]


@pytest.mark.parametrize("seed", range(6))
def test_col2im_add_is_the_transpose_of_im2col(seed):
    rng = np.random.default_rng(seed)
    n, h, w, c = rng.integers(1, 4), rng.integers(3, 9), rng.integers(3, 9), rng.integers(1, 5)
    kh, kw = rng.integers(1, 4, size=2)
    sy, sx = rng.integers(1, 3, size=2)
    py, px = rng.integers(0, 2, size=2)
    oh, ow = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    dcols = rng.standard_normal((n * oh * ow, kh * kw * c)).astype(np.float32)
    base = rng.standard_normal((n, h, w, c)).astype(np.float32)
    got = base.copy()
    _layer_kernels.col2im_add(dcols, oh, ow, kh, kw, sy, sx, py, px, got)
    want = base + _col2im_numpy(dcols, base.shape, kh, kw, sy, sx, py, px, oh, ow)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # and it is the adjoint: <im2col(x), D> == <x, col2im(D)>
    x = rng.standard_normal((n, h, w, c))
    back = np.zeros((n, h, w, c))
    _layer_kernels.col2im_add(dcols.astype(np.float64), oh, ow, kh, kw, sy, sx, py, px, back)
    assert np.isclose(np.sum(_im2col(x, kh, kw, sy, sx, py, px, oh, ow) * dcols), np.sum(x * back))


@pytest.mark.parametrize("seed", range(4))
def test_pool_forward_and_backward_match_numpy(seed):
    rng = np.random.default_rng(seed)
    kh, kw = rng.integers(1, 4, size=2)
    n, c = rng.integers(1, 4), rng.integers(1, 5)
    h, w = kh * rng.integers(1, 5) + rng.integers(0, kh), kw * rng.integers(1, 5) + rng.integers(0, kw)
    oh, ow = h // kh, w // kw
    weight = np.float32(rng.choice([0.25, 1 / 9, 0.5]))
    s = (rng.random((n, h, w, c)) < 0.4).astype(np.float32)
    out = np.empty((n, oh, ow, c), np.float32)
    _layer_kernels.pool_forward(s, kh, kw, weight, out)
    win = s[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
    np.testing.assert_array_equal(out, win.sum(axis=(2, 4)) * weight)  # counts: exact

    d = rng.standard_normal((n, oh, ow, c)).astype(np.float32)
    base = rng.standard_normal((n, h, w, c)).astype(np.float32)
    got = base.copy()
    _layer_kernels.pool_backward_add(d, kh, kw, weight, got)
    want = base.copy()
    want[:, :oh * kh, :ow * kw] += np.repeat(np.repeat(d * weight, kh, axis=1), kw, axis=2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_channel_sum_is_the_column_sum_in_float64():
    d = np.random.default_rng(0).standard_normal((1000, 7)).astype(np.float32)
    got = _layer_kernels.channel_sum(d)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, d.astype(np.float64).sum(axis=0), rtol=1e-12)


def _neuron_backward_loop(dS, U, S, thr, leak, subtract, spiking, detach, name, alpha, g_end):
    """The recurrence of _kernels' docstring, one element at a time in float64."""
    T, B, n = U.shape
    dU = np.zeros((T, B, n))
    carry = g_end.astype(np.float64).copy()
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(n):
                if not spiking:
                    d = carry[b, j]
                else:
                    th, x = float(thr[j]), float(U[t, b, j]) - float(thr[j])
                    sg = {"lee": lambda: 1.0 / th,
                          "fast_sigmoid": lambda: 1.0 / (1.0 + alpha * abs(x)) ** 2,
                          "arctan": lambda: 0.5 * alpha / (1.0 + (0.5 * np.pi * alpha * x) ** 2)}[name]()
                    if subtract:
                        m = 1.0 if detach else 1.0 - th * sg
                    else:
                        m = (1.0 - S[t, b, j]) if detach else (1.0 - S[t, b, j]) - U[t, b, j] * sg
                    d = dS[t, b, j] * sg + carry[b, j] * m
                dU[t, b, j] = d
                carry[b, j] = leak * d
    return dU


@pytest.mark.parametrize("name", list(SURROGATES))
@pytest.mark.parametrize("subtract,detach,spiking", [(True, True, True), (False, True, True),
                                                     (True, False, True), (False, False, True),
                                                     (True, True, False)])
def test_neuron_backward_matches_a_per_element_loop(name, subtract, detach, spiking):
    rng = np.random.default_rng(len(name) + 2 * subtract + detach)
    T, B, n = 5, 3, 7
    U = rng.normal(1.0, 0.6, (T, B, n)).astype(np.float32)
    thr = rng.choice([0.75, 1.0], n).astype(np.float32)
    S = (U >= thr).astype(np.float32)
    dS = rng.standard_normal((T, B, n)).astype(np.float32)
    g_end = rng.standard_normal((B, n)).astype(np.float32)
    leak = np.float32(0.5)
    dU = np.empty_like(U)
    nz = _kernels.neuron_backward(dS, U, S, thr, leak, subtract, spiking, detach, SURROGATES[name],
                                  DEFAULT_ALPHA[name], g_end, dU)
    want = _neuron_backward_loop(dS, U, S, thr, leak, subtract, spiking, detach, name, DEFAULT_ALPHA[name], g_end)
    np.testing.assert_allclose(dU, want, rtol=2e-6, atol=1e-6)
    assert nz == (T * B * n if spiking else 0)


def _random_conv(rng):
    n, h, w, ci, co = rng.integers(1, 4), rng.integers(3, 10), rng.integers(3, 10), rng.integers(1, 5), \
        rng.integers(1, 6)
    kh, kw = rng.integers(1, 5, size=2)
    sy, sx = rng.integers(1, 4, size=2)
    py, px = rng.integers(0, 3, size=2)
    oh, ow = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    return n, h, w, ci, co, kh, kw, sy, sx, py, px, oh, ow


@pytest.mark.parametrize("seed", range(12))
def test_spike_driven_conv_and_weight_gradient_match_im2col(seed):
    rng = np.random.default_rng(100 + seed)
    n, h, w, ci, co, kh, kw, sy, sx, py, px, oh, ow = _random_conv(rng)
    if oh < 1 or ow < 1:
        pytest.skip("kernel larger than the padded input")
    s = (rng.random((n, h, w, ci)) < 0.3) * rng.choice([1.0, 1.25], (n, h, w, ci))  # dropout-scaled spikes
    s = s.astype(np.float32)
    weight = (rng.integers(-64, 64, (kh, kw, ci, co)) / 256).astype(np.float32)  # on the grid: exact sums
    cols = _im2col(s, kh, kw, sy, sx, py, px, oh, ow)
    base = (rng.integers(-8, 8, (n, oh, ow, co)) / 16).astype(np.float32)
    got = base.copy()
    _layer_kernels.conv_scatter_add(s, weight, sy, sx, py, px, got)
    want = base + (cols.astype(np.float64) @ weight.reshape(-1, co)).reshape(base.shape)
    np.testing.assert_array_equal(got, want.astype(np.float32))  # exact, whatever the order

    d = rng.standard_normal((n, oh, ow, co)).astype(np.float32)
    dw = np.ones((kh, kw, ci, co))
    _layer_kernels.conv_weight_grad_add(s, d, kh, kw, sy, sx, py, px, dw)
    want_dw = 1.0 + (cols.astype(np.float64).T @ d.reshape(-1, co).astype(np.float64)).reshape(dw.shape)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("chunk_bytes", [1, 8 << 20])
def test_forward_uses_either_conv_path_with_the_same_spikes(monkeypatch, chunk_bytes):
    """The density switch between the spike-driven and the im2col path never changes a
    spike (both sums are exact on the grid), nor does cutting im2col into slices of
    images (chunk_bytes 1: one image at a time)."""
    from eventsnn.learn import bptt
    from eventsnn.learn.arch import conv_net

    x = np.random.default_rng(3).random((4, 28, 28, 1)).astype(np.float32)
    model = bptt.Model(conv_net(channels=(4, 8)), add_bias=True)
    monkeypatch.setattr(bptt, "CHUNK_BYTES", chunk_bytes)
    traces = []
    for limit in (1.0, -1.0):  # always the scatter, never the scatter
        monkeypatch.setattr(bptt, "SPARSE_FORWARD_MAX", limit)
        monkeypatch.setattr(bptt, "SPARSE_WEIGHT_GRAD_MAX", limit)
        tr = model.forward(x, 5)
        g, _ = model.backward(tr, np.ones((4, 10), np.float32) / 5)
        traces.append((tr, g))
    (a, ga), (b, gb) = traces
    for name in a.S:
        np.testing.assert_array_equal(a.S[name], b.S[name])
        np.testing.assert_array_equal(a.U[name], b.U[name])
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_analog_conv_is_bitwise_the_ordered_numpy_sum(seed):
    """Off the grid the order of the sum decides the float32 result: the kernel must add
    each target's sources in ascending input index, one rounded product at a time."""
    rng = np.random.default_rng(200 + seed)
    n, h, w, ci, co, kh, kw, sy, sx, py, px, oh, ow = _random_conv(rng)
    if oh < 1 or ow < 1:
        pytest.skip("kernel larger than the padded input")
    x = np.pad(rng.random((n, h, w, ci)).astype(np.float32), ((0, 0), (py, py), (px, px), (0, 0)))
    weight = rng.standard_normal((kh, kw, ci, co)).astype(np.float32)
    want = np.repeat(rng.standard_normal(co).astype(np.float32)[None, None, None], n * oh * ow, 0).reshape(
        n, oh, ow, co)  # starts from a bias, as in Model._const
    got = want.copy()
    for ky in range(kh):
        for kx in range(kw):
            win = x[:, ky:ky + sy * (oh - 1) + 1:sy, kx:kx + sx * (ow - 1) + 1:sx]
            for ch in range(ci):
                want += win[:, :, :, ch, None] * weight[ky, kx, ch]
    _layer_kernels.analog_conv_add(x, weight, sy, sx, got)
    np.testing.assert_array_equal(got, want)
