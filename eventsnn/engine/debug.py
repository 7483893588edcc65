"""Step-through debugging on the :class:`~eventsnn.engine.simulator.Simulator`.

Breakpoints stop ``run()``:

- on a neuron's spike, or on any spike of a layer: checked inside the jitted
  kernel when the spike is emitted; the run stops right after the layer update
  that produced it (the spike is counted, its events are queued);
- at a time: the run stops before the first event at or after that time;
- on a predicate ``f(sim) -> bool``: evaluated after every time step.

``step()`` processes one event and returns a :class:`StepResult` (the event,
the targets it touched and the weights it delivered, potentials before and
after, whether the layer was updated, the spikes it caused). ``watch()``
records a neuron's membrane potential at each of its updates (before and
after reset); ``history()`` returns it. ``spike_events()`` and
``to_nir_event_data()`` export recorded spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SimulationError
from .layout import P_INTEGRATE, P_KIND


@dataclass(frozen=True)
class BreakInfo:
    """Why ``run()`` stopped at a breakpoint."""

    kind: str  # "spike", "time" or "predicate"
    time: float
    layer: str | None = None
    neuron: int | None = None


@dataclass
class StepResult:
    """What one ``step()`` did."""

    event: object  # the Event that was processed
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # flat indices in event.layer
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # delivered to each target
    v_before: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    v_after: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    updated: bool = False  # the event completed its (time, layer) and the layer was updated
    spikes: list = field(default_factory=list)  # (time, layer, neuron) emitted in this step

    def __repr__(self) -> str:
        e = self.event
        src = "update" if e.source is None else f"spike {e.source}[{e.neuron}]"
        return (f"StepResult(t={e.time:g}, {src} -> {e.layer}: {self.targets.size} targets, "
                f"updated={self.updated}, spikes={len(self.spikes)})")


class DebugMixin:
    """Breakpoints, watches and detailed stepping (mixed into Simulator)."""

    def _init_debug(self):
        self._time_breaks: list = []
        self._predicates: list = []
        self.last_break: BreakInfo | None = None

    # -- breakpoints -------------------------------------------------------------
    def neuron_index(self, layer, neuron) -> int:
        """Flat index of ``neuron`` (an int, or a (y, x, c) tuple) in ``layer``."""
        p = self._pop(layer)
        shape = self.plan.pops[p].shape
        if isinstance(neuron, (tuple, list)):
            if len(neuron) != 3:
                raise SimulationError(f"neuron {neuron!r}: give a flat index or (y, x, c)")
            try:
                return int(np.ravel_multi_index(tuple(int(v) for v in neuron), shape))
            except ValueError:
                raise SimulationError(f"neuron {neuron!r} is outside layer shape {shape}") from None
        n = int(neuron)
        if not 0 <= n < int(np.prod(shape)):
            raise SimulationError(f"neuron {n} is outside layer {self.layer_names[p]!r} ({int(np.prod(shape))} neurons)")
        return n

    def break_on_spike(self, layer, neuron=None) -> None:
        """Stop ``run()`` when ``neuron`` of ``layer`` spikes (any neuron if None)."""
        p = self._pop(layer)
        if neuron is None:
            self._brk_pop[p] = 1
        else:
            self._brk_neuron[self.plan.pop_slice(p).start + self.neuron_index(p, neuron)] = 1

    def break_at(self, time: float) -> None:
        """Stop ``run()`` before the first event at or after ``time`` (once)."""
        self._need_time_order("break_at")
        self._time_breaks = sorted(self._time_breaks + [float(time)])

    def break_when(self, predicate) -> None:
        """Stop ``run()`` after the first time step at whose end ``predicate(sim)`` is true."""
        self._need_time_order("break_when")
        if not callable(predicate):
            raise SimulationError("break_when needs a callable predicate(sim) -> bool")
        self._predicates.append(predicate)

    def _need_time_order(self, what: str) -> None:
        if self.order != "time":
            raise SimulationError(f"{what} needs the Simulator's default order='time' "
                               f"(with order={self.order!r} the layers are not in step)")

    def clear_breakpoints(self) -> None:
        self._brk_pop[:] = 0
        self._brk_neuron[:] = 0
        self._time_breaks = []
        self._predicates = []

    def run(self, until: float | None = None) -> str:
        """Process events until the sample ends, ``until``, or a breakpoint.

        Returns ``"done"``, ``"until"`` or ``"breakpoint"`` (see ``last_break``).
        Call again to continue.
        """
        until = np.inf if until is None else float(until)
        self.last_break = None
        self._brk_hit[0] = 0.0
        while True:
            stop = until
            timed = [t for t in self._time_breaks if t > self.time or self.events_processed == 0]
            if timed and timed[0] < stop:
                stop = timed[0]
            if self._predicates:
                stop = min(stop, np.floor(self._next_time()) + 1.0)
            status = self._advance(stop, np.iinfo(np.int64).max)
            if status == "breakpoint":
                t, p, k = self._brk_hit[1:4]
                self.last_break = BreakInfo("spike", float(t), self.layer_names[int(p)], int(k))
                return status
            if status == "done":
                return status
            if timed and stop == timed[0]:
                self._time_breaks.remove(stop)
                self.last_break = BreakInfo("time", stop)
                return "breakpoint"
            if self._predicates and stop < until:
                if any(pred(self) for pred in self._predicates):
                    self.last_break = BreakInfo("predicate", self.time)
                    return "breakpoint"
                continue
            return status

    def _next_time(self) -> float:
        nxt = self.peek()
        return self.time if nxt is None else nxt.time

    # -- stepping ------------------------------------------------------------------
    def step(self) -> StepResult | None:
        """Process exactly one event (and the layer update it completes); describe it."""
        event = self.peek()
        if event is None:
            return None
        from . import cpu
        p = self._pop(event.layer)
        sl = self.plan.pop_slice(p)
        result = StepResult(event)
        if event.source is not None:
            conn = event.conn
            cap = int(self.plan.pops[p].size)
            out_idx, out_w = np.zeros(cap, np.int64), np.zeros(cap, np.float32)
            plan = self.plan
            n = cpu.targets_of(plan.conn_i, plan.conn_geo, conn, plan.weights, event.neuron, out_idx, out_w)
            result.targets, result.weights = out_idx[:n].copy(), out_w[:n].copy()
        integrate = self.plan.pop_i[p, P_KIND] == P_INTEGRATE
        v0 = self._v[sl].copy() if integrate else None
        updates0 = int(self.updates[p].sum())
        spikes0 = self.spikes_per_step.sum(axis=1)
        counts0 = self._spike_count.copy()
        self._brk_hit[0] = 0.0
        self._advance(np.inf, 1)
        result.updated = int(self.updates[p].sum()) != updates0 or (
            self.plan.pop_i[p, P_KIND] != P_INTEGRATE and event.source is None)
        if integrate:
            v1 = self._v[sl]
            if event.source is None and result.updated:
                result.targets = np.flatnonzero(v1 != v0)
            result.v_before, result.v_after = v0[result.targets], v1[result.targets].copy()
        changed = np.flatnonzero(self.spikes_per_step.sum(axis=1) != spikes0)
        for q in changed:
            qs = self.plan.pop_slice(q)
            for k in np.flatnonzero(self._spike_count[qs] != counts0[qs]):
                result.spikes.append((self.time, self.layer_names[q], int(k)))
        return result

    # -- watches and traces ------------------------------------------------------------
    def watch(self, layer, neuron) -> None:
        """Record the membrane potential of a neuron at each of its updates."""
        p = self._pop(layer)
        if self.plan.pop_i[p, P_KIND] != P_INTEGRATE:
            raise SimulationError(f"layer {self.layer_names[p]!r} has no membrane potential to watch")
        self._traced[self.plan.pop_slice(p).start + self.neuron_index(p, neuron)] = 1
        self._log[9][0] = 1
        if self._log[4].size == 0:
            from .simulator import _grown
            self._log = _grown(self._log)

    def history(self, layer, neuron):
        """(times, V before reset, V after reset) of a watched neuron, one row per update."""
        p = self._pop(layer)
        g = self.plan.pop_slice(p).start + self.neuron_index(p, neuron)
        if not self._traced[g]:
            raise SimulationError(f"neuron {neuron} of {self.layer_names[p]!r} is not watched: call watch() first")
        n = int(self._log[8][0])
        sel = self._log[5][:n] == g
        return self._log[4][:n][sel].copy(), self._log[6][:n][sel].copy(), self._log[7][:n][sel].copy()

    # -- exports ---------------------------------------------------------------------
    def spike_events(self, layer):
        """Recorded spikes of one layer as (times, flat neuron indices), in time order."""
        return self.recorded_spikes(layer)

    def to_nir_event_data(self, path=None):
        """Recorded spikes of every layer as a ``nir.NIRGraphData`` of ``EventData``
        (one sample); written to ``path`` with ``nir.write_data`` if given."""
        try:
            import nir
        except ModuleNotFoundError:
            raise SimulationError("exporting NIR event data needs the nir package: pip install 'eventsnn[nir]'") from None
        nodes = {}
        for p, name in enumerate(self.layer_names):
            times, idx = self.recorded_spikes(p)
            events = nir.EventData(idx=idx.astype(np.int64)[None, :], time=times.astype(np.float64)[None, :],
                                   n_neurons=int(self.plan.pops[p].size), t_max=float(self.timesteps))
            nodes[name] = nir.NIRNodeData({"spikes": events})
        data = nir.NIRGraphData(nodes)
        if path is not None:
            from ..io.atomic import atomic_path
            with atomic_path(path) as tmp:
                nir.write_data(tmp, data)
        return data
