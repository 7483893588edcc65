"""eventsnn's BPTT gradients against torch autograd, same network, same surrogate.

Two steps, two environments (torch is never a dependency of eventsnn)::

    python bench/bptt_torch_grad.py export bench/results/bptt_torch_grad.npz      # eventsnn venv
    /work/peers-venv/bin/python bench/bptt_torch_grad.py compare \
        bench/results/bptt_torch_grad.npz bench/results/bptt_torch_grad.json       # torch venv

The network is eventsnn.learn.arch.conv_net (conv3x3 pad 1 -> spiking avg-pool,
twice, dense membrane readout; LIF leak 0.5, subtract reset), every weight and
input on the 2^-8 grid so both sides fire exactly the same spikes; the loss is
cross-entropy on V_out(T) / T; the surrogate is the fast sigmoid 1/(1+10|x|)^2,
reset detached (as snnTorch and SpikingJelly do by default). torch runs in
float64, eventsnn in float32: they should agree to float32 rounding.
"""

from __future__ import annotations

import json
import sys

import numpy as np

T = 6
CHANNELS = (4, 8)


def export(path):
    from eventsnn.datasets import load_dataset
    from eventsnn.learn.arch import conv_net
    from eventsnn.learn.bptt import Model
    from eventsnn.learn.train import cross_entropy

    d = load_dataset("data/fashion-mnist-sample.npz", limit=16)
    x = (np.floor(d.x * 256) / 256).astype(np.float32)
    net = conv_net(channels=CHANNELS, seed=3)
    for layer in net.layers:
        if layer.weight is not None:
            layer.weight = (np.round(layer.weight * 256) / 256).astype(np.float32)
        if layer.bias is not None:
            layer.bias = np.full(layer.bias.shape, 1 / 64, np.float32)
    model = Model(net)
    trace = model.forward(x, T)
    logits = trace.out.astype(np.float64) / T
    loss, g = cross_entropy(logits, d.y)
    grads, _ = model.backward(trace, g / T, "fast_sigmoid", 10.0)
    arrays = {"x": x, "y": d.y, "loss": np.array(loss)}
    arrays.update({"param:" + k: v for k, v in model.params.items()})
    arrays.update({"grad:" + k: v for k, v in grads.items()})
    arrays.update({"spikes:" + k: v.sum(axis=(0, 2)) for k, v in trace.S.items()})
    np.savez(path, **arrays)
    print(f"exported loss {loss:.6f}, spikes per layer {[float(v.sum()) for v in trace.S.values()]}")


def compare(path, out):
    import torch

    torch.set_default_dtype(torch.float64)
    z = np.load(path)
    P = {k[6:]: torch.tensor(z[k].astype(np.float64), requires_grad=True) for k in z.files if k.startswith("param:")}
    x = torch.tensor(z["x"].astype(np.float64)).permute(0, 3, 1, 2)  # NCHW
    y = torch.tensor(z["y"])

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v >= 0).to(v.dtype)

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            return g / (1 + 10 * v.abs()) ** 2

    def conv(name, s):
        w = P[name + "/weight"].permute(3, 2, 0, 1)  # (kh, kw, ci, co) -> (co, ci, kh, kw)
        return torch.nn.functional.conv2d(s, w, P[name + "/bias"], padding=1)

    B = x.shape[0]
    state = {}
    spikes = {}

    def neuron(name, cur, thr, leak, spiking=True):
        v = state.get(name, torch.zeros_like(cur))
        u = v * leak + cur
        if not spiking:
            state[name] = u
            return u
        s = Spike.apply(u - thr)
        state[name] = u - s.detach() * thr
        spikes[name] = spikes.get(name, 0) + s.detach().sum().item()
        return s

    for _ in range(T):
        s = neuron("conv1", conv("conv1", x), 1.0, 0.5)
        s = neuron("pool1", torch.nn.functional.avg_pool2d(s, 2), 0.75, 1.0)
        s = neuron("conv2", conv("conv2", s), 1.0, 0.5)
        s = neuron("pool2", torch.nn.functional.avg_pool2d(s, 2), 0.75, 1.0)
        flat = s.permute(0, 2, 3, 1).reshape(B, -1)  # eventsnn flattens HWC
        v = neuron("out", flat @ P["out/weight"] + P["out/bias"], 1.0, 0.5, spiking=False)
    loss = torch.nn.functional.cross_entropy(v / T, y)
    loss.backward()
    rows = {}
    for k, p in P.items():
        mine = z["grad:" + k].astype(np.float64)
        theirs = p.grad.numpy()
        rows[k] = {"max_abs_diff": float(np.abs(mine - theirs).max()),
                   "max_abs_grad": float(np.abs(theirs).max()),
                   "rel": float(np.abs(mine - theirs).max() / (np.abs(theirs).max() + 1e-30))}
    same_spikes = {k[7:]: bool(float(z[k].sum()) == spikes.get(k[7:], 0.0)) for k in z.files if k.startswith("spikes:")}
    result = {"torch": torch.__version__, "loss_eventsnn": float(z["loss"]), "loss_torch": float(loss),
              "same_spike_totals": same_spikes, "gradients": rows,
              "worst_rel": max(r["rel"] for r in rows.values())}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    else:
        compare(sys.argv[2], sys.argv[3])
