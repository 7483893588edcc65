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

The device side is :class:`Engine`: the schedule above over a **batch** of
samples, every array with the sample as its leading axis and every launch
covering the whole batch (the grid's y index is the sample). A Simulator's
sample is a batch of one (:class:`_Context` adds what the Simulator reads
back: state, counters, the spike log, events and clock); a data set runs many
samples at once through :mod:`.cuda_batch`.

Known costs, to measure on a device (``bench/gpu_speed.py``): every (step,
layer) is 2-4 launches from Python, each preparing the arrays of the named
tuples as arguments (tens of microseconds), which bounds small nets; a batch
shares those launches among its samples, and one sample alone leaves most of
a large GPU idle on small layers.

Data movement: the topology is uploaded once per Simulator, the parameters
at the first ``advance`` of every sample (so parameters edited on the host
between samples are used), the sample's initial potentials, constant current
and input spikes at ``start_sample`` (the rest is reset on the device);
state, counters and the spike log come back at the end of each ``advance``. The analog first layer of
direct encoding is computed on the host (:func:`.cpu.inject_analog`, once per
sample) and uploaded as the constant current.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from ..errors import SimulationError
from .layout import (C_DST, P_CONST, P_GATE, P_KIND, P_MAX_SPIKES, P_N, P_NUNITS, P_OC_N, P_OC_START,
                     ST_EMPTY, ST_GROW_LOG, ST_UNTIL)
from .model import Counters, Params, State, Topology

NAME = "cuda"
HAS_QUEUE = False  # the Simulator refuses peek()/step() (see Simulator.peek)

# Threads per block and the most blocks of one launch (grids stride beyond it);
# a batch of B samples shares them (ceil(max_blocks / B) blocks in x per sample),
# so a launch holds about as many blocks for any batch size, and most of them have
# work (a block per possible spike of every sample would mostly exit at once; not
# measured). The simulator runs every thread as a Python thread: keep it tiny there.
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


class DevState(NamedTuple):
    """The dynamic state of a batch of samples on the device, the sample first: (B, n)
    per neuron, (B, units) per unit, (B, n_gate) per max-pool input."""

    v: np.ndarray  # float32 membrane potential
    inp: np.ndarray  # float32 event input of the pending update
    const: np.ndarray  # float32 constant current (biases, analog input)
    last_t: np.ndarray  # float64 last update (lazy leak)
    tflag: np.ndarray  # uint8 per unit: touched at this step
    gate_cnt: np.ndarray  # int64 spikes seen by max-pool gates
    gate_last: np.ndarray  # float64 last spike time seen by max-pool gates
    spike_count: np.ndarray  # int64 spikes of every neuron so far


class DevCounts(NamedTuple):
    """Exact counts per sample: (B, n_pops, T) int64 each (the Counters of every sample)."""

    syn_ops: np.ndarray
    spikes: np.ndarray
    updates: np.ndarray


class InputSpikes(NamedTuple):
    """The input's spikes of a batch: sample ``b``'s spikes of step ``t`` are
    ``idx[start[b, t]:start[b, t + 1]]`` (all samples in one flat array)."""

    idx: np.ndarray  # int32 input neuron of each spike
    start: np.ndarray  # int64 (B, T + 1)


class Spikes(NamedTuple):
    """The CUDA backend's own per-batch arrays (device side)."""

    idx: np.ndarray  # int32 (B, n): the neurons of a population that spiked this step (compacted)
    mult: np.ndarray  # int32 (B, n): how many spikes each of them fired (multi-spike)
    n: np.ndarray  # int32 (B, T, n_pops): entries of each list per step
    tkeep: np.ndarray  # uint8 (B, units): update again at t + 1 (still at threshold)
    kept: np.ndarray  # int32 (B, n_pops, T): units kept at each step (the CPU's recheck sentinel)
    log_t: np.ndarray  # float64 spike log (record_spikes, a batch of one): time
    log_pop: np.ndarray  # int32: population
    log_neuron: np.ndarray  # int32: neuron within the population
    log_n: np.ndarray  # int64 [1]: entries written (counted past the end too)


def _refuse(what: str):
    raise SimulationError(f"backend 'cuda' runs whole samples in discrete time: {what} is CPU-only "
                          "(use backend='cpu')")


def state_bytes(pop_i: np.ndarray, steps: int, n_gate: int) -> int:
    """Device bytes of one sample's state, spike lists and counters in a batch (what
    grows with the batch size; the topology and weights are shared)."""
    n = int(pop_i[:, P_N].sum())
    units = int(pop_i[:, P_NUNITS].sum())
    n_pops = pop_i.shape[0]
    per_neuron = 4 + 4 + 4 + 8 + 8 + 4 + 4  # v, inp, const, last_t, spike_count, spike list idx + mult
    return per_neuron * n + 2 * units + 16 * n_gate + (3 * 8 + 2 * 4) * n_pops * steps + 8 * (steps + 1)


class Engine:
    """The device side of a batch of ``batch`` samples of one network: the step-synchronous
    schedule of the module doc, every launch covering all loaded samples (grid y)."""

    def __init__(self, topo: Topology, steps: int, batch: int, n_gate: int):
        from numba import cuda
        from . import cuda_kernels
        self.cuda, self.k = cuda, cuda_kernels
        self.launch = SIM_LAUNCH if _simulator() else LAUNCH
        self.pop_i = pop_i = topo.pop_i
        self.n_pops = n_pops = pop_i.shape[0]
        self.steps = int(steps)
        self.batch = int(batch)
        self.n_const = int(np.count_nonzero(pop_i[1:, P_CONST]))
        # Incoming connections of each population in the CPU's delivery order: those
        # that a source's spikes cross (its out_conn list; analog ones are not).
        self.incoming = [[] for _ in range(n_pops)]
        for s in range(n_pops):
            start = pop_i[s, P_OC_START]
            for c in topo.out_conn[start: start + pop_i[s, P_OC_N]]:
                self.incoming[int(topo.conn_i[c, C_DST])].append((int(c), s))
        self.topo = Topology(*[cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in topo])
        n = max(int(pop_i[:, P_N].sum()), 1)
        units = max(int(pop_i[:, P_NUNITS].sum()), 1)
        self.n_neurons, self.n_units, self.n_gate = n, units, max(int(n_gate), 1)  # no zero-size device arrays
        self.worst_step = int(sum(pop_i[p, P_N] * pop_i[p, P_MAX_SPIKES] for p in range(1, n_pops)))
        B, T = self.batch, self.steps
        empty = cuda.device_array
        self.st = DevState(v=empty((B, n), np.float32), inp=empty((B, n), np.float32),
                           const=empty((B, n), np.float32), last_t=empty((B, n), np.float64),
                           tflag=empty((B, units), np.uint8), gate_cnt=empty((B, self.n_gate), np.int64),
                           gate_last=empty((B, self.n_gate), np.float64), spike_count=empty((B, n), np.int64))
        self.cnt = DevCounts(*(empty((B, n_pops, T), np.int64) for _ in range(3)))
        self.spk = Spikes(idx=empty((B, n), np.int32), mult=empty((B, n), np.int32),
                          n=empty((B, T, n_pops), np.int32), tkeep=empty((B, units), np.uint8),
                          kept=empty((B, n_pops, T), np.int32), log_t=empty(1, np.float64),
                          log_pop=empty(1, np.int32), log_neuron=empty(1, np.int32),
                          log_n=cuda.to_device(np.zeros(1, np.int64)))
        self.params = None
        self.loaded = 0
        self.cursor = 0

    def set_params(self, params: Params) -> None:
        cuda = self.cuda
        self.params = Params(*[cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in params])

    def load(self, v: np.ndarray, const: np.ndarray, in_idx: np.ndarray, in_start: np.ndarray) -> None:
        """Start ``len(v)`` samples (at most ``batch``): initial potentials and constant
        currents (B', n) and the input spikes (:class:`InputSpikes` fields, on the host).
        Everything else starts at zero (``last_t`` at -1: the state before step 0)."""
        cuda, k = self.cuda, self.k
        b = v.shape[0]
        if not 1 <= b <= self.batch:
            raise SimulationError(f"backend 'cuda': {b} samples do not fit a batch of {self.batch}")
        self.loaded = b
        fill = k.fill
        threads = self.launch["threads"]
        for name in ("inp", "tflag", "gate_cnt", "spike_count"):
            a = getattr(self.st, name)
            fill[self._grid(a.size), threads](a.reshape(a.size), 0)
        for name in ("last_t", "gate_last"):
            a = getattr(self.st, name)
            fill[self._grid(a.size), threads](a.reshape(a.size), -1.0)
        for a in (*self.cnt, self.spk.n, self.spk.tkeep, self.spk.kept):
            fill[self._grid(a.size), threads](a.reshape(a.size), 0)
        for name, host in (("v", v), ("const", const)):
            dev = getattr(self.st, name)
            host = np.ascontiguousarray(host, np.float32)
            (dev if b == self.batch else dev[:b]).copy_to_device(host)
        self.in_start = np.ascontiguousarray(in_start, np.int64)
        self.in_counts = np.diff(self.in_start, axis=1)  # (B', T): the input's spikes per step
        self.in_max = self.in_counts.max(axis=0) if b else np.zeros(self.steps, np.int64)
        idx = np.ascontiguousarray(in_idx, np.int32)
        self.src_in = InputSpikes(idx=cuda.to_device(idx if idx.size else np.zeros(1, np.int32)),
                                  start=cuda.to_device(self.in_start))
        self.spk.log_n.copy_to_device(np.zeros(1, np.int64))
        self.cursor = 0

    def _grid(self, n: int, per_block: int | None = None, samples: int = 1) -> int:
        """Blocks in x for ``n`` items, ``per_block`` (default: a thread's worth) each, when
        ``samples`` share the launch."""
        per_block = self.launch["threads"] if per_block is None else per_block
        cap = -(-self.launch["max_blocks"] // samples)
        return max(1, min((int(n) + per_block - 1) // per_block, cap))

    def run_steps(self, until: float, record: bool, before_step=None) -> tuple:
        """Launch every (step, layer) from the cursor while step < until, for all loaded
        samples; returns (first step, last step + 1). ``before_step()`` runs on the host
        before each step's launches (the spike log's room)."""
        k, topo, params, st, cnt, src_in = self.k, self.topo, self.params, self.st, self.cnt, self.src_in
        threads = self.launch["threads"]
        pop_i, B = self.pop_i, self.loaded
        t0 = self.cursor
        t = t0
        while t < self.steps and t < until:
            if before_step is not None:
                before_step()
            spk = self.spk
            for p in range(1, self.n_pops):
                for c, s in self.incoming[p]:
                    if s == 0:
                        m = int(self.in_max[t])
                        if m == 0:
                            continue
                        k.deliver[(self._grid(m, 1, B), B), threads](topo, params, st, spk, src_in, cnt, c, t, 0)
                    else:
                        k.deliver[(self._grid(pop_i[s, P_N], 1, B), B), threads](
                            topo, params, st, spk, src_in, cnt, c, t, s)
                if pop_i[p, P_KIND] == P_GATE:
                    k.gate[(self._grid(pop_i[p, P_NUNITS], samples=B), B), threads](topo, st, spk, cnt, p, t, record)
                else:
                    k.update[(self._grid(pop_i[p, P_N], samples=B), B), threads](
                        topo, params, st, spk, cnt, p, t, record)
                    if not pop_i[p, P_CONST]:
                        k.roll[(self._grid(pop_i[p, P_NUNITS], samples=B), B), threads](topo, st, spk, p, t)
            t += 1
        self.cursor = t
        return t0, t

    def host(self, name: str) -> np.ndarray:
        """A device array of the loaded samples, on the host: a DevState or DevCounts field,
        or 'kept' (units rechecked per (sample, layer, step))."""
        if name == "kept":
            dev = self.spk.kept
        else:
            dev = getattr(self.st if name in DevState._fields else self.cnt, name)
        a = dev.copy_to_host()
        return a[: self.loaded]


class _Context:
    """One Simulator's sample on the device (a batch of one) and what the Simulator reads
    back: state, counters, the spike log, events and clock (see module doc)."""

    def __init__(self, topo: Topology, state: State, t_end: float):
        self.engine = Engine(topo, int(t_end), 1, state.gate_cnt.shape[0])
        self.cuda = self.engine.cuda
        self.steps = self.engine.steps
        self.n_oc = topo.pop_i[:, P_OC_N].astype(np.int64)
        self.n_const = self.engine.n_const
        self.pop_i = topo.pop_i

    # -- per sample -------------------------------------------------------------------
    def start(self, state: State) -> None:
        in_time = state.in_time
        self.whole_steps = not in_time.size or bool(np.all(np.floor(in_time) == in_time))  # checked by advance
        steps = self.steps
        self.in_start = np.searchsorted(in_time, np.arange(steps + 1, dtype=np.float64), side="left")
        self.in_counts = np.diff(self.in_start).astype(np.int32)
        self.in_idx = np.ascontiguousarray(state.in_idx, np.int32)
        self.engine.load(state.v[None], state.const[None], self.in_idx, self.in_start[None])
        self.fresh = True  # upload params at the first advance
        self.pending = None  # spike log entries not yet handed to the Recorder
        self.owed = 0  # events processed but not yet reported (see advance)
        self.log_bound = 0

    @property
    def cursor(self) -> int:
        return self.engine.cursor

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.engine.cursor = value

    def upload(self, params: Params) -> None:
        self.engine.set_params(params)
        self.fresh = False

    def _ensure_log(self) -> None:
        """Room in the device spike log for the worst case of the next step. ``log_bound``
        is an upper bound of the entries written (one worst case per step since the
        last read), so the log is read back (a sync) only when it might be too small."""
        eng = self.engine
        cuda, spk = self.cuda, eng.spk
        cap = spk.log_t.shape[0]
        if self.log_bound + eng.worst_step > cap:
            self.log_bound = int(spk.log_n.copy_to_host()[0])
            need = self.log_bound + eng.worst_step
            if need > cap:
                new = max(2 * cap, need, 4096)
                fields = {}
                for name, dtype in (("log_t", np.float64), ("log_pop", np.int32), ("log_neuron", np.int32)):
                    a = cuda.device_array(new, dtype)
                    if self.log_bound:
                        a[: self.log_bound] = getattr(spk, name)[: self.log_bound]
                    fields[name] = a
                eng.spk = spk._replace(**fields)
        self.log_bound += eng.worst_step

    def run_steps(self, until: float, record: bool) -> tuple:
        """Launch every (step, layer) from the cursor while step < until; returns (first, last + 1)."""
        return self.engine.run_steps(until, record, self._ensure_log if record else None)

    def download(self, state: State, cnt: Counters) -> np.ndarray:
        """Device state and counters into the host arrays; returns the kept units (n_pops, T)."""
        eng = self.engine
        self.cuda.synchronize()
        for name in ("v", "inp", "last_t", "gate_cnt", "gate_last", "spike_count"):
            host = getattr(state, name)
            host[...] = eng.host(name)[0, : host.shape[0]]
        for name in ("syn_ops", "spikes", "updates"):
            getattr(cnt, name)[...] = eng.host(name)[0]
        # The input's spikes are known here: count those of the steps processed.
        done = self.in_start[self.cursor]
        n0 = int(self.pop_i[0, P_N])
        state.spike_count[:n0] = np.bincount(self.in_idx[:done], minlength=n0)[:n0]
        cnt.spikes[0, :] = 0
        cnt.spikes[0, : self.cursor] = self.in_counts[: self.cursor]
        return eng.host("kept")[0]

    def collect_log(self, t0: int, t1: int) -> None:
        """The spikes of steps [t0, t1) from the device log and the input, sorted by
        (time, layer, neuron), queued for the Recorder."""
        spk = self.engine.spk
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
        ctx.upload(params)
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
           "device_present", "DevCounts", "DevState", "Engine", "InputSpikes", "Spikes", "LAUNCH", "SIM_LAUNCH",
           "state_bytes"]
