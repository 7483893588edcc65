"""The two numba kernels of the BPTT trainer: one population's neuron recurrence,
forward and backward through time. Kept in their own module (a private numba
cache) and few, so that compilation stays short.

Forward, per neuron, in float32 and in the order of :mod:`eventsnn.reference`::

    U[t] = (V[t-1] * leak + I[t]) + c          (IF: no multiply; V[-1] = v_init * theta)
    s[t] = U[t] >= theta                        (the smoothed forward of the tests is numpy)
    V[t] = U[t] - s[t] theta  (subtract)   or   U[t] (1 - s[t])  (zero)

Backward (BPTT; Neftci et al. 2019, with the reset detached as snnTorch and
SpikingJelly do by default)::

    dU[t] = dS[t] sigma'(U[t] - theta) + leak dU[t+1] m[t]
    m[t]  = 1 (subtract) | 1 - s[t] (zero)                        reset detached
    m[t]  = 1 - theta sigma' (subtract) | 1 - s - U sigma' (zero)  reset differentiated
"""

from __future__ import annotations

import numba
import numpy as np

from .surrogates import pseudo_derivative


@numba.njit(cache=True, nogil=True)
def neuron_forward(I, c, v0, thr, leak, leaky, subtract, spiking, U, S, v_end):
    """I, U, S: (T, B, n) float32; c, v_end: (B, n); v0, thr: (n,); leak: np.float32.
    Fills U (before reset) and S. Every value stays float32: the engine's arithmetic.
    Time is the outer loop so that every pass reads contiguous memory; the reset choice
    is taken outside the inner loop, which is branch-free (selects) and vectorises."""
    T, B, n = I.shape
    for b in range(B):
        for j in range(n):
            v_end[b, j] = v0[j]
    # IF: v * 1 is exactly v, so one loop serves IF and LIF with the engine's float32 result
    lk = leak if leaky else np.float32(1.0)
    for t in range(T):
        for b in range(B):
            i_t, c_b, u_t, s_t, v = I[t, b], c[b], U[t, b], S[t, b], v_end[b]
            if not spiking:
                for j in range(n):
                    u = (v[j] * lk + i_t[j]) + c_b[j]
                    u_t[j] = u
                    s_t[j] = 0
                    v[j] = u
            elif subtract:
                for j in range(n):
                    u = (v[j] * lk + i_t[j]) + c_b[j]
                    u_t[j] = u
                    fired = u >= thr[j]
                    s_t[j] = 1 if fired else 0
                    v[j] = u - thr[j] if fired else u
            else:
                for j in range(n):
                    u = (v[j] * lk + i_t[j]) + c_b[j]
                    u_t[j] = u
                    fired = u >= thr[j]
                    s_t[j] = 1 if fired else 0
                    v[j] = np.float32(0.0) if fired else u


@numba.njit(cache=True, nogil=True, error_model="numpy")
def neuron_backward(dS, U, S, thr, leak, subtract, spiking, detach, sid, alpha, g_end, dU):
    """dL/dU[t] from dL/dS[t] (from the consumers) and dL/dV[T-1] = g_end; returns the
    number of (t, b, j) where the surrogate was nonzero (the sparsity of the backward pass).

    The reset choice is taken outside the inner loops, and numpy's error model drops
    Python's division-by-zero checks (the surrogates never divide by zero), so that the
    inner loops vectorise."""
    T, B, n = U.shape
    nonzero = 0
    carry = g_end.copy()
    for t in range(T - 1, -1, -1):
        for b in range(B):
            d_t, u_t, s_t, c_b, out = dS[t, b], U[t, b], S[t, b], carry[b], dU[t, b]
            if not spiking:
                for j in range(n):
                    d = c_b[j]
                    out[j] = d
                    c_b[j] = leak * d
            elif detach and subtract:
                for j in range(n):
                    sg = pseudo_derivative(sid, u_t[j] - thr[j], thr[j], alpha)
                    nonzero += sg != 0
                    d = d_t[j] * sg + c_b[j]
                    out[j] = d
                    c_b[j] = leak * d
            elif detach:
                for j in range(n):
                    sg = pseudo_derivative(sid, u_t[j] - thr[j], thr[j], alpha)
                    nonzero += sg != 0
                    d = d_t[j] * sg + c_b[j] * (1.0 - s_t[j])
                    out[j] = d
                    c_b[j] = leak * d
            elif subtract:
                for j in range(n):
                    sg = pseudo_derivative(sid, u_t[j] - thr[j], thr[j], alpha)
                    nonzero += sg != 0
                    d = d_t[j] * sg + c_b[j] * (1.0 - thr[j] * sg)
                    out[j] = d
                    c_b[j] = leak * d
            else:
                for j in range(n):
                    sg = pseudo_derivative(sid, u_t[j] - thr[j], thr[j], alpha)
                    nonzero += sg != 0
                    d = d_t[j] * sg + c_b[j] * ((1.0 - s_t[j]) - u_t[j] * sg)
                    out[j] = d
                    c_b[j] = leak * d
    return nonzero
