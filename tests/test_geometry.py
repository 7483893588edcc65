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


def random_axis(seed):
    """(n_in, n_out, kernel, stride, padding) of a random valid conv axis."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    stride = int(rng.integers(1, 4))
    pad = int(rng.integers(0, k))
    n_in = int(rng.integers(k, 20))
    return n_in, (n_in + 2 * pad - k) // stride + 1, k, stride, pad


@pytest.mark.parametrize("seed", range(40))
def test_axis_taps_match_brute_force(seed):
    n_in, n_out, k, stride, pad = random_axis(seed)
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


# -- fan-in: the sources of a target, the inverse of the fan-out ----------------------------

def brute_sources(n_in, n_out, k, stride, pad):
    """For each output coordinate: every (input, tap) with o*stride - pad + tap == input, inside."""
    return [[(o * stride - pad + t, t) for t in range(k) if 0 <= o * stride - pad + t < n_in]
            for o in range(n_out)]


@pytest.mark.parametrize("seed", range(40))
def test_axis_sources_match_brute_force(seed):
    from eventsnn.engine.geometry import axis_sources
    n_in, n_out, k, stride, pad = random_axis(seed)
    table = axis_sources(n_in, n_out, k, stride, pad)
    for o, pairs in enumerate(brute_sources(n_in, n_out, k, stride, pad)):
        count, first, tap = (int(v) for v in table[o])
        assert [(first + a, tap + a) for a in range(count)] == pairs


def _synapse_sets(sim, conn):
    """{(source, target, weight index)} of a connection from the fan-out and from the fan-in side."""
    from eventsnn.engine.layout import C_DST, C_SRC
    row = sim.plan.conn_i[conn]
    n_src = sim.plan.pops[int(row[C_SRC])].size
    n_dst = sim.plan.pops[int(row[C_DST])].size
    out, into = set(), set()
    for i in range(n_src):
        targets, w = sim.synapses_out(conn, i)
        out |= {(i, int(t), int(k)) for t, k in zip(targets, w)}
    for j in range(n_dst):
        sources, w = sim.synapses_in(conn, j)
        into |= {(int(s), j, int(k)) for s, k in zip(sources, w)}
    return out, into


@pytest.mark.parametrize("seed", range(25))
def test_fanin_inverts_fanout_on_random_nets(seed):
    """Every synapse the fan-out lists (with its weight index) is listed by the fan-in of its
    target, and nothing else: conv (stride, padding), dense, avg/max pools, residual adds."""
    from eventsnn.engine.simulator import Simulator
    from netgen import random_network
    rng = np.random.default_rng(seed)
    net = random_network(rng, "poisson")
    sim = Simulator(net, timesteps=2)
    for conn in range(len(sim.plan.conn_i)):
        out, into = _synapse_sets(sim, conn)
        assert out == into
        assert len(out) == sim.plan.fanout_total(conn)


def test_fanin_against_conv_definition():
    """Brute force from the conv definition: target (oy, ox, co) reads input (oy*s - p + ky,
    ox*s - p + kx, ci) through weight[ky, kx, ci, co]."""
    from eventsnn.engine.simulator import Simulator
    from eventsnn.network import Layer, Network, Neuron
    rng = np.random.default_rng(5)
    h, w, ci, co, k, s, p = 7, 6, 3, 4, 3, 2, 1
    weight = rng.standard_normal((k, k, ci, co)).astype(np.float32)
    net = Network((h, w, ci), [Layer("c", "conv2d", ("input",), weight=weight, stride=(s, s), padding=(p, p),
                                     neuron=Neuron())], encoding="poisson")
    sim = Simulator(net, timesteps=1)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    for oy in range(oh):
        for ox in range(ow):
            for c_out in range(co):
                want = {}
                for ky in range(k):
                    for kx in range(k):
                        y, x = oy * s - p + ky, ox * s - p + kx
                        if 0 <= y < h and 0 <= x < w:
                            for c_in in range(ci):
                                want[(y * w + x) * ci + c_in] = weight[ky, kx, c_in, c_out]
                sources, windex = sim.synapses_in(0, (oy * ow + ox) * co + c_out)
                got = dict(zip(sources.tolist(), sim.params.weights[windex].tolist()))
                assert got == {key: float(v) for key, v in want.items()}
