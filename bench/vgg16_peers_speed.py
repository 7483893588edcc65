#!/usr/bin/env python
"""Time sinabs and SpikingJelly running the trained VGG16 they converted, per batch size and thread count.

The peers' half of ``bench/vgg16_speed.py`` (which starts it in the peers'
venv and puts its numbers beside eventsnn's). Converts ``--model`` exactly as
``bench/vgg16_peers.py`` does (same torch rebuild of the ONNX graph, the same
converters and calibration), then times ``--timesteps`` steps of direct
(analog) input on the first test images: for each peer, thread count and
batch size, one warm-up batch, then ``--reps`` timed passes over
``max(batch, --samples)`` images (rounded up to whole batches), median per
image. Nothing is hooked while timing (no spike or op counting), so the
peers pay only for their own simulation.

Writes a JSON (``--out``) with one row per (peer, threads, batch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conversion_peers import load_images, machine_info, reset  # noqa: E402
from vgg16_peers import MODEL, build_model, check_model, sinabs_snn, spikingjelly_snn  # noqa: E402


def convert(peer, model, x_cal, batch, input_shape):
    lib, mode = peer.split(":")
    if lib == "spikingjelly":
        mode_arg = float(mode) if mode[0].isdigit() and not mode.endswith("%") else mode
        return lib, spikingjelly_snn(model, x_cal, mode_arg)[0]
    if lib == "sinabs":
        return lib, sinabs_snn(model, batch, input_shape)[0]
    raise ValueError(f"unknown peer {peer!r}")


def time_passes(kind, snn, x, batch, timesteps, reps):
    """Median seconds per image over ``reps`` passes over ``x`` in batches of ``batch`` (after one warm-up batch)."""
    def one_pass(xs):
        with torch.inference_mode():
            for start in range(0, len(xs), batch):
                xb = xs[start: start + batch]
                reset(kind, snn, len(xb))
                for _ in range(timesteps):
                    snn(xb)

    one_pass(x[:batch])
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        one_pass(x)
        walls.append(time.perf_counter() - t0)
    return float(np.median(walls)) / len(x), walls


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--samples", type=int, default=16, help="images per timed pass (at least one batch)")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--calibration-samples", type=int, default=1000)
    ap.add_argument("--peers", default="sinabs:default,spikingjelly:99.9%")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    n_images = max(max(batches), args.samples)
    x_all, y_all = load_images("t10k")
    input_shape = tuple(x_all.shape[1:])
    model = build_model(args.model, input_shape)
    ann = check_model(model, args.model, x_all, y_all)
    if not ann["ok"]:
        print("ERROR: the torch model does not reproduce the ONNX outputs", file=sys.stderr)
        return 1
    x_cal, _ = load_images("train", args.calibration_samples)
    rows = []
    for peer in [p for p in args.peers.split(",") if p]:
        converted = None
        for batch in batches:
            if converted is None or peer.startswith("sinabs"):  # sinabs fixes its batch size at conversion
                converted = convert(peer, model, x_cal, batch, input_shape)
            kind, snn = converted
            n = -(-max(batch, args.samples) // batch) * batch
            for th in threads:
                torch.set_num_threads(th)
                load0 = os.getloadavg()[0]
                per_image, walls = time_passes(kind, snn, x_all[:n], batch, args.timesteps, args.reps)
                rows.append({"peer": peer, "threads": th, "batch": batch, "images": n,
                             "seconds_per_image": per_image, "walls_s": walls,
                             "loadavg": [load0, os.getloadavg()[0]]})
                print(f"{peer:20s} threads {th} batch {batch:4d}: {1000 * per_image:8.1f} ms/image "
                      f"({n} images x {args.reps}) [load {load0:.1f}]", flush=True)
    doc = {"benchmark": "bench/vgg16_peers_speed.py", "machine": machine_info(),
           "settings": {"model": str(args.model), "timesteps": args.timesteps, "batches": batches,
                        "threads": threads, "reps": args.reps, "n_images_max": n_images,
                        "torch": torch.__version__},
           "ann_check": {k: ann[k] for k in ("ok", "max_abs_logit_diff_vs_onnx") if k in ann},
           "rows": rows}
    Path(args.out).write_text(json.dumps(doc, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
