"""Operation counts of one dense (ANN) pass through each layer of a network.

The ANN MACs of a layer are the multiply-accumulates over *real* inputs: one
per (input neuron, target) synapse, padding excluded — the same synapses the
event engine counts when spikes cross them. For a conv with kernel k, stride
s, padding p along one axis, output o reads input ``o*s - p + t`` for taps
``0 <= t < k``; the taps that land inside the input give that axis' count, and
a layer's MACs are ``(sum over oy of valid taps) * (sum over ox of valid taps)
* C_in * C_out`` (the fan-in tables of :mod:`eventsnn.engine.geometry`, the
same geometry the engine delivers through). Average pooling counts k_h*k_w accumulates per output; max
pooling counts no MACs (it compares); a residual branch one add per neuron.
The textbook formula ``H_out*W_out*C_out*k_h*k_w*C_in`` (padding included) is
given beside it for comparison with other tools.
"""

from __future__ import annotations

import numpy as np

from .engine.layout import (C_CI, C_CO, C_DST, C_HI, C_HO, C_KH, C_KIND, C_KW, C_PX, C_PY, C_SX,
                            C_SY, C_WI, C_WO, K_CONV, K_DENSE, K_GATE, K_IDENT, K_POOL)
from .engine.compile import Plan
from .engine.geometry import axis_totals
from .errors import NetworkError


def connection_macs(row) -> tuple:
    """(exact MACs, textbook MACs) of one connection row of a :class:`Plan`."""
    kind = int(row[C_KIND])
    if kind == K_DENSE:
        n = int(row[C_HI] * row[C_WI] * row[C_CI] * row[C_CO])
        return n, n
    if kind == K_IDENT:
        n = int(row[C_HO] * row[C_WO] * row[C_CO])
        return n, n
    if kind == K_GATE:
        return 0, 0
    ty = axis_totals(int(row[C_HI]), int(row[C_HO]), int(row[C_KH]), int(row[C_SY]), int(row[C_PY]))
    tx = axis_totals(int(row[C_WI]), int(row[C_WO]), int(row[C_KW]), int(row[C_SX]), int(row[C_PX]))
    textbook = int(row[C_HO] * row[C_WO] * row[C_KH] * row[C_KW])
    if kind == K_CONV:
        return ty * tx * int(row[C_CI] * row[C_CO]), textbook * int(row[C_CI] * row[C_CO])
    if kind == K_POOL:
        return ty * tx * int(row[C_CI]), textbook * int(row[C_CI])
    raise ValueError(f"unknown connection kind {kind}")


def unfolded_macs(row, pool) -> tuple:
    """(exact, textbook) MACs of an average pool ``pool`` = (sy, sx) and the layer
    it was folded into (``eventsnn convert`` folds pools by default): the source
    ANN computes the pool and then the smaller layer, not the folded one."""
    try:
        sy, sx = (int(v) for v in pool)
    except (TypeError, ValueError):
        sy = sx = 0
    kind = int(row[C_KIND])
    n_in = int(row[C_HI] * row[C_WI] * row[C_CI])
    if kind == K_CONV:
        fits = sy >= 1 and sx >= 1 and all(int(row[f]) % sy == 0 for f in (C_HI, C_KH, C_SY, C_PY)) \
            and all(int(row[f]) % sx == 0 for f in (C_WI, C_KW, C_SX, C_PX))
    else:
        fits = sy >= 1 and sx >= 1 and n_in % (sy * sx) == 0
    if not fits:
        raise NetworkError(f"provenance 'folded_pools' gives pool {pool!r}, which does not fit the "
                           f"layer's {int(row[C_HI])}x{int(row[C_WI])}x{int(row[C_CI])} input")
    pool_macs = n_in  # every input is accumulated once into its pooled output
    if kind == K_DENSE:
        n = n_in // (sy * sx) * int(row[C_CO])
        return pool_macs + n, pool_macs + n
    if kind != K_CONV:
        raise ValueError(f"a pool can only be folded into a conv or dense layer, not kind {kind}")
    small = np.array(row, copy=True)
    small[C_HI], small[C_WI] = row[C_HI] // sy, row[C_WI] // sx
    small[C_KH], small[C_KW] = row[C_KH] // sy, row[C_KW] // sx
    small[C_SY], small[C_SX] = row[C_SY] // sy, row[C_SX] // sx
    small[C_PY], small[C_PX] = row[C_PY] // sy, row[C_PX] // sx
    e, t = connection_macs(small)
    return pool_macs + e, pool_macs + t


def layer_macs(plan: Plan) -> tuple:
    """Per population (input first): exact and textbook MACs of one pass of the
    source ANN (a layer that absorbed an average pool counts pool + layer)."""
    folded = (plan.net.provenance or {}).get("folded_pools") or {}
    exact = np.zeros(len(plan.pops), np.int64)
    textbook = np.zeros(len(plan.pops), np.int64)
    for row in plan.conn_i:
        name = plan.pops[int(row[C_DST])].name
        e, t = unfolded_macs(row, folded[name]) if name in folded else connection_macs(row)
        exact[row[C_DST]] += e
        textbook[row[C_DST]] += t
    return exact, textbook


def layer_synapses(plan: Plan) -> np.ndarray:
    """Per population: its synapses from real inputs (the exact MACs of its own
    geometry, folded layers as they are): a rate-based estimate of synaptic
    operations is input rate x this x T."""
    out = np.zeros(len(plan.pops), np.int64)
    for row in plan.conn_i:
        out[row[C_DST]] += connection_macs(row)[0]
    return out
