"""Training speed and peak memory: eventsnn's BPTT against snnTorch on CPU, same net,
T, batch size, optimiser and data. One fresh process per (library, T), so peak RSS is
that run's alone.

    python bench/bptt_speed_peers.py driver bench/results/bptt_speed_peers.json [--epoch] [--channels 8,16]

The driver runs the ``eventsnn`` rows with this interpreter and the ``snntorch`` rows
with /work/peers-venv/bin/python (snnTorch 1.0, torch CPU: never a dependency of
eventsnn), alternating the two, each with one thread. Net: conv3x3(8) pad 1 -> spiking
avg-pool 2 -> conv3x3(16) -> avg-pool 2 -> dense 10 (membrane readout), LIF leak 0.5,
subtract reset, pool neurons IF threshold 0.75, fast-sigmoid surrogate (slope 10),
Adam lr 1e-3, batch 32, direct input, Fashion-MNIST training images in file order.

Rows, per T in 2, 4, 8, 16, 32: the median wall and CPU time of ``BATCHES`` batches
after a warm-up batch (numba compilation, torch's first-call setup), the epoch time
they imply (60 000 images = 1875 batches) and the run's peak RSS. With ``--epoch``,
also one real epoch over all 60 000 training images at T = 8 for each library (wall
and CPU seconds): eventsnn through its trainer (``eventsnn.learn.train.train``, what
``eventsnn train-bptt`` runs, shuffled), snnTorch through the loop above in file order. Every number is measured; the load average is recorded with it.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/usr/share/datasets/fashion-mnist")
BATCHES = 30
B = 32
STEPS = (2, 4, 8, 16, 32)
EPOCH_T = 8
CHANNELS = (8, 16)  # the driver's --channels C1,C2 changes it (passed on to each row)


def data(n):
    """The first n training images (pixels / 255, (n, 28, 28, 1)) and labels, read from
    the IDX files directly so that both environments read the same bytes."""
    with gzip.open(DATA / "train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n]
    with gzip.open(DATA / "train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def eventsnn_step(T):
    from eventsnn.learn.arch import conv_net
    from eventsnn.learn.bptt import Model
    from eventsnn.learn.optim import Optimizer
    from eventsnn.learn.train import cross_entropy

    model = Model(conv_net(channels=CHANNELS), add_bias=True)
    opt = Optimizer("adam")

    def step(xb, yb):
        trace = model.forward(xb, T)
        _, g = cross_entropy(trace.out.astype(np.float64) / T, yb)
        grads, _ = model.backward(trace, g / T, "fast_sigmoid", 10.0)
        opt.step(model.params, grads, 1e-3)
    return step


def snntorch_step(T):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    torch.set_num_threads(1)
    sg = surrogate.fast_sigmoid(slope=10)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            c1, c2 = CHANNELS
            self.c1 = torch.nn.Conv2d(1, c1, 3, padding=1)
            self.c2 = torch.nn.Conv2d(c1, c2, 3, padding=1)
            self.fc = torch.nn.Linear(7 * 7 * c2, 10)
            self.l1 = snn.Leaky(beta=0.5, threshold=1.0, spike_grad=sg, reset_mechanism="subtract")
            self.p1 = snn.Leaky(beta=1.0, threshold=0.75, spike_grad=sg, reset_mechanism="subtract")
            self.l2 = snn.Leaky(beta=0.5, threshold=1.0, spike_grad=sg, reset_mechanism="subtract")
            self.p2 = snn.Leaky(beta=1.0, threshold=0.75, spike_grad=sg, reset_mechanism="subtract")
            self.lo = snn.Leaky(beta=0.5, threshold=1.0, spike_grad=sg, reset_mechanism="none")

        def forward(self, xb):
            m = [n.init_leaky() for n in (self.l1, self.p1, self.l2, self.p2, self.lo)]
            for _ in range(T):
                s, m[0] = self.l1(self.c1(xb), m[0])
                s, m[1] = self.p1(torch.nn.functional.avg_pool2d(s, 2), m[1])
                s, m[2] = self.l2(self.c2(s), m[2])
                s, m[3] = self.p2(torch.nn.functional.avg_pool2d(s, 2), m[3])
                _, m[4] = self.lo(self.fc(s.flatten(1)), m[4])
            return m[4]

    net = Net()
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def step(xb, yb):
        xb = torch.from_numpy(np.ascontiguousarray(xb.transpose(0, 3, 1, 2)))
        loss = torch.nn.functional.cross_entropy(net(xb) / T, torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def eventsnn_epoch(T, x, y):
    """One epoch through the trainer users run (``eventsnn train-bptt``: shuffled batches,
    progress statistics), no validation split, the same settings as the rows."""
    from eventsnn.learn.arch import conv_net
    from eventsnn.learn.bptt import Model
    from eventsnn.learn.train import TrainConfig, train

    model = Model(conv_net(channels=CHANNELS), add_bias=True)
    eventsnn_step(T)(x[:B], y[:B])  # compile outside the timed epoch
    config = TrainConfig(timesteps=T, epochs=1, batch_size=B, lr=1e-3, optimizer="adam", schedule="constant",
                         surrogate="fast_sigmoid", alpha=10.0, val_fraction=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = train(model, x, y, config)
    return time.perf_counter() - t0, time.process_time() - c0, summary["history"][0]["train_acc"]


def one(lib, T, images):
    """Run ``images`` // B batches (the first is the warm-up) and print one JSON row."""
    x, y = data(images)
    if lib == "eventsnn" and images >= 60000:
        wall, cpu, acc = eventsnn_epoch(T, x, y)
        print(json.dumps({"library": lib, "T": T, "batch": B, "channels": list(CHANNELS), "batches": len(x) // B, "epoch_wall_s": wall,
                          "epoch_cpu_s": cpu, "train_acc": acc, "loadavg_end": os.getloadavg()[0],
                          "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    step = (eventsnn_step if lib == "eventsnn" else snntorch_step)(T)
    wall, cpu = [], []
    for i in range(len(x) // B):
        t0, c0 = time.perf_counter(), time.process_time()
        step(x[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    row = {"library": lib, "T": T, "batch": B, "channels": list(CHANNELS), "batches": len(wall), "first_batch_s": wall[0],
           "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "loadavg_end": os.getloadavg()[0]}
    if images >= 60000:
        row.update(epoch_wall_s=float(np.sum(wall)), epoch_cpu_s=float(np.sum(cpu)))
    else:
        row.update(s_per_batch=float(np.median(wall[1:])), cpu_s_per_batch=float(np.median(cpu[1:])),
                   implied_epoch_s=float(np.median(wall[1:])) * (60000 // B))
    print(json.dumps(row))


def driver(out, epoch=False, steps=STEPS):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_info

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    peers = {"eventsnn": sys.executable, "snntorch": "/work/peers-venv/bin/python"}
    jobs = [(lib, T, B * (BATCHES + 1)) for T in steps for lib in peers]
    if epoch:
        jobs += [(lib, EPOCH_T, 60000) for lib in peers]
    info = machine_info()
    rows = []
    for lib, T, images in jobs:
        r = subprocess.run([peers[lib], __file__, "one", lib, str(T), str(images), ",".join(map(str, CHANNELS))],
                           capture_output=True,
                           text=True, env=env, cwd=ROOT, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    info["loadavg_end"] = list(os.getloadavg())
    Path(out).write_text(json.dumps({"machine": info, "batches_timed": BATCHES, "channels": list(CHANNELS), "rows": rows},
                                    indent=1, default=float))


if __name__ == "__main__":
    if sys.argv[1] == "one":
        CHANNELS = tuple(int(c) for c in sys.argv[5].split(","))
        one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        import argparse

        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument("mode", choices=["driver"])
        ap.add_argument("out")
        ap.add_argument("--epoch", action="store_true", help="also one real epoch at T = 8 per library")
        ap.add_argument("--channels", default="8,16", help="the two conv layers' channels")
        ap.add_argument("--steps", default=",".join(map(str, STEPS)), help="the T of the per-batch rows")
        a = ap.parse_args()
        CHANNELS = tuple(int(c) for c in a.channels.split(","))
        driver(a.out, a.epoch, tuple(int(t) for t in a.steps.split(",")))
