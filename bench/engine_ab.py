"""A/B speed of this checkout's engine against another checkout's, in one run.

    python bench/engine_ab.py --baseline /path/to/other/checkout [--rounds 5]

(make the other checkout with ``git worktree add /tmp/base COMMIT``). Each
round runs one fresh subprocess per checkout, importing that checkout's engine;
the order flips every round, so drift in machine load hits both alike. Two
workloads (``--workloads es,B``):

- ``es``: part 1 of ``engine_speed.py``: 1e6 distinct (step, neuron) input
  events into one never-spiking 3x3 conv (32x32x64 -> 64, padding 1): the
  engine's ``run()`` against that checkout's bare scatter kernel on the same
  events (fraction of the bare limit), best of ``--reps``;
- ``B``: net B of ``peers_speed.py`` (VGG-style, Fashion-MNIST 28x28, T = 100)
  at the 1 % and 5 % per-layer rates of the published run (the gains recorded
  in ``results/peers_speed_B_final.json``), layer order, batch 1: time per
  sample of ``run()`` over 8 images, best of ``--reps``.

Every timing is taken twice: CPU time of the process (``time.process_time``,
which leaves out the time spent waiting for a core: on a shared 2-core machine
that is most of the noise) and wall-clock time. The run-to-run noise of a
metric is the spread (max - min) / median of its rounds for one checkout; the
report compares the medians. Results go to ``results/engine_ab.json`` with
machine info. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _timed(fn, reps, setup=None):
    """(best CPU seconds, best wall seconds) of ``fn()`` over ``reps`` runs, ``setup()``
    untimed before each. CPU time (time.process_time) leaves out the time the process
    waits while another one has the core, which on a shared 2-core machine is most of
    the wall-clock noise."""
    cpu, wall = [], []
    for _ in range(reps):
        if setup is not None:
            setup()
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def worker(root: Path, netdir: Path, reps: int, workloads: set) -> dict:
    """Time the workloads with the engine of ``root``; seconds per run or per sample."""
    sys.path.insert(0, str(root))
    import numpy as np
    from eventsnn.engine.simulator import Simulator
    from eventsnn.io import load_network
    from eventsnn.network import Layer, Network, Neuron
    assert Path(sys.modules["eventsnn"].__file__).resolve().is_relative_to(root.resolve())
    out = {}
    if "es" in workloads:
        # engine_speed.py part 1: 1e6 distinct (step, neuron) input events into one 3x3 conv
        # (32x32x64 -> 64, padding 1) that never spikes; the bare scatter is engine_speed's own
        # kernel from the same checkout, on the same events.
        sys.path.insert(0, str(root / "bench"))
        import engine_speed as es
        H = W = 32
        CI = CO = 64
        T, n_ev = 100, 1_000_000
        rng = np.random.default_rng(0)
        weight = (rng.standard_normal((3, 3, CI, CO)) * np.sqrt(2 / (9 * CI))).astype(np.float32)
        slots = np.sort(rng.choice(T * H * W * CI, n_ev, replace=False))
        times = (slots // (H * W * CI)).astype(np.float64)
        idx = (slots % (H * W * CI)).astype(np.int32)
        wflat = np.ascontiguousarray(weight).reshape(-1)
        mem = np.zeros(H * W * CO, np.float32)
        es.scatter_cl(idx, 64, 1, wflat, mem, H, W, CI, CO)
        bare_cpu, bare_wall = _timed(lambda: es.scatter_cl(idx, n_ev, 1, wflat, mem, H, W, CI, CO), reps)
        net = Network(input_shape=(H, W, CI), encoding="poisson", layers=[
            Layer("conv", "conv2d", ("input",), weight=weight, padding=(1, 1), neuron=Neuron("if", threshold=1e9))])
        sim = Simulator(net, timesteps=T, encoding="poisson")
        x = np.zeros((H, W, CI), np.float32)

        def load():
            sim.reset(x, input_spikes=(times, idx))
        load()
        sim.run()
        eng_cpu, eng_wall = _timed(sim.run, reps, setup=load)
        out["es"] = {"bare_cpu_s": bare_cpu, "bare_wall_s": bare_wall, "engine_cpu_s": eng_cpu,
                     "engine_wall_s": eng_wall, "syn_ops": int(sim.syn_ops.sum())}  # works on older engines too
    if "B" in workloads:
        xs = np.load(netdir / "inputs.npz")["x"]
        for path in sorted(netdir.glob("B_*.h5")):
            sim = Simulator(load_network(path), timesteps=100, encoding="direct", order="layer")
            sim.reset(xs[0])
            sim.run()  # compile or load the kernels, size the queue

            cpu, wall = np.zeros(len(xs)), np.zeros(len(xs))
            for i, x in enumerate(xs):  # each sample: best of reps, run() only
                cpu[i], wall[i] = _timed(sim.run, reps, setup=lambda x=x: sim.reset(x))
            out[path.stem] = {"cpu_s": float(cpu.mean()), "wall_s": float(wall.mean())}
    return out


def make_nets(netdir: Path) -> list:
    """Net B at the published 1 % and 5 % gains, saved with this checkout's writer."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from peers_speed import SPECS, base_weights, build_net, load_inputs
    from peers_common import scale_weights
    from eventsnn.io import save_network
    published = json.loads((HERE / "results" / "peers_speed_B_final.json").read_text())
    seed = int(published["args"]["seed"]) + 1  # net B uses seed + 1
    spec = SPECS["B"]
    base = base_weights(spec, seed)
    made = []
    for r in published["nets"]["B"]["rates"]:
        if r["target"] not in (0.01, 0.05):
            continue
        net = build_net(spec, scale_weights(base, r["gains"], False))
        path = netdir / f"B_{int(round(r['target'] * 100))}pct.h5"
        save_network(net, path)
        made.append(path.name)
    np.savez(netdir / "inputs.npz", x=load_inputs(spec, 8))
    return made


def run_child(args: list, timeout: int = 900) -> str:
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if res.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="the other checkout (a git worktree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workloads", default="es,B", help="es: engine_speed part 1; B: net B (default both)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "engine_ab.json")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--netdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.netdir, args.reps, set(args.workloads.split(",")))))
        return
    if args.baseline is None or not (args.baseline / "eventsnn" / "engine").is_dir():
        ap.error("--baseline must be another eventsnn checkout")
    sys.path.insert(0, str(HERE))
    from machine import machine_info
    import numpy as np
    info = machine_info()
    trees = {"this": ROOT, "baseline": args.baseline.resolve()}
    commits = {k: subprocess.run(["git", "-C", str(v), "rev-parse", "HEAD"], capture_output=True,
                                 text=True).stdout.strip() for k, v in trees.items()}
    with tempfile.TemporaryDirectory() as tmp:
        netdir = Path(tmp)
        workloads = set(args.workloads.split(","))
        made = make_nets(netdir) if "B" in workloads else []
        metrics = (["es_fraction_cpu", "es_engine_cpu_ms", "es_fraction_wall"] if "es" in workloads else []) + \
            [f"{Path(m).stem}_cpu_ms" for m in made] + [f"{Path(m).stem}_wall_ms" for m in made]
        rows = {k: {m: [] for m in metrics} for k in trees}
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(trees)[::-1]
            for name in order:
                r = json.loads(run_child([str(Path(__file__).resolve()), "--worker", str(trees[name]), "--netdir",
                                          str(netdir), "--reps", str(args.reps), "--workloads",
                                          args.workloads]).strip().splitlines()[-1])
                row = rows[name]
                if "es" in r:
                    e = r["es"]
                    row["es_fraction_cpu"].append(e["bare_cpu_s"] / e["engine_cpu_s"])
                    row["es_engine_cpu_ms"].append(e["engine_cpu_s"] * 1e3)
                    row["es_fraction_wall"].append(e["bare_wall_s"] / e["engine_wall_s"])
                for m in made:
                    row[f"{Path(m).stem}_cpu_ms"].append(r[Path(m).stem]["cpu_s"] * 1e3)
                    row[f"{Path(m).stem}_wall_ms"].append(r[Path(m).stem]["wall_s"] * 1e3)
                print(f"round {rnd + 1}/{args.rounds} {name:8s}: " +
                      ", ".join(f"{k} {v[-1]:.3g}" for k, v in row.items()), flush=True)
    summary = {}
    print(f"\n{'metric':24s} {'this (median)':>14s} {'baseline (median)':>18s} {'this/base':>10s} "
          f"{'noise this':>11s} {'noise base':>11s}")
    for metric in rows["this"]:
        a, b = np.array(rows["this"][metric]), np.array(rows["baseline"][metric])
        ma, mb = float(np.median(a)), float(np.median(b))
        na, nb = float((a.max() - a.min()) / ma), float((b.max() - b.min()) / mb)
        summary[metric] = {"this_median": ma, "baseline_median": mb, "ratio": ma / mb, "noise_this": na,
                           "noise_baseline": nb, "this": a.tolist(), "baseline": b.tolist()}
        print(f"{metric:24s} {ma:14.4g} {mb:18.4g} {ma / mb:10.3f} {na * 100:10.1f}% {nb * 100:10.1f}%")
    info["loadavg_end"] = list(os.getloadavg())
    result = {"machine": info, "trees": {k: str(v) for k, v in trees.items()}, "commits": commits,
              "rounds": args.rounds, "reps": args.reps, "rows": rows, "summary": summary,
              "units": {"es_fraction_*": "bare scatter time / engine run time (CPU or wall)",
                        "es_engine_cpu_ms": "engine run() CPU ms, 1e6 events",
                        "B_*_ms": "ms per sample, run() only (CPU: reset subtracted), best of reps"}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
