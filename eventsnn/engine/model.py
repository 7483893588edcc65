"""The data every kernel reads, as named tuples grouped by lifetime.

One class per group; its fields are defined here and nowhere else, and kernels
read them by name (``topo.conn_i``, ``state.v``), never by position. In numba a
``NamedTuple`` of arrays compiles to the same machine code as a plain tuple,
and unlike ``jitclass`` or ``structref`` it needs no reference counting (the
engine compiles without NRT) and also runs in numba.cuda.

Lifetimes:

- :class:`Topology`: the fixed structure of a compiled network (connection and
  population tables, fan-out and fan-in geometry). Built once per network.
- :class:`Params`: what learning may change: weights, biases, thresholds,
  leaks (and the leak powers derived from them). Written back to a
  :class:`~eventsnn.network.Network` by :mod:`.compile`.
- :class:`State`: one sample's dynamic state (potentials, touched lists,
  input spikes, max-pool gate counts). Cleared by ``reset``.
- :class:`Counters`: exact per-layer, per-step counts (int64).
- :class:`Recorder`: the spike log and membrane traces (:mod:`.recording`).
- :class:`Probes`: breakpoints the kernel checks when a neuron spikes.
- :class:`Switches`: every on/off option of one kernel call, by value.

The integer tables keep named column constants (:mod:`.layout`), since a row
of a table is data, not an argument list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Topology(NamedTuple):
    """Fixed structure of the compiled network (see :mod:`.compile`)."""

    conn_i: np.ndarray  # (n_conns, C_NFIELDS) int64: one row per connection (layout.C_*)
    conn_delay: np.ndarray  # (n_conns,) float64 synaptic delay (continuous time)
    pop_i: np.ndarray  # (n_pops, P_NFIELDS) int64: one row per population (layout.P_*)
    pop_tau: np.ndarray  # (n_pops,) float64 time constant (continuous-time leak)
    pop_vinit: np.ndarray  # (n_pops,) float64 initial potential / threshold
    out_conn: np.ndarray  # int32: outgoing connections of each population (pop_i[P_OC_START..])
    conn_geo: np.ndarray  # int32 fan-out geometry tables (source position -> targets), .geometry
    conn_fgeo: np.ndarray  # int32 fan-in geometry tables (target position -> sources), .geometry


class Params(NamedTuple):
    """Learnable parameters. ``decay`` is derived from ``leak`` (see compile.refresh_decay)."""

    weights: np.ndarray  # float32, 64-byte aligned; conv blocks stored (C_in, kh, kw, C_out), kx reversed
    bias: np.ndarray  # float32: one full-size segment per connection with a bias (C_BOFF)
    thr: np.ndarray  # float32 threshold of every neuron (inf where a population has none)
    leak: np.ndarray  # float64 per-step retention factor of every population (1: IF)
    decay: np.ndarray  # float32 (n_pops, T + 1): leak ** dt, so the discrete leak needs no pow()


class State(NamedTuple):
    """One sample's dynamic state."""

    v: np.ndarray  # float32 membrane potential
    inp: np.ndarray  # float32 event input accumulated for the pending update
    const: np.ndarray  # float32 constant current (biases, analog input)
    last_t: np.ndarray  # float64 time of each neuron's last update (lazy leak)
    tflag: np.ndarray  # uint8 per unit: already in its population's touched list
    tlist: np.ndarray  # int32 touched units, per population from pop_i[P_UOFF]
    tn: np.ndarray  # int64 per population: length of its touched list
    gate_cnt: np.ndarray  # int64 spike counts seen by max-pool gates
    gate_last: np.ndarray  # float64 last spike time seen by max-pool gates
    spike_count: np.ndarray  # int64 spikes of every neuron so far
    in_time: np.ndarray  # float64 input spike times, sorted
    in_idx: np.ndarray  # int32 input spike neurons
    clock: np.ndarray  # float64 [1]: time of the latest event processed
    max_input: np.ndarray  # float32 per population: largest drive seen (spike-norm)
    crossed: np.ndarray  # uint8 scratch of the spike pass over wide units


class Counters(NamedTuple):
    """Exact counts, per population (and step)."""

    syn_ops: np.ndarray  # int64 (n_pops, T) synaptic events delivered into the population
    spikes: np.ndarray  # int64 (n_pops, T) spikes emitted
    updates: np.ndarray  # int64 (n_pops, T) neuron updates
    analog_macs: np.ndarray  # int64 (n_pops,) multiply-accumulates of the analog first layer


class Recorder(NamedTuple):
    """The spike log and the membrane traces (owned by :class:`.recording.Recording`)."""

    spike_t: np.ndarray  # float64
    spike_pop: np.ndarray  # int32
    spike_neuron: np.ndarray  # int32
    spike_n: np.ndarray  # int64 [1]: entries used
    trace_t: np.ndarray  # float64
    trace_neuron: np.ndarray  # int32 (flat over all populations)
    trace_pre: np.ndarray  # float32 potential after integration, before reset
    trace_post: np.ndarray  # float32 potential after reset
    trace_n: np.ndarray  # int64 [1]: entries used
    traced: np.ndarray  # uint8 per neuron: record its potential


# Probes.hit[0] states: nothing hit, hit in this call, hit and already reported.
BRK_NONE, BRK_HIT, BRK_REPORTED = 0, 1, 2


class Probes(NamedTuple):
    """Spike breakpoints, checked where a spike is emitted."""

    on_pop: np.ndarray  # uint8 per population: stop on any of its spikes
    on_neuron: np.ndarray  # uint8 per neuron: stop on its spikes
    hit: np.ndarray  # int64 [state (BRK_*), population, neuron]
    hit_time: np.ndarray  # float64 [1]


class Switches(NamedTuple):
    """Every on/off option of one kernel call, passed by value."""

    continuous: bool  # continuous time (exact exponential leak, delays)
    record_spikes: bool  # append every spike to the recorder
    trace: bool  # record the potential of traced neurons at each update
    track_max_input: bool  # keep each population's largest drive (spike-norm)


class Queue(NamedTuple):
    """The arrays of :class:`.queue.EventQueue` and its order (see there)."""

    qs: np.ndarray  # int64 scalar slots (layout.Q_*)
    ev_conn: np.ndarray
    ev_idx: np.ndarray
    ev_next: np.ndarray
    ev_free: np.ndarray
    b_time: np.ndarray
    b_rank: np.ndarray
    b_seq: np.ndarray
    b_head: np.ndarray
    b_tail: np.ndarray
    b_free: np.ndarray
    heap: np.ndarray
    last_bucket: np.ndarray
    runs: np.ndarray  # int32 spike runs of flushed layers: neuron indices, each run ended by RUN_END
    layer_major: bool  # buckets ordered by (rank, time, seq) instead of (time, rank, seq)


def array_fields(group) -> dict:
    """The array fields of a named tuple, by name (for snapshots and copies)."""
    return {k: v for k, v in group._asdict().items() if isinstance(v, np.ndarray)}
