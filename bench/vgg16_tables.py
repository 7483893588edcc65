#!/usr/bin/env python
"""Markdown tables for BENCHMARKS.md from the trained-VGG16 results (bench/run_vgg16.sh).

Reads (defaults: the recorded runs of the shipped width-1/4 net) eventsnn's
``bench/results/vgg16w4_conversion_*.json`` (bench/conversion.py; ``*_joined``
joined from chunks by bench/merge_chunks.py), the peers'
``vgg16w4_peers_joined.json`` (bench/vgg16_peers.py) and the paired tests
``vgg16w4_paired_joined.json`` (bench/conversion_paired.py), all on the full
test set (bench/run_vgg16_full.sh), and prints accuracy and synaptic ops per sample for every T,
eventsnn's configurations against the peers', then the paired tests; then the
same for the configurations run on the first 2000 test images only
(``*_2k``); then (if present) ``vgg16w4_speed.json``
(bench/vgg16_speed.py): eventsnn's time per image beside every peer
configuration timed in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

R = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eventsnn", default="vgg16w4_conversion_10k.json,vgg16w4_conversion_k4_joined.json",
                    help="comma list of files in bench/results (the full-test-set runs)")
    ap.add_argument("--peers", default="vgg16w4_peers_joined.json")
    ap.add_argument("--paired", default="vgg16w4_paired_joined.json")
    ap.add_argument("--paired-fixed", default="vgg16w4_paired_k4_joined.json",
                    help="paired tests of one eventsnn configuration at every T")
    ap.add_argument("--eventsnn-subset", default="vgg16w4_conversion_mem_2k.json,vgg16w4_conversion_k2_2k.json,"
                    "vgg16w4_conversion_k4_2k.json", help="runs on the first images only (empty: none)")
    ap.add_argument("--peers-subset", default="vgg16w4_peers_2k.json")
    ap.add_argument("--paired-subset", default="vgg16w4_paired_2k.json")
    ap.add_argument("--speed", default="vgg16w4_speed.json", help="bench/vgg16_speed.py's JSON (skipped if absent)")
    args = ap.parse_args(argv)
    files = [f for f in args.eventsnn.split(",") if f]
    pe = json.loads((R / args.peers).read_text())
    evs = [json.loads((R / f).read_text()) for f in files]
    ev = evs[0]
    n_pe = pe["settings"]["samples"]
    print(f"ANN (eventsnn.forward): {100 * ev['ann']['test_10000']['eventsnn_forward']:.2f} % on 10000"
          + (f"; on the first {n_pe}: {100 * pe['ann']['accuracy_same_samples']:.2f} %" if n_pe < 10000 else "")
          + "\n")
    accuracy_table(evs, pe)
    paired_table(R / args.paired)
    fixed = R / args.paired_fixed
    if fixed.exists():
        rows = json.loads(fixed.read_text())["rows"]
        if rows == json.loads((R / args.paired).read_text())["rows"]:
            print(f"\n{rows[0]['eventsnn']} was eventsnn's best at every T, so the paired tests of that one "
                  "configuration are the ones above.")
        else:
            print("\nOne configuration at every T:")
            paired_table(fixed)
    subset = [f for f in args.eventsnn_subset.split(",") if f]
    if subset:
        pe_sub = json.loads((R / args.peers_subset).read_text())
        print(f"\nOn the first {pe_sub['settings']['samples']} test images (ANN "
              f"{100 * pe_sub['ann']['accuracy_same_samples']:.2f} %):\n")
        accuracy_table([json.loads((R / f).read_text()) for f in subset], pe_sub)
        paired_table(R / args.paired_subset)
        evs += [json.loads((R / f).read_text()) for f in subset]
    print("\nms per sample at T = 500: eventsnn (batch 1, one process per core) " + ", ".join(
        f"{c['method']}/{c['decoding']} K = {e['settings'].get('max_spikes', 1)} ({c['samples']}): "
        f"{1000 * c['seconds_per_sample_one_core']:.0f} per core"
        for e in evs for c in e["configs"]) + "; peers (one thread) " + ", ".join(
        f"{p['peer']} {1000 * p['seconds_per_sample']:.0f} (batch {p['batch']})" for p in pe["peers"]
        if p["status"] == "ok"))
    speed = R / args.speed
    if speed.exists():
        print_speed(json.loads(speed.read_text()))
    return 0


def accuracy_table(evs: list, pe: dict) -> None:
    """Accuracy % (synaptic ops per image) per T: eventsnn's runs, then the peers'."""
    n_pe = pe["settings"]["samples"]
    cps = evs[0]["settings"]["checkpoints"]
    print("| converter (images) | " + " | ".join(f"T = {t}" for t in cps) + " |")
    print("|---|" + "---|" * len(cps))
    for ev in evs:
        st = ev["settings"]
        for c in ev["configs"]:
            n = c["samples"]
            cells = []
            by_t = {r["timesteps"]: r for r in c["sweep"]}
            for t in cps:
                r = by_t.get(t)
                if r is None:
                    cells.append("-")
                    continue
                sub = r.get(f"accuracy_first_{n_pe}")
                extra = f" [{100 * sub:.2f} on {n_pe}]" if sub is not None and n > n_pe else ""
                cells.append(f"{100 * r['accuracy']:.2f}{extra} ({r['syn_ops_per_sample'] / 1e6:.1f} M)")
            k = st.get("max_spikes", 1)
            print(f"| eventsnn {c['method']}/{c['decoding']}, v_init {st['v_init']}"
                  f"{f', K = {k}' if k > 1 else ''} ({n}) | " + " | ".join(cells) + " |")
    for p in pe["peers"]:
        if p["status"] != "ok":
            print(f"| {p['peer']} | failed: {p['error']} |")
            continue
        cells = {r["timesteps"]: r for r in p["sweep"]}
        row = []
        for t in cps:
            r = cells.get(t)
            if r is None:
                row.append("-")
                continue
            acc = r["accuracy_membrane"]
            spk = r["accuracy_spikes"]
            txt = f"{100 * acc:.2f}" + (f" / spk {100 * spk:.2f}" if spk is not None else "")
            row.append(f"{txt} ({r['syn_ops_per_sample'] / 1e6:.1f} M)")
        print(f"| {p['peer']} ({p['samples']}) | " + " | ".join(row) + " |")


def paired_table(path: Path) -> None:
    """bench/conversion_paired.py's rows (McNemar per T), if the file exists."""
    if not path.exists():
        return
    rows = json.loads(path.read_text())["rows"]
    print("\n| T | images | eventsnn best (acc %) | best peer (acc %) | eventsnn only right | peer only right "
          "| p (McNemar) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['timesteps']} | {r['samples']} | {r['eventsnn']} ({100 * r['eventsnn_accuracy']:.2f}) | "
              f"{r['peer']} ({100 * r['peer_accuracy']:.2f}) | {r['eventsnn_only']} | {r['peer_only']} | "
              f"{r['p_value']:.2g} |")


def print_speed(sp: dict) -> None:
    ev, rows = sp["eventsnn"], sp["peers"]["rows"]
    print(f"\nSpeed at T = {sp['timesteps']} (bench/vgg16_speed.py, one run), ms per image:\n")
    print("| simulator | threads / workers | batch | ms per image |")
    print("|---|---|---|---|")
    print(f"| eventsnn (default `run`, marginal) | {ev['workers']} | 1 | {1000 * ev['marginal_s_per_image']:.1f} |")
    print(f"| eventsnn (one core) | 1 | 1 | {1000 * ev['one_core_s_per_image']:.1f} |")
    for r in sorted(rows, key=lambda r: (r["peer"], r["threads"], r["batch"])):
        print(f"| {r['peer']} | {r['threads']} | {r['batch']} | {1000 * r['seconds_per_image']:.1f} |")
    s = sp["summary"]
    print(f"\neventsnn against the fastest peer with {s['peer_threads']} threads: "
          f"{s['speedup_vs_batch_1']:.2f}x at batch 1 ({s['fastest_peer_batch_1']['peer']}), "
          f"{s['speedup_vs_best_batch']:.2f}x against its best batch ({s['fastest_peer_any_batch']['peer']}, "
          f"batch {s['fastest_peer_any_batch']['batch']}); {ev['syn_ops_per_image'] / 1e6:.1f} M syn ops per image, "
          f"mean rate {ev['mean_rate_per_neuron_step']:.4f} per neuron per step")


if __name__ == "__main__":
    sys.exit(main())
