"""The STDP rules, one synapse at a time, and the counter-based random numbers of the stochastic rule.

Pair-based STDP with traces (Morrison, Diesmann & Gerstner 2008, Biol. Cybern.
98:459; the all-to-all interpretation). Every neuron keeps a presynaptic trace
``x`` (time constant tau_+) and a postsynaptic trace ``y`` (tau_-), both
``sum over its spikes s <= t of exp(-(t - s) / tau)``. Then::

    post spike at t:  w <- clip(w + eta_+ * x_pre(t)  * f_+(w))      (potentiation)
    pre spike at t:   w <- clip(w - eta_- * y_post(t) * f_-(w))      (depression)

    additive:        f_+ = f_- = 1                     (Song, Miller & Abbott 2000)
    multiplicative:  f_+ = w_max - w,  f_- = w - w_min (weight dependent;
                                                        van Rossum et al. 2000)

clipped to [w_min, w_max]. Optionally (``x_tar > 0``, the presynaptic target
trace of Diehl & Cook 2015, Front. Comput. Neurosci. 9:99) the post-spike
change is ``eta_+ * (x_pre(t) - x_tar) * f(w)``, with ``f = w_max - w`` when
positive and ``w - w_min`` when negative (multiplicative): synapses from inputs
that were quiet before the post spike are depressed, so a kernel becomes
selective instead of averaging everything it sees. A pre spike and a post spike at the same time
count as causal (pre before post): the engine delivers the pre spike before
the postsynaptic layer updates, so ``x_pre`` already holds it and ``y_post``
does not yet hold the post spike.

Stochastic STDP on binary or few-level weights (Srinivasan & Roy 2019,
ReStoCNet, Front. Neurosci. 13:189; Srinivasan, Panda & Roy 2018, ACM JETC):
at a post spike at t, each synapse whose presynaptic neuron last spiked at
t_pre with ``dt = t - t_pre <= window`` switches one level up with
probability::

    P_pot = gamma_pot * exp(-dt / tau_pot)

and every other synapse (no pre spike in the window: the anti-Hebbian part)
switches one level down with probability ``P_dep``. Levels are
``w_min + i * (w_max - w_min) / (levels - 1)``; ``levels = 2`` is binary.

Random numbers: SplitMix64 (Steele, Lea & Flood 2014) of (key, counter),
a counter-based generator held in the plug's own array, so a run depends only
on the seed and the event order (never on numba's per-thread state).
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.jit import inline_kernel

# Rule codes (column R_RULE of the per-connection configuration).
RULE_NONE, RULE_ADDITIVE, RULE_MULTIPLICATIVE, RULE_STOCHASTIC = 0, 1, 2, 3
RULE_NAMES = {"additive": RULE_ADDITIVE, "multiplicative": RULE_MULTIPLICATIVE, "stochastic": RULE_STOCHASTIC}

# Columns of the per-connection configuration (float64 rows).
(R_RULE, R_ETA_PLUS, R_ETA_MINUS, R_W_MIN, R_W_MAX, R_GAMMA_POT, R_TAU_POT, R_P_DEP, R_WINDOW, R_STEP,
 R_X_TAR) = range(11)
R_NFIELDS = 11

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE = np.uint64(1)


@inline_kernel
def splitmix64(key, counter):
    """The SplitMix64 output for (key, counter): a 64-bit hash, uniform over its range."""
    z = key + counter * _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@inline_kernel
def uniform(rng):
    """The next uniform draw in [0, 1) of the stream ``rng = [key, counter]`` (uint64)."""
    z = splitmix64(rng[0], rng[1])
    rng[1] += _ONE
    return float(z >> _S11) * (1.0 / 9007199254740992.0)


@inline_kernel
def decayed(value, last, t, tau):
    """A trace stored as (value at ``last``) read at ``t >= last``; 0 before any spike."""
    if last == -math.inf:
        return 0.0
    return value * math.exp(-(t - last) / tau)


@inline_kernel
def potentiated(w, trace, cfg):
    """w after a post spike that reads presynaptic trace ``trace`` (deterministic rules);
    with a target trace x_tar > 0 the change is eta_+ (x_pre - x_tar) f(w), negative
    (f = w - w_min, multiplicative) for inputs that were quiet before the post spike."""
    w_min, w_max = cfg[R_W_MIN], cfg[R_W_MAX]
    d = trace - cfg[R_X_TAR]
    if cfg[R_RULE] == RULE_MULTIPLICATIVE:
        if d >= 0.0:
            w = w + cfg[R_ETA_PLUS] * d * (w_max - w)
        else:
            w = w + cfg[R_ETA_PLUS] * d * (w - w_min)
    else:
        w = w + cfg[R_ETA_PLUS] * d
    return min(max(w, w_min), w_max)


@inline_kernel
def depressed(w, trace, cfg):
    """w after a pre spike that reads postsynaptic trace ``trace`` (deterministic rules)."""
    w_min, w_max = cfg[R_W_MIN], cfg[R_W_MAX]
    if cfg[R_RULE] == RULE_MULTIPLICATIVE:
        w = w - cfg[R_ETA_MINUS] * trace * (w - w_min)
    else:
        w = w - cfg[R_ETA_MINUS] * trace
    return min(max(w, w_min), w_max)


@inline_kernel
def stochastic_switch(w, dt, u, cfg):
    """(new level index, +1 up / -1 down / 0) of one synapse of weight ``w`` at a post
    spike: ``dt`` since its pre spike (inf: none), ``u`` a uniform draw. Levels are
    counted from w_min in steps of cfg[R_STEP]; the caller stores
    ``w_min + level * step`` (so float32 storage never drifts off the levels)."""
    step = cfg[R_STEP]
    top = int(round((cfg[R_W_MAX] - cfg[R_W_MIN]) / step))
    level = int(round((w - cfg[R_W_MIN]) / step))
    if dt <= cfg[R_WINDOW]:
        if level < top and u < cfg[R_GAMMA_POT] * math.exp(-dt / cfg[R_TAU_POT]):
            return level + 1, 1
    elif level > 0 and u < cfg[R_P_DEP]:
        return level - 1, -1
    return level, 0
