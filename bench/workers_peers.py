#!/usr/bin/env python
"""eventsnn's default sharded run (every core) on net B against the peers' 2-thread times.

Net B is ``bench/peers_speed.py``'s VGG16 on 32x32x3 (IF, T = 100, direct
input), rebuilt here bit for bit from a recorded peers run (``--recorded``:
weight seed, per-layer gains for 1 % and 5 % spikes per neuron per step, and
the peers' medians). The recording must come from the machine this runs on:
the default, ``bench/results/peers_speed_B_session5.json``, is the Intel Xeon
of sessions 5-7; ``peers_speed_B_session8.json`` the AMD EPYC (AVX2) of
session 8, where the peers ran 1.7-2.5x slower. eventsnn is timed now, as ``eventsnn run``
runs by default: :func:`eventsnn.parallel.run_sharded` with every core of this
process (threads), on ``--samples`` and on ``--samples-long`` samples, median
of ``--reps``. Each timing includes the run's set-up (compiling the plan,
~0.2-0.3 s for VGG16); the *marginal* time per sample,
(t_long - t_short) / (n_long - n_short), is the steady-state cost a data set
run pays per sample, and is what the ratios use (the peers' timings exclude
their set-up too). The peers are **not re-run** here; the ratios compare a
measurement taken now (load average recorded) with the recorded one.

Usage::

    python bench/workers_peers.py            # writes bench/results/workers_peers.json
    python bench/workers_peers.py --report   # the markdown table (BENCHMARKS.md §8) from --out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine_info  # noqa: E402
from peers_speed import SPECS, load_inputs, recorded_net_b  # noqa: E402

from eventsnn.parallel import default_workers, run_sharded  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

RECORDED = ROOT / "bench" / "results" / "peers_speed_B_session5.json"


def peer_best(timings, rate_index, threads, batch=None):
    """(peer, batch, median s/sample) of the fastest peer with ``threads`` threads (and ``batch``, if given)."""
    rows = [t for t in timings if t["net"] == "B" and t["rate_index"] == rate_index and t["threads"] == threads
            and (batch is None or t["batch"] == batch)]
    if not rows:
        return None
    best = min(rows, key=lambda t: t["per_sample_median_s"])
    return {"peer": best["peer"], "batch": best["batch"], "per_sample_median_s": best["per_sample_median_s"]}


def report(doc: dict) -> str:
    """One markdown table: per spike rate, eventsnn's marginal time and the ratios to the peers."""
    n_short, n_long = doc["samples"]
    m = doc["machine"]
    lines = [f"{m.get('date', '')} {m.get('cpu_model', '')}, {doc['workers']} workers, T = {doc['timesteps']}, "
             f"median of {doc['reps']}; peers from `bench/results/{Path(doc['recorded_peers']).name}`".strip(), "",
             f"| spike rate | eventsnn default run, marginal | with set-up, {n_short} / {n_long} samples "
             "| fastest 2-thread peer, batch 1 | best 2-thread peer configuration | load average |",
             "|---|---|---|---|---|---|"]
    for r in doc["rates"]:
        ms = 1000 * r["eventsnn_marginal_s"]
        setup = r["eventsnn_s_per_sample_with_setup"]
        b1, best = r["peer_2_threads_batch_1"], r["peer_2_threads_best_batch"]
        loads = [x for pair in r["loadavg"] for x in pair]
        lines.append(
            f"| {100 * r['target_rate']:g} % | **{ms:.1f} ms** | {1000 * setup[str(n_short)]:.1f} / "
            f"{1000 * setup[str(n_long)]:.1f} ms | {b1['peer']} {1000 * b1['per_sample_median_s']:.1f} ms → "
            f"**{r['speedup_vs_batch_1']:.1f}×** | {best['peer']} batch {best['batch']}, "
            f"{1000 * best['per_sample_median_s']:.1f} ms → {r['speedup_vs_best_batched']:.1f}× "
            f"| {min(loads):.1f}–{max(loads):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--samples-long", type=int, default=160)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--recorded", type=Path, default=RECORDED, help="a bench/peers_speed.py JSON with net B")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "workers_peers.json"))
    ap.add_argument("--report", action="store_true", help="print the markdown table from the JSON at --out")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.out).read_text())))
        return 0
    rec = json.loads(args.recorded.read_text())
    T = rec["args"]["T"]
    spec = SPECS["B"]
    xs = load_inputs(spec, args.samples_long)
    workers = default_workers()
    doc = {"machine": machine_info(), "workers": workers, "samples": [args.samples, args.samples_long],
           "reps": args.reps, "timesteps": T, "recorded_peers": str(args.recorded), "rates": []}
    timings = rec["torch"]["timings"]
    for ri, r in enumerate(rec["nets"]["B"]["rates"]):
        if r["target"] not in (0.01, 0.05):
            continue
        net = recorded_net_b(rec, r["target"])
        run_dataset(net, xs[:1], timesteps=T, encoding="direct")  # kernels loaded, not timed
        walls = {args.samples: [], args.samples_long: []}
        loads = []
        for _ in range(args.reps):
            for n in walls:
                load0 = os.getloadavg()[0]
                t0 = time.perf_counter()
                res = run_sharded(net, xs[:n], None, workers=workers, timesteps=T, encoding="direct")
                walls[n].append(time.perf_counter() - t0)
                loads.append([load0, os.getloadavg()[0]])
        short, long_ = (float(np.median(walls[n])) for n in (args.samples, args.samples_long))
        ev = (long_ - short) / (args.samples_long - args.samples)
        b1 = peer_best(timings, ri, 2, batch=1)
        batched = peer_best(timings, ri, 2)
        rate = float(np.mean(res.spikes[:, 1:].mean(0) / (res.neurons[1:] * T)))  # per neuron per step, mean over layers
        two = r["eventsnn"].get("thr2_reset_run", {}).get("median_s")
        entry = {"target_rate": r["target"], "measured_mean_rate": rate,
                 "eventsnn_wall_s": {str(n): w for n, w in walls.items()},
                 "eventsnn_s_per_sample_with_setup": {str(args.samples): short / args.samples,
                                                      str(args.samples_long): long_ / args.samples_long},
                 "eventsnn_marginal_s": ev, "loadavg": loads,
                 "recorded_eventsnn_2_simulators_s": two,
                 "peer_2_threads_batch_1": b1, "peer_2_threads_best_batch": batched,
                 "speedup_vs_batch_1": b1["per_sample_median_s"] / ev if b1 else None,
                 "speedup_vs_best_batched": batched["per_sample_median_s"] / ev if batched else None}
        doc["rates"].append(entry)
        print(f"rate {r['target']:.2f}: eventsnn ({workers} workers) marginal {1000 * ev:.1f} ms/sample "
              f"({1000 * short / args.samples:.1f} / {1000 * long_ / args.samples_long:.1f} ms with set-up over "
              f"{args.samples} / {args.samples_long} samples; 2 Simulators recorded "
              f"{1000 * two:.1f} ms) [load {loads[0][0]:.1f}]; fastest 2-thread peer at batch 1 ({b1['peer']}) "
              f"{1000 * b1['per_sample_median_s']:.1f} ms -> {entry['speedup_vs_batch_1']:.1f}x; best 2-thread "
              f"configuration ({batched['peer']}, batch {batched['batch']}) "
              f"{1000 * batched['per_sample_median_s']:.1f} ms -> {entry['speedup_vs_best_batched']:.1f}x", flush=True)
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
