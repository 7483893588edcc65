"""The :class:`Simulator`: load a network, feed an input, run or step through events.

``run()``, ``run(until=t)`` and ``step()`` all call the same jitted kernel (the
backend's ``advance``, :mod:`.backends`), so what a notebook shows step by step
is what a full run does. The Simulator owns the kernel data (:mod:`.model`):
the compiled network (:mod:`.compile`), one sample's state, the counters, the
recorder (:mod:`.recording`) and the breakpoint probes; the debugger
(:mod:`.debug`) drives it through its public methods.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..encoding import bernoulli_spikes, poisson_process_spikes, sample_rng
from ..errors import DataError, NetworkError, SimulationError
from ..network import Network
from .backends import get_backend, resolve_backend
from .compile import Plan, flat_input
from .debug import Debugger
from .layout import (aligned_zeros, C_DST, C_SRC, P_INTEGRATE, P_KIND, P_LEAKY, P_N, Q_CUR, Q_HEAP_N,
                     Q_RUN_NEED, ST_BREAK, ST_EMPTY, ST_GROW_LOG, ST_GROW_QUEUE, ST_GROW_RUNS, ST_PAUSED, ST_UNTIL)
from .model import BRK_NONE, Counters, Probes, State, Switches, array_fields
from .plugs import registered
from .queue import EventQueue
from .recording import Recording

_STATUS = {ST_EMPTY: "done", ST_UNTIL: "until", ST_PAUSED: "paused", ST_BREAK: "breakpoint"}
ORDERS = ("time", "layer")


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


class Simulator:
    """Event-driven simulation of one network, one input sample at a time.

    ``run()``, ``run(until=t)``, ``step()``, ``peek()``, breakpoints and watches
    (see :mod:`eventsnn.engine.debug`) all drive the same jitted kernel.

    Parameters: ``timesteps`` (steps in discrete mode, duration in time units in
    continuous mode), ``mode`` (``"discrete"`` or ``"continuous"``),
    ``encoding`` (overrides the network's), ``seed`` and ``poisson_rate`` for
    rate coding, ``record_spikes`` to keep every spike as (time, layer, neuron),
    ``backend`` (``"cpu"``; ``"cuda"``: :mod:`.cuda`, whole samples in discrete
    time; ``"auto"``: CUDA when a GPU is present), and ``plug``: a registered per-event / per-spike
    hook (:mod:`eventsnn.engine.plugs`), e.g. a plasticity rule, or None.
    ``plan``: the compiled :class:`~.compile.Plan` of another Simulator of the
    same network, timesteps, mode and encoding, shared read-only (one per
    thread of :func:`eventsnn.parallel.run_sharded`: compiling VGG16's tables
    takes ~0.4 s, the per-thread state ~1 ms); not with a plug.

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
    ``break_at``/``break_when`` are not available. A plug that couples layers
    within a step (a rule reading a later layer's spikes) needs ``"time"``.
    """

    def __init__(self, network, timesteps: int = 100, mode: str = "discrete", encoding: str | None = None,
                 seed: int = 0, poisson_rate: float = 1.0, record_spikes: bool = False, order: str = "time",
                 backend: str = "cpu", plug=None, plan=None):
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
        self.backend_name = resolve_backend(backend)
        self.backend = get_backend(self.backend_name)
        self.network = network
        self.order = order
        if plan is None:
            plan = Plan(network, int(timesteps), mode, encoding)
        elif not (isinstance(plan, Plan) and plan.net is network and plan.timesteps == int(timesteps)
                  and plan.mode == mode and plan.encoding == (encoding or network.encoding)):
            raise SimulationError("plan was not compiled for this network, timesteps, mode and encoding")
        elif plug is not None:
            raise SimulationError("a Simulator with a plug compiles its own plan (a plug may change its parameters)")
        self.plan = plan
        self.topology, self.params = plan.topology, plan.params
        self.timesteps = int(timesteps)
        self.seed = int(seed)
        self.poisson_rate = float(poisson_rate)
        self.record_spikes = bool(record_spikes)
        self.plug = plug
        n_pops = len(plan.pops)
        self.layer_names = [p.name for p in plan.pops]
        n, u = plan.n_neurons, plan.n_units
        self.state = State(
            v=aligned_zeros(n, np.float32), inp=aligned_zeros(n, np.float32), const=aligned_zeros(n, np.float32),
            last_t=np.zeros(n, np.float64), tflag=np.zeros(u, np.uint8), tlist=np.zeros(u, np.int32),
            tn=np.zeros(n_pops, np.int64), gate_cnt=np.zeros(plan.n_gate, np.int64),
            gate_last=np.full(plan.n_gate, -1.0, np.float64), spike_count=np.zeros(n, np.int64),
            in_time=np.zeros(0, np.float64), in_idx=np.zeros(0, np.int32), clock=np.zeros(1, np.float64),
            # Largest synaptic drive (I_spikes + I_const) seen by each layer, kept
            # when track_max_input is set (spike-norm reads it).
            max_input=np.full(n_pops, -np.inf, np.float32),
            # Scratch for the spike pass: which neurons of one unit (or a whole layer,
            # cpu._flush_flat) crossed threshold.
            crossed=aligned_zeros(max(int(plan.pop_i[:, P_N].max()), 8) + 8, np.uint8))
        self.counters = Counters(syn_ops=np.zeros((n_pops, self.timesteps), np.int64),
                                 spikes=np.zeros((n_pops, self.timesteps), np.int64),
                                 updates=np.zeros((n_pops, self.timesteps), np.int64),
                                 analog_macs=np.zeros(n_pops, np.int64))
        self.recording = Recording(n, record_spikes)
        self.probes = Probes(on_pop=np.zeros(n_pops, np.uint8), on_neuron=np.zeros(n, np.uint8),
                             hit=np.zeros(3, np.int64), hit_time=np.zeros(1, np.float64))
        self.track_max_input = False
        self.queue = EventQueue(n_pops, layer_major=order == "layer",
                                max_bytes=limits.queue_budget(network, int(timesteps)))
        self.events_processed = 0
        self._loaded = False
        self.debugger = Debugger(self)

    # -- the plug ------------------------------------------------------------------
    @property
    def plug(self):
        return self._plug

    @plug.setter
    def plug(self, plug) -> None:
        if not registered(plug):
            raise SimulationError(f"plug of type {type(plug).__name__} is not registered "
                                  "(see eventsnn.engine.plugs.register_plug)")
        self._plug = plug

    # -- counters under their historical names --------------------------------------
    @property
    def syn_ops(self) -> np.ndarray:
        """(layers, timesteps) synaptic operations delivered into each layer per step."""
        return self.counters.syn_ops

    @property
    def spikes_per_step(self) -> np.ndarray:
        return self.counters.spikes

    @property
    def updates(self) -> np.ndarray:
        return self.counters.updates

    @property
    def analog_macs(self) -> np.ndarray:
        return self.counters.analog_macs

    @property
    def max_input(self) -> np.ndarray:
        return self.state.max_input

    # -- feeding input ---------------------------------------------------------
    def reset(self, x, sample_index: int = 0, input_spikes=None) -> "Simulator":
        """Clear all state and load one input sample (H, W, C).

        ``input_spikes`` = (times, indices) replaces the rate encoder with the
        given input spike train (poisson encoding only).
        """
        plan, st = self.plan, self.state
        xf = flat_input(plan, x)
        for arr in (st.v, st.inp, st.last_t, st.tflag, st.tn, st.gate_cnt, st.spike_count, st.clock,
                    *self.counters):
            arr[...] = 0
        st.gate_last[:] = -1.0
        st.max_input[:] = -np.inf
        self.recording.clear()
        self.probes.hit[:] = BRK_NONE
        st.const[:] = plan.constant_current(self.params)
        # V[-1] = v_init * threshold: the state before step 0 (so step 0 leaks it,
        # V[t] = leak V[t-1] + I[t] for every t >= 0); in continuous time V(0).
        st.v[:] = plan.initial_potential(self.params)
        st.last_t[:] = 0.0 if plan.continuous else -1.0
        self.queue.clear()
        if plan.encoding == "direct":
            if input_spikes is not None:
                raise SimulationError("input_spikes needs poisson encoding")
            in_time, in_idx = np.zeros(0, np.float64), np.zeros(0, np.int32)
            self.state = st = st._replace(in_time=in_time, in_idx=in_idx)
            self.backend.inject_analog(self.topology, self.params, st, xf, plan.analog_conns,
                                       self.counters.analog_macs)
            # The analog pass marks touched units; start_sample marks all of them anyway.
            st.tflag[:] = 0
            st.tn[:] = 0
        elif input_spikes is not None:
            times, idx = (np.asarray(a) for a in input_spikes)
            order = np.lexsort((idx, times))
            in_time = np.ascontiguousarray(times[order], np.float64)
            in_idx = np.ascontiguousarray(idx[order], np.int32)
            if in_idx.size and (in_idx.min() < 0 or in_idx.max() >= xf.size):
                raise DataError("input_spikes: neuron index out of range")
            self.state = st._replace(in_time=in_time, in_idx=in_idx)
        else:
            rng = sample_rng(self.seed, sample_index)
            if plan.continuous:
                in_time, in_idx = poisson_process_spikes(xf, self.timesteps, rng, self.poisson_rate)
            else:
                in_time, in_idx = bernoulli_spikes(xf, self.timesteps, rng, self.poisson_rate)
            self.state = st._replace(in_time=in_time, in_idx=in_idx)
        self.queue.ensure(len(plan.pops) + 2, len(plan.pops) + 2)
        self.backend.start_sample(self.topology, self.state, self.queue.arrays(), float(self.timesteps))
        self.events_processed = 0
        self._loaded = True
        return self

    # -- running -----------------------------------------------------------------
    def switches(self) -> Switches:
        return Switches(continuous=self.plan.continuous, record_spikes=self.record_spikes,
                        trace=self.recording.tracing_on, track_max_input=bool(self.track_max_input))

    def advance(self, until: float = np.inf, max_events: int = np.iinfo(np.int64).max) -> str:
        """Process events until ``until``, ``max_events`` events, the end of the sample
        or a spike breakpoint; return ``"done"``, ``"until"``, ``"paused"`` or ``"breakpoint"``."""
        if not self._loaded:
            raise SimulationError("no input loaded: call reset(x) first")
        until = min(float(until), float(self.timesteps))
        left = int(max_events)
        sw = self.switches()
        while True:
            status, done = self.backend.advance(self.topology, self.params, self.state, self.queue.arrays(),
                                                self.counters, self.recording.arrays, self.probes, sw,
                                                float(self.timesteps), until, left, self._plug)
            self.events_processed += done
            left -= done
            if status == ST_GROW_QUEUE:
                self.queue.ensure(self.queue.ev_conn.size + 1, self.queue.b_time.size + 1)
            elif status == ST_GROW_RUNS:
                self.queue.ensure(0, 0, int(self.queue.qs[Q_RUN_NEED]))
            elif status == ST_GROW_LOG:
                # recorded spikes and membrane traces double: bounded by the memory limit
                limits.check_bytes(3 * self.recording.nbytes(), "the recorded spikes and traces")
                self.recording.grow()
            else:
                return _STATUS[status]

    def run(self, until: float | None = None) -> str:
        """Process events until the sample ends, ``until``, or a breakpoint.

        Returns ``"done"``, ``"until"`` or ``"breakpoint"`` (see ``last_break``).
        Call again to continue.
        """
        return self.debugger.run(until)

    def step(self):
        """Process exactly one event (and the layer update it completes); describe it
        (a :class:`~eventsnn.engine.debug.StepResult`, or None when the sample is finished)."""
        return self.debugger.step()

    def peek(self) -> Event | None:
        """The next event to be processed, or None when the sample is finished."""
        if not getattr(self.backend, "HAS_QUEUE", True):
            raise SimulationError(f"backend {self.backend_name!r} runs whole steps without an event queue: "
                                  "peek() and step() are CPU-only (use backend='cpu')")
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
        idx = int(q.runs[-int(q.ev_idx[e]) - 2])  # the next spike of the event's run (cpu._queue_run)
        return Event(t, layer, self.layer_names[int(self.plan.conn_i[conn, C_SRC])], idx, conn)

    # -- connectivity --------------------------------------------------------------
    def synapses_out(self, conn: int, neuron: int) -> tuple:
        """(targets, weight indices) of source ``neuron`` through connection ``conn``:
        flat indices in the target layer, and each synapse's index in ``params.weights``
        (-1 for a max-pool gate)."""
        cap = self.plan.pops[int(self.plan.conn_i[conn, C_DST])].size
        out_idx, out_w = np.zeros(cap, np.int64), np.zeros(cap, np.int64)
        n = self.backend.targets_of(self.topology.conn_i, self.topology.conn_geo, conn, neuron, out_idx, out_w)
        return out_idx[:n].copy(), out_w[:n].copy()

    def synapses_in(self, conn: int, neuron: int) -> tuple:
        """(sources, weight indices) of target ``neuron`` through connection ``conn``
        (the fan-in: flat indices in the source layer)."""
        cap = self.plan.pops[int(self.plan.conn_i[conn, C_SRC])].size
        out_idx, out_w = np.zeros(cap, np.int64), np.zeros(cap, np.int64)
        n = self.backend.sources_of(self.topology.conn_i, self.topology.conn_fgeo, conn, neuron, out_idx, out_w)
        return out_idx[:n].copy(), out_w[:n].copy()

    # -- reading state -------------------------------------------------------------
    @property
    def time(self) -> float:
        """Time of the latest event processed (in layer order: of any layer)."""
        return float(self.state.clock[0])

    def layer_index(self, layer) -> int:
        """The population rank of ``layer`` (a name or a rank)."""
        if isinstance(layer, (int, np.integer)):
            if not 0 <= layer < len(self.layer_names):
                raise KeyError(f"no population {layer}")
            return int(layer)
        try:
            return self.plan.pop_index[layer]
        except KeyError:
            raise KeyError(f"no spiking layer named {layer!r}; spiking layers: {self.layer_names[1:]}") from None

    _pop = layer_index

    def potentials(self, layer, at: float | None = None) -> np.ndarray:
        """Membrane potentials of a layer, decayed to time ``at`` (default: now), shape (H, W, C)."""
        p = self.layer_index(layer)
        pop = self.plan.pops[p]
        if self.plan.pop_i[p, P_KIND] != P_INTEGRATE:
            raise KeyError(f"layer {pop.name!r} has no membrane potential")
        sl = self.plan.pop_slice(p)
        v = self.state.v[sl].copy()
        if self.plan.pop_i[p, P_LEAKY]:
            at = self.time if at is None else float(at)
            dt = np.maximum(at - self.state.last_t[sl], 0.0)
            if self.plan.continuous:
                v = (v * np.exp(-dt / self.topology.pop_tau[p])).astype(np.float32)
            else:
                v = v * self.params.decay[p, np.minimum(dt, self.timesteps).astype(np.int64)]
        return v.reshape(pop.shape)

    def spike_counts(self, layer) -> np.ndarray:
        """Spikes of each neuron of a layer so far, shape (H, W, C)."""
        p = self.layer_index(layer)
        return self.state.spike_count[self.plan.pop_slice(p)].reshape(self.plan.pops[p].shape).copy()

    def recorded_spikes(self, layer=None):
        """Recorded spikes as (times, layer ranks, neuron indices), or (times, neurons) of one layer."""
        if not self.record_spikes:
            raise SimulationError("spikes were not recorded: create the Simulator with record_spikes=True")
        t, p, i = self.recording.spikes()
        if layer is None:
            return t, p, i
        sel = p == self.layer_index(layer)
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
        return self.state.spike_count[self.plan.pop_slice(last)].astype(np.float64)

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

    def per_layer(self) -> dict:
        """This sample's counts per layer (arrays, input first): spikes, synaptic ops,
        neuron updates, analog MACs."""
        c = self.counters
        return {"spikes": c.spikes.sum(axis=1), "syn_ops": c.syn_ops.sum(axis=1),
                "updates": c.updates.sum(axis=1), "analog_macs": c.analog_macs.copy()}

    def totals(self) -> dict:
        """This sample's counts summed over all layers (integers): spikes (the input's
        included), synaptic ops, neuron updates, analog MACs. Per layer: :meth:`per_layer`."""
        return {k: int(v.sum()) for k, v in self.per_layer().items()}

    @property
    def neurons(self) -> np.ndarray:
        return self.plan.pop_i[:, P_N].copy()

    def to_network(self) -> Network:
        """The network with this simulator's current parameters (after online learning,
        the learned weights); see :meth:`~eventsnn.engine.compile.Plan.to_network`."""
        return self.plan.to_network(self.params)

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A copy of the whole simulation state, parameters included (restore it with :meth:`restore`)."""
        groups = {"state": self.state, "params": self.params, "counters": self.counters, "probes": self.probes}
        return {"groups": {g: {k: v.copy() for k, v in array_fields(t).items()} for g, t in groups.items()},
                "recording": self.recording.snapshot(), "queue": self.queue.snapshot(),
                "events": self.events_processed, "loaded": self._loaded}

    def restore(self, snap: dict) -> None:
        """Return to a :meth:`snapshot`. Fixed-size arrays are copied in place, so
        they keep their 64-byte alignment; the input spike trains are replaced."""
        groups = snap["groups"]
        for name in ("params", "counters", "probes"):
            for k, v in groups[name].items():
                np.copyto(getattr(getattr(self, name), k), v)
        state = groups["state"]
        self.state = self.state._replace(in_time=state["in_time"].copy(), in_idx=state["in_idx"].copy())
        for k, v in state.items():
            if k not in ("in_time", "in_idx"):
                np.copyto(getattr(self.state, k), v)
        self.recording.restore(snap["recording"])
        self.queue.restore(snap["queue"])
        self.events_processed = snap["events"]
        self._loaded = snap["loaded"]

    # -- debugging (see eventsnn.engine.debug) ---------------------------------------------
    @property
    def last_break(self):
        """Why the last ``run()`` stopped at a breakpoint (a BreakInfo), or None."""
        return self.debugger.last_break

    def neuron_index(self, layer, neuron) -> int:
        return self.debugger.neuron_index(layer, neuron)

    def break_on_spike(self, layer, neuron=None) -> None:
        self.debugger.break_on_spike(layer, neuron)

    def break_at(self, time: float) -> None:
        self.debugger.break_at(time)

    def break_when(self, predicate) -> None:
        self.debugger.break_when(predicate)

    def clear_breakpoints(self) -> None:
        self.debugger.clear_breakpoints()

    def watch(self, layer, neuron) -> None:
        self.debugger.watch(layer, neuron)

    def history(self, layer, neuron):
        return self.debugger.history(layer, neuron)

    def spike_events(self, layer):
        return self.debugger.spike_events(layer)

    def to_nir_event_data(self, path=None):
        return self.debugger.to_nir_event_data(path)
