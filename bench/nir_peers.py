"""eventsnn -> NIR -> sinabs: does another library, reading the exported file, fire the same spikes?

Issue 18. One network in the shape of bench/peers_README.md's net A
(28x28x1 -> conv3x3(8, pad 1) IF -> avgpool2 IF -> conv3x3(16, pad 1) IF ->
avgpool2 IF -> flatten -> dense(10) IF; threshold 1, reset by subtraction,
v_init 0, direct input), weights and biases on the 2^-8 grid so float32 sums
are exact in any order, inputs Fashion-MNIST pixels / 256 (also on the grid).

    bench/run_nir_peers.sh               # creates bench/.venv-peers if missing, then runs this
    python bench/nir_peers.py            # eventsnn side, then the sinabs side in bench/.venv-peers
    python bench/nir_peers.py --peers-python PATH/TO/python

The eventsnn side builds the net, writes it with ``eventsnn.io.nir_export.write_nir``
(``pool="sum"``: sinabs 3.1 reads SumPool2d but not AvgPool2d; the pooled
neuron's threshold is then 4, which gives identical spikes) and runs it on the
engine. The peers side (``--side sinabs``, run by the peers' interpreter,
torch + sinabs + nir, no eventsnn) reads the file with ``sinabs.from_nir``
and runs it clock-driven; it never sees eventsnn's spikes. The comparison is
neuron by neuron, every spiking layer, every sample.

sinabs 3.1's NIR reader makes its IAF layers with two departures from NIR's IF
(z in {0, 1}, no lower bound): ``min_v_mem = -v_threshold`` (the membrane is
clipped from below) and its default ``spike_fn = MultiSpike`` (several spikes
per step when V >= 2 thresholds). eventsnn refuses to export multi-spike
neurons, and has no floor. Three readings are reported: as sinabs reads the
file; with the floor removed; and as NIR's IF says (floor removed,
``spike_fn = SingleSpike``), which is the model the file describes.

Writes bench/results/nir_peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
Q = 2.0 ** -8
READINGS = ("as_read", "no_floor", "nir_if")


def _grid(rng, shape, std):
    return (np.round(rng.normal(0.0, std, size=shape) / Q) * Q).astype(np.float32)


def build_net(seed: int):
    from eventsnn.network import Layer, Network, Neuron

    rng = np.random.default_rng(seed)
    # He-normal scaled up until every layer spikes at a few per cent (chosen by hand, fixed)
    layers = [
        Layer("conv1", "conv2d", ("input",), weight=_grid(rng, (3, 3, 1, 8), 1.2 * np.sqrt(2 / 9)),
              bias=_grid(rng, (8,), 0.02), padding=(1, 1), neuron=Neuron("if", 1.0)),
        Layer("pool1", "avgpool2d", ("conv1",), kernel=(2, 2), stride=(2, 2), neuron=Neuron("if", 1.0)),
        Layer("conv2", "conv2d", ("pool1",), weight=_grid(rng, (3, 3, 8, 16), 3.0 * np.sqrt(2 / 72)),
              padding=(1, 1), neuron=Neuron("if", 1.0)),
        Layer("pool2", "avgpool2d", ("conv2",), kernel=(2, 2), stride=(2, 2), neuron=Neuron("if", 1.0)),
        Layer("flat", "flatten", ("pool2",)),
        Layer("fc", "dense", ("flat",), weight=_grid(rng, (7 * 7 * 16, 10), 3.0 * np.sqrt(2 / 784)),
              bias=_grid(rng, (10,), 0.02), neuron=Neuron("if", 1.0)),
    ]
    return Network(input_shape=(28, 28, 1), layers=layers)


def eventsnn_side(args) -> dict:
    from eventsnn import Simulator
    from eventsnn.data import path as data_path
    from eventsnn.io.nir_export import write_nir

    net = build_net(args.seed)
    os.makedirs(OUT, exist_ok=True)
    nir_path = os.path.join(OUT, "nir_peers.nir")
    write_nir(net, nir_path, pool="sum", legacy=True)  # sinabs 3.1 pins nir<=1.0.4
    data = np.load(data_path("fashion-mnist-sample.npz"))
    x = (data["x"][: args.samples].astype(np.float32) / 256.0).reshape(-1, 28, 28, 1)
    counts = {}
    t0 = time.perf_counter()
    for i, xi in enumerate(x):
        sim = Simulator(net, timesteps=args.timesteps)
        sim.reset(xi, sample_index=i)
        sim.run()
        for layer in net.spiking_layers():
            # (H, W, C) -> NIR's (C, H, W), flat layers stay flat
            c = sim.spike_counts(layer.name)
            c = c.reshape(-1) if layer.kind == "dense" else c.transpose(2, 0, 1)
            counts.setdefault(layer.name, []).append(c)
    seconds = time.perf_counter() - t0
    np.savez(os.path.join(OUT, "nir_peers_input.npz"), x=x.transpose(0, 3, 1, 2))
    return {"nir": nir_path, "counts": {k: np.stack(v) for k, v in counts.items()}, "seconds": seconds,
            "layers": [layer.name for layer in net.spiking_layers()]}


def sinabs_side(args) -> None:
    """Run in the peers' venv: read the NIR file with sinabs, run it, save per-layer spike counts."""
    import nir
    import sinabs
    import sinabs.layers as sl
    import torch

    graph = nir.read(args.nir)
    x = np.load(os.path.join(OUT, "nir_peers_input.npz"))["x"]
    n, t = x.shape[0], args.timesteps
    result = {"torch": torch.__version__, "sinabs": sinabs.__version__,
              "nir": getattr(nir, "__version__", getattr(nir, "version", "?"))}
    from sinabs.activation import SingleSpike

    for floor in READINGS:
        model = sinabs.from_nir(graph, batch_size=n)
        names = {}
        for name, mod in model.named_modules():
            if isinstance(mod, (sl.IAFSqueeze, sl.LIFSqueeze)):
                if floor != "as_read":
                    mod.min_v_mem = None
                if floor == "nir_if":
                    mod.spike_fn = SingleSpike
                names[mod] = name
        counts = {}

        def hook(mod, inp, out):
            counts[names[mod]] = out.detach().reshape((n, t) + tuple(out.shape[1:])).sum(1).numpy()

        for mod in names:
            mod.register_forward_hook(hook)
        xs = torch.tensor(x, dtype=torch.float32)
        xt = xs[:, None].expand((n, t) + tuple(xs.shape[1:])).reshape((n * t,) + tuple(xs.shape[1:]))
        with torch.no_grad():
            model(xt)
        result[floor] = {k: v.tolist() for k, v in counts.items()}
    with open(os.path.join(OUT, "nir_peers_sinabs.json"), "w") as f:
        json.dump(result, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--timesteps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peers-python", default=os.environ.get("PEERS_PYTHON", os.path.join(HERE, ".venv-peers", "bin", "python")),
                    help="the peers' interpreter (torch + sinabs + nir); default bench/.venv-peers or $PEERS_PYTHON")
    ap.add_argument("--side", choices=["eventsnn", "sinabs"], default="eventsnn")
    ap.add_argument("--nir", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "nir_peers.json"))
    args = ap.parse_args()
    if args.side == "sinabs":
        sinabs_side(args)
        return
    ev = eventsnn_side(args)
    subprocess.run([args.peers_python, os.path.abspath(__file__), "--side", "sinabs", "--nir", ev["nir"],
                    "--timesteps", str(args.timesteps)], check=True)
    with open(os.path.join(OUT, "nir_peers_sinabs.json")) as f:
        peer = json.load(f)
    report = {"samples": args.samples, "timesteps": args.timesteps, "seed": args.seed,
              "peer_versions": {k: peer[k] for k in ("torch", "sinabs", "nir")}, "layers": {}}
    # the sinabs modules are named after the NIR nodes: <layer>_if
    for floor in READINGS:
        per = {}
        for layer in ev["layers"]:
            mine = ev["counts"][layer]
            theirs = np.asarray(peer[floor][f"{layer}_if"])
            same = mine == theirs.reshape(mine.shape)
            per[layer] = {"neurons": int(mine[0].size), "spikes_eventsnn": int(mine.sum()),
                          "spikes_sinabs": int(theirs.sum()), "neuron_counts_identical": int(same.sum()),
                          "neuron_counts_total": int(same.size)}
        report["layers"][floor] = per
        ok = all(v["neuron_counts_identical"] == v["neuron_counts_total"] for v in per.values())
        print(f"sinabs {floor:8s}: " + ", ".join(
            f"{k} {v['neuron_counts_identical']}/{v['neuron_counts_total']} "
            f"({v['spikes_eventsnn']} vs {v['spikes_sinabs']} spikes)" for k, v in per.items())
              + ("  -> identical" if ok else "  -> DIFFERENT"))
        report[f"identical_{floor}"] = ok
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
