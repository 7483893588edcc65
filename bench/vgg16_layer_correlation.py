#!/usr/bin/env python
"""Which layers of the converted VGG16 lose the ANN: per-layer correlation of SNN rates with ANN activations.

For a converted network (default ``converted_vgg16.h5``, made by the README's
``eventsnn convert`` command) and the first ``--samples`` shipped test images,
every spiking neuron's spike rate times its threshold (spikes per step x
threshold, the activation the SNN represents) is compared with the value the
normalised ANN computes for it (``eventsnn.convert.rate_model``: the source
ANN's ReLU activation divided by its layer's normalisation scale, so on the
same scale). Per layer and per T (``--timesteps``, default 50 and 200) the
script reports Pearson's r over all (image, neuron) pairs, the least-squares
slope through 0 (1 = the SNN carries the full activation) and the fraction of
ANN activations above the threshold (a rate cannot exceed 1 spike per step).

Usage (eventsnn's venv)::

    python bench/vgg16_layer_correlation.py --net converted_vgg16.h5 --samples 20

Writes ``bench/results/vgg16_layer_correlation.json`` and the figure
``docs/images/vgg16_layer_correlation.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from machine import machine_info  # noqa: E402
import eventsnn.data  # noqa: E402
from eventsnn.convert import rate_model  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.io import load_network  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="converted_vgg16.h5")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timesteps", default="50,200")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vgg16_layer_correlation.json"))
    ap.add_argument("--figure", default=str(ROOT / "docs" / "images" / "vgg16_layer_correlation.png"))
    args = ap.parse_args(argv)
    steps = sorted({int(t) for t in args.timesteps.split(",")})

    net = load_network(args.net)
    data = load_dataset(eventsnn.data.path("fashion-mnist-sample.npz"), limit=args.samples)
    x = data.x
    target = rate_model(net, x)
    layers = [l for l in net.layers if l.neuron is not None]
    t0 = time.perf_counter()
    rates = {t: {l.name: [] for l in layers} for t in steps}
    for t in steps:
        sim = Simulator(net, timesteps=t)
        for i in range(len(x)):
            sim.reset(x[i])
            sim.run()
            for l in layers:  # spikes per step x threshold (per channel: the last axis)
                thr = np.asarray(l.neuron.threshold, np.float64)
                rates[t][l.name].append((sim.spike_counts(l.name) / t * thr).reshape(-1))
    rows = []
    for k, l in enumerate(layers):
        # rate_model divides the normalised ANN activation by the threshold; multiply it back
        thr = np.asarray(l.neuron.threshold, np.float64)
        act = target[l.name].reshape((len(x),) + tuple(target[l.name].shape[1:])) * thr
        ann = act.reshape(-1)
        row = {"layer": l.name, "index": k, "kind": l.kind, "neurons": int(act[0].size),
               "ann_above_threshold": float(np.mean(act > thr)), "by_T": {}}
        for t in steps:
            snn = np.concatenate(rates[t][l.name])
            r = float(np.corrcoef(snn, ann)[0, 1]) if snn.std() > 0 and ann.std() > 0 else float("nan")
            slope = float(snn @ ann / (ann @ ann)) if ann @ ann > 0 else float("nan")
            row["by_T"][str(t)] = {"pearson_r": r, "slope": slope, "mean_snn": float(snn.mean()),
                                   "mean_ann": float(ann.mean())}
        rows.append(row)
        print(f"{k:>2} {l.name:<32} " + "  ".join(
            f"T={t}: r={row['by_T'][str(t)]['pearson_r']:.3f} slope={row['by_T'][str(t)]['slope']:.3f}"
            for t in steps), flush=True)
    doc = {"benchmark": "bench/vgg16_layer_correlation.py", "command": " ".join(sys.argv),
           "machine": machine_info(), "net": str(args.net), "samples": int(len(x)), "timesteps": steps,
           "seconds": time.perf_counter() - t0, "layers": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=float))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    idx = np.arange(len(rows))
    for t in steps:
        ax[0].plot(idx, [r["by_T"][str(t)]["pearson_r"] for r in rows], "o-", label=f"T = {t}")
        ax[1].plot(idx, [r["by_T"][str(t)]["slope"] for r in rows], "o-", label=f"T = {t}")
    ax[0].set_ylabel("Pearson r (SNN rate x threshold vs ANN)")
    ax[1].set_ylabel("slope through 0")
    for a in ax:
        a.set_xticks(idx, [f"c{i + 1}" if r["kind"] == "conv2d" else f"d{i - 12}" for i, r in enumerate(rows)],
                     fontsize=7)
        a.set_xlabel("spiking layer (13 conv, 3 dense)")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"converted VGG16 (Fashion-MNIST), {len(x)} test images", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)
    print(f"wrote {out} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
