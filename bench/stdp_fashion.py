"""STDP features on Fashion-MNIST: readout accuracy against the number of labels, and
conv STDP training speed.

    python bench/stdp_fashion.py [--maps 32] [--train-samples 2000] [--label-pool 60000] [--test 10000]

The run in BENCHMARKS.md §7 (bench/results/stdp_fashion.json):

    python bench/stdp_fashion.py --maps 32 --threshold 8 --timesteps 20 --train-samples 1000 \
        --eta-plus 0.05 --eta-minus 0 --gamma-pot 0.2 --p-dep 0.05 --x-tar 1.0 --once \
        --grid 8 --sqrt --label-pool 60000 --test 10000 --repeats 5

Networks (same architecture): input 28x28 -> conv1 5x5 x MAPS (IF, reset to zero)
[-> maxpool 2 -> conv2 5x5 x MAPS2 with --two-layers], learned by
- deterministic (multiplicative trace) STDP,
- stochastic STDP on binary weights,
- random frozen weights: the deterministic run's starting point (uniform in
  [0, 1]) and the stochastic run's (random binary),
and a linear readout on raw pixels. --once: each map learns at its first spike of
a sample only (eventsnn.learn.stdp, once per map). Features: pooled spike counts
(eventsnn.learn.readout, grid x grid per map) of the learned layers, on DoG on/off
input channels (eventsnn.learn.preprocess; --no-dog: raw intensities) of the plain
network (no competition at readout), T steps of Bernoulli rate coding (--sqrt:
their square roots). Readout:
closed-form ridge, lambda by leave-one-out, fitted on 10/100/1000/all labelled
examples per class (few-label points averaged over --repeats seeded picks) from
the first --label-pool training images; accuracy on the first --test test images.
"""

from __future__ import annotations

import os
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import ROOT, machine_info, table  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.learn.preprocess import dog_on_off  # noqa: E402
from eventsnn.learn.readout import RidgeReadout, labels_per_class, spike_features  # noqa: E402
from eventsnn.learn.stdp import STDPRule  # noqa: E402
from eventsnn.learn.stdp_train import TrainSettings, train_stdp, _random_weights  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def architecture(maps, threshold, two_layers, maps2, threshold2, channels=2):
    layers = [Layer("conv1", "conv2d", ("input",), weight=np.zeros((5, 5, channels, maps), np.float32),
                    neuron=Neuron("if", threshold, "zero"))]
    if two_layers:
        layers += [Layer("pool1", "maxpool2d", ("conv1",), kernel=(2, 2), stride=(2, 2)),
                   Layer("conv2", "conv2d", ("pool1",), weight=np.zeros((5, 5, maps, maps2), np.float32),
                         neuron=Neuron("if", threshold2, "zero"))]
    return Network((28, 28, channels), layers, encoding="poisson")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=32)
    ap.add_argument("--threshold", type=float, default=15.0)
    ap.add_argument("--two-layers", action="store_true")
    ap.add_argument("--maps2", type=int, default=64)
    ap.add_argument("--threshold2", type=float, default=10.0)
    ap.add_argument("--timesteps", type=int, default=20)
    ap.add_argument("--train-samples", type=int, default=2000, help="STDP training samples per layer")
    ap.add_argument("--eta-plus", type=float, default=0.002)
    ap.add_argument("--eta-minus", type=float, default=0.0015)
    ap.add_argument("--gamma-pot", type=float, default=0.05)
    ap.add_argument("--p-dep", type=float, default=0.01)
    ap.add_argument("--x-tar", type=float, default=0.0, help="presynaptic target trace (deterministic rule)")
    ap.add_argument("--kwta", default="1,2")
    ap.add_argument("--theta-plus", type=float, default=0.05)
    ap.add_argument("--normalize", type=float, default=None, help="per-map kernel sum after each sample")
    ap.add_argument("--once", action="store_true", help="each map learns at its first spike of a sample only")
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--sqrt", action="store_true", help="readout on the square roots of the pooled counts")
    ap.add_argument("--label-pool", type=int, default=60000)
    ap.add_argument("--test", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rules", default="deterministic,stochastic,random,random-binary,pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-dog", action="store_true", help="raw intensities instead of DoG on/off channels")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "stdp_fashion.json"))
    args = ap.parse_args(argv)
    info = machine_info()
    print(f"start {info['date']}, load {info.get('loadavg_start')}", flush=True)
    train = load_dataset(DATA / "train-images-idx3-ubyte.gz")
    test = load_dataset(DATA / "t10k-images-idx3-ubyte.gz", limit=args.test)
    pixels_tr, pool_y = train.x[: args.label_pool], train.y[: args.label_pool]
    pixels_te = test.x
    channels = 1 if args.no_dog else 2
    prep = (lambda a: a) if args.no_dog else dog_on_off
    train_x = prep(train.x[: max(args.train_samples, 1)])  # STDP sees the first train-samples images (once)
    pool_x, test_x = prep(pixels_tr), prep(pixels_te)
    k, r = (int(v) for v in args.kwta.split(","))
    learn = ["conv1", "conv2"] if args.two_layers else ["conv1"]
    arch = architecture(args.maps, args.threshold, args.two_layers, args.maps2, args.threshold2, channels)
    rules = args.rules.split(",")
    nets, timing = {}, {}
    for name in ("deterministic", "stochastic"):
        if name not in rules and f"random{'-binary' if name == 'stochastic' else ''}" not in rules:
            continue
        rule = STDPRule("multiplicative" if name == "deterministic" else "stochastic", eta_plus=args.eta_plus,
                        eta_minus=args.eta_minus, gamma_pot=args.gamma_pot, p_dep=args.p_dep,
                        x_tar=args.x_tar if name == "deterministic" else 0.0)
        settings = TrainSettings(layers=learn, rule=rule, samples=args.train_samples, timesteps=args.timesteps,
                                 kwta=(k, r), theta_plus=args.theta_plus, seed=args.seed, init="random",
                                 normalize=args.normalize, once=args.once)
        start = architecture(args.maps, args.threshold, args.two_layers, args.maps2, args.threshold2, channels)
        for i, layer in enumerate(learn):
            start.layer(layer).weight = _random_weights(start.layer(layer), rule, args.seed, i)
        nets["random" if name == "deterministic" else "random-binary"] = start
        if name in rules:
            warm = TrainSettings(**{**settings.__dict__, "samples": 2})
            train_stdp(arch, train_x[:2], warm)  # compile (or load) the plugged kernels before timing
            t0 = time.perf_counter()
            nets[name] = train_stdp(arch, train_x, settings)
            dt = time.perf_counter() - t0
            timing[name] = {"seconds": dt, "samples": args.train_samples * len(learn),
                            "samples_per_s": args.train_samples * len(learn) / dt,
                            "settings": settings.as_dict()}
            timing[name]["loadavg"] = list(os.getloadavg())
            print(f"{name}: trained {args.train_samples} x {len(learn)} samples in {dt:.1f} s "
                  f"({timing[name]['samples_per_s']:.1f} samples/s )", flush=True)
    features = {}
    for name, net in nets.items():
        if name not in rules:
            continue
        t0 = time.perf_counter()
        ftr = spike_features(net, pool_x, learn, args.timesteps, args.seed, args.grid)
        fte = spike_features(net, test_x, learn, args.timesteps, args.seed + 1, args.grid)
        dt = time.perf_counter() - t0
        if args.sqrt:
            ftr, fte = np.sqrt(ftr), np.sqrt(fte)
        features[name] = (ftr, fte)
        timing.setdefault(name, {})["feature_samples_per_s"] = (len(pool_x) + len(test_x)) / dt
        print(f"{name}: features {ftr.shape[1]} for {len(pool_x) + len(test_x)} images in {dt:.1f} s; "
              f"mean count {ftr.mean():.2f}", flush=True)
    if "pixels" in rules:
        features["pixels"] = (pixels_tr.reshape(len(pixels_tr), -1).astype(np.float64),
                              pixels_te.reshape(len(pixels_te), -1).astype(np.float64))
    results = {}
    for per_class in (10, 100, 1000, None):
        reps = args.repeats if per_class is not None and per_class <= 100 else 1
        for name, (ftr, fte) in features.items():
            accs = []
            for rep in range(reps):
                pick = labels_per_class(pool_y, per_class, seed=args.seed + rep)
                readout = RidgeReadout().fit(ftr[pick], pool_y[pick], n_classes=10)
                accs.append(readout.accuracy(fte, test.y))
            key = "all" if per_class is None else str(per_class)
            results.setdefault(key, {})[name] = {"mean": float(np.mean(accs)), "std": float(np.std(accs)),
                                                 "runs": accs, "labels": int(pick.size)}
        print(f"per class {per_class}: " + ", ".join(f"{n} {100 * v['mean']:.2f}" for n, v in
                                                     results["all" if per_class is None else str(per_class)].items()),
              flush=True)
    names = list(features)
    rows = [[key, results[key][names[0]]["labels"]] + [f"{100 * results[key][n]['mean']:.2f} ± "
                                                       f"{100 * results[key][n]['std']:.2f}" for n in names]
            for key in results]
    table(["labels/class", "labels"] + names, rows, title="test accuracy (%)")
    info["loadavg_end"] = list(os.getloadavg())
    out = {"machine": info, "args": vars(args), "timing": timing, "accuracy": results,
           "label_pool": int(len(pool_x)), "test_images": int(len(test.x))}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
