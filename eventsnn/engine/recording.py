"""The spike log and membrane traces of one simulation.

:class:`Recording` owns the arrays of :class:`~.model.Recorder`: the kernel
appends a spike (time, population, neuron) when spikes are recorded, and a
(time, neuron, V before reset, V after reset) row at each update of a traced
neuron. When either is full the kernel returns ``ST_GROW_LOG`` before the
update that might overflow it, and :meth:`Recording.grow` doubles it.
"""

from __future__ import annotations

import numpy as np

from .model import Recorder, array_fields

_MIN_GROWTH = 1 << 12


class Recording:
    """The recorder's arrays, grown on demand, with Python-side readers."""

    def __init__(self, n_neurons: int, record_spikes: bool):
        self.record_spikes = bool(record_spikes)
        self.tracing_on = False  # some neuron is traced (kept here: traced.any() costs O(n) per call)
        cap = _MIN_GROWTH if record_spikes else 0
        self.arrays = Recorder(
            spike_t=np.zeros(cap, np.float64), spike_pop=np.zeros(cap, np.int32),
            spike_neuron=np.zeros(cap, np.int32), spike_n=np.zeros(1, np.int64),
            trace_t=np.zeros(0, np.float64), trace_neuron=np.zeros(0, np.int32),
            trace_pre=np.zeros(0, np.float32), trace_post=np.zeros(0, np.float32),
            trace_n=np.zeros(1, np.int64), traced=np.zeros(int(n_neurons), np.uint8))

    def clear(self) -> None:
        """Forget recorded spikes and traces (the choice of traced neurons stays)."""
        self.arrays.spike_n[0] = 0
        self.arrays.trace_n[0] = 0

    def trace(self, neuron: int) -> None:
        """Record the potential of flat neuron ``neuron`` at each of its updates."""
        self.arrays.traced[neuron] = 1
        self.tracing_on = True
        if self.arrays.trace_t.size == 0:
            self.grow()

    def grow(self) -> None:
        """Double the spike log (if recording) and the trace (if any neuron is traced)."""
        def more(a):
            return np.concatenate([a, np.zeros(max(a.size, _MIN_GROWTH), a.dtype)])
        r = self.arrays
        spikes = {}
        if self.record_spikes:
            spikes = {k: more(getattr(r, k)) for k in ("spike_t", "spike_pop", "spike_neuron")}
        traces = {}
        if self.tracing_on:
            traces = {k: more(getattr(r, k)) for k in ("trace_t", "trace_neuron", "trace_pre", "trace_post")}
        self.arrays = r._replace(**spikes, **traces)

    def spikes(self) -> tuple:
        """All recorded spikes as (times, population ranks, neuron indices)."""
        n = int(self.arrays.spike_n[0])
        r = self.arrays
        return r.spike_t[:n].copy(), r.spike_pop[:n].copy(), r.spike_neuron[:n].copy()

    def history(self, neuron: int) -> tuple:
        """(times, V before reset, V after reset) of flat neuron ``neuron``, one row per update."""
        r = self.arrays
        n = int(r.trace_n[0])
        sel = r.trace_neuron[:n] == neuron
        return r.trace_t[:n][sel].copy(), r.trace_pre[:n][sel].copy(), r.trace_post[:n][sel].copy()

    def nbytes(self) -> int:
        """Bytes held by the log and the traces now."""
        return sum(int(a.nbytes) for a in self.arrays)

    def snapshot(self) -> dict:
        return {k: v.copy() for k, v in array_fields(self.arrays).items()}

    def restore(self, snap: dict) -> None:
        self.arrays = Recorder(**{k: v.copy() for k, v in snap.items()})
        self.tracing_on = bool(self.arrays.traced.any())
