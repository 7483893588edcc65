"""Numba kernels for the BPTT trainer's linear maps on (N, H, W, C) arrays, where numpy
would make large temporaries: the spiking average pool forward and back, the scatter
of im2col gradients back onto the input (col2im), and per-channel sums (bias gradients).

Each backward kernel *adds* into its output, the gradient arrays of the sources, so
that no (T, B, n) temporary is made and added afterwards. The numpy versions these
replace live in the tests (tests/test_bptt_layer_kernels.py), which compare the two
on random inputs.

Spiking average pool (kernel = stride = (kh, kw), weight ``w``)::

    out[n, i, j, c] = w * sum_{a < kh, b < kw} s[n, i kh + a, j kw + b, c]
    dS[n, i kh + a, j kw + b, c] += w * d[n, i, j, c]

col2im (the transpose of im2col with columns in (ky, kx, c) order)::

    dX[n, y sy + ky - py, x sx + kx - px, c] += dcols[(n, y, x), (ky, kx, c)]
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def channel_sum(d):
    """(M, C) -> (C,) float64: the bias gradient, summed in float64."""
    M, C = d.shape
    out = np.zeros(C, np.float64)
    for m in range(M):
        for c in range(C):
            out[c] += d[m, c]
    return out
