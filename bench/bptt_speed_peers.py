"""Training speed and peak memory: eventsnn's BPTT against snnTorch on CPU, same net,
T and batch size. One fresh process per (library, T), so peak RSS is that run's.

    python bench/bptt_speed_peers.py driver bench/results/bptt_speed_peers.json

(the driver runs ``eventsnn`` rows with this interpreter and ``snntorch`` rows
with /work/peers-venv/bin/python, both with one thread). Net: conv3x3(8) pad 1 ->
spiking avg-pool 2 -> conv3x3(16) -> avg-pool 2 -> dense 10 (membrane readout),
LIF leak 0.5, subtract reset, fast-sigmoid surrogate (slope 10), Adam, batch 32,
28x28 Fashion-MNIST images (the shipped sample). Time per batch excludes the
first (warm-up, compilation) batch.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCHES = 8
B = 32


def data():
    z = np.load(ROOT / "data" / "fashion-mnist-sample.npz")
    x = (z["x"][:B * (BATCHES + 1)].astype(np.float32) / 255.0)[..., None]
    return x, z["y"][:B * (BATCHES + 1)].astype(np.int64)


def run_eventsnn(T):
    from eventsnn.learn.arch import conv_net
    from eventsnn.learn.bptt import Model
    from eventsnn.learn.optim import Optimizer
    from eventsnn.learn.train import cross_entropy

    x, y = data()
    model = Model(conv_net(channels=(8, 16)), add_bias=True)
    opt = Optimizer("adam")
    times = []
    for i in range(BATCHES + 1):
        t0 = time.perf_counter()
        xb, yb = x[i * B:(i + 1) * B], y[i * B:(i + 1) * B]
        trace = model.forward(xb, T)
        loss, g = cross_entropy(trace.out.astype(np.float64) / T, yb)
        grads, _ = model.backward(trace, g / T, "fast_sigmoid", 10.0)
        opt.step(model.params, grads, 1e-3)
        times.append(time.perf_counter() - t0)
    return times


def run_snntorch(T):
    import snntorch as snn
    import torch
    from snntorch import surrogate

    torch.set_num_threads(1)
    x, y = data()
    x = torch.tensor(x).permute(0, 3, 1, 2)
    y = torch.tensor(y)
    sg = surrogate.fast_sigmoid(slope=10)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.fc = torch.nn.Linear(7 * 7 * 16, 10)
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
    times = []
    for i in range(BATCHES + 1):
        t0 = time.perf_counter()
        xb, yb = x[i * B:(i + 1) * B], y[i * B:(i + 1) * B]
        loss = torch.nn.functional.cross_entropy(net(xb) / T, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def one(lib, T):
    times = run_eventsnn(T) if lib == "eventsnn" else run_snntorch(T)
    print(json.dumps({"library": lib, "T": T, "batch": B, "s_per_batch": float(np.median(times[1:])),
                      "first_batch_s": times[0],
                      "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def driver(out, steps=(2, 4, 8, 16)):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine_info

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows = []
    for T in steps:
        for lib, py in (("eventsnn", sys.executable), ("snntorch", "/work/peers-venv/bin/python")):
            r = subprocess.run([py, __file__, "one", lib, str(T)], capture_output=True, text=True, env=env,
                               cwd=ROOT, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    Path(out).write_text(json.dumps({"machine": machine_info(), "batches_timed": BATCHES, "rows": rows},
                                    indent=1, default=float))


if __name__ == "__main__":
    if sys.argv[1] == "one":
        one(sys.argv[2], int(sys.argv[3]))
    else:
        driver(sys.argv[2])
