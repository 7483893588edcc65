"""Fan-out of one source neuron, computed on the fly from the layer geometry.

No matrix is built for conv or pool layers. For a source at (y, x, c) of a conv
with kernel (kh, kw), stride s and padding p, the outputs it reaches are the
(oy, ox) with ``oy*s - p + ky = y`` for some tap ``0 <= ky < kh`` and
``0 <= oy < H_out`` (same in x); each such position receives C_out synapses.
Counting those taps is the exact, border-clipped fan-out.

Activations are channel-last and conv weights (kh, kw, C_in, C_out), so one
spike's fan-out is kh*kw contiguous runs of C_out additions.

``deliver`` adds ``scale * w`` into ``buf`` for every target of source ``idx``
and marks the touched *units* (positions for conv/dense targets with
``block == C_out``, single neurons otherwise); it returns the number of
synaptic operations. ``fanout`` returns that number alone (for counting
analog inputs and for tests).
"""

from __future__ import annotations

import numpy as np

from .jit import inline_kernel
from .layout import (C_CI, C_CO, C_HO, C_KH, C_KIND, C_KW, C_PX, C_PY, C_SX, C_SY,
                     C_WI, C_WO, C_WOFF, K_CONV, K_DENSE, K_IDENT, K_POOL)


@inline_kernel
def touch(tflag, tlist, tn, uoff, pop, unit):
    """Mark ``unit`` of population ``pop`` for the next update, once."""
    g = uoff + unit
    if tflag[g] == 0:
        tflag[g] = 1
        tlist[uoff + tn[pop]] = unit
        tn[pop] += 1


@inline_kernel
def _coords(idx, wi, ci):
    """(y, x, c) of flat channel-last index ``idx``: two divisions, not three
    (each ``//`` or ``%`` of signed integers also carries Python's rounding fix-ups)."""
    yx = idx // ci
    y = yx // wi
    return y, yx - y * wi, idx - yx * ci


@inline_kernel
def _taps(pos, pad, k, stride, n_out):
    """Output coordinates reached along one axis: (count, first output, tap of it).

    Taps ky = pos + pad - o*stride for outputs o; valid ky lie in [0, k).
    Returns how many outputs, the largest reachable output index and its tap,
    walking downwards in o (upwards in ky) by ``stride``.
    """
    # o ranges over ceil((pos + pad - k + 1) / stride) .. floor((pos + pad) / stride)
    lo_num = pos + pad - k + 1
    if stride == 1:  # no integer division on the common path
        hi = pos + pad
        lo = 0 if lo_num <= 0 else lo_num
    else:
        hi = (pos + pad) // stride
        lo = 0 if lo_num <= 0 else (lo_num + stride - 1) // stride
    if hi > n_out - 1:
        hi = n_out - 1
    if hi < lo:
        return 0, 0, 0
    return hi - lo + 1, hi, pos + pad - hi * stride


@inline_kernel
def fanout(conn_i, conn, idx):
    """Number of synapses from source ``idx`` through connection ``conn``."""
    g = conn_i[conn]
    kind = g[C_KIND]
    if kind == K_DENSE:
        return g[C_CO]
    if kind == K_IDENT:
        return 1
    wi, ci = g[C_WI], g[C_CI]
    y, x, _ = _coords(idx, wi, ci)
    ny, _, _ = _taps(y, g[C_PY], g[C_KH], g[C_SY], g[C_HO])
    nx, _, _ = _taps(x, g[C_PX], g[C_KW], g[C_SX], g[C_WO])
    if kind == K_CONV:
        return ny * nx * g[C_CO]
    return ny * nx


@inline_kernel
def _axpy(buf, nb, weights, wb, n, scale):
    """buf[nb:nb+n] += scale * weights[wb:wb+n], vectorised.

    Written over slice views: plain ``buf[nb + j]`` indexing carries numba's
    negative-index wraparound, which keeps LLVM from vectorising (8x slower).
    Views are free here because the kernels run without NRT reference counts.
    """
    dst = buf[nb: nb + n]
    src = weights[wb: wb + n]
    if scale == 1.0:
        for j in range(n):
            dst[j] += src[j]
    else:
        for j in range(n):
            dst[j] += scale * src[j]


@inline_kernel
def deliver(conn_i, conn, weights, idx, scale, buf, doff, tflag, tlist, tn, uoff, pop, block):
    """Add the weighted fan-out of source ``idx`` into ``buf``; return syn-op count."""
    kind = conn_i[conn, C_KIND]
    woff = conn_i[conn, C_WOFF]
    if kind == K_DENSE:
        co = conn_i[conn, C_CO]
        _axpy(buf, doff, weights, woff + idx * co, co, scale)
        if block > 1:
            touch(tflag, tlist, tn, uoff, pop, 0)
        else:
            for j in range(co):
                touch(tflag, tlist, tn, uoff, pop, j)
        return co
    if kind == K_IDENT:
        buf[doff + idx] += scale * weights[woff]
        touch(tflag, tlist, tn, uoff, pop, idx)
        return 1
    wi, ci = conn_i[conn, C_WI], conn_i[conn, C_CI]
    wo, co = conn_i[conn, C_WO], conn_i[conn, C_CO]
    kh, kw = conn_i[conn, C_KH], conn_i[conn, C_KW]
    sy, sx = conn_i[conn, C_SY], conn_i[conn, C_SX]
    y, x, c = _coords(idx, wi, ci)
    ny, oy0, ky0 = _taps(y, conn_i[conn, C_PY], kh, sy, conn_i[conn, C_HO])
    nx, ox0, kx0 = _taps(x, conn_i[conn, C_PX], kw, sx, wo)
    if ny == 0 or nx == 0:
        return 0
    if kind == K_CONV:
        for a in range(ny):
            oy = oy0 - a
            ky = ky0 + a * sy
            for b in range(nx):
                ox = ox0 - b
                kx = kx0 + b * sx
                wbase = woff + ((ky * kw + kx) * ci + c) * co
                pos = oy * wo + ox
                _axpy(buf, doff + pos * co, weights, wbase, co, scale)
                if block > 1:
                    touch(tflag, tlist, tn, uoff, pop, pos)
                else:
                    for j in range(co):
                        touch(tflag, tlist, tn, uoff, pop, pos * co + j)
        return ny * nx * co
    # Pools: the target keeps the channel; avg adds a scalar weight, the
    # max-pool gate only marks the windows (its flush decides who passes).
    w = scale * weights[woff] if kind == K_POOL else np.float32(0.0)
    for a in range(ny):
        oy = oy0 - a
        for b in range(nx):
            ox = ox0 - b
            n = (oy * wo + ox) * ci + c
            if kind == K_POOL:
                buf[doff + n] += w
            touch(tflag, tlist, tn, uoff, pop, n)
    return ny * nx


@inline_kernel
def fanout_targets(conn_i, conn, weights, idx, out_idx, out_w):
    """Write the targets of source ``idx`` (flat, in the target layer) and their
    weights into ``out_idx``/``out_w``; return how many (for step-through debugging)."""
    kind = conn_i[conn, C_KIND]
    woff = conn_i[conn, C_WOFF]
    co = conn_i[conn, C_CO]
    if kind == K_DENSE:
        for j in range(co):
            out_idx[j] = j
            out_w[j] = weights[woff + idx * co + j]
        return co
    if kind == K_IDENT:
        out_idx[0] = idx
        out_w[0] = weights[woff]
        return 1
    wi, ci, wo = conn_i[conn, C_WI], conn_i[conn, C_CI], conn_i[conn, C_WO]
    kh, kw, sy, sx = conn_i[conn, C_KH], conn_i[conn, C_KW], conn_i[conn, C_SY], conn_i[conn, C_SX]
    y, x, c = _coords(idx, wi, ci)
    ny, oy0, ky0 = _taps(y, conn_i[conn, C_PY], kh, sy, conn_i[conn, C_HO])
    nx, ox0, kx0 = _taps(x, conn_i[conn, C_PX], kw, sx, wo)
    n = 0
    for a in range(ny):
        for b in range(nx):
            pos = (oy0 - a) * wo + (ox0 - b)
            if kind == K_CONV:
                wbase = woff + (((ky0 + a * sy) * kw + (kx0 + b * sx)) * ci + c) * co
                for j in range(co):
                    out_idx[n] = pos * co + j
                    out_w[n] = weights[wbase + j]
                    n += 1
            else:
                out_idx[n] = pos * ci + c
                out_w[n] = weights[woff] if kind == K_POOL else 0.0
                n += 1
    return n
