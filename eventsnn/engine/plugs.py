"""Plug points: per-event and per-spike hooks that compile away when absent.

The event loop calls two hooks, with ``plug`` as its last argument::

    on_deliver(plug, topo, params, conn, source, t)   # a spike of ``source`` crosses ``conn`` at t
    on_spike(plug, topo, params, pop, neuron, t)      # ``neuron`` of ``pop`` (0: input) spikes at t

``on_deliver`` runs before the event's fan-out is added (so a rule sees the
weights that this spike is about to use); ``on_spike`` runs when the spike is
emitted, after the neuron's reset, before its events are queued.

``plug`` is ``None`` (the default: numba prunes the calls, and the kernel is
the one without hooks) or a ``NamedTuple`` whose class was registered with
:func:`register_plug`. The hooks dispatch on that class at compile time (a
numba ``overload``), so a plugged kernel is compiled and cached once per plug
class, and the hook's body is inlined into the event loop. Plasticity (STDP)
and trace recording for training plug in here; a hook may change
``params`` in place (weights learned online) and its own arrays.
"""

from __future__ import annotations

from numba import types
from numba.extending import overload

_HOOKS: dict = {}


def register_plug(cls, on_deliver=None, on_spike=None) -> None:
    """Register ``cls`` (a NamedTuple) with its hooks: jitted functions of the
    signatures in the module doc; a missing hook does nothing."""
    if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
        raise TypeError(f"a plug must be a NamedTuple class, got {cls!r}")
    _HOOKS[cls] = (on_deliver, on_spike)


def registered(plug) -> bool:
    return plug is None or type(plug) in _HOOKS


def on_deliver(plug, topo, params, where, neuron, t):  # pragma: no cover - replaced in jitted code
    """A spike of ``neuron`` crosses connection ``where`` at ``t`` (jitted code only)."""
    raise NotImplementedError("called from jitted code only")


def on_spike(plug, topo, params, where, neuron, t):  # pragma: no cover - replaced in jitted code
    """``neuron`` of population ``where`` spikes at ``t`` (jitted code only)."""
    raise NotImplementedError("called from jitted code only")


def _hook(plug, which: int):
    if isinstance(plug, types.NoneType):
        return None
    if isinstance(plug, types.BaseNamedTuple) and plug.instance_class in _HOOKS:
        return _HOOKS[plug.instance_class][which]
    raise TypeError(f"no hooks registered for plug type {plug}")


def _dispatch(stub, which: int) -> None:
    """Make ``stub`` callable from jitted code: it calls the hook ``which`` (0: on_deliver,
    1: on_spike) registered for the plug's class, or nothing when the plug has none."""
    @overload(stub)
    def _typed(plug, topo, params, where, neuron, t):
        hook = _hook(plug, which)
        if hook is None:
            return lambda plug, topo, params, where, neuron, t: None

        def call(plug, topo, params, where, neuron, t):
            hook(plug, topo, params, where, neuron, t)
        return call


_dispatch(on_deliver, 0)
_dispatch(on_spike, 1)
