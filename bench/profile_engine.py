#!/usr/bin/env python
"""Where the engine's time goes: a perf sampling profile of ``Simulator.run``.

Runs the workload of engine_speed.py part 2 (random input events through one
conv layer that never spikes) under ``perf record`` and attributes the samples
that fall into numba-compiled code to the engine's functions (``deliver``,
``_emit``, ``push_event``, ``NRT_incref``/``NRT_decref``, ...). Functions that
LLVM inlined are counted in their caller.

Numba does not register its JIT code with perf, so the child process compiles
the engine into a fresh temporary cache directory (about 15-20 s; cached code
cannot be inspected), writes the address of every function of the compiled
``advance`` library, and runs the workload; the parent maps each sampled
instruction pointer to the function whose start is the closest below it.

Usage::

    python bench/profile_engine.py                 # 3x3 conv, C_out 64 (part 2)
    python bench/profile_engine.py --kernel 1 --cout 1   # per-event overhead only

Needs ``perf`` (linux-tools) with ``kernel.perf_event_paranoid <= 2``.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args):
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from eventsnn.engine import cpu
    from eventsnn.engine.simulator import Simulator
    from eventsnn.network import Layer, Network, Neuron

    H = W = 32
    CI, T = 64, 100
    k, co = args.kernel, args.cout
    rng = np.random.default_rng(1)
    slots = rng.choice(T * H * W * CI, args.events, replace=False)
    times = (slots // (H * W * CI)).astype(np.float64)
    idx = (slots % (H * W * CI)).astype(np.int32)
    weight = (rng.standard_normal((k, k, CI, co)) * 0.01).astype(np.float32)
    net = Network(input_shape=(H, W, CI), encoding="poisson", layers=[
        Layer("conv", "conv2d", weight=weight, padding=(k // 2, k // 2), neuron=Neuron("if", threshold=1e9))])
    sim = Simulator(net, timesteps=T, encoding="poisson")
    x = np.zeros((H, W, CI), np.float32)
    sim.reset(x, input_spikes=(times, idx))
    sim.run()
    (_, cres), = cpu.advance.overloads.items()
    lib = cres.library
    names = set(re.findall(r'^define [^@]*@"?([^"( ]+)"?\(', lib.get_llvm_str(), re.M))
    addrs = {}
    for n in names:
        try:
            a = lib.get_pointer_to_function(n)
        except Exception:
            continue
        if a:
            addrs[n] = a
    Path(args.syms).write_text(json.dumps(addrs))
    total = 0.0
    for _ in range(args.reps):
        sim.reset(x, input_spikes=(times, idx))
        t0 = time.perf_counter()
        sim.run()
        total += time.perf_counter() - t0
    ops = int(sim.per_layer()["syn_ops"].sum())
    print(f"workload: {args.events} events, conv {k}x{k} {CI}->{co}, {ops} syn ops per run; "
          f"run() {total / args.reps:.3f} s ({ops * args.reps / total / 1e9:.3f} Gops/s)")


def short(name: str) -> str:
    m = re.search(r"(connectivity|cpu|queue)\d+(\w+?)B\d", name)
    return f"{m.group(1)}.{m.group(2)}" if m else name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--cout", type=int, default=64)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--freq", type=int, default=2000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--syms", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if not shutil.which("perf"):
        sys.exit("perf not found (install linux-tools / linux-perf)")
    with tempfile.TemporaryDirectory() as tmp:
        syms, data = os.path.join(tmp, "syms.json"), os.path.join(tmp, "perf.data")
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba"))
        cmd = [sys.executable, __file__, "--child", "--syms", syms, "--kernel", str(args.kernel),
               "--cout", str(args.cout), "--events", str(args.events), "--reps", str(args.reps)]
        subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "-o", data, "--"] + cmd, env=env, check=True)
        ips = subprocess.run(["perf", "script", "-i", data, "-F", "ip"], capture_output=True, text=True).stdout
        table = sorted((a, n) for n, a in json.loads(Path(syms).read_text()).items())
    starts = [a for a, _ in table]
    counts = collections.Counter()
    other = 0
    for line in ips.split():
        ip = int(line, 16)
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip - starts[i] < 1 << 18:
            counts[short(table[i][1])] += 1
        else:
            other += 1
    jit = sum(counts.values())
    print(f"\n{jit} samples in compiled engine code ({other} elsewhere: interpreter, numba compile, reset())")
    for name, n in counts.most_common(15):
        print(f"{100 * n / jit:6.1f} %  {name}")


if __name__ == "__main__":
    main()
