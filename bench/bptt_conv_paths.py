"""Where the BPTT trainer's spike-driven conv paths beat im2col + BLAS.

    python bench/bptt_conv_paths.py [--out bench/results/bptt_conv_paths.json]

For conv2 of ``conv_net`` (3x3, 14x14, 8 -> 16 and 16 -> 32 channels), T = 8, batch
32, on random 0/1 inputs of a given density: the forward sum (``conv_scatter_add``
against im2col @ W) and the weight gradient (``conv_weight_grad_add`` against
im2col^T @ dU), best of 5 with one thread. The thresholds ``SPARSE_FORWARD_MAX`` and
``SPARSE_WEIGHT_GRAD_MAX`` of :mod:`eventsnn.learn.bptt` were read off this table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import ROOT, machine_info  # noqa: E402

from eventsnn.learn import _layer_kernels  # noqa: E402
from eventsnn.learn.arch import conv_net  # noqa: E402
from eventsnn.learn.bptt import Model, _cols  # noqa: E402

DENSITIES = (0.02, 0.05, 0.1, 0.13, 0.2, 0.3)


def best_ms(f, reps=5):
    f()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bptt_conv_paths.json"))
    args = ap.parse_args(argv)
    info = machine_info()
    rng = np.random.default_rng(0)
    rows = []
    T, B = 8, 32
    for ci, co in ((8, 16), (16, 32)):
        model = Model(conv_net(channels=(ci, co)), add_bias=True)
        op = next(r[0] for p in model.pops for kind, *r in p.conns if kind == "op" and r[0].layer == "conv2")
        w = op.weight4(model.params)
        d = rng.standard_normal((T * B, 14, 14, co)).astype(np.float32)
        out = np.zeros((T * B, 14, 14, co), np.float32)
        dw = np.zeros(w.shape)
        for density in DENSITIES:
            s = (rng.random((T * B, 14, 14, ci)) < density).astype(np.float32)
            row = {"channels": [ci, co], "density": density,
                   "forward_scatter_ms": best_ms(lambda: _layer_kernels.conv_scatter_add(s, w, 1, 1, 1, 1, out)),
                   "forward_im2col_ms": best_ms(lambda: out.__iadd__(
                       (_cols(s, op) @ w.reshape(-1, co)).reshape(out.shape))),
                   "wgrad_scatter_ms": best_ms(lambda: _layer_kernels.conv_weight_grad_add(
                       s, d, 3, 3, 1, 1, 1, 1, dw)),
                   "wgrad_im2col_ms": best_ms(lambda: dw.__iadd__(
                       (_cols(s, op).T @ d.reshape(-1, co)).reshape(dw.shape)))}
            rows.append(row)
            print(f"{ci}->{co} density {density:.2f}: forward scatter {row['forward_scatter_ms']:.1f} ms, "
                  f"im2col {row['forward_im2col_ms']:.1f} ms; weight gradient scatter "
                  f"{row['wgrad_scatter_ms']:.1f} ms, im2col {row['wgrad_im2col_ms']:.1f} ms", flush=True)
    info["loadavg_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps({"machine": info, "T": T, "batch": B, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
