#!/usr/bin/env python
"""The torch side of bench/peers_speed.py: the same networks in snnTorch, sinabs,
SpikingJelly and a plain PyTorch loop; timings, spike-count agreement with
eventsnn and sinabs' synaptic-op estimate.

Run by ``bench/peers_speed.py`` with ``bench/.venv-peers/bin/python`` (torch
2.13.0 CPU, snntorch, sinabs, spikingjelly, numpy); it never imports eventsnn.
Inputs: ``--data`` (npz written by peers_speed.py: base weights in torch
layout, inputs NCHW, eventsnn's per-neuron spike counts) and ``--config``
(JSON: networks, gains, weight hashes, what to run). Output: ``--out`` JSON.

Semantics every peer must reproduce (eventsnn's discrete-time IF, direct input):
for each step t and each spiking layer l in order,
``V_l += W_l s_{l-1}[t]`` (for the first layer the constant current W_1 x),
``s_l[t] = V_l >= 1``, ``V_l -= s_l[t]``. The avgpool2 layers are linear
(weight 1/4) followed by their own IF neurons, like eventsnn's avgpool2d layers.
The first conv of the analog input is the same at every step, so every peer
computes it once per sample (as eventsnn does) and feeds that current for T steps.

Peers (``--peers``):

* ``torch``: plain PyTorch, F.conv2d/avg_pool2d/linear and an explicit IF
  update per layer per step;
* ``snntorch``: ``snn.Leaky(beta=1, threshold=1, reset_mechanism="subtract")``
  with a ``>=`` spike function (snnTorch's default surrogates fire on
  ``U > threshold``, strictly; see ``spike_ge``); step by step;
* ``sinabs``: ``IAFSqueeze`` (spike_fn=SingleSpike, MembraneSubtract,
  min_v_mem=None) in an ``nn.Sequential`` over (batch*T, ...) tensors; each
  layer runs all T steps before the next (sinabs' own time loop);
* ``sj_m``: SpikingJelly ``IFNode(v_reset=None, step_mode="m")`` and
  ``layer.*`` modules in multi-step mode over (T, batch, ...) tensors;
* ``sj_s``: the same modules in single-step mode, looped over t.

Diagnostic variants, agreement only: ``snntorch_default`` (default spike_grad:
fires on ``U > 1``) and ``sinabs_multispike`` (sinabs' default MultiSpike:
floor(V) spikes per step), the latter compared with eventsnn's multi-spike
neurons (``Neuron.max_spikes``) where the data holds them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import platform
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")

import logging  # noqa: E402

logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # "Triton not available" on CPU

import sinabs  # noqa: E402
import sinabs.hooks  # noqa: E402
import sinabs.layers as sl  # noqa: E402
import snntorch as snn  # noqa: E402
import spikingjelly  # noqa: E402
from sinabs.activation import MembraneSubtract, MultiSpike, SingleSpike  # noqa: E402
from spikingjelly.activation_based import functional as sjf  # noqa: E402
from spikingjelly.activation_based import layer as sjl  # noqa: E402
from spikingjelly.activation_based import neuron as sjn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers_common import scale_weights, weight_hash  # noqa: E402

TIMED_PEERS = ("torch", "snntorch", "sinabs", "sj_m", "sj_s")
DIAG_PEERS = ("snntorch_default", "sinabs_multispike")


# ----------------------------------------------------------------------------
# the network, described once; every peer is built from this
# ----------------------------------------------------------------------------

class NetDef:
    """items: the eventsnn layer list (dicts with name, kind); weights: torch layout tensors."""

    def __init__(self, items, weights):
        self.items = items
        self.weights = [torch.from_numpy(np.ascontiguousarray(w)) for w in weights]
        ws = iter(self.weights)
        self.w1 = next(ws)
        # stages after conv1: (name, kind, weight); the flatten merges into the next dense
        self.stages = []
        flat = False
        for it in items[1:]:
            if it["kind"] == "flatten":
                flat = True
                continue
            w = next(ws) if it["kind"] in ("conv2d", "dense") else None
            self.stages.append((it["name"], it["kind"], w, flat and it["kind"] == "dense"))
            if it["kind"] == "dense":
                flat = False
        self.spiking = [items[0]["name"]] + [s[0] for s in self.stages]

    def current1(self, x):
        return F.conv2d(x, self.w1, padding=1)

    def modules(self, neuron, squeeze_flatten=False):
        """nn modules for the stages after conv1, with ``neuron()`` after each linear op."""
        mods = [neuron()]
        for name, kind, w, flat in self.stages:
            if kind == "avgpool2d":
                mods.append(nn.AvgPool2d(2))
            elif kind == "conv2d":
                m = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, bias=False)
                m.weight.data.copy_(w)
                mods.append(m)
            else:
                if flat:
                    mods.append(nn.Flatten())
                m = nn.Linear(w.shape[1], w.shape[0], bias=False)
                m.weight.data.copy_(w)
                mods.append(m)
            mods.append(neuron())
        return mods

    def sj_modules(self, mode):
        mods = [sjn.IFNode(v_threshold=1.0, v_reset=None, step_mode=mode)]
        for name, kind, w, flat in self.stages:
            if kind == "avgpool2d":
                mods.append(sjl.AvgPool2d(2, step_mode=mode))
            elif kind == "conv2d":
                m = sjl.Conv2d(w.shape[1], w.shape[0], 3, padding=1, bias=False, step_mode=mode)
                m.weight.data.copy_(w)
                mods.append(m)
            else:
                if flat:
                    mods.append(sjl.Flatten(step_mode=mode))
                m = sjl.Linear(w.shape[1], w.shape[0], bias=False, step_mode=mode)
                m.weight.data.copy_(w)
                mods.append(m)
            mods.append(sjn.IFNode(v_threshold=1.0, v_reset=None, step_mode=mode))
        return mods


def spike_ge(mem_shift):
    """snnTorch spike function firing on U - threshold >= 0 (eventsnn, sinabs, SpikingJelly: V >= 1)."""
    return (mem_shift >= 0).to(mem_shift.dtype)


# ----------------------------------------------------------------------------
# peers: make(netdef, batch, T) -> run(x, record) -> (output counts (b, 10), [counts per spiking layer])
# ----------------------------------------------------------------------------

def make_torch(nd: NetDef, b, T):
    fns = []
    for name, kind, w, flat in nd.stages:
        if kind == "avgpool2d":
            fns.append(lambda s: F.avg_pool2d(s, 2))
        elif kind == "conv2d":
            fns.append(lambda s, w=w: F.conv2d(s, w, padding=1))
        else:
            fns.append(lambda s, w=w, flat=flat: F.linear(s.flatten(1) if flat else s, w))

    def run(x, record=False):
        cur = nd.current1(x)
        vs = None
        cnt = None
        out = None
        for t in range(T):
            h, s = cur, None
            new = vs is None
            if new:
                vs = []
            for i in range(len(fns) + 1):
                if i:
                    h = fns[i - 1](s)
                if new:
                    vs.append(torch.zeros_like(h))
                v = vs[i]
                v += h
                s = (v >= 1.0).to(v.dtype)
                v -= s
                if record:
                    cnt = _count(cnt, i, s)
            out = s.clone() if out is None else out.add_(s)
        return out, cnt
    return run


def _count(cnt, i, s):
    """Add this step's spikes ``s`` of neuron layer ``i`` to the running counts."""
    if cnt is None or len(cnt) <= i:
        cnt = (cnt or []) + [torch.zeros_like(s)]
    cnt[i] += s
    return cnt


def make_snntorch(nd: NetDef, b, T, default_spike=False):
    mods = nd.modules(lambda: snn.Leaky(beta=1.0, threshold=1.0, reset_mechanism="subtract",
                                        spike_grad=None if default_spike else spike_ge))
    lifs = [m for m in mods if isinstance(m, snn.Leaky)]
    # group linear ops per stage: stage i has the modules between neuron i-1 and neuron i
    groups, cur = [], []
    for m in mods[1:]:
        if isinstance(m, snn.Leaky):
            groups.append(nn.Sequential(*cur))
            cur = []
        else:
            cur.append(m)

    def run(x, record=False):
        c1 = nd.current1(x)
        mems = [None] * len(lifs)
        cnt = None
        out = None
        for t in range(T):
            h, s = c1, None
            for i, lif in enumerate(lifs):
                if i:
                    h = groups[i - 1](s)
                if mems[i] is None:
                    mems[i] = torch.zeros_like(h)
                s, mems[i] = lif(h, mems[i])
                if record:
                    cnt = _count(cnt, i, s)
            out = s.clone() if out is None else out.add_(s)
        return out, cnt
    return run


def make_sinabs(nd: NetDef, b, T, spike_fn=SingleSpike, with_conv1=False):
    def neuron():
        return sl.IAFSqueeze(batch_size=b, spike_threshold=torch.tensor(1.0), spike_fn=spike_fn,
                             reset_fn=MembraneSubtract(), min_v_mem=None)
    mods = nd.modules(neuron)
    if with_conv1:
        c1 = nn.Conv2d(nd.w1.shape[1], nd.w1.shape[0], 3, padding=1, bias=False)
        c1.weight.data.copy_(nd.w1)
        mods = [c1] + mods
    seq = nn.Sequential(*mods)
    iafs = [m for m in seq if isinstance(m, sl.IAFSqueeze)]

    def run(x, record=False):
        for m in iafs:
            m.reset_states()
        src = x if with_conv1 else nd.current1(x)
        inp = src.unsqueeze(1).expand(src.shape[0], T, *src.shape[1:]).reshape(src.shape[0] * T, *src.shape[1:])
        cnt, handles = [], []
        if record:
            for m in iafs:
                handles.append(m.register_forward_hook(
                    lambda mod, i, o: cnt.append(o.reshape(b, T, *o.shape[1:]).sum(1))))
        out = seq(inp)
        for hd in handles:
            hd.remove()
        return out.reshape(b, T, -1).sum(1), (cnt if record else None)
    run.seq = seq
    return run


def make_sj(nd: NetDef, b, T, mode):
    seq = nn.Sequential(*nd.sj_modules(mode))
    ifs = [m for m in seq if isinstance(m, sjn.IFNode)]

    def run(x, record=False):
        sjf.reset_net(seq)
        c1 = nd.current1(x)
        cnt, handles = [], []
        if record:
            if mode == "m":
                for m in ifs:
                    handles.append(m.register_forward_hook(lambda mod, i, o: cnt.append(o.sum(0))))
            else:
                acc = {}
                for k, m in enumerate(ifs):
                    def hook(mod, i, o, k=k):
                        acc[k] = o.clone() if k not in acc else acc[k].add_(o)
                    handles.append(m.register_forward_hook(hook))
        if mode == "m":
            out = seq(c1.unsqueeze(0).expand(T, *c1.shape)).sum(0)
        else:
            out = None
            for t in range(T):
                o = seq(c1)
                out = o.clone() if out is None else out.add_(o)
        for hd in handles:
            hd.remove()
        if record and mode == "s":
            cnt = [acc[k] for k in range(len(ifs))]
        return out, (cnt if record else None)
    return run


def make_peer(peer, nd, b, T):
    if peer == "torch":
        return make_torch(nd, b, T)
    if peer == "snntorch":
        return make_snntorch(nd, b, T)
    if peer == "snntorch_default":
        return make_snntorch(nd, b, T, default_spike=True)
    if peer == "sinabs":
        return make_sinabs(nd, b, T)
    if peer == "sinabs_multispike":
        return make_sinabs(nd, b, T, spike_fn=MultiSpike)
    if peer == "sj_m":
        return make_sj(nd, b, T, "m")
    if peer == "sj_s":
        return make_sj(nd, b, T, "s")
    raise ValueError(peer)


# ----------------------------------------------------------------------------

def to_hwc(c: torch.Tensor) -> np.ndarray:
    """Counts (b, C, H, W) or (b, N) as (b, H*W*C) in eventsnn's HWC order."""
    a = c.detach().numpy()
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    return np.rint(a.reshape(a.shape[0], -1)).astype(np.int64)


def load_net(data, cfg, name, ri, quant):
    nc = cfg["nets"][name]
    rc = nc["rates"][ri]
    nbase = len(rc["hashes_q"])
    base = [data[f"{name}/w{k}"] for k in range(nbase)]
    ws = scale_weights(base, rc["gains"], quant)
    want = rc["hashes_q" if quant else "hashes"]
    got = [weight_hash(w) for w in ws]
    if got != want:
        raise SystemExit(f"{name} rate {rc['target']}: torch-side weights differ from eventsnn's "
                         f"(hash {got} vs {want})")
    return NetDef(nc["items"], ws)


def agreement(data, cfg, name, ri, quant, peers, log):
    nc = cfg["nets"][name]
    T = cfg["T"]
    nd = load_net(data, cfg, name, ri, quant)
    na = cfg["agree_samples"]
    x = torch.from_numpy(data[f"{name}/x"][:na])
    tag = "q" if quant else "u"
    res = []
    for peer in peers:
        # sinabs' MultiSpike is compared with eventsnn's multi-spike neurons (max_spikes
        # large enough never to bind), recorded as "qm" where the eventsnn side has them
        ptag = "qm" if (peer == "sinabs_multispike" and f"{name}/r{ri}/ev_qm/{nd.spiking[0]}" in data) else tag
        ev = {ln: data[f"{name}/r{ri}/ev_{ptag}/{ln}"].reshape(na, -1).astype(np.int64) for ln in nd.spiking}
        run = make_peer(peer, nd, na, T)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out, cnt = run(x, record=True)
        dt = time.perf_counter() - t0
        layers = {}
        for ln, c in zip(nd.spiking, cnt):
            p = to_hwc(c)
            e = ev[ln]
            layers[ln] = {"neurons": int(e.shape[1]), "samples": na,
                          "mismatched_neuron_counts": int(np.count_nonzero(p != e)),
                          "equal_frac": float(np.mean(p == e)),
                          "max_abs_diff": int(np.abs(p - e).max()),
                          "peer_spikes_per_sample": p.sum(1).tolist(), "ev_spikes_per_sample": e.sum(1).tolist()}
        po, eo = to_hwc(out), ev[nd.spiking[-1]]
        r = {"net": name, "rate_index": ri, "target_rate": nc["rates"][ri]["target"], "peer": peer,
             "quantised": quant, "eventsnn_counts": "multi-spike" if ptag == "qm" else "binary", "samples": na, "seconds": dt, "layers": layers,
             "output_equal_frac": float(np.mean(po == eo)),
             "output_counts_equal_samples": int(np.sum(np.all(po == eo, axis=1))),
             "prediction_equal_frac": float(np.mean(po.argmax(1) == eo.argmax(1))),
             "exact": all(v["mismatched_neuron_counts"] == 0 for v in layers.values())}
        res.append(r)
        bad = [f"{k}:{v['mismatched_neuron_counts']}" for k, v in layers.items() if v["mismatched_neuron_counts"]]
        log(f"  agree {name} r={r['target_rate']:.2f} {'quant' if quant else 'float'} {peer:18s} "
            f"{'EXACT' if r['exact'] else 'differs ' + ' '.join(bad)}; output counts equal "
            f"{r['output_equal_frac'] * 100:.1f} % ({dt:.1f} s)")
    return res


def synops(data, cfg, name, ri, log):
    """sinabs' synaptic-op estimate (hooks API and the deprecated SNNAnalyzer) on the quantised net."""
    T = cfg["T"]
    nd = load_net(data, cfg, name, ri, True)
    na = cfg["agree_samples"]
    x = torch.from_numpy(data[f"{name}/x"][:na])
    out = {"net": name, "rate_index": ri, "samples": na}
    # 1. sinabs.hooks.register_synops_hooks (current API); per sample = per-timestep value x T
    run = make_sinabs(nd, na, T, with_conv1=True)
    seq = run.seq
    sinabs.hooks.register_synops_hooks(seq)
    with torch.inference_mode():
        run(x)
    names = [nd.items[0]["name"]] + [n for n, k, w, f in nd.stages if w is not None]
    wmods = [m for m in seq if isinstance(m, (nn.Conv2d, nn.Linear))]
    raw, scaled = {}, {}
    for ln, m in zip(names, wmods):
        raw[ln] = float(m.hook_data["layer_synops_per_timestep"]) * T
        scaled[ln] = float(m.hook_data["synops_per_timestep"]) * T
    out["hooks_raw"] = raw
    out["hooks_pool_scaled"] = scaled
    out["hooks_total"] = float(seq.hook_data["total_synops_per_timestep"]) * T
    # 2. the deprecated SNNAnalyzer (what older sinabs docs show)
    run2 = make_sinabs(nd, na, T, with_conv1=True)
    for m in run2.seq:
        if isinstance(m, sl.IAFSqueeze):
            m.num_timesteps = T  # SNNAnalyzer reads (batch_size, num_timesteps) at setup
    an = sinabs.SNNAnalyzer(run2.seq)
    with torch.inference_mode():
        run2(x)
    st = an.get_layer_statistics()["parameter"]
    keys = list(st.keys())
    out["analyzer"] = {ln: float(st[k]["synops"]) for ln, k in zip(names, keys)}
    out["analyzer_total"] = float(sum(out["analyzer"].values()))
    log(f"  synops {name} r={cfg['nets'][name]['rates'][ri]['target']:.2f}: sinabs hooks total "
        f"{out['hooks_total']:.4g}/sample, SNNAnalyzer {out['analyzer_total']:.4g}/sample")
    return out


def timings(data, cfg, name, ri, log):
    T = cfg["T"]
    nc = cfg["nets"][name]
    nd = load_net(data, cfg, name, ri, False)
    xs = torch.from_numpy(data[f"{name}/x"])
    res = []
    # every batch size at the rates in time_rates; elsewhere the smallest batch only (the peers'
    # dense work does not depend on the rate; batch 1 shows that at every rate for little time)
    batches = nc["batches"] if ri in nc.get("time_rates", range(len(nc["rates"]))) else [min(nc["batches"])]
    for th in cfg["threads"]:
        torch.set_num_threads(th)
        for b in batches:
            x = xs[:b].contiguous()
            for peer in cfg["peers"]:
                run = make_peer(peer, nd, b, T)
                with torch.inference_mode():
                    # warm-up on a few steps (allocations, oneDNN primitives; multi-step peers meet
                    # their full (T*batch) shapes in the first timed run, which the median absorbs)
                    tw = min(T, cfg.get("warmup_T", 10))
                    t0 = time.perf_counter()
                    make_peer(peer, nd, b, tw)(x)
                    warm = time.perf_counter() - t0
                    ts = []
                    for _ in range(cfg["reps"]):
                        gc.collect()
                        t0 = time.perf_counter()
                        o, _ = run(x)
                        ts.append(time.perf_counter() - t0)
                per = np.array(ts) / b
                r = {"net": name, "rate_index": ri, "target_rate": nc["rates"][ri]["target"], "peer": peer,
                     "threads": th, "batch": b, "times_s": ts, "warmup_s": warm,
                     "per_sample_median_s": float(np.median(per)), "per_sample_min_s": float(per.min()),
                     "per_sample_max_s": float(per.max()), "output_spikes": float(o.sum())}
                res.append(r)
                log(f"  time {name} r={r['target_rate']:.2f} thr={th} b={b:<3d} {peer:9s} "
                    f"{r['per_sample_median_s'] * 1e3:9.2f} ms/sample (min {r['per_sample_min_s'] * 1e3:.2f}, "
                    f"max {r['per_sample_max_s'] * 1e3:.2f})")
                del run
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = json.load(open(args.config))
    data = dict(np.load(args.data))
    torch.set_num_interop_threads(1)
    t_start = time.perf_counter()

    def log(msg):
        print(msg, flush=True)

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "torch_config_mkldnn": bool(torch.backends.mkldnn.is_available()),
            "snntorch": snn.__version__, "sinabs": getattr(sinabs, "__version__", "?"),
            "spikingjelly": getattr(spikingjelly, "__version__", None), "numpy": np.__version__,
            "loadavg_start": list(os.getloadavg())}
    try:
        from importlib.metadata import version
        info["spikingjelly"] = info["spikingjelly"] or version("spikingjelly")
        info["sinabs"] = version("sinabs")
    except Exception:  # pragma: no cover
        pass
    log(f"torch side: torch {info['torch']}, snntorch {info['snntorch']}, sinabs {info['sinabs']}, "
        f"spikingjelly {info['spikingjelly']}")
    out = {"info": info, "agreement": [], "synops": [], "timings": []}
    for name, nc in cfg["nets"].items():
        for ri in range(len(nc["rates"])):
            if cfg["agree_samples"] > 0:
                torch.set_num_threads(max(cfg["threads"]))
                for quant in (True, False):
                    peers = list(cfg["peers"]) + (list(cfg["diag_peers"]) if quant else [])
                    out["agreement"] += agreement(data, cfg, name, ri, quant, peers, log)
                out["synops"].append(synops(data, cfg, name, ri, log))
            if cfg["reps"] > 0:
                out["timings"] += timings(data, cfg, name, ri, log)
            # write as we go, so a long run that is stopped keeps what it measured
            info["loadavg_end"] = list(os.getloadavg())
            info["total_s"] = time.perf_counter() - t_start
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    log(f"torch side done in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
