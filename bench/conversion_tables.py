#!/usr/bin/env python
"""Markdown tables and the goal check from bench/results/conversion.json and conversion_peers.json.

    python bench/conversion_tables.py            # prints markdown (used in bench/conversion_README.md)

Standard library only; runs in either environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "bench" / "results"


def pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def kilo(v):
    if v is None:
        return "-"
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k"


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--eventsnn", default=str(RES / "conversion.json"),
                    help="one or more eventsnn results (comma-separated); their configs are pooled")
    ap.add_argument("--peers", default=str(RES / "conversion_peers.json"))
    args = ap.parse_args(argv)
    runs = [json.loads(Path(f).read_text()) for f in args.eventsnn.split(",") if f]
    ev = runs[0]
    for run in runs:  # label each config with the run's conversion settings
        st = run["settings"]
        for c in run["configs"]:
            extra = []
            if st.get("pools", "spiking") == "spiking":
                extra.append("spiking pools")
            if c["method"] == "percentile" and c.get("percentile") not in (None, 99.9):
                extra.append(f"{c['percentile']:g} %")
            if st.get("v_init"):
                extra.append(f"v_init {st['v_init']:g}")
            if st.get("max_spikes", 1) > 1:
                extra.append(f"max_spikes {st['max_spikes']}")
            c["label"] = f"{c['method']}/{c['decoding']}" + (f" ({', '.join(extra)})" if extra else "")
    ev = dict(ev, configs=[c for run in runs for c in run["configs"]])
    peers_path = Path(args.peers)
    pe = json.loads(peers_path.read_text()) if peers_path.exists() else None
    cps = ev["settings"]["checkpoints"]
    m = ev["machine"]
    print(f"eventsnn: {m['cpu_model']}, {m['logical_cpus']} logical CPUs, {m['date']}, git {m['git_commit'][:10]}, "
          f"load avg {m['loadavg_start'][0]:.1f} at start / {m['loadavg_end'][0]:.1f} at end, "
          f"total {m['total_s'] / 60:.0f} min\n")
    a = ev["ann"]["test_10000"]
    print(f"Source ANN on the 10000 test images: {pct(a['eventsnn_forward'])} % (eventsnn.ann.forward), "
          f"{pct(a['onnxruntime']) if not isinstance(a['onnxruntime'], str) else a['onnxruntime']} % "
          f"(onnxruntime {a.get('onnxruntime_version', '')}, max |logit diff| {a.get('max_abs_logit_diff', 0):.1e})\n")

    print("### eventsnn (accuracy % / spikes per sample / synaptic ops per sample)\n")
    print("| config | samples | " + " | ".join(f"T={c}" for c in cps) + " | ms/sample (1 core, one worker) |")
    print("|---|---|" + "---|" * len(cps) + "---|")
    for c in ev["configs"]:
        cells = [f"{pct(r['accuracy'])} / {kilo(r['spikes_per_sample'])} / {kilo(r['syn_ops_per_sample'])}"
                 for r in c["sweep"]]
        print(f"| {c['label']} | {c['samples']} | " + " | ".join(cells)
              + f" | {1000 * c['seconds_per_sample_one_core']:.1f} |")
    print()

    if pe is None:
        return 0
    pm = pe["machine"]
    n_peer = pe["settings"]["samples"]
    print(f"peers: {pm['cpu_model']}, {pm['logical_cpus']} logical CPUs, torch {pm['versions']['torch']} "
          f"({pm['torch_threads']} threads), spikingjelly {pm['versions']['spikingjelly']}, sinabs "
          f"{pm['versions']['sinabs']}, {pm['date']}, load avg {pm['loadavg_start'][0]:.1f} / "
          f"{pm['loadavg_end'][0]:.1f}, total {pm['total_s'] / 60:.0f} min\n")
    print(f"torch rebuild vs ONNX: max |logit diff| {pe['ann']['max_abs_logit_diff_vs_onnx']:.1e} "
          f"({pe['ann']['onnx_reference_images']} images), ANN {pct(pe['ann']['torch_accuracy'])} % on 10000, "
          f"{pct(pe['ann']['accuracy_same_samples'])} % on the first {n_peer}\n")
    print(f"### Peers, first {n_peer} test images (accuracy % membrane [spike readout] / spikes per sample "
          f"/ synaptic ops per sample, per-spike rule)\n")
    print("| peer | samples | " + " | ".join(f"T={c}" for c in cps) + " | ms/sample (wall, torch threads) |")
    print("|---|---|" + "---|" * len(cps) + "---|")
    for p in pe["peers"]:
        if p["status"] != "ok":
            print(f"| {p['peer']} | - | failed: {p['error']} |")
            continue
        cells = []
        for r in p["sweep"]:
            acc = pct(r["accuracy_membrane"])
            if r["accuracy_spikes"] is not None:
                acc += f" [{pct(r['accuracy_spikes'])}]"
            cells.append(f"{acc} / {kilo(r['spikes_per_sample'])} / {kilo(r['syn_ops_per_sample'])}")
        print(f"| {p['peer']} | {p['samples']} | " + " | ".join(cells) + f" | {1000 * p['seconds_per_sample']:.1f} |")
    print()
    print("Graded-event lower bound of the peers' synaptic ops per sample (one fan-out per nonzero pooled value):\n")
    print("| peer | " + " | ".join(f"T={c}" for c in cps) + " |")
    print("|---|" + "---|" * len(cps))
    for p in pe["peers"]:
        if p["status"] == "ok":
            print(f"| {p['peer']} | " + " | ".join(kilo(r["syn_ops_graded_per_sample"]) for r in p["sweep"]) + " |")
    print()

    # Same images: eventsnn on the peers' subset.
    key = f"accuracy_first_{n_peer}"
    print(f"### Goal check on the same {n_peer} images\n")
    ann_sub = pe["ann"]["accuracy_same_samples"]
    best_ev = {}
    for c in ev["configs"]:
        for r in c["sweep"]:
            acc = r.get(key, r["accuracy"] if c["samples"] == n_peer else None)
            if acc is None:
                continue
            t = r["timesteps"]
            if t not in best_ev or acc > best_ev[t][0] or (acc == best_ev[t][0] and r["syn_ops_per_sample"] < best_ev[t][2]):
                best_ev[t] = (acc, c["label"], r["syn_ops_per_sample"])
    print(f"ANN on these images: {pct(ann_sub)} %\n")
    print("| T | best eventsnn (config, acc %, syn ops) | best peer (acc %, syn ops) | >= best peer | "
          "within 0.5 of ANN | cheapest peer at >= eventsnn's acc (syn ops) | "
          "fewest eventsnn ops at this T for >= the best peer's acc |")
    print("|---|---|---|---|---|---|---|")
    for t in cps:
        if t not in best_ev:
            continue
        acc, name, ops = best_ev[t]
        best_p = None
        cheapest = None
        for p in pe["peers"]:
            if p["status"] != "ok":
                continue
            r = next((r for r in p["sweep"] if r["timesteps"] == t), None)
            if r is None:  # this peer run stopped before T
                continue
            pacc = max(v for v in (r["accuracy_membrane"], r["accuracy_spikes"]) if v is not None)
            if best_p is None or pacc > best_p[0]:
                best_p = (pacc, p["peer"], r["syn_ops_per_sample"])
            # any peer at any T reaching eventsnn's accuracy: its cheapest ops
            for r2 in p["sweep"]:
                pacc2 = max(v for v in (r2["accuracy_membrane"], r2["accuracy_spikes"]) if v is not None)
                if pacc2 >= acc - 1e-6 and (cheapest is None or r2["syn_ops_per_sample"] < cheapest[0]):
                    cheapest = (r2["syn_ops_per_sample"], f"{p['peer']} T={r2['timesteps']}")
        if best_p is None:
            continue
        ok_peer = "yes" if acc >= best_p[0] - 1e-6 else f"no ({pct(acc - best_p[0])})"
        ok_ann = "-" if t < 50 else ("yes" if acc >= ann_sub - 0.005 - 1e-6 else f"no ({pct(acc - ann_sub)})")
        ch = "none reaches it" if cheapest is None else f"{kilo(cheapest[0])} ({cheapest[1]})"
        # the ops clause at this T: eventsnn's cheapest config that matches the best peer here
        match = [(r["syn_ops_per_sample"], c["label"]) for c in ev["configs"] for r in c["sweep"]
                 if r["timesteps"] == t and r.get(key, r["accuracy"] if c["samples"] == n_peer else -1)
                 >= best_p[0] - 1e-6]
        if match:
            mo, ml = min(match)
            fewer = "fewer" if mo <= best_p[2] else f"{mo / best_p[2]:.1f}x more"
            eco = f"{kilo(mo)} ({ml}): {fewer} than {best_p[1]}"
        else:
            eco = "none matches"
        print(f"| {t} | {name}, {pct(acc)}, {kilo(ops)} | {best_p[1]}, {pct(best_p[0])}, {kilo(best_p[2])} | "
              f"{ok_peer} | {ok_ann} | {ch} | {eco} |")

    # Iso-accuracy: the fewest syn ops (any config, any T) that reach a target accuracy.
    points = {"eventsnn": []}
    for c in ev["configs"]:
        for r in c["sweep"]:
            acc = r.get(key, r["accuracy"] if c["samples"] == n_peer else None)
            if acc is not None:
                points["eventsnn"].append((acc, r["syn_ops_per_sample"], f"{c['label']} T={r['timesteps']}"))
    for p in pe["peers"]:
        if p["status"] != "ok":
            continue
        for r in p["sweep"]:
            acc = max(v for v in (r["accuracy_membrane"], r["accuracy_spikes"]) if v is not None)
            points.setdefault(p["peer"], []).append((acc, r["syn_ops_per_sample"], f"T={r['timesteps']}"))
            points.setdefault(p["peer"] + " (graded)", []).append((acc, r["syn_ops_graded_per_sample"], f"T={r['timesteps']}"))
    targets = sorted({0.88, 0.90, 0.91, 0.92, 0.922, round(ann_sub - 0.005, 6), round(ann_sub, 6)})
    print(f"\n### Fewest synaptic ops per sample to reach an accuracy (same {n_peer} images, any config and T)\n")
    print("| library | " + " | ".join(f">= {pct(t)} %" for t in targets) + " |")
    print("|---|" + "---|" * len(targets))
    for lib, pts in points.items():
        cells = []
        for t in targets:
            ok = [q for q in pts if q[0] >= t - 1e-6]
            if not ok:
                cells.append("not reached")
            else:
                best = min(ok, key=lambda q: q[1])
                cells.append(f"{kilo(best[1])} ({best[2]})")
        print(f"| {lib} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
