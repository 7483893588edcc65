"""A/B speed of this checkout's engine against another checkout's, in one run.

    python bench/engine_ab.py --baseline /path/to/other/checkout [--rounds 5]

(make the other checkout with ``git worktree add /tmp/base COMMIT``). Two
workloads, each run in a fresh subprocess that imports the engine of one
checkout, the two checkouts alternating round by round (the order flips every
round, so drift in machine load hits both alike):

1. ``engine_speed.py --only 1`` of each checkout: the engine's full event loop
   on one never-spiking 3x3 conv layer (1e6 input events), as a fraction of
   the bare scatter measured in the same process (``fraction_of_bare_cl``),
   and its syn ops per second;
2. net B of ``peers_speed.py`` (VGG-style, Fashion-MNIST 28x28, T = 100) at
   the 1 % and 5 % per-layer rates of the published run (the gains recorded in
   ``results/peers_speed_B_final.json``), layer order, batch 1: mean time per
   sample of ``run()`` over 8 images, best of 5 repetitions.

The run-to-run noise of each metric is the spread (max - min) / median of its
rounds for the same checkout; the report compares the medians. Results go to
``results/engine_ab.json`` with machine info. No timing is asserted anywhere.
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


def worker(root: Path, netdir: Path, reps: int) -> dict:
    """Time net B (both rates) with the engine of ``root``; returns seconds per sample."""
    sys.path.insert(0, str(root))
    import numpy as np
    from eventsnn.engine.simulator import Simulator
    from eventsnn.io import load_network
    assert Path(sys.modules["eventsnn"].__file__).resolve().is_relative_to(root.resolve())
    xs = np.load(netdir / "inputs.npz")["x"]
    out = {}
    for path in sorted(netdir.glob("B_*.h5")):
        sim = Simulator(load_network(path), timesteps=100, encoding="direct", order="layer")
        sim.reset(xs[0])
        sim.run()  # compile or load the kernels, size the queue
        per_rep = []
        ops = 0
        for _ in range(reps):
            gc.collect()
            total = 0.0
            for x in xs:
                sim.reset(x)
                t0 = time.perf_counter()
                sim.run()
                total += time.perf_counter() - t0
                ops = int(sim.totals()["syn_ops"].sum())
            per_rep.append(total / len(xs))
        out[path.stem] = {"best_s": min(per_rep), "median_s": float(np.median(per_rep)), "all_s": per_rep,
                          "syn_ops_last_sample": ops}
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
    ap.add_argument("--out", type=Path, default=HERE / "results" / "engine_ab.json")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--netdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.netdir, args.reps)))
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
        made = make_nets(netdir)
        rows = {k: {"fraction_of_bare": [], "engine_gops": [], **{m: [] for m in made}} for k in trees}
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(trees)[::-1]
            for name in order:
                tree = trees[name]
                es_out = netdir / f"es_{name}_{rnd}.json"
                run_child([str(tree / "bench" / "engine_speed.py"), "--only", "1", "--reps", "3",
                           "--out", str(es_out)])
                es = json.loads(es_out.read_text())["scatter_vs_engine"]
                eng = next(r for r in es["rows"] if r["name"].startswith("engine Simulator.run() (full"))
                rows[name]["fraction_of_bare"].append(eng["fraction_of_bare_cl"])
                rows[name]["engine_gops"].append(eng["ops_per_s"] / 1e9)
                b = json.loads(run_child([str(Path(__file__).resolve()), "--worker", str(tree), "--netdir",
                                          str(netdir), "--reps", str(args.reps)]).strip().splitlines()[-1])
                for m in made:
                    rows[name][m].append(b[Path(m).stem]["best_s"] * 1e3)
                print(f"round {rnd + 1}/{args.rounds} {name:8s}: engine {eng['fraction_of_bare_cl'] * 100:.1f} % "
                      f"of bare, " + ", ".join(f"{Path(m).stem} {rows[name][m][-1]:.1f} ms" for m in made),
                      flush=True)
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
              "units": {"fraction_of_bare": "engine / bare scatter", "engine_gops": "1e9 syn ops/s",
                        **{m: "ms per sample (run only, best of reps)" for m in made}}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
