#!/usr/bin/env python
"""Join chunked benchmark runs over consecutive test images into one result, as if run in one go.

A full-test-set conversion run of the trained VGG16 takes core-hours; run in
chunks (``--start`` / ``--samples`` of ``bench/conversion.py`` and
``bench/vgg16_peers.py``), it can be spread over processes and sessions, and a
stopped run keeps its finished chunks. This script joins the chunks' JSON and
``*_predictions.npz`` files::

    python bench/merge_chunks.py --out bench/results/vgg16w4_peers_10k.json \\
        bench/results/vgg16w4_peers_2k.json bench/results/vgg16w4_peers_2000_4000.json ...

The chunks must cover consecutive test images from the first chunk's start,
with the same settings (everything but the sample count and start) and the
same configurations. In the joined result:

- predictions and labels are concatenated (``conversion_paired.py`` reads them);
- per-sample averages (accuracies, spikes, synaptic ops, seconds per sample)
  are the sample-weighted means of the chunks' — exactly the mean over all
  samples, since each chunk's figure is a mean over its own samples;
- totals (samples, wall and simulation seconds) are summed;
- accuracies on the first N images (``accuracy_first_N``, the ANN's
  ``first_N``) are recomputed from the joined predictions where the chunks
  cannot give them; a chunk's p95 time is not a mean, so it is dropped;
- values every chunk agrees on (scales, thresholds, settings) are kept, and a
  disagreement on one of them is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SUMMED = {"samples", "wall_s", "simulate_s", "share_wall_s", "total_s"}
LISTED = {"date", "git_commit", "eventsnn_dirty"}  # kept as the list of the chunks' distinct values
# per-sample means: sample-weighted; so is every number in a per-T or per-layer row (ROWS). Any other
# number (scales, thresholds, settings) must be the same in every chunk.
AVERAGED = {"final_accuracy", "ann_accuracy_same_samples", "accuracy_same_samples", "analog_macs_per_sample",
            "seconds_per_sample_one_core", "seconds_per_sample", "wall_s_per_sample", "convert_s"}
ROWS = {"sweep", "layers_at_T"}
DROPPED = {"seconds_per_sample_p95", "command", "loadavg_start", "loadavg_end", "engine_warmup_s", "start",
           "finished"}


def predictions_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + "_predictions.npz")


def merge_values(key: str, values: list, weights: np.ndarray, where: str, averaged: bool = False):
    """One field of the joined result from the chunks' values of it (named ``key``; inside a row if averaged)."""
    if key in LISTED:
        return [json.loads(v) for v in dict.fromkeys(json.dumps(v) for v in values)]
    if all(isinstance(v, dict) for v in values):
        keys = list(values[0])
        if any(list(v) != keys for v in values):
            raise SystemExit(f"{where}: the chunks have different fields")
        return {k: merge_values(k, [v[k] for v in values], weights, f"{where}.{k}", averaged or k in ROWS)
                for k in keys if k not in DROPPED}
    if all(isinstance(v, list) for v in values):
        if any(len(v) != len(values[0]) for v in values):
            raise SystemExit(f"{where}: the chunks have lists of different lengths")
        return [merge_values(key, list(col), weights, f"{where}[{i}]", averaged)
                for i, col in enumerate(zip(*values))]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if key in SUMMED and numbers:
        return sum(values)
    if all(v == values[0] for v in values):
        return values[0]
    if numbers and (averaged or key in AVERAGED):
        return float(np.dot(weights, values) / weights.sum())
    if any(v is None for v in values) and not all(v is None for v in values):
        raise SystemExit(f"{where}: some chunks have a value and some have none")
    raise SystemExit(f"{where}: the chunks disagree ({values[0]!r} vs {values[1]!r})")


def strip_subsets(obj):
    """Drop the 'first N' accuracies: a chunk's count from its own start; they are recomputed."""
    if isinstance(obj, dict):
        return {k: strip_subsets(v) for k, v in obj.items() if not k.startswith("accuracy_first_")}
    if isinstance(obj, list):
        return [strip_subsets(v) for v in obj]
    return obj


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chunks", nargs="+", type=Path, help="the chunks' JSON files, in test-image order")
    ap.add_argument("--out", type=Path, required=True, help="joined JSON (its _predictions.npz goes beside it)")
    ap.add_argument("--subsets", default="1000,2000,5000",
                    help="recompute the accuracy on the first N joined images for these N")
    args = ap.parse_args(argv)
    if args.out.resolve() in {c.resolve() for c in args.chunks}:
        raise SystemExit("--out must not be one of the chunks")
    docs = [json.loads(c.read_text()) for c in args.chunks]
    preds = [dict(np.load(predictions_path(c))) for c in args.chunks]
    kinds = {d["benchmark"] for d in docs}
    if len(kinds) != 1 or not kinds <= {"bench/conversion.py", "bench/vgg16_peers.py"}:
        raise SystemExit(f"cannot join these benchmarks: {sorted(kinds)}")
    kind = kinds.pop()

    # consecutive test images, from the first chunk's start
    starts = [int(d["settings"].get("start", 0)) for d in docs]
    sizes = [len(p["labels"]) for p in preds]
    for i in range(1, len(docs)):
        if starts[i] != starts[i - 1] + sizes[i - 1]:
            raise SystemExit(f"{args.chunks[i]}: starts at test image {starts[i]}, expected "
                             f"{starts[i - 1] + sizes[i - 1]} (chunks must be consecutive and in order)")
    keys = set(preds[0]) - {"start"}
    if any(set(p) - {"start"} != keys for p in preds) or any(
            not np.array_equal(p["checkpoints"], preds[0]["checkpoints"]) for p in preds):
        raise SystemExit("the chunks do not hold the same configurations and checkpoints")
    joined = {k: np.concatenate([p[k] for p in preds]) for k in keys if k not in ("checkpoints", "start")}
    joined["checkpoints"] = preds[0]["checkpoints"]
    joined["start"] = np.array(starts[0])
    labels = joined["labels"].astype(np.int64)
    n = len(labels)
    subsets = sorted({int(s) for s in args.subsets.split(",") if s.strip() and int(s) < n})

    weights = np.array(sizes, dtype=float)
    settings = merge_values("", [{k: v for k, v in d["settings"].items() if k not in ("samples", "start")}
                                 for d in docs], weights, "settings")
    settings.update(samples=n, start=starts[0])
    out = {"benchmark": kind, "joined_from": [str(c) for c in args.chunks],
           "machine": merge_values("", [d["machine"] for d in docs], weights, "machine"), "settings": settings}
    cps = preds[0]["checkpoints"].tolist()
    if kind == "bench/conversion.py":
        names = [[f"{c['method']}:{c['decoding']}" for c in d["configs"]] for d in docs]
        if any(nm != names[0] for nm in names):
            raise SystemExit("the chunks do not hold the same configurations")
        configs = []
        for i, name in enumerate(names[0]):
            cfg = merge_values("", [strip_subsets(d["configs"][i]) for d in docs], weights, name)
            cfg["wall_s_per_sample"] = cfg["wall_s"] / n
            hit = joined[name] == labels[:, None]
            for row in cfg["sweep"]:
                k = cps.index(row["timesteps"])
                if abs(row["accuracy"] - hit[:, k].mean()) > 1e-9:
                    raise SystemExit(f"{name}, T = {row['timesteps']}: the chunks' accuracies do not match "
                                     "their predictions")
                row.update({f"accuracy_first_{s}": float(hit[:s, k].mean()) for s in subsets})
            configs.append(cfg)
        ann = {"test_10000": docs[0]["ann"]["test_10000"]}
        # the ANN on the joined images, from the chunks' ANN accuracy on their own images
        own = [d["ann"][f"first_{len(p['labels'])}"]["eventsnn_forward"] for d, p in zip(docs, preds)
               if f"first_{len(p['labels'])}" in d["ann"]]
        if starts[0] == 0 and len(own) == len(docs):
            ann[f"first_{n}"] = {"eventsnn_forward": float(np.dot(weights, own) / n)}
        out.update(ann=ann, configs=configs)
    else:
        peers = [[p["peer"] for p in d["peers"]] for d in docs]
        if any(pp != peers[0] for pp in peers):
            raise SystemExit("the chunks do not hold the same peers")
        # the ANN's own 'samples' is the 10k it was checked on, not a chunk size
        out["ann"] = merge_values("", [{k: v for k, v in d["ann"].items() if k != "samples"} for d in docs],
                                  weights, "ann")
        out["ann"]["samples"] = docs[0]["ann"]["samples"]
        out["peers"] = [merge_values("", [d["peers"][i] for d in docs], weights, name)
                        for i, name in enumerate(peers[0])]
        for p in out["peers"]:
            if p.get("status") == "ok":
                p["seconds_per_sample"] = p["simulate_s"] / n
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1, default=float))
    np.savez_compressed(predictions_path(args.out), **joined)
    tmp.replace(args.out)
    print(f"joined {len(docs)} chunks: test images {starts[0]}..{starts[0] + n - 1} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
