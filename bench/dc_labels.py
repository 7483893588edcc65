"""Neuron-label assignment and voting of the Diehl & Cook benchmark (numpy only: the eventsnn
script and the Brian2 script, in its own environment, both use this one definition)."""

from __future__ import annotations

import numpy as np


def assign_and_test(ca, ya, ct, yt) -> tuple:
    """(accuracy, label per neuron) from spike counts ``ca`` (assignment images, labels
    ``ya``) and ``ct`` (test images, labels ``yt``), both (images, neurons).

    Each neuron takes the class with its highest mean count on the assignment
    images (Diehl & Cook 2015); a neuron that never spiked there gets no label
    (-1) and no vote (with k = 1 competition most neurons are silent on most
    images, and silent neurons all labelled class 0 would dilute class 0's mean
    vote). A test image gets the class whose labelled neurons have the highest
    mean count (ties and no spikes: the lowest class)."""
    ca, ct = np.asarray(ca, np.float64), np.asarray(ct, np.float64)
    mean = np.stack([ca[ya == c].mean(axis=0) if np.any(ya == c) else np.zeros(ca.shape[1])
                     for c in range(10)])  # (10, N)
    label = np.where(ca.sum(axis=0) > 0, np.argmax(mean, axis=0), -1)
    votes = np.stack([ct[:, label == c].mean(axis=1) if np.any(label == c) else np.zeros(len(ct))
                      for c in range(10)], axis=1)
    acc = float(np.mean(np.argmax(votes, axis=1) == yt)) if len(ct) else None
    return acc, label
