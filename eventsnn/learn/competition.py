"""Competition between feature maps: k-winners-take-all with an inhibition radius, and
homeostasis by adaptive thresholds.

k-WTA (after the lateral inhibition of Kheradpisheh et al. 2018, Neural Netw.
99:56, and the k-winners of Mozafari et al. 2019, SpykeTorch): for a layer of
shape (H, W, C) with ``k`` and radius ``r``, let S_q be the set of maps that
have spiked, in the current sample, at any position within Chebyshev distance
r of position q. The rule keeps::

    |S_q| <= k   for every position q

A spike of map c at p adds c to S_q for every q within r of p; when S_q
reaches k members, every map not in S_q is silenced (threshold set to +inf
until the sample ends) at every position within r of q. So the earliest
spikes win, and a map that has won keeps firing. Ties within one time step go
to the neuron the engine visits first (lower position in the touched order,
then lower channel). Silencing goes through ``Params.thr``, which the event
loop re-reads before every spike it emits (engine/cpu.py).

Homeostasis (after Diehl & Cook 2015, Front. Comput. Neurosci. 9:99, adaptive
thresholds), one adaptive part per feature map, applied between samples::

    theta_c <- theta_c * exp(-T / tau_theta) + theta_plus * (spikes of map c) / (positions)
    threshold(y, x, c) = base_c + theta_c

Per map, not per neuron, because a shared kernel is one feature: a map that
wins too often raises its own threshold everywhere.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine.jit import inline_kernel
from ..engine.layout import P_C, P_H, P_OFF, P_W


@inline_kernel
def claim(plug, topo, params, pop, neuron):
    """Neuron ``neuron`` of ``pop`` spiked: add its map to the sets S_q around it and
    silence the maps that lost where a set became full (module doc)."""
    pop_i = topo.pop_i
    k, r = plug.kwta[pop, 0], plug.kwta[pop, 1]
    h, w, ch = pop_i[pop, P_H], pop_i[pop, P_W], pop_i[pop, P_C]
    off = pop_i[pop, P_OFF]
    pos = neuron // ch
    c = neuron - pos * ch
    y = pos // w
    x = pos - y * w
    for qy in range(max(0, y - r), min(h, y + r + 1)):
        for qx in range(max(0, x - r), min(w, x + r + 1)):
            q = qy * w + qx
            if plug.member[off + q * ch + c] != 0:
                continue
            plug.member[off + q * ch + c] = 1
            plug.members[off + q] += 1
            if plug.members[off + q] != k:
                continue
            for zy in range(max(0, qy - r), min(h, qy + r + 1)):
                for zx in range(max(0, qx - r), min(w, qx + r + 1)):
                    base = off + (zy * w + zx) * ch
                    for cc in range(ch):
                        if plug.member[off + q * ch + cc] == 0:
                            params.thr[base + cc] = math.inf


class AdaptiveThreshold:
    """Per-map adaptive thresholds of one layer (module doc), kept between samples."""

    def __init__(self, base: np.ndarray, shape: tuple, theta_plus: float, tau_theta: float,
                 theta: np.ndarray | None = None):
        self.base = np.asarray(base, np.float64).reshape(shape)
        self.shape = tuple(shape)
        self.theta_plus = float(theta_plus)
        self.tau_theta = float(tau_theta)
        self.theta = np.zeros(shape[-1], np.float64) if theta is None else np.asarray(theta, np.float64).copy()

    def thresholds(self) -> np.ndarray:
        """The layer's thresholds for the next sample, flat float32."""
        return (self.base + self.theta).astype(np.float32).reshape(-1)

    def update(self, spike_counts: np.ndarray, duration: float) -> None:
        """After a sample of ``duration`` with ``spike_counts`` (H, W, C) of the layer."""
        per_map = np.asarray(spike_counts, np.float64).reshape(-1, self.shape[-1]).sum(axis=0)
        positions = self.shape[0] * self.shape[1]
        decay = math.exp(-duration / self.tau_theta) if math.isfinite(self.tau_theta) else 1.0
        self.theta = self.theta * decay + self.theta_plus * per_map / positions
