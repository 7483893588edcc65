"""A Diehl & Cook (2015) style network on Fashion-MNIST, in continuous time on the event engine.

    python bench/diehl_cook.py [--neurons 400] [--train 5000] [--assign 10000] [--test 10000]

784 Poisson inputs (rate = 63.75 Hz x pixel, time unit 1 ms) -> N excitatory LIF
neurons (tau 100 ms, reset to zero), 350 ms per sample (each sample starts from
rest: the engine resets all state between samples, which stands for the 150 ms
rest), multiplicative trace STDP (tau 20 ms), adaptive thresholds (+theta_plus
per spike), weights normalised to a fixed sum per neuron after each sample.

What differs from the original (say so with any number from this script):
current-based synapses instead of conductances; lateral inhibition is a hard
winner-take-all (k-WTA with k = 1 over the layer: the first neuron to spike in a
sample silences the others until the sample ends) instead of an inhibitory
population; the readout network runs without inhibition. Accuracy by
neuron-label assignment: each neuron takes the class with its highest mean
spike count on the assignment images; a test image gets the class whose
neurons spike most on average.
"""

from __future__ import annotations

import os
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import ROOT, machine_info  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.learn.stdp import STDPRule  # noqa: E402
from eventsnn.learn.stdp_train import TrainSettings, train_stdp  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def counts(net, x, duration, rate, seed):
    sim = Simulator(net, timesteps=duration, mode="continuous", poisson_rate=rate, seed=seed)
    out = np.zeros((len(x), net.layers[-1].weight.shape[1]))
    for i in range(len(x)):
        sim.reset(x[i].reshape(-1), sample_index=i)
        sim.run()
        out[i] = sim.spike_counts("exc").reshape(-1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=400)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--assign", type=int, default=10000)
    ap.add_argument("--test", type=int, default=10000)
    ap.add_argument("--threshold", type=float, default=20.0)
    ap.add_argument("--theta-plus", type=float, default=0.05)
    ap.add_argument("--normalize", type=float, default=78.0)
    ap.add_argument("--eta-plus", type=float, default=0.01)
    ap.add_argument("--eta-minus", type=float, default=0.0001)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "diehl_cook.json"))
    args = ap.parse_args(argv)
    info = machine_info()
    duration, rate = 350, 63.75 / 1000.0
    train = load_dataset(DATA / "train-images-idx3-ubyte.gz")
    test = load_dataset(DATA / "t10k-images-idx3-ubyte.gz", limit=args.test)
    xtr = train.x.reshape(len(train.x), 1, 1, 784)
    net = Network((784,), [Layer("exc", "dense", ("input",), weight=np.zeros((784, args.neurons), np.float32),
                                 neuron=Neuron("lif", args.threshold, "zero", math.exp(-1 / 100.0)))],
                  encoding="poisson")
    rule = STDPRule("multiplicative", eta_plus=args.eta_plus, eta_minus=args.eta_minus, tau_plus=20.0, tau_minus=20.0,
                    w_min=0.0, w_max=1.0)
    settings = TrainSettings(layers=["exc"], rule=rule, samples=args.train, timesteps=duration, kwta=(1, 0),
                             theta_plus=args.theta_plus, tau_theta=1e7, seed=args.seed, poisson_rate=rate,
                             init="random", normalize=args.normalize, mode="continuous")
    train_stdp(net, xtr[:2], TrainSettings(**{**settings.__dict__, "samples": 2}))  # compile before timing
    t0 = time.perf_counter()
    learned = train_stdp(net, xtr[: args.train], settings)
    train_s = time.perf_counter() - t0
    print(f"trained {args.train} samples in {train_s:.1f} s: {1000 * train_s / args.train:.2f} ms/sample", flush=True)
    t0 = time.perf_counter()
    ca = counts(learned, train.x[: args.assign], duration, rate, args.seed + 1)
    ct = counts(learned, test.x, duration, rate, args.seed + 2)
    eval_s = time.perf_counter() - t0
    ya = train.y[: args.assign]
    mean = np.stack([ca[ya == c].mean(axis=0) for c in range(10)])  # (10, N)
    label = np.argmax(mean, axis=0)
    votes = np.stack([ct[:, label == c].mean(axis=1) if np.any(label == c) else np.zeros(len(ct))
                      for c in range(10)], axis=1)
    acc = float(np.mean(np.argmax(votes, axis=1) == test.y))
    print(f"accuracy {100 * acc:.2f} % (assignment on {args.assign}, test {len(ct)}); "
          f"mean spikes/sample {ct.sum(axis=1).mean():.1f}; eval {eval_s:.1f} s", flush=True)
    info["loadavg_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps({"machine": info, "args": vars(args), "train_seconds": train_s,
                                          "ms_per_training_sample": 1000 * train_s / args.train,
                                          "accuracy": acc, "assign_images": args.assign,
                                          "test_images": int(len(ct)), "eval_seconds": eval_s,
                                          "labels_used": np.bincount(label, minlength=10).tolist(),
                                          "settings": settings.as_dict()}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
