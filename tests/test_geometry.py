"""The geometry tables that replace per-event divisions, against brute force."""

import numpy as np
import pytest

from eventsnn.engine.geometry import axis_taps, channel_shift, connection_table
from eventsnn.engine.layout import (C_CI, C_HI, C_HO, C_KH, C_KIND, C_KW, C_NFIELDS, C_PX, C_PY,
                                    C_SX, C_SY, C_WI, C_WO, K_CONV)


def brute_axis(n_in, n_out, k, stride, pad):
    """For each input coordinate: every (output, tap) pair with o*stride - pad + tap == pos."""
    out = []
    for pos in range(n_in):
        pairs = [(o, t) for o in range(n_out) for t in range(k) if o * stride - pad + t == pos]
        out.append(sorted(pairs, reverse=True))  # largest output first, as the table walks
    return out


@pytest.mark.parametrize("seed", range(40))
def test_axis_taps_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    stride = int(rng.integers(1, 4))
    pad = int(rng.integers(0, k))
    n_in = int(rng.integers(k, 20))
    n_out = (n_in + 2 * pad - k) // stride + 1
    table = axis_taps(n_in, n_out, k, stride, pad)
    for pos, pairs in enumerate(brute_axis(n_in, n_out, k, stride, pad)):
        count, hi, tap = (int(v) for v in table[pos])
        assert count == len(pairs)
        walked = [(hi - a, tap + a * stride) for a in range(count)]
        assert walked == pairs


def test_connection_table_rows_are_per_position():
    row = np.zeros(C_NFIELDS, np.int64)
    row[C_KIND] = K_CONV
    row[[C_HI, C_WI, C_CI]] = (5, 7, 3)
    row[[C_HO, C_WO]] = (3, 4)
    row[[C_KH, C_KW, C_SY, C_SX, C_PY, C_PX]] = (3, 3, 2, 2, 1, 1)
    table = connection_table(row).reshape(5, 7, 6)
    ty = axis_taps(5, 3, 3, 2, 1)
    tx = axis_taps(7, 4, 3, 2, 1)
    for y in range(5):
        for x in range(7):
            assert table[y, x].tolist() == ty[y].tolist() + tx[x].tolist()


def test_channel_shift():
    assert [channel_shift(c) for c in (1, 2, 16, 64, 512)] == [0, 1, 4, 6, 9]
    assert [channel_shift(c) for c in (3, 6, 10, 100)] == [-1, -1, -1, -1]
