"""Conversion calibration on several threads: statistics merge exactly across shards.

The maximum merges exactly; the percentile is exact (all positive activations
gathered) while a layer has at most ``_SAMPLE_CAP`` of them, and beyond that is
read off a uniform sample drawn per (seed, sample index), with the rank error
bound of ``percentile_rank_error``. Both are checked here against a slow
reference: one ANN pass per sample, every activation kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventsnn import convert as conv
from eventsnn.ann import forward
from eventsnn.datasets import load_dataset

from test_convert import SAMPLE, small_cnn

PCT = 99.0


@pytest.fixture(scope="module")
def data():
    return load_dataset(SAMPLE, limit=70)  # three batches of 32: the last one short


def _tensors(g):
    units, _ = conv._map(g, "subtract")
    return {u.tensor for u in units}


def _reference(g, x, tensors):
    """Every positive activation of every tensor, one sample at a time."""
    pos = {t: [] for t in tensors}
    for i in range(x.shape[0]):
        acts = forward(g, x[i: i + 1], keep=True)
        for t in tensors:
            pos[t].append(acts[t][acts[t] > 0].ravel())
    return {t: np.concatenate(v) for t, v in pos.items()}


def _converted(x, workers, method="percentile"):
    return conv.convert(small_cnn(), x, method=method, percentile=PCT, workers=workers)


def _same_net(a, b):
    for la, lb in zip(a.layers, b.layers):
        for attr in ("weight", "bias"):
            va, vb = getattr(la, attr), getattr(lb, attr)
            assert (va is None) == (vb is None) and (va is None or np.array_equal(va, vb)), (la.name, attr)
        if la.neuron is not None:
            assert la.neuron.threshold == lb.neuron.threshold


@pytest.mark.parametrize("method", ["max", "percentile"])
def test_two_threads_give_the_same_network(data, method):
    (a, ra), (b, rb) = _converted(data.x, 1, method), _converted(data.x, 2, method)
    _same_net(a, b)
    assert ra.scales == rb.scales and ra.ann_accuracy == rb.ann_accuracy


def test_exact_max_and_percentile_equal_the_per_sample_reference(data):
    g = conv.simplify(small_cnn())
    tensors = _tensors(g)
    x = data.x.astype(np.float32)
    stats, _ = conv._activation_stats(g, x, tensors, seed=0, progress=None, workers=2)
    ref = _reference(g, x, tensors)
    for t in tensors:
        top, kept = stats[t]
        assert kept.size == ref[t].size  # below the cap every positive activation is kept
        np.testing.assert_allclose(top, ref[t].max(), rtol=1e-6)
        np.testing.assert_allclose(np.percentile(kept, PCT), np.percentile(ref[t], PCT), rtol=1e-6)


def test_merged_shards_equal_one_pass_in_any_order(data):
    g = conv.simplify(small_cnn())
    tensors = _tensors(g)
    x = data.x.astype(np.float32)
    whole = conv.activation_stats(g, x, tensors, seed=3)
    parts = [conv.activation_stats(g, x[a:b], tensors, seed=3, first=a, total=len(x))
             for a, b in ((40, 70), (0, 17), (17, 40))]
    merged = conv.ActivationStats.merge(parts)
    for t in tensors:
        assert merged.top[t] == whole.top[t]
        np.testing.assert_allclose(np.sort(merged.kept[t]), np.sort(whole.kept[t]), rtol=1e-6)


def test_subsampled_percentile_is_within_its_stated_rank_error(data, monkeypatch):
    """Past the cap: the same kept sample for 1 and 2 workers, and the percentile's rank among
    all activations within eps(delta = 1e-6) of the target."""
    monkeypatch.setattr(conv, "_SAMPLE_CAP", 20000)
    g = conv.simplify(small_cnn())
    tensors = _tensors(g)
    x = data.x.astype(np.float32)
    one, _ = conv._activation_stats(g, x, tensors, seed=5, progress=None, workers=1)
    two, _ = conv._activation_stats(g, x, tensors, seed=5, progress=None, workers=2)
    ref = _reference(g, x, tensors)
    subsampled = 0
    for t in tensors:
        assert one[t][0] == two[t][0] and np.array_equal(one[t][1], two[t][1])
        kept = one[t][1]
        if kept.size == ref[t].size:
            continue
        subsampled += 1
        lam = np.percentile(kept, PCT)
        rank = np.mean(ref[t] <= lam)
        eps = conv.percentile_rank_error(kept.size)
        assert abs(rank - PCT / 100) <= eps + 1.0 / kept.size, (t, rank, eps)
    assert subsampled >= 1


def test_spike_norm_on_two_threads_equals_one(data):
    x = data.x[:12]
    (a, _), (b, _) = (conv.convert(small_cnn(), x, method="spike-norm", norm_timesteps=10, workers=w)
                      for w in (1, 2))
    _same_net(a, b)
