"""On/off difference-of-Gaussians input channels, the usual front end of STDP conv nets.

Retina-like contrast cells (Kheradpisheh et al. 2018, Neural Netw. 99:56;
Mozafari et al. 2019): with ``D = G_sigma1 * I - G_sigma2 * I`` (sigma1 < sigma2),
the on channel is ``max(D, 0)`` and the off channel ``max(-D, 0)``, both scaled
by the image's largest response so rate coding sees values in [0, 1].
Positive-only STDP weights over on/off channels can then learn oriented edges,
which they cannot over raw intensities.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import DataError


def dog_on_off(images: np.ndarray, sigma1: float = 1.0, sigma2: float = 2.0) -> np.ndarray:
    """(N, H, W, 1) images -> (N, H, W, 2) float32 on/off channels in [0, 1]."""
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[-1] != 1:
        raise DataError(f"DoG on/off needs grey images (N, H, W, 1), got shape {x.shape}")
    if not 0 < sigma1 < sigma2:
        raise DataError(f"DoG needs 0 < sigma1 < sigma2, got {sigma1}, {sigma2}")
    sig = (0, sigma1, sigma1, 0)
    d = ndimage.gaussian_filter(x, sig, mode="constant") - ndimage.gaussian_filter(x, (0, sigma2, sigma2, 0),
                                                                                    mode="constant")
    out = np.concatenate([np.maximum(d, 0.0), np.maximum(-d, 0.0)], axis=-1)
    peak = out.reshape(out.shape[0], -1).max(axis=1)
    out /= np.where(peak > 0, peak, 1.0)[:, None, None, None]
    return out.astype(np.float32)
