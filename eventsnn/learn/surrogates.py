"""Surrogate derivatives of the spike, by name.

The spike is a step, ``s = H(U - theta)``; backpropagation through time
replaces its derivative by a pseudo-derivative ``sigma'(x)``, ``x = U - theta``
(Neftci, Mostafa & Zenke 2019, "Surrogate gradient learning in SNNs"):

- ``lee``: the straight-through estimate of Lee et al. 2020 (Front. Neurosci.
  14:119): a spike counts as ``o / V_th``, so ``sigma'(x) = 1 / theta``
  everywhere. (Their extra leak correction ``ln(lambda) a_LF / a_tot`` is not
  applied here.)
- ``fast_sigmoid``: ``sigma'(x) = 1 / (1 + k |x|)^2`` (Zenke & Ganguli 2018,
  SuperSpike), ``k = alpha`` (default 10).
- ``arctan``: ``sigma'(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2)`` (Fang et al.
  2021, PLIF / SpikingJelly), default ``alpha = 2``.

Each has a smooth antiderivative ``F`` (:func:`smooth_spike`), used only by
the gradient tests: a network whose spikes are ``F(U - theta)`` has exactly the
gradient the surrogate backward pass computes, so finite differences can check it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..errors import EventsnnError

SURROGATES = {"lee": 0, "fast_sigmoid": 1, "arctan": 2}
DEFAULT_ALPHA = {"lee": 1.0, "fast_sigmoid": 10.0, "arctan": 2.0}


def surrogate_id(name: str) -> int:
    if name not in SURROGATES:
        raise EventsnnError(f"unknown surrogate {name!r} (known: {', '.join(SURROGATES)})")
    return SURROGATES[name]


@numba.njit(inline="always", cache=True, error_model="numpy")  # never divides by zero
def pseudo_derivative(sid, x, theta, alpha):
    """sigma'(x) of surrogate ``sid`` at ``x = U - theta`` (see the module doc)."""
    if sid == 0:
        return 1.0 / theta
    if sid == 1:
        d = 1.0 + alpha * abs(x)
        return 1.0 / (d * d)
    z = 0.5 * math.pi * alpha * x
    return 0.5 * alpha / (1.0 + z * z)


def smooth_spike(name: str, x, theta, alpha):
    """F(x) with F' = the surrogate: the smoothed network of the gradient tests."""
    x = np.asarray(x)
    if name == "lee":
        return x / theta
    if name == "fast_sigmoid":
        return x / (1.0 + alpha * np.abs(x))
    return np.arctan(0.5 * math.pi * alpha * x) / math.pi + 0.5
