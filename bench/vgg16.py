#!/usr/bin/env python
"""VGG16 topology through the real CLI: ONNX file -> ``eventsnn convert`` -> ``eventsnn run``.

For each configuration (input 32x32x3 with dense 512-512-10, or 224x224x3 with
the ImageNet head 4096-4096-1000; max pooling as in Keras' VGG16, or average
pooling as in Sengupta et al. 2019) the script

1. builds the VGG16 topology with random He-normal weights
   (``eventsnn.architectures.vgg16_ann``) and labels its images with the ANN's own
   argmax (so "accuracy" below is SNN-vs-ANN agreement, not a real accuracy);
2. writes it as an ONNX file (NCHW, as PyTorch exports) under ``--workdir``
   (default /tmp/eventsnn_vgg16: the 224x224 file is ~550 MB, never in the repo);
3. runs ``eventsnn convert MODEL.onnx -o converted.h5 --calibration calib.npz``
   (random-uniform images in [0, 1)) and times it, with the child's peak RSS;
4. runs ``eventsnn run --net converted.h5 --data images.npz --samples N
   --timesteps T --json --no-progress --output results.h5`` and reads its JSON
   summary (time per sample, spikes, synaptic ops, per-layer rates) and the
   results file (per-sample times, ANN MACs per layer);
5. reruns sample 0 in-process with ``Simulator`` after warming the kernels, for
   the number of events processed and a time free of the kernel-cache load
   (the CLI's first sample includes loading the compiled engine from disk).

224x224 starts at T = 20 and goes to the next of ``--t224`` (20, 50, 100) only
while the previous CLI run took less than ``--grow-below-s`` (180 s).

Usage::

    nice -n 10 python bench/vgg16.py                    # everything (~20 min on 2 busy cores)
    nice -n 10 python bench/vgg16.py --only 32          # 32x32 only (~2 min)
    nice -n 10 python bench/vgg16.py --only 224 --pool max
    nice -n 10 python bench/vgg16.py --blas-probe       # conversion time: OpenBLAS threads vs 1 thread
    python bench/vgg16.py --report                      # markdown tables from the JSON

Results are merged into ``bench/results/vgg16.json`` (one entry per
configuration and T), so parts can be run separately.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from annbuild import to_onnx  # noqa: E402
from eventsnn.architectures import vgg16_ann as vgg16  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402
from eventsnn.ann import forward  # noqa: E402

CONFIGS = {
    "32": dict(shape=(32, 32, 3), dense=512, classes=10),
    "224": dict(shape=(224, 224, 3), dense=4096, classes=1000),
}
POOLS = {"max": "maxpool2d", "avg": "avgpool2d"}


def cli() -> list:
    exe = Path(sys.executable).parent / "eventsnn"
    found = str(exe) if exe.exists() else shutil.which("eventsnn")
    if not found:
        raise SystemExit("the eventsnn command is not on PATH (pip install -e .)")
    return [found]


def _vm_hwm_gib(pid: int):
    """Peak resident set of a running process (VmHWM), GiB; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def run_cmd(args: list, log) -> dict:
    """Run a command; return wall time, its peak RSS (GiB), exit code, stdout, stderr.

    The peak is the child's VmHWM, polled every 0.1 s until it exits (a peak in the last
    0.1 s could be missed). Not ru_maxrss: a child forked from this large process inherits
    the parent's high-water mark at exec, so ru_maxrss would report this script's size.
    """
    import threading
    import resource
    log(f"  $ {' '.join(str(a) for a in args)}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_chunks, err_chunks = [], []

    def pump(stream, sink):
        for line in stream:
            sink.append(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_chunks)),
               threading.Thread(target=pump, args=(proc.stderr, err_chunks))]
    for t in threads:
        t.start()
    peak = 0.0
    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            hwm = _vm_hwm_gib(proc.pid)
            if hwm is not None:
                peak = max(peak, hwm)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res = {"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": peak, "rc": proc.returncode,
           "stdout": "".join(out_chunks), "stderr": "".join(err_chunks)}
    log(f"    rc {res['rc']}, {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {res['peak_rss_gib']:.2f} GiB")
    if res["rc"] != 0:
        log(res["stderr"][-4000:])
    return res


def warm_kernels(log):
    """Compile / load the engine's kernels once in this process (a tiny net), so timings exclude it."""
    from eventsnn.engine.simulator import Simulator
    from eventsnn.network import Layer, Network, Neuron
    rng = np.random.default_rng(0)
    net = Network(input_shape=(6, 6, 2), layers=[
        Layer("c", "conv2d", ("input",), weight=rng.normal(0, 0.5, (3, 3, 2, 4)).astype(np.float32),
              bias=np.full(4, 0.1, np.float32), stride=(1, 1), padding=(1, 1), neuron=Neuron("if", 1.0, "subtract", 1.0)),
        Layer("m", "maxpool2d", ("c",), kernel=(2, 2), stride=(2, 2)),
        Layer("a", "avgpool2d", ("m",), kernel=(3, 3), stride=(3, 3), neuron=Neuron("if", 1.0, "subtract", 1.0)),
        Layer("f", "flatten", ("a",)),
        Layer("d", "dense", ("f",), weight=rng.normal(0, 1, (4, 3)).astype(np.float32), bias=None,
              neuron=Neuron("if", 1.0, "subtract", 1.0)),
    ])
    start = time.perf_counter()
    sim = Simulator(net, timesteps=5)
    sim.reset(rng.random((6, 6, 2)).astype(np.float32))
    sim.run()
    log(f"  engine kernels loaded/compiled in-process in {time.perf_counter() - start:.1f} s")


def in_process_run(net_path, x0, timesteps, log) -> dict:
    """Sample 0 again, in-process, warm kernels: events processed and a clean time."""
    from eventsnn.engine.simulator import Simulator
    from eventsnn.io import load_network
    t0 = time.perf_counter()
    net = load_network(net_path)
    t1 = time.perf_counter()
    sim = Simulator(net, timesteps=timesteps)
    t2 = time.perf_counter()
    sim.reset(x0)
    t3, c3 = time.perf_counter(), time.process_time()
    sim.run()
    t4, c4 = time.perf_counter(), time.process_time()
    tot = sim.per_layer()
    res = {"load_network_s": t1 - t0, "plan_and_state_s": t2 - t1, "reset_s": t3 - t2, "run_s": t4 - t3,
           "run_cpu_s": c4 - c3,
           "events_processed": int(sim.events_processed), "syn_ops": int(tot["syn_ops"].sum()),
           "spikes": int(tot["spikes"][1:].sum()), "neuron_updates": int(tot["updates"].sum()),
           "analog_macs": int(tot["analog_macs"].sum()), "neurons": int(sim.plan.n_neurons),
           "prediction": int(sim.prediction())}
    res["syn_ops_per_s"] = res["syn_ops"] / res["run_s"] if res["run_s"] > 0 else None
    res["events_per_s"] = res["events_processed"] / res["run_s"] if res["run_s"] > 0 else None
    res["syn_ops_per_cpu_s"] = res["syn_ops"] / res["run_cpu_s"] if res["run_cpu_s"] > 0 else None
    log(f"  in-process sample 0: reset {res['reset_s']:.2f} s, run {res['run_s']:.2f} s "
        f"({res['run_cpu_s']:.2f} s CPU), "
        f"{res['events_processed']:,} events, {res['syn_ops']:,} syn ops")
    res["vs_rate_model"] = rate_check(net, sim, x0, timesteps)
    out = res["vs_rate_model"][-1]
    log(f"  output vs rate model: corr {out['corr']:.3f}, SNN top-1 {res['prediction']}, rate-model top-1 "
        f"{out['model_top1']}, its SNN count {out['snn_count_of_model_top1']} (max {out['snn_max_count']})")
    del sim, net
    gc.collect()
    return res


def rate_check(net, sim, x0, timesteps) -> list:
    """Per spiking layer: the SNN's spike rates against the ReLU network it approximates
    (:func:`eventsnn.convert.rate_model`, activations clipped to [0, 1] = the reachable rates)."""
    from eventsnn.convert import rate_model
    acts = rate_model(net, x0[None])
    rows = []
    for p, pop in enumerate(sim.plan.pops[1:], start=1):
        model = np.clip(acts[pop.name].reshape(-1), 0, 1)
        snn = sim.spike_counts(pop.name).reshape(-1) / timesteps
        ok = model.std() > 0 and snn.std() > 0
        rows.append({"layer": pop.name, "snn_mean_rate": float(snn.mean()), "model_mean_rate": float(model.mean()),
                     "model_saturated_frac": float(np.mean(acts[pop.name] >= 1)),
                     "mean_abs_err": float(np.mean(np.abs(snn - model))),
                     "corr": float(np.corrcoef(snn, model)[0, 1]) if ok else None})
    counts = sim.spike_counts(sim.plan.pops[-1].name).reshape(-1)
    top = int(np.argmax(acts[sim.plan.pops[-1].name].reshape(-1)))
    rows[-1].update({"model_top1": top, "snn_count_of_model_top1": int(counts[top]),
                     "snn_max_count": int(counts.max()), "snn_classes_at_max": int(np.sum(counts == counts.max()))})
    return rows


def bench_config(size: str, pool: str, args, work: Path, log) -> list:
    cfg = CONFIGS[size]
    h, w, c = cfg["shape"]
    tag = f"vgg16_{h}x{w}_{pool}pool"
    n_cal = args.calib32 if size == "32" else args.calib224
    n_test = args.samples32 if size == "32" else args.samples224
    steps = [args.t32] if size == "32" else args.t224
    log(f"\n== {tag}: calibration {n_cal} images, {n_test} test sample(s), T in {steps}")
    entry = {"config": tag, "input_shape": [h, w, c], "dense": [cfg["dense"], cfg["dense"], cfg["classes"]],
             "pool": POOLS[pool], "weights": "random He-normal (eventsnn.architectures.vgg16_ann, seed 0; the same "
                                               "weights as the former tests/annbuild.py::vgg16), biases N(0, 0.05)"}

    t0 = time.perf_counter()
    graph = vgg16(cfg["shape"], classes=cfg["classes"], dense=cfg["dense"], pool=POOLS[pool], seed=0)
    entry["build_graph_s"] = time.perf_counter() - t0
    entry["params"] = int(sum(l.weight.size + (0 if l.bias is None else l.bias.size)
                              for l in graph.layers if l.weight is not None))
    entry["conv_layers"] = sum(l.op == "conv2d" for l in graph.layers)
    entry["dense_layers"] = sum(l.op == "dense" for l in graph.layers)

    rng = np.random.default_rng(1)
    x_cal = rng.random((n_cal, h, w, c), dtype=np.float32)
    x_test = rng.random((n_test, h, w, c), dtype=np.float32)
    t0 = time.perf_counter()
    logits = forward(graph, np.concatenate([x_cal, x_test]), batch=1)
    entry["ann_numpy_forward_s_per_image"] = (time.perf_counter() - t0) / (n_cal + n_test)
    top2 = np.sort(logits, axis=1)[:, -2:]
    entry["ann_logit_margin_top1_top2"] = [float(v) for v in top2[:, 1] - top2[:, 0]]
    entry["ann_logit_std"] = [float(v) for v in logits.std(axis=1)]
    y = np.argmax(logits, axis=1)
    calib, images = work / f"{tag}_calib.npz", work / f"{tag}_images.npz"
    np.savez(calib, x=x_cal, y=y[:n_cal])
    np.savez(images, x=x_test, y=y[n_cal:])

    onnx_path = work / f"{tag}.onnx"
    t0 = time.perf_counter()
    to_onnx(graph, onnx_path)
    entry["write_onnx_s"] = time.perf_counter() - t0
    entry["onnx_mb"] = onnx_path.stat().st_size / 1e6
    log(f"  {entry['params']:,} parameters; ONNX {entry['onnx_mb']:.0f} MB written in {entry['write_onnx_s']:.1f} s; "
        f"ANN forward (numpy) {entry['ann_numpy_forward_s_per_image']:.2f} s/image")
    del graph, logits
    gc.collect()

    converted = work / f"{tag}_converted.h5"
    if size == "224" and n_cal > 1:  # memory probe: the same conversion with one calibration image
        probe = work / f"{tag}_calib1.npz"
        np.savez(probe, x=x_cal[:1], y=y[:1])
        res = run_cmd(cli() + ["convert", onnx_path, "-o", converted, "--calibration", probe, "--json",
                               "--no-progress"], log)
        entry["convert_1_image"] = {"wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "peak_rss_gib": res["peak_rss_gib"],
                                    "rc": res["rc"]}
    res = run_cmd(cli() + ["convert", onnx_path, "-o", converted, "--calibration", calib, "--json",
                           "--no-progress"], log)
    entry["convert"] = {"command": f"eventsnn convert {onnx_path.name} -o {converted.name} "
                                   f"--calibration {calib.name} --json --no-progress",
                        "calibration_images": n_cal, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"],
                        "peak_rss_gib": res["peak_rss_gib"],
                        "rc": res["rc"]}
    if res["rc"] != 0:
        entry["convert"]["stderr_tail"] = res["stderr"][-3000:]
        return [entry]
    prov = json.loads(res["stdout"])
    entry["convert"].update({k: prov.get(k) for k in ("method", "percentile", "ann_accuracy",
                                                      "normalized_ann_accuracy", "scales")})
    entry["converted_mb"] = converted.stat().st_size / 1e6
    if "convert_1_image" in entry and entry["convert_1_image"]["rc"] == 0:
        entry["convert_peak_rss_gib_per_extra_calibration_image"] = (
            (res["peak_rss_gib"] - entry["convert_1_image"]["peak_rss_gib"]) / (n_cal - 1))

    out = []
    for k, steps_t in enumerate(steps):
        run = dict(entry)
        run["timesteps"] = steps_t
        results_h5 = work / f"{tag}_T{steps_t}_results.h5"
        res = run_cmd(cli() + ["run", "--net", converted, "--data", images, "--samples", n_test,
                               "--timesteps", steps_t, "--json", "--no-progress", "--output", results_h5], log)
        r = {"command": f"eventsnn run --net {converted.name} --data {images.name} --samples {n_test} "
                        f"--timesteps {steps_t} --json --no-progress --output {results_h5.name}",
             "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "peak_rss_gib": res["peak_rss_gib"], "rc": res["rc"]}
        run["run"] = r
        if res["rc"] != 0:
            r["stderr_tail"] = res["stderr"][-3000:]
            out.append(run)
            break
        summary = json.loads(res["stdout"])
        import h5py
        with h5py.File(results_h5, "r") as f:
            seconds = f["seconds"][()]
            ann_macs = f["ann_macs"][()]
            per_sample_syn = f["syn_ops"][()].sum(axis=1)
            analog = f["analog_macs"][()].sum(axis=1)
        r.update({
            "samples": summary["samples"],
            "agreement_with_ann_argmax": summary["accuracy"],
            "seconds_per_sample": summary["seconds_per_sample"],
            "seconds_per_sample_each": [float(s) for s in seconds],
            "spikes_per_sample": summary["spikes_per_sample"],
            "syn_ops_per_sample": summary["syn_ops_per_sample"],
            "syn_ops_per_s": summary["syn_ops_per_sample"] / summary["seconds_per_sample"],
            "analog_macs_per_sample": float(analog.mean()),
            "ann_macs_per_pass": int(ann_macs.sum()),
            "syn_ops_over_ann_macs": summary["syn_ops_per_sample"] / float(ann_macs.sum()),
            "syn_ops_each_sample": [int(v) for v in per_sample_syn],
            "layers": [dict(row, ann_macs=int(m)) for row, m in zip(summary["layers"], ann_macs)],
        })
        log(f"  T={steps_t}: {r['seconds_per_sample']:.2f} s/sample (CLI), {r['spikes_per_sample']:,.0f} spikes, "
            f"{r['syn_ops_per_sample']:,.0f} syn ops/sample, {r['syn_ops_per_s'] / 1e9:.2f} G syn ops/s, "
            f"agreement {r['agreement_with_ann_argmax']}")
        if not args.no_in_process:
            x0 = np.load(images)["x"][0]
            ip = in_process_run(converted, x0, steps_t, log)
            ip["syn_ops_match_cli_sample0"] = ip["syn_ops"] == r["syn_ops_each_sample"][0]
            run["in_process_sample0"] = ip
        out.append(run)
        if k + 1 < len(steps) and res["wall_s"] >= args.grow_below_s:
            log(f"  run took {res['wall_s']:.0f} s >= {args.grow_below_s} s: not trying T={steps[k + 1]}")
            break
    for p in (onnx_path, converted) if not args.keep else ():
        p.unlink(missing_ok=True)
    return out


def blas_probe(work: Path, log) -> dict:
    """224x224 max-pool conversion (3 calibration images) with OpenBLAS' default threads, then with
    OPENBLAS_NUM_THREADS=1, then default again: how much of the conversion time is BLAS threads
    spin-waiting on a busy machine rather than work."""
    graph = vgg16((224, 224, 3), classes=1000, dense=4096, pool="maxpool2d", seed=0)
    x = np.random.default_rng(1).random((3, 224, 224, 3), dtype=np.float32)
    calib, model, conv = work / "probe_calib.npz", work / "probe.onnx", work / "probe.h5"
    np.savez(calib, x=x)
    to_onnx(graph, model)
    del graph
    gc.collect()
    out = {}
    for label, env in (("openblas_default", None), ("openblas_1_thread", "1"), ("openblas_default_again", None)):
        saved = os.environ.get("OPENBLAS_NUM_THREADS")
        if env is not None:
            os.environ["OPENBLAS_NUM_THREADS"] = env
        try:
            r = run_cmd(cli() + ["convert", model, "-o", conv, "--calibration", calib, "--json", "--no-progress"], log)
        finally:
            if saved is None:
                os.environ.pop("OPENBLAS_NUM_THREADS", None)
            else:
                os.environ["OPENBLAS_NUM_THREADS"] = saved
        out[label] = {k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_gib", "rc")}
        out[label]["loadavg"] = list(os.getloadavg())
    for p in (model, conv, calib):
        p.unlink(missing_ok=True)
    return out


def report(data: dict) -> str:
    """Markdown tables of the runs in ``data`` (``--report``)."""
    runs = data.get("runs", {})
    lines = ["| configuration | T | convert wall s / CPU s (peak GiB) | s/sample (CLI) | run wall s / CPU s "
             "(in-process) | spikes/sample | syn ops/sample | syn ops / ANN MACs | G syn ops per CPU s | events | "
             "agree ANN | out corr |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in runs.items():
        if "run" not in r or r["run"].get("rc") != 0:
            lines.append(f"| {key} | failed: see JSON | | | | | | | | | | |")
            continue
        run, ip, cv = r["run"], r.get("in_process_sample0", {}), r["convert"]
        corr = ip.get("vs_rate_model", [{}])[-1].get("corr")
        lines.append(
            f"| {r['config']} | {r['timesteps']} | {cv['wall_s']:.0f} / {cv.get('cpu_s', float('nan')):.0f} "
            f"({cv['peak_rss_gib']:.2f}) | {run['seconds_per_sample']:.2f} | "
            f"{ip.get('run_s', float('nan')):.2f} / {ip.get('run_cpu_s', float('nan')):.2f} | "
            f"{run['spikes_per_sample'] / 1e6:.1f} M | {run['syn_ops_per_sample'] / 1e9:.1f} G | "
            f"{run['syn_ops_over_ann_macs']:.1f} | {(ip.get('syn_ops_per_cpu_s') or float('nan')) / 1e9:.2f} | "
            f"{ip.get('events_processed', 0) / 1e6:.1f} M | {run['agreement_with_ann_argmax']:.2f} | "
            f"{'-' if corr is None else f'{corr:.3f}'} |")
    lines += ["", "Per-layer spike rate (spikes per neuron per step), SNN vs the rate model (ReLU net clipped "
              "to [0, 1]), sample 0:", ""]
    for key, r in runs.items():
        rows = r.get("in_process_sample0", {}).get("vs_rate_model")
        if not rows:
            continue
        rates = ", ".join(f"{row['layer']} {row['snn_mean_rate']:.3f}/{row['model_mean_rate']:.3f}" for row in rows)
        lines.append(f"* {key}: {rates}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["32", "224"], action="append", help="input size(s) to run")
    ap.add_argument("--pool", choices=["max", "avg"], action="append", help="pooling variant(s)")
    ap.add_argument("--workdir", default="/tmp/eventsnn_vgg16")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vgg16.json"))
    ap.add_argument("--calib32", type=int, default=8)
    ap.add_argument("--samples32", type=int, default=4)
    ap.add_argument("--t32", type=int, default=100)
    ap.add_argument("--calib224", type=int, default=3)
    ap.add_argument("--samples224", type=int, default=1)
    ap.add_argument("--t224", type=lambda s: [int(v) for v in s.split(",")], default=[20, 50, 100])
    ap.add_argument("--grow-below-s", type=float, default=180.0,
                    help="224x224: try the next T only if the CLI run took less than this")
    ap.add_argument("--no-in-process", action="store_true", help="skip the in-process rerun of sample 0")
    ap.add_argument("--keep", action="store_true", help="keep the ONNX and converted files in --workdir")
    ap.add_argument("--report", action="store_true", help="only print markdown tables of --out and exit")
    ap.add_argument("--blas-probe", action="store_true",
                    help="only time the 224x224 conversion with OpenBLAS default threads vs 1 thread")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.out).read_text())))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out)

    def log(msg):
        print(msg, flush=True)

    data = {}
    if out_path.exists():
        try:
            data = json.loads(out_path.read_text())
        except ValueError:
            data = {}
    data.setdefault("runs", {})
    info = machine_info()
    log(f"{info['date']}  {info['cpu_model']}, {info['logical_cpus']} CPUs, {info['mem_total_gib']} GiB; "
        f"load {info['loadavg_start']}")
    if args.blas_probe:
        data["convert_blas_probe"] = dict(blas_probe(work, log), machine=dict(info, loadavg_end=list(os.getloadavg())))
        out_path.write_text(json.dumps(data, indent=1, default=float) + "\n")
        log(json.dumps(data["convert_blas_probe"], indent=1))
        return
    if not args.no_in_process:
        warm_kernels(log)
    for size in args.only or ["32", "224"]:
        for pool in args.pool or ["max", "avg"]:
            for run in bench_config(size, pool, args, work, log):
                key = run["config"] + (f"_T{run['timesteps']}" if "timesteps" in run else "_convert")
                run["machine"] = dict(info, loadavg_end=list(os.getloadavg()))
                data["runs"][key] = run
                out_path.parent.mkdir(parents=True, exist_ok=True)
                out_path.write_text(json.dumps(data, indent=1, default=float) + "\n")
    log(f"\nwrote {out_path}")


if __name__ == "__main__":
    main()
