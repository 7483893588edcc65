#!/usr/bin/env python
"""Issue 5: is a converted net run event by event (eventsnn) faster than snnTorch,
sinabs, SpikingJelly or a plain PyTorch loop, by how much, and at what sparsity?

Two networks, both IF neurons (threshold 1, reset by subtraction, no bias),
direct (analog) input, T = 100 steps, random He-normal weights scaled by a
per-layer gain so that every weighted layer spikes at a target mean rate
(1 %, 5 %, 15 % per neuron per step):

* A: 28x28x1 -> conv3x3(32) IF -> avgpool2 IF -> conv3x3(64) IF -> avgpool2 IF
  -> flatten -> dense(10) IF (Fashion-MNIST samples as input);
* B: VGG16 on 32x32x3: 13 conv3x3 (pad 1) with an avgpool2 IF after each of
  the 5 blocks, flatten, dense 512-512-10 (input: Fashion-MNIST padded to
  32x32 and repeated over 3 channels; there is no CIFAR in the repository).

Each network is built once as an eventsnn ``Network``; its weights and inputs
go to ``bench/out/peers_data.npz`` and the torch side
(``bench/peers_torch.py``, run with ``bench/.venv-peers/bin/python``) builds
the identical network in every peer. This script:

1. calibrates the gains (cached in ``bench/out/peers_gains.json``),
2. times eventsnn (batch 1, 1 thread; and 2 Simulators on 2 threads),
3. runs eventsnn on the agreement samples with weights/inputs quantised to
   multiples of 2^-8 and unquantised, keeping every neuron's spike count,
4. launches the torch side, which times the peers and checks its spike counts
   against eventsnn's neuron by neuron,
5. merges everything, prints tables and writes ``bench/results/peers_speed.json``
   (``peers_speed_quick.json`` with ``--quick``).

Usage: ``bench/run_peers.sh [--quick]`` or ``python bench/peers_speed.py [--quick]``.
See bench/peers_README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, table  # noqa: E402
from peers_common import scale_weights, weight_hash  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402
from eventsnn.opcount import layer_macs  # noqa: E402

OUT_DIR = ROOT / "bench" / "out"
VENV_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"
# eventsnn's stand-in for sinabs' unbounded MultiSpike (floor(V) spikes per step): the
# largest max_spikes a file may hold; never reached at the rates measured here.
MULTI_SPIKES = 1024

# ----------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------

VGG16 = (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A")
SPECS = {
    "A": {"input_shape": (28, 28, 1), "convs": (32, "A", 64, "A"), "dense": (10,),
          "desc": "28x28x1 -> conv3x3(32,pad1) IF -> avgpool2 IF -> conv3x3(64,pad1) IF -> avgpool2 IF "
                  "-> flatten -> dense(10) IF"},
    "B": {"input_shape": (32, 32, 3), "convs": VGG16, "dense": (512, 512, 10),
          "desc": "VGG16 on 32x32x3: 13 conv3x3(pad1) IF, avgpool2 IF after each of the 5 blocks "
                  "(64,64 | 128,128 | 256x3 | 512x3 | 512x3), flatten, dense 512-512-10 IF"},
}


def items_of(spec) -> list:
    """The layer list as dicts: name, kind, channels (weighted layers) and weight shape."""
    h, w, c = spec["input_shape"]
    items, nconv, npool = [], 0, 0
    for v in spec["convs"]:
        if v == "A":
            npool += 1
            items.append({"name": f"pool{npool}", "kind": "avgpool2d"})
            h, w = h // 2, w // 2
        else:
            nconv += 1
            items.append({"name": f"conv{nconv}", "kind": "conv2d", "wshape": (3, 3, c, v), "fan_in": 9 * c})
            c = v
    items.append({"name": "flat", "kind": "flatten"})
    n = h * w * c
    for j, v in enumerate(spec["dense"], start=1):
        items.append({"name": f"fc{j}", "kind": "dense", "wshape": (n, v), "fan_in": n})
        n = v
    return items


def weighted(items) -> list:
    return [i for i, it in enumerate(items) if it["kind"] in ("conv2d", "dense")]


def base_weights(spec, seed) -> list:
    """He-normal weights (eventsnn layout: conv (kh, kw, C_in, C_out), dense (N_in, N_out), rows HWC)."""
    rng = np.random.default_rng(seed)
    out = []
    for it in items_of(spec):
        if "wshape" in it:
            out.append((rng.standard_normal(it["wshape"]) * math.sqrt(2.0 / it["fan_in"])).astype(np.float32))
    return out


def make_layer(it, weight=None) -> Layer:
    if it["kind"] == "conv2d":
        return Layer(it["name"], "conv2d", weight=weight, padding=(1, 1), neuron=Neuron("if", 1.0, "subtract"))
    if it["kind"] == "dense":
        return Layer(it["name"], "dense", weight=weight, neuron=Neuron("if", 1.0, "subtract"))
    if it["kind"] == "avgpool2d":
        return Layer(it["name"], "avgpool2d", kernel=(2, 2), neuron=Neuron("if", 1.0, "subtract"))
    return Layer(it["name"], "flatten")


def build_net(spec, weights, items=None, input_shape=None, encoding="direct") -> Network:
    """The whole net (or a segment ``items`` fed from ``input_shape``) with the given weights."""
    all_items = items_of(spec)
    widx = weighted(all_items)
    wmap = {all_items[i]["name"]: w for i, w in zip(widx, weights)}
    items = all_items if items is None else items
    layers = [make_layer(it, wmap.get(it["name"])) for it in items]
    net = Network(input_shape=tuple(input_shape or spec["input_shape"]), layers=layers, encoding=encoding,
                  provenance={"bench": "peers_speed", "spec": spec["desc"]})
    net.shapes()
    return net


def recorded_net_b(rec: dict, rate: float) -> Network:
    """Net B exactly as the recorded run ``rec`` (this script's JSON) built it for spike rate
    ``rate``: the same weight seed and calibrated per-layer gains."""
    spec = SPECS["B"]
    gains = next(r["gains"] for r in rec["nets"]["B"]["rates"] if r["target"] == rate)
    return build_net(spec, scale_weights(base_weights(spec, rec["args"]["seed"] + 1), gains, False))


def load_inputs(spec, n) -> np.ndarray:
    """n input samples (N, H, W, C), float32 multiples of 2^-8 in [0, 1): pixel / 256."""
    d = np.load(ROOT / "data" / "fashion-mnist-sample.npz")
    x = d["x"][:n].astype(np.float32) / 256.0  # exact multiples of 2^-8
    x = x[..., None]
    h, w, c = spec["input_shape"]
    if (h, w) != x.shape[1:3]:
        ph, pw = (h - x.shape[1]) // 2, (w - x.shape[2]) // 2
        x = np.pad(x, ((0, 0), (ph, h - x.shape[1] - ph), (pw, w - x.shape[2] - pw), (0, 0)))
    if c != 1:
        x = np.repeat(x, c, axis=3)
    return np.ascontiguousarray(x, np.float32)


# ----------------------------------------------------------------------------
# gain calibration (layer by layer, replaying the spikes of the layer before)
# ----------------------------------------------------------------------------

def _run_segment(net, feeds, T, record_last):
    """Run a segment on each feed; return the last layer's mean rate and (optionally) its spikes."""
    enc = "direct" if feeds[0][0] == "direct" else "poisson"
    sim = Simulator(net, timesteps=T, encoding=enc, record_spikes=record_last)
    last = net.layers[-1].name
    shape_in = net.shapes()["input"]
    spikes, rates = [], []
    for kind, data in feeds:
        if kind == "direct":
            sim.reset(data)
        else:
            sim.reset(np.zeros(shape_in, np.float32), input_spikes=data)
        sim.run()
        p = sim.plan.pop_index[last]
        rates.append(sim.spikes_per_step[p].sum() / (sim.neurons[p] * T))
        if record_last:
            t, i = sim.recorded_spikes(last)
            spikes.append(("spikes", (t, i)))
    return float(np.mean(rates)), spikes


def calibrate(spec, base, xs, target, T, max_iter=8, tol=0.03):
    """Per weighted layer gains so that each weighted layer spikes at ``target`` (mean over xs).

    Layer k is calibrated on a segment net (the pool/flatten layers after layer
    k-1, then layer k) fed with the recorded spikes of layer k-1, so each try
    costs one layer, not the whole prefix. The update is a secant step on
    log(rate) vs log(gain) (a multiplicative step, clipped to [1/8, 8], until
    two points exist).
    """
    items = items_of(spec)
    widx = weighted(items)
    shapes = build_net(spec, base).shapes()
    gains = [1.0] * len(widx)
    feeds = [("direct", x) for x in xs]
    log = []
    for k, wi in enumerate(widx):
        start = widx[k - 1] + 1 if k else 0
        seg = items[start: wi + 1]
        in_shape = spec["input_shape"] if k == 0 else shapes[items[start - 1]["name"]]
        hist = []
        g = gains[k]
        for _ in range(max_iter):
            gains[k] = g
            net = build_net(spec, scale_weights(base, gains, False), seg, in_shape,
                            "direct" if k == 0 else "poisson")
            r, _ = _run_segment(net, feeds, T, False)
            hist.append((g, r))
            if r > 0 and abs(r / target - 1) < tol:
                break
            pts = [(math.log(a), math.log(b)) for a, b in hist if b > 0]
            if r <= 0:
                g *= 8.0
            elif len(pts) >= 2 and pts[-1][0] != pts[-2][0]:
                slope = (pts[-1][1] - pts[-2][1]) / (pts[-1][0] - pts[-2][0])
                slope = min(max(slope, 0.3), 6.0)
                g = math.exp(pts[-1][0] + (math.log(target) - pts[-1][1]) / slope)
            else:
                g *= float(np.clip(target / r, 1 / 8, 8))
        gains[k] = g = hist[-1][0] if hist[-1][1] > 0 and abs(hist[-1][1] / target - 1) < tol else \
            min(hist, key=lambda p: abs(math.log(max(p[1], 1e-9) / target)))[0]
        net = build_net(spec, scale_weights(base, gains, False), seg, in_shape, "direct" if k == 0 else "poisson")
        r, feeds = _run_segment(net, feeds, T, True)
        log.append({"layer": items[wi]["name"], "gain": g, "rate": r, "tries": len(hist)})
    return gains, log


# ----------------------------------------------------------------------------
# eventsnn: timings, counts
# ----------------------------------------------------------------------------

def ev_counts(net, xs, T):
    """Per-sample eventsnn results: spike counts of every neuron (HWC), totals."""
    sim = Simulator(net, timesteps=T, encoding="direct")
    layers = sim.layer_names[1:]
    counts = {ln: [] for ln in layers}
    spikes, ops, macs = [], [], []
    for x in xs:
        sim.reset(x)
        sim.run()
        for ln in layers:
            counts[ln].append(sim.spike_counts(ln))
        tot = sim.per_layer()
        spikes.append(tot["spikes"][1:].tolist())
        ops.append(tot["syn_ops"][1:].tolist())
        macs.append(tot["analog_macs"][1:].tolist())
    return {"layers": layers, "counts": {k: np.stack(v).astype(np.int32) for k, v in counts.items()},
            "spikes": spikes, "syn_ops": ops, "analog_macs": macs, "neurons": sim.neurons[1:].tolist()}


def ev_timings(net, xs, T, reps, threads=(1, 2), order="layer"):
    """eventsnn time per sample: 1 thread (reset and run timed apart) and n Simulators on n threads.

    ``order``: the Simulator's event order ("layer": each layer for all its steps,
    bit-identical to "time" and faster on deep nets; see eventsnn.engine.simulator)."""
    sims = [Simulator(net, timesteps=T, encoding="direct", order=order) for _ in range(max(threads))]
    for s in sims:  # warm-up
        s.reset(xs[0])
        s.run()
    n = len(xs)
    res = {"samples": n, "reps": reps, "order": order}
    run_t, all_t, per_sample = [], [], np.zeros((reps, n))
    for r in range(reps):
        gc.collect()
        tr = ta = 0.0
        for i, x in enumerate(xs):
            t0 = time.perf_counter()
            sims[0].reset(x)
            t1 = time.perf_counter()
            sims[0].run()
            t2 = time.perf_counter()
            tr += t2 - t1
            ta += t2 - t0
            per_sample[r, i] = t2 - t1
        run_t.append(tr / n)
        all_t.append(ta / n)
    res["thr1_run"] = _stats(run_t)
    res["thr1_reset_run"] = _stats(all_t)
    res["run_s_per_sample_index"] = np.median(per_sample, axis=0).tolist()
    for nt in threads:
        if nt == 1:
            continue
        parts = [list(range(k, n, nt)) for k in range(nt)]

        def work(k):
            s = sims[k]
            for i in parts[k]:
                s.reset(xs[i])
                s.run()

        wall = []
        with cf.ThreadPoolExecutor(nt) as ex:
            list(ex.map(work, range(nt)))  # warm the pool
            for _ in range(reps):
                gc.collect()
                t0 = time.perf_counter()
                list(ex.map(work, range(nt)))
                wall.append((time.perf_counter() - t0) / n)
        res[f"thr{nt}_reset_run"] = _stats(wall)
    return res


def _stats(ts) -> dict:
    a = np.asarray(ts, float)
    return {"median_s": float(np.median(a)), "min_s": float(a.min()), "max_s": float(a.max()), "all_s": a.tolist()}


def to_torch_layout(w: np.ndarray, prev_shape) -> np.ndarray:
    """eventsnn -> torch: conv (kh, kw, Ci, Co) -> (Co, Ci, kh, kw); dense (N_in, N_out) -> (N_out, N_in)
    with the columns of a dense after a flatten of an (H, W, C) map reordered from HWC to CHW."""
    if w.ndim == 4:
        return np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    h, wd, c = prev_shape
    o = w.shape[1]
    return np.ascontiguousarray(w.reshape(h, wd, c, o).transpose(3, 2, 0, 1).reshape(o, c * h * wd))


def flat_fanout(items, shapes) -> dict:
    """Fan-out per source spike of each receiving layer, ignoring borders: kh*kw*C_out, 1 (pool 2x2/2), N_out."""
    out = {}
    for it in items:
        if it["kind"] == "conv2d":
            out[it["name"]] = 9 * it["wshape"][3]
        elif it["kind"] == "dense":
            out[it["name"]] = it["wshape"][1]
        elif it["kind"] == "avgpool2d":
            out[it["name"]] = 1
    return out


# ----------------------------------------------------------------------------
# reporting helpers
# ----------------------------------------------------------------------------

def ms(s) -> str:
    return f"{s * 1e3:.2f}" if s < 10 else f"{s * 1e3:.0f}"


def fmt_stats(st) -> str:
    return f"{ms(st['median_s'])} [{ms(st['min_s'])}-{ms(st['max_s'])}]"


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: T=25, 3 reps, few samples, small batches")
    ap.add_argument("--nets", default="A,B", help="networks to run (A, B)")
    ap.add_argument("--rates", default="0.01,0.05,0.15", help="target spike rates per neuron per step")
    ap.add_argument("--T", type=int, default=None, help="time steps (default 100; quick 25)")
    ap.add_argument("--reps", type=int, default=None, help="timed runs per configuration (default 5; quick 3)")
    ap.add_argument("--ev-samples", default=None, help="samples timed in eventsnn, per net 'A:32,B:8' (quick 4)")
    ap.add_argument("--agree-samples", default=None, help="samples for the agreement check, 'A:32,B:8' (quick 4)")
    ap.add_argument("--batches", default=None, help="peer batch sizes per net, 'A:1/8/32,B:1/8/32' (quick A:1/8,B:1/4)")
    ap.add_argument("--threads", default="1,2", help="thread counts (torch; eventsnn uses 1 and the largest)")
    ap.add_argument("--peers", default="torch,snntorch,sinabs,sj_m,sj_s", help="timed peers")
    ap.add_argument("--peer-rates", default=None,
                    help="rates at which the peers are timed at every batch size, per net, e.g. "
                         "'A:0.01/0.05/0.15,B:0.05' (the default; quick: all). At the other rates they are timed "
                         "at the smallest batch only: their dense work does not depend on the rate")
    ap.add_argument("--cal-samples", type=int, default=None, help="samples for the gain calibration (4; quick 1)")
    ap.add_argument("--seed", type=int, default=5, help="weight seed (net B uses seed+1)")
    ap.add_argument("--no-torch", action="store_true", help="eventsnn side only")
    ap.add_argument("--ev-order", choices=["time", "layer"], default="layer",
                    help="eventsnn's event order for the timings (identical spikes either way)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = ap.parse_args(argv)
    q = args.quick
    args.T = args.T or (25 if q else 100)
    args.reps = args.reps if args.reps is not None else (3 if q else 5)
    args.cal_samples = args.cal_samples or (1 if q else 4)

    def per_net(s, default):
        d = dict(default)
        for part in (s.split(",") if s else []):
            k, v = part.split(":")
            d[k.strip()] = v
        return d

    args.ev_samples = {k: int(v) for k, v in per_net(args.ev_samples, {"A": 4, "B": 4} if q else {"A": 32, "B": 8}).items()}
    args.agree_samples = {k: int(v) for k, v in
                          per_net(args.agree_samples, {"A": 4, "B": 4} if q else {"A": 32, "B": 8}).items()}
    args.batches = {k: [int(b) for b in str(v).split("/")] for k, v in
                    per_net(args.batches, {"A": "1/8", "B": "1/4"} if q else {"A": "1/8/32", "B": "1/8/32"}).items()}
    args.nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    args.rates = [float(r) for r in args.rates.split(",")]
    args.threads = [int(t) for t in args.threads.split(",")]
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    all_rates = "/".join(f"{r:g}" for r in args.rates)
    args.peer_rates = {k: [float(r) for r in str(v).split("/")] for k, v in
                       per_net(args.peer_rates, {"A": all_rates, "B": all_rates if q else "0.05"}).items()}
    args.out = args.out or ROOT / "bench" / "results" / ("peers_speed_quick.json" if q else "peers_speed.json")
    return args


def get_gains(name, spec, base, xs, rate, args, cache):
    key = f"{name}|seed{args.seed}|T{args.T}|cal{args.cal_samples}|rate{rate:g}"
    if key in cache:
        return cache[key]["gains"], cache[key]["log"], 0.0
    t0 = time.perf_counter()
    gains, log = calibrate(spec, base, xs[: args.cal_samples], rate, args.T)
    cache[key] = {"gains": gains, "log": log, "seconds": time.perf_counter() - t0}
    return gains, log, cache[key]["seconds"]


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    info = machine_info()
    mode = "quick" if args.quick else "full"
    print(f"eventsnn vs snnTorch / sinabs / SpikingJelly / plain torch ({mode}) - {info['date']}")
    print(f"{info['cpu_model']} ({info['llvm_host_cpu']}, avx512f={info['avx512f']}), {info['logical_cpus']} logical "
          f"CPUs; python {info['python']}, numba {info['numba']}, numpy {info['numpy']}; git {info['git_commit'][:10]}"
          f"{' (eventsnn/ modified)' if info['eventsnn_dirty'] else ''}; load avg {info['loadavg_start'][0]:.2f}")
    if info["loadavg_start"][0] > 1.0 and max(args.threads) > 1 and not args.no_torch:
        print(f"WARNING: load average {info['loadavg_start'][0]:.1f} on {info['logical_cpus']} CPUs: multi-thread "
              f"torch runs collapse when the cores are shared (OpenMP threads spin while descheduled; 10-100x "
              f"slower seen here). Run on an idle machine, or pass --threads 1.", flush=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    cache_path = OUT_DIR / "peers_gains.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    T = args.T
    results = {"machine": info, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "nets": {}}
    npz = {}
    cfg = {"T": T, "reps": args.reps, "threads": args.threads, "peers": args.peers,
           "diag_peers": ["snntorch_default", "sinabs_multispike"], "agree_samples": None, "nets": {}}
    # one agreement sample count for the torch side: the config carries it per net
    t0 = time.perf_counter()
    Simulator(build_net(SPECS["A"], base_weights(SPECS["A"], 0)), timesteps=2).reset(
        np.zeros((28, 28, 1), np.float32)).run()
    info["engine_load_or_compile_s"] = time.perf_counter() - t0
    for name in args.nets:
        spec = SPECS[name]
        items = items_of(spec)
        base = base_weights(spec, args.seed + (name == "B"))
        shapes = build_net(spec, base).shapes()
        n_ev, n_ag = args.ev_samples[name], args.agree_samples[name]
        n_x = max(n_ev, n_ag, max(args.batches[name]), args.cal_samples)
        xs = load_inputs(spec, n_x)
        plan = Simulator(build_net(spec, base), timesteps=1).plan
        exact_macs, textbook_macs = layer_macs(plan)
        nres = {"desc": spec["desc"], "input_shape": list(spec["input_shape"]), "timesteps": T,
                "weight_seed": args.seed + (name == "B"), "layers": [p.name for p in plan.pops[1:]],
                "neurons": [int(p.size) for p in plan.pops[1:]],
                "ann_macs_exact": exact_macs[1:].tolist(), "ann_macs_textbook": textbook_macs[1:].tolist(),
                "flat_fanout": flat_fanout(items, shapes), "rates": []}
        prev_shape = {}
        for i, it in enumerate(items):
            if it["kind"] == "dense" and items[i - 1]["kind"] == "flatten":
                # the (H, W, C) map that the flatten flattens (the flatten's own shape is (1, 1, N))
                prev_shape[it["name"]] = shapes[items[i - 2]["name"]] if i >= 2 else spec["input_shape"]
            elif it["kind"] == "dense":
                prev_shape[it["name"]] = shapes[items[i - 1]["name"]]
        tw = []
        for it, w in zip([it for it in items if "wshape" in it], base):
            tw.append(to_torch_layout(w, prev_shape.get(it["name"])))
        for k, w in enumerate(tw):
            npz[f"{name}/w{k}"] = w
        npz[f"{name}/x"] = np.ascontiguousarray(xs.transpose(0, 3, 1, 2))
        ncfg = {"items": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in it.items()} for it in items],
                "batches": args.batches[name], "agree_samples": n_ag, "rates": [],
                "time_rates": [i for i, r in enumerate(args.rates)
                               if any(abs(r - p) < 1e-12 for p in args.peer_rates.get(name, args.rates))]}
        print(f"\n######## net {name}: {spec['desc']}; T={T}")
        for ri, rate in enumerate(args.rates):
            gains, cal_log, cal_s = get_gains(name, spec, base, xs, rate, args, cache)
            cache_path.write_text(json.dumps(cache, indent=1))
            w_u = scale_weights(base, gains, False)
            w_q = scale_weights(base, gains, True)
            net_u, net_q = build_net(spec, w_u), build_net(spec, w_q)
            key = f"{name}|seed{args.seed}|T{args.T}|cal{args.cal_samples}|rate{rate:g}"
            r = {"target": rate, "gains": gains, "calibration": cal_log, "calibration_s": cal_s,
                 "calibration_recorded_s": cache[key].get("seconds", 0.0)}
            # timings (unquantised weights: the realistic case)
            t0 = time.perf_counter()
            r["eventsnn"] = ev_timings(net_u, xs[:n_ev], T, args.reps, tuple(args.threads), args.ev_order)
            c_time = ev_counts(net_u, xs[:n_ev], T)
            r["eventsnn"]["rates_per_layer"] = (np.mean(c_time["spikes"], 0) / (np.array(c_time["neurons"]) * T)).tolist()
            r["eventsnn"]["syn_ops_per_sample"] = float(np.mean(np.sum(c_time["syn_ops"], 1)))
            r["eventsnn"]["syn_ops_per_layer"] = np.mean(c_time["syn_ops"], 0).tolist()
            r["eventsnn"]["spikes_per_layer"] = np.mean(c_time["spikes"], 0).tolist()
            ev = r["eventsnn"]
            line = (f"rate {rate:.2f}: gains {', '.join(f'{g:.3g}' for g in gains)}"
                    f"{f' (calibrated in {cal_s:.1f} s)' if cal_s else ' (cached)'}\n  eventsnn: measured rates "
                    f"{', '.join(f'{x * 100:.2f}' for x in ev['rates_per_layer'])} %; "
                    f"{ev['syn_ops_per_sample']:.3g} syn ops/sample; run {fmt_stats(ev['thr1_run'])} ms, "
                    f"reset+run {fmt_stats(ev['thr1_reset_run'])} ms")
            for nt in args.threads:
                if nt > 1:
                    line += f", {nt} threads {fmt_stats(ev[f'thr{nt}_reset_run'])} ms"
            print(line + f" per sample ({time.perf_counter() - t0:.0f} s)", flush=True)
            # agreement counts (quantised and float weights; "qm": quantised, every neuron firing
            # up to MULTI_SPIKES spikes per step, against sinabs' MultiSpike)
            net_qm = build_net(spec, w_q)
            for layer in net_qm.layers:
                if layer.neuron is not None:
                    layer.neuron.max_spikes = MULTI_SPIKES
            for tag, net in (("q", net_q), ("u", net_u), ("qm", net_qm)):
                c = ev_counts(net, xs[:n_ag], T)
                for ln, a in c["counts"].items():
                    npz[f"{name}/r{ri}/ev_{tag}/{ln}"] = a
                r[f"ev_agree_{tag}"] = {"spikes": c["spikes"], "syn_ops": c["syn_ops"], "analog_macs": c["analog_macs"]}
            ncfg["rates"].append({"target": rate, "gains": gains, "hashes": [weight_hash(w) for w in w_u],
                                  "hashes_q": [weight_hash(w) for w in w_q]})
            nres["rates"].append(r)
        results["nets"][name] = nres
        cfg["nets"][name] = ncfg
    info["eventsnn_side_s"] = time.perf_counter() - t_start

    if not args.no_torch:
        # the torch side reads one agreement sample count; give it per net through the config
        data_path, cfg_path, tout = OUT_DIR / "peers_data.npz", OUT_DIR / "peers_config.json", OUT_DIR / "peers_torch.json"
        np.savez(data_path, **npz)
        run_torch(cfg, cfg_path, data_path, tout, args)
        results["torch"] = json.loads(tout.read_text())
    info["loadavg_end"] = list(os.getloadavg())
    info["total_s"] = time.perf_counter() - t_start
    report(results, args)
    if args.quick:
        results["full_run_estimate"] = estimate_full(results, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"\ntotal {info['total_s']:.0f} s (eventsnn side {info['eventsnn_side_s']:.0f} s); "
          f"load avg at end {info['loadavg_end'][0]:.2f}; wrote {args.out}")
    return results


def run_torch(cfg, cfg_path, data_path, tout, args):
    if not VENV_PY.exists():
        raise SystemExit(f"{VENV_PY} not found: run bench/run_peers.sh (it creates the venv)")
    # The torch side takes one agreement sample count: run it once per net if they differ.
    per_net = {n: c["agree_samples"] for n, c in cfg["nets"].items()}
    merged = None
    for n in cfg["nets"]:
        c = dict(cfg, nets={n: cfg["nets"][n]}, agree_samples=per_net[n])
        cfg_path.write_text(json.dumps(c))
        print(f"\n-- torch side, net {n} ({VENV_PY.relative_to(ROOT)} bench/peers_torch.py)", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(max(args.threads)), MKL_NUM_THREADS=str(max(args.threads)))
        subprocess.run([str(VENV_PY), str(ROOT / "bench" / "peers_torch.py"), "--data", str(data_path),
                        "--config", str(cfg_path), "--out", str(tout)], check=True, env=env, cwd=ROOT)
        part = json.loads(tout.read_text())
        if merged is None:
            merged = part
        else:
            for k in ("agreement", "synops", "timings"):
                merged[k] += part[k]
            merged["info"]["loadavg_end"] = part["info"].get("loadavg_end")
            merged["info"]["total_s"] = merged["info"].get("total_s", 0) + part["info"].get("total_s", 0)
    tout.write_text(json.dumps(merged, indent=1))


def report(results, args):
    tor = results.get("torch", {"agreement": [], "synops": [], "timings": []})
    verdicts = []
    for name, nres in results["nets"].items():
        rates = nres["rates"]
        layers = nres["layers"]
        # -- calibration / measured rates
        table(["layer", "neurons"] + [f"rate@{r['target']:.2f} %" for r in rates],
              [[ln, n] + [f"{r['eventsnn']['rates_per_layer'][i] * 100:.2f}" for r in rates]
               for i, (ln, n) in enumerate(zip(layers, nres["neurons"]))],
              title=f"net {name}: mean spike rate per neuron per step (eventsnn, {rates[0]['eventsnn']['samples']} "
                    f"timed samples; gains calibrated on {args.cal_samples})")
        # -- speed
        cols = [f"r={r['target']:.2f}" for r in rates]
        rows = []
        ev = [r["eventsnn"] for r in rates]
        tag = f" ({ev[0].get('order', 'time')} order)"
        rows.append(["eventsnn run()" + tag, 1, 1] + [fmt_stats(e["thr1_run"]) for e in ev])
        rows.append(["eventsnn reset+run" + tag, 1, 1] + [fmt_stats(e["thr1_reset_run"]) for e in ev])
        for nt in args.threads:
            if nt > 1:
                rows.append([f"eventsnn {nt} Simulators", nt, "-"] + [fmt_stats(e[f"thr{nt}_reset_run"]) for e in ev])
        tim = [t for t in tor["timings"] if t["net"] == name]
        keys = sorted({(t["peer"], t["threads"], t["batch"]) for t in tim},
                      key=lambda k: (args.peers.index(k[0]) if k[0] in args.peers else 99, k[1], k[2]))
        for peer, th, b in keys:
            row = [peer, th, b]
            for ri in range(len(rates)):
                m = [t for t in tim if (t["peer"], t["threads"], t["batch"], t["rate_index"]) == (peer, th, b, ri)]
                row.append(fmt_stats({"median_s": m[0]["per_sample_median_s"], "min_s": m[0]["per_sample_min_s"],
                                      "max_s": m[0]["per_sample_max_s"]}) if m else "-")
            rows.append(row)
        table(["implementation", "threads", "batch"] + cols, rows,
              title=f"net {name}: ms per sample, T={nres['timesteps']}, median [min-max] of {args.reps} runs")
        # -- speed-up
        if tim:
            rows = []
            for ri, r in enumerate(rates):
                e = r["eventsnn"]
                ev1 = e["thr1_reset_run"]["median_s"]
                ev_best = min([ev1] + [e[f"thr{nt}_reset_run"]["median_s"] for nt in args.threads if nt > 1])
                for peer in args.peers:
                    pt = [t for t in tim if t["peer"] == peer and t["rate_index"] == ri]
                    if not pt:
                        continue
                    b1 = [t for t in pt if t["threads"] == 1 and t["batch"] == 1]
                    best = min(pt, key=lambda t: t["per_sample_median_s"])
                    rows.append([f"{r['target']:.2f}", f"{e['syn_ops_per_sample']:.3g}", peer,
                                 f"{b1[0]['per_sample_median_s'] / ev1:.1f}x" if b1 else "-",
                                 f"{best['per_sample_median_s'] / ev_best:.1f}x",
                                 f"thr {best['threads']}, b {best['batch']}: {ms(best['per_sample_median_s'])} ms vs "
                                 f"{ms(ev_best)} ms"])
            table(["rate", "ev syn ops", "peer", "b1 1-thread: peer/ev", "best/best: peer/ev", "best configs"], rows,
                  title=f"net {name}: how many times faster eventsnn is (>1: eventsnn faster; eventsnn timed with reset)")
        # -- agreement
        ag = [a for a in tor["agreement"] if a["net"] == name]
        if ag:
            rows = []
            for a in ag:
                r = rates[a["rate_index"]]
                tag = "q" if a["quantised"] else "u"
                if a.get("eventsnn_counts") == "multi-spike":
                    tag = "qm"
                evs = np.asarray(r[f"ev_agree_{tag}"]["spikes"])[: a["samples"]]
                tot_ok = all(np.array_equal(np.asarray(a["layers"][ln]["ev_spikes_per_sample"]), evs[:, i])
                             for i, ln in enumerate(layers))
                neur = sum(v["neurons"] * v["samples"] for v in a["layers"].values())
                eq = sum(v["equal_frac"] * v["neurons"] * v["samples"] for v in a["layers"].values()) / neur
                badl = [(k, v["mismatched_neuron_counts"]) for k, v in a["layers"].items() if v["mismatched_neuron_counts"]]
                bad = ", ".join(f"{k} {n}" for k, n in badl[:4])
                if len(badl) > 4:
                    bad += f", ... ({sum(n for _, n in badl)} in {len(badl)} layers)"
                rows.append([f"{a['target_rate']:.2f}", "2^-8" if a["quantised"] else "float32", a["peer"],
                             "EXACT" if a["exact"] else "differs", f"{eq * 100:.3f}",
                             f"{a['output_equal_frac'] * 100:.2f}", f"{a['prediction_equal_frac'] * 100:.1f}",
                             bad or "-", "" if tot_ok else "ev totals mismatch!"])
                if a["quantised"] and a["peer"] in args.peers:
                    verdicts.append((name, a["target_rate"], a["peer"], a["exact"] and tot_ok))
            table(["rate", "weights", "peer", "all neurons", "neuron counts equal %", "output counts equal %",
                   "same argmax %", "mismatched neurons per layer", ""], rows,
                  title=f"net {name}: spike counts vs eventsnn, {ag[0]['samples']} samples, every neuron of every layer")
        # -- synaptic ops
        so = [s for s in tor["synops"] if s["net"] == name]
        for s in so:
            r = rates[s["rate_index"]]
            sp = np.asarray(r["ev_agree_q"]["spikes"], float)[: s["samples"]].mean(0)
            ops = np.asarray(r["ev_agree_q"]["syn_ops"], float)[: s["samples"]].mean(0)
            macs = np.asarray(r["ev_agree_q"]["analog_macs"], float)[: s["samples"]].mean(0)
            rows = []
            tot = np.zeros(5)
            for i, ln in enumerate(layers):
                fo = nres["flat_fanout"][ln]
                flat = sp[i - 1] * fo if i else float("nan")
                vals = [ops[i], flat, s["hooks_raw"].get(ln, float("nan")), s["hooks_pool_scaled"].get(ln, float("nan")),
                        s["analyzer"].get(ln, float("nan"))]
                tot += np.nan_to_num(vals)
                rows.append([ln, f"{sp[i]:.4g}", f"{ops[i]:.4g}" + (f" (+{macs[i]:.3g} analog MACs)" if macs[i] else ""),
                             *(f"{v:.4g}" if np.isfinite(v) else "-" for v in vals[1:])])
            rows.append(["total", f"{sp.sum():.4g}", *(f"{v:.4g}" for v in tot)])
            table(["receiving layer", "spikes", "eventsnn exact syn ops", "flat fan-out est.", "sinabs hooks (raw)",
                   "sinabs hooks (pool-scaled)", "SNNAnalyzer"], rows,
                  title=f"net {name}, rate {r['target']:.2f}: synaptic ops per sample (2^-8 weights, identical spikes, "
                        f"{s['samples']} samples); conv1's input is analog")
    if verdicts:
        ok = all(v[3] for v in verdicts)
        print(f"\nAGREEMENT (2^-8 weights and inputs, every neuron, every layer): "
              f"{'EXACT for every peer, net and rate' if ok else 'FAILED for ' + str([v[:3] for v in verdicts if not v[3]])}")
        results["agreement_exact"] = ok


def estimate_full(results, args) -> dict:
    """Rough duration of a run with the full-mode defaults, from this run's measurements.

    Times scale linearly with T and with the number of samples; a batch size that
    was not measured takes the per-sample time of the nearest measured one; a
    thread count that was not measured takes the 1-thread time (on an idle
    machine 2 threads are faster, so this errs long). Calibration uses the time
    this run (or the cache) recorded, scaled the same way.
    """
    full = parse_args([])
    k = full.T / args.T
    tor = results.get("torch", {"timings": [], "agreement": [], "synops": []})
    est = {}
    for name, nres in results["nets"].items():
        if name not in full.nets:
            continue
        ev_s = cal_s = peer_s = agree_s = 0.0
        n_ev, n_ag = full.ev_samples[name], full.agree_samples[name]
        for ri, r in enumerate(nres["rates"]):
            per = r["eventsnn"]["thr1_reset_run"]["median_s"] * k
            runs = n_ev * (full.reps * (1 + 1 / max(full.threads)) + 2 + 1) + 2 * n_ag
            ev_s += per * runs
            cal_s += r.get("calibration_recorded_s", r["calibration_s"]) * (full.cal_samples / args.cal_samples) * k
            tim = [t for t in tor["timings"] if t["net"] == name and t["rate_index"] == ri]
            if not tim:
                tim = [t for t in tor["timings"] if t["net"] == name]
            timed_all = any(abs(r["target"] - p) < 1e-12 for p in full.peer_rates.get(name, full.rates))
            batches = full.batches[name] if timed_all else [min(full.batches[name])]
            for peer in full.peers:
                for th in full.threads:
                    for b in batches:
                        c = [t for t in tim if t["peer"] == peer and t["threads"] == th] or \
                            [t for t in tim if t["peer"] == peer and t["threads"] == 1]
                        if not c:
                            continue
                        near = min(c, key=lambda t: abs(math.log(t["batch"] / b)))
                        peer_s += near["per_sample_median_s"] * k * b * (full.reps + min(10, full.T) / full.T)
            ag = [a for a in tor["agreement"] if a["net"] == name and a["rate_index"] == ri]
            f_ag = (n_ag / ag[0]["samples"]) * k if ag else 0.0
            agree_s += sum(a["seconds"] for a in ag) * f_ag
            agree_s += 2 * sum(a["seconds"] for a in ag if a["peer"] == "sinabs" and a["quantised"]) * f_ag
        est[name] = {"eventsnn_s": ev_s, "calibration_s": cal_s, "peer_timing_s": peer_s, "agreement_s": agree_s}
    tot = sum(sum(v.values()) for v in est.values())
    est["total_s"] = tot
    print(f"\nEstimated duration of the full run (bench/run_peers.sh, defaults: T={full.T}, {full.reps} reps, "
          f"batches {full.batches}, threads {full.threads}) from this run's timings (load avg "
          f"{results['machine']['loadavg_start'][0]:.1f}): about {tot / 60:.0f} min")
    for name, v in est.items():
        if name != "total_s":
            print(f"  net {name}: eventsnn {v['eventsnn_s'] / 60:.1f} min, calibration {v['calibration_s'] / 60:.1f} min "
                  f"(0 if already cached), peer timings {v['peer_timing_s'] / 60:.1f} min, agreement+synops "
                  f"{v['agreement_s'] / 60:.1f} min")
    return est


if __name__ == "__main__":
    main()
