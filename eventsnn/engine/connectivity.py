"""Fan-out of one source neuron, computed on the fly from the layer geometry.

No matrix is built for conv or pool layers. For a source at (y, x, c) of a conv
with kernel (kh, kw), stride s and padding p, the outputs it reaches are the
(oy, ox) with ``oy*s - p + ky = y`` for some tap ``0 <= ky < kh`` and
``0 <= oy < H_out`` (same in x); each such position receives C_out synapses.
Counting those taps is the exact, border-clipped fan-out. The taps of every
source position are looked up in the connection's geometry table
(:mod:`.geometry`), so an event costs no integer division.

Activations are channel-last, so one spike's fan-out is kh*kw contiguous runs
of C_out additions. The plan stores conv weights as (C_in, kh, kw, C_out): the
kh*kw weight rows of one source channel are then one contiguous block (18 KB
for 3x3x512) instead of kh*kw rows C_in*C_out floats apart, which is what
deep layers, whose weights do not fit in cache, are limited by. kx is stored
reversed: with stride 1 the taps kx0, kx0 + 1, ... reach the targets ox0,
ox0 - 1, ..., so both the nx targets of one kernel row and their weights are
adjacent, and the row is one run of nx*C_out additions (a tap of C_out = 64
had cost about as much in loop set-up as in adds).

``deliver`` (the CPU's delivery) adds ``scale * w`` into ``buf`` for every
target of source ``idx`` and marks the touched *units* (positions for
conv/dense targets with ``block == C_out``, single neurons otherwise); it
returns the number of synaptic operations. The geometry decode and the
weight layout come from :mod:`.physics`, which every backend shares.

``fanout_targets`` and ``fanin_sources`` list one neuron's synapses (targets
or sources, and the index of each synapse's weight in ``Params.weights``) for
step-through debugging, plasticity and tests.
"""

from __future__ import annotations

import numpy as np

from .jit import inline_kernel
from .layout import (C_CI, C_CO, C_CSHIFT, C_GEO, C_HI, C_KH, C_KIND, C_KW, C_SX, C_SY, C_WI, C_WO, C_WOFF, K_CONV,
                     K_DENSE, K_IDENT, K_POOL, RUN_END)
from .physics import conv_weight_index, fanin_entry, fanout_count, fanout_entry, fanout_entry_at


@inline_kernel
def touch(tflag, tlist, tn, uoff, pop, unit):
    """Mark ``unit`` of population ``pop`` for the next update, once."""
    g = uoff + unit
    if tflag[g] == 0:
        tflag[g] = 1
        tlist[uoff + tn[pop]] = unit
        tn[pop] += 1


@inline_kernel
def fanout(conn_i, geo, conn, idx):
    """Number of synapses from source ``idx`` through connection ``conn``."""
    return fanout_count(conn_i, geo, conn, idx)


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
def _conv_taps(buf, doff, weights, woff, wo, co, kh, kw, sy, sx, ny, oy0, ky0, nx, ox0, kx0, c, scale, tflag, tlist,
               tn, uoff, pop, block):
    """The conv fan-out of one decoded source (:func:`.physics.fanout_entry`); returns its syn ops."""
    for a in range(ny):
        oy = oy0 - a
        ky = ky0 + a * sy
        if sx == 1:
            # One kernel row: targets ox0 - nx + 1 .. ox0 through taps kx0 + nx - 1 .. kx0,
            # adjacent in both arrays (kx is stored reversed): one run of nx * C_out adds.
            pos0 = oy * wo + ox0 - (nx - 1)
            _axpy(buf, doff + pos0 * co, weights, conv_weight_index(woff, kh, kw, co, c, ky, kx0 + nx - 1),
                  nx * co, scale)
            # Touched in the per-tap order (ox0 first), which orders the layer's spikes.
            for b in range(nx):
                pos = pos0 + nx - 1 - b
                if block > 1:
                    touch(tflag, tlist, tn, uoff, pop, pos)
                else:
                    for j in range(co):
                        touch(tflag, tlist, tn, uoff, pop, pos * co + j)
            continue
        for b in range(nx):
            ox = ox0 - b
            kx = kx0 + b * sx
            wbase = conv_weight_index(woff, kh, kw, co, c, ky, kx)
            pos = oy * wo + ox
            _axpy(buf, doff + pos * co, weights, wbase, co, scale)
            if block > 1:
                touch(tflag, tlist, tn, uoff, pop, pos)
            else:
                for j in range(co):
                    touch(tflag, tlist, tn, uoff, pop, pos * co + j)
    return ny * nx * co


@inline_kernel
def deliver_conv_run(conn_i, geo, conn, weights, runs, k, budget, buf, doff, tflag, tlist, tn, uoff, pop, block):
    """:func:`deliver` (scale 1) of the sources ``runs[k], runs[k + 1], ...`` through conv
    connection ``conn``, in order, until ``RUN_END`` or ``budget`` spikes. The
    connection's row is read once per run, not once per spike (a table read is
    reloaded after every store to ``buf``, which might alias it).
    Returns (the next k, synaptic ops, spikes delivered)."""
    woff, ci, wo, co = conn_i[conn, C_WOFF], conn_i[conn, C_CI], conn_i[conn, C_WO], conn_i[conn, C_CO]
    kh, kw, sy, sx = conn_i[conn, C_KH], conn_i[conn, C_KW], conn_i[conn, C_SY], conn_i[conn, C_SX]
    geo0, shift = conn_i[conn, C_GEO], conn_i[conn, C_CSHIFT]
    one = np.float32(1.0)
    ops = 0
    done = 0
    while done < budget and runs[k] != RUN_END:
        ny, oy0, ky0, nx, ox0, kx0, c = fanout_entry_at(geo, geo0, ci, shift, runs[k])
        ops += _conv_taps(buf, doff, weights, woff, wo, co, kh, kw, sy, sx, ny, oy0, ky0, nx, ox0, kx0, c, one,
                          tflag, tlist, tn, uoff, pop, block)
        done += 1
        k += 1
    return k, ops, done


@inline_kernel
def deliver(conn_i, geo, conn, weights, idx, scale, buf, doff, tflag, tlist, tn, uoff, pop, block):
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
    ci, wo, co = conn_i[conn, C_CI], conn_i[conn, C_WO], conn_i[conn, C_CO]
    kh, kw, sy, sx = conn_i[conn, C_KH], conn_i[conn, C_KW], conn_i[conn, C_SY], conn_i[conn, C_SX]
    ny, oy0, ky0, nx, ox0, kx0, c = fanout_entry(conn_i, geo, conn, idx)
    if ny == 0 or nx == 0:
        return 0
    if kind == K_CONV:
        return _conv_taps(buf, doff, weights, woff, wo, co, kh, kw, sy, sx, ny, oy0, ky0, nx, ox0, kx0, c, scale,
                          tflag, tlist, tn, uoff, pop, block)
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
def fanout_targets(conn_i, geo, conn, idx, out_idx, out_w):
    """Write the targets of source ``idx`` (flat, in the target layer) and the
    index of each synapse's weight in ``Params.weights`` (-1: a max-pool gate,
    which has none) into ``out_idx``/``out_w``; return how many."""
    kind = conn_i[conn, C_KIND]
    woff = conn_i[conn, C_WOFF]
    co = conn_i[conn, C_CO]
    if kind == K_DENSE:
        for j in range(co):
            out_idx[j] = j
            out_w[j] = woff + idx * co + j
        return co
    if kind == K_IDENT:
        out_idx[0] = idx
        out_w[0] = woff
        return 1
    ci, wo = conn_i[conn, C_CI], conn_i[conn, C_WO]
    kh, kw, sy, sx = conn_i[conn, C_KH], conn_i[conn, C_KW], conn_i[conn, C_SY], conn_i[conn, C_SX]
    ny, oy0, ky0, nx, ox0, kx0, c = fanout_entry(conn_i, geo, conn, idx)
    n = 0
    for a in range(ny):
        for b in range(nx):
            pos = (oy0 - a) * wo + (ox0 - b)
            if kind == K_CONV:
                wbase = conv_weight_index(woff, kh, kw, co, c, ky0 + a * sy, kx0 + b * sx)
                for j in range(co):
                    out_idx[n] = pos * co + j
                    out_w[n] = wbase + j
                    n += 1
            else:
                out_idx[n] = pos * ci + c
                out_w[n] = woff if kind == K_POOL else -1
                n += 1
    return n


@inline_kernel
def fanin_sources(conn_i, fgeo, conn, idx, out_idx, out_w):
    """Write the sources of target ``idx`` (flat, in the target layer) through
    connection ``conn`` (flat, in the source layer), and the index of each
    synapse's weight in ``Params.weights`` (-1 for a max-pool gate), into
    ``out_idx``/``out_w``; return how many. The inverse of ``fanout_targets``:
    a postsynaptic spike (STDP) or an input gradient (BPTT) reads these."""
    kind = conn_i[conn, C_KIND]
    woff = conn_i[conn, C_WOFF]
    co = conn_i[conn, C_CO]
    if kind == K_DENSE:
        n_in = conn_i[conn, C_HI] * conn_i[conn, C_WI] * conn_i[conn, C_CI]
        for i in range(n_in):
            out_idx[i] = i
            out_w[i] = woff + i * co + idx
        return n_in
    if kind == K_IDENT:
        out_idx[0] = idx
        out_w[0] = woff
        return 1
    ci, wi = conn_i[conn, C_CI], conn_i[conn, C_WI]
    kh, kw = conn_i[conn, C_KH], conn_i[conn, C_KW]
    if kind == K_CONV:
        pos = idx // co
        cout = idx - pos * co
    else:
        pos = idx // ci
        cout = idx - pos * ci
    ny, y0, ky0, nx, x0, kx0 = fanin_entry(conn_i, fgeo, conn, pos)
    n = 0
    for a in range(ny):
        for b in range(nx):
            src_pos = (y0 + a) * wi + (x0 + b)
            if kind == K_CONV:
                for c in range(ci):
                    out_idx[n] = src_pos * ci + c
                    out_w[n] = conv_weight_index(woff, kh, kw, co, c, ky0 + a, kx0 + b) + cout
                    n += 1
            else:
                out_idx[n] = src_pos * ci + cout
                out_w[n] = woff if kind == K_POOL else -1
                n += 1
    return n
