"""Numba kernels for the BPTT trainer's linear maps on (N, H, W, C) arrays, where numpy
would make large temporaries: the spiking average pool forward and back, the scatter
of im2col gradients back onto the input (col2im), and per-channel sums (bias gradients).

Each backward kernel *adds* into its output, the gradient arrays of the sources, so
that no (T, B, n) temporary is made and added afterwards. The numpy versions these
replace live in the tests (tests/test_bptt_layer_kernels.py), which compare the two
on random inputs. Every kernel uses numpy's error model: the only divisions are by
strides (>= 1), and Python's zero-division checks would keep the loops from vectorising.

Spiking average pool (kernel = stride = (kh, kw), weight ``w``)::

    out[n, i, j, c] = w * sum_{a < kh, b < kw} s[n, i kh + a, j kw + b, c]
    dS[n, i kh + a, j kw + b, c] += w * d[n, i, j, c]

col2im (the transpose of im2col with columns in (ky, kx, c) order)::

    dX[n, y sy + ky - py, x sx + kx - px, c] += dcols[(n, y, x), (ky, kx, c)]
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pool_forward(s, kh, kw, w, out):
    """out (N, oh, ow, C) = w * the (kh, kw) window sums of s (N, H, W, C). The window
    sum is formed first and multiplied once: for 0/1 spikes that is count * w, exactly
    the engine's sum of ``count`` equal float32 weights (exact on the grid)."""
    N, oh, ow, C = out.shape
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                for c in range(C):
                    out[n, i, j, c] = 0
                for a in range(kh):
                    for b in range(kw):
                        for c in range(C):
                            out[n, i, j, c] += s[n, i * kh + a, j * kw + b, c]
                for c in range(C):
                    out[n, i, j, c] *= w


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pool_backward_add(d, kh, kw, w, dsrc):
    """dsrc (N, H, W, C) += the pool's transpose applied to d (N, oh, ow, C)."""
    N, oh, ow, C = d.shape
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    for b in range(kw):
                        for c in range(C):
                            dsrc[n, i * kh + a, j * kw + b, c] += w * d[n, i, j, c]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def col2im_add(dcols, oh, ow, kh, kw, sy, sx, py, px, dsrc):
    """dsrc (N, H, W, C) += col2im(dcols (N*oh*ow, kh*kw*C)); taps that fall in the
    padding are dropped."""
    N, H, W, C = dsrc.shape
    for n in range(N):
        for y in range(oh):
            for x in range(ow):
                row = (n * oh + y) * ow + x
                for ky in range(kh):
                    iy = y * sy + ky - py
                    if iy < 0 or iy >= H:
                        continue
                    for kx in range(kw):
                        ix = x * sx + kx - px
                        if ix < 0 or ix >= W:
                            continue
                        base = (ky * kw + kx) * C
                        for c in range(C):
                            dsrc[n, iy, ix, c] += dcols[row, base + c]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def channel_sum(d):
    """(M, C) -> (C,) float64: the bias gradient, summed in float64."""
    M, C = d.shape
    out = np.zeros(C, np.float64)
    for m in range(M):
        for c in range(C):
            out[c] += d[m, c]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def analog_conv_add(xpad, w, sy, sx, c):
    """c (N, oh, ow, Co) += conv(xpad, w) for the analog (direct) input, xpad already
    padded. Not on the grid, so the order is the engine's: for every target, its sources
    in ascending flat input index (tap row, tap column, channel), each product rounded
    to float32 and then added (no fused multiply-add), as numpy and the engine do."""
    N, oh, ow, Co = c.shape
    kh, kw, Ci = w.shape[0], w.shape[1], w.shape[2]
    for n in range(N):
        for y in range(oh):
            for x in range(ow):
                for ky in range(kh):
                    for kx in range(kw):
                        for ci in range(Ci):
                            v = xpad[n, y * sy + ky, x * sx + kx, ci]
                            for co in range(Co):
                                c[n, y, x, co] += v * w[ky, kx, ci, co]


@numba.njit(cache=True, nogil=True, inline="never", error_model="numpy")
def _taps(i, p, k, stride, n_out):
    """The taps k0, k0 + stride, ... < k1 of a kernel axis through which input index ``i``
    reaches an output ``o = (i + p - k) / stride`` in [0, n_out)."""
    q = i + p
    k0 = q % stride
    lo = q - (n_out - 1) * stride  # o < n_out  <=>  k >= lo
    if lo > k0:
        k0 += (lo - k0 + stride - 1) // stride * stride
    return k0, min(k, q + 1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def conv_scatter_add(s, w, sy, sx, py, px, out):
    """out (N, oh, ow, Co) += conv(s (N, H, W, Ci), w (kh, kw, Ci, Co)), driven by the
    nonzero entries of s (spikes): cost grows with spikes, not with positions.

        out[n, y, x, :] += sum_{ky, kx, ci} s[n, y sy + ky - py, x sx + kx - px, ci] w[ky, kx, ci, :]

    On the grid every partial sum is exact, so the result equals the engine's sum in
    any order (see Model.exactness_bound)."""
    N, H, W, Ci = s.shape
    kh, kw = w.shape[0], w.shape[1]
    _, oh, ow, Co = out.shape
    for n in range(N):
        for iy in range(H):
            ky0, ky1 = _taps(iy, py, kh, sy, oh)
            for ix in range(W):
                kx0, kx1 = _taps(ix, px, kw, sx, ow)
                for ci in range(Ci):
                    v = s[n, iy, ix, ci]
                    if v == 0:
                        continue
                    for ky in range(ky0, ky1, sy):
                        y = (iy + py - ky) // sy
                        for kx in range(kx0, kx1, sx):
                            x = (ix + px - kx) // sx
                            for co in range(Co):
                                out[n, y, x, co] += v * w[ky, kx, ci, co]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def conv_weight_grad_add(s, d, kh, kw, sy, sx, py, px, dw):
    """dw (kh, kw, Ci, Co) += sum over the nonzero s (N, H, W, Ci) of s * d (N, oh, ow, Co)
    at the outputs each one feeds: dL/dw of ``conv_scatter_add``, accumulated in dw's
    precision (float64)."""
    N, H, W, Ci = s.shape
    _, oh, ow, Co = d.shape
    for n in range(N):
        for iy in range(H):
            ky0, ky1 = _taps(iy, py, kh, sy, oh)
            for ix in range(W):
                kx0, kx1 = _taps(ix, px, kw, sx, ow)
                for ci in range(Ci):
                    v = np.float64(s[n, iy, ix, ci])  # products in float64 too
                    if v == 0:
                        continue
                    for ky in range(ky0, ky1, sy):
                        y = (iy + py - ky) // sy
                        for kx in range(kx0, kx1, sx):
                            x = (ix + px - kx) // sx
                            for co in range(Co):
                                dw[ky, kx, ci, co] += v * d[n, y, x, co]
