"""The CPU backend's event loop: pop events, deliver them, update touched neurons, emit spikes.

One kernel, :func:`advance`, serves ``run()``, ``run(until=t)`` and ``step()``:
it processes events in (time, rank, seq) order until the queue is empty, the
next event lies at or past ``until``, ``max_events`` were processed, or it
needs the caller to grow an array. All state is in arrays, so it resumes
exactly where it stopped.

Semantics of one (time, layer) key: every event of the key adds its weighted
fan-out into the layer's input buffer ``inp``; when the key's last event is
delivered the layer is *flushed*: each touched unit decays lazily from its last
update, integrates, and is checked against threshold (:mod:`.physics`)::

    V <- V * leak**(t - t_last) + I_events + I_const
    if V >= theta: spike, then V <- V - theta (subtract) or 0 (zero)

(with ``max_spikes = K > 1``: n = min(K, floor(V / theta)) spikes, one event
each, and V <- V - n theta; see :mod:`eventsnn.network`)

This is exactly the clock-driven update ``V[t] = leak V[t-1] + I[t]`` of
:mod:`eventsnn.reference` applied only where something happened. A neuron left
at ``V >= theta`` after a subtractive reset, and a layer with a constant
current (bias, analog input), is rechecked at ``t + 1`` by a sentinel event: a
clock-driven simulator would update it then too.

A flush appends its spikes, in emission order, to the queue's run buffer and
queues them as one run event per outgoing connection (:mod:`.queue`); the
event loop delivers, counts and steps a run one spike at a time.

What is CPU-specific here (and not in :mod:`.physics`): the touched lists,
the vectorised block update over one position's channels, the byte-mask
scan of the spike pass, and the spike runs. ``plug`` (:mod:`.plugs`) is the
optional per-event and per-spike hook; ``None`` compiles it away.
"""

from __future__ import annotations

import math

import numpy as np

from .connectivity import deliver, deliver_conv_run, fanin_sources, fanout, fanout_targets, touch
from .jit import inline_kernel, kernel
from .layout import (C_CI, C_DST, C_KH, C_KIND, C_KW, C_SX, C_SY, C_WI, K_CONV, K_GATE, NO_CONN, P_BLOCK, P_C, P_CONST,
                     P_GATE, P_GOFF, P_IN_CONN, P_INPUT, P_KIND, P_LEAKY, P_MAX_SPIKES, P_NUNITS, P_OC_N,
                     P_OC_START, P_OFF, P_RESET, P_SPIKING, P_UOFF, P_W, Q_B_FREE, Q_CUR, Q_EV_FREE, Q_HEAP_N,
                     Q_IN_CURSOR, Q_RUN_N, Q_RUN_NEED, RESET_SUBTRACT, RUN_END, ST_BREAK, ST_EMPTY, ST_GROW_LOG,
                     ST_GROW_QUEUE, ST_GROW_RUNS, ST_PAUSED, ST_UNTIL)
from .model import BRK_HIT, BRK_NONE, BRK_REPORTED
from .physics import after_reset, crossed, leak_factor, membrane, spikes_emitted
from .plugs import on_deliver, on_spike
from .queue import push_event, release_bucket, take_bucket


@inline_kernel
def _bin(t, nbins):
    b = int(math.floor(t))
    if b >= nbins:
        return nbins - 1
    if b < 0:
        return 0
    return b


# Lowest set bit of a 64-bit word by de Bruijn multiplication (no branch, no
# intrinsic numba exposes): the spike pass visits a mask word's crossings with
# it, in ascending byte (= neuron) order on this little-endian layout.
_DEBRUIJN = np.uint64(0x03F79D71B4CA8B09)
_DEBRUIJN_BYTE = np.zeros(64, np.int64)
for _i in range(64):
    _DEBRUIJN_BYTE[((1 << _i) * 0x03F79D71B4CA8B09 & (2 ** 64 - 1)) >> 58] = _i >> 3
del _i


@inline_kernel
def _lowest_byte(w):
    """Index (0-7) of the lowest non-zero byte of the non-zero uint64 ``w``, and ``w`` with that bit cleared."""
    low = w & (~w + np.uint64(1))
    return _DEBRUIJN_BYTE[(low * _DEBRUIJN) >> np.uint64(58)], w ^ low


@inline_kernel
def _hit(probes, p, k, t):
    """Neuron ``k`` of ``p`` spiking at ``t`` hits a spike breakpoint."""
    probes.hit[0] = BRK_HIT
    probes.hit[1] = p
    probes.hit[2] = k
    probes.hit_time[0] = t


@inline_kernel
def _log_spike(rec, i, p, k, t):
    """Entry ``i`` of the spike log: neuron ``k`` of ``p`` at ``t``."""
    rec.spike_t[i] = t
    rec.spike_pop[i] = p
    rec.spike_neuron[i] = k


@inline_kernel
def _record_spike(topo, params, state, cnt, rec, probes, sw, plug, p, k, t, tbin):
    """Neuron ``k`` of population ``p`` spikes at ``t``: count it, log it, check
    breakpoints, call the plug."""
    n = topo.pop_i[p, P_OFF] + k
    state.spike_count[n] += 1
    if (probes.on_pop[p] != 0 or probes.on_neuron[n] != 0) and probes.hit[0] == BRK_NONE:
        _hit(probes, p, k, t)
    cnt.spikes[p, tbin] += 1
    if sw.record_spikes:
        _log_spike(rec, rec.spike_n[0], p, k, t)
        rec.spike_n[0] += 1
    if plug is not None:
        on_spike(plug, topo, params, p, k, t)


@inline_kernel
def _emit(topo, params, state, q, cnt, rec, probes, sw, plug, p, k, t, tbin):
    """Neuron ``k`` of population ``p`` spikes at ``t``: append it to the update's run of
    spikes (:func:`_queue_run` records and queues the run when the update is done).
    With a plug the spike is recorded here and now: the plug's ``on_spike`` may act
    on neurons the same update checks later (lateral inhibition)."""
    if plug is not None:
        _record_spike(topo, params, state, cnt, rec, probes, sw, plug, p, k, t, tbin)
    qs = q.qs
    q.runs[qs[Q_RUN_N]] = k
    qs[Q_RUN_N] += 1


@inline_kernel
def _record_run(topo, state, cnt, rec, probes, sw, p, t, tbin, runs, start, end):
    """:func:`_record_spike` (without a plug) for the spikes ``runs[start:end]``, in order.
    Apart from the spike pass, the per-neuron counts scattered over a wide layer
    miss the cache; here the misses are independent and overlap."""
    off = topo.pop_i[p, P_OFF]
    count = state.spike_count
    for i in range(start, end):
        count[off + runs[i]] += 1
    if probes.hit[0] == BRK_NONE:
        watch_all = probes.on_pop[p] != 0
        for i in range(start, end):
            if watch_all or probes.on_neuron[off + runs[i]] != 0:
                _hit(probes, p, runs[i], t)
                break
    cnt.spikes[p, tbin] += end - start
    if sw.record_spikes:
        j = rec.spike_n[0]
        for i in range(start, end):
            _log_spike(rec, j + i - start, p, runs[i], t)
        rec.spike_n[0] = j + end - start


@inline_kernel
def _queue_run(topo, state, q, cnt, rec, probes, sw, plug, p, t, tbin, start):
    """The update of ``p`` at ``t`` appended its spikes to ``q.runs`` from ``start`` on:
    record them (unless the plug saw each as it came) and, if ``p`` has outgoing
    connections, end the run and queue it as one event per connection
    (``idx = -(start + 2)``), which the event loop delivers spike by spike (see
    :mod:`.queue`); without connections the entries are dropped again."""
    conn_i, pop_i, out_conn = topo.conn_i, topo.pop_i, topo.out_conn
    qs, runs = q.qs, q.runs
    end = qs[Q_RUN_N]
    if end == start:
        return
    if plug is None:
        _record_run(topo, state, cnt, rec, probes, sw, p, t, tbin, runs, start, end)
    if pop_i[p, P_OC_N] == 0:
        qs[Q_RUN_N] = start
        return
    runs[end] = RUN_END
    qs[Q_RUN_N] = end + 1
    oc = pop_i[p, P_OC_START]
    for j in range(pop_i[p, P_OC_N]):
        c = out_conn[oc + j]
        push_event(q, t + topo.conn_delay[c], conn_i[c, C_DST], c, -(start + 2))


@inline_kernel
def _fire(topo, params, state, q, cnt, rec, probes, sw, plug, p, n, off, t, tbin, subtract, max_spikes):
    """Neuron ``n`` (flat; ``v[n] >= threshold``) spikes: reset it, emit its spike(s);
    return whether it is still at threshold (a subtractive reset can leave it there)."""
    v, thr = state.v, params.thr
    spikes = spikes_emitted(v[n], thr[n], max_spikes)
    vv = after_reset(v[n], thr[n], spikes, subtract, max_spikes)
    v[n] = vv
    for _ in range(spikes):
        _emit(topo, params, state, q, cnt, rec, probes, sw, plug, p, n - off, t, tbin)
    return subtract and crossed(vv, thr[n])


@inline_kernel
def _fire_marked(topo, params, state, q, cnt, rec, probes, sw, plug, p, n, off, t, tbin, subtract, max_spikes):
    """:func:`_fire` for a neuron the spike pass's mask marked as crossed; returns whether it
    stays at threshold."""
    if plug is not None and not crossed(state.v[n], params.thr[n]):
        # A plug may have raised a threshold since the mask was taken
        # (lateral inhibition, learn/competition.py).
        return False
    return _fire(topo, params, state, q, cnt, rec, probes, sw, plug, p, n, off, t, tbin, subtract, max_spikes)


@inline_kernel
def _fire_crossings(topo, params, state, q, cnt, rec, probes, sw, plug, p, off, t, tbin, subtract, max_spikes,
                    mask, words, start, length, n_start, left):
    """The spike pass over ``mask[start:start + length]`` (neuron ``n_start`` at ``start``), in
    neuron order, until ``left`` crossings were visited: whole 8-byte words through
    :func:`_lowest_byte` when ``start`` is word-aligned, single bytes for the rest.
    Returns (crossings left, whether a neuron stays at threshold)."""
    recheck = False
    j = start
    if (start & 7) == 0:
        for wi in range(start >> 3, (start + length) >> 3):
            if left == 0:
                break
            w = words[wi]
            while w != 0:
                b, w = _lowest_byte(w)
                left -= 1
                if _fire_marked(topo, params, state, q, cnt, rec, probes, sw, plug, p,
                                n_start + (wi << 3) + b - start, off, t, tbin, subtract, max_spikes):
                    recheck = True
        j = start + ((length >> 3) << 3)
    while left > 0 and j < start + length:
        if mask[j] != 0:
            left -= 1
            if _fire_marked(topo, params, state, q, cnt, rec, probes, sw, plug, p, n_start + j - start, off, t,
                            tbin, subtract, max_spikes):
                recheck = True
        j += 1
    return left, recheck


@inline_kernel
def _keep_or_release(tflag, tlist, uoff, u, keep, recheck):
    """After unit ``u``'s update: keep it touched (``tlist[keep]``, in order) for a recheck
    at ``t + 1`` if a neuron stayed at threshold, else clear its touched flag; returns
    the new count of kept units."""
    if recheck:
        tflag[uoff + u] = 1
        tlist[uoff + keep] = u
        return keep + 1
    tflag[uoff + u] = 0
    return keep


@inline_kernel
def _collect_crossings(mask, words, start, length, out, n):
    """Append the positions ``j`` in ``[start, start + length)`` with ``mask[j] != 0`` to
    ``out[n:]``, in order; return the new ``n``. Whole 8-byte words when ``start`` is
    word-aligned, single bytes for the rest. Kept apart from firing, this loop has
    few live values and runs from registers."""
    j = start
    if (start & 7) == 0:
        for wi in range(start >> 3, (start + length) >> 3):
            w = words[wi]
            while w != 0:
                b, w = _lowest_byte(w)
                out[n] = (wi << 3) + b
                n += 1
        j = start + ((length >> 3) << 3)
    while j < start + length:
        if mask[j] != 0:
            out[n] = j
            n += 1
        j += 1
    return n


@kernel
def _flush_input(topo, params, state, q, cnt, rec, probes, sw, plug, t, tbin):
    """The input spikes at ``t``: record each and queue them as one run (:func:`_queue_run`),
    like a layer's spikes; then the sentinel of the next input time."""
    in_time, in_idx = state.in_time, state.in_idx
    qs = q.qs
    start = qs[Q_RUN_N]
    k = qs[Q_IN_CURSOR]
    n = in_time.shape[0]
    while k < n and in_time[k] == t:
        _emit(topo, params, state, q, cnt, rec, probes, sw, plug, 0, in_idx[k], t, tbin)
        k += 1
    _queue_run(topo, state, q, cnt, rec, probes, sw, plug, 0, t, tbin, start)
    qs[Q_IN_CURSOR] = k
    if k < n:
        push_event(q, in_time[k], 0, NO_CONN, -1)


@inline_kernel
def _integrate_block(v, inp, const, thr, f, leaky, has_const):
    """Update one unit's neurons (equal-length views) with :func:`.physics.membrane`,
    clear the event input, and return how many reached threshold. The four loops
    pass literal flags, so each compiles to straight SIMD code."""
    zero = np.float32(0.0)
    n = v.shape[0]
    count = 0
    if leaky and has_const:
        for j in range(n):
            vv = membrane(v[j], f, inp[j], const[j], True, True)
            inp[j] = zero
            v[j] = vv
            count += crossed(vv, thr[j])
    elif leaky:
        for j in range(n):
            vv = membrane(v[j], f, inp[j], zero, True, False)
            inp[j] = zero
            v[j] = vv
            count += crossed(vv, thr[j])
    elif has_const:
        for j in range(n):
            vv = membrane(v[j], f, inp[j], const[j], False, True)
            inp[j] = zero
            v[j] = vv
            count += crossed(vv, thr[j])
    else:
        for j in range(n):
            vv = membrane(v[j], f, inp[j], zero, False, False)
            inp[j] = zero
            v[j] = vv
            count += crossed(vv, thr[j])
    return count


@inline_kernel
def _mark_crossed(v, thr, mask):
    """mask[j] = v[j] >= thr[j] (vectorised); the spike pass then skips zero 8-byte words."""
    for j in range(v.shape[0]):
        mask[j] = crossed(v[j], thr[j])


@inline_kernel
def _largest_drive(inp, const, has_const, top):
    """max(top, max(inp + const)): the largest input a neuron of the block receives
    (spike-norm's threshold balancing reads it)."""
    n = inp.shape[0]
    if has_const:
        for j in range(n):
            d = inp[j] + const[j]
            if d > top:
                top = d
    else:
        for j in range(n):
            if inp[j] > top:
                top = inp[j]
    return top


@inline_kernel
def _integrate_all(v, inp, const, thr, mask, has_const):
    """:func:`_integrate_block` over a whole non-leaky layer in one pass, writing
    ``mask[j] = v[j] >= thr[j]`` as it goes; returns whether any crossed. (An OR,
    not a count: a 64-bit count halved the vector width of the loop.)"""
    zero = np.float32(0.0)
    f = np.float32(1.0)
    any_crossed = False
    if has_const:
        for j in range(v.shape[0]):
            vv = membrane(v[j], f, inp[j], const[j], False, True)
            inp[j] = zero
            v[j] = vv
            c = crossed(vv, thr[j])
            mask[j] = c
            any_crossed |= c
    else:
        for j in range(v.shape[0]):
            vv = membrane(v[j], f, inp[j], zero, False, False)
            inp[j] = zero
            v[j] = vv
            c = crossed(vv, thr[j])
            mask[j] = c
            any_crossed |= c
    return any_crossed


@kernel
def _flush_flat(topo, params, state, q, cnt, rec, probes, sw, p, t, tbin, m, subtract, max_spikes, has_const):
    """The flush of a non-leaky layer whose units are (nearly) all touched, without a plug.

    The membrane update is elementwise, so it runs over the whole layer at once
    (an untouched unit has no input and stays where it is: V + 0 = V); the
    spike pass then visits the touched units in the same (touch) order as the
    unit-by-unit loop, so every spike, event and count is the same. Per-unit
    overhead (slices, leak and spike-pass set-up) dominated at low rates, where
    every step touches every unit of the early layers but few neurons spike.
    Returns how many units stay touched for a recheck at ``t + 1``.
    """
    pop_i, thr = topo.pop_i, params.thr
    v, inp, const = state.v, state.inp, state.const
    tflag, tlist = state.tflag, state.tlist
    off, uoff, block = pop_i[p, P_OFF], pop_i[p, P_UOFF], pop_i[p, P_BLOCK]
    n_all = pop_i[p, P_NUNITS] * block
    mask = state.crossed
    any_crossed = _integrate_all(v[off:off + n_all], inp[off:off + n_all], const[off:off + n_all],
                                 thr[off:off + n_all], mask[:n_all], has_const)
    keep = 0
    if not any_crossed:  # the spike pass would only release the touched units
        for i in range(m):
            keep = _keep_or_release(tflag, tlist, uoff, tlist[uoff + i], keep, False)
        return keep
    # The spike pass in two loops: the crossings of the touched units, in touch order,
    # into the top of the run buffer (_room reserves it: the spikes appended from the
    # bottom never reach it), then each one fired in that order. A unit with a
    # neuron left at threshold is flagged 2 and kept for a recheck at t + 1.
    words = mask[:(n_all >> 3) << 3].view(np.uint64)  # whole words where block % 8 == 0
    runs = q.runs
    cbase = runs.shape[0] - m * block
    nc = cbase
    for i in range(m):
        u = tlist[uoff + i]
        nc = _collect_crossings(mask, words, u * block, block, runs, nc)
    for j in range(cbase, nc):
        k = runs[j]
        if _fire(topo, params, state, q, cnt, rec, probes, sw, None, p, off + k, off, t, tbin, subtract,
                 max_spikes):
            tflag[uoff + k // block] = 2
    for i in range(m):
        u = tlist[uoff + i]
        keep = _keep_or_release(tflag, tlist, uoff, u, keep, tflag[uoff + u] == 2)
    return keep


@kernel
def _flush_single(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin, m, subtract, max_spikes,
                  spiking, leaky, has_const):
    """The flush of a layer whose units are single neurons (``block == 1``), without
    traces: each touched neuron in touch order, :func:`.physics.membrane` then the
    spike; the same arithmetic and order as the unit-by-unit loop. Returns how many
    stay touched for a recheck at ``t + 1``."""
    pop_i, thr = topo.pop_i, params.thr
    v, inp, const, last_t = state.v, state.inp, state.const, state.last_t
    tflag, tlist = state.tflag, state.tlist
    off, uoff = pop_i[p, P_OFF], pop_i[p, P_UOFF]
    decay_row, tau = params.decay[p], topo.pop_tau[p]
    zero = np.float32(0.0)
    keep = 0
    for i in range(m):
        u = tlist[uoff + i]
        n = off + u
        f = np.float32(1.0)
        if leaky:
            f = leak_factor(decay_row, tau, t, last_t[n], sw.continuous)
            last_t[n] = t
        vv = membrane(v[n], f, inp[n], const[n] if has_const else zero, leaky, has_const)
        inp[n] = zero
        v[n] = vv
        recheck = spiking and crossed(vv, thr[n]) and _fire(topo, params, state, q, cnt, rec, probes, sw, plug,
                                                             p, n, off, t, tbin, subtract, max_spikes)
        keep = _keep_or_release(tflag, tlist, uoff, u, keep, recheck)
    return keep


@kernel
def _flush_integrate(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin, t_end):
    pop_i, thr = topo.pop_i, params.thr
    v, inp, const, last_t = state.v, state.inp, state.const, state.last_t
    tflag, tlist, tn = state.tflag, state.tlist, state.tn
    top = state.max_input[p]
    off, uoff, block = pop_i[p, P_OFF], pop_i[p, P_UOFF], pop_i[p, P_BLOCK]
    subtract = pop_i[p, P_RESET] == RESET_SUBTRACT
    max_spikes = pop_i[p, P_MAX_SPIKES]
    spiking = pop_i[p, P_SPIKING] != 0
    leaky = pop_i[p, P_LEAKY] != 0
    has_const = pop_i[p, P_CONST] != 0
    tracing = sw.trace
    decay_row = params.decay[p]
    tau = topo.pop_tau[p]
    m = tn[p]
    keep = 0
    nunits = pop_i[p, P_NUNITS]
    run_start = q.qs[Q_RUN_N]
    # The whole-layer pass (see _flush_flat) pays once most units are touched.
    flat = (plug is None and spiking and not leaky and not tracing and not sw.track_max_input and block >= 8
            and 2 * m >= nunits)
    # Single-neuron units (pools, gates' targets, residual adds): the same update without the
    # per-unit slices and loop set-up, which cost several times the update itself.
    single = not flat and block == 1 and not tracing and not sw.track_max_input
    if flat:
        keep = _flush_flat(topo, params, state, q, cnt, rec, probes, sw, p, t, tbin, m, subtract, max_spikes,
                           has_const)
    elif single:
        keep = _flush_single(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin, m, subtract,
                             max_spikes, spiking, leaky, has_const)
    for i in range(0 if flat or single else m):
        u = tlist[uoff + i]
        n0 = off + u * block
        n1 = n0 + block
        f = np.float32(1.0)
        if leaky:
            f = leak_factor(decay_row, tau, t, last_t[n0], sw.continuous)
            last_t[n0:n1] = t  # only leaky neurons need their last update time
        if sw.track_max_input:
            top = _largest_drive(inp[n0:n1], const[n0:n1], has_const, top)
        count = _integrate_block(v[n0:n1], inp[n0:n1], const[n0:n1], thr[n0:n1], f, leaky, has_const)
        recheck = False
        if spiking and count > 0 and not tracing and block >= 16:
            # The spike pass over a wide unit: mark the crossings (vectorised), then
            # visit them in neuron order, 8 flags per 64-bit word.
            mask = state.crossed[:block]
            _mark_crossed(v[n0:n1], thr[n0:n1], mask)
            words = state.crossed[:(block >> 3) << 3].view(np.uint64)
            _, recheck = _fire_crossings(topo, params, state, q, cnt, rec, probes, sw, plug, p, off, t, tbin,
                                         subtract, max_spikes, mask, words, 0, block, n0, count)
        elif (spiking and count > 0) or tracing:
            # The spike pass, in neuron order; v already holds the integrated potential.
            for n in range(n0, n1):
                vv = v[n]
                pre = vv
                if spiking and crossed(vv, thr[n]):
                    if _fire(topo, params, state, q, cnt, rec, probes, sw, plug, p, n, off, t, tbin,
                             subtract, max_spikes):
                        recheck = True
                    vv = v[n]
                if tracing and rec.traced[n] != 0:
                    i_tr = rec.trace_n[0]
                    rec.trace_t[i_tr] = t
                    rec.trace_neuron[i_tr] = n
                    rec.trace_pre[i_tr] = pre
                    rec.trace_post[i_tr] = vv
                    rec.trace_n[0] = i_tr + 1
        keep = _keep_or_release(tflag, tlist, uoff, u, keep, recheck)
    cnt.updates[p, tbin] += m * block
    tn[p] = keep
    state.max_input[p] = top
    _queue_run(topo, state, q, cnt, rec, probes, sw, plug, p, t, tbin, run_start)
    if has_const:
        for u in range(pop_i[p, P_NUNITS]):
            touch(tflag, tlist, tn, uoff, p, u)
    if tn[p] > 0 and t + 1.0 < t_end:
        push_event(q, t + 1.0, p, NO_CONN, -1)


@kernel
def _flush_gate(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin):
    """Max-pool gate: pass a spike if an input spiking now has the window's top count."""
    conn_i, pop_i = topo.conn_i, topo.pop_i
    tflag, tlist, tn, gate_cnt, gate_last = state.tflag, state.tlist, state.tn, state.gate_cnt, state.gate_last
    g = conn_i[pop_i[p, P_IN_CONN]]
    uoff, goff = pop_i[p, P_UOFF], pop_i[p, P_GOFF]
    ch, wo = pop_i[p, P_C], pop_i[p, P_W]
    wi, ci = g[C_WI], g[C_CI]
    run_start = q.qs[Q_RUN_N]
    for i in range(tn[p]):
        u = tlist[uoff + i]
        tflag[uoff + u] = 0
        c = u % ch
        ox = (u // ch) % wo
        oy = u // (ch * wo)
        best = -1
        fired = False
        for ky in range(g[C_KH]):
            y = oy * g[C_SY] + ky
            for kx in range(g[C_KW]):
                x = ox * g[C_SX] + kx
                s = goff + (y * wi + x) * ci + c
                count = gate_cnt[s]
                if count > best:
                    best = count
                    fired = gate_last[s] == t
                elif count == best and gate_last[s] == t:
                    fired = True
        if fired:
            _emit(topo, params, state, q, cnt, rec, probes, sw, plug, p, u, t, tbin)
    _queue_run(topo, state, q, cnt, rec, probes, sw, plug, p, t, tbin, run_start)
    cnt.updates[p, tbin] += tn[p]
    tn[p] = 0


@kernel
def _room(topo, state, q, rec, sw, p, t):
    """ST_GROW_* if the flush of ``p`` at ``t`` might not fit, else -1 (ST_GROW_RUNS
    leaves the run-buffer entries it needs in ``qs[Q_RUN_NEED]``)."""
    pop_i = topo.pop_i
    qs = q.qs
    n_oc = pop_i[p, P_OC_N]
    if pop_i[p, P_KIND] == P_INPUT:
        in_time = state.in_time
        k = qs[Q_IN_CURSOR]
        m = 0
        while k + m < in_time.shape[0] and in_time[k + m] == t:
            m += 1
        room = m + 1
    else:
        m = state.tn[p]
        room = m + 1
        if pop_i[p, P_KIND] != P_GATE:
            touched = m * pop_i[p, P_BLOCK]
            m = touched * pop_i[p, P_MAX_SPIKES]
            room = m + 1 + touched  # and the crossings of the whole-layer pass (_flush_flat)
    events = n_oc + 2  # one run event per connection, and a sentinel
    if qs[Q_EV_FREE] < events or qs[Q_B_FREE] < events:
        return ST_GROW_QUEUE
    if q.runs.shape[0] - qs[Q_RUN_N] < room:
        qs[Q_RUN_NEED] = room
        return ST_GROW_RUNS
    if sw.record_spikes and rec.spike_n[0] + m > rec.spike_t.shape[0]:
        return ST_GROW_LOG
    if sw.trace and rec.trace_n[0] + m > rec.trace_t.shape[0]:
        return ST_GROW_LOG
    return -1


@inline_kernel
def _deliver_event(topo, params, state, plug, c, idx, doff, uoff, p, block, goff, t):
    """One spike event of source ``idx`` through connection ``c``; returns its syn ops."""
    conn_i = topo.conn_i
    if plug is not None:
        on_deliver(plug, topo, params, c, idx, t)
    if conn_i[c, C_KIND] == K_GATE:
        state.gate_cnt[goff + idx] += 1
        state.gate_last[goff + idx] = t
    return deliver(conn_i, topo.conn_geo, c, params.weights, idx, np.float32(1.0), state.inp, doff, state.tflag,
                   state.tlist, state.tn, uoff, p, block)


@kernel
def advance(topo, params, state, q, cnt, rec, probes, sw, t_end, until, max_events, plug):
    """Process events; return (status, events processed). See the module doc."""
    conn_i, pop_i = topo.conn_i, topo.pop_i
    qs, ev_conn, ev_idx, ev_next, ev_free, runs = q.qs, q.ev_conn, q.ev_idx, q.ev_next, q.ev_free, q.runs
    b_time, b_rank, b_head, heap = q.b_time, q.b_rank, q.b_head, q.heap
    syn = cnt.syn_ops
    nbins = syn.shape[1]
    last_rank = pop_i.shape[0] - 1
    done = 0
    while True:
        b = qs[Q_CUR]
        if b < 0:
            if qs[Q_HEAP_N] == 0:
                qs[Q_RUN_N] = 0  # no event reads a run any more
                return ST_EMPTY, done
            # Layer-major order: every layer but the last runs to the end first,
            # so only the last layer's events are held back by ``until``.
            if b_time[heap[0]] >= until and (not q.layer_major or b_rank[heap[0]] == last_rank):
                return ST_UNTIL, done
            b = take_bucket(q)
        t = b_time[b]
        if t > state.clock[0]:  # layer order revisits earlier times; "now" is the latest
            state.clock[0] = t
        p = b_rank[b]
        tbin = _bin(t, nbins)
        doff, uoff, block, goff = pop_i[p, P_OFF], pop_i[p, P_UOFF], pop_i[p, P_BLOCK], pop_i[p, P_GOFF]
        ops = 0
        free_top = qs[Q_EV_FREE]
        e = b_head[b]
        while e >= 0:
            if done >= max_events:
                break
            c = ev_conn[e]
            if c == NO_CONN:
                done += 1
            else:  # a run of spikes (see _queue_run), delivered and counted one spike at a time
                k = -ev_idx[e] - 2
                if plug is None and conn_i[c, C_KIND] == K_CONV:
                    k, run_ops, n = deliver_conv_run(conn_i, topo.conn_geo, c, params.weights, runs, k,
                                                     max_events - done, state.inp, doff, state.tflag, state.tlist,
                                                     state.tn, uoff, p, block)
                    ops += run_ops
                    done += n
                else:
                    while True:
                        ops += _deliver_event(topo, params, state, plug, c, runs[k], doff, uoff, p, block, goff,
                                              t)
                        done += 1
                        k += 1
                        if runs[k] == RUN_END or done >= max_events:
                            break
                if runs[k] != RUN_END:
                    ev_idx[e] = -(k + 2)  # paused inside the run: resume at spike k
                    break
            ev_free[free_top] = e  # release the event slot
            free_top += 1
            e = ev_next[e]
        # Per-bucket bookkeeping, kept out of the per-event loop.
        b_head[b] = e
        qs[Q_EV_FREE] = free_top
        syn[p, tbin] += ops
        if e >= 0:
            return ST_PAUSED, done
        # A later bucket with the same key (possible in continuous time) joins this one.
        if qs[Q_HEAP_N] > 0:
            top = heap[0]
            if b_time[top] == t and b_rank[top] == p:
                release_bucket(q, b)
                qs[Q_CUR] = -1
                take_bucket(q)
                continue
        status = _room(topo, state, q, rec, sw, p, t)
        if status >= 0:
            return status, done
        kind = pop_i[p, P_KIND]
        if kind == P_INPUT:
            _flush_input(topo, params, state, q, cnt, rec, probes, sw, plug, t, tbin)
        elif kind == P_GATE:
            _flush_gate(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin)
        else:
            _flush_integrate(topo, params, state, q, cnt, rec, probes, sw, plug, p, t, tbin, t_end)
        release_bucket(q, b)
        qs[Q_CUR] = -1
        if probes.hit[0] == BRK_HIT:
            probes.hit[0] = BRK_REPORTED  # the caller clears it to resume
            return ST_BREAK, done
        if done >= max_events:
            return ST_PAUSED, done


@kernel
def inject_analog(topo, params, state, x, conns, macs):
    """Direct input: add W*x of every input connection into the constant current.

    The analog first layer is computed once per sample (its current is the
    same at every step); ``macs[dst]`` receives its exact multiply-accumulates.
    """
    conn_i, pop_i = topo.conn_i, topo.pop_i
    for j in range(conns.shape[0]):
        c = conns[j]
        dst = conn_i[c, C_DST]
        total = 0
        for i in range(x.shape[0]):
            if x[i] != 0.0:
                total += deliver(conn_i, topo.conn_geo, c, params.weights, i, x[i], state.const,
                                 pop_i[dst, P_OFF], state.tflag, state.tlist, state.tn, pop_i[dst, P_UOFF], dst,
                                 pop_i[dst, P_BLOCK])
        macs[dst] += total


@kernel
def start_sample(topo, state, q, t_end):
    """Queue the first input event and the first update of constant-current layers."""
    pop_i = topo.pop_i
    tflag, tlist, tn, in_time = state.tflag, state.tlist, state.tn, state.in_time
    if in_time.shape[0] > 0 and in_time[0] < t_end:
        push_event(q, in_time[0], 0, NO_CONN, -1)
    for p in range(1, pop_i.shape[0]):
        if pop_i[p, P_CONST] != 0:
            uoff = pop_i[p, P_UOFF]
            for u in range(pop_i[p, P_NUNITS]):
                touch(tflag, tlist, tn, uoff, p, u)
            if t_end > 0.0:
                push_event(q, 0.0, p, NO_CONN, -1)


@kernel
def fanout_of(conn_i, geo, c, idx):
    """Exact fan-out of source ``idx`` through connection ``c`` (for tests and counts)."""
    return fanout(conn_i, geo, c, idx)


@kernel
def targets_of(conn_i, geo, c, idx, out_idx, out_w):
    """The targets (flat index in the target layer) of one source neuron and the
    index of each synapse's weight (see connectivity.fanout_targets)."""
    return fanout_targets(conn_i, geo, c, idx, out_idx, out_w)


@kernel
def sources_of(conn_i, fgeo, c, idx, out_idx, out_w):
    """The sources (flat index in the source layer) of one target neuron and the
    index of each synapse's weight (see connectivity.fanin_sources)."""
    return fanin_sources(conn_i, fgeo, c, idx, out_idx, out_w)
