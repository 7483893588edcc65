"""The physics of the engine, written once for every backend.

Scalar, device-neutral functions: no allocation, no Python objects, no
backend bookkeeping, only scalars and 1-d/2-d array reads. They are numba
``jit`` functions, which numba compiles for the target of whoever calls them:
a CPU kernel inlines them (``inline="always"``, at numba IR level, so a
caller passing literal flags such as ``leaky=True`` gets the branch folded
away), and a numba.cuda kernel compiles the same source as device code.

Neuron (discrete time, one step; Rueckauer et al. 2017 for the subtractive
reset, Diehl et al. 2015 for the reset to zero; the multi-spike cap follows
sinabs' MultiSpike)::

    V[t] = (leak**dt * V[t_last] + I_events[t]) + I_const     (float32, this order)
    n    = 0 if V < theta else min(K, floor(V / theta))       (K = max_spikes)
    V   <- V - n * theta   (reset "subtract")   or   0   (reset "zero")

In continuous time the leak factor is ``exp(-(t - t_last) / tau)``.

Connectivity: the fan-out of a source spike and the fan-in of a target are
read from the per-connection geometry tables (:mod:`.geometry`); the
functions below decode one table entry. Flat indices are channel-last,
``(y * W + x) * C + c``.
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import GEO_FIELDS
from .jit import inline_kernel
from .layout import C_CI, C_CO, C_CSHIFT, C_FGEO, C_GEO, C_KIND, K_CONV, K_DENSE, K_IDENT


def device_function(fn):
    """Compile ``fn`` with the engine's flags, inlined into every caller."""
    return inline_kernel(fn)


# -- neuron ------------------------------------------------------------------------

@device_function
def leak_factor(decay_row, tau, t, t_last, continuous):
    """leak ** (t - t_last): from the precomputed powers in discrete time (exact
    with respect to the clock-driven loop only when that loop multiplies by the
    same float32 power; see eventsnn.reference), ``exp`` in continuous time."""
    if continuous:
        return np.float32(math.exp(-(t - t_last) / tau))
    return decay_row[int(t - t_last)]


@device_function
def membrane(v, f, i_events, i_const, leaky, has_const):
    """The potential after one update: ``(f * v + I_events) + I_const``."""
    if leaky:
        decayed = v * f
    else:
        decayed = v
    if has_const:
        return (decayed + i_events) + i_const
    return decayed + i_events


@device_function
def crossed(v, thr):
    return v >= thr


@device_function
def spikes_emitted(v, thr, max_spikes):
    """Spikes of a neuron with ``v >= thr``: 1, or min(K, floor(v / thr)) with K > 1.

    The quotient is capped before the integer conversion, which a huge
    quotient would overflow; ``v >= thr > 0`` makes it at least 1."""
    if max_spikes <= 1:
        return 1
    quotient = v / thr
    if quotient >= max_spikes:
        return max_spikes
    return int(math.floor(quotient))


@device_function
def after_reset(v, thr, spikes, subtract, max_spikes):
    """The potential after ``spikes`` spikes: ``v - spikes * thr`` or zero."""
    if not subtract:
        return np.float32(0.0)
    if max_spikes > 1:
        return v - np.float32(spikes) * thr
    return v - thr


# -- connectivity ---------------------------------------------------------------------

@device_function
def split_index(idx, ci, shift):
    """(position y*W + x, channel) of flat channel-last index ``idx`` with ``ci`` channels."""
    if shift >= 0:
        yx = idx >> shift
    else:
        yx = idx // ci
    return yx, idx - yx * ci


@device_function
def fanout_entry(conn_i, geo, c, idx):
    """Decode the fan-out of source ``idx`` through conv/pool connection ``c``:
    (ny, oy0, ky0, nx, ox0, kx0, channel). Targets are (oy0 - a, ox0 - b) through
    taps (ky0 + a * sy, kx0 + b * sx) for a < ny, b < nx."""
    return fanout_entry_at(geo, conn_i[c, C_GEO], conn_i[c, C_CI], conn_i[c, C_CSHIFT], idx)


@device_function
def fanout_entry_at(geo, geo0, ci, shift, idx):
    """:func:`fanout_entry` with the connection's table offset, C_in and channel shift
    already read (a caller delivering many spikes reads them once)."""
    yx, ch = split_index(idx, ci, shift)
    r = geo0 + yx * GEO_FIELDS
    return geo[r], geo[r + 1], geo[r + 2], geo[r + 3], geo[r + 4], geo[r + 5], ch


@device_function
def fanin_entry(conn_i, fgeo, c, pos):
    """Decode the fan-in of target position ``pos`` (oy * W_out + ox) of conv/pool
    connection ``c``: (ny, y0, ky0, nx, x0, kx0). Sources are (y0 + a, x0 + b)
    through taps (ky0 + a, kx0 + b) for a < ny, b < nx."""
    r = conn_i[c, C_FGEO] + pos * GEO_FIELDS
    return fgeo[r], fgeo[r + 1], fgeo[r + 2], fgeo[r + 3], fgeo[r + 4], fgeo[r + 5]


@device_function
def conv_weight_index(woff, kh, kw, co, ch_in, ky, kx):
    """Index in Params.weights of the C_out weights of (input channel, tap) of a conv whose
    block starts at ``woff``: stored (C_in, kh, kw, C_out) with kx reversed, so one source's
    taps are one contiguous block, and the taps kx, kx + 1, ... that reach the targets
    ox, ox - 1, ... (stride 1) lie in the targets' memory order. Plain integers: callers
    read the connection's row once, outside their tap loops (a table read inside them is
    reloaded after every store to the membrane)."""
    return woff + ((ch_in * kh + ky) * kw + kw - 1 - kx) * co


@device_function
def fanout_count(conn_i, geo, c, idx):
    """Synapses from source ``idx`` through connection ``c`` (border-clipped)."""
    kind = conn_i[c, C_KIND]
    if kind == K_DENSE:
        return conn_i[c, C_CO]
    if kind == K_IDENT:
        return 1
    ny, _, _, nx, _, _, _ = fanout_entry(conn_i, geo, c, idx)
    if kind == K_CONV:
        return ny * nx * conn_i[c, C_CO]
    return ny * nx
