"""The event queue: individual spike events ordered by (time, layer rank, sequence).

Implementation: a binary heap of *buckets* over preallocated arrays. A bucket
holds the events of one (time, rank) key as a FIFO linked list, in the order
they were pushed, so events leave the queue exactly in (time, rank, seq) order
while the heap only orders distinct keys. In discrete time there are few keys
(steps x layers), so push and pop of an event are O(1) and the heap costs
O(log keys) per bucket; in continuous time most keys are distinct and the
structure degrades gracefully to an ordinary binary heap of events.

The spikes of one layer update (or of one input time step) travel as one
*run* event per outgoing connection: the update appends the spiking neurons'
indices to the queue's run buffer ``runs``, ends them with ``RUN_END``, and
queues events with ``idx = -(k + 2)``, k the run's first entry. The event
loop still delivers, counts and steps them one spike at a time, in the same
order; the run only spares a queue slot, a push and a pop per spike, and lets
the delivery read its connection's geometry once per run (per-spike queue
traffic had been a third of the engine's per-event cost on Poisson input, and
about a fifth of a deep converted net's time). The buffer is a bump
allocator: emptied with the queue, and compacted to its live runs
(:meth:`EventQueue.ensure`) when it would fill up mid-sample.

All state lives in the arrays of :class:`EventQueue` so that a kernel can stop
(queue full, breakpoint, ``run(until=...)``) and resume where it stopped.
"""

from __future__ import annotations

import numpy as np

from .jit import inline_kernel, kernel
from .layout import Q_B_FREE, Q_CUR, Q_EV_FREE, Q_HEAP_N, Q_NFIELDS, Q_RUN_N, Q_SEQ, RUN_END
from .model import Queue, array_fields


_EVENT_BYTES = 4 * 4  # ev_conn, ev_idx, ev_next, ev_free (int32)
_BUCKET_BYTES = 8 + 4 + 8 + 4 + 4 + 4 + 4  # b_time, b_rank, b_seq, b_head, b_tail, b_free, heap
_RUN_BYTES = 4  # one int32 entry of the run buffer


class EventQueue:
    """The preallocated arrays of the queue, grown on demand from Python."""

    def __init__(self, n_ranks: int, capacity: int = 1 << 14, bucket_capacity: int = 1 << 10,
                 layer_major: bool = False, max_bytes: int | None = None, run_capacity: int = 1 << 14):
        self.n_ranks = int(n_ranks)
        # Growth bound (bytes of event and bucket slots); None: unbounded.
        self.max_bytes = max_bytes
        self.layer_major = bool(layer_major)
        self.qs = np.zeros(Q_NFIELDS, np.int64)
        self.ev_conn = np.zeros(0, np.int32)
        self.ev_idx = np.zeros(0, np.int32)
        self.ev_next = np.zeros(0, np.int32)
        self.ev_free = np.zeros(0, np.int32)
        self.b_time = np.zeros(0, np.float64)
        self.b_rank = np.zeros(0, np.int32)
        self.b_seq = np.zeros(0, np.int64)
        self.b_head = np.zeros(0, np.int32)
        self.b_tail = np.zeros(0, np.int32)
        self.b_free = np.zeros(0, np.int32)
        self.heap = np.zeros(0, np.int32)
        self.last_bucket = np.full(self.n_ranks, -1, np.int32)
        self.runs = np.zeros(int(run_capacity), np.int32)
        self._grow_events(capacity)
        self._grow_buckets(bucket_capacity)
        self.clear()

    # -- Python-side management -------------------------------------------------
    def clear(self) -> None:
        """Empty the queue (keeps its capacity)."""
        cap, bcap = self.ev_conn.size, self.b_time.size
        self.qs[:] = 0
        self.qs[Q_CUR] = -1
        self.ev_free[:] = np.arange(cap - 1, -1, -1, dtype=np.int32)
        self.qs[Q_EV_FREE] = cap
        self.b_free[:] = np.arange(bcap - 1, -1, -1, dtype=np.int32)
        self.qs[Q_B_FREE] = bcap
        self.last_bucket[:] = -1

    def live_events(self) -> np.ndarray:
        """Indices of the event slots in use (queued, or the current bucket's unprocessed ones)."""
        used = np.ones(self.ev_conn.size, bool)
        used[self.ev_free[: int(self.qs[Q_EV_FREE])]] = False
        return np.flatnonzero(used)

    def _compact_runs(self) -> None:
        """Keep only the runs some queued event still reads, packed at the buffer's start,
        and move those events' cursors with them (a cursor may point inside its run: a
        run paused by ``max_events``). Runs are immutable, so order and content stay."""
        n = int(self.qs[Q_RUN_N])
        ev = self.live_events()
        ev = ev[self.ev_idx[ev] <= -2]
        cursor = -self.ev_idx[ev].astype(np.int64) - 2
        ends = np.flatnonzero(self.runs[:n] == RUN_END)  # run r is (ends[r-1], ends[r]]
        run_of = np.searchsorted(ends, cursor)  # the run holding each cursor
        live = np.unique(run_of)
        starts = np.concatenate([[0], ends[:-1] + 1])[live]
        lengths = ends[live] + 1 - starts
        new_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        packed = np.concatenate([self.runs[a: a + m] for a, m in zip(starts, lengths)]) if live.size \
            else np.zeros(0, np.int32)
        where = np.searchsorted(live, run_of)
        self.ev_idx[ev] = -(new_starts[where] + (cursor - starts[where]) + 2)
        self.runs[: packed.size] = packed
        self.qs[Q_RUN_N] = packed.size

    def _grow_events(self, new_cap: int) -> None:
        old = self.ev_conn.size
        free_n = int(self.qs[Q_EV_FREE]) if old else 0
        self.ev_conn = np.concatenate([self.ev_conn, np.zeros(new_cap - old, np.int32)])
        self.ev_idx = np.concatenate([self.ev_idx, np.zeros(new_cap - old, np.int32)])
        self.ev_next = np.concatenate([self.ev_next, np.zeros(new_cap - old, np.int32)])
        free = np.empty(new_cap, np.int32)
        free[: new_cap - old] = np.arange(new_cap - 1, old - 1, -1, dtype=np.int32)
        free[new_cap - old: new_cap - old + free_n] = self.ev_free[:free_n]
        self.ev_free = free
        self.qs[Q_EV_FREE] = free_n + new_cap - old

    def _grow_buckets(self, new_cap: int) -> None:
        old = self.b_time.size
        free_n = int(self.qs[Q_B_FREE]) if old else 0
        extra = new_cap - old
        self.b_time = np.concatenate([self.b_time, np.zeros(extra, np.float64)])
        self.b_rank = np.concatenate([self.b_rank, np.zeros(extra, np.int32)])
        self.b_seq = np.concatenate([self.b_seq, np.zeros(extra, np.int64)])
        self.b_head = np.concatenate([self.b_head, np.zeros(extra, np.int32)])
        self.b_tail = np.concatenate([self.b_tail, np.zeros(extra, np.int32)])
        self.heap = np.concatenate([self.heap, np.zeros(extra, np.int32)])
        free = np.empty(new_cap, np.int32)
        free[:extra] = np.arange(new_cap - 1, old - 1, -1, dtype=np.int32)
        free[extra: extra + free_n] = self.b_free[:free_n]
        self.b_free = free
        self.qs[Q_B_FREE] = free_n + extra

    def ensure(self, events: int, buckets: int, runs: int = 0) -> None:
        """Make at least ``events`` event slots, ``buckets`` bucket slots and ``runs``
        run-buffer entries free: the run buffer is compacted to its live runs first,
        and anything still short grows (at least doubling).

        Raises :class:`~eventsnn.errors.ResourceError` instead of growing past ``max_bytes``.
        """
        if self.runs.size - self.qs[Q_RUN_N] < runs:
            self._compact_runs()
        run_need = int(self.qs[Q_RUN_N]) + int(runs)
        if self.max_bytes is not None:
            ev = self.ev_conn.size if self.qs[Q_EV_FREE] >= events else \
                max(2 * self.ev_conn.size, self.ev_conn.size + events - int(self.qs[Q_EV_FREE]))
            bk = self.b_time.size if self.qs[Q_B_FREE] >= buckets else \
                max(2 * self.b_time.size, self.b_time.size + buckets - int(self.qs[Q_B_FREE]))
            rn = self.runs.size if run_need <= self.runs.size else max(2 * self.runs.size, run_need)
            total = ev * _EVENT_BYTES + bk * _BUCKET_BYTES + rn * _RUN_BYTES
            if total > self.max_bytes:
                from ..errors import ResourceError
                from ..limits import human
                raise ResourceError(
                    f"the event queue would grow to {human(total)} "
                    f"({ev:,} pending events, {rn:,} queued spikes), above the {human(self.max_bytes)} the "
                    f"memory limit leaves for it; a layer fires far more spikes than expected (a tiny "
                    f"threshold with max_spikes > 1?); raise --max-memory if this is intended")
        if run_need > self.runs.size:
            grown = np.zeros(max(2 * self.runs.size, run_need), np.int32)
            grown[: self.runs.size] = self.runs
            self.runs = grown
        if self.qs[Q_EV_FREE] < events:
            need = self.ev_conn.size + events - int(self.qs[Q_EV_FREE])
            self._grow_events(max(2 * self.ev_conn.size, need))
        if self.qs[Q_B_FREE] < buckets:
            need = self.b_time.size + buckets - int(self.qs[Q_B_FREE])
            self._grow_buckets(max(2 * self.b_time.size, need))

    def arrays(self) -> Queue:
        """The queue as the kernels take it."""
        return Queue(qs=self.qs, ev_conn=self.ev_conn, ev_idx=self.ev_idx, ev_next=self.ev_next,
                     ev_free=self.ev_free, b_time=self.b_time, b_rank=self.b_rank, b_seq=self.b_seq,
                     b_head=self.b_head, b_tail=self.b_tail, b_free=self.b_free, heap=self.heap,
                     last_bucket=self.last_bucket, runs=self.runs, layer_major=self.layer_major)

    def __len__(self) -> int:
        return int(self.ev_conn.size - self.qs[Q_EV_FREE])

    def snapshot(self) -> dict:
        return {k: v.copy() for k, v in array_fields(self.arrays()).items()}

    def restore(self, snap: dict) -> None:
        for k, v in snap.items():
            setattr(self, k, v.copy())


# -- kernels ---------------------------------------------------------------------

@inline_kernel
def _less(b_time, b_rank, b_seq, a, b, layer_major):
    """Bucket order: (time, rank, seq), or (rank, time, seq) when ``layer_major``."""
    if layer_major and b_rank[a] != b_rank[b]:
        return b_rank[a] < b_rank[b]
    if b_time[a] != b_time[b]:
        return b_time[a] < b_time[b]
    if b_rank[a] != b_rank[b]:
        return b_rank[a] < b_rank[b]
    return b_seq[a] < b_seq[b]


@inline_kernel
def heap_push(q, b):
    qs, b_time, b_rank, b_seq, heap = q.qs, q.b_time, q.b_rank, q.b_seq, q.heap
    layer_major = q.layer_major
    i = qs[Q_HEAP_N]
    qs[Q_HEAP_N] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        p = heap[parent]
        if not _less(b_time, b_rank, b_seq, b, p, layer_major):
            break
        heap[i] = p
        i = parent
    heap[i] = b


@kernel
def heap_pop(q):
    """Remove and return the bucket with the smallest key (heap must be non-empty)."""
    qs, b_time, b_rank, b_seq, heap = q.qs, q.b_time, q.b_rank, q.b_seq, q.heap
    layer_major = q.layer_major
    top = heap[0]
    n = qs[Q_HEAP_N] - 1
    qs[Q_HEAP_N] = n
    if n > 0:
        last = heap[n]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _less(b_time, b_rank, b_seq, heap[child + 1], heap[child], layer_major):
                child += 1
            if not _less(b_time, b_rank, b_seq, heap[child], last, layer_major):
                break
            heap[i] = heap[child]
            i = child
        heap[i] = last
    return top


@inline_kernel
def push_event(q, time, rank, conn, idx):
    """Queue one event; the caller has ensured free slots (see ``ensure``)."""
    qs, ev_conn, ev_idx, ev_next, ev_free = q.qs, q.ev_conn, q.ev_idx, q.ev_next, q.ev_free
    b_time, b_rank, b_seq, b_head, b_tail, b_free = q.b_time, q.b_rank, q.b_seq, q.b_head, q.b_tail, q.b_free
    last_bucket = q.last_bucket
    nf = qs[Q_EV_FREE] - 1
    qs[Q_EV_FREE] = nf
    e = ev_free[nf]
    ev_conn[e] = conn
    ev_idx[e] = idx
    ev_next[e] = -1
    b = last_bucket[rank]
    if b >= 0 and b_time[b] == time:
        ev_next[b_tail[b]] = e
        b_tail[b] = e
        qs[Q_SEQ] += 1
        return
    nb = qs[Q_B_FREE] - 1
    qs[Q_B_FREE] = nb
    b = b_free[nb]
    b_time[b] = time
    b_rank[b] = rank
    b_seq[b] = qs[Q_SEQ]
    qs[Q_SEQ] += 1
    b_head[b] = e
    b_tail[b] = e
    heap_push(q, b)
    last_bucket[rank] = b


@kernel
def take_bucket(q):
    """Pop the smallest bucket and make it the current one; return it."""
    qs, b_rank, last_bucket = q.qs, q.b_rank, q.last_bucket
    b = heap_pop(q)
    if last_bucket[b_rank[b]] == b:
        # Later pushes with this key must open a new bucket behind this one.
        last_bucket[b_rank[b]] = -1
    qs[Q_CUR] = b
    return b


@inline_kernel
def release_bucket(q, b):
    qs, b_free = q.qs, q.b_free
    b_free[qs[Q_B_FREE]] = b
    qs[Q_B_FREE] += 1
