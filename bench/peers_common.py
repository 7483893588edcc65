"""What both sides of the peers benchmark must compute identically (numpy only).

``peers_speed.py`` (with eventsnn) and ``peers_torch.py`` (in the peers' venv,
without eventsnn) import this one module, so the weights each side builds and
the hashes that check them cannot drift apart.
"""

from __future__ import annotations

import hashlib

import numpy as np

QSTEP = 2.0 ** -8  # quantisation step of weights and inputs for the exact agreement check


def scale_weights(base, gains, quant: bool) -> list:
    """base * gain in float32; rounded to multiples of QSTEP if ``quant`` (sums then exact in any order)."""
    out = []
    for w, g in zip(base, gains):
        s = (w * np.float32(g)).astype(np.float32)
        if quant:
            s = (np.round(s / np.float32(QSTEP)) * np.float32(QSTEP)).astype(np.float32)
        out.append(s)
    return out


def weight_hash(w: np.ndarray) -> str:
    """Order-free hash of a weight array (the same values in any layout give the same hash)."""
    # + 0 turns -0.0 into +0.0: sort() ties them, so their order (and the bytes) would follow the layout
    return hashlib.sha1(np.sort(np.asarray(w, np.float32).reshape(-1) + np.float32(0)).tobytes()).hexdigest()[:16]
