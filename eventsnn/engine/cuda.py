"""The CUDA backend: the engine's discrete-time semantics on an NVIDIA GPU (numba.cuda).

The same interface as the CPU backend (:mod:`.backends`) over the same named
tuples (:mod:`.model`), and the same physics (:mod:`.physics`, compiled as
device code by the kernels of :mod:`.cuda_kernels`). Instead of the CPU's
event queue it runs a step-synchronous schedule, which is what the CPU's
queue order amounts to in discrete time: for each step ``t`` and each
population ``p`` in rank order,

1. deliver every spike that ``p``'s sources emitted at ``t`` (the input's
   spikes of step ``t``, or a lower layer's compacted spike list), one launch
   per incoming connection (:func:`.cuda_kernels.deliver`);
2. update the touched units of ``p`` (all of them for a layer with a constant
   current), emit spikes into ``p``'s spike list (:func:`.cuda_kernels.update`
   or, for a max-pool gate, :func:`.cuda_kernels.gate`);
3. keep the units still at threshold for ``t + 1`` (:func:`.cuda_kernels.roll`).

All launches go to one stream, so no host synchronisation happens inside a
sample (spike counts stay on the device; grids stride over the lists). The
counts (syn ops, spikes, updates per layer and step) are the CPU's, exactly;
spikes per neuron and potentials are bit-identical when the values lie on the
2^-8 grid (float32 atomics add in any order; see :mod:`eventsnn.reference`).
``Simulator.events_processed`` and ``Simulator.time`` are derived from the
counts as the CPU's queue would have counted them.

What this backend does (whole samples): ``run()``, ``run(until=t)`` (whole
steps), time breakpoints and ``break_when`` (they stop at step boundaries),
``record_spikes`` (the log is sorted by (time, layer, neuron); the CPU logs a
layer's spikes of one step in the order its units were touched).
What it refuses, with a :class:`~eventsnn.errors.SimulationError` naming it
(the CPU backend does them): ``step()``/``max_events``, spike breakpoints,
membrane traces (``watch``), continuous time, plugs (online plasticity) and
spike-norm's largest-input tracking; ``peek()`` (no queue).

``snapshot()``/``restore()`` copy the host arrays only: after a restore, call
``reset()`` before running on this backend again.

Known costs, to measure on a device (``bench/gpu_speed.py``): every (step,
layer) is 2-4 launches from Python, each preparing the arrays of the named
tuples as arguments (tens of microseconds), which bounds small nets; one
sample at a time leaves most of a large GPU idle on small layers (batching
samples on the device is the next step).

Data movement: the topology is uploaded once per Simulator, the parameters
at the first ``advance`` of every sample (so parameters edited on the host
between samples are used), the sample's state at ``start_sample``; state, counters and the
spike log come back at the end of each ``advance``. The analog first layer of
direct encoding is computed on the host (:func:`.cpu.inject_analog`, once per
sample) and uploaded as the constant current.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from ..errors import SimulationError
from .layout import (C_DST, P_CONST, P_GATE, P_KIND, P_MAX_SPIKES, P_N, P_NUNITS, P_OC_N, P_OC_START, P_OFF,
                     ST_EMPTY, ST_GROW_LOG, ST_UNTIL)
from .model import Counters, Params, State, Topology

NAME = "cuda"
HAS_QUEUE = False  # the Simulator refuses peek()/step() (see Simulator.peek)

# Threads per block and the most blocks of one launch (grids stride beyond it).
# The simulator runs every thread as a Python thread: keep it tiny there.
LAUNCH = {"threads": 128, "max_blocks": 4096}
SIM_LAUNCH = {"threads": 8, "max_blocks": 2}

_INT64_MAX = np.iinfo(np.int64).max


def _simulator() -> bool:
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def unavailable() -> str | None:
    """Why this backend cannot run here (one line), or None. Under numba's CUDA
    simulator (``NUMBA_ENABLE_CUDASIM=1``) it runs without a GPU, slowly."""
    try:
        from numba import cuda
    except Exception as exc:  # numba built without its CUDA target
        return f"numba.cuda cannot be imported ({exc}); pip install 'eventsnn[cuda]'"
    if _simulator():
        return None
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # driver present but broken
        return f"no usable CUDA GPU ({type(exc).__name__}: {exc})"
    return "no CUDA GPU found (numba.cuda.is_available() is False); use --backend cpu"


def device_present() -> bool:
    """A real GPU is usable (the simulator does not count): what ``auto`` asks."""
    return not _simulator() and unavailable() is None


class Spikes(NamedTuple):
    """The CUDA backend's own per-sample arrays (device side)."""

    idx: np.ndarray  # int32 per neuron slot: the neurons of a population that spiked this step (compacted)
    mult: np.ndarray  # int32: how many spikes each of them fired (multi-spike)
    n: np.ndarray  # int32 (T, n_pops): entries of each list per step (column 0: the input's)
    tkeep: np.ndarray  # uint8 per unit: update again at t + 1 (still at threshold)
    kept: np.ndarray  # int32 (n_pops, T): units kept at each step (the CPU's recheck sentinel)
    log_t: np.ndarray  # float64 spike log (record_spikes): time
    log_pop: np.ndarray  # int32: population
    log_neuron: np.ndarray  # int32: neuron within the population
    log_n: np.ndarray  # int64 [1]: entries written (counted past the end too)


def _refuse(what: str):
    raise SimulationError(f"backend 'cuda' runs whole samples in discrete time: {what} is CPU-only "
                          "(use backend='cpu')")


class _Context:
    """Device copies and the schedule of one Simulator's sample (see module doc)."""

    def __init__(self, topo: Topology, state: State, t_end: float):
        from numba import cuda
        from . import cuda_kernels
        self.cuda, self.k = cuda, cuda_kernels
        self.launch = SIM_LAUNCH if _simulator() else LAUNCH
        pop_i = topo.pop_i
        self.n_pops = n_pops = pop_i.shape[0]
        self.steps = int(t_end)
        self.n_oc = pop_i[:, P_OC_N].astype(np.int64)
        self.n_const = int(np.count_nonzero(pop_i[1:, P_CONST]))
        # Incoming connections of each population in the CPU's delivery order: those
        # that a source's spikes cross (its out_conn list; analog ones are not).
        self.incoming = [[] for _ in range(n_pops)]
        for s in range(n_pops):
            start = pop_i[s, P_OC_START]
            for c in topo.out_conn[start: start + pop_i[s, P_OC_N]]:
                self.incoming[int(topo.conn_i[c, C_DST])].append((int(c), s))
        self.topo = Topology(*[cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in topo])
        self.params = None
        n, units = state.v.shape[0], state.tflag.shape[0]
        self.worst_step = int(sum(pop_i[p, P_N] * pop_i[p, P_MAX_SPIKES] for p in range(1, n_pops)))
        self.state = None
        self.spk = Spikes(idx=cuda.device_array(max(n, 1), np.int32), mult=cuda.device_array(max(n, 1), np.int32),
                          n=cuda.to_device(np.zeros((self.steps, n_pops), np.int32)),
                          tkeep=cuda.to_device(np.zeros(max(units, 1), np.uint8)),
                          kept=cuda.to_device(np.zeros((n_pops, self.steps), np.int32)),
                          log_t=cuda.device_array(1, np.float64), log_pop=cuda.device_array(1, np.int32),
                          log_neuron=cuda.device_array(1, np.int32), log_n=cuda.to_device(np.zeros(1, np.int64)))
        self.cnt = None

    # -- per sample -------------------------------------------------------------------
    def start(self, state: State) -> None:
        cuda = self.cuda
        in_time = state.in_time
        self.whole_steps = not in_time.size or bool(np.all(np.floor(in_time) == in_time))  # checked by advance
        steps = self.steps
        self.in_start = np.searchsorted(in_time, np.arange(steps + 1, dtype=np.float64), side="left")
        self.in_counts = np.diff(self.in_start).astype(np.int32)
        self.in_idx = np.ascontiguousarray(state.in_idx, np.int32)
        fields = {}
        for name, a in state._asdict().items():
            if name in ("in_time", "in_idx"):
                a = a if a.size else np.zeros(1, a.dtype)  # no zero-size device arrays
            elif name in ("tflag", "tlist", "tn", "spike_count"):
                a = np.zeros_like(a)
            fields[name] = a
        old = self.state
        dev = {}
        for k, a in fields.items():
            if old is None or k in ("in_time", "in_idx"):  # sized per sample
                dev[k] = cuda.to_device(a)
            else:  # reuse this Simulator's allocation
                getattr(old, k).copy_to_device(a)
                dev[k] = getattr(old, k)
        self.state = State(**dev)
        self.d_in_idx = self.state.in_idx
        self.d_in_ones = cuda.to_device(np.ones(max(self.in_idx.size, 1), np.int32))
        counts = np.zeros((steps, self.n_pops), np.int32)
        counts[:, 0] = self.in_counts
        self.spk.n.copy_to_device(counts)
        self.spk.kept.copy_to_device(np.zeros((self.n_pops, steps), np.int32))
        self.spk.tkeep.copy_to_device(np.zeros(self.spk.tkeep.shape[0], np.uint8))
        self.spk.log_n.copy_to_device(np.zeros(1, np.int64))
        self.cursor = 0
        self.fresh = True  # upload params and counters at the first advance
        self.pending = None  # spike log entries not yet handed to the Recorder
        self.owed = 0  # events processed but not yet reported (see advance)
        self.log_bound = 0

    def upload(self, params: Params, cnt: Counters) -> None:
        cuda = self.cuda
        self.params = Params(*[cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in params])
        self.cnt = Counters(*[cuda.to_device(a) for a in cnt])
        self.fresh = False

    def _grid(self, n: int) -> int:
        t = self.launch["threads"]
        return max(1, min((int(n) + t - 1) // t, self.launch["max_blocks"]))

    def _ensure_log(self) -> None:
        """Room in the device spike log for the worst case of the next step. ``log_bound``
        is an upper bound of the entries written (one worst case per step since the
        last read), so the log is read back (a sync) only when it might be too small."""
        cuda, spk = self.cuda, self.spk
        cap = spk.log_t.shape[0]
        if self.log_bound + self.worst_step > cap:
            self.log_bound = int(spk.log_n.copy_to_host()[0])
            need = self.log_bound + self.worst_step
            if need > cap:
                new = max(2 * cap, need, 4096)
                fields = {}
                for name, dtype in (("log_t", np.float64), ("log_pop", np.int32), ("log_neuron", np.int32)):
                    a = cuda.device_array(new, dtype)
                    if self.log_bound:
                        a[: self.log_bound] = getattr(spk, name)[: self.log_bound]
                    fields[name] = a
                self.spk = spk._replace(**fields)
        self.log_bound += self.worst_step

    def run_steps(self, until: float, record: bool) -> tuple:
        """Launch every (step, layer) from the cursor while step < until; returns (first, last + 1)."""
        k, topo, params, state, spk, cnt = self.k, self.topo, self.params, self.state, self.spk, self.cnt
        threads, max_blocks = self.launch["threads"], self.launch["max_blocks"]
        pop_i = self.pop_i  # host copy: launch sizes
        t0 = self.cursor
        t = t0
        while t < self.steps and t < until:
            if record:
                self._ensure_log()
                spk = self.spk
            for p in range(1, self.n_pops):
                for c, s in self.incoming[p]:
                    if s == 0:
                        m = int(self.in_counts[t])
                        if m == 0:
                            continue
                        k.deliver[min(m, max_blocks), threads](topo, params, state, cnt, c, t, self.d_in_idx,
                                                              self.d_in_ones, int(self.in_start[t]), spk.n, 0)
                    else:
                        k.deliver[min(int(pop_i[s, P_N]), max_blocks), threads](
                            topo, params, state, cnt, c, t, spk.idx, spk.mult, int(pop_i[s, P_OFF]), spk.n, s)
                if pop_i[p, P_KIND] == P_GATE:
                    k.gate[self._grid(pop_i[p, P_NUNITS]), threads](topo, state, spk, cnt, p, t, record)
                else:
                    k.update[self._grid(pop_i[p, P_N]), threads](topo, params, state, spk, cnt, p, t, record)
                    if not pop_i[p, P_CONST]:
                        k.roll[self._grid(pop_i[p, P_NUNITS]), threads](topo, state, spk, p, t)
            t += 1
        self.cursor = t
        return t0, t

    def download(self, state: State, cnt: Counters) -> np.ndarray:
        """Device state and counters into the host arrays; returns the kept units (n_pops, T)."""
        self.cuda.synchronize()
        for name in ("v", "inp", "last_t", "gate_cnt", "gate_last", "spike_count"):
            getattr(self.state, name).copy_to_host(getattr(state, name))
        for name in ("syn_ops", "spikes", "updates"):
            getattr(self.cnt, name).copy_to_host(getattr(cnt, name))
        # The input's spikes are known here: count those of the steps processed.
        done = self.in_start[self.cursor]
        n0 = int(self.pop_i[0, P_N])
        state.spike_count[:n0] = np.bincount(self.in_idx[:done], minlength=n0)[:n0]
        cnt.spikes[0, :] = 0
        cnt.spikes[0, : self.cursor] = self.in_counts[: self.cursor]
        return self.spk.kept.copy_to_host()

    def collect_log(self, t0: int, t1: int) -> None:
        """The spikes of steps [t0, t1) from the device log and the input, sorted by
        (time, layer, neuron), queued for the Recorder."""
        spk = self.spk
        n = int(spk.log_n.copy_to_host()[0])
        if n > spk.log_t.shape[0]:  # _ensure_log makes this impossible
            raise SimulationError("backend 'cuda': spike log overflow")
        lo, hi = self.in_start[t0], self.in_start[t1]
        times = np.concatenate([spk.log_t[:n].copy_to_host() if n else np.zeros(0),
                                np.repeat(np.arange(t0, t1, dtype=np.float64), self.in_counts[t0:t1])])
        pops = np.concatenate([spk.log_pop[:n].copy_to_host() if n else np.zeros(0, np.int32),
                               np.zeros(hi - lo, np.int32)])
        neurons = np.concatenate([spk.log_neuron[:n].copy_to_host() if n else np.zeros(0, np.int32),
                                  self.in_idx[lo:hi]])
        order = np.lexsort((neurons, pops, times))
        spk.log_n.copy_to_device(np.zeros(1, np.int64))
        self.log_bound = 0
        new = (times[order], pops[order].astype(np.int32), neurons[order].astype(np.int32))
        if self.pending is None:
            self.pending = new
        else:
            self.pending = tuple(np.concatenate([a, b]) for a, b in zip(self.pending, new))

    def flush_log(self, rec) -> bool:
        """Hand queued log entries to the Recorder; False if it is full (grow and call again)."""
        if self.pending is None or self.pending[0].size == 0:
            return True
        t, p, i = self.pending
        at = int(rec.spike_n[0])
        room = rec.spike_t.shape[0] - at
        m = min(room, t.size)
        rec.spike_t[at: at + m] = t[:m]
        rec.spike_pop[at: at + m] = p[:m]
        rec.spike_neuron[at: at + m] = i[:m]
        rec.spike_n[0] = at + m
        self.pending = (t[m:], p[m:], i[m:])
        return m == t.size

    def events_and_clock(self, cnt: Counters, kept: np.ndarray, t0: int, t1: int) -> tuple:
        """The events the CPU's queue would have processed in steps [t0, t1), and the
        last of those steps that had any (the CPU's clock)."""
        spikes = cnt.spikes[:, t0:t1]
        fanout_events = (spikes * self.n_oc[:, None]).sum(axis=0)
        input_sentinel = (self.in_counts[t0:t1] > 0).astype(np.int64)
        recheck = np.zeros(t1 - t0, np.int64)
        for t in range(t0, t1):
            if t >= 1:
                recheck[t - t0] = np.count_nonzero(kept[:, t - 1])
        per_step = fanout_events + input_sentinel + self.n_const + recheck
        steps = np.flatnonzero(per_step > 0)
        last = float(t0 + steps[-1]) if steps.size else None
        return int(per_step.sum()), last

    def more_events(self, kept: np.ndarray) -> bool:
        """Whether the CPU's queue would still hold events after the cursor."""
        c = self.cursor
        if c >= self.steps:
            return False
        if self.in_start[self.steps] > self.in_start[c] or self.n_const > 0:
            return True
        return c >= 1 and bool(np.any(kept[:, c - 1]))


# One context per Simulator, found by its potential array (the Simulator keeps that
# object for its lifetime) and released with it, so its device memory goes too.
_CONTEXTS: dict = {}


def _release(key: int, ctx: "_Context") -> None:
    entry = _CONTEXTS.get(key)
    if entry is not None and entry[2] is ctx:
        del _CONTEXTS[key]


def _context(topo: Topology, state: State, t_end: float | None = None, create: bool = False) -> _Context:
    """The context of this Simulator (``create``: make one for a new sample)."""
    key = id(state.v)
    entry = _CONTEXTS.get(key)
    if entry is not None and entry[0]() is state.v and entry[1]() is topo.conn_i:
        ctx = entry[2]
        if not create or ctx.steps == int(t_end):
            return ctx
    if not create:
        raise SimulationError("backend 'cuda': no sample loaded (call reset(x) first)")
    for k in [k for k, e in _CONTEXTS.items() if e[0]() is None or e[1]() is None]:
        del _CONTEXTS[k]
    ctx = _Context(topo, state, t_end)
    ctx.pop_i = topo.pop_i
    _CONTEXTS[key] = (weakref.ref(state.v), weakref.ref(topo.conn_i), ctx)
    weakref.finalize(state.v, _release, key, ctx)
    return ctx


# -- the backend interface (see .backends) ----------------------------------------------

def start_sample(topo, state, queue, t_end):
    """Upload one sample's state (reset by the Simulator) and rewind the schedule."""
    _context(topo, state, t_end, create=True).start(state)


def inject_analog(topo, params, state, x, conns, macs):
    """The analog first layer's constant current, computed once per sample on the host
    (exact MACs; the CPU's own kernel, so it is bit-identical) and uploaded by start_sample."""
    from .cpu import inject_analog as cpu_inject
    cpu_inject(topo, params, state, x, conns, macs)


def advance(topo, params, state, q, cnt, rec, probes, sw, t_end, until, max_events, plug):
    """Run whole steps while step < ``until``; return (status, events processed)."""
    if sw.continuous:
        _refuse("continuous time")
    if plug is not None:
        _refuse("a plug (online plasticity)")
    if sw.trace:
        _refuse("membrane tracing (watch)")
    if sw.track_max_input:
        _refuse("largest-input tracking (spike-norm)")
    if max_events < _INT64_MAX:
        _refuse("step() (max_events)")
    if probes.on_pop.any() or probes.on_neuron.any():
        _refuse("a spike breakpoint")
    ctx = _context(topo, state)
    if not ctx.whole_steps:
        raise SimulationError("backend 'cuda': input spike times must be whole steps in discrete time")
    if sw.record_spikes and not ctx.flush_log(rec):
        return ST_GROW_LOG, 0
    if ctx.fresh:
        ctx.upload(params, cnt)
    t0, t1 = ctx.run_steps(until, sw.record_spikes)
    kept = ctx.download(state, cnt)
    events, last = ctx.events_and_clock(cnt, kept, t0, t1)
    if last is not None and last > state.clock[0]:
        state.clock[0] = last
    if not ctx.more_events(kept):
        ctx.cursor = ctx.steps
    events += ctx.owed
    ctx.owed = 0
    if sw.record_spikes:
        ctx.collect_log(t0, t1)
        if not ctx.flush_log(rec):
            # Reported with the next return: the Simulator lowers max_events by what
            # a call reports, and a lowered max_events means step() here.
            ctx.owed = events
            return ST_GROW_LOG, 0
    return (ST_EMPTY if ctx.cursor >= ctx.steps else ST_UNTIL), events


def targets_of(conn_i, conn_geo, conn, neuron, out_idx, out_w):
    """Host query (the CPU's): the targets of one source neuron."""
    from .cpu import targets_of as cpu_targets
    return cpu_targets(conn_i, conn_geo, conn, neuron, out_idx, out_w)


def sources_of(conn_i, conn_fgeo, conn, neuron, out_idx, out_w):
    """Host query (the CPU's): the sources of one target neuron."""
    from .cpu import sources_of as cpu_sources
    return cpu_sources(conn_i, conn_fgeo, conn, neuron, out_idx, out_w)


def launch_config() -> dict:
    """Threads per block and the block cap in use (the simulator's are tiny)."""
    return dict(SIM_LAUNCH if _simulator() else LAUNCH)


__all__ = ["advance", "inject_analog", "sources_of", "start_sample", "targets_of", "unavailable",
           "device_present", "Spikes", "LAUNCH", "SIM_LAUNCH"]
