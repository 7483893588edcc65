"""BPTT on Fashion-MNIST: train a small conv SNN with eventsnn.learn, then measure

- accuracy on the FULL test set (10 000 images) with the training forward pass,
- spike identity of the saved network in the event engine on the first
  ``--check`` test images (every population, every step),
- time per epoch and peak resident memory (this process),
- how the forward+backward memory of one batch grows with T.

Usage (from the repository root)::

    python bench/bptt_fashion.py --train-samples 12000 --epochs 1 --timesteps 6 \
        --out bench/results/bptt_fashion.json

Training data: the training set file (``train-images-idx3-ubyte.gz``); the
validation split is held out of it; the test set is only used for the final
numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io import save_network  # noqa: E402
from eventsnn.learn.arch import conv_net  # noqa: E402
from eventsnn.learn.bptt import Model, check_engine_identity  # noqa: E402
from eventsnn.learn.train import TrainConfig, evaluate, train  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def memory_vs_T(model, x, steps):
    """Peak numpy allocation (tracemalloc) of one forward+backward of a batch, per T."""
    rows = []
    g = np.zeros((len(x), model.pops[-1].n))
    for T in steps:
        tracemalloc.start()
        trace = model.forward(x, T)
        model.backward(trace, g)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"T": T, "batch": len(x), "peak_MiB": peak / 2**20})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-samples", type=int, default=12000)
    ap.add_argument("--test-samples", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--timesteps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--channels", default="8,16")
    ap.add_argument("--check", type=int, default=200)
    ap.add_argument("--out", default="bench/results/bptt_fashion.json")
    args = ap.parse_args()

    train_set = load_dataset(FASHION / "train-images-idx3-ubyte.gz", limit=args.train_samples)
    test_set = load_dataset(FASHION / "t10k-images-idx3-ubyte.gz", limit=args.test_samples)
    net = conv_net(channels=tuple(int(c) for c in args.channels.split(",")))
    model = Model(net, add_bias=True, snap_thresholds=True)
    cfg = TrainConfig(timesteps=args.timesteps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    t0 = time.perf_counter()
    result = train(model, train_set.x, train_set.y, cfg, log=lambda line: print(line, flush=True))
    train_s = time.perf_counter() - t0
    best = result["best_params"]
    t0 = time.perf_counter()
    acc, loss, spikes = evaluate(model, test_set.x, test_set.y, args.timesteps, params=best)
    test_s = time.perf_counter() - t0
    print(f"test accuracy {100 * acc:.2f} % on {len(test_set)} images, {spikes:.0f} spikes/sample", flush=True)
    trained = model.to_network(best)
    out = Path(args.out)
    save_network(trained, out.with_suffix(".h5"))
    t0 = time.perf_counter()
    trace = model.forward(test_set.x[:args.check], args.timesteps, best)
    ident = check_engine_identity(trained, trace, args.timesteps)
    engine_s = time.perf_counter() - t0
    print(f"engine identity on {ident['samples']} test images: {ident['differing_spikes']} differing spikes",
          flush=True)
    mem = memory_vs_T(model, train_set.x[:args.batch_size], [2, 4, 8, 16])
    record = {
        "machine": machine_info(),
        "config": vars(args) | {"train_config": cfg.__dict__},
        "architecture": "conv3x3(%s)-avgpool2 per stage, dense 10, LIF leak 0.5, membrane readout" % args.channels,
        "history": result["history"], "best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"],
        "train_samples": result["train_samples"], "val_samples": result["val_samples"],
        "train_seconds": train_s, "test_accuracy": acc, "test_loss": loss, "test_spikes_per_sample": spikes,
        "test_samples": len(test_set), "test_seconds": test_s,
        "engine_identity": ident, "engine_check_seconds": engine_s,
        "exactness_bound": model.exactness_bound(best),
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "memory_vs_T": mem,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float))
    print(json.dumps({k: record[k] for k in ("test_accuracy", "engine_identity", "peak_rss_MiB", "memory_vs_T")},
                     default=float))


if __name__ == "__main__":
    main()
