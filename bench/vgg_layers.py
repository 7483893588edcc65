#!/usr/bin/env python
"""Issue 5: the engine against the bare scatter limit on each conv layer of network B.

Network B of ``bench/peers_speed.py`` (VGG16 on 32x32x3, avg pools, IF,
T = 100, direct input, weights scaled to a target spike rate with the gains
cached in ``bench/out/peers_gains.json``) is run once with every spike
recorded. Then, for each conv layer with spiking input, on exactly the spikes
that reached it in that run:

* **engine**: a one-layer network (the same weights and IF neurons, whose
  spikes go nowhere) driven by those spikes as ``input_spikes``:
  ``Simulator.run()`` — queue, delivery, touched-neuron updates, spike
  records;
* **bare**: ``scatter_cl`` of ``bench/engine_speed.py`` over the same source
  events (channel-last 3x3 scatter into a float32 array, nothing else), on
  the same weights in the bare kernel's (kh, kw, C_in, C_out) layout, 64-byte
  aligned like the engine's arrays.

Both count the same synaptic operations (checked). Each time is the best of
``--reps``; the ratio engine / bare is the engine's share of the bare limit
*for that layer's geometry and weight size* (the deep layers' 4.7-9.4 MB
weights do not fit in L2, for either kernel).

Usage: ``python bench/vgg_layers.py [--rate 0.05] [--reps 5]``; writes
``bench/results/vgg_layers.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from engine_speed import scatter_cl  # noqa: E402
from machine import machine_info, table  # noqa: E402
import peers_speed as ps  # noqa: E402
from eventsnn.engine.layout import aligned_zeros  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402


def best_time(fn, reps: int) -> float:
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=0.05, help="target spike rate (a cached gain set)")
    ap.add_argument("--sample", type=int, default=0, help="input sample index")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "vgg_layers.json")
    args = ap.parse_args(argv)

    info = machine_info()
    spec = ps.SPECS["B"]
    key = f"B|seed5|T100|cal4|rate{args.rate:g}"
    cache = json.loads((ROOT / "bench" / "out" / "peers_gains.json").read_text())
    if key not in cache:
        print(f"no cached gains {key!r}: run bench/peers_speed.py first", file=sys.stderr)
        return 1
    weights = ps.scale_weights(ps.base_weights(spec, 6), cache[key]["gains"], False)
    net = ps.build_net(spec, weights)
    x = ps.load_inputs(spec, args.sample + 1)[args.sample]
    T = 100
    full = Simulator(net, timesteps=T, encoding="direct", record_spikes=True)
    full.reset(x)
    full.run()
    shapes = net.shapes()

    rows, out = [], []
    for layer in net.layers:
        if layer.kind != "conv2d" or layer.inputs[0] == "input":
            continue
        src = layer.inputs[0]
        times, idx = full.recorded_spikes(src)
        h, w, ci = shapes[src]
        co = layer.weight.shape[3]
        one = Network(input_shape=(h, w, ci), encoding="poisson", layers=[
            Layer(layer.name, "conv2d", weight=layer.weight, padding=layer.padding,
                  neuron=Neuron("if", 1.0, "subtract"))])
        sim = Simulator(one, timesteps=T, encoding="poisson")
        zeros = np.zeros((h, w, ci), np.float32)

        def run_engine():
            sim.reset(zeros, input_spikes=(times, idx))
            t0 = time.perf_counter()
            sim.run()
            return time.perf_counter() - t0

        run_engine()  # compile / warm-up
        t_engine = min(run_engine() for _ in range(args.reps))
        ops_engine = int(sim.per_layer()["syn_ops"].sum())
        assert np.array_equal(sim.spike_counts(layer.name), full.spike_counts(layer.name)), layer.name

        wflat = aligned_zeros(layer.weight.size, np.float32)
        wflat[:] = layer.weight.reshape(-1)
        mem = aligned_zeros(h * w * co, np.float32)
        ev = np.ascontiguousarray(idx, np.int32)
        scatter_cl(ev, min(64, ev.size), 1, wflat, mem, h, w, ci, co)  # compile / warm-up
        ops_bare = int(scatter_cl(ev, ev.size, 1, wflat, mem, h, w, ci, co))
        t_bare = best_time(lambda: scatter_cl(ev, ev.size, 1, wflat, mem, h, w, ci, co), args.reps)
        assert ops_bare == ops_engine, (layer.name, ops_bare, ops_engine)
        r = {"layer": layer.name, "input": [h, w, ci], "c_out": int(co), "weights_mb": layer.weight.nbytes / 2 ** 20,
             "events": int(idx.size), "syn_ops": ops_engine, "engine_s": t_engine, "bare_s": t_bare,
             "engine_gops": ops_engine / t_engine / 1e9, "bare_gops": ops_bare / t_bare / 1e9,
             "ratio": t_bare / t_engine}
        out.append(r)
        rows.append([r["layer"], f"{h}x{w}x{ci}", co, f"{r['weights_mb']:.2f}", r["events"], f"{r['syn_ops']:.3g}",
                     f"{1e3 * t_engine:.2f}", f"{r['engine_gops']:.2f}", f"{1e3 * t_bare:.2f}",
                     f"{r['bare_gops']:.2f}", f"{100 * r['ratio']:.0f} %"])
    tot_e = sum(r["engine_s"] for r in out)
    tot_b = sum(r["bare_s"] for r in out)
    tot_ops = sum(r["syn_ops"] for r in out)
    rows.append(["all conv layers", "", "", "", sum(r["events"] for r in out), f"{tot_ops:.3g}",
                 f"{1e3 * tot_e:.1f}", f"{tot_ops / tot_e / 1e9:.2f}", f"{1e3 * tot_b:.1f}",
                 f"{tot_ops / tot_b / 1e9:.2f}", f"{100 * tot_b / tot_e:.0f} %"])
    table(["layer", "input", "C_out", "weights MB", "input spikes", "syn ops", "engine ms", "engine Gops/s",
           "bare ms", "bare Gops/s", "engine/bare"], rows,
          title=f"Network B (VGG16 32x32, target rate {args.rate:g}, sample {args.sample}, T={T}): "
                f"each conv layer on its recorded input spikes, best of {args.reps}")
    import os
    info["loadavg_end"] = list(os.getloadavg())
    doc = {"benchmark": "bench/vgg_layers.py", "machine": info, "args": {k: str(v) for k, v in vars(args).items()},
           "layers": out, "total": {"engine_s": tot_e, "bare_s": tot_b, "syn_ops": tot_ops, "ratio": tot_b / tot_e}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
