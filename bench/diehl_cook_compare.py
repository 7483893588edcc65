"""The Diehl & Cook network of bench/diehl_cook.py, eventsnn against Brian2, in one benchmark run.

    python bench/diehl_cook_compare.py [--train 1000] [--assign 1000] [--test 1000]
        [--brian2-python /work/brian2-venv/bin/python] [--per-sample-train 200]

Both simulators train the same network (same equations, constants,
competition and initial weights; bench/diehl_cook_brian2.py lists what
Brian2's clock changes) on the same ``--train`` Fashion-MNIST training images in the same order, then
assign labels on the same ``--assign`` training images and test on the same
``--test`` test images. eventsnn runs in this process (compiled on two
warm-up samples before timing); Brian2 (cython target) runs in its own
environment in a subprocess, after ``--warmup`` samples that compile its code
(excluded from the timing), in these runs: "one-run" (a single Network.run over all samples, a network_operation
switching samples every 350 ms: the fastest way we found to drive Brian2;
trains on ``--train`` and evaluates) and "run-per-sample" (one Network.run per
sample, as the original Diehl & Cook code does; training time only, on the
first ``--per-sample-train`` samples); and, for each ``--extra-dt`` (default
1 ms, the engine's time unit), one-run training only at that time step.
Reported: wall and CPU (process_time) ms per training sample for each, the
ratios Brian2 / eventsnn, accuracy for each, and the load average before and
after each part. Writes bench/results/diehl_cook_compare.json.

The Brian2 environment (not an eventsnn dependency)::

    python -m venv /work/brian2-venv
    /work/brian2-venv/bin/pip install brian2 "numpy<2.4"

(brian2 2.9.0 uses ``ndarray.ptp``, which numpy 2.4 removed; the cython
target needs Cython, installed with brian2, and a C compiler.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diehl_cook  # noqa: E402
from machine import ROOT, machine_info  # noqa: E402

from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io.atomic import atomic_path  # noqa: E402
from eventsnn.learn.stdp_train import _random_weights  # noqa: E402


def brian2(python, data, params, out, mode, extra, log):
    cmd = [python, str(ROOT / "bench" / "diehl_cook_brian2.py"), "--data", str(data), "--params", str(params),
           "--out", str(out), "--mode", mode, *extra]
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        log("  " + line)
    if proc.returncode != 0:
        raise SystemExit(f"Brian2 run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(Path(out).read_text())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    diehl_cook.add_arguments(ap)
    ap.set_defaults(train=1000, assign=1000, test=1000)
    ap.add_argument("--brian2-python", default="/work/brian2-venv/bin/python")
    ap.add_argument("--per-sample-train", type=int, default=200)
    ap.add_argument("--dt", type=float, default=0.5, help="Brian2 time step (ms)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--extra-dt", type=float, nargs="*", default=[1.0],
                    help="also time Brian2 one-run training (no evaluation) at these time steps (ms)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "diehl_cook_compare.json"))
    args = ap.parse_args(argv)
    if not Path(args.brian2_python).exists():
        raise SystemExit(f"no Brian2 python at {args.brian2_python} (create the environment: see the module doc)")

    def log(msg):
        print(msg, flush=True)

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = machine_info()
    info["loadavg_start"] = list(os.getloadavg())
    log(f"eventsnn: {args.neurons} neurons, train {args.train}, assign {args.assign}, test {args.test}")
    ev = diehl_cook.run(args, log=log)
    train = load_dataset(diehl_cook.DATA / "train-images-idx3-ubyte.gz", limit=max(args.train, args.assign))
    test = load_dataset(diehl_cook.DATA / "t10k-images-idx3-ubyte.gz", limit=args.test)
    xtr = train.x.reshape(len(train.x), 784)
    order = diehl_cook.training_order(args.seed, args.train)
    params = {k: getattr(args, k) for k in ("neurons", "threshold", "theta_plus", "tau_theta", "normalize",
                                             "eta_plus", "eta_minus", "x_tar", "rate", "seed")}
    params["tau_theta"] = str(params["tau_theta"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net, settings = diehl_cook.build(args)
        w0 = _random_weights(net.layer("exc"), settings.rule, settings.seed, 0)  # what train_stdp starts from
        np.savez(tmp / "samples.npz", w0=w0, x_train=xtr[: args.train][order], x_assign=xtr[: args.assign],
                 y_assign=train.y[: args.assign], x_test=test.x.reshape(len(test.x), 784), y_test=test.y)
        (tmp / "params.json").write_text(json.dumps(params))
        extra = ["--dt", str(args.dt), "--warmup", str(args.warmup), "--cache", str(tmp / "cython")]
        one = brian2(args.brian2_python, tmp / "samples.npz", tmp / "params.json", tmp / "one.json", "one-run",
                     extra, log)
        np.savez(tmp / "first.npz", w0=w0, x_train=xtr[: args.train][order][: args.per_sample_train],
                 x_assign=xtr[:0], y_assign=train.y[:0], x_test=xtr[:0], y_test=train.y[:0])
        per = brian2(args.brian2_python, tmp / "first.npz", tmp / "params.json", tmp / "per.json",
                     "run-per-sample", extra + ["--no-eval"], log)
        extra_runs = {}
        for dt in args.extra_dt:
            extra_runs[f"one_run_dt{dt:g}"] = brian2(
                args.brian2_python, tmp / "samples.npz", tmp / "params.json", tmp / f"dt{dt:g}.json", "one-run",
                ["--dt", str(dt), "--warmup", str(args.warmup), "--cache", str(tmp / "cython"), "--no-eval"], log)
    info["loadavg_end"] = list(os.getloadavg())
    runs = {"one_run": one, "run_per_sample": per, **extra_runs}
    ratios = {f"{name}_{label}": b[f"{kind}ms_per_training_sample"] / ev[f"{kind}ms_per_training_sample"]
              for name, b in runs.items() for kind, label in (("", "wall"), ("cpu_", "cpu"))}
    result = {"date": started, "machine": info, "args": {k: (str(v) if isinstance(v, float) and not np.isfinite(v)
                                                             else v) for k, v in vars(args).items()},
              "eventsnn": ev, "brian2_one_run": one, "brian2_run_per_sample": per,
              **{f"brian2_{k}": v for k, v in extra_runs.items()},
              "speedup_brian2_over_eventsnn": ratios}
    log(f"ms per training sample, wall (CPU): eventsnn {ev['ms_per_training_sample']:.2f} "
        f"({ev['cpu_ms_per_training_sample']:.2f}); Brian2 one-run {one['ms_per_training_sample']:.1f} "
        f"({one['cpu_ms_per_training_sample']:.1f}); Brian2 run-per-sample {per['ms_per_training_sample']:.1f} "
        f"({per['cpu_ms_per_training_sample']:.1f})"
        + "".join(f"; Brian2 {k} {v['ms_per_training_sample']:.1f} ({v['cpu_ms_per_training_sample']:.1f})"
                  for k, v in extra_runs.items()))
    log("speed-ups (Brian2 time / eventsnn time): " + ", ".join(f"{k} {v:.1f}x" for k, v in ratios.items()))
    log(f"accuracy: eventsnn {100 * ev['accuracy']:.2f} %, Brian2 {100 * one['accuracy']:.2f} % "
        f"(assign {args.assign}, test {args.test})")
    with atomic_path(args.out) as tmp_out:
        Path(tmp_out).write_text(json.dumps(result, indent=1))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
