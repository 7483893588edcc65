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

The :class:`Debugger` is composed into the Simulator (which delegates these
methods to it) and uses only the Simulator's public surface: ``advance``,
``peek``, ``probes``, ``recording``, ``counters``, ``state`` and the readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SimulationError
from .layout import P_INTEGRATE, P_KIND
from .model import BRK_NONE


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


class Debugger:
    """Breakpoints, watches and detailed stepping over one :class:`Simulator`."""

    def __init__(self, sim):
        self.sim = sim
        self._time_breaks: list = []
        self._predicates: list = []
        self.last_break: BreakInfo | None = None

    # -- breakpoints -------------------------------------------------------------
    def neuron_index(self, layer, neuron) -> int:
        """Flat index of ``neuron`` (an int, or a (y, x, c) tuple) in ``layer``."""
        sim = self.sim
        p = sim.layer_index(layer)
        shape = sim.plan.pops[p].shape
        if isinstance(neuron, (tuple, list)):
            if len(neuron) != 3:
                raise SimulationError(f"neuron {neuron!r}: give a flat index or (y, x, c)")
            try:
                return int(np.ravel_multi_index(tuple(int(v) for v in neuron), shape))
            except ValueError:
                raise SimulationError(f"neuron {neuron!r} is outside layer shape {shape}") from None
        n = int(neuron)
        if not 0 <= n < int(np.prod(shape)):
            raise SimulationError(f"neuron {n} is outside layer {sim.layer_names[p]!r} ({int(np.prod(shape))} neurons)")
        return n

    def break_on_spike(self, layer, neuron=None) -> None:
        """Stop ``run()`` when ``neuron`` of ``layer`` spikes (any neuron if None)."""
        sim = self.sim
        p = sim.layer_index(layer)
        if neuron is None:
            sim.probes.on_pop[p] = 1
        else:
            sim.probes.on_neuron[sim.plan.pop_slice(p).start + self.neuron_index(p, neuron)] = 1

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
        if self.sim.order != "time":
            raise SimulationError(f"{what} needs the Simulator's default order='time' "
                                  f"(with order={self.sim.order!r} the layers are not in step)")

    def clear_breakpoints(self) -> None:
        self.sim.probes.on_pop[:] = 0
        self.sim.probes.on_neuron[:] = 0
        self._time_breaks = []
        self._predicates = []

    def run(self, until: float | None = None) -> str:
        """Process events until the sample ends, ``until``, or a breakpoint.

        Returns ``"done"``, ``"until"`` or ``"breakpoint"`` (see ``last_break``).
        Call again to continue.
        """
        sim = self.sim
        until = np.inf if until is None else float(until)
        self.last_break = None
        sim.probes.hit[0] = BRK_NONE
        while True:
            stop = until
            timed = [t for t in self._time_breaks if t > sim.time or sim.events_processed == 0]
            if timed and timed[0] < stop:
                stop = timed[0]
            if self._predicates:
                stop = min(stop, np.floor(self._next_time()) + 1.0)
            status = sim.advance(stop)
            if status == "breakpoint":
                t = float(sim.probes.hit_time[0])
                p, k = (int(v) for v in sim.probes.hit[1:3])
                self.last_break = BreakInfo("spike", t, sim.layer_names[p], k)
                return status
            if status == "done":
                return status
            if timed and stop == timed[0]:
                self._time_breaks.remove(stop)
                self.last_break = BreakInfo("time", stop)
                return "breakpoint"
            if self._predicates and stop < until:
                if any(pred(sim) for pred in self._predicates):
                    self.last_break = BreakInfo("predicate", sim.time)
                    return "breakpoint"
                continue
            return status

    def _next_time(self) -> float:
        nxt = self.sim.peek()
        return self.sim.time if nxt is None else nxt.time

    # -- stepping ------------------------------------------------------------------
    def step(self) -> StepResult | None:
        """Process exactly one event (and the layer update it completes); describe it."""
        sim = self.sim
        event = sim.peek()
        if event is None:
            return None
        p = sim.layer_index(event.layer)
        sl = sim.plan.pop_slice(p)
        result = StepResult(event)
        if event.source is not None:
            targets, windex = sim.synapses_out(event.conn, event.neuron)
            weights = np.where(windex >= 0, sim.params.weights[np.maximum(windex, 0)], 0.0).astype(np.float32)
            result.targets, result.weights = targets, weights
        integrate = sim.plan.pop_i[p, P_KIND] == P_INTEGRATE
        v0 = sim.state.v[sl].copy() if integrate else None
        updates0 = int(sim.counters.updates[p].sum())
        spikes0 = sim.counters.spikes.sum(axis=1)
        counts0 = sim.state.spike_count.copy()
        sim.probes.hit[0] = BRK_NONE
        sim.advance(np.inf, 1)
        result.updated = int(sim.counters.updates[p].sum()) != updates0 or (
            sim.plan.pop_i[p, P_KIND] != P_INTEGRATE and event.source is None)
        if integrate:
            v1 = sim.state.v[sl]
            if event.source is None and result.updated:
                result.targets = np.flatnonzero(v1 != v0)
            result.v_before, result.v_after = v0[result.targets], v1[result.targets].copy()
        changed = np.flatnonzero(sim.counters.spikes.sum(axis=1) != spikes0)
        for q in changed:
            qs = sim.plan.pop_slice(q)
            for k in np.flatnonzero(sim.state.spike_count[qs] != counts0[qs]):
                result.spikes.append((sim.time, sim.layer_names[q], int(k)))
        return result

    # -- watches and traces ------------------------------------------------------------
    def watch(self, layer, neuron) -> None:
        """Record the membrane potential of a neuron at each of its updates."""
        sim = self.sim
        p = sim.layer_index(layer)
        if sim.plan.pop_i[p, P_KIND] != P_INTEGRATE:
            raise SimulationError(f"layer {sim.layer_names[p]!r} has no membrane potential to watch")
        sim.recording.trace(sim.plan.pop_slice(p).start + self.neuron_index(p, neuron))

    def history(self, layer, neuron):
        """(times, V before reset, V after reset) of a watched neuron, one row per update."""
        sim = self.sim
        p = sim.layer_index(layer)
        g = sim.plan.pop_slice(p).start + self.neuron_index(p, neuron)
        if not sim.recording.arrays.traced[g]:
            raise SimulationError(f"neuron {neuron} of {sim.layer_names[p]!r} is not watched: call watch() first")
        return sim.recording.history(g)

    # -- exports ---------------------------------------------------------------------
    def spike_events(self, layer):
        """Recorded spikes of one layer as (times, flat neuron indices), in time order."""
        return self.sim.recorded_spikes(layer)

    def to_nir_event_data(self, path=None):
        """Recorded spikes of every layer as a ``nir.NIRGraphData`` of ``EventData``
        (one sample); written to ``path`` with ``nir.write_data`` if given."""
        try:
            import nir
        except ModuleNotFoundError:
            raise SimulationError("exporting NIR event data needs the nir package: pip install 'eventsnn[nir]'") from None
        sim = self.sim
        nodes = {}
        for p, name in enumerate(sim.layer_names):
            times, idx = sim.recorded_spikes(p)
            events = nir.EventData(idx=idx.astype(np.int64)[None, :], time=times.astype(np.float64)[None, :],
                                   n_neurons=int(sim.plan.pops[p].size), t_max=float(sim.timesteps))
            nodes[name] = nir.NIRNodeData({"spikes": events})
        data = nir.NIRGraphData(nodes)
        if path is not None:
            from ..io.atomic import atomic_path
            with atomic_path(path) as tmp:
                nir.write_data(tmp, data)
        return data
