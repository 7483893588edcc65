#!/usr/bin/env python
"""Speed of the event-driven CPU engine against a bare scatter kernel.

Four measurements (see bench/README.md):

1. bare scatter limit: a numba kernel that only adds 3x3 conv fan-outs of a
   list of source events into a float32 membrane array (channel-last and
   channel-first), in synaptic operations per second;
2. the engine (``Simulator.run``) on the same events through one conv layer
   that never spikes, so its work is pure delivery; ratio to (1);
3. time per sample against synaptic operations over input densities (linear
   fit), and the per-step cost of a layer that receives no spikes;
4. VGG-style nets (28x28x1 and 32x32x3) with random weights tuned to spike
   rates of a few percent: synaptic ops per sample and per second.

Usage: ``python bench/engine_speed.py`` (full, ~2 min on 2 cores) or
``python bench/engine_speed.py --quick`` (smoke run, < 1 min). Writes
``bench/results/engine_speed.json`` (``engine_speed_quick.json`` with --quick).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Import the checkout next to this script, whatever the current directory.
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402
from scipy.stats import linregress  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, table  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.engine.connectivity import deliver  # noqa: E402
from eventsnn.engine.layout import P_BLOCK, P_OFF, P_UOFF, aligned_zeros  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402

# Same flags as the engine (eventsnn/engine/jit.py): no fastmath, no bounds checks.
JIT = {"cache": True, "nogil": True, "fastmath": False, "boundscheck": False}
K, PAD = 3, 1  # 3x3 kernel, stride 1, padding 1 throughout parts 1-2


# ----------------------------------------------------------------------------
# 1. Bare scatter kernels. Events are flat channel-last source indices
#    (y*W + x)*C_in + c; weights (3, 3, C_in, C_out) flattened. Each returns the
#    number of (event, target) additions, border-clipped.
# ----------------------------------------------------------------------------

@njit(**JIT)
def scatter_cl(ev, n, passes, w, mem, H, W, CI, CO):
    """Channel-last (H, W, C_out) target; contiguous runs of C_out via slice views."""
    ops = 0
    for _ in range(passes):
        for e in range(n):
            i = ev[e]
            y = i // (W * CI)
            x = (i // CI) % W
            c = i % CI
            for ky in range(K):
                oy = y + PAD - ky
                if oy < 0 or oy >= H:
                    continue
                for kx in range(K):
                    ox = x + PAD - kx
                    if ox < 0 or ox >= W:
                        continue
                    wb = ((ky * K + kx) * CI + c) * CO
                    nb = (oy * W + ox) * CO
                    dst = mem[nb:nb + CO]
                    src = w[wb:wb + CO]
                    for j in range(CO):
                        dst[j] += src[j]
                    ops += CO
    return ops


@njit(**JIT)
def scatter_cl_flat(ev, n, passes, w, mem, scale, H, W, CI, CO):
    """Channel-last, written like the engine's deliver: ``buf[nbase + j] += scale * w[wbase + j]``."""
    ops = 0
    for _ in range(passes):
        for e in range(n):
            i = ev[e]
            y = i // (W * CI)
            x = (i // CI) % W
            c = i % CI
            for ky in range(K):
                oy = y + PAD - ky
                if oy < 0 or oy >= H:
                    continue
                for kx in range(K):
                    ox = x + PAD - kx
                    if ox < 0 or ox >= W:
                        continue
                    wbase = ((ky * K + kx) * CI + c) * CO
                    nbase = (oy * W + ox) * CO
                    for j in range(CO):
                        mem[nbase + j] += scale * w[wbase + j]
                    ops += CO
    return ops


@njit(**JIT)
def scatter_cf(ev, n, passes, w, mem, H, W, CI, CO):
    """Channel-first (C_out, H, W) target: each of the C_out adds is H*W floats apart."""
    ops = 0
    hw = H * W
    for _ in range(passes):
        for e in range(n):
            i = ev[e]
            y = i // (W * CI)
            x = (i // CI) % W
            c = i % CI
            for ky in range(K):
                oy = y + PAD - ky
                if oy < 0 or oy >= H:
                    continue
                for kx in range(K):
                    ox = x + PAD - kx
                    if ox < 0 or ox >= W:
                        continue
                    wb = ((ky * K + kx) * CI + c) * CO
                    pos = oy * W + ox
                    dst = mem[pos:pos + (CO - 1) * hw + 1:hw]
                    src = w[wb:wb + CO]
                    for j in range(CO):
                        dst[j] += src[j]
                    ops += CO
    return ops


@njit(**JIT)
def deliver_loop(ev_step, ev, n, passes, conn_i, geo, weights, buf, tflag, tlist, tn, doff, uoff, pop, block):
    """The engine's own ``deliver`` called per event, no queue and no neuron update.

    Touch marks are cleared at each step boundary, as the layer flush would.
    """
    ops = 0
    one = np.float32(1.0)
    for _ in range(passes):
        last = -1.0
        for e in range(n):
            if ev_step[e] != last:
                for i in range(tn[pop]):
                    tflag[uoff + tlist[uoff + i]] = 0
                tn[pop] = 0
                last = ev_step[e]
            ops += deliver(conn_i, geo, 0, weights, ev[e], one, buf, doff, tflag, tlist, tn, uoff, pop, block)
    for i in range(tn[pop]):
        tflag[uoff + tlist[uoff + i]] = 0
    tn[pop] = 0
    return ops


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def best_of(fn, reps):
    """Best wall time of ``reps`` calls of fn() (after the caller's warm-up), and its last result."""
    best, out = math.inf, None
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def he(rng, shape, fan_in, gain=1.0):
    return (rng.standard_normal(shape) * gain * math.sqrt(2.0 / fan_in)).astype(np.float32)


def run_timed(sim, x, sample_index=0, input_spikes=None):
    sim.reset(x, sample_index=sample_index, input_spikes=input_spikes)
    t0 = time.perf_counter()
    sim.run()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------
# 1 + 2. bare scatter vs engine on the same events
# ----------------------------------------------------------------------------

def bench_scatter(args) -> dict:
    H = W = 32
    CI = CO = 64
    T = 100
    n_in = H * W * CI
    n_ev = args.events
    rng = np.random.default_rng(1)
    slots = rng.choice(T * n_in, n_ev, replace=False)
    times = (slots // n_in).astype(np.float64)
    idx = (slots % n_in).astype(np.int32)
    order = np.lexsort((idx, times))  # the engine's processing order: by step, then neuron
    times, idx = times[order], idx[order]
    weight = he(rng, (K, K, CI, CO), K * K * CI)
    # 64-byte aligned like the engine's own arrays (eventsnn.engine.layout.aligned_zeros).
    wflat = aligned_zeros(weight.size, np.float32)
    wflat[:] = weight.reshape(-1)
    reps = args.reps
    target = args.target_s

    def measure(name, fn, make_args):
        fn(idx, 64, 1, *make_args())  # compile / warm-up
        n_probe = min(n_ev, 100_000)
        t0 = time.perf_counter()
        fn(idx, n_probe, 1, *make_args())
        t_full = (time.perf_counter() - t0) * n_ev / n_probe  # estimate for all events
        n, passes = n_ev, 1
        if t_full > target:
            n = max(1000, int(n_ev * target / t_full))
        else:
            passes = max(1, int(round(target / t_full)))
        best, ops = best_of(lambda: fn(idx, n, passes, *make_args()), reps)
        return {"name": name, "events": n * passes, "syn_ops": int(ops), "time_s": best,
                "ops_per_s": ops / best, "passes": passes, "events_used": n}

    rows = []
    mem_cl = aligned_zeros(H * W * CO, np.float32)
    r_cl = measure("bare scatter, channel-last (slice views, SIMD)", scatter_cl,
                   lambda: (wflat, mem_cl, H, W, CI, CO))
    rows.append(r_cl)
    mem_flat = aligned_zeros(H * W * CO, np.float32)
    rows.append(measure("bare scatter, channel-last, engine-style flat indexing", scatter_cl_flat,
                        lambda: (wflat, mem_flat, np.float32(1.0), H, W, CI, CO))) 
    mem_cf = aligned_zeros(CO * H * W, np.float32)
    rows.append(measure("bare scatter, channel-first (C_out, H, W)", scatter_cf,
                        lambda: (wflat, mem_cf, H, W, CI, CO)))

    # Reference single pass over all events: op count and membrane for the checks.
    # (channel-first is checked on a prefix: it is ~100x slower.)
    n_chk = min(n_ev, 50_000)
    mem_cl[:] = 0
    mem_cf[:] = 0
    ops_cl = int(scatter_cl(idx, n_chk, 1, wflat, mem_cl, H, W, CI, CO))
    ops_cf = int(scatter_cf(idx, n_chk, 1, wflat, mem_cf, H, W, CI, CO))
    cf_ok = ops_cf == ops_cl and np.allclose(mem_cf.reshape(CO, H, W).transpose(1, 2, 0).reshape(-1),
                                             mem_cl, rtol=1e-5, atol=1e-5)
    mem_cl[:] = 0
    ops_once = int(scatter_cl(idx, n_ev, 1, wflat, mem_cl, H, W, CI, CO))

    # The engine: one conv layer that never spikes.
    net = Network(input_shape=(H, W, CI), encoding="poisson", layers=[
        Layer("conv", "conv2d", weight=weight, padding=(PAD, PAD), neuron=Neuron("if", threshold=1e9))])
    sim = Simulator(net, timesteps=T, encoding="poisson")
    x = np.zeros((H, W, CI), np.float32)
    spikes = (times, idx)

    # The engine's deliver() alone (same compiled kernel, called from a plain loop).
    plan = sim.plan
    p = 1
    buf = np.zeros(plan.n_neurons, np.float32)
    dargs = (plan.conn_i, plan.conn_geo, plan.weights, buf, sim.state.tflag, sim.state.tlist, sim.state.tn,
             int(plan.pop_i[p, P_OFF]), int(plan.pop_i[p, P_UOFF]), p, int(plan.pop_i[p, P_BLOCK]))
    deliver_loop(times, idx, 64, 1, *dargs)
    t_d, ops_d = best_of(lambda: deliver_loop(times, idx, n_ev, 1, *dargs), reps)
    rows.append({"name": "engine deliver() alone (plain loop, no queue/flush)", "events": n_ev,
                 "syn_ops": int(ops_d), "time_s": t_d, "ops_per_s": ops_d / t_d, "passes": 1,
                 "events_used": n_ev})

    run_timed(sim, x, input_spikes=spikes)  # warm-up: compile/load and grow the queue
    t_best = math.inf
    for _ in range(reps):
        gc.collect()
        t_best = min(t_best, run_timed(sim, x, input_spikes=spikes))
    tot = sim.per_layer()
    eng_ops = int(tot["syn_ops"].sum())
    rows.append({"name": "engine Simulator.run() (full event loop)", "events": n_ev, "syn_ops": eng_ops,
                 "time_s": t_best, "ops_per_s": eng_ops / t_best, "passes": 1, "events_used": n_ev})
    # The same run with a plug in the event loop (eventsnn.learn.traces: one hook call per
    # delivered event and per input spike), to show what a per-event hook costs; the rows
    # above run without one, where the hook calls compile away.
    try:
        from eventsnn.learn.traces import SpikeTraces
    except ImportError:  # an engine from before plug points
        SpikeTraces = None
    if SpikeTraces is not None:
        sim_p = Simulator(net, timesteps=T, encoding="poisson")
        sim_p.plug = SpikeTraces.for_simulator(sim_p, 20.0)
        run_timed(sim_p, x, input_spikes=spikes)
        t_plug = min(run_timed(sim_p, x, input_spikes=spikes) for _ in range(reps))
        rows.append({"name": "engine Simulator.run() with a SpikeTraces plug", "events": n_ev,
                     "syn_ops": eng_ops, "time_s": t_plug, "ops_per_s": eng_ops / t_plug, "passes": 1,
                     "events_used": n_ev})
    # Per-event floor: the same events through a 1x1 conv with one output channel
    # (fan-out 1), i.e. queue, emit, deliver call and flush with almost no adds.
    net1 = Network(input_shape=(H, W, CI), encoding="poisson", layers=[
        Layer("conv", "conv2d", weight=he(rng, (1, 1, CI, 1), CI), neuron=Neuron("if", threshold=1e9))])
    sim1 = Simulator(net1, timesteps=T, encoding="poisson")
    run_timed(sim1, x, input_spikes=spikes)
    t_floor = min(run_timed(sim1, x, input_spikes=spikes) for _ in range(reps))
    v = sim.potentials("conv").reshape(-1)
    v_err = float(np.max(np.abs(v - mem_cl)))
    v_ok = v_err <= 1e-4 * max(1.0, float(np.max(np.abs(mem_cl))))

    bare = r_cl["ops_per_s"]
    for r in rows:
        r["fraction_of_bare_cl"] = r["ops_per_s"] / bare
    eng = next(r for r in rows if r["name"].startswith("engine Simulator.run() (full"))
    out = {
        "config": {"input": [H, W, CI], "c_out": CO, "kernel": K, "stride": 1, "padding": PAD,
                   "timesteps": T, "events": n_ev, "event_order": "sorted by (step, flat HWC index)",
                   "reps": reps, "weights": "He-normal float32"},
        "rows": rows,
        "checks": {
            "syn_ops_bare_single_pass": ops_once,
            "syn_ops_engine": eng_ops,
            "syn_ops_deliver_alone": int(ops_d),
            "syn_ops_equal": eng_ops == ops_once == int(ops_d),
            "engine_conv_spikes": int(tot["spikes"][1]),
            "engine_neuron_updates": int(tot["updates"].sum()),
            "engine_potential_max_abs_diff_vs_bare": v_err,
            "engine_potential_matches_bare": bool(v_ok),
            "channel_first_matches_channel_last": bool(cf_ok),
        },
        "engine_fraction_of_bare_cl": eng["fraction_of_bare_cl"],
        "goal_fraction": 0.5,
        "engine_overhead_outside_deliver_ns_per_event": (t_best - t_d) / n_ev * 1e9,
        "engine_floor_1x1_cout1": {"time_s": t_floor, "ns_per_event": t_floor / n_ev * 1e9,
                                   "syn_ops": int(sim1.per_layer()["syn_ops"].sum())},
        "bare_cl_ns_per_event": r_cl["time_s"] / r_cl["events"] * 1e9,
    }
    table(["kernel", "events", "syn ops", "time s", "Gops/s", "% bare CL"],
          [[r["name"], r["events"], r["syn_ops"], f"{r['time_s']:.4f}", f"{r['ops_per_s'] / 1e9:.3f}",
            f"{100 * r['fraction_of_bare_cl']:.1f}"] for r in rows],
          title=f"1-2. Scatter limit vs engine: conv3x3 {CI}->{CO}, {H}x{W}, pad 1, {n_ev} events over T={T}")
    c = out["checks"]
    print(f"syn ops: bare {ops_once}, engine {eng_ops}, deliver-alone {int(ops_d)} -> "
          f"{'EQUAL' if c['syn_ops_equal'] else 'MISMATCH'}; conv spikes {c['engine_conv_spikes']}, "
          f"neuron updates {c['engine_neuron_updates']}")
    print(f"engine membrane vs bare: max |diff| {v_err:.2e} ({'ok' if v_ok else 'MISMATCH'}); "
          f"channel-first result {'matches' if cf_ok else 'DIFFERS'}")
    print(f"engine / bare channel-last: {100 * out['engine_fraction_of_bare_cl']:.1f} % (goal >= 50 %); "
          f"time outside deliver(): {out['engine_overhead_outside_deliver_ns_per_event']:.0f} ns per input event")
    print(f"per-event cost: bare channel-last {out['bare_cl_ns_per_event']:.0f} ns/event (all {ops_once / n_ev:.0f} adds); "
          f"engine with the same events through a 1x1 conv, C_out=1 (1 add each): "
          f"{out['engine_floor_1x1_cout1']['ns_per_event']:.0f} ns/event")
    return out


# ----------------------------------------------------------------------------
# 3. cost vs events, idle layers
# ----------------------------------------------------------------------------

def small_net(rng, thr1=1.0, only_first=False) -> Network:
    layers = [Layer("conv1", "conv2d", weight=he(rng, (3, 3, 1, 32), 9), padding=(1, 1),
                    neuron=Neuron("if", threshold=thr1))]
    if not only_first:
        layers += [
            Layer("pool1", "avgpool2d", kernel=(2, 2), neuron=Neuron("if", threshold=1.0)),
            Layer("conv2", "conv2d", weight=he(rng, (3, 3, 32, 64), 9 * 32), padding=(1, 1),
                  neuron=Neuron("if", threshold=1.0)),
            Layer("pool2", "avgpool2d", kernel=(2, 2), neuron=Neuron("if", threshold=1.0)),
            Layer("flat", "flatten"),
            Layer("fc", "dense", weight=he(rng, (7 * 7 * 64, 10), 7 * 7 * 64), neuron=Neuron("if", threshold=1.0)),
        ]
    return Network(input_shape=(28, 28, 1), layers=layers, encoding="poisson")


def factor_for_rate(x, rate):
    """Scale f with mean(clip(f*x, 0, 1)) == rate (bisection on a log scale)."""
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if np.mean(np.clip(mid * x, 0, 1)) < rate:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def bench_scaling(args, images) -> dict:
    T = 100
    img = images[args.image]
    rng = np.random.default_rng(2)
    net = small_net(rng)
    sim = Simulator(net, timesteps=T, encoding="poisson", seed=0)
    rates = np.geomspace(0.001, 0.3, args.points)
    run_timed(sim, np.clip(img * factor_for_rate(img, rates[-1]), 0, 1))  # warm-up
    points = []
    for r in rates:
        f = factor_for_rate(img, r)
        x = np.clip(img * f, 0, 1).astype(np.float32)
        ts = [run_timed(sim, x) for _ in range(args.reps)]
        tot = sim.per_layer()
        n_in = int(tot["spikes"][0])
        points.append({"target_input_rate": float(r), "scale": f,
                       "input_rate": n_in / (img.size * T), "input_spikes": n_in,
                       "time_s": float(np.median(ts)), "times_s": ts,
                       "syn_ops": int(tot["syn_ops"].sum()),
                       "syn_ops_per_layer": tot["syn_ops"].tolist(),
                       "spikes_per_layer": tot["spikes"].tolist(),
                       "neuron_updates": int(tot["updates"].sum()),
                       "events": int(sim.events_processed)})
    ops = np.array([p["syn_ops"] for p in points], float)
    tm = np.array([p["time_s"] for p in points], float)
    fit = linregress(ops, tm)
    out = {"config": {"net": "28x28x1 -> conv3x3(32,pad1) IF -> avgpool2 IF -> conv3x3(64,pad1) IF -> "
                             "avgpool2 IF -> flatten -> dense(10) IF; He-normal weights, threshold 1",
                      "timesteps": T, "encoding": "poisson", "image_index": args.image,
                      "reps": args.reps, "statistic": "median of run() time"},
           "layers": sim.layer_names, "points": points,
           "fit": {"slope_s_per_op": fit.slope, "intercept_s": fit.intercept, "r2": fit.rvalue ** 2,
                   "slope_ns_per_op": fit.slope * 1e9, "implied_ops_per_s": 1.0 / fit.slope if fit.slope > 0 else None}}
    table(["input rate", "in spikes", "syn ops", "updates", "events", "ms/sample", "Mops/s"],
          [[f"{p['input_rate']:.4f}", p["input_spikes"], p["syn_ops"], p["neuron_updates"], p["events"],
            f"{p['time_s'] * 1e3:.3f}", f"{p['syn_ops'] / p['time_s'] / 1e6:.0f}"] for p in points],
          title=f"3a. Cost vs events: fixed conv net, T={T}, image {args.image}, median of {args.reps}")
    print(f"fit time = a + b*ops: b = {fit.slope * 1e9:.3f} ns/op ({1e-9 / fit.slope:.3f} Gops/s), "
          f"a = {fit.intercept * 1e3:.3f} ms, R^2 = {fit.rvalue ** 2:.5f}")
    out["idle"] = bench_idle(args, img, rates[-1])
    return out


def bench_idle(args, img, rate) -> dict:
    T = 100
    x = np.clip(img * factor_for_rate(img, rate), 0, 1).astype(np.float32)
    sims = {}
    for name, only in (("first_only", True), ("with_idle_layers", False)):
        net = small_net(np.random.default_rng(2), thr1=1e9, only_first=only)
        sims[name] = Simulator(net, timesteps=T, encoding="poisson", seed=0)
        run_timed(sims[name], x)
    times = {k: [] for k in sims}
    resets = {k: [] for k in sims}
    for _ in range(args.idle_reps):
        for k, s in sims.items():
            t0 = time.perf_counter()
            s.reset(x)
            resets[k].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            s.run()
            times[k].append(time.perf_counter() - t0)
    ta, tb = np.median(times["first_only"]), np.median(times["with_idle_layers"])
    tot = sims["with_idle_layers"].per_layer()
    idle_ops = int(tot["syn_ops"][2:].sum())
    idle_upd = int(tot["updates"][2:].sum())
    q = lambda a: (np.percentile(a, 75) - np.percentile(a, 25))  # noqa: E731
    out = {"timesteps": T, "input_rate": rate, "reps": args.idle_reps,
           "idle_layers": sims["with_idle_layers"].layer_names[2:],
           "median_run_s": {"first_only": ta, "with_idle_layers": tb},
           "iqr_run_s": {"first_only": q(times["first_only"]), "with_idle_layers": q(times["with_idle_layers"])},
           "diff_per_step_ns": (tb - ta) / T * 1e9,
           "first_layer_cost_per_step_ns": ta / T * 1e9,
           "idle_syn_ops": idle_ops, "idle_neuron_updates": idle_upd,
           "median_reset_s": {k: float(np.median(v)) for k, v in resets.items()}}
    print(f"\n== 3b. Idle layers: conv1 never spikes (threshold 1e9), input rate {rate:.3f}, T={T}, "
          f"median of {args.idle_reps}")
    print(f"run(): conv1 only {ta * 1e3:.3f} ms, + {len(out['idle_layers'])} idle layers {tb * 1e3:.3f} ms "
          f"(IQR {q(times['first_only']) * 1e3:.3f} / {q(times['with_idle_layers']) * 1e3:.3f} ms)")
    out["noise_per_step_ns"] = max(out["iqr_run_s"].values()) / T * 1e9
    print(f"difference per step: {out['diff_per_step_ns']:+.1f} ns (run-to-run IQR {out['noise_per_step_ns']:.0f} ns/step; "
          f"conv1's own work: "
          f"{out['first_layer_cost_per_step_ns']:.0f} ns/step); idle layers did {idle_ops} syn ops, "
          f"{idle_upd} neuron updates")
    print(f"reset() (not in run time): {out['median_reset_s']['first_only'] * 1e3:.3f} ms vs "
          f"{out['median_reset_s']['with_idle_layers'] * 1e3:.3f} ms")
    return out


# ----------------------------------------------------------------------------
# 4. VGG-style nets
# ----------------------------------------------------------------------------

VGG_CFG = (64, 64, "A", 128, 128, "A", 256, 256, "A")


def vgg_net(input_shape, gains, seed=3) -> Network:
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    layers, gi = [], 0
    for i, item in enumerate(VGG_CFG):
        if item == "A":
            layers.append(Layer(f"pool{i}", "avgpool2d", kernel=(2, 2), neuron=Neuron("if", threshold=1.0)))
            h, w = h // 2, w // 2
        else:
            layers.append(Layer(f"conv{i}", "conv2d", weight=he(rng, (3, 3, c, item), 9 * c, gains[gi]),
                                padding=(1, 1), neuron=Neuron("if", threshold=1.0, reset="subtract")))
            c = item
            gi += 1
    layers.append(Layer("flat", "flatten"))
    layers.append(Layer("fc", "dense", weight=he(rng, (h * w * c, 10), h * w * c, gains[gi]),
                        neuron=Neuron("if", threshold=1.0, reset="subtract")))
    return Network(input_shape=input_shape, layers=layers, encoding="poisson")


def n_weighted(): return sum(1 for v in VGG_CFG if v != "A") + 1


def layer_rates(sim, T):
    tot = sim.per_layer()
    return tot["spikes"] / (sim.neurons * T), tot


def calibrate_vgg(input_shape, x, target, T, iters):
    """Per-layer gains (He scale x gain) so each weighted layer spikes at ~target.

    Greedy, layer by layer on a truncated copy of the net: gain *= target/rate
    (rate is about proportional to gain for IF neurons with random weights).
    """
    gains = [1.0] * n_weighted()
    full = vgg_net(input_shape, gains)
    weighted = [i for i, l in enumerate(full.layers) if l.kind in ("conv2d", "dense")]
    for k, li in enumerate(weighted):
        for _ in range(iters):
            net = vgg_net(input_shape, gains)
            net.layers = net.layers[: li + 1]
            sim = Simulator(net, timesteps=T, encoding="poisson", seed=0)
            sim.reset(x)
            sim.run()
            rates, _ = layer_rates(sim, T)
            r = float(rates[-1])
            gains[k] *= 8.0 if r <= 0 else float(np.clip(target / r, 1 / 8, 8))
    return gains


def bench_vgg(args, images) -> dict:
    out = {}
    T = 100
    pad = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    inputs = {
        "vgg_28x28x1": (images, "Fashion-MNIST sample, poisson rate = pixel value"),
        "vgg_32x32x3": (np.repeat(pad, 3, axis=3),
                        "Fashion-MNIST padded to 32x32 and repeated over 3 channels (no CIFAR in the repo)"),
    }
    for name, (data, note) in inputs.items():
        shape = data.shape[1:]
        t0 = time.perf_counter()
        gains = calibrate_vgg(shape, data[0], args.target_rate, args.cal_T, args.cal_iters)
        cal_s = time.perf_counter() - t0
        net = vgg_net(shape, gains)
        sim = Simulator(net, timesteps=T, encoding="poisson", seed=0)
        run_timed(sim, data[1], sample_index=1)  # warm-up
        samples = []
        for s in range(2, 2 + args.vgg_samples):
            t = run_timed(sim, data[s], sample_index=s)
            rates, tot = layer_rates(sim, T)
            samples.append({"sample": s, "time_s": t, "syn_ops": int(tot["syn_ops"].sum()),
                            "syn_ops_per_layer": tot["syn_ops"].tolist(), "rates": rates.tolist(),
                            "events": int(sim.events_processed), "neuron_updates": int(tot["updates"].sum())})
        rates = np.mean([s["rates"] for s in samples], axis=0)
        ops = np.mean([s["syn_ops"] for s in samples])
        ops_l = np.mean([s["syn_ops_per_layer"] for s in samples], axis=0)
        tt = np.array([s["time_s"] for s in samples])
        dense_macs = {}
        for c in range(len(sim.plan.conn_i)):
            dense_macs[sim.layer_names[int(sim.plan.conn_i[c, 2])]] = int(sim.plan.fanout_total(c))
        res = {"input_shape": list(shape), "input_note": note, "timesteps": T, "target_rate": args.target_rate,
               "gains": gains, "calibration_s": cal_s, "layers": sim.layer_names,
               "neurons": sim.neurons.tolist(), "mean_rates": rates.tolist(),
               "mean_syn_ops_per_layer": ops_l.tolist(), "dense_macs_per_step": dense_macs,
               "mean_syn_ops": float(ops), "mean_time_s": float(tt.mean()), "median_time_s": float(np.median(tt)),
               "syn_ops_per_s": float(sum(s["syn_ops"] for s in samples) / tt.sum()), "samples": samples}
        out[name] = res
        table(["layer", "neurons", "rate", "syn ops/sample", "ANN MACs (1 pass)"],
              [[ln, n, f"{r:.4f}", f"{o:.3e}", dense_macs.get(ln, "")]
               for ln, n, r, o in zip(sim.layer_names, sim.neurons, rates, ops_l)],
              title=f"4. {name}: 64C3-64C3-AP2-128C3-128C3-AP2-256C3-256C3-AP2-FC10, T={T}, "
                    f"{len(samples)} samples (calibration {cal_s:.1f} s)")
        print(f"gains per weighted layer: {', '.join(f'{g:.3f}' for g in gains)}")
        macs = sum(dense_macs.values())
        res["ann_macs_per_pass"] = macs
        print(f"per sample: {ops:.3e} syn ops (= {ops / macs:.2f} x the {macs:.3e} MACs of one ANN pass), "
              f"{tt.mean():.3f} s (median {np.median(tt):.3f} s); {res['syn_ops_per_s'] / 1e9:.3f} Gops/s")
    return out


# ----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run (< 1 min)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    ap.add_argument("--only", default="1234", help="which parts to run, e.g. '12' or '4' (default 1234)")
    ap.add_argument("--events", type=int, default=None, help="source events for parts 1-2 (default 1e6; quick 1e5)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per timing (default 5; quick 3)")
    ap.add_argument("--points", type=int, default=None, help="input densities in part 3 (default 10; quick 4)")
    ap.add_argument("--image", type=int, default=1, help="Fashion-MNIST sample index used in part 3")
    ap.add_argument("--vgg-samples", type=int, default=None, help="samples per VGG net (default 5; quick 1)")
    ap.add_argument("--target-rate", type=float, default=0.05, help="VGG per-layer spike rate target")
    args = ap.parse_args(argv)
    q = args.quick
    args.events = args.events or (100_000 if q else 1_000_000)
    args.reps = args.reps or (3 if q else 5)
    args.points = args.points or (4 if q else 10)
    args.vgg_samples = args.vgg_samples or (1 if q else 5)
    args.target_s = 0.2 if q else 1.0
    args.idle_reps = 7 if q else 21
    args.cal_T = 20 if q else 100
    args.cal_iters = 2 if q else 3
    out_path = args.out or ROOT / "bench" / "results" / ("engine_speed_quick.json" if q else "engine_speed.json")

    t_start = time.perf_counter()
    info = machine_info()
    print(f"eventsnn engine speed ({'quick' if q else 'full'}) - {info['date']}")
    print(f"{info['cpu_model']} ({info['llvm_host_cpu']}, avx512f={info['avx512f']}), "
          f"{info['logical_cpus']} logical CPUs, {info['platform']}")
    print(f"python {info['python']}, numba {info['numba']}, numpy {info['numpy']}, scipy {info['scipy']}; "
          f"git {info['git_commit'][:10]}{' (eventsnn/ modified)' if info['eventsnn_dirty'] else ''}; "
          f"load avg {info['loadavg_start'][0]:.2f}")
    t0 = time.perf_counter()
    Simulator(small_net(np.random.default_rng(0)), timesteps=2, encoding="poisson").reset(
        np.zeros((28, 28, 1), np.float32)).run()
    info["engine_load_or_compile_s"] = time.perf_counter() - t0
    print(f"engine load/compile (excluded from all timings): {info['engine_load_or_compile_s']:.1f} s")

    images = load_dataset(ROOT / "data" / "fashion-mnist-sample.npz", limit=16).x
    results = {"machine": info, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    if "1" in args.only or "2" in args.only:
        results["scatter_vs_engine"] = bench_scatter(args)
    if "3" in args.only:
        results["scaling"] = bench_scaling(args, images)
    if "4" in args.only:
        results["vgg"] = bench_vgg(args, images)
    info["loadavg_end"] = list(os.getloadavg())
    info["total_s"] = time.perf_counter() - t_start
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"\ntotal {info['total_s']:.0f} s; load avg at end {info['loadavg_end'][0]:.2f}; wrote {out_path}")


if __name__ == "__main__":
    main()
