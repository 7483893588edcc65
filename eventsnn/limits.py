"""Memory limits: estimate what a network, a run or a file will need *before* allocating it.

A 10 KB network file can declare a conv layer with a million channels, an
input whose geometry tables grow with the square of its side, or a run of
10^12 steps; a 10 MB gzip file can inflate to 10 GB. Left alone each ends in a
``MemoryError`` traceback, or takes a shared machine down. So every loader and
every run asks this module first, and a request above the limit is refused
with :class:`~eventsnn.errors.ResourceError` naming the largest items.

The limit is, in order of precedence: :func:`set_max_memory` (the CLI's
``--max-memory``), the environment variable ``EVENTSNN_MAX_MEMORY``, or
:data:`DEFAULT_FRACTION` of the machine's memory (the smaller of physical
memory, read with ``os.sysconf``, and a cgroup limit, if one is set).

The estimates are upper bounds of what eventsnn itself allocates (engine
state, lookup tables, per-step traces, results, the data set), computed from
the :class:`~eventsnn.network.Network` and the run options alone; they are
deliberately simple, within a small factor of the real use.
"""

from __future__ import annotations

import contextlib
import os
import re

from .errors import ResourceError

DEFAULT_FRACTION = 0.5
_override: int | None = None

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 << 30
    for cgroup in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            with open(cgroup) as f:
                value = f.read().strip()
            if value.isdigit() and 0 < int(value) < total:
                total = int(value)
    return int(total)


def parse_size(text) -> int:
    """``"4G"``, ``"512M"``, ``"1.5g"``, ``"1000000"`` (bytes) -> bytes; ResourceError if malformed."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ResourceError(f"memory size {text!r}: expected a number with an optional unit K, M, G or T")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 1 <= value < (1 << 62):
        raise ResourceError(f"memory size {text!r} is out of range")
    return int(value)


def max_memory() -> int:
    """The memory limit in bytes now in force (see the module doc)."""
    if _override is not None:
        return _override
    env = os.environ.get("EVENTSNN_MAX_MEMORY")
    if env:
        return parse_size(env)
    return int(DEFAULT_FRACTION * machine_memory())


def set_max_memory(limit) -> None:
    """Set the process-wide limit (bytes, or a size text such as ``"4G"``); None restores the default."""
    global _override
    _override = None if limit is None else (parse_size(limit) if isinstance(limit, str) else int(limit))


@contextlib.contextmanager
def memory_limit(limit):
    """Run a block under another limit (bytes or size text), restoring the previous one after."""
    global _override
    previous = _override
    set_max_memory(limit)
    try:
        yield max_memory()
    finally:
        _override = previous


def human(n: float) -> str:
    """Bytes as a short text: ``2.9 GiB``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def check(items: dict, what: str, limit: int | None = None, error=ResourceError) -> int:
    """Refuse if the ``{name: bytes}`` items sum above the limit; return the total.

    The message names ``what`` is being refused, the total, the limit and the
    three largest items, so the user sees which layer, table or option to change.
    """
    limit = max_memory() if limit is None else int(limit)
    total = int(sum(max(int(v), 0) for v in items.values()))
    if total > limit:
        top = sorted(items.items(), key=lambda kv: -kv[1])[:3]
        detail = ", ".join(f"{name} {human(v)}" for name, v in top if v > 0)
        raise error(f"{what} would need about {human(total)} of memory, above the limit of {human(limit)} "
                    f"(largest: {detail}); raise it with --max-memory (or EVENTSNN_MAX_MEMORY) if the "
                    f"machine has the memory")
    return total


def check_bytes(nbytes: int, what: str, limit: int | None = None, error=ResourceError) -> None:
    """One allocation of ``nbytes`` for ``what`` (a file's declared size, a decompressed stream)."""
    check({what: int(nbytes)}, what, limit, error)


# -- estimates ------------------------------------------------------------------------------

# Bytes per neuron of engine state: V, input, constant current, threshold, V0 and bias
# (float32), last update time (float64), spike count (int64), unit flags and lists,
# breakpoint and trace flags; rounded up.
_PER_NEURON = 64
# Per (layer, step) traces: syn ops, spikes and updates in the simulator (int64 x 3),
# summed again per run (x 3), the decay table (float32).
_PER_LAYER_STEP = 8 * 6 + 4
_QUEUE_START = (1 << 14) * 16 + (1 << 10) * 40  # the event queue's initial slots


def network_items(net, shapes: dict | None = None) -> dict:
    """``{name: bytes}`` of a validated network's engine structures (no per-run arrays)."""
    from .network import as_hwc

    shapes = shapes if shapes is not None else net.shapes()
    items = {}
    neurons = sum(h * w * c for name, (h, w, c) in shapes.items())
    items["neuron state"] = neurons * _PER_NEURON
    for layer in net.layers:
        name = f"layer {layer.name!r}"
        if layer.weight is not None:
            # the Network's float32 copy, the plan's concatenated and aligned copies
            items[f"{name} weights"] = 3 * 4 * int(layer.weight.size)
        if layer.kind in ("conv2d", "avgpool2d", "maxpool2d"):
            hi, wi, _ = as_hwc(shapes[layer.inputs[0]])
            ho, wo, _ = shapes[layer.name]
            # the per-position table (six int32) and, while it is built, the
            # (n_in x n_out) tap matrices of each axis (int64 and bool temporaries)
            items[f"{name} geometry table"] = hi * wi * 6 * 4 * 2 + 26 * max(hi * ho, wi * wo)
    return items


def run_items(net, timesteps: int, samples: int = 1, checkpoints: int = 0, shapes: dict | None = None,
              record_spikes: bool = False) -> dict:
    """``{name: bytes}`` of a whole run: the network's structures plus traces and results."""
    shapes = shapes if shapes is not None else net.shapes()
    items = network_items(net, shapes)
    layers = 1 + len(net.spiking_layers())
    timesteps, samples = int(timesteps), int(samples)
    items[f"per-step traces ({layers} layers x {timesteps:,} steps)"] = layers * timesteps * _PER_LAYER_STEP
    out = shapes[net.layers[-1].name]
    classes = out[0] * out[1] * out[2]
    items[f"results ({samples:,} samples)"] = samples * (layers * 4 * 8 + classes * 8 + 24 + 8 * int(checkpoints))
    items["event queue (initial)"] = _QUEUE_START
    if record_spikes:
        items["recorded spikes (initial)"] = (1 << 12) * 16
    return items


def check_run(net, timesteps: int, samples: int = 1, checkpoints: int = 0, limit: int | None = None,
              data_bytes: int = 0, record_spikes: bool = False) -> int:
    """Refuse a run whose estimate (plus ``data_bytes`` already held) exceeds the limit; return it."""
    items = run_items(net, timesteps, samples, checkpoints, record_spikes=record_spikes)
    if data_bytes:
        items["data set"] = int(data_bytes)
    return check(items, f"this run ({int(timesteps):,} steps, {int(samples):,} samples)", limit)


def check_network(net, where: str = "this network", limit: int | None = None) -> int:
    """Refuse a network whose engine structures alone exceed the limit."""
    return check(network_items(net), where, limit)


def queue_budget(net, timesteps: int, samples: int = 1, checkpoints: int = 0, limit: int | None = None) -> int:
    """Bytes the event queue may grow to: the limit less everything else the run holds (at least 1 MiB)."""
    limit = max_memory() if limit is None else int(limit)
    return max(limit - sum(run_items(net, timesteps, samples, checkpoints).values()), 1 << 20)
