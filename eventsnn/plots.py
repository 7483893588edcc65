"""Pictures (matplotlib is an optional extra: ``pip install eventsnn[plot]``)."""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ValueError("plotting needs matplotlib: pip install 'eventsnn[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_energy(report, path=None, ax=None):
    """Bar chart of energy per layer and sample, SNN against ANN (log scale)."""
    plt = _pyplot()
    rows = report.rows
    names = [r["layer"] for r in rows]
    x = np.arange(len(rows))
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    ax.bar(x - 0.2, [r["ann_pj"] / 1e3 for r in rows], 0.4, label="ANN (MACs)", color="#8c8c8c")
    ax.bar(x + 0.2, [r["snn_pj"] / 1e3 for r in rows], 0.4, label="SNN (exact counts)", color="#1f77b4")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("energy per sample (nJ)")
    ax.set_title(f"Energy per layer - profile {report.profile.name}, T = {report.timesteps}")
    ax.legend()
    if own:
        fig.tight_layout()
        if path is not None:
            from .io.atomic import atomic_path
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=120, format="png")
            plt.close(fig)
    return ax
