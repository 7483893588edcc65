"""Latency and energy of spike-based training against conversion, same architecture.

Issue 14's claims (Srinivasan et al., ICASSP 2020): a network trained with
spike-based backpropagation needs far fewer timesteps than the converted
network for the same accuracy (up to 8x), and so less energy. Measured here on
the shipped default architecture, by the hybrid route (Rathi et al. 2020:
conversion, then BPTT fine-tuning at a small T):

1. the converted network (``--init``, default ``data/default_net.h5``) runs in the
   event engine over the full test set up to ``max(--sweep)`` steps; the accuracy
   and synaptic ops after every T of ``--sweep`` are read off the same run;
2. for each T of ``--timesteps`` it is fine-tuned with ``eventsnn train-bptt
   --init`` (library call ``run_training``) on the first ``--train-samples``
   training images (a validation split of them picks the epoch), then the saved
   network runs in the event engine over the full test set at that T;
3. latency: for each fine-tuned network, the smallest T at which the converted
   network is at least as accurate, and the ratio of the two;
4. energy: ``energy_report`` (profile ``--profile``) of each fine-tuned network,
   and of the converted network at the matching T, against their ANN.

Every accuracy here comes from the event engine (not the training forward),
on the full 10 000 test images unless ``--test-samples`` says otherwise.

Usage (repository root)::

    python bench/bptt_latency.py --out bench/results/bptt_latency.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.energy import energy_report, get_profile  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.learn.train import TrainConfig, run_training  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")


def engine_run(net, test, timesteps, checkpoints=None):
    t0 = time.perf_counter()
    result = run_dataset(net, test.x, test.y, timesteps=timesteps, checkpoints=checkpoints)
    return result, time.perf_counter() - t0


def energy_row(result, profile):
    report = energy_report(result, profile)
    t = report.totals
    return {"timesteps": result.timesteps, "accuracy": result.accuracy,
            "syn_ops_per_sample": t["syn_ops"], "spikes_per_sample": t["spikes"],
            "snn_uJ": t["snn_pj"] * 1e-6, "ann_uJ": t["ann_pj"] * 1e-6, "snn_over_ann": t["snn_over_ann"]}


def smallest_t(sweep_rows, accuracy):
    """The smallest swept T whose accuracy is at least ``accuracy`` (None: never)."""
    for row in sweep_rows:
        if row["accuracy"] >= accuracy:
            return row["timesteps"]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default=str(ROOT / "data" / "default_net.h5"))
    ap.add_argument("--timesteps", default="1,2,4", help="T values to fine-tune at")
    ap.add_argument("--sweep", default="1,2,3,4,5,6,8,10,12,16,20,24,32,48,64",
                    help="T values at which the converted network is read off")
    ap.add_argument("--train-samples", type=int, default=20000)
    ap.add_argument("--test-samples", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--profile", default="cmos45_fp32")
    ap.add_argument("--out", default="bench/results/bptt_latency.json")
    args = ap.parse_args()

    profile = get_profile(args.profile)
    test = load_dataset(FASHION / "t10k-images-idx3-ubyte.gz", limit=args.test_samples)
    converted = load_network(args.init)
    sweep = sorted({int(v) for v in args.sweep.split(",")})
    conv_result, conv_s = engine_run(converted, test, max(sweep), sweep)
    conv_rows = conv_result.sweep_table()
    print(f"converted: {len(test)} test images to T = {max(sweep)} in {conv_s:.0f} s", flush=True)
    for row in conv_rows:
        print(f"  T {row['timesteps']:>3}: {100 * row['accuracy']:.2f} %  {row['syn_ops_per_sample']:,.0f} syn ops",
              flush=True)

    tuned = []
    workdir = Path(tempfile.mkdtemp(prefix="bptt-latency-"))
    for T in sorted({int(v) for v in args.timesteps.split(",")}):
        cfg = TrainConfig(timesteps=T, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=0)
        t0 = time.perf_counter()
        summary = run_training(args.init, FASHION / "train-images-idx3-ubyte.gz", workdir / f"tuned_T{T}.h5", cfg,
                               samples=args.train_samples, hybrid=True, check_samples=16, progress=False,
                               log=lambda line: print("  " + line, flush=True))
        train_s = time.perf_counter() - t0
        net = load_network(workdir / f"tuned_T{T}.h5")
        result, run_s = engine_run(net, test, T)
        row = energy_row(result, profile)
        t_conv = smallest_t(conv_rows, result.accuracy)
        conv_energy = None
        if t_conv is not None:
            conv_energy = energy_row(engine_run(converted, test, t_conv)[0], profile)
        row.update({"train_seconds": train_s, "test_seconds": run_s, "best_val_acc": summary["best_val_acc"],
                    "engine_identity_val": summary["engine_identity"],
                    "converted_T_for_same_accuracy": t_conv,
                    "latency_ratio": (t_conv / T) if t_conv else None,
                    "converted_at_that_T": conv_energy})
        tuned.append(row)
        print(f"fine-tuned at T = {T}: {100 * result.accuracy:.2f} % (engine, {len(test)} images), "
              f"{row['snn_uJ']:.2f} uJ vs ANN {row['ann_uJ']:.2f} uJ; converted needs T = {t_conv}"
              + (f" ({t_conv / T:.1f}x)" if t_conv else " (never, up to the sweep's end)"), flush=True)

    record = {"machine": machine_info(), "config": vars(args), "test_samples": len(test),
              "converted_sweep": conv_rows, "converted_seconds": conv_s, "fine_tuned": tuned,
              "profile": profile.name}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
