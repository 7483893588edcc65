"""The backend interface: what a Simulator asks of the code that runs its events.

A backend is a module (imported lazily, so the Simulator imports none
directly) with these functions over the named tuples of :mod:`.model`::

    start_sample(topo, state, queue, t_end)
    inject_analog(topo, params, state, x, conns, macs)
    advance(topo, params, state, queue, counters, recorder, probes, switches,
            t_end, until, max_events, plug) -> (status, events processed)
    targets_of(conn_i, conn_geo, conn, neuron, out_idx, out_w) -> n
    sources_of(conn_i, conn_fgeo, conn, neuron, out_idx, out_w) -> n

``advance`` returns one of the ``ST_*`` codes of :mod:`.layout`; on
``ST_GROW_QUEUE``/``ST_GROW_LOG`` the Simulator grows the queue or the recorder
and calls again, and the backend resumes where it stopped. Every backend keeps
the semantics of :mod:`eventsnn.reference` and the exact counts of the CPU one.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import SimulationError

BACKENDS = {"cpu": "eventsnn.engine.cpu", "cuda": "eventsnn.engine.cuda"}
PLANNED: dict = {}
CHOICES = (*BACKENDS, "auto")


def resolve_backend(name: str) -> str:
    """``auto``: ``cuda`` when a GPU is usable (not numba's simulator), else ``cpu``."""
    if name != "auto":
        return name
    return "cuda" if import_module(BACKENDS["cuda"]).device_present() else "cpu"


def get_backend(name: str):
    """The backend module called ``name`` (or picked by ``auto``); SimulationError for an
    unknown one, or, in one line, for one that cannot run here (a module may say why in
    ``unavailable()``, e.g. no GPU)."""
    name = resolve_backend(name)
    if name in BACKENDS:
        module = import_module(BACKENDS[name])
        problem = module.unavailable() if hasattr(module, "unavailable") else None
        if problem:
            raise SimulationError(f"backend {name!r}: {problem}")
        return module
    if name in PLANNED:
        raise SimulationError(f"backend {name!r}: {PLANNED[name]}; available: {', '.join(BACKENDS)}")
    raise SimulationError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
