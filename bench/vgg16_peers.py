#!/usr/bin/env python
"""SpikingJelly and sinabs converting the trained VGG16 (data/vgg16_fashion.onnx), as conversion_peers.py does.

Runs in the peers' venv (torch CPU, spikingjelly, sinabs, onnx, numpy)::

    nice -n 10 /work/peers-venv/bin/python bench/vgg16_peers.py --samples 10000

Like ``conversion_peers.py`` (the default net), but for any *sequential* ONNX
graph of Conv / Relu / AveragePool / Flatten / Gemm nodes (``--model``):

1. rebuilds the ONNX graph as a torch ``nn.Sequential`` from its initializers
   (BN already folded into the convs by the exporter) and checks its logits
   against ``onnx.reference.ReferenceEvaluator`` and its test accuracy;
2. converts it with SpikingJelly's ann2snn ``Converter`` (``RateCodingRecipe``,
   modes ``Max``, ``99.9%``, ``0.5``), calibrated on the first 1000 training
   images in one batch, and with ``sinabs.from_model`` at its default settings
   (IAF, threshold 1, MultiSpike, subtract reset; no weight normalisation) with
   an added spiking output layer;
3. runs each SNN for T steps with direct (analog) input on the first
   ``--samples`` test images, reading the accuracy after every checkpoint from
   the membrane readout (last Linear summed over time) and, for sinabs, from
   the output spike counts, and counting spikes and synaptic ops per sample.

Synaptic ops as eventsnn counts them, per spike: a spike of a hidden IF
layer adds into each target of the next weighted layer; through an analog
average pool it costs 1 pool op plus the pooled unit's fan-out (the
convention of conversion_peers.py); k spikes of a sinabs neuron in one step
count k times. The first conv on the analog image is ``analog_macs``, not
syn ops, and is recomputed at every step by both peers.

Writes ``bench/results/vgg16_peers.json`` (``--out``) and
``vgg16_peers_predictions.npz`` beside it (every sample's prediction at every
checkpoint, per peer and readout, for ``conversion_paired.py``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conversion_peers import load_images, machine_info, reset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data" / "vgg16_fashion.onnx"


def build_model(path: Path, input_shape=(1, 28, 28)) -> nn.Sequential:
    """The sequential ONNX graph as torch modules, weights from its initializers."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    mods = []
    for n in m.graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Conv":
            w = init[n.input[1]]
            pads = list(a.get("pads", [0, 0, 0, 0]))
            assert pads[:2] == pads[2:], pads
            conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(a.get("strides", [1, 1])),
                             padding=tuple(pads[:2]))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w.copy()))
                conv.bias.copy_(torch.from_numpy(init[n.input[2]].copy()))
            mods.append(conv)
        elif n.op_type == "Relu":
            mods.append(nn.ReLU())
        elif n.op_type == "AveragePool":
            assert not any(a.get("pads", [])), a
            mods.append(nn.AvgPool2d(tuple(a["kernel_shape"]), tuple(a.get("strides", a["kernel_shape"]))))
        elif n.op_type == "Flatten":
            mods.append(nn.Flatten())
        elif n.op_type == "Gemm":
            assert a.get("transB", 0) == 1 and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0, a
            w = init[n.input[1]]
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.copy()))
                lin.bias.copy_(torch.from_numpy(init[n.input[2]].copy()))
            mods.append(lin)
        else:
            raise SystemExit(f"{path}: node {n.name} ({n.op_type}) is not supported by this script")
    model = nn.Sequential(*mods).eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    return model


def check_model(model, path, x, y) -> dict:
    from onnx.reference import ReferenceEvaluator

    with torch.no_grad():
        logits = torch.cat([model(x[i: i + 500]) for i in range(0, len(x), 500)])
    n_ref = min(100, len(x))
    ref = ReferenceEvaluator(str(path)).run(None, {"input": x[:n_ref].numpy()})[0]
    diff = float(np.max(np.abs(ref - logits[:n_ref].numpy())))
    return {"torch_accuracy": float((logits.argmax(1) == y).float().mean()), "samples": int(len(x)),
            "onnx_reference_images": n_ref, "max_abs_logit_diff_vs_onnx": diff,
            "same_argmax_vs_onnx": bool(np.all(ref.argmax(1) == logits[:n_ref].numpy().argmax(1))),
            "ok": diff < 1e-3}


def fanouts(model: nn.Sequential, input_shape) -> tuple:
    """Per hidden ReLU: the syn ops one spike of each of its neurons causes (flat CHW), and analog MACs.

    The fan-out of a unit into a weighted layer is the gradient of the sum of
    that layer's outputs, with all-ones weights and no bias, w.r.t. the unit.
    """
    shapes, x = [], torch.zeros(1, *input_shape)
    with torch.no_grad():
        for mod in model:
            shapes.append(tuple(x.shape[1:]))
            x = mod(x)
    mods = list(model)
    relus = [i for i, m in enumerate(mods) if isinstance(m, nn.ReLU)]
    out = []
    for i in relus[:]:
        j, pools = i + 1, []
        while not isinstance(mods[j], (nn.Conv2d, nn.Linear)):
            if isinstance(mods[j], nn.AvgPool2d):
                pools.append(j)
            j += 1
        target = mods[j]
        u = torch.ones(1, *shapes[j], requires_grad=True)
        ones = copy.deepcopy(target)
        with torch.no_grad():
            ones.weight.fill_(1.0)
            ones.bias.zero_()
        if isinstance(target, nn.Linear):
            ones(u.reshape(1, -1)).sum().backward()
        else:
            ones(u).sum().backward()
        fan = u.grad[0].reshape(shapes[j])
        for p in reversed(pools):  # each spike: 1 pool op, then the pooled unit's fan-out
            k = mods[p].kernel_size if isinstance(mods[p].kernel_size, int) else mods[p].kernel_size[0]
            fan = fan.reshape(shapes[p + 1])  # the pool's output (a Flatten keeps the CHW order)
            fan = 1.0 + fan.repeat_interleave(k, -2).repeat_interleave(k, -1)
        assert fan.numel() == int(np.prod(shapes[i + 1])), (i, fan.shape, shapes[i + 1])
        out.append(fan.reshape(-1).double())
    first = next(m for m in mods if isinstance(m, nn.Conv2d))
    ones = copy.deepcopy(first)
    with torch.no_grad():
        ones.weight.fill_(1.0)
        ones.bias.zero_()
        analog = float(ones(torch.ones(1, *input_shape)).sum())
    return out, analog


def spikingjelly_snn(model, x_cal, mode):
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.ann2snn import Converter, RateCodingRecipe

    recipe = RateCodingRecipe(dataloader=[x_cal], mode=mode)
    snn = Converter(recipe, device="cpu").convert(copy.deepcopy(model)).eval()
    ifs = [m for m in snn.modules() if isinstance(m, neuron.IFNode)]
    out_layer = [m for m in snn.modules() if isinstance(m, nn.Linear)][-1]
    scales = [float(m.scale) for m in snn.modules() if type(m).__name__ == "VoltageScaler"][1::2]
    return snn, ifs, out_layer, None, scales


def sinabs_snn(model, batch, input_shape):
    import sinabs.layers as sl
    from sinabs.from_torch import from_model

    net = from_model(copy.deepcopy(model), input_shape=input_shape, batch_size=batch, add_spiking_output=True)
    snn = net.spiking_model.eval()
    iafs = [m for m in snn.modules() if isinstance(m, sl.IAFSqueeze)]
    out_layer = [m for m in snn.modules() if isinstance(m, nn.Linear)][-1]
    return snn, iafs[:-1], out_layer, iafs[-1], None


def simulate(kind, snn, hidden, out_layer, out_spk, x, y, timesteps, cps, batch, fans):
    n, classes = len(x), out_layer.out_features
    pred_mem = np.zeros((n, len(cps)), np.int64)
    pred_spk = np.zeros((n, len(cps)), np.int64) if out_spk is not None else None
    tot = {c: {"spikes": np.zeros(len(hidden)), "syn_ops": 0.0, "out_spikes": 0.0} for c in cps}
    st = {}

    def hook_hidden(i):
        def h(_m, _inp, out):
            s = out.detach().reshape(st["b"], -1).double()
            st["spikes"][i] += float(s.sum())
            st["ops"] += float((s @ fans[i]).sum())
        return h

    def hook_out(_m, _inp, out):
        st["out_sum"] += out.detach().reshape(st["b"], -1).double()

    def hook_out_spk(_m, _inp, out):
        o = out.detach().reshape(st["b"], -1).double()
        st["out_cnt"] += o
        st["out_spikes"] += float(o.sum())

    assert len(hidden) == len(fans), (len(hidden), len(fans))
    handles = [m.register_forward_hook(hook_hidden(i)) for i, m in enumerate(hidden)]
    handles.append(out_layer.register_forward_hook(hook_out))
    if out_spk is not None:
        handles.append(out_spk.register_forward_hook(hook_out_spk))
    seconds = 0.0
    try:
        with torch.inference_mode():
            for start in range(0, n, batch):
                xb = x[start: start + batch]
                b = len(xb)
                reset(kind, snn, b)
                st.update(b=b, spikes=np.zeros(len(hidden)), ops=0.0, out_spikes=0.0,
                          out_sum=torch.zeros(b, classes, dtype=torch.float64),
                          out_cnt=torch.zeros(b, classes, dtype=torch.float64))
                t0 = time.perf_counter()
                for t in range(1, max(cps) + 1):
                    snn(xb)
                    if t in tot:
                        k = cps.index(t)
                        pred_mem[start: start + b, k] = st["out_sum"].argmax(1).numpy()
                        if pred_spk is not None:
                            cnt = st["out_cnt"]
                            tie = cnt == cnt.max(1, keepdim=True).values
                            score = torch.where(tie, st["out_sum"], torch.tensor(-np.inf, dtype=torch.float64))
                            pred_spk[start: start + b, k] = score.argmax(1).numpy()
                        tot[t]["spikes"] += st["spikes"]
                        tot[t]["syn_ops"] += st["ops"]
                        tot[t]["out_spikes"] += st["out_spikes"]
                seconds += time.perf_counter() - t0
                done = start + b
                print(f"    {done}/{n} samples, {seconds:.0f} s, membrane acc at T={cps[-1]} "
                      f"{100 * np.mean(pred_mem[:done, -1] == y[:done].numpy()):.2f} %", file=sys.stderr, flush=True)
    finally:
        for h in handles:
            h.remove()
    yn = y.numpy()
    rows = [{"timesteps": c, "accuracy_membrane": float(np.mean(pred_mem[:, k] == yn)),
             "accuracy_spikes": None if pred_spk is None else float(np.mean(pred_spk[:, k] == yn)),
             "spikes_per_sample": float(tot[c]["spikes"].sum() / n),
             "spikes_per_sample_by_layer": (tot[c]["spikes"] / n).tolist(),
             "output_spikes_per_sample": tot[c]["out_spikes"] / n,
             "syn_ops_per_sample": tot[c]["syn_ops"] / n}
            for k, c in enumerate(cps)]
    return rows, seconds, {"membrane": pred_mem, "spikes": pred_spk}


PEERS = ("spikingjelly:Max", "spikingjelly:99.9%", "spikingjelly:0.5", "sinabs:default")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--start", type=int, default=0,
                    help="first test image (a chunk of the test set; bench/merge_chunks.py joins chunks)")
    ap.add_argument("--checkpoints", default="25,50,100,200,500")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibration-samples", type=int, default=1000)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vgg16_peers.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    info = machine_info()
    cps = sorted({int(c) for c in args.checkpoints.split(",")})
    t_all = time.perf_counter()
    x_all, y_all = load_images("t10k")
    input_shape = tuple(x_all.shape[1:])
    model = build_model(args.model, input_shape)
    ann = check_model(model, args.model, x_all, y_all)
    if not 0 <= args.start < len(x_all) or args.samples < 1:
        raise SystemExit(f"--start {args.start} --samples {args.samples}: outside the {len(x_all)} test images")
    x, y = x_all[args.start: args.start + args.samples], y_all[args.start: args.start + args.samples]
    with torch.no_grad():
        ann["accuracy_same_samples"] = float((model(x).argmax(1) == y).float().mean())
    print(f"torch model vs ONNX: max |logit diff| {ann['max_abs_logit_diff_vs_onnx']:.2e}; ANN accuracy "
          f"{100 * ann['torch_accuracy']:.2f} % on 10000, {100 * ann['accuracy_same_samples']:.2f} % on test "
          f"images {args.start}..{args.start + len(x) - 1}", flush=True)
    if not ann["ok"]:
        print("ERROR: the torch model does not reproduce the ONNX outputs", file=sys.stderr)
        return 1
    x_cal, _ = load_images("train", args.calibration_samples)
    fans, analog = fanouts(model, input_shape)

    results, predictions = [], {}
    out = Path(args.out)
    for peer in [p for p in args.peers.split(",") if p]:
        lib, mode = peer.split(":")
        entry = {"peer": peer, "library": lib, "samples": int(len(x))}
        try:
            t0 = time.perf_counter()
            if lib == "spikingjelly":
                mode_arg = float(mode) if mode[0].isdigit() and not mode.endswith("%") else mode
                snn, hidden, out_layer, out_spk, scales = spikingjelly_snn(model, x_cal, mode_arg)
                entry.update({"converter": f"spikingjelly ann2snn Converter(RateCodingRecipe(mode={mode_arg!r}), "
                                           f"{len(x_cal)} train images in one batch)", "scales": scales,
                              "calibration_samples": int(len(x_cal))})
            else:
                snn, hidden, out_layer, out_spk, _ = sinabs_snn(model, args.batch, input_shape)
                entry.update({"converter": "sinabs.from_model(add_spiking_output=True), defaults (IAF, "
                                           "threshold 1, MultiSpike, subtract reset, min_v_mem -1)",
                              "calibration_samples": 0})
            entry["convert_s"] = time.perf_counter() - t0
            print(f"\n{peer}: converted in {entry['convert_s']:.1f} s; {len(hidden)} hidden spiking layers",
                  flush=True)
            rows, sim_s, preds = simulate(lib, snn, hidden, out_layer, out_spk, x, y, None, cps, args.batch, fans)
            for readout, pred in preds.items():
                if pred is not None:
                    predictions[f"{peer}:{readout}"] = pred.astype(np.int8)
            entry.update({"sweep": rows, "simulate_s": sim_s, "seconds_per_sample": sim_s / len(x),
                          "batch": args.batch, "status": "ok"})
            for r in rows:
                spk = "-" if r["accuracy_spikes"] is None else f"{100 * r['accuracy_spikes']:.2f}"
                print(f"  T={r['timesteps']:>4}  acc mem {100 * r['accuracy_membrane']:6.2f} %  spk {spk:>6}  "
                      f"spikes {r['spikes_per_sample']:12.0f}  syn ops {r['syn_ops_per_sample']:14.0f}", flush=True)
        except Exception as exc:  # report, keep going with the other peers
            import traceback
            entry.update({"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()})
            print(f"{peer}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        results.append(entry)
        info["loadavg_end"] = list(os.getloadavg())
        info["total_s"] = time.perf_counter() - t_all
        doc = {"benchmark": "bench/vgg16_peers.py",
               "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), "machine": info,
               "settings": {"model": os.path.relpath(args.model.resolve(), ROOT), "samples": int(len(x)),
                            "start": args.start,
                            "checkpoints": cps, "batch": args.batch, "threads": args.threads,
                            "calibration": f"first {args.calibration_samples} training images",
                            "analog_macs_per_step": analog,
                            "syn_ops": "per spike into each target of the next weighted layer; through an "
                                       "analog avg pool 1 pool op + the pooled unit's fan-out; MultiSpike "
                                       "k spikes count k times; the first conv on the image is analog MACs"},
               "ann": ann, "peers": results}
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        tmp.replace(out)
        np.savez_compressed(out.with_name(out.stem + "_predictions.npz"), labels=y.numpy().astype(np.int8),
                            checkpoints=np.array(cps), start=np.array(args.start), **predictions)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
