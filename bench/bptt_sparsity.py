"""Could a sparse backward pass pay here? (Perez-Nieves & Goodman 2021 skip neurons
whose surrogate is zero.) The three surrogates of eventsnn.learn.surrogates are
never exactly zero, so nothing can be skipped without changing the gradient; this
measures how much a truncated surrogate (sigma' set to 0 below a fraction of its
peak) would let a sparse pass skip, on the trained net of bench/bptt_fashion.py.

    python bench/bptt_sparsity.py bench/results/bptt_fashion.h5 bench/results/bptt_sparsity.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from eventsnn.datasets import load_dataset
from eventsnn.io import load_network
from eventsnn.learn.bptt import Model

net = load_network(sys.argv[1])
T = int(net.provenance.get("bptt_timesteps", 6))
model = Model(net)
x = load_dataset("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", limit=256).x
trace = model.forward(x, T)
rows = {}
for cut in (0.01, 0.1):
    # fast sigmoid k = 10: sigma'/peak = 1/(1+10|x|)^2 >= cut  <=>  |x| <= (cut^-0.5 - 1) / 10
    band = (cut ** -0.5 - 1) / 10
    inside = total = 0
    for p in model.pops:
        if not p.spiking:
            continue
        d = np.abs(trace.U[p.name] - p.thr)
        inside += int((d <= band).sum())
        total += d.size
    rows[f"fast_sigmoid >= {cut} of peak"] = {"band": band, "fraction_needed": inside / total}
result = {"net": sys.argv[1], "T": T, "samples": len(x), "exactly_zero_fraction": 0.0, "truncated": rows}
open(sys.argv[2], "w").write(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
