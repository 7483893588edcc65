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
and the left-out prediction is ``(yhat_i - h_i t_i) / (1 - h_i)``, with the
unpenalised intercept's ``1/N`` added to ``h_i`` (so the LOO is that of
refitting the intercept too; the feature scales use all training samples).
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
        best = None
        for lam, loo, weights in _loo_path(z, tc, self.lambdas):
            err = np.mean(np.argmax(loo + self.t_mean, axis=1) != y)
            mse = np.mean((loo - tc) ** 2)
            if best is None or (err, mse) < best[:2]:
                best = (err, mse, lam, weights)
        self.loo_error, _, self.lam, weights = best
        self.w = weights()
        return self

    def decision(self, f: np.ndarray) -> np.ndarray:
        return ((np.asarray(f, np.float64) - self.mu) / self.sd) @ self.w + self.t_mean

    def predict(self, f: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision(f), axis=1)

    def accuracy(self, f: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(f) == np.asarray(y)))


def _loo_path(z: np.ndarray, tc: np.ndarray, lambdas):
    """For each lambda: (lambda, leave-one-out predictions of ``tc``, a function giving W).

    ``z`` and ``tc`` are centred; the intercept is part of the model (unpenalised), so
    the hat matrix is ``1/N + Z (Z^T Z + lambda I)^{-1} Z^T`` and a left-out sample no
    longer sets the mean it is predicted from (with N <= F that leak alone makes the
    LOO error of a near-interpolating lambda zero). N > F: eigenvectors of Z^T Z
    (module doc). N <= F: the Gram matrix on the complement of the ones vector,
    ``Q^T Z Z^T Q = V diag(s) V^T`` with ``U = Q V``, gives the residual
    ``r = U diag(lambda / (s + lambda)) U^T T`` and ``1 - h_i = sum_k U_ik^2 lambda / (s_k + lambda)``
    with no cancellation."""
    n, f = z.shape
    if n > f:
        e, v = linalg.eigh(z.T @ z)
        e = np.maximum(e, 0.0)
        p = z @ v  # (N, F)
        pt = p.T @ tc  # (F, K)
        for lam in lambdas:
            inv = 1.0 / (e + lam)
            resid = tc - p @ (pt * inv[:, None])
            one_minus_h = 1.0 - 1.0 / n - (p * p) @ inv
            yield lam, tc - resid / one_minus_h[:, None], lambda inv=inv: v @ (pt * inv[:, None])
        return
    # Householder reflection taking e_1 to ones / sqrt(N): its other columns span the complement.
    h = np.full(n, 1.0 / np.sqrt(n))
    h[0] -= 1.0
    q = (np.eye(n) - np.outer(h, h) * (2.0 / (h @ h)))[:, 1:]
    zq = q.T @ z  # (N - 1, F)
    s, v = linalg.eigh(zq @ zq.T)
    s = np.maximum(s, 0.0)
    u = q @ v  # (N, N - 1)
    ut = u.T @ tc
    for lam in lambdas:
        keep = lam / (s + lam)
        resid = u @ (ut * keep[:, None])
        one_minus_h = (u * u) @ keep
        yield lam, tc - resid / one_minus_h[:, None], \
            lambda lam=lam: z.T @ (u @ (ut / (s + lam)[:, None]))


def labels_per_class(y: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class in a seeded shuffle (all: None)."""
    y = np.asarray(y)
    if per_class is None:
        return np.arange(y.size)
    order = np.random.default_rng(seed).permutation(y.size)
    picked = [order[y[order] == c][:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))
