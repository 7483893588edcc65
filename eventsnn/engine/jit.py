"""The one place that sets numba's flags for every kernel of the engine.

``cache=True`` keeps compiled kernels on disk next to the modules, so only the
first run on a machine pays the compile time. ``fastmath`` stays off: it allows
re-association of float32 sums, and the engine promises results identical to a
clock-driven reference for exactly representable inputs.
"""

from numba import njit as _njit

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "boundscheck": False}


def kernel(fn):
    """Compile ``fn`` with the engine's flags."""
    return _njit(**JIT_OPTIONS)(fn)
