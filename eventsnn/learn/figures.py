"""Pictures of learned kernels (matplotlib is an optional extra: ``pip install eventsnn[plot]``)."""

from __future__ import annotations

import math

import numpy as np

from ..plots import _pyplot


def kernel_tiles(weight: np.ndarray) -> np.ndarray:
    """(C_out, kh, kw) images of a conv weight (kh, kw, C_in, C_out): the sum over input
    channels, each scaled to [0, 1] on its own (a kernel's shape, not its gain)."""
    w = np.asarray(weight, np.float64).sum(axis=2).transpose(2, 0, 1)
    lo = w.min(axis=(1, 2), keepdims=True)
    span = w.max(axis=(1, 2), keepdims=True) - lo
    return (w - lo) / np.where(span > 0, span, 1.0)


def plot_kernels(weight: np.ndarray, path=None, columns: int = 8):
    """One tile per output map; returns the figure (written to ``path`` as PNG if given)."""
    plt = _pyplot()
    tiles = kernel_tiles(weight)
    n = tiles.shape[0]
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(str(i), fontsize=7)
    fig.tight_layout()
    if path is not None:
        from ..io.atomic import atomic_path
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
    return fig
