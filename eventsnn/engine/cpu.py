"""The CPU event loop: pop events, deliver them, update touched neurons, emit spikes.

One kernel, :func:`advance`, serves ``run()``, ``run(until=t)`` and ``step()``:
it processes events in (time, rank, seq) order until the queue is empty, the
next event lies at or past ``until``, ``max_events`` were processed, or it
needs the caller to grow an array. All state is in arrays, so it resumes
exactly where it stopped.

Semantics of one (time, layer) key: every event of the key adds its weighted
fan-out into the layer's input buffer ``inp``; when the key's last event is
delivered the layer is *flushed*: each touched unit decays lazily from its last
update, integrates, and is checked against threshold::

    V <- V * leak**(t - t_last) + I_events + I_const
    if V >= theta: spike, then V <- V - theta (subtract) or 0 (zero)

(with ``max_spikes = K > 1``: n = min(K, floor(V / theta)) spikes, one event
each, and V <- V - n theta; see :mod:`eventsnn.network`)

This is exactly the clock-driven update ``V[t] = leak V[t-1] + I[t]`` applied
only where something happened. A neuron left at ``V >= theta`` after a
subtractive reset, and a layer with a constant current (bias, analog input),
is rechecked at ``t + 1`` by a sentinel event: a clock-driven simulator would
update it then too.
"""

from __future__ import annotations

import math

import numpy as np

from .connectivity import deliver, fanout, fanout_targets, touch
from .jit import inline_kernel, kernel
from .neurons import integrate_block, largest_drive, mark_crossed
from .layout import (C_DST, C_KIND, K_GATE, NO_CONN, P_BLOCK, P_C, P_CONST, P_GATE, P_GOFF,
                     P_IN_CONN, P_INPUT, P_KIND, P_LEAKY, P_MAX_SPIKES, P_NUNITS, P_OC_N, P_OC_START, P_OFF,
                     P_RESET, P_SPIKING, P_UOFF, P_W, Q_B_FREE, Q_CUR, Q_EV_FREE, Q_HEAP_N,
                     Q_IN_CURSOR, Q_LAYER_MAJOR, RESET_SUBTRACT, ST_EMPTY, ST_GROW_LOG, ST_GROW_QUEUE, ST_PAUSED,
                     ST_UNTIL, ST_BREAK, C_CI, C_KH, C_KW, C_SX, C_SY, C_WI)
from .queue import push_event, release_bucket, take_bucket


@inline_kernel
def _bin(t, nbins):
    b = int(math.floor(t))
    if b >= nbins:
        return nbins - 1
    if b < 0:
        return 0
    return b


@inline_kernel
def _record_spike(pop_i, st, cnt, lg, log_on, p, k, t, tbin):
    """Neuron ``k`` of population ``p`` spikes at ``t``: count it, log it, check breakpoints."""
    spike_count, brk_pop, brk_neuron, brk_hit = st[9], st[14], st[15], st[16]
    n = pop_i[p, P_OFF] + k
    spike_count[n] += 1
    if (brk_pop[p] != 0 or brk_neuron[n] != 0) and brk_hit[0] == 0.0:
        brk_hit[0] = 1.0
        brk_hit[1] = t
        brk_hit[2] = p
        brk_hit[3] = k
    cnt[1][p, tbin] += 1
    if log_on:
        log_n = lg[3]
        i = log_n[0]
        lg[0][i] = t
        lg[1][i] = p
        lg[2][i] = k
        log_n[0] = i + 1


@inline_kernel
def _emit(net, st, q, cnt, lg, log_on, p, k, t, tbin):
    """Neuron ``k`` of population ``p`` spikes at ``t``: record it and queue one event per
    outgoing connection (``idx = k``)."""
    conn_i, conn_delay, pop_i, out_conn = net[0], net[1], net[3], net[5]
    _record_spike(pop_i, st, cnt, lg, log_on, p, k, t, tbin)
    start = pop_i[p, P_OC_START]
    for j in range(pop_i[p, P_OC_N]):
        c = out_conn[start + j]
        push_event(q, t + conn_delay[c], conn_i[c, C_DST], c, k)


@inline_kernel
def _fire(net, st, q, cnt, lg, log_on, p, n, off, t, tbin, subtract, max_spikes):
    """Neuron ``n`` (flat; ``v[n] >= threshold``) spikes: reset it (subtract the
    threshold, or to zero), emit the spike; return whether it is still at threshold.
    With ``max_spikes > 1`` it fires min(max_spikes, floor(v / threshold)) spikes,
    one event each, and a subtractive reset removes that many thresholds."""
    v, thr = st[0], net[6]
    spikes = 1
    if max_spikes > 1:
        # v >= thr > 0, so the float32 quotient is >= 1: at least one spike. Capped
        # before the integer conversion, which a huge quotient would overflow.
        quotient = v[n] / thr[n]
        spikes = max_spikes if quotient >= max_spikes else int(math.floor(quotient))
    if subtract:
        vv = v[n] - np.float32(spikes) * thr[n] if max_spikes > 1 else v[n] - thr[n]
    else:
        vv = np.float32(0.0)
    v[n] = vv
    for _ in range(spikes):
        _emit(net, st, q, cnt, lg, log_on, p, n - off, t, tbin)
    return subtract and vv >= thr[n]


@kernel
def _flush_input(net, st, q, cnt, lg, log_on, t, tbin):
    """The input spikes at ``t``: record each, and queue them as one *run* event per
    outgoing connection (``idx = -(k + 2)``: input spikes k, k+1, ... while their time
    is ``t``), which the event loop delivers spike by spike. Same order, same
    per-spike events for step(), without a queue slot and a push per input spike."""
    conn_i, conn_delay, pop_i, out_conn = net[0], net[1], net[3], net[5]
    in_time, in_idx = st[10], st[11]
    qs = q[0]
    k0 = qs[Q_IN_CURSOR]
    k = k0
    n = in_time.shape[0]
    while k < n and in_time[k] == t:
        _record_spike(pop_i, st, cnt, lg, log_on, 0, in_idx[k], t, tbin)
        k += 1
    if k > k0:
        start = pop_i[0, P_OC_START]
        for j in range(pop_i[0, P_OC_N]):
            c = out_conn[start + j]
            push_event(q, t + conn_delay[c], conn_i[c, C_DST], c, -(k0 + 2))
    qs[Q_IN_CURSOR] = k
    if k < n:
        push_event(q, in_time[k], 0, NO_CONN, -1)


@kernel
def _flush_integrate(net, st, q, cnt, lg, log_on, p, t, tbin, t_end, continuous):
    pop_i, pop_tau, thr, decay = net[3], net[4], net[6], net[7]
    traced, tr_t, tr_n, tr_pre, tr_post, tr_count = st[17], lg[4], lg[5], lg[6], lg[7], lg[8]
    v, inp, const, last_t, tflag, tlist, tn = st[0], st[1], st[2], st[3], st[4], st[5], st[6]
    max_input, crossed_buf = st[13], st[18]
    top = max_input[p]
    track = lg[10][0] != 0  # spike-norm asks for the largest drive
    off, uoff, block = pop_i[p, P_OFF], pop_i[p, P_UOFF], pop_i[p, P_BLOCK]
    subtract = pop_i[p, P_RESET] == RESET_SUBTRACT
    max_spikes = pop_i[p, P_MAX_SPIKES]
    spiking = pop_i[p, P_SPIKING] != 0
    leaky = pop_i[p, P_LEAKY] != 0
    has_const = pop_i[p, P_CONST] != 0
    tracing = lg[9][0] != 0
    m = tn[p]
    keep = 0
    for i in range(m):
        u = tlist[uoff + i]
        n0 = off + u * block
        n1 = n0 + block
        f = np.float32(1.0)
        if leaky:
            if continuous:
                f = np.float32(math.exp(-(t - last_t[n0]) / pop_tau[p]))
            else:
                f = decay[p, int(t - last_t[n0])]
            last_t[n0:n1] = t  # only leaky neurons need their last update time
        if track:
            top = largest_drive(inp[n0:n1], const[n0:n1], has_const, top)
        crossed = integrate_block(v[n0:n1], inp[n0:n1], const[n0:n1], thr[n0:n1], f, leaky, has_const)
        recheck = False
        if spiking and crossed > 0 and not tracing and block >= 16:
            # The spike pass over a wide unit: mark the crossings (vectorised), then
            # visit them in neuron order, 8 flags per 64-bit word.
            mask = crossed_buf[:block]
            mark_crossed(v[n0:n1], thr[n0:n1], mask)
            words = crossed_buf[:(block >> 3) << 3].view(np.uint64)
            left = crossed
            j = 0
            while left > 0 and j < block:
                if (j & 7) == 0 and (j >> 3) < words.shape[0] and words[j >> 3] == 0:
                    j += 8
                    continue
                if mask[j] != 0:
                    left -= 1
                    n = n0 + j
                    if _fire(net, st, q, cnt, lg, log_on, p, n, off, t, tbin, subtract, max_spikes):
                        recheck = True
                j += 1
        elif (spiking and crossed > 0) or tracing:
            # The spike pass, in neuron order; v already holds the integrated potential.
            for n in range(n0, n1):
                vv = v[n]
                pre = vv
                if spiking and vv >= thr[n]:
                    if _fire(net, st, q, cnt, lg, log_on, p, n, off, t, tbin, subtract, max_spikes):
                        recheck = True
                    vv = v[n]
                if tracing and traced[n] != 0:
                    i_tr = tr_count[0]
                    tr_t[i_tr] = t
                    tr_n[i_tr] = n
                    tr_pre[i_tr] = pre
                    tr_post[i_tr] = vv
                    tr_count[0] = i_tr + 1
        if recheck:
            tlist[uoff + keep] = u
            keep += 1
        else:
            tflag[uoff + u] = 0
    cnt[2][p, tbin] += m * block
    tn[p] = keep
    max_input[p] = top
    if has_const:
        for u in range(pop_i[p, P_NUNITS]):
            touch(tflag, tlist, tn, uoff, p, u)
    if tn[p] > 0 and t + 1.0 < t_end:
        push_event(q, t + 1.0, p, NO_CONN, -1)


@kernel
def _flush_gate(net, st, q, cnt, lg, log_on, p, t, tbin):
    """Max-pool gate: pass a spike if an input spiking now has the window's top count."""
    conn_i, pop_i = net[0], net[3]
    tflag, tlist, tn, gate_cnt, gate_last = st[4], st[5], st[6], st[7], st[8]
    g = conn_i[pop_i[p, P_IN_CONN]]
    uoff, goff = pop_i[p, P_UOFF], pop_i[p, P_GOFF]
    ch, wo = pop_i[p, P_C], pop_i[p, P_W]
    wi, ci = g[C_WI], g[C_CI]
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
            _emit(net, st, q, cnt, lg, log_on, p, u, t, tbin)
    cnt[2][p, tbin] += tn[p]
    tn[p] = 0


@kernel
def _room(net, st, q, lg, log_on, p, t, continuous):
    """ST_GROW_* if the flush of ``p`` at ``t`` might not fit, else -1."""
    pop_i = net[3]
    qs = q[0]
    n_oc = pop_i[p, P_OC_N]
    if pop_i[p, P_KIND] == P_INPUT:
        in_time = st[10]
        k = qs[Q_IN_CURSOR]
        m = 0
        while k + m < in_time.shape[0] and in_time[k + m] == t:
            m += 1
        events = n_oc + 2  # one run event per connection
    else:
        m = st[6][p]
        if pop_i[p, P_KIND] != P_GATE:
            m *= pop_i[p, P_BLOCK] * pop_i[p, P_MAX_SPIKES]
        events = m * n_oc + 2
    buckets = events if continuous else n_oc + 2
    if qs[Q_EV_FREE] < events or qs[Q_B_FREE] < buckets:
        return ST_GROW_QUEUE
    if log_on and lg[3][0] + m > lg[0].shape[0]:
        return ST_GROW_LOG
    if lg[9][0] != 0 and lg[8][0] + m > lg[4].shape[0]:
        return ST_GROW_LOG
    return -1


@inline_kernel
def _deliver_event(conn_i, geo, c, weights, idx, inp, doff, tflag, tlist, tn, uoff, p, block, gate_cnt,
                   gate_last, goff, t):
    """One spike event of source ``idx`` through connection ``c``; returns its syn ops."""
    if conn_i[c, C_KIND] == K_GATE:
        gate_cnt[goff + idx] += 1
        gate_last[goff + idx] = t
    return deliver(conn_i, geo, c, weights, idx, np.float32(1.0), inp, doff, tflag, tlist, tn, uoff, p, block)


@kernel
def advance(net, st, q, cnt, lg, log_on, t_end, until, max_events, continuous):
    """Process events; return (status, events processed). See the module doc."""
    conn_i, weights, pop_i, geo = net[0], net[2], net[3], net[8]
    inp, tflag, tlist, tn, gate_cnt, gate_last = st[1], st[4], st[5], st[6], st[7], st[8]
    in_time, in_idx = st[10], st[11]
    n_in = in_time.shape[0]
    qs, ev_conn, ev_idx, ev_next, ev_free = q[0], q[1], q[2], q[3], q[4]
    b_time, b_rank, b_head, heap = q[5], q[6], q[8], q[11]
    syn = cnt[0]
    nbins = syn.shape[1]
    last_rank = pop_i.shape[0] - 1
    done = 0
    while True:
        b = qs[Q_CUR]
        if b < 0:
            if qs[Q_HEAP_N] == 0:
                return ST_EMPTY, done
            # Layer-major order: every layer but the last runs to the end first,
            # so only the last layer's events are held back by ``until``.
            if b_time[heap[0]] >= until and (qs[Q_LAYER_MAJOR] == 0 or b_rank[heap[0]] == last_rank):
                return ST_UNTIL, done
            b = take_bucket(q)
        t = b_time[b]
        if t > st[12][0]:  # layer order revisits earlier times; "now" is the latest
            st[12][0] = t
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
            else:
                idx = ev_idx[e]
                if idx >= 0:
                    ops += _deliver_event(conn_i, geo, c, weights, idx, inp, doff, tflag, tlist, tn, uoff, p,
                                          block, gate_cnt, gate_last, goff, t)
                    done += 1
                else:  # a run of input spikes (see _flush_input), one event per spike
                    k = -idx - 2
                    while True:
                        ops += _deliver_event(conn_i, geo, c, weights, in_idx[k], inp, doff, tflag, tlist, tn,
                                              uoff, p, block, gate_cnt, gate_last, goff, t)
                        done += 1
                        k += 1
                        if k >= n_in or in_time[k] != in_time[k - 1] or done >= max_events:
                            break
                    if k < n_in and in_time[k] == in_time[k - 1]:
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
        status = _room(net, st, q, lg, log_on, p, t, continuous)
        if status >= 0:
            return status, done
        kind = pop_i[p, P_KIND]
        if kind == P_INPUT:
            _flush_input(net, st, q, cnt, lg, log_on, t, tbin)
        elif kind == P_GATE:
            _flush_gate(net, st, q, cnt, lg, log_on, p, t, tbin)
        else:
            _flush_integrate(net, st, q, cnt, lg, log_on, p, t, tbin, t_end, continuous)
        release_bucket(q, b)
        qs[Q_CUR] = -1
        if st[16][0] == 1.0:
            st[16][0] = 2.0  # reported; the caller clears it to resume
            return ST_BREAK, done
        if done >= max_events:
            return ST_PAUSED, done


@kernel
def inject_analog(net, st, x, conns, macs):
    """Direct input: add W*x of every input connection into the constant current.

    The analog first layer is computed once per sample (its current is the
    same at every step); ``macs[dst]`` receives its exact multiply-accumulates.
    """
    conn_i, weights, pop_i, geo = net[0], net[2], net[3], net[8]
    const, tflag, tlist, tn = st[2], st[4], st[5], st[6]
    for j in range(conns.shape[0]):
        c = conns[j]
        dst = conn_i[c, C_DST]
        total = 0
        for i in range(x.shape[0]):
            if x[i] != 0.0:
                total += deliver(conn_i, geo, c, weights, i, x[i], const, pop_i[dst, P_OFF], tflag, tlist,
                                 tn, pop_i[dst, P_UOFF], dst, pop_i[dst, P_BLOCK])
        macs[dst] += total


@kernel
def start_sample(net, st, q, t_end):
    """Queue the first input event and the first update of constant-current layers."""
    pop_i = net[3]
    tflag, tlist, tn, in_time = st[4], st[5], st[6], st[10]
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
def targets_of(conn_i, geo, c, weights, idx, out_idx, out_w):
    """The targets (flat index in the target layer) and weights of one source neuron."""
    return fanout_targets(conn_i, geo, c, weights, idx, out_idx, out_w)
