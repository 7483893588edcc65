"""A linear readout of learned spiking features: pooled spike counts -> ridge regression.

Features: the spike counts of chosen layers over one rate-coded sample, summed
over a ``grid x grid`` partition of each feature map (spatial pooling keeps
the map identity and a coarse position), concatenated.

Classifier: ridge regression onto one-hot targets, in closed form
(Hoerl & Kennard 1970; the usual linear readout of unsupervised spiking
features, e.g. Kheradpisheh et al. 2018 use a linear SVM)::

    W = argmin ||Z W - T||^2 + lambda ||W||^2 = (Z^T Z + lambda I)^{-1} Z^T T

on standardised features Z with centred targets T (the intercept is not
penalised). lambda is chosen from a grid by leave-one-out error, which for
ridge has a closed form too (Allen 1974, PRESS): with ``Z^T Z = V diag(e) V^T``
and ``P = Z V``, the hat matrix diagonal is ``h_i = sum_k P_ik^2 / (e_k + lambda)``
and the left-out prediction is ``(yhat_i - h_i t_i) / (1 - h_i)``. (The
centring uses all training samples, so this LOO is exact up to that.)
Everything is numpy/scipy: no new dependency.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..engine.simulator import Simulator
from ..errors import DataError

LAMBDAS = np.logspace(-2, 5, 15)


def pool_counts(counts: np.ndarray, grid: int) -> np.ndarray:
    """(H, W, C) counts summed over a grid x grid partition (edges split as evenly as possible)."""
    h, w, c = counts.shape
    g_y, g_x = min(grid, h), min(grid, w)
    ys = np.linspace(0, h, g_y + 1).astype(int)
    xs = np.linspace(0, w, g_x + 1).astype(int)
    rows = np.add.reduceat(counts, ys[:-1], axis=0)
    return np.add.reduceat(rows, xs[:-1], axis=1).reshape(-1)


def spike_features(net, x: np.ndarray, layers, timesteps: int = 30, seed: int = 0, grid: int = 4,
                   poisson_rate: float = 1.0, progress=None) -> np.ndarray:
    """Pooled spike counts of ``layers`` for every image of ``x`` (N, H, W, C): (N, F) float64.
    Sample i is rate-coded with ``sample_index = i`` (so features depend only on seed and i)."""
    sim = Simulator(net, timesteps=timesteps, seed=seed, poisson_rate=poisson_rate, encoding="poisson")
    for name in layers:
        sim.layer_index(name)  # a clear error for an unknown layer
    feats = []
    for i in range(x.shape[0]):
        sim.reset(x[i], sample_index=i)
        sim.run()
        feats.append(np.concatenate([pool_counts(sim.spike_counts(name).astype(np.float64), grid)
                                     for name in layers]))
        if progress is not None:
            progress(1)
    return np.array(feats)


class RidgeReadout:
    """Closed-form ridge classifier with leave-one-out choice of lambda (module doc)."""

    def __init__(self, lambdas=LAMBDAS):
        self.lambdas = np.asarray(lambdas, np.float64)

    def fit(self, f: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> "RidgeReadout":
        f = np.asarray(f, np.float64)
        y = np.asarray(y, np.int64)
        if f.ndim != 2 or f.shape[0] != y.shape[0] or f.shape[0] < 2:
            raise DataError(f"readout: need (N >= 2, F) features and N labels, got {f.shape} and {y.shape}")
        self.n_classes = int(n_classes or y.max() + 1)
        if y.min() < 0 or y.max() >= self.n_classes:
            raise DataError(f"readout: labels must lie in [0, {self.n_classes}), got {y.min()}..{y.max()}")
        self.mu = f.mean(axis=0)
        self.sd = f.std(axis=0)
        self.sd[self.sd == 0] = 1.0
        z = (f - self.mu) / self.sd
        t = np.eye(self.n_classes)[y]
        self.t_mean = t.mean(axis=0)
        tc = t - self.t_mean
        e, v = linalg.eigh(z.T @ z)
        e = np.maximum(e, 0.0)
        p = z @ v  # (N, F)
        pt = p.T @ tc  # (F, K)
        best = None
        for lam in self.lambdas:
            inv = 1.0 / (e + lam)
            fitted = p @ (pt * inv[:, None])
            h = (p * p) @ inv
            loo = (fitted - h[:, None] * tc) / (1.0 - h)[:, None]
            err = np.mean(np.argmax(loo + self.t_mean, axis=1) != y)
            mse = np.mean((loo - tc) ** 2)
            if best is None or (err, mse) < best[:2]:
                best = (err, mse, lam)
        self.loo_error, _, self.lam = best
        self.w = v @ (pt / (e + self.lam)[:, None])
        return self

    def decision(self, f: np.ndarray) -> np.ndarray:
        return ((np.asarray(f, np.float64) - self.mu) / self.sd) @ self.w + self.t_mean

    def predict(self, f: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision(f), axis=1)

    def accuracy(self, f: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(f) == np.asarray(y)))


def labels_per_class(y: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class in a seeded shuffle (all: None)."""
    y = np.asarray(y)
    if per_class is None:
        return np.arange(y.size)
    order = np.random.default_rng(seed).permutation(y.size)
    picked = [order[y[order] == c][:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))
