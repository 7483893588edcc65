#!/usr/bin/env python
"""Paired comparison of eventsnn's and the peers' conversions on the same test images.

Accuracy differences of a few images between two converters on one test set are
not evidence by themselves. Both classify the *same* images, so the right test
is McNemar's: only the discordant images count, b = eventsnn right and the peer
wrong, c = the reverse; under "equally accurate" b ~ Binomial(b + c, 1/2). The
exact two-sided p-value is ``scipy.stats.binomtest(b, b + c, 0.5)``.

For every T it pairs eventsnn's most accurate configuration with the most
accurate peer (membrane readout, or sinabs' spike readout where better), from
the per-sample predictions that ``conversion.py`` and ``conversion_peers.py``
save beside their JSON (``*_predictions.npz``)::

    python bench/conversion_paired.py \\
        --eventsnn bench/results/conversion_predictions.npz,bench/results/conversion_k4_vinit05_predictions.npz \\
        --peers bench/results/conversion_peers_10k_T200_predictions.npz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]


def load(paths: str, tag_files: bool) -> tuple:
    """{label: (checkpoints, predictions [n, len(checkpoints)])} and the labels, from npz files."""
    configs, labels, first = {}, None, None
    for path in (p for p in paths.split(",") if p):
        d = np.load(path)
        start = int(d["start"]) if "start" in d.files else 0  # a chunk of the test set (merge_chunks.py)
        if first is None:
            first = start
        elif start != first:
            raise SystemExit(f"{path}: starts at test image {start}, the other files at {first}")
        if labels is None:
            labels = d["labels"].astype(np.int64)
        elif not np.array_equal(labels[: len(d["labels"])], d["labels"][: len(labels)]):
            raise SystemExit(f"{path}: its labels are not those of the other files")
        for key in d.files:
            if key in ("labels", "checkpoints", "start"):
                continue
            name = f"{Path(path).stem.removesuffix('_predictions')}:{key}" if tag_files else key
            configs[name] = (d["checkpoints"].tolist(), d[key].astype(np.int64))
    return configs, labels, first


def best_at(configs: dict, labels: np.ndarray, t: int, n: int):
    """(label, correct[n]) of the most accurate configuration at T = t on the first n images."""
    best = None
    for name, (cps, pred) in configs.items():
        if t not in cps or len(pred) < n:
            continue
        correct = pred[:n, cps.index(t)] == labels[:n]
        if best is None or correct.mean() > best[1].mean():
            best = (name, correct)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eventsnn", required=True, help="comma-separated *_predictions.npz of conversion.py")
    ap.add_argument("--peers", required=True, help="*_predictions.npz of conversion_peers.py")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conversion_paired.json"))
    args = ap.parse_args(argv)
    ev, labels, ev_start = load(args.eventsnn, tag_files=True)
    pe, peer_labels, pe_start = load(args.peers, tag_files=False)
    if ev_start != pe_start:
        raise SystemExit(f"the eventsnn files start at test image {ev_start}, the peers' at {pe_start}")
    n = min(len(labels), len(peer_labels))
    if not np.array_equal(labels[:n], peer_labels[:n]):
        raise SystemExit("the eventsnn and peer files were not run on the same images")
    rows = []
    print(f"Paired on the first {n} test images (McNemar, exact two-sided)\n")
    print("| T | eventsnn best (acc %) | best peer (acc %) | eventsnn right, peer wrong | peer right, "
          "eventsnn wrong | p |")
    print("|---|---|---|---|---|---|")
    for t in sorted({t for cps, _ in pe.values() for t in cps}):
        e, p = best_at(ev, labels, t, n), best_at(pe, labels, t, n)
        if e is None or p is None:
            continue
        b = int(np.sum(e[1] & ~p[1]))
        c = int(np.sum(~e[1] & p[1]))
        pval = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        rows.append({"timesteps": t, "samples": n, "eventsnn": e[0], "eventsnn_accuracy": float(e[1].mean()),
                     "peer": p[0], "peer_accuracy": float(p[1].mean()), "eventsnn_only": b, "peer_only": c,
                     "p_value": pval})
        print(f"| {t} | {e[0]} ({100 * e[1].mean():.2f}) | {p[0]} ({100 * p[1].mean():.2f}) | {b} | {c} | "
              f"{pval:.2g} |")
    Path(args.out).write_text(json.dumps({"benchmark": "bench/conversion_paired.py",
                                          "command": " ".join(sys.argv), "eventsnn": args.eventsnn,
                                          "peers": args.peers, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
