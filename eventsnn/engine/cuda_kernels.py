"""The numba.cuda kernels of the CUDA backend (driven by :mod:`.cuda`).

Discrete time, one launch per (step, layer) and task, all on one stream, so
the launch order is the CPU's bucket order (time, rank) and no host
synchronisation is needed inside a sample. Every launch covers a whole
**batch of samples**: the grid's y index is the sample ``b``, and every array
of state, spike lists and counters has the sample as its leading axis (the
single-sample backend is the batch of one), so a data set's samples run
concurrently, each with its own state and events.

- :func:`deliver` — every spike that population ``s`` emitted at step ``t``
  crosses connection ``c`` into population ``p``: **one thread block per
  presynaptic spike** (grid-stride over the compacted spike list), its threads
  striding over that spike's border-clipped fan-out, decoded from the same
  geometry tables and weight layout as on the CPU (:mod:`.physics`). The
  weighted inputs are added with float32 atomics into ``inp``; the targets'
  *units* are flagged in ``tflag`` (plain stores of 1: any order is the same).
  Thread 0 of each block adds the exact syn-op count (fan-out x spikes) of its
  spikes.
- :func:`update` — one thread per neuron of ``p``: a neuron whose unit was
  touched (or every neuron of a constant-current layer) decays lazily from its
  last update, integrates, is checked against threshold and reset, all through
  the functions of :mod:`.physics`; spiking neurons append (neuron, spikes) to
  the layer's spike list (compaction by an atomic counter) for the next
  layer's :func:`deliver`. Units left at threshold after a subtractive reset
  are flagged in a second array (``tkeep``) to be updated again at ``t + 1``,
  as the CPU's recheck sentinel does.
- :func:`roll` — ``tflag = tkeep`` for the next step (a separate launch: the
  neurons of one unit may sit in different thread blocks, so no thread of
  :func:`update` can clear a unit's flag while another may still read it).
- :func:`gate` — a max-pool gate, one thread per output unit, the CPU's rule.
- :func:`fill` — resets a state array in place when a batch is loaded.

Counting without races: every count is either a block-wide
``syncthreads_count`` (updated units, gate spikes: each thread contributes
0 or 1) added once per block with an integer atomic, or an integer atomic
per contribution (spikes of a multi-spike neuron, syn ops). No count goes
through shared memory: an earlier version summed spikes in a shared-memory
word, and numba's CUDA simulator allocates a shared array on a thread's
first call without a lock (``FakeCUDAShared.array``), so two threads of a
block could get different words and a block's spikes were lost now and then
(the intermittent count mismatch of issue 15). A device never splits shared
memory, but the counts must be exact on both.

Why this delivery strategy (GeNN's "one thread per presynaptic spike" span
type, Brian2CUDA's one block per (spike, partition) with atomics on the
potentials; see docs/ARCHITECTURE.md and REFERENCE.md): a conv spike's
fan-out is kh*kw runs of C_out contiguous weights and targets, so a block's
threads read one contiguous weight row and add into contiguous potentials
(coalesced loads, atomics on distinct addresses), and the connectivity is
regenerated from the geometry tables as GeNN's procedural convolutions do,
never stored. A postsynaptic ("pull", GeNN's post-span) strategy would read
every source of every target whether it spiked or not, which at rates of a few
percent costs more reads than it saves atomics. The choice is not yet backed
by device measurements (no GPU was available when it was written); the
benchmark ``bench/gpu_speed.py`` is where to measure it.

Counts are exact integers (int64 atomics); the float32 sums of ``inp`` are
added in any order, so results equal the CPU's bit for bit when the values
lie on the 2^-8 grid (see :mod:`eventsnn.reference`).

Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the physics
functions are called as plain Python (their ``py_func``, same source): the
simulator passes its own array type, which CPU-compiled code cannot unbox.
"""

from __future__ import annotations

import types

import numpy as np
from numba import config, cuda, int32
from numba.core.registry import CPUDispatcher

from . import physics
from .layout import (C_CI, C_CO, C_DST, C_KH, C_KIND, C_KW, C_SX, C_SY, C_WI, C_WO, C_WOFF, K_CONV, K_DENSE,
                     K_GATE, K_IDENT, K_POOL, P_BLOCK, P_C, P_CONST, P_GOFF, P_IN_CONN, P_LEAKY, P_MAX_SPIKES, P_N,
                     P_NUNITS, P_OFF, P_RESET, P_SPIKING, P_UOFF, P_W, RESET_SUBTRACT)

SIMULATOR = bool(config.ENABLE_CUDASIM)


def _plain(fn, done=None):
    """``fn``'s Python source with every jitted function it calls also as plain Python."""
    done = {} if done is None else done
    if fn in done:
        return done[fn]
    py = fn.py_func
    glb = dict(py.__globals__)
    out = types.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__)
    done[fn] = out
    for name, obj in list(glb.items()):
        if isinstance(obj, CPUDispatcher):
            glb[name] = _plain(obj, done)
    return out


def _device(fn):
    """A :mod:`.physics` function as the kernels call it: the jitted function itself on a
    device (numba.cuda compiles its source as device code), plain Python in the simulator."""
    return _plain(fn) if SIMULATOR else fn


leak_factor = _device(physics.leak_factor)
membrane = _device(physics.membrane)
crossed = _device(physics.crossed)
spikes_emitted = _device(physics.spikes_emitted)
after_reset = _device(physics.after_reset)
fanout_entry = _device(physics.fanout_entry)
fanout_count = _device(physics.fanout_count)
conv_weight_index = _device(physics.conv_weight_index)


@cuda.jit
def deliver(topo, params, st, spk, src_in, cnt, c, t, src):
    """Deliver the spikes that source ``src`` emitted at step ``t`` through connection ``c``,
    for sample ``blockIdx.y``. One block per spike (grid-stride over the spike list); the
    input's spikes (``src == 0``) are ``src_in.idx[src_in.start[b, t]:src_in.start[b, t + 1]]``."""
    conn_i, pop_i, weights = topo.conn_i, topo.pop_i, params.weights
    b = cuda.blockIdx.y
    inp, tflag = st.inp, st.tflag
    kind = conn_i[c, C_KIND]
    p = conn_i[c, C_DST]
    uoff, block = pop_i[p, P_UOFF], pop_i[p, P_BLOCK]
    doff = pop_i[p, P_OFF]
    woff, co, ci, wo = conn_i[c, C_WOFF], conn_i[c, C_CO], conn_i[c, C_CI], conn_i[c, C_WO]
    sy, sx = conn_i[c, C_SY], conn_i[c, C_SX]
    kh, kw = conn_i[c, C_KH], conn_i[c, C_KW]
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    if src == 0:
        base = src_in.start[b, t]
        n_spikes = src_in.start[b, t + 1] - base
    else:
        base = pop_i[src, P_OFF]
        n_spikes = spk.n[b, t, src]
    ops = 0
    j = cuda.blockIdx.x
    while j < n_spikes:
        if src == 0:
            idx = src_in.idx[base + j]
            mult = 1
        else:
            idx = spk.idx[b, base + j]
            mult = spk.mult[b, base + j]
        if tid == 0:
            ops += fanout_count(conn_i, topo.conn_geo, c, idx) * mult
        if kind == K_DENSE:
            wrow = woff + idx * co
            for k in range(tid, co, nthreads):
                w = weights[wrow + k]
                for _ in range(mult):
                    cuda.atomic.add(inp, (b, doff + k), w)
                tflag[b, uoff + k // block] = 1
        elif kind == K_IDENT:
            if tid == 0:
                w = weights[woff]
                for _ in range(mult):
                    cuda.atomic.add(inp, (b, doff + idx), w)
                tflag[b, uoff + idx // block] = 1
        else:
            ny, oy0, ky0, nx, ox0, kx0, ch = fanout_entry(conn_i, topo.conn_geo, c, idx)
            if kind == K_CONV:
                total = ny * nx * co
                for k in range(tid, total, nthreads):
                    ab = k // co
                    cout = k - ab * co
                    a = ab // nx
                    bb = ab - a * nx
                    wi = conv_weight_index(woff, kh, kw, co, ch, ky0 + a * sy, kx0 + bb * sx) + cout
                    n = ((oy0 - a) * wo + (ox0 - bb)) * co + cout
                    w = weights[wi]
                    for _ in range(mult):
                        cuda.atomic.add(inp, (b, doff + n), w)
                    tflag[b, uoff + n // block] = 1
            else:  # avg pool (a scalar weight) or max-pool gate (counts only)
                if kind == K_GATE and tid == 0:
                    g = pop_i[p, P_GOFF] + idx
                    cuda.atomic.add(st.gate_cnt, (b, g), mult)  # atomic: given input spikes may repeat a neuron
                    st.gate_last[b, g] = t
                total = ny * nx
                for k in range(tid, total, nthreads):
                    a = k // nx
                    bb = k - a * nx
                    n = ((oy0 - a) * wo + (ox0 - bb)) * ci + ch
                    if kind == K_POOL:
                        w = weights[woff]
                        for _ in range(mult):
                            cuda.atomic.add(inp, (b, doff + n), w)
                    tflag[b, uoff + n // block] = 1
        j += cuda.gridDim.x
    if tid == 0 and ops > 0:
        cuda.atomic.add(cnt.syn_ops, (b, p, t), ops)


@cuda.jit
def update(topo, params, st, spk, cnt, p, t, record):
    """Update the touched neurons of integrating population ``p`` at step ``t`` for sample
    ``blockIdx.y`` (one thread per neuron, grid-stride in whole blocks so every thread
    reaches the barrier)."""
    pop_i = topo.pop_i
    b = cuda.blockIdx.y
    v, inp, const, last_t, thr = st.v, st.inp, st.const, st.last_t, params.thr
    off, uoff, block, n_p = pop_i[p, P_OFF], pop_i[p, P_UOFF], pop_i[p, P_BLOCK], pop_i[p, P_N]
    subtract = pop_i[p, P_RESET] == RESET_SUBTRACT
    max_spikes = pop_i[p, P_MAX_SPIKES]
    spiking = pop_i[p, P_SPIKING] != 0
    leaky = pop_i[p, P_LEAKY] != 0
    has_const = pop_i[p, P_CONST] != 0
    tau = topo.pop_tau[p]
    tf = np.float64(t)
    tid = cuda.threadIdx.x
    units = 0
    start = cuda.blockIdx.x * cuda.blockDim.x
    while start < n_p:
        i = start + tid
        first = False
        if i < n_p:
            u = i // block
            if has_const or st.tflag[b, uoff + u] != 0:
                first = i == u * block  # count each updated unit once
                n = off + i
                f = np.float32(1.0)
                if leaky:
                    f = leak_factor(params.decay[p], tau, tf, last_t[b, n], False)
                    last_t[b, n] = tf
                vv = membrane(v[b, n], f, inp[b, n], const[b, n], leaky, has_const)
                inp[b, n] = np.float32(0.0)
                if spiking and crossed(vv, thr[n]):
                    s = spikes_emitted(vv, thr[n], max_spikes)
                    vv = after_reset(vv, thr[n], s, subtract, max_spikes)
                    slot = cuda.atomic.add(spk.n, (b, t, p), 1)
                    spk.idx[b, off + slot] = i
                    spk.mult[b, off + slot] = s
                    st.spike_count[b, n] += s
                    cuda.atomic.add(cnt.spikes, (b, p, t), s)
                    if record:  # the spike log of a batch of one (inlined: see gate)
                        at = cuda.atomic.add(spk.log_n, 0, s)
                        for r in range(s):
                            if at + r < spk.log_t.shape[0]:
                                spk.log_t[at + r] = tf
                                spk.log_pop[at + r] = p
                                spk.log_neuron[at + r] = i
                    if subtract and crossed(vv, thr[n]):
                        spk.tkeep[b, uoff + u] = 1  # still at threshold: update again at t + 1
                v[b, n] = vv
        units += cuda.syncthreads_count(int32(first))
        start += cuda.gridDim.x * cuda.blockDim.x
    if tid == 0 and units > 0:
        cuda.atomic.add(cnt.updates, (b, p, t), units * block)


@cuda.jit
def roll(topo, st, spk, p, t):
    """After the update of ``p`` at ``t`` (sample ``blockIdx.y``): the units to update again
    at ``t + 1`` become the touched set, and their number is kept (the CPU counts a
    recheck sentinel event)."""
    pop_i = topo.pop_i
    b = cuda.blockIdx.y
    uoff, n_units = pop_i[p, P_UOFF], pop_i[p, P_NUNITS]
    tflag, tkeep = st.tflag, spk.tkeep
    kept = 0
    start = cuda.blockIdx.x * cuda.blockDim.x
    while start < n_units:
        u = start + cuda.threadIdx.x
        keep = False
        if u < n_units:
            keep = tkeep[b, uoff + u] != 0
            tflag[b, uoff + u] = 1 if keep else 0
            tkeep[b, uoff + u] = 0
        kept += cuda.syncthreads_count(int32(keep))
        start += cuda.gridDim.x * cuda.blockDim.x
    if cuda.threadIdx.x == 0 and kept > 0:
        cuda.atomic.add(spk.kept, (b, p, t), kept)


@cuda.jit
def gate(topo, st, spk, cnt, p, t, record):
    """Max-pool gate ``p`` at ``t`` (sample ``blockIdx.y``): a touched output passes one
    spike if an input spiking now has the top running count of its window (the CPU's
    _flush_gate, per thread)."""
    conn_i, pop_i = topo.conn_i, topo.pop_i
    b = cuda.blockIdx.y
    gc = pop_i[p, P_IN_CONN]
    uoff, goff, off = pop_i[p, P_UOFF], pop_i[p, P_GOFF], pop_i[p, P_OFF]
    ch, wo, n_units = pop_i[p, P_C], pop_i[p, P_W], pop_i[p, P_NUNITS]
    wi, ci = conn_i[gc, C_WI], conn_i[gc, C_CI]
    kh, kw, sy, sx = conn_i[gc, C_KH], conn_i[gc, C_KW], conn_i[gc, C_SY], conn_i[gc, C_SX]
    tf = np.float64(t)
    units = 0
    spikes = 0
    start = cuda.blockIdx.x * cuda.blockDim.x
    while start < n_units:
        u = start + cuda.threadIdx.x
        touched = False
        fired = False
        if u < n_units and st.tflag[b, uoff + u] != 0:
            st.tflag[b, uoff + u] = 0
            touched = True
            c = u % ch
            ox = (u // ch) % wo
            oy = u // (ch * wo)
            best = -1
            for ky in range(kh):
                y = oy * sy + ky
                for kx in range(kw):
                    x = ox * sx + kx
                    s = goff + (y * wi + x) * ci + c
                    count = st.gate_cnt[b, s]
                    if count > best:
                        best = count
                        fired = st.gate_last[b, s] == tf
                    elif count == best and st.gate_last[b, s] == tf:
                        fired = True
            if fired:
                slot = cuda.atomic.add(spk.n, (b, t, p), 1)
                spk.idx[b, off + slot] = u
                spk.mult[b, off + slot] = 1
                st.spike_count[b, off + u] += 1
                if record:
                    # Append to the spike log; the host sizes it for a whole step
                    # (cuda._Context._ensure_log), the bound check is a safety net.
                    # Written out here and in update: a cuda.jit device function
                    # would need a GPU context to compile to PTX, njit ones do not.
                    at = cuda.atomic.add(spk.log_n, 0, 1)
                    if at < spk.log_t.shape[0]:
                        spk.log_t[at] = tf
                        spk.log_pop[at] = p
                        spk.log_neuron[at] = u
        units += cuda.syncthreads_count(int32(touched))
        spikes += cuda.syncthreads_count(int32(fired))
        start += cuda.gridDim.x * cuda.blockDim.x
    if cuda.threadIdx.x == 0:
        if units > 0:
            cuda.atomic.add(cnt.updates, (b, p, t), units)
        if spikes > 0:
            cuda.atomic.add(cnt.spikes, (b, p, t), spikes)


@cuda.jit
def fill(a, value):
    """``a[:] = value`` on the device (a flat view): a batch's state is reset in place
    instead of being uploaded from host zeros."""
    i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    while i < a.shape[0]:
        a[i] = value
        i += cuda.gridDim.x * cuda.blockDim.x


KERNELS = {"deliver": deliver, "update": update, "roll": roll, "gate": gate, "fill": fill}
