#!/usr/bin/env python
"""Where net B's time goes, layer by layer: the net cut after each layer, timed on one core.

Net B (``bench/peers_speed.py``: VGG16 on 32x32x3, IF, direct input, T = 100)
is rebuilt from a recorded peers run (``--recorded``: weight seed and the
per-layer gains for each spike rate). A feed-forward net cut after layer k
does exactly the work of the first k layers of the whole net (no layer feeds
back), so the difference between the cuts after k and k - 1 is layer k's
cost (its delivery into its own neurons, their updates and spikes). The last
row is the whole net (flatten and the dense layers together). One Simulator
per cut, reused over ``--samples`` samples (``order="layer"``, as ``eventsnn
run``), best of ``--reps``; counts (spikes, synaptic ops, neuron updates) per
sample beside each row.

Usage::

    python bench/net_b_layers.py --rates 0.01,0.05 --out bench/results/net_b_layers.json
    python bench/net_b_layers.py --report        # the markdown table (BENCHMARKS.md §8) from --out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine_info  # noqa: E402
from peers_speed import SPECS, load_inputs, recorded_net_b  # noqa: E402

from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.network import Network  # noqa: E402

RECORDED = ROOT / "bench" / "results" / "peers_speed_B_session5.json"


def time_cut(net, n_layers, xs, T, reps) -> dict:
    layers = net.layers[:n_layers]
    cut = net if n_layers == len(net.layers) else Network(
        input_shape=net.input_shape, layers=layers, encoding="direct", provenance={})
    cut.shapes()
    sim = Simulator(cut, timesteps=T, encoding="direct", order="layer")
    counts = {}
    for x in xs:  # untimed pass: kernels loaded, caches warm, counts per sample averaged
        sim.reset(x)
        sim.run()
        for k, v in sim.totals().items():
            counts[k] = counts.get(k, 0) + int(v) / len(xs)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for x in xs:
            sim.reset(x)
            sim.run()
        best = min(best, (time.perf_counter() - t0) / len(xs))
    return {"seconds_per_sample": best, **counts}


def report(doc: dict) -> str:
    """One markdown table: per layer, ms per sample and synaptic ops (giga per second) at each rate."""
    rates = doc["rates"]
    head = " | ".join(f"{100 * r['rate']:g} %: ms | syn ops (M) | Gops/s" for r in rates)
    lines = [f"| layer | {head} |", "|---|" + "---|---|---|" * len(rates)]
    for i, row in enumerate(rates[0]["rows"]):
        cells = []
        for r in rates:
            x = r["rows"][i]
            ms, ops = 1000 * x["seconds_per_sample_this_layer"], x["syn_ops_this_layer"]
            gops = f"{ops / x['seconds_per_sample_this_layer'] / 1e9:.1f}" if ops > 1e6 and ms > 0.5 else "–"
            cells.append(f"{ms:.2f} | {ops / 1e6:.1f} | {gops}")
        lines.append(f"| {row['layer']} | " + " | ".join(cells) + " |")
    cells = []
    for r in rates:
        whole = r["rows"][-1]["cumulative"]
        cells.append(f"**{1000 * whole['seconds_per_sample']:.2f}** | {whole['syn_ops'] / 1e6:.1f} | "
                     f"{whole['syn_ops'] / whole['seconds_per_sample'] / 1e9:.1f}")
    lines.append("| **whole net** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="0.01,0.05")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--recorded", type=Path, default=RECORDED)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "net_b_layers.json")
    ap.add_argument("--report", action="store_true", help="print the markdown table from the JSON at --out")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0
    rec = json.loads(args.recorded.read_text())
    T, spec = rec["args"]["T"], SPECS["B"]
    xs = load_inputs(spec, args.samples)
    doc = {"benchmark": "bench/net_b_layers.py", "machine": machine_info(), "timesteps": T,
           "samples": args.samples, "reps": args.reps, "recorded": os.path.relpath(args.recorded, ROOT), "rates": []}
    for rate in (float(r) for r in args.rates.split(",")):
        net = recorded_net_b(rec, rate)
        names = [layer.name for layer in net.layers]
        # a cut after every conv and pool layer (a net cannot end at flatten); the dense head
        # (flatten + fc1-fc3) is the last row, the whole net
        cuts = [k for k in range(1, len(names)) if net.layers[k - 1].kind not in ("flatten", "dense")]
        cuts.append(len(names))
        rows, prev = [], {"seconds_per_sample": 0.0, "spikes": 0, "syn_ops": 0, "updates": 0, "analog_macs": 0}
        print(f"rate {rate}: ms per sample on one core (T = {T}, {args.samples} samples, best of {args.reps})")
        for k in cuts:
            cur = time_cut(net, k, xs, T, args.reps)
            name = names[k - 1] if k < len(names) else "flatten + fc1-fc3"
            row = {"layer": name, "cumulative": cur,
                   **{f"{key}_this_layer": cur[key] - prev[key] for key in prev}}
            rows.append(row)
            print(f"  {name:>18}  cumulative {1000 * cur['seconds_per_sample']:7.2f}  this layer "
                  f"{1000 * row['seconds_per_sample_this_layer']:6.2f}  syn ops {row['syn_ops_this_layer']:>12,.0f}"
                  f"  updates {row['updates_this_layer']:>11,.0f}", flush=True)
            prev = cur
        doc["rates"].append({"rate": rate, "rows": rows})
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
