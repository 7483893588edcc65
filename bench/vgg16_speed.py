#!/usr/bin/env python
"""Speed on the trained, converted VGG16: eventsnn against sinabs and SpikingJelly, side by side in one run.

Issue 16 asks for the speed of the real converted VGG16 (its real per-layer
spike rates, not random weights tuned to a rate), at batch 1 and at the
peers' best batch, in one run. This script:

1. converts ``data/vgg16_fashion.onnx`` with the README's command (``eventsnn
   convert ... --calibration data/fashion-mnist-train-calib.npz --v-init 0.5``)
   into a temporary folder, unless ``--net`` names a converted file;
2. times eventsnn on the first test images at ``--timesteps``: the default
   ``eventsnn run`` path (:func:`eventsnn.parallel.run_sharded`, every core)
   as a *marginal* time per image, (t_long - t_short) / (n_long - n_short),
   so the one-off plan compilation is left out as the peers' set-up is; and
   one core (batch 1, one :class:`Simulator` reused), per image;
3. starts ``bench/vgg16_peers_speed.py`` in the peers' venv (``--peers-python``)
   on the same images, same T: sinabs and SpikingJelly as they convert the
   same ONNX, per batch size and thread count, median per image;
4. prints one table and writes ``bench/results/vgg16_speed.json``.

Run it on an idle machine; the load average is recorded beside each timing.

Usage::

    python bench/vgg16_speed.py                      # T = 100, batches 1,16,64, threads 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine_info  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.parallel import default_workers, run_sharded  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

TEST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
MODEL = ROOT / "data" / "vgg16_fashion.onnx"
CALIB = ROOT / "data" / "fashion-mnist-train-calib.npz"
PEERS_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"


def convert(model: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "eventsnn.cli.main", "convert", str(model), "-o", str(out),
           "--calibration", str(CALIB), "--v-init", "0.5", "--no-progress"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return cmd


def time_eventsnn(net, x, timesteps, n_short, reps):
    """eventsnn's timings: marginal s/image of the default sharded run, and s/image on one core."""
    workers = default_workers()
    run_dataset(net, x[:1], timesteps=timesteps)  # kernels loaded, not timed
    walls = {n_short: [], len(x): []}
    loads = []
    for _ in range(reps):
        for n in walls:
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            res = run_sharded(net, x[:n], None, workers=workers, timesteps=timesteps)
            walls[n].append(time.perf_counter() - t0)
            loads.append([load0, os.getloadavg()[0]])
    short, long_ = (float(np.median(walls[n])) for n in (n_short, len(x)))
    one = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run_dataset(net, x[:n_short], timesteps=timesteps)
        one.append((time.perf_counter() - t0) / n_short)
    return {"workers": workers, "walls_s": {str(n): w for n, w in walls.items()}, "loadavg": loads,
            "marginal_s_per_image": (long_ - short) / (len(x) - n_short),
            "one_core_s_per_image": float(np.median(one)), "one_core_walls_s_per_image": one,
            "syn_ops_per_image": float(res.syn_ops.sum(1).mean()),
            "spikes_per_image": float(res.spikes.sum(1).mean()),
            "mean_rate_per_neuron_step": float(res.spikes[:, 1:].sum(1).mean() / (res.neurons[1:].sum() * timesteps))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", type=Path, default=None, help="a converted VGG16 (default: convert the shipped ONNX)")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--samples", type=int, default=16, help="short run (images) for eventsnn's marginal time")
    ap.add_argument("--samples-long", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peer-batches", default="1,16,64")
    ap.add_argument("--peer-threads", default="1,2")
    ap.add_argument("--peer-samples", type=int, default=8, help="images per timed peer pass at small batches")
    ap.add_argument("--peers", default="sinabs:default,spikingjelly:99.9%")
    ap.add_argument("--peers-python", type=Path, default=PEERS_PY)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "vgg16_speed.json")
    args = ap.parse_args(argv)
    if not args.peers_python.exists():
        raise SystemExit(f"no peers' python at {args.peers_python} (bench/peers_README.md sets it up)")
    doc = {"benchmark": "bench/vgg16_speed.py", "command": " ".join(["bench/vgg16_speed.py"] + sys.argv[1:]),
           "machine": machine_info(), "timesteps": args.timesteps}
    with tempfile.TemporaryDirectory() as tmp:
        net_path = args.net
        if net_path is None:
            net_path = Path(tmp) / "converted_vgg16.h5"
            doc["convert_command"] = " ".join(convert(args.model, net_path))
        net = load_network(net_path)
        x = load_dataset(TEST, limit=args.samples_long).x.reshape((args.samples_long, *net.input_shape))
        ev = time_eventsnn(net, x.astype(np.float32), args.timesteps, args.samples, args.reps)
        doc["eventsnn"] = ev
        print(f"eventsnn: default run ({ev['workers']} workers) {1000 * ev['marginal_s_per_image']:.1f} ms/image "
              f"marginal; one core {1000 * ev['one_core_s_per_image']:.1f} ms/image; "
              f"{ev['syn_ops_per_image'] / 1e6:.1f} M syn ops/image, mean rate {ev['mean_rate_per_neuron_step']:.4f}",
              flush=True)
        peers_out = Path(tmp) / "peers.json"
        subprocess.run([str(args.peers_python), str(ROOT / "bench" / "vgg16_peers_speed.py"),
                        "--model", str(args.model), "--timesteps", str(args.timesteps),
                        "--samples", str(args.peer_samples), "--batches", args.peer_batches,
                        "--threads", args.peer_threads, "--reps", str(args.reps), "--peers", args.peers,
                        "--out", str(peers_out)], check=True, cwd=ROOT)
        peers = json.loads(peers_out.read_text())
    doc["peers"] = peers
    rows = peers["rows"]
    threads = max(r["threads"] for r in rows)
    fast_b1 = min((r for r in rows if r["batch"] == 1 and r["threads"] == threads),
                  key=lambda r: r["seconds_per_image"])
    fast_any = min((r for r in rows if r["threads"] == threads), key=lambda r: r["seconds_per_image"])
    e = ev["marginal_s_per_image"]
    doc["summary"] = {
        "peer_threads": threads, "eventsnn_workers": ev["workers"],
        "fastest_peer_batch_1": fast_b1, "fastest_peer_any_batch": fast_any,
        "speedup_vs_batch_1": fast_b1["seconds_per_image"] / e,
        "speedup_vs_best_batch": fast_any["seconds_per_image"] / e}
    print(f"\nT = {args.timesteps}, {threads} threads / {ev['workers']} workers: eventsnn {1000 * e:.1f} ms/image; "
          f"fastest peer at batch 1 {fast_b1['peer']} {1000 * fast_b1['seconds_per_image']:.1f} ms "
          f"({doc['summary']['speedup_vs_batch_1']:.2f}x); best batch {fast_any['peer']} batch "
          f"{fast_any['batch']} {1000 * fast_any['seconds_per_image']:.1f} ms "
          f"({doc['summary']['speedup_vs_best_batch']:.2f}x)")
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
