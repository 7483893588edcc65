"""Operation counts of one dense (ANN) pass through each layer of a network.

The ANN MACs of a layer are the multiply-accumulates over *real* inputs: one
per (input neuron, target) synapse, padding excluded — the same synapses the
event engine counts when spikes cross them. For a conv with kernel k, stride
s, padding p along one axis, output o reads input ``o*s - p + t`` for taps
``0 <= t < k``; the taps that land inside the input give that axis' count, and
a layer's MACs are ``(sum over oy of valid taps) * (sum over ox of valid taps)
* C_in * C_out``. Average pooling counts k_h*k_w accumulates per output; max
pooling counts no MACs (it compares); a residual branch one add per neuron.
The textbook formula ``H_out*W_out*C_out*k_h*k_w*C_in`` (padding included) is
given beside it for comparison with other tools.
"""

from __future__ import annotations

import numpy as np

from .engine.layout import (C_CI, C_CO, C_DST, C_HI, C_HO, C_KH, C_KIND, C_KW, C_PX, C_PY, C_SX,
                            C_SY, C_WI, C_WO, K_CONV, K_DENSE, K_GATE, K_IDENT, K_POOL)
from .engine.plan import Plan


def _axis_taps(n_in: int, n_out: int, k: int, stride: int, pad: int) -> int:
    o = np.arange(n_out)[:, None]
    t = np.arange(k)[None, :]
    pos = o * stride - pad + t
    return int(np.count_nonzero((pos >= 0) & (pos < n_in)))


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
    ty = _axis_taps(int(row[C_HI]), int(row[C_HO]), int(row[C_KH]), int(row[C_SY]), int(row[C_PY]))
    tx = _axis_taps(int(row[C_WI]), int(row[C_WO]), int(row[C_KW]), int(row[C_SX]), int(row[C_PX]))
    textbook = int(row[C_HO] * row[C_WO] * row[C_KH] * row[C_KW])
    if kind == K_CONV:
        return ty * tx * int(row[C_CI] * row[C_CO]), textbook * int(row[C_CI] * row[C_CO])
    if kind == K_POOL:
        return ty * tx * int(row[C_CI]), textbook * int(row[C_CI])
    raise ValueError(f"unknown connection kind {kind}")


def layer_macs(plan: Plan) -> tuple:
    """Per population (input first): exact and textbook ANN MACs of one pass."""
    exact = np.zeros(len(plan.pops), np.int64)
    textbook = np.zeros(len(plan.pops), np.int64)
    for row in plan.conn_i:
        e, t = connection_macs(row)
        exact[row[C_DST]] += e
        textbook[row[C_DST]] += t
    return exact, textbook
