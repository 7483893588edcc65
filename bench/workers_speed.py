#!/usr/bin/env python
"""Samples per second with 1 and 2 workers, and what one shard costs: the numbers behind docs/SCALING.md.

Measures, on this machine (wall clock and CPU time, with the load average
before and after each measurement, since other jobs may share the cores):

1. **GIL probe**: a pure-Python thread counts while the engine's kernel runs
   one long sample in another thread; if the kernel released the GIL the
   counter keeps going (its rate during the kernel over its rate alone).
2. **Throughput** of ``run_sharded`` on the default network (T = 100) and on a
   converted random VGG16 (32x32x3, average pools, ``tests/annbuild.py``,
   T = 100): 1 thread, 2 threads, 2 forked processes (a ``multiprocessing``
   pool over the same shards, for the mechanism choice) and a 2-process Dask
   LocalCluster (its start-up timed apart). Best of ``--repeats``.
3. **Per-shard overhead**: the same 64 samples in shards of 1 and of 64
   samples (threads, and Dask): (t_1 - t_64) / (64 - 1) per shard.
4. **Bytes per shard** (as Dask serialises them): the network once, one
   sample's input, one shard's result for S samples at T = 200 (VGG16).
5. **Dask worker start-up**: LocalCluster start, and the first shard's extra
   time (loading the compiled kernels from numba's cache) over a later one.

Every merged result is checked against the 1-thread result (all counts and
outputs equal) before its time is kept.

Usage::

    nice -n 10 python bench/workers_speed.py              # ~5 min on 2 idle cores
    python bench/workers_speed.py --quick                 # smoke run, ~1 min

Writes ``bench/results/workers_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from machine import machine_info  # noqa: E402

from eventsnn.convert import convert  # noqa: E402
from eventsnn.data import path as shipped  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.parallel import run_sharded  # noqa: E402
from eventsnn.parallel.shards import plan_shards  # noqa: E402
from eventsnn.results import RunResult, _run_rows, reusable_simulator, run_dataset  # noqa: E402

FIELDS = ("predictions", "outputs", "spikes", "syn_ops", "updates", "spikes_per_step", "syn_ops_per_step",
          "updates_per_step", "indices")


def cpu_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def check_same(a: RunResult, b: RunResult, what: str) -> None:
    for key in FIELDS:
        if not np.array_equal(getattr(a, key), getattr(b, key)):
            raise SystemExit(f"{what}: field {key} differs from the 1-thread run")


def gil_probe(net, x) -> dict:
    sim = Simulator(net, timesteps=3000, order="layer")
    sim.reset(x[0])
    sim.run()
    count, go = [0], [True]

    def spin():
        while go[0]:
            count[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    time.sleep(0.3)
    c0, t0 = count[0], time.perf_counter()
    time.sleep(1.0)
    alone = (count[0] - c0) / (time.perf_counter() - t0)
    sim.reset(x[1])
    c0, t0 = count[0], time.perf_counter()
    sim.run()
    kernel_s = time.perf_counter() - t0
    during = (count[0] - c0) / kernel_s
    go[0] = False
    th.join()
    return {"kernel_s": kernel_s, "python_thread_rate_alone": alone, "python_thread_rate_during_kernel": during,
            "ratio": during / alone, "gil_released": during > 0.2 * alone,
            "loadavg": list(os.getloadavg())}


# -- forked processes over the same shards (for the mechanism comparison only) ---------------
_NET = _X = _Y = _KW = _SIM = None


def _init(net, x, y, kw):
    global _NET, _X, _Y, _KW, _SIM
    _NET, _X, _Y, _KW, _SIM = net, x, y, kw, None


def _proc_shard(ab):
    """One shard in a forked process, reusing the process's Simulator (as threads and Dask workers do)."""
    global _SIM
    if _SIM is None:
        _SIM = reusable_simulator(_NET, **_KW)
        _SIM.reset(_X[ab[0]])
        _SIM.run(until=0.0)
    rows = np.arange(*ab, dtype=np.int64)
    return _run_rows(_NET, _X, _Y, rows, rows, simulator=_SIM, **_KW)


def run_processes(net, x, y, workers, shard_size, kw):
    ctx = mp.get_context("fork")
    shards = plan_shards(x.shape[0], shard_size)
    with ctx.Pool(workers, initializer=_init, initargs=(net, x, y, kw)) as pool:
        return RunResult.merge(pool.map(_proc_shard, shards, chunksize=1))


def timed(fn, repeats):
    """(best wall s, CPU s of that repeat, load before, load after, last result)."""
    best = None
    for _ in range(repeats):
        load0 = list(os.getloadavg())
        c0, t0 = cpu_s(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu, load0, list(os.getloadavg()), out)
    return best


def throughput(name, net, x, y, kw, repeats, dask_client, log) -> dict:
    n = x.shape[0]
    ref = run_dataset(net, x[:2], None if y is None else y[:2], **kw)  # loads the kernels; not timed
    entry = {"samples": n, "timesteps": kw["timesteps"], "runs": {}}
    size = max(1, -(-n // 8))  # 8 shards: 4 per worker at 2 workers
    base = None
    cases = [("threads_1", lambda: run_sharded(net, x, y, workers=1, shard_size=size, **kw)),
             ("threads_2", lambda: run_sharded(net, x, y, workers=2, shard_size=size, **kw)),
             ("processes_2_fork", lambda: run_processes(net, x, y, 2, size, kw))]
    if dask_client is not None:
        cases.append(("dask_2", lambda: run_sharded(net, x, y, client=dask_client, shard_size=size, **kw)))
    for label, fn in cases:
        wall, cpu, l0, l1, out = timed(fn, repeats)
        if base is None:
            base = out
        check_same(base, out, f"{name} {label}")
        # cpu_s: this process and its joined children (the fork pool); Dask's worker processes are not counted
        entry["runs"][label] = {"wall_s": wall, "cpu_s": cpu, "samples_per_s": n / wall,
                                "cpu_s_per_sample": cpu / n, "loadavg_before": l0, "loadavg_after": l1}
        log(f"  {name:12s} {label:17s} {n / wall:8.2f} samples/s  wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
            f"load {l0[0]:.2f} -> {l1[0]:.2f}")
    one = entry["runs"]["threads_1"]["samples_per_s"]
    for label, r in entry["runs"].items():
        r["speedup_vs_threads_1"] = r["samples_per_s"] / one
    del ref
    return entry


def ab_pairs(net, x, y, kw, pairs, log) -> dict:
    """1 and 2 threads alternated ``pairs`` times (paired, so slow drifts of the load cancel)."""
    run_dataset(net, x[:2], None if y is None else y[:2], **kw)
    size = max(1, -(-x.shape[0] // 8))
    rows = []
    for k in range(pairs):
        pair = {}
        for w in ((1, 2) if k % 2 == 0 else (2, 1)):
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            run_sharded(net, x, y, workers=w, shard_size=size, **kw)
            pair[f"threads_{w}_s"] = time.perf_counter() - t0
            pair[f"load_{w}"] = load0
        pair["speedup"] = pair["threads_1_s"] / pair["threads_2_s"]
        rows.append(pair)
        log(f"  pair {k + 1}: 1 thread {pair['threads_1_s']:.2f} s, 2 threads {pair['threads_2_s']:.2f} s -> "
            f"{pair['speedup']:.2f}x (load {pair['load_1']:.1f})")
    sp = [r["speedup"] for r in rows]
    return {"samples": int(x.shape[0]), "timesteps": kw["timesteps"], "pairs": rows,
            "median_speedup": float(np.median(sp)), "best_speedup": float(max(sp))}


def shard_overhead(net, x, y, kw, dask_client, repeats, log) -> dict:
    n = x.shape[0]
    out = {"samples": n, "timesteps": kw["timesteps"]}
    run_dataset(net, x[:2], y[:2], **kw)
    for label, client in (("threads_1", None), ("dask_2", dask_client)):
        if label == "dask_2" and client is None:
            continue
        w = 1 if client is None else None
        t_small = timed(lambda: run_sharded(net, x, y, workers=w, client=client, shard_size=1, **kw), repeats)[0]
        t_big = timed(lambda: run_sharded(net, x, y, workers=w, client=client, shard_size=n, **kw), repeats)[0]
        workers = 1 if client is None else 2
        # per shard, in worker time: the n - 1 extra shards cost (t_small - t_big) * workers
        per = (t_small - t_big) * workers / (n - 1)
        out[label] = {"wall_shards_of_1_s": t_small, "wall_one_shard_s": t_big, "overhead_per_shard_s": per}
        log(f"  shard overhead {label}: {1000 * per:.2f} ms per shard "
            f"({n} shards of 1: {t_small:.2f} s; 1 shard of {n}: {t_big:.2f} s)")
    return out


def build_vgg16(log, calib_images=0):
    """The converted VGG16 (8 calibration images), and with ``calib_images`` the calibration timed
    on 1 and 2 threads (batches of 32: the same networks either way, checked)."""
    from eventsnn.architectures import vgg16_ann

    graph = vgg16_ann((32, 32, 3), classes=10, dense=512, pool="avgpool2d", seed=0)
    rng = np.random.default_rng(1)
    calib = rng.random((8, 32, 32, 3), dtype=np.float32)
    t0 = time.perf_counter()
    net, _ = convert(graph, calib, method="percentile", workers=2)
    log(f"  VGG16 32x32 avgpool converted in {time.perf_counter() - t0:.1f} s (8 random calibration images)")
    timing = {}
    if calib_images:
        many = rng.random((calib_images, 32, 32, 3), dtype=np.float32)
        nets = {}
        for w in (1, 2):
            load0 = list(os.getloadavg())
            c0, t0 = cpu_s(), time.perf_counter()
            nets[w], _ = convert(graph, many, method="percentile", workers=w)
            timing[f"workers_{w}"] = {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_s() - c0,
                                      "loadavg_before": load0, "loadavg_after": list(os.getloadavg())}
            log(f"  calibration of {calib_images} images, {w} thread(s): {timing[f'workers_{w}']['wall_s']:.1f} s "
                f"(load {load0[0]:.2f})")
        for a, b in zip(nets[1].layers, nets[2].layers):
            if a.weight is not None and not np.array_equal(a.weight, b.weight):
                raise SystemExit(f"calibration on 2 threads gave other weights in {a.name}")
        timing["images"] = calib_images
        timing["speedup"] = timing["workers_1"]["wall_s"] / timing["workers_2"]["wall_s"]
    return net, rng, timing


def wire_bytes(obj) -> int:
    """Bytes Dask sends for ``obj`` (distributed.protocol.serialize_bytes); without Dask, the bytes
    of its arrays (a lower bound)."""
    try:
        from distributed.protocol import serialize_bytes
        return len(serialize_bytes(obj))
    except ImportError:
        import dataclasses
        total = 0
        for value in (dataclasses.asdict(obj).values() if dataclasses.is_dataclass(obj) else [obj]):
            total += getattr(value, "nbytes", 0)
        return total


def bytes_per_shard(vgg, x, kw200, log) -> dict:
    net_blob = wire_bytes(vgg)
    res = run_dataset(vgg, x[:2], None, **kw200)
    one_result = wire_bytes(res)
    res1 = run_dataset(vgg, x[:1], None, **kw200)
    per_sample_result = one_result - wire_bytes(res1)
    out = {"network_bytes": net_blob, "input_bytes_per_sample": int(x[0].nbytes),
           "result_bytes_2_samples": one_result, "result_bytes_per_extra_sample": per_sample_result,
           "result_fixed_bytes": one_result - 2 * per_sample_result, "timesteps": kw200["timesteps"],
           "seconds_per_sample_T200": float(np.mean(res.seconds)),
           "loadavg": list(os.getloadavg())}
    log(f"  VGG16: network {net_blob / 1e6:.1f} MB once; per sample {x[0].nbytes} B in, "
        f"{per_sample_result} B out; {out['result_fixed_bytes']} B fixed per shard (T = 200); "
        f"{out['seconds_per_sample_T200']:.2f} s/sample at T = 200")
    return out


def dask_startup(net, x, y, kw, log):
    from eventsnn.parallel.dask_runner import start_client

    t0 = time.perf_counter()
    client = start_client(workers=2)
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_sharded(net, x[:2], y[:2], client=client, shard_size=1, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_sharded(net, x[:2], y[:2], client=client, shard_size=1, **kw)
    later = time.perf_counter() - t0
    log(f"  Dask LocalCluster(2) start {start:.2f} s; first 2 one-sample shards {first:.2f} s, again {later:.2f} s")
    return client, {"cluster_start_s": start, "first_call_s": first, "later_call_s": later,
                    "first_call_extra_s": first - later}


def scaling_model(doc: dict, nodes: int = 100, cores: int = 2, images: int = 50_000, bandwidth: float = 125e6,
                  per_task_scheduler_s: float = 1e-3) -> dict:
    """A COMPUTED ESTIMATE (not a measurement): VGG16 (32x32, T = 200) over ``images`` on ``nodes``
    machines of ``cores`` single-threaded Dask workers, from this machine's measured numbers.

    wall ~= start + network broadcast + rounds * (S * t_sample + overhead) + shards * scheduler cost,
    with S = ceil(images / (4 * workers)) samples per shard (the CLI's default, at most 256),
    rounds = ceil(shards / workers), t_sample the measured seconds per sample at T = 200 on one
    core here, overhead the measured Dask per-shard overhead, bytes as Dask serialises them.
    Assumed, not measured: ``bandwidth`` (1 Gbit/s per node), the scheduler's cost per task
    (1 ms, Dask's documented order of magnitude), cores like this machine's.
    """
    import math

    b = doc["bytes"]
    workers = nodes * cores
    t_sample = b["seconds_per_sample_T200"]
    overhead = doc.get("shard_overhead", {}).get("dask_2", {}).get("overhead_per_shard_s",
                                                                    doc["shard_overhead"]["threads_1"]["overhead_per_shard_s"])
    start = doc.get("dask_startup", {}).get("first_call_extra_s", 0.0) + doc.get("dask_startup", {}).get("cluster_start_s", 0.0)
    size = max(1, min(256, math.ceil(images / (4 * workers))))
    shards = math.ceil(images / size)
    rounds = math.ceil(shards / workers)
    in_bytes = size * b["input_bytes_per_sample"]
    out_bytes = b["result_fixed_bytes"] + size * b["result_bytes_per_extra_sample"]
    net_bytes = b["network_bytes"]
    # every worker process holds its own copy of the network (``cores`` per node); best case the
    # copies spread peer to peer (each node receives its ``cores`` copies at ``bandwidth``), worst
    # case all leave one machine at ``bandwidth``
    broadcast_best = cores * net_bytes / bandwidth
    broadcast_worst = workers * net_bytes / bandwidth
    compute = rounds * (size * t_sample + overhead)
    scheduler = shards * per_task_scheduler_s
    ideal = images * t_sample / workers
    wall = start + broadcast_best + compute + scheduler
    return {"label": "computed estimate, not a measurement",
            "assumed": {"nodes": nodes, "cores_per_node": cores, "images": images,
                        "bandwidth_bytes_per_s_per_node": bandwidth, "scheduler_s_per_task": per_task_scheduler_s},
            "measured_inputs": {"seconds_per_sample_T200": t_sample, "overhead_per_shard_s": overhead,
                                "worker_start_s": start, "network_bytes": net_bytes,
                                "input_bytes_per_sample": b["input_bytes_per_sample"],
                                "result_bytes_per_shard": out_bytes},
            "workers": workers, "shard_size": size, "shards": shards, "rounds": rounds,
            "bytes_in_per_shard": in_bytes, "bytes_out_per_shard": out_bytes,
            "network_bytes_moved": workers * net_bytes, "shard_bytes_moved": shards * (in_bytes + out_bytes),
            "total_bytes_moved": workers * net_bytes + shards * (in_bytes + out_bytes),
            "broadcast_s_best": broadcast_best, "broadcast_s_worst": broadcast_worst,
            "compute_s": compute, "scheduler_s": scheduler, "wall_s": wall,
            "wall_s_worst_broadcast": wall - broadcast_best + broadcast_worst,
            "ideal_s": ideal, "efficiency": ideal / wall}


def report(doc: dict) -> str:
    """Markdown tables (BENCHMARKS.md section 8, docs/SCALING.md) from the JSON."""
    m = doc["machine"]
    out = [f"{m['date']}, git {m['git_commit'][:7]}, {m['cpu_model']}, {m['logical_cpus']} CPUs; "
           f"load average {m['loadavg_start'][0]:.2f} at the start, {m.get('loadavg_end', [float('nan')])[0]:.2f} "
           "at the end", ""]
    g = doc["gil_probe"]
    out += [f"GIL probe: a Python thread counts at {g['ratio']:.2f} of its solo rate while the kernel runs a "
            f"{g['kernel_s']:.1f} s sample in another thread (GIL released: {g['gil_released']}).", ""]
    out += ["| net | samples | T | workers | samples/s | speed-up | wall s | CPU s (this process) | load before → after |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, name in (("default_net", "default net"), ("vgg16_32x32_avgpool", "VGG16 32×32 avg")):
        e = doc.get(key)
        if not e:
            continue
        for label, r in e["runs"].items():
            cpu = "–" if label.startswith("dask") else f"{r['cpu_s']:.2f}"
            out.append(f"| {name} | {e['samples']} | {e['timesteps']} | {label.replace('_', ' ')} | "
                       f"{r['samples_per_s']:.2f} | {r['speedup_vs_threads_1']:.2f}× | {r['wall_s']:.2f} | {cpu} | "
                       f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f} |")
    for key, name in (("ab", "the default net"), ("ab_vgg16", "VGG16 32×32 avg")):
        ab = doc.get(key)
        if not ab:
            continue
        out += ["", f"1 and 2 threads alternated ({ab['samples']} samples of {name}, T = {ab['timesteps']}, "
                f"{ab['machine']['date']}): speed-ups " + ", ".join(f"{r['speedup']:.2f}× (load {r['load_1']:.1f})"
                                                                   for r in ab["pairs"])
                + f"; median {ab['median_speedup']:.2f}×, best {ab['best_speedup']:.2f}×."]
    c = doc.get("calibration") or {}
    if c:
        out += ["", f"Calibration of VGG16 on {c['images']} images: 1 thread {c['workers_1']['wall_s']:.1f} s, "
                f"2 threads {c['workers_2']['wall_s']:.1f} s ({c['speedup']:.2f}×; load "
                f"{c['workers_1']['loadavg_before'][0]:.1f}), identical networks."]
    so = doc["shard_overhead"]
    out += ["", f"Per-shard overhead ({so['samples']} samples of the default net, T = {so['timesteps']}, shards of 1 "
            f"against one shard): " + "; ".join(f"{k.replace('_', ' ')} {1000 * v['overhead_per_shard_s']:.1f} ms"
                                               for k, v in so.items() if isinstance(v, dict)) + "."]
    b = doc["bytes"]
    out += [f"Bytes (as Dask serialises them), converted VGG16 32×32 at T = {b['timesteps']}: network "
            f"{b['network_bytes'] / 1e6:.1f} MB once per worker; per sample {b['input_bytes_per_sample']:,} B "
            f"in and {b['result_bytes_per_extra_sample']:,} B out; {b['result_fixed_bytes']:,} B fixed per shard "
            f"result (per-step counts); {b['seconds_per_sample_T200']:.2f} s per sample at T = 200 on one core "
            f"(load {b['loadavg'][0]:.1f})."]
    if "dask_startup" in doc:
        d = doc["dask_startup"]
        out += [f"Dask LocalCluster(2) start {d['cluster_start_s']:.2f} s; a worker's first shard takes "
                f"{d['first_call_extra_s']:.2f} s more than later ones (importing eventsnn, loading the kernels "
                "from numba's cache)."]
    sm = doc.get("scaling_model")
    if sm:
        a, mi = sm["assumed"], sm["measured_inputs"]
        out += ["", f"**Computed estimate** (not a measurement): {a['images']:,} images, converted VGG16 32×32, "
                f"T = 200, {a['nodes']} machines × {a['cores_per_node']} single-threaded Dask workers = "
                f"{sm['workers']} workers; shards of {sm['shard_size']} samples ({sm['shards']} shards, "
                f"{sm['rounds']} rounds).",
                "",
                "| term | value |", "|---|---|",
                f"| compute: rounds × (S × {mi['seconds_per_sample_T200']:.2f} s + {mi['overhead_per_shard_s'] * 1000:.0f} ms) | "
                f"{sm['compute_s']:.0f} s |",
                f"| worker start + first-shard kernel load (measured here) | {mi['worker_start_s']:.1f} s |",
                f"| network to every worker ({mi['network_bytes'] / 1e6:.0f} MB each; best / worst) | "
                f"{sm['broadcast_s_best']:.1f} s / {sm['broadcast_s_worst']:.0f} s |",
                f"| scheduler ({sm['shards']} tasks × {a['scheduler_s_per_task'] * 1000:.0f} ms, assumed) | "
                f"{sm['scheduler_s']:.1f} s |",
                f"| **wall time** (best / worst broadcast) | **{sm['wall_s']:.0f} s / {sm['wall_s_worst_broadcast']:.0f} s** |",
                f"| ideal (images × t / workers) | {sm['ideal_s']:.0f} s (efficiency {100 * sm['efficiency']:.1f} %) |",
                f"| bytes per shard in / out | {sm['bytes_in_per_shard'] / 1e3:.0f} kB / {sm['bytes_out_per_shard'] / 1e3:.0f} kB |",
                f"| bytes moved in all: network copies + shards | {sm['network_bytes_moved'] / 1e9:.1f} GB + "
                f"{sm['shard_bytes_moved'] / 1e9:.2f} GB |"]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--calib-images", type=int, default=64, help="VGG16 calibration images timed on 1 and 2 threads")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "workers_speed.json"))
    ap.add_argument("--model-only", action="store_true",
                    help="only (re)compute the scaling model from the JSON at --out")
    ap.add_argument("--report", action="store_true", help="print markdown tables from the JSON at --out")
    ap.add_argument("--ab", type=int, default=0, metavar="PAIRS",
                    help="only alternate 1 and 2 threads PAIRS times on --ab-net; add to the JSON at --out")
    ap.add_argument("--ab-net", choices=["default", "vgg16"], default="default")
    ap.add_argument("--ab-samples", type=int, default=None,
                    help="samples per --ab run (default 400 for the default net, 8 for VGG16)")
    args = ap.parse_args(argv)
    log = print
    if args.report:
        with open(args.out) as f:
            print(report(json.load(f)))
        return
    if args.model_only:
        with open(args.out) as f:
            doc = json.load(f)
        doc["scaling_model"] = scaling_model(doc)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        log(json.dumps(doc["scaling_model"], indent=1))
        return
    if args.ab:
        with open(args.out) as f:
            doc = json.load(f)
        key = "ab" if args.ab_net == "default" else "ab_vgg16"
        if args.ab_net == "default":
            net = load_network(shipped("default_net.h5"))
            data = load_dataset(shipped("fashion-mnist-sample.npz"), limit=args.ab_samples or 400)
            x, y = data.x, data.y
        else:
            net, rng, _ = build_vgg16(log)
            x, y = rng.random((args.ab_samples or 8, 32, 32, 3), dtype=np.float32), None
        doc[key] = ab_pairs(net, x, y, dict(timesteps=100), args.ab, log)
        doc[key]["machine"] = machine_info()
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        return
    doc = {"machine": machine_info(), "settings": vars(args)}
    net = load_network(shipped("default_net.h5"))
    n_default = 64 if args.quick else 400
    data = load_dataset(shipped("fashion-mnist-sample.npz"), limit=n_default)
    kw = dict(timesteps=100)
    log("GIL probe")
    doc["gil_probe"] = gil_probe(net, data.x)
    log(f"  python thread during the kernel runs at {doc['gil_probe']['ratio']:.2f} of its solo rate "
        f"-> GIL released: {doc['gil_probe']['gil_released']}")
    client = None
    if not args.no_dask:
        try:
            client, doc["dask_startup"] = dask_startup(net, data.x, data.y, kw, log)
        except Exception as exc:  # no Dask here: the rest still runs
            log(f"  Dask not measured ({exc})")
    log("throughput")
    doc["default_net"] = throughput("default net", net, data.x, data.y, kw, args.repeats, client, log)
    vgg, rng, doc["calibration"] = build_vgg16(log, 0 if args.quick else args.calib_images)
    n_vgg = 4 if args.quick else 8
    xv = rng.random((n_vgg, 32, 32, 3), dtype=np.float32)
    doc["vgg16_32x32_avgpool"] = throughput("VGG16 32x32", vgg, xv, None, dict(timesteps=100 if not args.quick
                                                                                else 20),
                                            1 if args.quick else args.repeats, client, log)
    log("per-shard overhead (default net, 64 samples)")
    doc["shard_overhead"] = shard_overhead(net, data.x[:64], data.y[:64], kw, client, args.repeats, log)
    log("bytes per shard")
    doc["bytes"] = bytes_per_shard(vgg, xv, dict(timesteps=200 if not args.quick else 20), log)
    if client is not None:
        from eventsnn.parallel.dask_runner import close_client
        close_client(client)
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["scaling_model"] = scaling_model(doc)
    log(f"scaling model (computed estimate): {json.dumps(doc['scaling_model'])}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
