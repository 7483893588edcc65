"""The :class:`Simulator`: load a network, feed an input, run or step through events.

``run()``, ``run(until=t)`` and ``step()`` all call the same jitted kernel
(:func:`eventsnn.engine.cpu.advance`), so what a notebook shows step by step is
what a full run does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..encoding import bernoulli_spikes, poisson_process_spikes, sample_rng
from ..errors import DataError, NetworkError, SimulationError
from ..network import Network
from . import cpu
from .layout import (aligned_zeros, P_BLOCK, C_DST, C_SRC, P_KIND, P_INTEGRATE, P_LEAKY, P_N, Q_CUR, Q_HEAP_N,
                     ST_BREAK, ST_EMPTY, ST_GROW_LOG, ST_GROW_QUEUE, ST_PAUSED, ST_UNTIL)
from .debug import DebugMixin
from .plan import Plan, flat_input
from .queue import EventQueue

_STATUS = {ST_EMPTY: "done", ST_UNTIL: "until", ST_PAUSED: "paused", ST_BREAK: "breakpoint"}
ORDERS = ("time", "layer")


def _grown(log: tuple) -> tuple:
    """The log tuple with its spike and trace arrays doubled (counts and flags kept)."""
    def more(a):
        return np.concatenate([a, np.zeros(max(a.size, 1 << 12), a.dtype)])
    return tuple(more(a) for a in log[:3]) + (log[3],) + tuple(more(a) for a in log[4:8]) + log[8:]


@dataclass(frozen=True)
class Event:
    """One queued event: ``layer`` receives it at ``time`` from ``source[neuron]``.

    A sentinel (``source is None``) carries no spike; it only schedules the
    layer's update at ``time`` (input emission, recheck, constant current).
    """

    time: float
    layer: str
    source: str | None
    neuron: int
    conn: int = -1  # the connection it crosses (a residual add can take two from one source)


class Simulator(DebugMixin):
    """Event-driven simulation of one network, one input sample at a time.

    ``run()``, ``run(until=t)``, ``step()``, ``peek()``, breakpoints and watches
    (see :mod:`eventsnn.engine.debug`) all drive the same jitted kernel.

    Parameters: ``timesteps`` (steps in discrete mode, duration in time units in
    continuous mode), ``mode`` (``"discrete"`` or ``"continuous"``),
    ``encoding`` (overrides the network's), ``seed`` and ``poisson_rate`` for
    rate coding, ``record_spikes`` to keep every spike as (time, layer, neuron).

    ``order`` is the order in which (time, layer) keys are processed:
    ``"time"`` (default; all layers step by step, as a clock-driven simulator
    does) or ``"layer"`` (discrete time only: each layer for all its steps,
    then the next). A layer's input at step t comes only from lower layers at
    step t, and every bucket receives its events in the same order either way,
    so both give bit-identical spikes, potentials and counts; ``"layer"``
    keeps one layer's weights in cache across steps (VGG16 on 32x32 inputs
    runs 1.3-1.7x faster, BENCHMARKS.md) at the cost of holding a whole
    layer's output in the queue (no gain, and more memory, at 224x224).
    With ``"layer"``, ``run(until=t)`` runs every layer but the last to the
    end and the last up to ``t`` (so readouts at ``t`` are exact), and
    ``break_at``/``break_when`` are not available.
    """

    def __init__(self, network, timesteps: int = 100, mode: str = "discrete", encoding: str | None = None,
                 seed: int = 0, poisson_rate: float = 1.0, record_spikes: bool = False, order: str = "time"):
        if isinstance(network, (str, os.PathLike)):
            from ..io import load_network
            network = load_network(network)
        if not isinstance(network, Network):
            raise NetworkError(f"expected a Network or a path, got {type(network).__name__}")
        if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
            raise SimulationError(f"timesteps must be a positive integer, got {timesteps!r}")
        if not (np.isfinite(poisson_rate) and poisson_rate > 0):
            raise SimulationError(f"poisson_rate must be positive, got {poisson_rate!r}")
        if order not in ORDERS:
            raise SimulationError(f"unknown event order {order!r} (known: {', '.join(ORDERS)})")
        if order == "layer" and mode != "discrete":
            raise SimulationError("order 'layer' needs discrete time (synaptic delays can reorder layers)")
        limits.check_run(network, int(timesteps), record_spikes=record_spikes)  # before any allocation
        self.network = network
        self.order = order
        self.plan = plan = Plan(network, int(timesteps), mode, encoding)
        self.timesteps = int(timesteps)
        self.seed = int(seed)
        self.poisson_rate = float(poisson_rate)
        self.record_spikes = bool(record_spikes)
        n_pops = len(plan.pops)
        self.layer_names = [p.name for p in plan.pops]
        n, u = plan.n_neurons, plan.n_units
        self._v = aligned_zeros(n, np.float32)
        self._inp = aligned_zeros(n, np.float32)
        self._const = aligned_zeros(n, np.float32)
        self._last_t = np.zeros(n, np.float64)
        self._tflag = np.zeros(u, np.uint8)
        self._tlist = np.zeros(u, np.int32)
        self._tn = np.zeros(n_pops, np.int64)
        self._gate_cnt = np.zeros(plan.n_gate, np.int64)  # int64: spike counts, as _spike_count
        self._gate_last = np.full(plan.n_gate, -1.0, np.float64)
        self._spike_count = np.zeros(n, np.int64)  # int64: a multi-spike run overflows int32
        self._in_time = np.zeros(0, np.float64)
        self._in_idx = np.zeros(0, np.int32)
        self._clock = np.zeros(1, np.float64)
        # Largest synaptic drive (I_spikes + I_const) seen by each layer, kept
        # when track_max_input is set (spike-norm reads it).
        self.max_input = np.full(n_pops, -np.inf, np.float32)
        self.syn_ops = np.zeros((n_pops, self.timesteps), np.int64)
        self.spikes_per_step = np.zeros((n_pops, self.timesteps), np.int64)
        self.updates = np.zeros((n_pops, self.timesteps), np.int64)
        self.analog_macs = np.zeros(n_pops, np.int64)
        cap = 1 << 12 if record_spikes else 0
        # spike log (time, layer, neuron, count), then membrane trace (time, neuron,
        # V before reset, V after, count, on-flag)
        self._log = (np.zeros(cap, np.float64), np.zeros(cap, np.int32), np.zeros(cap, np.int32),
                     np.zeros(1, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int32),
                     np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(1, np.int64),
                     np.zeros(1, np.int64), np.zeros(1, np.int64))
        self._brk_pop = np.zeros(n_pops, np.uint8)
        self._brk_neuron = np.zeros(n, np.uint8)
        self._brk_hit = np.zeros(4, np.float64)
        self._traced = np.zeros(n, np.uint8)
        # Scratch for the spike pass: which neurons of one unit crossed threshold.
        self._crossed = aligned_zeros(max(int(plan.pop_i[:, P_BLOCK].max()), 8) + 8, np.uint8)
        self.queue = EventQueue(n_pops, layer_major=order == "layer",
                                max_bytes=limits.queue_budget(network, int(timesteps)))
        self.events_processed = 0
        self._loaded = False
        self._init_debug()

    @property
    def track_max_input(self) -> bool:
        return bool(self._log[10][0])

    @track_max_input.setter
    def track_max_input(self, on: bool) -> None:
        self._log[10][0] = int(bool(on))

    # -- feeding input ---------------------------------------------------------
    def reset(self, x, sample_index: int = 0, input_spikes=None) -> "Simulator":
        """Clear all state and load one input sample (H, W, C).

        ``input_spikes`` = (times, indices) replaces the rate encoder with the
        given input spike train (poisson encoding only).
        """
        plan = self.plan
        xf = flat_input(plan, x)
        for arr in (self._v, self._inp, self._last_t, self._tflag, self._tn, self._gate_cnt,
                    self._spike_count, self.syn_ops, self.spikes_per_step, self.updates,
                    self.analog_macs, self._clock):
            arr[...] = 0
        self._gate_last[:] = -1.0
        self.max_input[:] = -np.inf
        self._log[3][0] = 0
        self._log[8][0] = 0
        self._brk_hit[:] = 0
        self._const[:] = plan.const_base
        # V[-1] = v_init * threshold: the state before step 0 (so step 0 leaks it,
        # V[t] = leak V[t-1] + I[t] for every t >= 0); in continuous time V(0).
        self._v[:] = plan.v_initial
        self._last_t[:] = 0.0 if plan.continuous else -1.0
        self.queue.clear()
        if plan.encoding == "direct":
            if input_spikes is not None:
                raise SimulationError("input_spikes needs poisson encoding")
            self._in_time = np.zeros(0, np.float64)
            self._in_idx = np.zeros(0, np.int32)
            cpu.inject_analog(plan.net_arrays(), self._state(), xf, plan.analog_conns, self.analog_macs)
            # The analog pass marks touched units; start_sample marks all of them anyway.
            self._tflag[:] = 0
            self._tn[:] = 0
        elif input_spikes is not None:
            times, idx = (np.asarray(a) for a in input_spikes)
            order = np.lexsort((idx, times))
            self._in_time = np.ascontiguousarray(times[order], np.float64)
            self._in_idx = np.ascontiguousarray(idx[order], np.int32)
            if self._in_idx.size and (self._in_idx.min() < 0 or self._in_idx.max() >= xf.size):
                raise DataError("input_spikes: neuron index out of range")
        else:
            rng = sample_rng(self.seed, sample_index)
            if plan.continuous:
                self._in_time, self._in_idx = poisson_process_spikes(xf, self.timesteps, rng, self.poisson_rate)
            else:
                self._in_time, self._in_idx = bernoulli_spikes(xf, self.timesteps, rng, self.poisson_rate)
        self.queue.ensure(len(plan.pops) + 2, len(plan.pops) + 2)
        cpu.start_sample(plan.net_arrays(), self._state(), self.queue.arrays(), float(self.timesteps))
        self.events_processed = 0
        self._loaded = True
        return self

    def _state(self) -> tuple:
        return (self._v, self._inp, self._const, self._last_t, self._tflag, self._tlist, self._tn,
                self._gate_cnt, self._gate_last, self._spike_count, self._in_time, self._in_idx,
                self._clock, self.max_input, self._brk_pop, self._brk_neuron, self._brk_hit,
                self._traced, self._crossed)

    # -- running -----------------------------------------------------------------
    def _advance(self, until: float, max_events: int) -> str:
        if not self._loaded:
            raise SimulationError("no input loaded: call reset(x) first")
        plan = self.plan
        until = min(float(until), float(self.timesteps))
        left = max_events
        while True:
            status, done = cpu.advance(plan.net_arrays(), self._state(), self.queue.arrays(),
                                       (self.syn_ops, self.spikes_per_step, self.updates), self._log,
                                       self.record_spikes, float(self.timesteps), until, left,
                                       plan.continuous)
            self.events_processed += done
            left -= done
            if status == ST_GROW_QUEUE:
                self.queue.ensure(self.queue.ev_conn.size + 1, self.queue.b_time.size + 1)
            elif status == ST_GROW_LOG:
                # recorded spikes and membrane traces double in place: bounded by the memory limit
                limits.check_bytes(3 * sum(int(a.nbytes) for a in self._log), "the recorded spikes and traces")
                self._log = _grown(self._log)
            else:
                return _STATUS[status]

    def peek(self) -> Event | None:
        """The next event to be processed, or None when the sample is finished."""
        q = self.queue
        b = int(q.qs[Q_CUR])
        if b < 0 or q.b_head[b] < 0:
            if q.qs[Q_HEAP_N] == 0:
                return None
            b = int(q.heap[0])
        t = float(q.b_time[b])
        if t >= self.timesteps:
            return None
        e = int(q.b_head[b])
        conn = int(q.ev_conn[e])
        layer = self.layer_names[int(q.b_rank[b])]
        if conn < 0:
            return Event(t, layer, None, -1)
        idx = int(q.ev_idx[e])
        if idx < 0:  # a run of input spikes: its next one (see cpu._flush_input)
            idx = int(self._in_idx[-idx - 2])
        return Event(t, layer, self.layer_names[int(self.plan.conn_i[conn, C_SRC])], idx, conn)

    # -- reading state -------------------------------------------------------------
    @property
    def time(self) -> float:
        """Time of the latest event processed (in layer order: of any layer)."""
        return float(self._clock[0])

    def _pop(self, layer) -> int:
        if isinstance(layer, (int, np.integer)):
            if not 0 <= layer < len(self.layer_names):
                raise KeyError(f"no population {layer}")
            return int(layer)
        try:
            return self.plan.pop_index[layer]
        except KeyError:
            raise KeyError(f"no spiking layer named {layer!r}; spiking layers: {self.layer_names[1:]}") from None

    def potentials(self, layer, at: float | None = None) -> np.ndarray:
        """Membrane potentials of a layer, decayed to time ``at`` (default: now), shape (H, W, C)."""
        p = self._pop(layer)
        pop = self.plan.pops[p]
        if self.plan.pop_i[p, P_KIND] != P_INTEGRATE:
            raise KeyError(f"layer {pop.name!r} has no membrane potential")
        sl = self.plan.pop_slice(p)
        v = self._v[sl].copy()
        if self.plan.pop_i[p, P_LEAKY]:
            at = self.time if at is None else float(at)
            dt = np.maximum(at - self._last_t[sl], 0.0)
            if self.plan.continuous:
                v = (v * np.exp(-dt / self.plan.pop_tau[p])).astype(np.float32)
            else:
                v = v * self.plan.decay[p, np.minimum(dt, self.timesteps).astype(np.int64)]
        return v.reshape(pop.shape)

    def spike_counts(self, layer) -> np.ndarray:
        """Spikes of each neuron of a layer so far, shape (H, W, C)."""
        p = self._pop(layer)
        return self._spike_count[self.plan.pop_slice(p)].reshape(self.plan.pops[p].shape).copy()

    def recorded_spikes(self, layer=None):
        """Recorded spikes as (times, layer ranks, neuron indices), or (times, neurons) of one layer."""
        if not self.record_spikes:
            raise SimulationError("spikes were not recorded: create the Simulator with record_spikes=True")
        n = int(self._log[3][0])
        t, p, i = (a[:n].copy() for a in self._log[:3])
        if layer is None:
            return t, p, i
        sel = p == self._pop(layer)
        return t[sel], i[sel]

    def _end(self, at):
        if at is not None:
            return float(at)
        return float(self.timesteps if self.plan.continuous else self.timesteps - 1)

    def output(self, at: float | None = None) -> np.ndarray:
        """The decoded output so far: spike counts, or membrane potentials at time ``at``
        (membrane readout; default: the end of the sample)."""
        last = len(self.plan.pops) - 1
        if self.network.decoding == "membrane":
            return self.potentials(last, at=self._end(at)).reshape(-1).astype(np.float64)
        return self._spike_count[self.plan.pop_slice(last)].astype(np.float64)

    def prediction(self, at: float | None = None) -> int:
        """The winning class: most output spikes, ties broken by the higher potential."""
        out = self.output(at)
        if self.network.decoding == "membrane":
            return int(np.argmax(out))
        best = np.flatnonzero(out == out.max())
        if best.size > 1 and self.plan.pop_i[-1, P_KIND] == P_INTEGRATE:
            v = self.potentials(len(self.plan.pops) - 1, at=self._end(at)).reshape(-1)
            return int(best[np.argmax(v[best])])
        return int(best[0])

    def totals(self) -> dict:
        """Per-layer totals of this sample: spikes, synaptic ops, neuron updates, analog MACs."""
        return {"spikes": self.spikes_per_step.sum(axis=1), "syn_ops": self.syn_ops.sum(axis=1),
                "updates": self.updates.sum(axis=1), "analog_macs": self.analog_macs.copy()}

    @property
    def neurons(self) -> np.ndarray:
        return self.plan.pop_i[:, P_N].copy()

    def snapshot(self) -> dict:
        """A copy of the whole simulation state (restore it with :meth:`restore`)."""
        arrays = {k: v.copy() for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return {"arrays": arrays, "log": tuple(a.copy() for a in self._log),
                "queue": self.queue.snapshot(), "events": self.events_processed, "loaded": self._loaded}

    def restore(self, snap: dict) -> None:
        for k, v in snap["arrays"].items():
            setattr(self, k, v.copy())
        self._log = tuple(a.copy() for a in snap["log"])
        self.queue.restore(snap["queue"])
        self.events_processed = snap["events"]
        self._loaded = snap["loaded"]

    def connection_targets(self) -> list:
        """(source layer, target layer) of each connection, in connection order."""
        return [(self.layer_names[int(r[C_SRC])], self.layer_names[int(r[C_DST])]) for r in self.plan.conn_i]

