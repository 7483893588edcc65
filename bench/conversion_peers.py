#!/usr/bin/env python
"""The same ANN-to-SNN conversion with two peer libraries: SpikingJelly and sinabs.

Runs in its own venv (torch CPU, spikingjelly, sinabs, onnx, numpy)::

    python -m venv bench/.venv-peers
    bench/.venv-peers/bin/pip install torch==2.13.0 spikingjelly sinabs onnx numpy
    nice -n 10 bench/.venv-peers/bin/python bench/conversion_peers.py --samples 10000

What it does (see bench/conversion_README.md):

1. rebuilds data/default_ann.onnx as a torch ``nn.Sequential`` (conv3x3 1->16
   pad 1, ReLU, AvgPool2, conv3x3 16->32 pad 1, ReLU, AvgPool2, Flatten,
   Linear 1568->128, ReLU, Dropout, Linear 128->10), loads the ONNX
   initializers (BN is already folded into the convs) and checks the torch
   logits against ``onnx.reference.ReferenceEvaluator`` and its test accuracy;
2. converts it with SpikingJelly's ann2snn ``Converter`` (FXConverter with a
   ``RateCodingRecipe``; modes ``Max``, ``99.9%`` and ``0.5``, i.e. half the max)
   calibrated on the first 1000 training images in one batch, and with
   ``sinabs.from_model`` at its default settings (IAF, threshold 1, MultiSpike,
   subtract reset, min_v_mem -1, no weight normalisation), with a spiking
   output layer added so both readouts can be read;
3. runs every SNN step by step for T = 500 with direct (analog) input on the
   first ``--samples`` test images and reads the accuracy after T = 25, 50,
   100, 200, 500 from the membrane readout (the last Linear's output summed
   over time) and, for sinabs, from the output spike counts; it also counts
   spikes and synaptic ops per sample (see ``ops`` below).

Writes ``bench/results/conversion_peers.json`` (``--out``) and, beside it,
``conversion_peers_predictions.npz`` (every sample's prediction at every T, per peer
and readout, for paired comparisons).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
MODEL = ROOT / "data" / "default_ann.onnx"


# ----------------------------------------------------------------------------
# Data and model
# ----------------------------------------------------------------------------

def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return arr if limit is None else arr[:limit]


def load_images(split: str, limit: int | None = None):
    x = read_idx(DATA_DIR / f"{split}-images-idx3-ubyte.gz", limit).astype(np.float32) / 255.0
    y = read_idx(DATA_DIR / f"{split}-labels-idx1-ubyte.gz", limit).astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def build_model() -> nn.Sequential:
    """The ONNX graph as torch modules, weights from the ONNX initializers."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(MODEL))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    # The Conv/Gemm nodes name their weight and bias inputs (BN folded by the exporter).
    params = [(n.input[1], n.input[2]) for n in m.graph.node if n.op_type in ("Conv", "Gemm")]
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(1568, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    layers = [mod for mod in model if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert len(layers) == len(params) == 4
    with torch.no_grad():
        for mod, (w, b) in zip(layers, params):
            assert tuple(mod.weight.shape) == init[w].shape, (w, mod.weight.shape, init[w].shape)
            mod.weight.copy_(torch.from_numpy(init[w].copy()))
            mod.bias.copy_(torch.from_numpy(init[b].copy()))
    return model.eval()


def check_model(model, x, y) -> dict:
    """Torch logits against the ONNX reference evaluator, and test accuracy."""
    from onnx.reference import ReferenceEvaluator

    with torch.no_grad():
        logits = torch.cat([model(x[i: i + 1000]) for i in range(0, len(x), 1000)])
    n_ref = min(200, len(x))
    ref = ReferenceEvaluator(str(MODEL)).run(None, {"input": x[:n_ref].numpy()})[0]
    diff = float(np.max(np.abs(ref - logits[:n_ref].numpy())))
    return {"torch_accuracy": float((logits.argmax(1) == y).float().mean()),
            "samples": int(len(x)),
            "onnx_reference_images": n_ref, "max_abs_logit_diff_vs_onnx": diff,
            "same_argmax_vs_onnx": bool(np.all(ref.argmax(1) == logits[:n_ref].numpy().argmax(1))),
            "ok": diff < 1e-4}


# ----------------------------------------------------------------------------
# Counting spikes and synaptic ops
# ----------------------------------------------------------------------------
#
# Three spiking (hidden) layers: IF1 after conv1 (16x28x28), IF2 after conv2
# (32x14x14), IF3 after fc1 (128). In both peers the average pools are analog
# ops on the spike maps, not neurons. Synaptic ops, as eventsnn counts them
# (one op = one addition of a weight into a target, triggered by an event;
# the analog input layer's W*x and the biases are not synaptic ops):
#
# * ``syn_ops`` (per spike): every spike is its own event. A spike of IF1
#   adds into its 2x2 pool (1 op) and the pooled value reaches conv2's 3x3x32
#   targets (border clipped); a spike of IF2: 1 pool op + 128 fc1 targets; a
#   spike of IF3: 10 output targets. A sinabs neuron that emits k spikes in a
#   step counts k times. This is the count an event-driven simulator of the
#   same net with non-spiking pools would do.
# * ``syn_ops_graded``: a lower bound for hardware that sends graded events:
#   pool adds per spike as above, then each NONZERO pooled value (or nonzero
#   multi-spike count) is one event with its full fan-out.
#
# ``analog_macs``: conv1 on the analog image, which both peers recompute at
# every step (T x 112,896 MACs minus border; eventsnn computes it once).


def fanout_maps():
    """Per-neuron fan-out of each hidden spiking layer: (per spike, graded pool targets)."""
    ones = torch.ones(1, 32, 14, 14)
    # conv2 targets of each pool1 output position: transposed conv of ones.
    f_conv2 = F.conv_transpose2d(ones, torch.ones(32, 16, 3, 3), padding=1)[0]  # (16, 14, 14)
    f1 = 1.0 + f_conv2.repeat_interleave(2, 1).repeat_interleave(2, 2)  # (16, 28, 28)
    f2 = torch.full((32, 14, 14), 1.0 + 128.0)
    f3 = torch.full((128,), 10.0)
    conv1_macs = float(F.conv_transpose2d(torch.ones(1, 16, 28, 28), torch.ones(16, 1, 3, 3), padding=1).sum())
    return {"f1": f1, "f2": f2, "f3": f3, "f_conv2": f_conv2, "conv1_macs": conv1_macs}


class Counter:
    """Per-sample cumulative spikes and syn ops, snapshotted at checkpoints."""

    def __init__(self, batch: int, fan: dict):
        self.fan = fan
        z = lambda: torch.zeros(batch, dtype=torch.float64)  # noqa: E731
        self.spikes = [z(), z(), z()]
        self.events = [z(), z(), z()]  # nonzero (neuron, step) pairs
        self.ops = z()
        self.ops_graded = z()
        self.out_spikes = z()

    def add(self, layer: int, s: torch.Tensor):
        """``s``: spike counts of hidden layer ``layer`` (0, 1, 2) at one step, (B, ...)."""
        b = s.shape[0]
        flat = s.reshape(b, -1)
        n_spikes = flat.sum(1)
        self.spikes[layer][:b] += n_spikes.double()
        self.events[layer][:b] += (flat > 0).sum(1).double()
        fan = self.fan
        if layer == 2:
            self.ops[:b] += (10.0 * n_spikes).double()
            self.ops_graded[:b] += (10.0 * (flat > 0).sum(1)).double()
            return
        self.ops[:b] += (flat @ fan["f1" if layer == 0 else "f2"].reshape(-1)).double()
        c, h, w = s.shape[1:]
        pooled = (s.reshape(b, c, h // 2, 2, w // 2, 2).sum((3, 5)) > 0).reshape(b, -1).to(s.dtype)
        if layer == 0:
            graded = n_spikes + pooled @ fan["f_conv2"].reshape(-1)
        else:
            graded = n_spikes + 128.0 * pooled.sum(1)
        self.ops_graded[:b] += graded.double()

    def snapshot(self):
        return {"spikes": sum(self.spikes).clone(), "spikes_by_layer": [s.clone() for s in self.spikes],
                "events": sum(self.events).clone(), "syn_ops": self.ops.clone(),
                "syn_ops_graded": self.ops_graded.clone(), "output_spikes": self.out_spikes.clone()}


# ----------------------------------------------------------------------------
# Peers
# ----------------------------------------------------------------------------

def spikingjelly_snn(model, x_cal, mode):
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe

    import copy
    recipe = RateCodingRecipe(dataloader=[x_cal], mode=mode)  # one batch: the scale is that batch's statistic
    snn = Converter(recipe, device="cpu").convert(copy.deepcopy(model))
    snn.eval()
    ifs = [m for m in snn.modules() if isinstance(m, neuron.IFNode)]
    assert len(ifs) == 3, snn
    out_layer = [m for m in snn.modules() if isinstance(m, nn.Linear)][-1]
    return snn, ifs, out_layer, None


def sinabs_snn(model, batch):
    import copy
    import sinabs.layers as sl
    from sinabs.from_torch import from_model

    net = from_model(copy.deepcopy(model), input_shape=(1, 28, 28), batch_size=batch,
                     add_spiking_output=True)
    snn = net.spiking_model.eval()
    iafs = [m for m in snn.modules() if isinstance(m, sl.IAFSqueeze)]
    assert len(iafs) == 4, snn  # three hidden + the added spiking output
    out_layer = [m for m in snn.modules() if isinstance(m, nn.Linear)][-1]
    return snn, iafs[:3], out_layer, iafs[3]


def reset(kind, snn, batch):
    """Clear the state before a batch (sinabs: also tell the squeeze layers the batch size)."""
    if kind == "spikingjelly":
        from spikingjelly.activation_based import functional
        functional.reset_net(snn)
    else:
        import sinabs.layers as sl
        for m in snn.modules():
            if isinstance(m, sl.SqueezeMixin):
                m.batch_size = batch
            if isinstance(m, sl.StatefulLayer):
                m.reset_states()


def simulate(kind, snn, hidden, out_layer, out_spk, x, y, timesteps, checkpoints, batch, fan):
    """Run batches step by step; return per-checkpoint predictions and counts."""
    n = len(x)
    cps = sorted(checkpoints)
    pred_mem = np.zeros((n, len(cps)), np.int64)
    pred_spk = np.zeros((n, len(cps)), np.int64) if out_spk is not None else None
    counts = {c: {} for c in cps}
    state = {}

    def hook_hidden(i):
        def h(_m, _inp, out):
            state["counter"].add(i, out.detach())
        return h

    def hook_out(_m, _inp, out):
        state["out_sum"] += out.detach().reshape(state["out_sum"].shape[0], -1).double()

    def hook_out_spk(_m, _inp, out):
        o = out.detach().reshape(state["out_cnt"].shape[0], -1).double()
        state["out_cnt"] += o
        state["counter"].out_spikes[: o.shape[0]] += o.sum(1)

    handles = [m.register_forward_hook(hook_hidden(i)) for i, m in enumerate(hidden)]
    handles.append(out_layer.register_forward_hook(hook_out))
    if out_spk is not None:
        handles.append(out_spk.register_forward_hook(hook_out_spk))
    seconds = 0.0
    totals = {c: None for c in cps}
    try:
        with torch.inference_mode():
            for start in range(0, n, batch):
                xb = x[start: start + batch]
                b = len(xb)
                reset(kind, snn, b)
                state["counter"] = Counter(b, fan)
                state["out_sum"] = torch.zeros(b, 10, dtype=torch.float64)
                state["out_cnt"] = torch.zeros(b, 10, dtype=torch.float64)
                t0 = time.perf_counter()
                for t in range(1, timesteps + 1):
                    snn(xb)
                    if t in counts:
                        k = cps.index(t)
                        pred_mem[start: start + b, k] = state["out_sum"].argmax(1).numpy()
                        if pred_spk is not None:
                            cnt = state["out_cnt"]
                            tie = cnt == cnt.max(1, keepdim=True).values
                            score = torch.where(tie, state["out_sum"], torch.tensor(-np.inf, dtype=torch.float64))
                            pred_spk[start: start + b, k] = score.argmax(1).numpy()
                        snap = state["counter"].snapshot()
                        tot = totals[t] or {}
                        for key, v in snap.items():
                            if isinstance(v, list):
                                tot[key] = [a + vv.sum().item() for a, vv in zip(tot.get(key, [0.0] * len(v)), v)]
                            else:
                                tot[key] = tot.get(key, 0.0) + v.sum().item()
                        totals[t] = tot
                seconds += time.perf_counter() - t0
                done = start + b
                acc = float(np.mean(pred_mem[:done, -1] == y[:done].numpy()))
                print(f"    {done}/{n} samples, {seconds:.0f} s, membrane acc at T={cps[-1]} so far "
                      f"{100 * acc:.2f} %", file=sys.stderr, flush=True)
    finally:
        for h in handles:
            h.remove()
    yn = y.numpy()
    rows = []
    for k, c in enumerate(cps):
        tot = totals[c]
        row = {"timesteps": c,
               "accuracy_membrane": float(np.mean(pred_mem[:, k] == yn)),
               "accuracy_spikes": None if pred_spk is None else float(np.mean(pred_spk[:, k] == yn)),
               "spikes_per_sample": tot["spikes"] / n,
               "spikes_per_sample_by_layer": [v / n for v in tot["spikes_by_layer"]],
               "spike_events_per_sample": tot["events"] / n,
               "output_spikes_per_sample": tot["output_spikes"] / n,
               "syn_ops_per_sample": tot["syn_ops"] / n,
               "syn_ops_graded_per_sample": tot["syn_ops_graded"] / n,
               "analog_macs_per_sample": c * fan["conv1_macs"],  # conv1 on the image at every step
               }
        rows.append(row)
    return rows, seconds, {"membrane": pred_mem, "spikes": pred_spk}


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except Exception:  # pragma: no cover
        commit = ""
    from importlib.metadata import version
    vers = {}
    for pkg in ("torch", "spikingjelly", "sinabs", "onnx", "numpy"):
        try:
            vers[pkg] = version(pkg)
        except Exception:  # pragma: no cover
            vers[pkg] = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(), "cpu_model": cpu,
            "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "git_commit": commit, "versions": vers, "loadavg_start": list(os.getloadavg())}


PEERS = ("spikingjelly:Max", "spikingjelly:99.9%", "spikingjelly:0.5", "sinabs:default")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--timesteps", type=int, default=500)
    ap.add_argument("--checkpoints", default="25,50,100,200,500")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibration-samples", type=int, default=1000)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conversion_peers.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    info = machine_info()
    cps = sorted({int(c) for c in args.checkpoints.split(",")})
    print(f"# {info['cpu_model']}, {info['logical_cpus']} logical CPUs, torch {info['versions']['torch']} "
          f"({args.threads} threads), spikingjelly {info['versions']['spikingjelly']}, "
          f"sinabs {info['versions']['sinabs']}, load avg {info['loadavg_start'][0]:.2f}")
    t_all = time.perf_counter()
    model = build_model()
    x_all, y_all = load_images("t10k")
    ann = check_model(model, x_all, y_all)
    x, y = x_all[: args.samples], y_all[: args.samples]
    with torch.no_grad():
        ann["accuracy_same_samples"] = float((model(x).argmax(1) == y).float().mean())
    print(f"torch model vs ONNX: max |logit diff| {ann['max_abs_logit_diff_vs_onnx']:.2e} on "
          f"{ann['onnx_reference_images']} images, same argmax {ann['same_argmax_vs_onnx']}; "
          f"ANN accuracy {100 * ann['torch_accuracy']:.2f} % on 10000, "
          f"{100 * ann['accuracy_same_samples']:.2f} % on the first {len(x)}")
    if not ann["ok"]:
        print("ERROR: the torch model does not reproduce the ONNX outputs", file=sys.stderr)
        return 1
    x_cal, _ = load_images("train", args.calibration_samples)
    fan = fanout_maps()

    results = []
    predictions = {}
    for peer in [p for p in args.peers.split(",") if p]:
        lib, mode = peer.split(":")
        entry = {"peer": peer, "library": lib, "samples": int(len(x)), "timesteps": args.timesteps}
        try:
            t0 = time.perf_counter()
            if lib == "spikingjelly":
                mode_arg = float(mode) if mode[0].isdigit() and not mode.endswith("%") else mode
                snn, hidden, out_layer, out_spk = spikingjelly_snn(model, x_cal, mode_arg)
                entry.update({"converter": "spikingjelly.activation_based.ann2snn.Converter"
                                           "(RateCodingRecipe(dataloader=[1000 train images], mode=%r))" % (mode_arg,),
                              "neuron": "IFNode(v_threshold=1, v_reset=None: soft reset) between "
                                        "VoltageScaler(1/scale) and VoltageScaler(scale)",
                              "calibration_samples": int(len(x_cal)),
                              "scales": [float(m.scale) for m in snn.modules()
                                         if type(m).__name__ == "VoltageScaler"][1::2],
                              "readouts": ["membrane (last Linear output summed over steps)"]})
            else:
                snn, hidden, out_layer, out_spk = sinabs_snn(model, args.batch)
                entry.update({"converter": "sinabs.from_model(model, input_shape=(1,28,28), batch_size=B, "
                                           "add_spiking_output=True), all other settings default",
                              "neuron": "IAFSqueeze(spike_threshold=1, spike_fn=MultiSpike, "
                                        "reset_fn=MembraneSubtract, min_v_mem=-1); no weight normalisation",
                              "calibration_samples": 0,
                              "readouts": ["membrane (last Linear output summed over steps)",
                                           "spikes (counts of the added spiking output layer; ties by membrane)"]})
            entry["convert_s"] = time.perf_counter() - t0
            print(f"\n{peer}: converted in {entry['convert_s']:.1f} s; simulating {len(x)} samples x "
                  f"T={args.timesteps}", flush=True)
            rows, sim_s, preds = simulate(lib, snn, hidden, out_layer, out_spk, x, y, args.timesteps, cps,
                                          args.batch, fan)
            for readout, pred in preds.items():
                if pred is not None:
                    predictions[f"{peer}:{readout}"] = pred.astype(np.int8)
            entry.update({"sweep": rows, "simulate_s": sim_s, "seconds_per_sample": sim_s / len(x),
                          "batch": args.batch, "status": "ok"})
            print(f"  {'T':>5} {'acc mem %':>10} {'acc spk %':>10} {'spikes/sample':>14} "
                  f"{'syn ops/sample':>15} {'graded ops':>12}")
            for r in rows:
                spk = "-" if r["accuracy_spikes"] is None else f"{100 * r['accuracy_spikes']:.2f}"
                print(f"  {r['timesteps']:>5} {100 * r['accuracy_membrane']:>10.2f} {spk:>10} "
                      f"{r['spikes_per_sample']:>14.0f} {r['syn_ops_per_sample']:>15.0f} "
                      f"{r['syn_ops_graded_per_sample']:>12.0f}")
            print(f"  {sim_s:.0f} s, {1000 * sim_s / len(x):.1f} ms/sample (batch {args.batch}, "
                  f"{args.threads} threads)", flush=True)
        except Exception as exc:  # report, keep going with the other peers
            import traceback
            entry.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()})
            print(f"{peer}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        results.append(entry)

    info["loadavg_end"] = list(os.getloadavg())
    info["total_s"] = time.perf_counter() - t_all
    doc = {"benchmark": "bench/conversion_peers.py",
           "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
           "machine": info,
           "settings": {"model": os.path.relpath(MODEL, ROOT), "samples": int(len(x)),
                        "test_data": str(DATA_DIR / "t10k-images-idx3-ubyte.gz"),
                        "calibration_data": str(DATA_DIR / "train-images-idx3-ubyte.gz"),
                        "calibration_samples": args.calibration_samples, "timesteps": args.timesteps,
                        "checkpoints": cps, "batch": args.batch, "threads": args.threads,
                        "encoding": "direct (the analog image into conv1 at every step)",
                        "syn_ops": "per spike: each spike adds into its targets; through an analog 2x2 "
                                   "average pool a spike costs 1 pool op plus the pooled unit's fan-out in "
                                   "the next layer; k spikes in one step (sinabs MultiSpike) count k times. "
                                   "graded: pool ops per spike plus one full fan-out per nonzero pooled value. "
                                   "Analog conv1 MACs and biases are not syn ops (analog_macs_per_sample).",
                        "spikes": "hidden layers only (IF after conv1, conv2, fc1); sinabs output-layer "
                                  "spikes are in output_spikes_per_sample"},
           "ann": ann, "peers": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    tmp.replace(out)
    # every sample's prediction at every checkpoint, for paired comparisons with eventsnn's
    np.savez_compressed(out.with_name(out.stem + "_predictions.npz"), labels=y.numpy().astype(np.int8),
                        checkpoints=np.array(cps), **predictions)

    print("\nSummary: accuracy % (membrane readout; syn ops/sample) per T")
    print(f"{'peer':<22}{'samples':>8}" + "".join(f"{'T=' + str(c):>20}" for c in cps) + f"{'ms/sample':>11}")
    for e in results:
        if e["status"] != "ok":
            print(f"{e['peer']:<22} FAILED: {e['error']}")
            continue
        cells = "".join(f"{100 * r['accuracy_membrane']:>8.2f} ({r['syn_ops_per_sample'] / 1e3:>7.0f}k)"
                        for r in e["sweep"])
        print(f"{e['peer']:<22}{e['samples']:>8}{cells}{1000 * e['seconds_per_sample']:>11.1f}")
        if e["sweep"][0]["accuracy_spikes"] is not None:
            cells = "".join(f"{100 * r['accuracy_spikes']:>8.2f} {'':>10}" for r in e["sweep"])
            print(f"{'  (spike readout)':<22}{'':>8}{cells}")
    print(f"\ntotal {info['total_s']:.0f} s; load avg at end {info['loadavg_end'][0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
