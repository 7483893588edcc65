"""Pictures (matplotlib is an optional extra: ``pip install eventsnn[plot]``).

Every function draws into ``ax`` when given (else into a new figure), returns
the Axes, and with ``path`` also writes the figure as a PNG (atomically: a
temporary file renamed into place). A figure the function made itself is
closed after it is written to ``path``.

- :func:`plot_raster` -- recorded spikes of several layers, one band per layer;
- :func:`plot_membrane` -- a watched neuron's membrane potential over time;
- :func:`plot_activity` -- a layer's spike counts as an H x W image;
- :func:`plot_energy` -- energy per layer, SNN against ANN.

Layer names are shortened in labels (:func:`short_name`): the ONNX node name
``/features/features.0/Conv`` reads ``features.0/Conv``.
"""

from __future__ import annotations

import math
import sys

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ValueError("plotting needs matplotlib: pip install 'eventsnn[plot]'") from None
    # Agg (files only), unless pyplot is already in use (a notebook's inline
    # backend, an interactive session): switching would close its figures.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def short_name(name: str) -> str:
    """A layer name fit for a label: ``/features/features.0/Conv`` -> ``features.0/Conv``.

    Drops a leading ``/`` and every path part that only repeats as the prefix
    of the next one (ONNX module scopes), then keeps the last two parts.
    """
    parts = [p for p in str(name).strip("/").split("/") if p]
    if len(parts) <= 1:
        return str(name).strip("/") or str(name)
    kept = [p for i, p in enumerate(parts) if not (i + 1 < len(parts) and parts[i + 1].startswith(p + "."))]
    return "/".join(kept[-2:])


def _figure(ax, figsize):
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return ax, True
    return ax, False


def _finish(ax, own, path, force=False):
    """Lay out a figure we made; write the Axes' figure to ``path`` if given (``force``: see atomic_path)."""
    if own:
        ax.figure.tight_layout()
    if path is not None:
        from .io.atomic import atomic_path
        with atomic_path(path, force) as tmp:
            ax.figure.savefig(tmp, dpi=120, format="png")
        if own:
            _pyplot().close(ax.figure)
    return ax


def _pop(sim, layer) -> int:
    """Population index of ``layer`` (name or index); ValueError names the known layers."""
    try:
        return sim._pop(layer)
    except KeyError as exc:
        raise ValueError(exc.args[0] if exc.args else f"no layer {layer!r}") from None


def _time_label(sim) -> str:
    return "time" if sim.plan.continuous else "time (steps)"


def _recorded(sim):
    if not sim.record_spikes:
        raise ValueError("no recorded spikes: create the Simulator with record_spikes=True and run it")
    return sim.recorded_spikes()


def plot_raster(sim, layers=None, ax=None, path=None):
    """Spike raster of recorded spikes: time on x, one horizontal band per layer.

    ``layers`` (names or indices) default to every layer that has neurons to
    show: all spiking layers, and the input when it spikes (poisson
    encoding). Bands have equal height whatever the layer size, so neuron
    index ``i`` of a layer of ``n`` neurons is drawn at ``i / n`` of its band
    (neuron 0 at the top); the band label gives the layer and its size.
    Needs ``Simulator(..., record_spikes=True)``; ValueError if nothing was
    recorded.
    """
    times, ranks, idx = _recorded(sim)
    if layers is None:
        pops = [p for p in range(len(sim.layer_names)) if p > 0 or np.any(ranks == 0)]
    else:
        if isinstance(layers, (str, int, np.integer)):
            layers = [layers]
        pops = [_pop(sim, layer) for layer in layers]
        if not pops:
            raise ValueError("plot_raster: no layers to draw")
    if not np.any(np.isin(ranks, pops)):
        raise ValueError("no recorded spikes in the chosen layers: run the simulation first "
                         "(with record_spikes=True)")
    ax, own = _figure(ax, (9, 1.0 + 0.9 * len(pops)))
    colors = _pyplot().get_cmap("tab10")
    ticks, labels = [], []
    for band, p in enumerate(pops):
        sel = ranks == p
        n = max(int(sim.plan.pops[p].size), 1)
        y = band + (idx[sel] + 0.5) / n * 0.9 + 0.05
        row_pt = 0.9 * 72 * 0.9 / n  # height of one neuron's row, in points
        if n <= 200:
            ax.scatter(times[sel], y, s=float(np.clip(row_pt ** 2, 6, 40)), marker="|",
                       color=colors(band % 10), linewidths=1.0)
        else:
            ax.scatter(times[sel], y, s=1.5 if sel.sum() > 2000 else 4, marker=".", linewidths=0.6,
                       color=colors(band % 10), rasterized=sel.sum() > 5000)
        if n <= 16:  # few neurons: name the rows that spiked, at the right edge
            for k in np.unique(idx[sel]):
                ax.text(1.004, band + (k + 0.5) / n * 0.9 + 0.05, str(int(k)), fontsize=7, va="center",
                        color=colors(band % 10), transform=ax.get_yaxis_transform(), clip_on=False)
        ticks.append(band + 0.5)
        labels.append(f"{short_name(sim.layer_names[p])}\n{n} neurons, {int(sel.sum())} spikes")
        if band:
            ax.axhline(band, color="0.85", lw=0.8)
    ax.set_ylim(len(pops), 0)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(-0.5, sim.timesteps + 0.5 if sim.plan.continuous else sim.timesteps - 0.5)
    ax.set_xlabel(_time_label(sim))
    ax.set_title("Spike raster (neuron index within each layer's band)")
    return _finish(ax, own, path)


def _threshold(sim, p: int, k: int) -> float:
    pop = sim.plan.pops[p]
    layer = sim.network.layer(pop.name)
    thr = np.asarray(layer.neuron.threshold, np.float64).reshape(-1)
    return float(thr[0] if thr.size == 1 else thr[k % pop.shape[-1]])


def plot_membrane(sim, layer, neuron, ax=None, path=None):
    """Membrane potential of a watched neuron (``sim.watch(layer, neuron)`` before running).

    An IF potential is constant between the neuron's updates, so it is drawn
    as a step line (a LIF potential decays between them, drawn per step, or
    exactly in continuous time). At a spike the line rises to the value before
    the reset and drops to the value after it; the spike is marked with a red
    triangle. The threshold is the dashed line. ValueError if the neuron is
    not watched or has no update yet.
    """
    p = _pop(sim, layer)
    name = sim.layer_names[p]
    k = sim.neuron_index(p, neuron)
    try:
        t, pre, post = sim.history(p, k)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if t.size == 0:
        raise ValueError(f"neuron {neuron} of {name!r} is watched but has no recorded update yet: run the simulation")
    leak = float(sim.network.layer(name).neuron.leak)
    end = float(sim.time if sim.time > t[-1] else t[-1] + 1.0)
    xs, ys = [], []
    for i in range(t.size):
        xs += [t[i], t[i]]
        ys += [pre[i], post[i]]
        nxt = t[i + 1] if i + 1 < t.size else end
        if leak < 1.0 and nxt > t[i]:
            if sim.plan.continuous:
                grid = np.linspace(t[i], nxt, 32)[1:]
                xs += list(grid)
                ys += list(post[i] * np.exp(-(grid - t[i]) / sim.network.layer(name).neuron.tau))
            else:
                steps = int(nxt - t[i])
                for j in range(1, steps):  # V decays once per step until the next update
                    xs += [t[i] + j, t[i] + j]
                    ys += [ys[-1], post[i] * leak ** j]
                xs.append(nxt)
                ys.append(ys[-1])
        else:
            xs.append(nxt)
            ys.append(post[i])
    ax, own = _figure(ax, (9, 3.6))
    ax.plot(xs, ys, color="#1f77b4", lw=1.4, label="membrane potential V")
    thr = _threshold(sim, p, k)
    from .engine.layout import P_SPIKING
    spiking = bool(sim.plan.pop_i[p, P_SPIKING])
    if spiking and np.isfinite(thr) and thr < 1e30:
        ax.axhline(thr, color="#d62728", ls="--", lw=1.2, label=f"threshold = {thr:.3g}")
    spikes = pre != post
    if spiking and spikes.any():
        ax.plot(t[spikes], pre[spikes], "^", color="#d62728", ms=7, label=f"spike ({int(spikes.sum())})")
    ax.axhline(0.0, color="0.6", lw=0.6)
    lo, hi = min(min(ys), 0.0), max(max(ys), thr if spiking and np.isfinite(thr) and thr < 1e30 else 0.0)
    span = (hi - lo) or 1.0
    ax.set_ylim(lo - 0.05 * span, hi + 0.3 * span)  # headroom for the legend
    ax.set_xlabel(_time_label(sim))
    ax.set_ylabel("V")
    ax.set_title(f"{short_name(name)}, neuron {neuron}: membrane potential")
    ax.legend(loc="upper left", fontsize=8, ncol=3, framealpha=0.9)
    return _finish(ax, own, path)


def plot_activity(sim, layer, t=None, channel=None, ax=None, path=None):
    """A layer's spikes as an H x W image, summed over channels or of one ``channel``.

    ``t=None``: all spikes so far (``sim.spike_counts``; no recording needed).
    ``t`` given: the spikes in the window ``[t, t + 1)`` -- one step in
    discrete time -- read from the recorded spikes (needs
    ``record_spikes=True``). A flat layer (dense, N neurons) is wrapped into a
    near-square grid, row by row (empty cells blank).
    """
    p = _pop(sim, layer)
    name = sim.layer_names[p]
    shape = tuple(sim.plan.pops[p].shape)
    if t is None:
        counts = sim.spike_counts(p).astype(np.float64)
        when = f"t < {sim.time + 1:g}" if not sim.plan.continuous else f"t <= {sim.time:g}"
    else:
        times, ranks, idx = _recorded(sim)
        sel = (ranks == p) & (times >= float(t)) & (times < float(t) + 1.0)
        counts = np.bincount(idx[sel], minlength=int(np.prod(shape))).astype(np.float64).reshape(shape)
        when = f"{float(t):g} <= t < {float(t) + 1:g}"
    if channel is None:
        img = counts.sum(axis=-1)
        what = f"sum over {shape[-1]} channels" if shape[-1] > 1 else ""
    else:
        c = int(channel)
        if not 0 <= c < shape[-1]:
            raise ValueError(f"channel {channel} is outside layer {name!r} ({shape[-1]} channels)")
        img = counts[..., c]
        what = f"channel {c}"
    flat = img.shape[0] == 1 and img.shape[1] == 1
    if flat:  # a dense layer: (1, 1, N), one value per channel
        vec = counts.reshape(-1) if channel is None else img.reshape(-1)
        what = ""
        w = int(math.ceil(math.sqrt(vec.size)))
        h = int(math.ceil(vec.size / w))
        img = np.full(h * w, np.nan)
        img[: vec.size] = vec
        img = img.reshape(h, w)
    ax, own = _figure(ax, (5.2, 4.4))
    im = ax.imshow(img, cmap="magma", interpolation="nearest", vmin=0)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    from matplotlib.ticker import MaxNLocator
    cb.locator = MaxNLocator(integer=True)  # spike counts
    cb.update_ticks()
    cb.set_label("spikes")
    sub = ", ".join(s for s in (what, when) if s)
    ax.set_title(f"{short_name(name)} activity\n({sub})", fontsize=10)
    if flat:
        ax.set_xlabel(f"neuron index mod {img.shape[1]}")
        ax.set_ylabel(f"neuron index // {img.shape[1]}")
    else:
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    return _finish(ax, own, path)


def plot_energy(report, path=None, ax=None, force=False):
    """Bar chart of energy per layer and sample, SNN against ANN (log scale).

    ``force`` lets ``path`` be a symlink, FIFO or device (see :func:`eventsnn.io.atomic.atomic_path`).
    """
    rows = report.rows
    names = [short_name(r["layer"]) for r in rows]
    x = np.arange(len(rows))
    ax, own = _figure(ax, (max(6, 0.9 * len(rows) + 2), 4))
    ax.bar(x - 0.2, [r["ann_pj"] / 1e3 for r in rows], 0.4, label="ANN (MACs)", color="#8c8c8c")
    ax.bar(x + 0.2, [r["snn_pj"] / 1e3 for r in rows], 0.4, label="SNN (exact counts)", color="#1f77b4")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("energy per sample (nJ)")
    ax.set_title(f"Energy per layer - profile {report.profile.name}, T = {report.timesteps}")
    ax.legend()
    return _finish(ax, own, path, force)
