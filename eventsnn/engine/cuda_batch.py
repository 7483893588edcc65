"""Many samples at once on the GPU: a data set in batches, each sample with its own state
and events, every (step, layer) launch covering the whole batch.

One sample leaves most of a large GPU idle on the small layers of a deep net
(a few hundred spikes per step is a few hundred thread blocks); a batch of
``B`` samples launches ``B`` times as many blocks per kernel for the same
launch overhead, so throughput no longer depends on one sample's
parallelism. The device arrays are those of :class:`.cuda.Engine` with the
sample as their leading axis; the kernels (:mod:`.cuda_kernels`) take the
sample from the grid's y index. Each sample's results are those of the
single-sample CUDA backend, and so of the CPU backend (identical on the
2^-8 grid, the same exact counts): tests/test_cuda_sim.py compares them.

What the host does per sample is the Simulator's own ``reset`` (the same
encoder, random stream and analog first layer, :func:`_prepare`; the samples
of a batch in a thread pool, since the engine's CPU kernels release the GIL), and the
readout is the Simulator's (:func:`_readout`: the sample's output layer is
copied into ``sim``'s host state and ``sim.prediction()``/``sim.output()``
read it), so decoding rules live in one place.

Batch size (:func:`default_batch`): the samples whose per-sample device bytes
(:func:`.cuda.state_bytes` plus the worst-case input spike list) fit in 80 %
of the device's free memory after the shared topology and parameters, whose
host buffers (:func:`host_bytes`) fit in the memory limit of
:mod:`eventsnn.limits`, at most :data:`MAX_BATCH` and at most the number of
samples, at least 1. An explicit batch whose host buffers exceed the limit is
refused (:class:`~eventsnn.errors.ResourceError`).

How the data-set runner uses it: :func:`eventsnn.results.run_dataset`, on the
CUDA backend in discrete time, hands its Simulator, samples, checkpoints,
batch size (``eventsnn run --batch``; None: the default) and progress
callback to :func:`run_samples`, and takes the per-sample arrays of the
:class:`BatchRun` in place of its sample loop.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from .. import limits
from ..encoding import bernoulli_spikes, sample_rng
from ..errors import ResourceError, SimulationError
from .compile import flat_input
from .layout import P_INTEGRATE, P_KIND, P_N, P_OFF

# Largest default batch. Not measured: a bound on one batch's latency and host
# buffers; bench/gpu_speed.py times a range of batch sizes to choose it on a device.
MAX_BATCH = 256
FREE_FRACTION = 0.8  # of the device's free memory a default batch may take


class BatchRun(NamedTuple):
    """Per-sample results, in the shapes :func:`eventsnn.results.run_dataset` builds."""

    spikes: np.ndarray  # int64 (N, layers) spikes per layer (the input's first)
    syn_ops: np.ndarray  # int64 (N, layers)
    updates: np.ndarray  # int64 (N, layers)
    analog_macs: np.ndarray  # int64 (N, layers)
    spikes_per_step: np.ndarray  # int64 (layers, T) summed over the samples
    syn_ops_per_step: np.ndarray  # int64 (layers, T)
    updates_per_step: np.ndarray  # int64 (layers, T)
    outputs: np.ndarray  # float64 (N, outputs): Simulator.output() of each sample
    predictions: np.ndarray  # int64 (N,)
    checkpoint_predictions: np.ndarray  # int64 (N, checkpoints)
    seconds: np.ndarray  # float64 (N,): its batch's wall time shared equally by its samples
    batch: int  # the batch size used


def _device_bytes(arrays) -> int:
    return int(sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)))


def sample_bytes(sim) -> int:
    """Device bytes one sample of a batch takes: state, spike lists, counters and the
    worst-case input spike list (every input neuron at every step)."""
    from .cuda import state_bytes
    plan = sim.plan
    n_in = int(plan.pop_i[0, P_N])
    inputs = 4 * n_in * sim.timesteps if plan.encoding == "poisson" else 0
    return state_bytes(plan.pop_i, sim.timesteps, plan.n_gate) + inputs


def host_bytes(sim) -> int:
    """Host bytes one sample of a batch takes while it is loaded: its initial potentials and
    constant current (float32 each) and the worst-case input spike list (time and neuron)."""
    plan = sim.plan
    inputs = 12 * int(plan.pop_i[0, P_N]) * sim.timesteps if plan.encoding == "poisson" else 0
    return 8 * int(plan.n_neurons) + inputs


def default_batch(sim, n_samples: int, free_bytes: int | None = None) -> int:
    """The default batch size (module doc): ``free_bytes`` defaults to the free memory the
    current CUDA context reports."""
    if free_bytes is None:
        from numba import cuda
        free_bytes = cuda.current_context().get_memory_info()[0]  # the CUDA simulator says inf
    shared = _device_bytes(sim.topology) + _device_bytes(sim.params)
    fit = MAX_BATCH
    if np.isfinite(free_bytes):
        fit = int((FREE_FRACTION * int(free_bytes) - shared) // max(sample_bytes(sim), 1))
    fit = min(fit, limits.max_memory() // max(host_bytes(sim), 1))
    return max(1, min(fit, MAX_BATCH, int(n_samples)))


def _check(sim) -> None:
    if sim.plan.continuous:
        raise SimulationError("batched CUDA runs need discrete time (continuous time is CPU-only)")
    if sim.plug is not None:
        raise SimulationError("batched CUDA runs take no plug (online plasticity is CPU-only)")
    if sim.plan.encoding not in ("direct", "poisson"):
        raise SimulationError(f"batched CUDA runs: unknown encoding {sim.plan.encoding!r}")


def _prepare(sim, x, index: int) -> tuple:
    """What ``sim.reset(x, sample_index=index)`` loads (same encoder, random stream and
    analog first layer): (v, const, input spike times, input neurons, analog MACs)."""
    from .cpu import inject_analog
    plan, params = sim.plan, sim.params
    xf = flat_input(plan, x)
    v = np.asarray(plan.initial_potential(params), np.float32)
    const = np.array(plan.constant_current(params), np.float32)
    macs = np.zeros(len(plan.pops), np.int64)
    if plan.encoding == "direct":
        st = sim.state
        scratch = st._replace(const=const, tflag=np.zeros_like(st.tflag), tlist=np.zeros_like(st.tlist),
                              tn=np.zeros_like(st.tn))
        inject_analog(sim.topology, params, scratch, xf, plan.analog_conns, macs)
        return v, const, np.zeros(0, np.float64), np.zeros(0, np.int32), macs
    in_time, in_idx = bernoulli_spikes(xf, sim.timesteps, sample_rng(sim.seed, index), sim.poisson_rate)
    return v, const, in_time, in_idx, macs


def _readout(sim, engine, at: float | None) -> tuple:
    """(predictions, outputs) of the loaded samples, from their output layer on the device,
    read by ``sim.prediction``/``sim.output`` (its host state is overwritten)."""
    last = len(sim.plan.pops) - 1
    off, n = int(sim.plan.pop_i[last, P_OFF]), int(sim.plan.pop_i[last, P_N])
    integrate = sim.plan.pop_i[last, P_KIND] == P_INTEGRATE
    st = sim.state
    preds, outs = [], []
    for b in range(engine.loaded):
        st.spike_count[off: off + n] = engine.st.spike_count[b, off: off + n].copy_to_host()
        if integrate:
            st.v[off: off + n] = engine.st.v[b, off: off + n].copy_to_host()
            st.last_t[off: off + n] = engine.st.last_t[b, off: off + n].copy_to_host()
        preds.append(sim.prediction(at=at))
        outs.append(sim.output(at=at))
    return preds, outs


def run_samples(sim, x, checkpoints=(), batch: int | None = None, progress=None,
                free_bytes: int | None = None, sample_ids=None) -> BatchRun:
    """Run every sample of ``x`` (N, H, W, C) through ``sim``'s network on the GPU, ``batch``
    samples at a time (default: :func:`default_batch`).

    ``sim`` is a :class:`~eventsnn.engine.simulator.Simulator` of the network (any
    backend; its plan, parameters, encoding, seed and Poisson rate are used, and its host
    state is overwritten by the readout). Sample ``i`` uses the random stream
    ``sample_index=i`` (or ``sample_ids[i]``: the sample's index in the whole data set
    when ``x`` is a shard), as :func:`eventsnn.results.run_dataset` does. ``checkpoints``
    (steps, sorted, in 1..T) also give each sample's prediction after that many steps.
    ``progress(k)`` is called after each batch with its size.
    """
    from numba import cuda

    from .cuda import Engine, unavailable
    why = unavailable()
    if why is not None:
        raise SimulationError(f"backend 'cuda': {why}")
    _check(sim)
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SimulationError("no samples to run")
    n_samples, T = x.shape[0], sim.timesteps
    ids = np.arange(n_samples, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, np.int64)
    if ids.shape != (n_samples,):
        raise SimulationError(f"sample_ids must give one index per sample ({n_samples}), got shape {ids.shape}")
    checkpoints = np.array(sorted(set(int(c) for c in checkpoints)), np.int64)
    if checkpoints.size and (checkpoints[0] < 1 or checkpoints[-1] > T):
        raise SimulationError(f"checkpoints must lie in 1..{T}, got {checkpoints.tolist()}")
    if batch is None:
        batch = default_batch(sim, n_samples, free_bytes)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise SimulationError(f"batch must be a positive integer, got {batch!r}")
    batch = int(min(batch, n_samples))
    limits.check_bytes(batch * host_bytes(sim), f"the host buffers of a batch of {batch} samples")
    plan = sim.plan
    n_layers = len(plan.pops)
    try:
        engine = Engine(sim.topology, T, batch, plan.n_gate)
        engine.set_params(sim.params)
    except MemoryError as exc:
        raise ResourceError(f"backend 'cuda': a batch of {batch} samples needs about "
                            f"{limits.human(batch * sample_bytes(sim))} of device memory, more than is free "
                            f"({exc}); use a smaller batch") from None
    except Exception as exc:  # numba's CudaAPIError (out of memory), which has no common base here
        if "OUT_OF_MEMORY" not in str(exc).upper().replace(" ", "_"):
            raise
        raise ResourceError(f"backend 'cuda': a batch of {batch} samples needs about "
                            f"{limits.human(batch * sample_bytes(sim))} of device memory, more than is free; "
                            "use a smaller batch") from None
    per_sample = {k: np.zeros((n_samples, n_layers), np.int64) for k in ("spikes", "syn_ops", "updates")}
    per_step = {k: np.zeros((n_layers, T), np.int64) for k in ("spikes", "syn_ops", "updates")}
    analog = np.zeros((n_samples, n_layers), np.int64)
    predictions = np.zeros(n_samples, np.int64)
    at_checkpoint = np.zeros((n_samples, checkpoints.size), np.int64)
    outputs = [None] * n_samples
    seconds = np.zeros(n_samples, np.float64)
    steps = np.arange(T + 1, dtype=np.float64)
    for lo in range(0, n_samples, batch):
        hi = min(lo + batch, n_samples)
        start = time.perf_counter()
        v, const, idx, bounds, counts_in = [], [], [], [], []
        total = 0
        with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, hi - lo))) as pool:
            prepared = list(pool.map(lambda i: _prepare(sim, x[i], int(ids[i])), range(lo, hi)))
        for i, (vi, ci, in_time, in_idx, macs) in zip(range(lo, hi), prepared):
            v.append(vi)
            const.append(ci)
            idx.append(in_idx)
            s = np.searchsorted(in_time, steps, side="left")
            bounds.append(total + s)
            counts_in.append(np.diff(s))
            total += in_idx.size
            analog[i] = macs
        engine.load(np.stack(v), np.stack(const), np.concatenate(idx), np.stack(bounds))
        for k, c in enumerate(checkpoints):
            engine.run_steps(c, False)
            preds, _ = _readout(sim, engine, c - 1)
            at_checkpoint[lo:hi, k] = preds
        engine.run_steps(T, False)
        cuda.synchronize()
        preds, outs = _readout(sim, engine, None)
        predictions[lo:hi] = preds
        outputs[lo:hi] = outs
        for name in per_sample:
            c = engine.host(name)  # (B', layers, T)
            if name == "spikes":
                c[:, 0, :] = np.stack(counts_in)  # the input's spikes (known on the host)
            per_sample[name][lo:hi] = c.sum(axis=2)
            per_step[name] += c.sum(axis=0)
        seconds[lo:hi] = (time.perf_counter() - start) / (hi - lo)
        if progress is not None:
            progress(hi - lo)
    return BatchRun(spikes=per_sample["spikes"], syn_ops=per_sample["syn_ops"], updates=per_sample["updates"],
                    analog_macs=analog, spikes_per_step=per_step["spikes"], syn_ops_per_step=per_step["syn_ops"],
                    updates_per_step=per_step["updates"], outputs=np.array(outputs), predictions=predictions,
                    checkpoint_predictions=at_checkpoint, seconds=seconds, batch=batch)


__all__ = ["BatchRun", "MAX_BATCH", "default_batch", "host_bytes", "run_samples", "sample_bytes"]
