#!/usr/bin/env python
"""ANN-to-SNN conversion accuracy and cost of eventsnn on the default Fashion-MNIST CNN.

For ``data/default_ann.onnx`` (92.30 % on the 10k test set) this script

1. evaluates the source ANN on the test images with ``eventsnn.ann.forward``
   and, where ``onnxruntime`` imports, cross-checks it against onnxruntime;
2. converts the ANN with each method (max, percentile 99.9, spike-norm) and
   each readout (spikes, membrane), calibrating on the first training images
   (1000 for max/percentile, the ``eventsnn convert`` default; 200 for
   spike-norm at norm_timesteps=100, see ``--spike-norm-samples``);
3. simulates every converted net ONCE per test sample for T = 500 steps with
   direct (analog) input and reads accuracy, spikes/sample and synaptic
   ops/sample after T = 25, 50, 100, 200, 500 (``run_dataset(checkpoints=...)``).

Samples are split in contiguous shares across ``--workers`` processes (fork),
each running ``run_dataset`` on its share; the counts are merged.

Usage::

    python bench/conversion.py                       # 10k samples x 6 configs
    python bench/conversion.py --samples 200 --out bench/results/conversion_estimate.json
    python bench/conversion.py --samples 2000 --config-samples percentile:membrane=10000
    python bench/conversion.py --start 2000 --samples 2000 ...   # one chunk (bench/merge_chunks.py)
    python bench/conversion.py --methods percentile --decodings membrane --timesteps 100 \
        --checkpoints 25,50,100 --v-init 0.5 --max-spikes 2 --out bench/results/conversion_k2.json
    python bench/conversion.py --model data/vgg16_fashion.onnx ...   # another ONNX (bench/vgg16_README.md)

Writes ``bench/results/conversion.json`` (``--out``) with machine, date, git
commit and every setting. See bench/conversion_README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402
from eventsnn.ann import forward  # noqa: E402
from eventsnn.convert import convert, simplify  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io.models import read_model  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
TEST = DATA_DIR / "t10k-images-idx3-ubyte.gz"
TRAIN = DATA_DIR / "train-images-idx3-ubyte.gz"
MODEL = ROOT / "data" / "default_ann.onnx"
METHODS = ("max", "percentile", "spike-norm")
DECODINGS = ("spikes", "membrane")


# ----------------------------------------------------------------------------
# Source ANN
# ----------------------------------------------------------------------------

def ann_accuracy(ann, x, y, model=MODEL) -> dict:
    t0 = time.perf_counter()
    logits = forward(simplify(ann), x).reshape(len(x), -1)
    out = {"samples": int(len(x)), "eventsnn_forward": float(np.mean(logits.argmax(1) == y)),
           "forward_s": time.perf_counter() - t0}
    try:
        import onnxruntime as ort
    except ImportError as exc:
        out["onnxruntime"] = f"not importable: {exc}"
        return out
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32)
    ref = np.concatenate([sess.run(None, {name: nchw[i: i + 500]})[0] for i in range(0, len(x), 500)])
    out.update({"onnxruntime": float(np.mean(ref.argmax(1) == y)),
                "onnxruntime_version": ort.__version__,
                "max_abs_logit_diff": float(np.max(np.abs(ref - logits))),
                "same_argmax_fraction": float(np.mean(ref.argmax(1) == logits.argmax(1)))})
    return out


# ----------------------------------------------------------------------------
# Simulation, split across processes
# ----------------------------------------------------------------------------

_NET = None


def _init(net):
    global _NET
    _NET = net


def _run_share(job):
    x, y, timesteps, checkpoints = job
    t0 = time.perf_counter()
    res = run_dataset(_NET, x, y, timesteps=timesteps, checkpoints=checkpoints)
    return res, time.perf_counter() - t0


def simulate(net, x, y, timesteps, checkpoints, workers) -> tuple:
    """run_dataset over x split in ``workers`` contiguous shares; returns (merged dict, wall s)."""
    n = len(x)
    workers = max(1, min(workers, n))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    jobs = [(x[a:b], y[a:b], timesteps, checkpoints) for a, b in zip(bounds[:-1], bounds[1:])]
    t0 = time.perf_counter()
    if workers == 1:
        _init(net)
        parts = [_run_share(jobs[0])]
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_init, initargs=(net,)) as pool:
            parts = pool.map(_run_share, jobs)
    wall = time.perf_counter() - t0
    results = [p[0] for p in parts]
    r0 = results[0]
    merged = {
        "layers": r0.layers,
        "neurons": r0.neurons,
        "checkpoints": r0.checkpoints,
        "labels": np.concatenate([r.labels for r in results]),
        "predictions": np.concatenate([r.predictions for r in results]),
        "checkpoint_predictions": np.concatenate([r.checkpoint_predictions for r in results]),
        "spikes": np.concatenate([r.spikes for r in results]),
        "syn_ops": np.concatenate([r.syn_ops for r in results]),
        "updates": np.concatenate([r.updates for r in results]),
        "analog_macs": np.concatenate([r.analog_macs for r in results]),
        "spikes_per_step": sum(r.spikes_per_step for r in results),
        "syn_ops_per_step": sum(r.syn_ops_per_step for r in results),
        "updates_per_step": sum(r.updates_per_step for r in results),
        "seconds": np.concatenate([r.seconds for r in results]),
        "share_wall_s": [p[1] for p in parts],
    }
    return merged, wall


def sweep(m: dict, subsets=()) -> list:
    """Same numbers as RunResult.sweep_table, from merged counts; plus per-layer counts
    and the accuracy on the first n samples for each n in ``subsets``."""
    s = len(m["labels"])
    rows = []
    for k, steps in enumerate(m["checkpoints"]):
        steps = int(steps)
        hit = m["checkpoint_predictions"][:, k] == m["labels"]
        rows.append({
            "timesteps": steps,
            "accuracy": float(np.mean(hit)),
            **{f"accuracy_first_{n}": float(np.mean(hit[:n])) for n in subsets if n < s},
            "spikes_per_sample": float(m["spikes_per_step"][1:, :steps].sum() / s),
            "syn_ops_per_sample": float(m["syn_ops_per_step"][:, :steps].sum() / s),
            "neuron_updates_per_sample": float(m["updates_per_step"][:, :steps].sum() / s),
            "spikes_per_sample_by_layer": (m["spikes_per_step"][:, :steps].sum(1) / s).tolist(),
            "syn_ops_per_sample_by_layer": (m["syn_ops_per_step"][:, :steps].sum(1) / s).tolist(),
        })
    return rows


def layer_rows(m: dict, timesteps: int) -> list:
    s = len(m["labels"])
    rows = []
    for i, name in enumerate(m["layers"]):
        sp = m["spikes"][:, i].sum() / s
        rows.append({"layer": name, "neurons": int(m["neurons"][i]),
                     "spikes_per_sample": float(sp),
                     "spike_rate": float(sp / (m["neurons"][i] * timesteps)),
                     "syn_ops_per_sample": float(m["syn_ops"][:, i].sum() / s),
                     "analog_macs_per_sample": float(m["analog_macs"][:, i].sum() / s)})
    return rows


# ----------------------------------------------------------------------------

def parse_config_samples(text: str | None) -> dict:
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, n = item.split("=")
        method, decoding = key.strip().split(":")
        if method not in METHODS or decoding not in DECODINGS:
            raise SystemExit(f"--config-samples: unknown config {key!r}")
        out[(method, decoding)] = int(n)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10000, help="test samples per config (default 10000)")
    ap.add_argument("--start", type=int, default=0,
                    help="first test image: run a chunk start..start+samples-1 of the test set (the ANN's "
                         "'first N' and --subsets then count from it; bench/merge_chunks.py joins chunks)")
    ap.add_argument("--config-samples", default="",
                    help="per-config overrides, e.g. 'percentile:membrane=10000,max:spikes=2000'")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timesteps", type=int, default=500)
    ap.add_argument("--checkpoints", default="25,50,100,200,500")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--decodings", default=",".join(DECODINGS))
    ap.add_argument("--calibration-samples", type=int, default=1000,
                    help="first N training images for max/percentile (eventsnn convert's default)")
    ap.add_argument("--spike-norm-samples", type=int, default=200,
                    help="first N training images for spike-norm")
    ap.add_argument("--norm-timesteps", type=int, default=100)
    ap.add_argument("--percentile", type=float, default=99.9)
    ap.add_argument("--v-init", type=float, default=0.0,
                    help="initial membrane potential, fraction of the threshold (convert's v_init)")
    ap.add_argument("--max-spikes", type=int, default=1,
                    help="spikes per neuron per step (convert's max_spikes; rates scaled by it)")
    ap.add_argument("--pools", choices=["fold", "spiking"], default="fold",
                    help="average pools folded into the next layer (convert's default) or spiking layers")
    ap.add_argument("--subsets", default="2000",
                    help="also report the accuracy on the first N test samples (comma list)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conversion.json"))
    ap.add_argument("--model", type=Path, default=MODEL, help="the source ANN (ONNX) [data/default_ann.onnx]")
    args = ap.parse_args(argv)
    model = args.model.resolve()

    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")})
    methods = [m for m in args.methods.split(",") if m]
    decodings = [d for d in args.decodings.split(",") if d]
    overrides = parse_config_samples(args.config_samples)
    subsets = sorted({int(v) for v in args.subsets.split(",") if v.strip()})
    n_max = max([args.samples] + list(overrides.values()))

    info = machine_info()
    print(f"# {info['cpu_model']}, {info['logical_cpus']} logical CPUs, git {info['git_commit'][:10]}"
          f"{' (eventsnn/ modified)' if info['eventsnn_dirty'] else ''}, load avg {info['loadavg_start'][0]:.2f}")
    t_all = time.perf_counter()
    test = load_dataset(TEST)
    if not 0 <= args.start < len(test.y) or args.start + n_max > len(test.y):
        raise SystemExit(f"--start {args.start} with {n_max} samples: outside the {len(test.y)} test images")
    x_test, y_test = test.x[args.start: args.start + n_max], test.y[args.start: args.start + n_max]
    ann = read_model(model)

    ann_full = ann_accuracy(ann, test.x, test.y, model)
    ann_runs = {str(n): ann_accuracy(ann, x_test[:n], y_test[:n], model)
                for n in sorted({args.samples, *overrides.values(), *subsets}) if n < 10000 or args.start}
    ort_acc = ann_full["onnxruntime"]
    ort_text = ort_acc if isinstance(ort_acc, str) else f"{100 * ort_acc:.2f} %"
    print(f"ANN on 10000 test images: eventsnn.forward {100 * ann_full['eventsnn_forward']:.2f} %, "
          f"onnxruntime {ort_text} (max |logit diff| {ann_full.get('max_abs_logit_diff', float('nan')):.2e})")
    for n, r in ann_runs.items():
        print(f"ANN on the first {n} test images from image {args.start}: {100 * r['eventsnn_forward']:.2f} %")

    train = load_dataset(TRAIN, limit=max(args.calibration_samples, args.spike_norm_samples))
    # Load (or compile) the numba engine once here, before forking, so that no
    # worker's timing includes it.
    t0 = time.perf_counter()
    warm, _ = convert(ann, train.x[:10], method="max")
    run_dataset(warm, x_test[:1], y_test[:1], timesteps=10, checkpoints=[5])
    info["engine_warmup_s"] = time.perf_counter() - t0
    configs = []
    predictions = {}
    out = Path(args.out)

    def write(finished: bool) -> None:
        info["loadavg_end"] = list(os.getloadavg())
        info["total_s"] = time.perf_counter() - t_all
        doc = {
            "benchmark": "bench/conversion.py",
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
            "finished": finished,
            "machine": info,
            "settings": {
                "model": os.path.relpath(model, ROOT), "test_data": str(TEST), "calibration_data": str(TRAIN),
                "samples": args.samples, "start": args.start,
                "config_samples": {f"{k[0]}:{k[1]}": v for k, v in overrides.items()},
                "timesteps": args.timesteps, "checkpoints": checkpoints, "workers": args.workers,
                "encoding": "direct (analog input current, W*x computed once per sample)",
                "reset": "subtract", "mode": "discrete",
                "calibration_samples": args.calibration_samples, "spike_norm_samples": args.spike_norm_samples,
                "norm_timesteps": args.norm_timesteps, "percentile": args.percentile,
                "v_init": args.v_init,
                "max_spikes": args.max_spikes,
                "pools": args.pools,
                "syn_ops": "one (spike, target synapse) addition; the analog input layer's W*x is counted "
                           "separately as analog MACs (once per sample)",
            },
            "ann": {"test_10000": ann_full, **{f"first_{k}": v for k, v in ann_runs.items()}},
            "configs": configs,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        tmp.replace(out)
        np.savez_compressed(out.with_name(out.stem + "_predictions.npz"), labels=y_test.astype(np.int8),
                            checkpoints=np.array(checkpoints), start=np.array(args.start), **predictions)

    for method in methods:
        for decoding in decodings:
            n = overrides.get((method, decoding), args.samples)
            cal = args.spike_norm_samples if method == "spike-norm" else args.calibration_samples
            t0 = time.perf_counter()
            net, report = convert(ann, train.x[:cal], train.y[:cal], method=method, percentile=args.percentile,
                                  decoding=decoding, norm_timesteps=args.norm_timesteps,
                                  fold_pools=args.pools == "fold", max_spikes=args.max_spikes,
                                  **({"v_init": args.v_init} if args.v_init else {}))
            conv_s = time.perf_counter() - t0
            m, wall = simulate(net, x_test[:n], y_test[:n], args.timesteps, checkpoints, args.workers)
            rows = sweep(m, subsets)
            predictions[f"{method}:{decoding}"] = m["checkpoint_predictions"].astype(np.int8)
            per_sample = float(np.mean(m["seconds"]))
            cfg = {
                "method": method, "decoding": decoding, "samples": int(n),
                "calibration_samples": cal,
                "percentile": args.percentile if method == "percentile" else None,
                "norm_timesteps": args.norm_timesteps if method == "spike-norm" else None,
                "convert_s": conv_s,
                "calibration_ann_accuracy": report.ann_accuracy,
                "normalized_ann_accuracy": report.normalized_ann_accuracy,
                "scales": report.scales, "thresholds": report.thresholds,
                "ann_accuracy_same_samples": (ann_full if n == 10000 and not args.start
                                              else ann_runs[str(n)])["eventsnn_forward"],
                "sweep": rows,
                "final_accuracy": float(np.mean(m["predictions"] == m["labels"])),
                "analog_macs_per_sample": float(m["analog_macs"].sum() / n),
                "layers_at_T": layer_rows(m, args.timesteps),
                "seconds_per_sample_one_core": per_sample,
                "seconds_per_sample_p95": float(np.percentile(m["seconds"], 95)),
                "wall_s": wall,
                "wall_s_per_sample": wall / n,
                "share_wall_s": m["share_wall_s"],
            }
            configs.append(cfg)
            print(f"\n{method} / {decoding}: {n} samples, convert {conv_s:.1f} s, simulate {wall:.0f} s wall "
                  f"({1000 * per_sample:.1f} ms/sample on one core, {1000 * wall / n:.1f} ms/sample wall "
                  f"with {args.workers} workers)")
            sub = [n for n in subsets if n < n_max and n < len(m["labels"])]
            print(f"  {'T':>5} {'acc %':>7} " + "".join(f"{'first ' + str(n):>11}" for n in sub)
                  + f" {'spikes/sample':>14} {'syn ops/sample':>15}")
            for r in rows:
                print(f"  {r['timesteps']:>5} {100 * r['accuracy']:>7.2f} "
                      + "".join(f"{100 * r[f'accuracy_first_{n}']:>11.2f}" for n in sub)
                      + f" {r['spikes_per_sample']:>14.0f} {r['syn_ops_per_sample']:>15.0f}")
            sys.stdout.flush()
            write(finished=False)

    write(finished=True)
    print("\nSummary: accuracy % (syn ops/sample) per T")
    head = "".join(f"{'T=' + str(c):>20}" for c in checkpoints)
    print(f"{'config':<22}{'samples':>8}{head}{'ms/sample':>11}")
    for c in configs:
        cells = "".join(f"{100 * r['accuracy']:>8.2f} ({r['syn_ops_per_sample'] / 1e3:>7.0f}k)" for r in c["sweep"])
        print(f"{c['method'] + '/' + c['decoding']:<22}{c['samples']:>8}{cells}"
              f"{1000 * c['seconds_per_sample_one_core']:>11.1f}")
    print(f"\ntotal {info['total_s']:.0f} s; load avg at end {info['loadavg_end'][0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
