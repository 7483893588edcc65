"""Per-connection lookup tables of conv/pool geometry, so delivery needs no division.

Two tables per conv/pool/gate connection: *fan-out* (source position ->
the outputs it reaches, for delivering a spike) and *fan-in* (target position
-> the sources it reads, for plasticity at a postsynaptic spike and for input
gradients). Both are the single source of geometry for kernels and counters.

Fan-out:

For a source at row ``y`` of a connection with kernel ``k``, stride ``s`` and
padding ``p``, the outputs it reaches are the ``o`` with ``o*s - p + t = y`` for
a tap ``0 <= t < k`` and ``0 <= o < n_out``. Per source *position* ``(y, x)``
the table holds six int32 values::

    ny, oy0, ky0, nx, ox0, kx0

the number of outputs reached along each axis, the largest of them and its tap
(the others are ``oy0 - a`` with tap ``ky0 + a*s``). Computing these on the fly
takes up to six integer divisions per event (stride and channel count are not
compile-time constants); the table makes it one load of 24 contiguous bytes.
The channel split of a flat channel-last index ``(y*W + x)*C + c`` is a shift
when ``C`` is a power of two (the common case), a division otherwise.
"""

from __future__ import annotations

import numpy as np

from .layout import (C_HI, C_HO, C_KH, C_KW, C_PX, C_PY, C_SX, C_SY, C_WI, C_WO,
                     K_CONV, K_GATE, K_POOL)

# Fan-in: per target *position* (oy, ox) six int32 values
#     ny, y0, ky0, nx, x0, kx0
# the number of sources along each axis (border-clipped), the first of them
# and its tap; the others are y0 + a with tap ky0 + a.

GEO_FIELDS = 6


def axis_taps(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """(count, largest output, its tap) for every input coordinate 0..n_in-1, as (n_in, 3)."""
    pos = np.arange(n_in)[:, None]
    o = np.arange(n_out)[None, :]
    tap = pos + pad - o * stride
    valid = (tap >= 0) & (tap < k)
    count = valid.sum(axis=1)
    hi = np.where(valid, o, -1).max(axis=1)
    first_tap = pos[:, 0] + pad - hi * stride
    out = np.stack([count, hi, first_tap], axis=1)
    out[count == 0] = 0
    return out.astype(np.int32)


def axis_sources(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """(count, first source, its tap) for every output coordinate 0..n_out-1, as (n_out, 3).

    Output ``o`` reads inputs ``o*stride - pad + t`` for taps ``0 <= t < k``
    that land inside ``[0, n_in)``."""
    o = np.arange(n_out)[:, None]
    t = np.arange(k)[None, :]
    pos = o * stride - pad + t
    valid = (pos >= 0) & (pos < n_in)
    count = valid.sum(axis=1)
    first_tap = np.where(valid, t, k).min(axis=1)
    out = np.stack([count, o[:, 0] * stride - pad + first_tap, first_tap], axis=1)
    out[count == 0] = 0
    return out.astype(np.int32)


def axis_totals(n_in: int, n_out: int, k: int, stride: int, pad: int) -> int:
    """Synapses along one axis: the sum over outputs of their valid taps."""
    return int(axis_sources(n_in, n_out, k, stride, pad)[:, 0].sum())


def _table(ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
    h, w = ty.shape[0], tx.shape[0]
    table = np.concatenate([np.repeat(ty, w, axis=0), np.tile(tx, (h, 1))], axis=1)
    return np.ascontiguousarray(table, np.int32).reshape(-1)


def connection_fanin_table(row) -> np.ndarray:
    """The (H_out * W_out * 6,) fan-in table of one conv/pool/gate connection row."""
    ty = axis_sources(int(row[C_HI]), int(row[C_HO]), int(row[C_KH]), int(row[C_SY]), int(row[C_PY]))
    tx = axis_sources(int(row[C_WI]), int(row[C_WO]), int(row[C_KW]), int(row[C_SX]), int(row[C_PX]))
    return _table(ty, tx)


def connection_table(row) -> np.ndarray:
    """The (H_in * W_in * 6,) table of one conv/pool/gate connection row (see module doc)."""
    ty = axis_taps(int(row[C_HI]), int(row[C_HO]), int(row[C_KH]), int(row[C_SY]), int(row[C_PY]))
    tx = axis_taps(int(row[C_WI]), int(row[C_WO]), int(row[C_KW]), int(row[C_SX]), int(row[C_PX]))
    return _table(ty, tx)


def channel_shift(channels: int) -> int:
    """log2(channels) if it is a power of two, else -1 (divide instead)."""
    channels = int(channels)
    return channels.bit_length() - 1 if channels > 0 and channels & (channels - 1) == 0 else -1


def has_geometry(kind: int) -> bool:
    return kind in (K_CONV, K_POOL, K_GATE)
