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

``--net-b RATE`` profiles the whole of net B instead (``bench/peers_speed.py``'s
VGG16 on 32x32x3 at a recorded spike rate, ``order="layer"`` as ``eventsnn
run``); every flush kernel is attributed too, and the child also dumps the
machine code of the event loop so the report can say which share of its
samples fell on vector instructions: the delivery loop (the per-tap axpy
of C_out weights into the membranes), as against the per-event bookkeeping.

Usage::

    python bench/profile_engine.py                 # 3x3 conv, C_out 64 (part 2)
    python bench/profile_engine.py --kernel 1 --cout 1   # per-event overhead only
    python bench/profile_engine.py --net-b 0.05 --out bench/results/profile_net_b_5pct.json

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


def _function_addresses(fns) -> dict:
    """name -> address of every function in the compiled libraries of ``fns`` (numba dispatchers)."""
    addrs = {}
    for fn in fns:
        for _, cres in fn.overloads.items():
            lib = cres.library
            for n in set(re.findall(r'^define [^@]*@"?([^"( ]+)"?\(', lib.get_llvm_str(), re.M)):
                try:
                    a = lib.get_pointer_to_function(n)
                except Exception:
                    continue
                if a:
                    addrs[n] = a
    return addrs


def child_net_b(args):
    """Net B at ``args.net_b``: compile, write the symbols and the event loop's code, then run."""
    import ctypes
    sys.path.insert(0, str(ROOT / "bench"))
    from peers_speed import SPECS, load_inputs, recorded_net_b

    from eventsnn.engine import cpu
    from eventsnn.engine.simulator import Simulator
    rec = json.loads((ROOT / "bench" / "results" / "peers_speed_B_session5.json").read_text())
    T, spec = rec["args"]["T"], SPECS["B"]
    net = recorded_net_b(rec, args.net_b)
    xs = load_inputs(spec, 4)
    sim = Simulator(net, timesteps=T, encoding="direct", order="layer")
    for x in xs:
        sim.reset(x)
        sim.run()
    addrs = _function_addresses([cpu.advance, cpu._flush_integrate, cpu._flush_flat, cpu._flush_gate,
                                 cpu._flush_input])
    # The event loop's machine code: from its address up to the next compiled function.
    starts = sorted(addrs.values())
    code = {}
    for n, a in addrs.items():
        if re.search(r"cpu\d+advance", n) and not n.startswith(("cfunc", "_ZN7cpython")):
            nxt = [b for b in starts if b > a]
            code[n] = ctypes.string_at(a, min(nxt[0] - a if nxt else 1 << 16, 1 << 18)).hex()
    Path(args.syms).write_text(json.dumps({"addrs": addrs, "code": code}))
    while not os.path.exists(args.syms + ".go"):  # the parent's perf is attaching
        time.sleep(0.05)
    total, n = 0.0, 0
    for _ in range(args.reps):
        for x in xs:
            sim.reset(x)
            t0 = time.perf_counter()
            sim.run()
            total += time.perf_counter() - t0
            n += 1
    print(f"workload: net B at {args.net_b:g}, {n} samples, run() {1000 * total / n:.1f} ms per sample")


def child(args):
    sys.path.insert(0, str(ROOT))
    if args.net_b:
        child_net_b(args)
        return
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
    Path(args.syms).write_text(json.dumps(_function_addresses([cpu.advance])))
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


PACKED = re.compile(r"^v\w+p[sd]\b|%[yz]mm")  # packed float ops, or anything on 256/512-bit registers


def vector_share(code_hex: str, offsets: collections.Counter) -> float:
    """Share of the samples (offsets into one function) that fall on a packed (SIMD) float
    instruction, or right after one (a sample's IP tends to land one instruction late);
    scalar float code (``vmovss``, ``vucomiss``) does not count."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(bytes.fromhex(code_hex))
        f.flush()
        dis = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", f.name],
                             capture_output=True, text=True).stdout
    text = {}
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)", line)
        if m:
            text[int(m.group(1), 16)] = m.group(2)
    order = sorted(text)
    where = {o: i for i, o in enumerate(order)}
    vec = 0
    for off, n in offsets.items():
        i = where.get(off)
        if i is not None and any(PACKED.search(text[order[j]]) for j in range(max(i - 1, 0), i + 1)):
            vec += n
    return vec / max(sum(offsets.values()), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--cout", type=int, default=64)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--freq", type=int, default=2000)
    ap.add_argument("--net-b", type=float, default=0.0, help="profile net B at this recorded spike rate instead")
    ap.add_argument("--out", default="", help="also write the shares as JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--syms", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if not shutil.which("perf"):
        sys.exit("perf not found (install linux-tools / linux-perf)")
    code = {}
    with tempfile.TemporaryDirectory() as tmp:
        syms, data = os.path.join(tmp, "syms.json"), os.path.join(tmp, "perf.data")
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "numba"))
        cmd = [sys.executable, __file__, "--child", "--syms", syms, "--kernel", str(args.kernel),
               "--cout", str(args.cout), "--events", str(args.events), "--reps", str(args.reps),
               "--net-b", str(args.net_b)]
        if args.net_b:
            # Attach once the child has compiled, so the profile holds the run alone; the child
            # waits for the go file, so a short run cannot end before perf is attached.
            child_proc = subprocess.Popen(cmd, env=env)
            while not os.path.exists(syms) and child_proc.poll() is None:
                time.sleep(0.2)
            if child_proc.poll() is not None:
                sys.exit("the profiled run failed before it started")
            perf = subprocess.Popen(["perf", "record", "-q", "-F", str(args.freq), "-o", data,
                                     "-p", str(child_proc.pid)])
            time.sleep(1.0)
            Path(syms + ".go").touch()
            failed = child_proc.wait() != 0
            perf.wait()  # perf stops by itself when the process it follows exits
            if failed:
                sys.exit("the profiled run failed")
        else:
            subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "-o", data, "--"] + cmd, env=env,
                           check=True)
        ips = subprocess.run(["perf", "script", "-i", data, "-F", "ip"], capture_output=True, text=True).stdout
        doc = json.loads(Path(syms).read_text())
        if "addrs" in doc:
            doc, code = doc["addrs"], doc["code"]
        table = sorted((a, n) for n, a in doc.items())
    starts = [a for a, _ in table]
    counts = collections.Counter()
    in_loop = {name: collections.Counter() for name in code}
    other = 0
    for line in ips.split():
        ip = int(line, 16)
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and ip - starts[i] < 1 << 18:
            counts[short(table[i][1])] += 1
            if table[i][1] in in_loop:
                in_loop[table[i][1]][ip - starts[i]] += 1
        else:
            other += 1
    jit = sum(counts.values())
    print(f"\n{jit} samples in compiled engine code ({other} elsewhere: interpreter, numba compile, reset())")
    for name, n in counts.most_common(15):
        print(f"{100 * n / jit:6.1f} %  {name}")
    result = {"workload": f"net B at {args.net_b:g}" if args.net_b else "part 2", "samples_in_engine": jit,
              "samples_elsewhere": other, "shares": {name: n / jit for name, n in counts.items()}}
    for name, offsets in in_loop.items():
        if sum(offsets.values()):
            share = vector_share(code[name], offsets)
            loop_share = sum(offsets.values()) / jit
            result["event_loop_vector_share"] = share
            print(f"\nthe event loop ({short(name)}): {100 * share:.1f} % of its samples on vector instructions "
                  f"(the delivery axpy): {100 * share * loop_share:.1f} % of the engine's samples")
    if args.out:
        sys.path.insert(0, str(ROOT / "bench"))
        from machine import machine_info
        result["machine"] = machine_info()
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
