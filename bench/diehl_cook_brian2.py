"""The network of bench/diehl_cook.py in Brian2, for the speed and accuracy comparison.

    /work/brian2-venv/bin/python bench/diehl_cook_brian2.py --data samples.npz --params params.json --out result.json

Runs in its own environment (Brian2 is not an eventsnn dependency; see
bench/diehl_cook_compare.py, which writes the inputs and starts this script).
``samples.npz`` holds ``x_train`` (training images in the order eventsnn
presents them, (n, 784) in [0, 1]), ``x_assign``/``y_assign`` and
``x_test``/``y_test``; ``params.json`` the constants of the eventsnn run
(neurons, threshold, theta_plus, tau_theta, normalize, eta_plus, eta_minus,
x_tar, rate, seed). Same model and rule as bench/diehl_cook.py:

    dv/dt = -v / (100 ms)                          (current-based, exact integration)
    input spike:  w -= eta_- y_post (w - w_min);  v_post += w;  x_pre += 1
    post spike:   w += eta_+ (x_pre - x_tar) f(w);   y_post += 1;  v = 0
                  (f = w_max - w when x_pre >= x_tar, else w - w_min)
    dx_pre/dt = -x_pre / 20 ms,  dy_post/dt = -y_post / 20 ms   (all-to-all traces)
    spike when v >= threshold + theta and (no neuron has spiked yet in this
    sample, or this neuron was the first)              (k = 1 winner-take-all)

PoissonGroup inputs at rate x pixel; 350 ms per sample; between samples every
state variable and trace is cleared (as eventsnn does; the original ran 150 ms
of rest instead), theta <- theta e^{-T/tau_theta} + theta_plus * spikes, and
each neuron's incoming weights are scaled to sum to ``normalize``. Label
assignment and test: learning off, thetas frozen, the winner-take-all on;
labels and votes by bench/dc_labels.py, as for eventsnn.

Differences from eventsnn forced by Brian2's clock: time is stepped (``--dt``,
default 0.5 ms, the original's), so spike times sit on the grid; an input spike
reaches V in the step it occurs and the threshold is checked at the next step
(eventsnn: at the spike's exact time); two neurons crossing in the same step
both spike, and the lower index wins the competition (eventsnn: the first in
continuous time). Input spikes are Brian2's own Poisson draws, not the same
spike trains (seeded with the same seed, but another generator). The initial
weights are eventsnn's (``w0`` in the npz; drawn here, uniform in [0, 1], without it).

Timing: cython target; ``--warmup`` samples are run first (compilation and
caches) and excluded; then wall time (perf_counter) and this process's CPU
time (process_time; the compiled extensions run in-process) per training
sample, including the per-sample Python work (rates, resets, theta,
normalisation).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from dc_labels import assign_and_test  # bench/, on the path as this script's directory


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dt", type=float, default=0.5, help="time step in ms")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--mode", choices=("one-run", "run-per-sample"), default="one-run",
                    help="one Network.run over all samples, a network_operation switching them every 350 ms; "
                         "or one Network.run per sample (as the original code does)")
    ap.add_argument("--no-eval", dest="eval", action="store_false", help="time training only")
    ap.add_argument("--cache", default=None, help="Brian2 cython cache directory")
    args = ap.parse_args(argv)
    load_start = list(os.getloadavg())
    p = json.loads(open(args.params).read())
    d = np.load(args.data)
    import brian2 as b2
    from brian2 import Hz, ms

    b2.prefs.codegen.target = "cython"
    # The claim below is order-dependent on purpose (sequential in cython: the lowest index wins a tie).
    b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators.base")
    if args.cache:
        b2.prefs.codegen.runtime.cython.cache_dir = args.cache
    b2.defaultclock.dt = args.dt * ms
    n = int(p["neurons"])
    rate = float(p["rate"])
    duration = 350 * ms
    tau_theta = float(p["tau_theta"])

    inp = b2.PoissonGroup(784, rates=np.zeros(784) * Hz, name="inp")
    gate = b2.NeuronGroup(1, "winner : integer", name="gate")
    exc = b2.NeuronGroup(n, """dv/dt = -v / (100 * ms) : 1
                              theta : 1 (constant)
                              vth : 1 (shared, constant)
                              count : integer
                              winner : integer (linked)""",
                         threshold="v >= vth + theta and (winner < 0 or winner == i)",
                         reset="v = 0\ncount += 1", method="exact", name="exc")
    exc.winner = b2.linked_var(gate, "winner", index=np.zeros(n, dtype=int))
    exc.vth = float(p["threshold"])
    # First spike of the sample claims the gate (sequential in the cython loop: the lowest index wins a tie).
    claim = b2.Synapses(exc, gate, on_pre="winner_post += int(winner_post < 0) * (i_pre + 1)", name="claim")
    claim.connect()
    syn = b2.Synapses(inp, exc, """w : 1
                                 eta_p : 1 (shared)
                                 eta_m : 1 (shared)
                                 xtar : 1 (shared, constant)
                                 dxpre/dt = -xpre / (20 * ms) : 1 (event-driven)
                                 dypost/dt = -ypost / (20 * ms) : 1 (event-driven)""",
                      on_pre="""w = clip(w - eta_m * ypost * w, 0, 1)
                                v_post += w
                                xpre += 1""",
                      on_post="""w = clip(w + eta_p * (xpre - xtar) * (int(xpre >= xtar) * (1 - w) + int(xpre < xtar) * w), 0, 1)
                                 ypost += 1""", name="syn")
    syn.connect()  # i-major: synapse k = i * n + j
    syn.xtar = float(p.get("x_tar", 0.0))
    if "w0" in d:  # eventsnn's initial weights (784, n)
        syn.w[:] = np.asarray(d["w0"], np.float64).reshape(-1)
    else:
        syn.w[:] = np.random.default_rng(int(p["seed"])).uniform(0.0, 1.0, 784 * n)
    b2.seed(int(p["seed"]))  # Brian2's own Poisson draws
    net = b2.Network(inp, gate, exc, claim, syn)
    theta = np.zeros(n)
    normalize = float(p["normalize"])

    def begin(x, learn):
        inp.rates = x * rate * Hz
        exc.v = 0
        exc.count = 0
        exc.theta = theta
        gate.winner = -1
        syn.xpre = 0
        syn.ypost = 0
        syn.eta_p = float(p["eta_plus"]) if learn else 0.0
        syn.eta_m = float(p["eta_minus"]) if learn else 0.0

    def end(learn):
        nonlocal theta
        c = np.asarray(exc.count[:], np.float64)
        if learn:
            decay = math.exp(-350.0 / tau_theta) if math.isfinite(tau_theta) else 1.0
            theta = theta * decay + float(p["theta_plus"]) * c
            w = np.asarray(syn.w[:]).reshape(784, n)
            s = w.sum(axis=0)
            syn.w[:] = (w * np.where(s > 0, normalize / np.where(s > 0, s, 1.0), 1.0)).reshape(-1)
        return c

    plan = {"xs": None, "learn": False, "t0": 0.0, "out": []}

    @b2.network_operation(dt=duration, when="start")
    def switch(t):  # one-run mode: sample k occupies [t0 + k T, t0 + (k + 1) T)
        k = int(round(float((t - plan["t0"]) / duration)))
        if k > 0:
            plan["out"].append(end(plan["learn"]))
        if k < len(plan["xs"]):
            begin(plan["xs"][k], plan["learn"])

    def session(xs, learn):
        """Spike counts (len(xs), n) of presenting ``xs`` in turn (training when ``learn``)."""
        if args.mode == "run-per-sample":
            out = []
            for x in xs:
                begin(x, learn)
                net.run(duration)
                out.append(end(learn))
            return np.stack(out) if out else np.zeros((0, n))
        plan.update(xs=xs, learn=learn, t0=net.t, out=[])
        net.run(len(xs) * duration)
        plan["out"].append(end(learn))  # the last sample (the operation does not run at the very end)
        return np.stack(plan["out"])

    if args.mode == "one-run":
        net.add(switch)
    xtr = d["x_train"]
    t0 = time.perf_counter()
    w0 = np.asarray(syn.w[:]).copy()
    session(xtr[: args.warmup], True)  # compile and warm the caches; then undo what they learned
    warm_s = time.perf_counter() - t0
    syn.w[:] = w0
    theta = np.zeros(n)
    print(f"brian2 ({args.mode}, dt {args.dt} ms): warm-up ({args.warmup} samples, compilation included) "
          f"{warm_s:.1f} s", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    spikes = float(session(xtr, True).sum())
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"brian2: trained {len(xtr)} samples in {train_s:.1f} s: {1000 * train_s / len(xtr):.1f} ms/sample "
          f"(CPU {1000 * train_cpu / len(xtr):.1f} ms)", flush=True)
    t0 = time.perf_counter()
    ca = session(d["x_assign"], False) if args.eval else np.zeros((0, n))
    ct = session(d["x_test"], False) if args.eval else np.zeros((0, n))
    eval_s = time.perf_counter() - t0
    ya, yt = d["y_assign"][: len(ca)], d["y_test"][: len(ct)]
    acc, label = assign_and_test(ca, ya, ct, yt)
    if args.eval:
        print(f"brian2: accuracy {100 * acc:.2f} % (assign {len(ca)}, test {len(ct)}); eval {eval_s:.1f} s", flush=True)
    result = {"brian2_version": b2.__version__, "numpy_version": np.__version__, "target": "cython", "mode": args.mode,
              "dt_ms": args.dt, "warmup_samples": args.warmup, "warmup_seconds": warm_s,
              "train_samples": int(len(xtr)), "train_seconds": train_s, "train_cpu_seconds": train_cpu,
              "ms_per_training_sample": 1000 * train_s / len(xtr),
              "cpu_ms_per_training_sample": 1000 * train_cpu / len(xtr),
              "train_spikes_per_sample": spikes / len(xtr),
              "accuracy": acc, "assign_images": int(len(ca)), "test_images": int(len(ct)), "eval_seconds": eval_s,
              "spikes_per_test_sample": float(ct.sum(axis=1).mean()) if len(ct) else None,
              "neurons_winning_in_test": int((ct.sum(0) > 0).sum()) if len(ct) else None,
              "labels_used": np.bincount(label[label >= 0], minlength=10).tolist(),
              "neurons_unlabelled": int(np.sum(label < 0)),
              "theta_mean": float(theta.mean()), "theta_max": float(theta.max()),
              "loadavg_start": load_start, "loadavg_end": list(os.getloadavg())}
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
