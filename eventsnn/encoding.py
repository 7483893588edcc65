"""Input encodings: analog (direct) current, or seeded rate-coded spikes.

- ``direct``: the input is a constant analog current into the first layers
  (Rueckauer et al. 2017); the engine computes W*x once per sample.
- ``poisson`` in discrete time: Bernoulli spikes, ``s_i[t] ~ Bernoulli(p_i)``
  with ``p_i = clip(rate * x_i, 0, 1)`` independently each step (the usual
  discrete-time Poisson coding, Diehl et al. 2015).
- ``poisson`` in continuous time: a homogeneous Poisson process of intensity
  ``p_i`` spikes per time unit on ``[0, duration)``.

Every draw comes from ``numpy.random.default_rng([seed, sample_index])``, so a
sample's spikes depend only on the seed and its index, not on what ran before.
"""

from __future__ import annotations

import numpy as np


def sample_rng(seed: int, sample_index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(sample_index)])


def rate_probabilities(x: np.ndarray, rate: float = 1.0) -> np.ndarray:
    return np.clip(np.asarray(x, np.float64) * rate, 0.0, 1.0)


def bernoulli_spikes(x: np.ndarray, steps: int, rng: np.random.Generator, rate: float = 1.0):
    """Spike times (float64 steps) and neuron indices (int32), sorted by (time, index)."""
    p = rate_probabilities(x, rate)
    active = np.flatnonzero(p > 0)
    if steps <= 0 or active.size == 0:
        return np.zeros(0, np.float64), np.zeros(0, np.int32)
    # Drawn per step for the active inputs only; nonzero() returns row-major (t, i) order.
    fired = rng.random((steps, active.size)) < p[active]
    t, j = np.nonzero(fired)
    return t.astype(np.float64), active[j].astype(np.int32)


def poisson_process_spikes(x: np.ndarray, duration: float, rng: np.random.Generator, rate: float = 1.0):
    """Continuous-time Poisson spike times on [0, duration), sorted by (time, index)."""
    p = rate_probabilities(x, rate)
    counts = rng.poisson(p * duration)
    idx = np.repeat(np.arange(p.size, dtype=np.int32), counts)
    times = rng.random(idx.size) * duration
    order = np.lexsort((idx, times))
    return times[order].astype(np.float64), idx[order]
