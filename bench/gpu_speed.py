#!/usr/bin/env python
"""Issue 15: the CUDA backend on a GPU: correct first, then how fast, against the CPU
engine and the device's own memory bandwidth. Designed to finish in < 10 min on a fresh
H100/H200-class machine (``--budget-s``, default 540 s: later parts are skipped, and
say so, when the budget runs out).

1. **Environment**: imports numba, numba-cuda, numpy, scipy, h5py, click; a missing
   one is installed from wheels in ``.whl/`` (the device machines reach no index; see
   bench/README.md), else the script stops and names it. GPU name, driver,
   versions, git commit go into the JSON.
2. **Bandwidth**: a numba.cuda grid-stride copy of a 2 GiB float32 array (best of
   5, CUDA events), in GB/s counting bytes read and written. A syn op reads one
   float32 weight and adds into one float32 potential atomically (read and write):
   12 bytes when nothing is cached, so ``bandwidth / 12 B`` is printed as the
   uncached traffic bound for comparison (not a measurement).
3. **Check**: random small nets of ``tests/netgen.py`` (conv stride 1/2, padding,
   pools, residual add, dense, IF/LIF, both resets, multi-spike), CUDA against
   CPU: spike counts per neuron, syn ops, updates and potentials must be identical
   (2^-8-grid values). Any difference stops the script before timing.
4. **Timing**: VGG16 (13 conv 3x3 + avg pools + dense; IF, subtractive reset,
   direct input, T = 100) with random He weights scaled per layer to a target
   spike rate (1 % and 5 %, calibrated on the GPU), on 32x32x3 and 224x224x3
   inputs (the shipped Fashion-MNIST sample, padded/upsampled, 3 channels), and
   the shipped converted net ``data/default_net.h5`` on its Fashion-MNIST sample.
   Per configuration and batch size ``B`` (``--batch``, default ``1,4,16,auto``;
   ``auto`` is :func:`eventsnn.engine.cuda_batch.default_batch`, what a data-set
   run uses by default): ``B`` samples run concurrently by
   :func:`eventsnn.engine.cuda_batch.run_samples` (after a warm-up that compiles
   the kernels), timed as a whole: syn ops per sample, wall ms per sample
   (batch time / B), syn ops/s, samples/s, device MiB per sample, and the CPU
   engine's time per sample on the same net and input (one sample; ``--no-cpu``
   skips it) with the speed-up. A batch size that would not finish within the
   budget (judged from the previous one) is skipped and named.
   The check of part 3 also runs 3 samples as one batch against the CPU's
   data-set runner (every per-sample count, output and prediction).

Usage: ``python bench/gpu_speed.py [--quick] [--budget-s 540] [--out PATH]``;
writes ``bench/results/gpu_speed.json``. Nothing here was run without a GPU:
BENCHMARKS.md records what was measured, where and when.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

NEEDED = {"numba": "numba", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py", "click": "click",
          "numba_cuda": "numba-cuda"}


def ensure_packages() -> None:
    """Import what the engine and the CUDA backend need; install missing ones from .whl/."""
    missing = []
    for module, dist in NEEDED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    if not missing:
        return
    if "numba" not in missing:
        # no GPU at all: say that, not which package is missing (numba's own CUDA
        # module answers without numba-cuda)
        from numba import cuda as numba_cuda

        if not numba_cuda.is_available():
            sys.exit("no GPU for the CUDA backend: numba finds no CUDA device")
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if not wheels:
        sys.exit(f"missing packages: {', '.join(missing)}; install them (pip install -e '.[cuda]') or put "
                 "their wheels in .whl/ (bench/README.md)")
    print(f"installing {', '.join(missing)} from .whl/ ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--find-links", str(ROOT / ".whl"), *missing], check=True)
    importlib.invalidate_caches()


if __name__ == "__main__":  # imported by the tests (runpy) only for its host parts
    ensure_packages()

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

from eventsnn.engine import cuda as cuda_backend  # noqa: E402
from eventsnn.engine import cuda_batch  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402
from machine import machine_info, table  # noqa: E402

VGG16_CONVS = (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A")


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


# -- 1. environment ---------------------------------------------------------------------

def gpu_info() -> dict:
    reason = cuda_backend.unavailable()
    if reason or not cuda_backend.device_present():
        sys.exit(f"no GPU for the CUDA backend: {reason or 'numba CUDA simulator is on'}")
    dev = cuda.get_current_device()
    info = {"gpu": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
            "compute_capability": list(dev.compute_capability),
            "multiprocessors": dev.MULTIPROCESSOR_COUNT}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        info["nvidia_smi"] = smi
    except (OSError, subprocess.SubprocessError):
        pass
    import numba
    info["numba"] = numba.__version__
    try:
        info["numba_cuda"] = importlib.import_module("numba_cuda").__version__
    except Exception:  # noqa: BLE001
        info["numba_cuda"] = None
    return info


# -- 2. bandwidth -----------------------------------------------------------------------

@cuda.jit
def _copy(src, dst):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < src.shape[0]:
        dst[i] = src[i]
        i += stride


def bandwidth(gib: float = 2.0, reps: int = 5) -> dict:
    n = int(gib * 2 ** 30) // 4
    src = cuda.device_array(n, np.float32)
    dst = cuda.device_array(n, np.float32)
    dev = cuda.get_current_device()
    blocks, threads = dev.MULTIPROCESSOR_COUNT * 8, 256
    _copy[blocks, threads](src, dst)
    cuda.synchronize()
    best = math.inf
    for _ in range(reps):
        a, b = cuda.event(), cuda.event()
        a.record()
        _copy[blocks, threads](src, dst)
        b.record()
        b.synchronize()
        best = min(best, cuda.event_elapsed_time(a, b) / 1e3)
    gbps = 2 * n * 4 / best / 1e9
    print(f"device copy of {gib:g} GiB: {best * 1e3:.2f} ms, {gbps:,.0f} GB/s (read + write); "
          f"uncached syn-op traffic bound (12 B/op): {gbps * 1e9 / 12:.3e} ops/s")
    return {"bytes": 2 * n * 4, "seconds": best, "gb_per_s": gbps, "syn_op_bound_12B": gbps * 1e9 / 12}


# -- 3. check ---------------------------------------------------------------------------

def check(seeds: int) -> dict:
    from eventsnn.results import run_dataset
    from netgen import random_input, random_network
    from test_multi_spike import multi_spiking
    bad, runs, spikes = [], 0, 0
    for seed in range(seeds):
        for encoding in ("direct", "poisson"):
            rng = np.random.default_rng(seed)
            net = random_network(rng, encoding)
            if seed % 3 == 2:
                net = multi_spiking(net, rng)
            steps = int(rng.integers(5, 25))
            x = random_input(rng, net)
            sims = []
            for backend in ("cpu", "cuda"):
                sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, backend=backend)
                sim.reset(x)
                sim.run()
                sims.append(sim)
            a, b = sims
            same = (np.array_equal(a.state.spike_count, b.state.spike_count)
                    and np.array_equal(a.syn_ops, b.syn_ops) and np.array_equal(a.updates, b.updates)
                    and np.array_equal(a.state.v, b.state.v) and a.events_processed == b.events_processed)
            runs += 1
            spikes += int(a.state.spike_count.sum())
            if not same:
                bad.append((seed, encoding))
            if seed < 3:  # a batch of 3 different samples (one all zeros) against the CPU's data-set runner
                xs = np.stack([x, random_input(rng, net), np.zeros_like(x)])
                got = cuda_batch.run_samples(Simulator(net, timesteps=steps, encoding=encoding, seed=seed,
                                                       backend="cuda"), xs, batch=3)
                ref = run_dataset(net, xs, timesteps=steps, encoding=encoding, seed=seed, backend="cpu")
                runs += 1
                if not all(np.array_equal(getattr(got, k), getattr(ref, k)) for k in BATCH_FIELDS):
                    bad.append((seed, encoding, "batch"))
    print(f"check: {runs} random nets and batches, CUDA == CPU in {runs - len(bad)} ({spikes} spikes in all)")
    if bad:
        sys.exit(f"CUDA differs from CPU on {bad}: fix before timing")
    return {"runs": runs, "identical": runs - len(bad), "spikes": spikes}


BATCH_FIELDS = ("spikes", "syn_ops", "updates", "analog_macs", "predictions", "spikes_per_step",
                "syn_ops_per_step", "updates_per_step", "outputs")


# -- 4. timing --------------------------------------------------------------------------

def vgg16_base(input_shape, seed=3) -> list:
    """He-normal weights of VGG16 (conv (3, 3, C_in, C_out), dense (N_in, N_out)); dense head
    4096-4096-1000 at 224, 512-512-10 at 32 (as VGG16 on CIFAR). Drawn once per size."""
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    out = []
    for item in VGG16_CONVS:
        if item == "A":
            h, w = h // 2, w // 2
            continue
        out.append((rng.standard_normal((3, 3, c, item), np.float32) * np.float32(math.sqrt(2.0 / (9 * c)))))
        c = item
    n = h * w * c
    for m in ((4096, 4096, 1000) if input_shape[0] >= 224 else (512, 512, 10)):
        out.append(rng.standard_normal((n, m), np.float32) * np.float32(math.sqrt(2.0 / n)))
        n = m
    return out


def vgg16(input_shape, gains, base) -> Network:
    """VGG16 (13 conv 3x3 + avg pools + 3 dense, IF, subtractive reset, direct input) with
    the base weights of each weighted layer times its gain."""
    layers, k = [], 0
    for i, item in enumerate(VGG16_CONVS):
        if item == "A":
            layers.append(Layer(f"pool{i}", "avgpool2d", kernel=(2, 2), neuron=Neuron("if", 1.0, "subtract")))
            continue
        layers.append(Layer(f"conv{i}", "conv2d", weight=base[k] * np.float32(gains[k]), padding=(1, 1),
                            neuron=Neuron("if", 1.0, "subtract")))
        k += 1
    layers.append(Layer("flat", "flatten"))
    for j in range(3):
        layers.append(Layer(f"fc{j}", "dense", weight=base[k] * np.float32(gains[k]),
                            neuron=Neuron("if", 1.0, "subtract")))
        k += 1
    return Network(input_shape=tuple(input_shape), layers=layers, encoding="direct", decoding="spikes")


def n_weighted() -> int:
    return sum(1 for v in VGG16_CONVS if v != "A") + 3


def images(shape, n) -> np.ndarray:
    """n Fashion-MNIST samples as (H, W, 3) multiples of 2^-8: padded to 32, or upsampled to 224."""
    d = np.load(ROOT / "data" / "fashion-mnist-sample.npz")
    x = d["x"][:n].astype(np.float32)
    if x.max() > 1:
        x = x / 256.0
    x = x.reshape(n, 28, 28, 1)
    if shape[0] == 32:
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    else:
        x = np.kron(x, np.ones((1, 8, 8, 1), np.float32))[:, :224, :224]
        x = np.pad(x, ((0, 0), (0, 224 - x.shape[1]), (0, 224 - x.shape[2]), (0, 0)))
    return np.repeat(x, 3, axis=3).astype(np.float32)


def rates_of(sim) -> np.ndarray:
    tot = sim.per_layer()
    return tot["spikes"] / (sim.neurons * sim.timesteps)


def calibrate(shape, base, x, target, steps, iters, budget) -> tuple:
    """Per weighted layer gains so each spikes at ~target: every iteration runs the
    whole net once on the GPU and moves every gain by (target / rate)^0.7 (downstream
    layers follow upstream changes in the next iterations). Rates are measured later."""
    gains = [1.0] * n_weighted()
    log = []
    for it in range(iters):
        net = vgg16(shape, gains, base)
        sim = Simulator(net, timesteps=steps, encoding="direct", backend="cuda")
        sim.reset(x)
        sim.run()
        r = rates_of(sim)
        weighted = [p for p, name in enumerate(sim.layer_names) if name.startswith(("conv", "fc"))]
        wr = r[weighted]
        log.append(wr.tolist())
        if np.all(np.abs(wr / target - 1) < 0.3) or budget.left() < 60:
            break
        for k, rate in enumerate(wr):
            gains[k] *= 4.0 if rate <= 0 else float(np.clip((target / rate) ** 0.7, 0.25, 4.0))
    return gains, log


def time_net(name, net, xs, steps, backend, budget, min_left=30.0) -> dict | None:
    """Simulator.run() of each sample, timed, after a one-step warm-up that compiles the
    kernels (numba's CPU cache or the CUDA kernels of every layer)."""
    sim = Simulator(net, timesteps=steps, encoding=net.encoding, backend=backend)
    sim.reset(xs[0])
    sim.run(until=1.0)
    times, ops = [], []
    for i in range(len(xs)):
        if budget.left() < min_left and times:
            break
        sim.reset(xs[i], sample_index=i)
        t0 = time.perf_counter()
        sim.run()
        times.append(time.perf_counter() - t0)
        ops.append(int(sim.per_layer()["syn_ops"].sum()))
    if not times:
        return None
    t = float(np.median(times))
    return {"net": name, "backend": backend, "samples": len(times), "median_s": t, "mean_s": float(np.mean(times)),
            "syn_ops_per_sample": float(np.mean(ops)), "syn_ops_per_s": float(np.sum(ops) / np.sum(times)),
            "samples_per_s": 1.0 / t, "rates": rates_of(sim).tolist(), "layers": sim.layer_names}


def time_batch(name, sim, xs, batch, budget, last=None) -> dict | None:
    """``batch`` samples (cycled from ``xs``) run as one batch on the GPU by ``sim``'s
    network (the kernels are compiled by the caller's warm-up). ``last``: the previous
    (smaller) batch's row, to skip a batch that would not finish in the budget (time
    assumed to grow linearly)."""
    if last is not None and last["seconds"] * batch / last["batch"] > budget.left() - 20:
        return None
    steps = sim.timesteps
    batch_x = xs[np.arange(batch) % len(xs)]
    free0 = cuda.current_context().get_memory_info()[0]
    t0 = time.perf_counter()
    res = cuda_batch.run_samples(sim, batch_x, batch=batch)
    seconds = time.perf_counter() - t0
    ops = int(res.syn_ops.sum())
    return {"net": name, "backend": "cuda", "batch": batch, "samples": batch, "seconds": seconds,
            "median_s": seconds / batch, "syn_ops_per_sample": ops / batch, "syn_ops_per_s": ops / seconds,
            "samples_per_s": batch / seconds, "sample_mib": cuda_batch.sample_bytes(sim) / 2 ** 20,
            "free_mib_before": free0 / 2 ** 20,
            "rates": (res.spikes.sum(axis=0) / (sim.neurons * steps * batch)).tolist(), "layers": sim.layer_names}


def parse_batches(text: str) -> list:
    out = []
    for v in text.split(","):
        v = v.strip()
        if v == "auto":
            out.append(v)
            continue
        try:
            b = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"batch sizes are positive integers or 'auto', got {v!r}") from None
        if b < 1:
            raise argparse.ArgumentTypeError(f"batch sizes are positive integers or 'auto', got {v!r}")
        out.append(b)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32x32 and the shipped net only, fewer samples")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting new parts after this")
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--rates", type=lambda s: [float(v) for v in s.split(",")], default=[0.01, 0.05])
    ap.add_argument("--samples", type=int, default=4, help="timed samples per net at 32x32 (224: 2)")
    ap.add_argument("--batch", type=parse_batches, default=[1, 4, 16, "auto"],
                    help="batch sizes to time, e.g. 1,4,16,auto ('auto': the data-set default)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU engine timings")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_speed.json")
    args = ap.parse_args(argv)
    budget = Budget(args.budget_s)
    out = {"machine": machine_info(), "gpu": gpu_info(), "args": {k: str(v) for k, v in vars(args).items()},
           "launch": cuda_backend.launch_config(), "skipped": []}
    print(json.dumps(out["gpu"]))
    out["bandwidth"] = bandwidth()
    out["check"] = check(4 if args.quick else 10)
    T = args.timesteps
    rows, results = [], []

    def record(res, cpu=None, note=""):
        if res is None:
            return
        results.append({"gpu": res, "cpu": cpu, "note": note})
        speedup = f"{cpu['median_s'] / res['median_s']:.1f}x" if cpu else "-"
        rows.append([res["net"], res.get("batch", 1), f"{res['syn_ops_per_sample']:.3e}",
                     f"{res['median_s'] * 1e3:.1f}", f"{res['syn_ops_per_s']:.3e}", f"{res['samples_per_s']:.2f}",
                     f"{res['sample_mib']:.0f}" if "sample_mib" in res else "-",
                     f"{cpu['median_s'] * 1e3:.1f}" if cpu else "-", speedup,
                     f"{res['syn_ops_per_s'] / out['bandwidth']['syn_op_bound_12B'] * 100:.1f} %"])

    def batches(name, net, xs):
        """Time every batch size of --batch on one net (auto resolved per net)."""
        sim = Simulator(net, timesteps=T, encoding=net.encoding, backend="cuda")
        sizes = sorted({cuda_batch.default_batch(sim, 10 ** 6) if b == "auto" else b for b in args.batch})
        # Warm-up: one sample of one step compiles every kernel (their types depend on
        # neither the batch size nor T).
        cuda_batch.run_samples(Simulator(net, timesteps=1, encoding=net.encoding, backend="cuda"), xs[:1], batch=1)
        got, last = [], None
        for b in sizes:
            res = time_batch(name, sim, xs, b, budget, last)
            if res is None:
                out["skipped"].append(f"{name} batch {b}")
                print(f"skipped (budget): {name} batch {b}", flush=True)
                continue
            print(f"{name} batch {b}: {res['seconds']:.2f} s, {res['samples_per_s']:.2f} samples/s, "
                  f"{res['syn_ops_per_s']:.3e} syn ops/s", flush=True)
            got.append(res)
            last = res
        return got

    # The shipped converted net on its own data.
    net = load_network(ROOT / "data" / "default_net.h5")
    d = np.load(ROOT / "data" / "fashion-mnist-sample.npz")
    xs = d["x"][: args.samples].astype(np.float32)
    xs = (xs / 256.0 if xs.max() > 1 else xs).reshape(len(xs), *net.input_shape)
    cpu = None if args.no_cpu else time_net("default_net (shipped)", net, xs[:1], T, "cpu", budget)
    for gpu in batches("default_net (shipped)", net, xs):
        record(gpu, cpu)

    sizes = [32] if args.quick else [32, 224]
    for size in sizes:
        shape = (size, size, 3)
        n_samples = args.samples if size == 32 else 2  # distinct images; batches cycle through them
        xs = images(shape, n_samples)
        base = vgg16_base(shape)
        for rate in args.rates:
            name = f"vgg16 {size}x{size} @ {rate:.0%}"
            if budget.left() < (60 if size == 32 else 150):
                out["skipped"].append(name)
                print(f"skipped (budget): {name}", flush=True)
                continue
            t0 = time.perf_counter()
            gains, log = calibrate(shape, base, xs[0], rate, 20 if size == 224 else 50, 6, budget)
            print(f"{name}: calibrated in {time.perf_counter() - t0:.1f} s, weighted-layer rates per iteration "
                  f"{[np.round(r, 4).tolist() for r in log]}", flush=True)
            net = vgg16(shape, gains, base)
            gpus = batches(name, net, xs)
            cpu = None
            if not args.no_cpu and budget.left() > (200 if size == 224 else 40):
                cpu = time_net(name, net, xs[:1], T, "cpu", budget)  # one timed CPU sample
            for gpu in gpus:
                record(gpu, cpu, note=f"gains {gains}; calibration {log}")
    table(["net", "batch", "syn ops/sample", "GPU ms/sample", "syn ops/s", "samples/s", "MiB/sample",
           "CPU ms/sample", "GPU/CPU", "of 12 B/op bound"], rows,
          title=f"CUDA backend, T = {T}, on {out['gpu']['gpu']} (ms/sample: batch wall time / batch)")
    if out["skipped"]:
        print(f"skipped for the time budget: {', '.join(out['skipped'])}")
    out["results"] = results
    out["seconds"] = args.budget_s - budget.left()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
