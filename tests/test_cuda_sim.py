"""The CUDA backend's kernels, run without a GPU by numba's CUDA simulator, against the
CPU backend and the clock-driven reference (eventsnn.reference).

These tests need ``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported, so the
normal suite skips them here and ``test_cuda_backend.py`` runs this file in a
subprocess with the simulator on. The simulator runs every GPU thread as a
Python thread: networks are the small random ones of ``netgen`` and the
launches tiny (``cuda.SIM_LAUNCH``; some tests shrink it further so that grids
stride over several blocks).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from numba import config

pytestmark = pytest.mark.skipif(not config.ENABLE_CUDASIM,
                                reason="runs under NUMBA_ENABLE_CUDASIM=1 in a subprocess (test_cuda_backend.py)")

if config.ENABLE_CUDASIM:
    # The simulator's block scheduler polls its threads; Python's default 5 ms GIL
    # switch interval makes every barrier wait that long (4x slower overall).
    sys.setswitchinterval(1e-5)

from eventsnn.engine import cuda as cuda_backend  # noqa: E402
from eventsnn.engine.layout import P_BLOCK, P_INTEGRATE, P_KIND  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.errors import SimulationError  # noqa: E402
from eventsnn.reference import simulate_discrete  # noqa: E402

from netgen import dyadic, random_input, random_network  # noqa: E402
from test_engine_reference import (_decimal, _floatify, assert_matches_reference, engine_rasters,  # noqa: E402
                                   input_raster)
from test_multi_spike import multi_spiking  # noqa: E402


@pytest.fixture
def launch():
    """Set the simulator's launch shape for one test, restore it after."""
    saved = dict(cuda_backend.SIM_LAUNCH)

    def set_launch(threads, max_blocks):
        cuda_backend.SIM_LAUNCH.update(threads=threads, max_blocks=max_blocks)
    yield set_launch
    cuda_backend.SIM_LAUNCH.clear()
    cuda_backend.SIM_LAUNCH.update(saved)


def both(net, steps, encoding, seed, x, order="time", record=True):
    """The same sample on the CPU and the CUDA backend."""
    sims = {}
    for backend in ("cpu", "cuda"):
        sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, record_spikes=record, order=order,
                        backend=backend)
        sim.reset(x)
        assert sim.run() == "done"
        sims[backend] = sim
    return sims["cpu"], sims["cuda"]


def assert_same_as_cpu(cpu, gpu):
    """Every count and every potential of the CUDA run equals the CPU run's."""
    np.testing.assert_array_equal(gpu.state.spike_count, cpu.state.spike_count)
    np.testing.assert_array_equal(gpu.syn_ops, cpu.syn_ops)
    np.testing.assert_array_equal(gpu.updates, cpu.updates)
    np.testing.assert_array_equal(gpu.spikes_per_step, cpu.spikes_per_step)
    np.testing.assert_array_equal(gpu.analog_macs, cpu.analog_macs)
    np.testing.assert_array_equal(gpu.state.v, cpu.state.v)
    assert gpu.events_processed == cpu.events_processed
    assert gpu.time == cpu.time
    for p in range(1, len(gpu.layer_names)):
        if gpu.plan.pop_i[p, P_KIND] == P_INTEGRATE:  # decayed to "now" with the clock
            np.testing.assert_array_equal(gpu.potentials(p), cpu.potentials(p))
    assert gpu.prediction() == cpu.prediction()
    if cpu.record_spikes:
        a, b = cpu.recorded_spikes(), gpu.recorded_spikes()
        key = [np.lexsort((i, p, t)) for t, p, i in (a, b)]
        for k in range(3):
            np.testing.assert_array_equal(a[k][key[0]], b[k][key[1]])


def random_case(seed, encoding):
    rng = np.random.default_rng(seed)
    net = random_network(rng, encoding)
    steps = int(rng.integers(5, 25))
    return net, steps, random_input(rng, net)


# Random nets (tests/netgen.py) that together hold every layer kind and option (checked
# below); few, since the simulator runs each GPU thread as a Python thread.
SEEDS = [3, 6, 8, 9, 11, 14]


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_nets_match_cpu_and_reference(seed, encoding):
    """Conv stride 1/2, padding, avg/max pools, residual add, dense, IF/LIF, both resets,
    biases, membrane or spike readout: 2^-8-grid values, so everything is identical."""
    net, steps, x = random_case(seed, encoding)
    cpu, gpu = both(net, steps, encoding, seed, x)
    assert_same_as_cpu(cpu, gpu)
    ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
    assert_matches_reference(gpu, ref, encoding)


def test_random_nets_cover_the_layer_kinds():
    """The nets above are not vacuous: together they hold every layer kind and neuron
    option, and they spike in their deeper layers."""
    kinds, neurons, spiking, readouts, biases = set(), set(), 0, set(), 0
    for seed in SEEDS:
        for encoding in ("direct", "poisson"):
            net, steps, x = random_case(seed, encoding)
            for layer in net.layers:
                kinds.add(layer.kind)
                if layer.kind == "conv2d":
                    kinds.add(f"stride{(layer.stride or (1, 1))[0]}")
                    kinds.add(f"pad{(layer.padding or (0, 0))[0]}")
                biases += layer.bias is not None
                if layer.neuron is not None:
                    neurons.add((layer.neuron.kind, layer.neuron.reset))
            sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed)
            sim.reset(x)
            sim.run()
            spiking += int(sim.per_layer()["spikes"][-2] > 0)
            readouts.add(net.decoding)
    assert {"conv2d", "dense", "avgpool2d", "maxpool2d", "add", "stride1", "stride2", "pad0", "pad1"} <= kinds
    assert neurons == {("if", "subtract"), ("if", "zero"), ("lif", "subtract"), ("lif", "zero")}
    assert readouts == {"spikes", "membrane"} and biases > 0
    assert spiking >= len(SEEDS)  # at least half of the runs spike in the layer before the output


@pytest.mark.parametrize("seed", range(4))
def test_multi_spike_matches_cpu_and_reference(seed):
    """Neurons firing up to K spikes per step: each spike is an event with its fan-out."""
    rng = np.random.default_rng(7000 + seed)
    encoding = ("direct", "poisson")[seed % 2]
    net = multi_spiking(random_network(rng, encoding), rng)
    steps = int(rng.integers(5, 20))
    x = random_input(rng, net)
    cpu, gpu = both(net, steps, encoding, seed, x, order=("time", "layer")[seed % 2])
    assert_same_as_cpu(cpu, gpu)
    ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
    counts = assert_matches_reference(gpu, ref, encoding)
    if seed < 2:
        assert max(int(c.max(initial=0)) for c in counts[1:]) > 1, "no neuron fired twice in a step"


def test_counts_do_not_go_through_shared_memory(monkeypatch):
    """The cause of issue 15's intermittent count mismatch: numba's simulator allocates a
    shared array on a block's first call without a lock (FakeCUDAShared.array), so two
    threads could get different words, and a spike sum kept in one lost a block's
    spikes now and then. With every thread given its own word, as in the worst case of
    that race, the counts must still be exact (the old kernel lost 28 of 70 per-step
    spike counts of this net): no kernel may count through shared memory."""
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    def private(self, shape, dtype, alignment=None):
        return np.zeros(shape, numpy_support.as_dtype(dtype))
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", private)
    net, steps, x = random_case(14, "direct")
    cpu, gpu = both(net, steps, "direct", 14, x)
    assert_same_as_cpu(cpu, gpu)
    assert cpu.spikes_per_step[1:].sum() > 0


@pytest.mark.parametrize("seed", [3, 5])
def test_grids_that_stride_over_several_blocks(seed, launch):
    """Launch shapes are a performance choice only: 3 threads x 2 blocks (every list and
    layer longer than a grid) gives the same results as the default shape."""
    launch(3, 2)
    net, steps, x = random_case(seed, "poisson")
    cpu, gpu = both(net, steps, "poisson", seed, x)
    assert_same_as_cpu(cpu, gpu)


def test_run_until_in_pieces_equals_one_run():
    """run(until=t) stops at step boundaries and resumes; readouts at t are the CPU's."""
    net, steps, x = random_case(2, "poisson")
    cpu = Simulator(net, timesteps=steps, seed=2, record_spikes=True)
    gpu = Simulator(net, timesteps=steps, seed=2, record_spikes=True, backend="cuda")
    for sim in (cpu, gpu):
        sim.reset(x)
    for until in (1, 3.5, 7, steps):
        a, b = cpu.run(until=until), gpu.run(until=until)
        assert a == b
        np.testing.assert_array_equal(gpu.state.spike_count, cpu.state.spike_count)
        np.testing.assert_array_equal(gpu.syn_ops, cpu.syn_ops)
        assert gpu.time == cpu.time and gpu.events_processed == cpu.events_processed
        assert gpu.prediction(at=min(until, steps) - 1) == cpu.prediction(at=min(until, steps) - 1)
    assert_same_as_cpu(cpu, gpu)


def test_samples_in_a_row_and_a_small_spike_log():
    """reset() reuses the device arrays: the second sample equals a fresh run of it; a
    spike log that starts tiny is grown (ST_GROW_LOG) without losing entries."""
    net, steps, x = random_case(4, "poisson")
    rng = np.random.default_rng(99)
    x2 = random_input(rng, net)
    gpu = Simulator(net, timesteps=steps, seed=4, record_spikes=True, backend="cuda")
    gpu.reset(x)
    gpu.run()
    gpu.recording.arrays = gpu.recording.arrays._replace(
        spike_t=np.zeros(2, np.float64), spike_pop=np.zeros(2, np.int32), spike_neuron=np.zeros(2, np.int32))
    gpu.reset(x2, sample_index=1)
    assert gpu.run() == "done"
    cpu = Simulator(net, timesteps=steps, seed=4, record_spikes=True)
    cpu.reset(x2, sample_index=1)
    cpu.run()
    assert len(cpu.recorded_spikes()[0]) > 2
    assert_same_as_cpu(cpu, gpu)


def test_time_breakpoints_and_predicates_run_on_cuda():
    net, steps, x = random_case(6, "poisson")
    sims = [Simulator(net, timesteps=steps, seed=6, backend=b) for b in ("cpu", "cuda")]
    for sim in sims:
        sim.reset(x)
        sim.break_at(4.0)
        assert sim.run() == "breakpoint"
    np.testing.assert_array_equal(sims[0].state.spike_count, sims[1].state.spike_count)
    assert sims[0].time == sims[1].time


# Seeds (of test_engine_reference's float test) where the CPU already departs from the
# reference at a near-tie: the decimal grid makes such ties likely there.
FLOAT_SEEDS = [3, 4, 11, 16]


def _first_difference(a, b, steps, n_pops):
    """(step, layer, neuron) of the earliest, lowest-layer difference of two rasters, or None."""
    for t in range(steps):
        for p in range(1, n_pops):
            bad = np.flatnonzero(a[p][t] != b[p][t])
            if bad.size:
                return t, p, int(bad[0])
    return None


@pytest.mark.slow
def test_arbitrary_floats_differ_only_at_near_ties():
    """Non-dyadic values: the float32 atomics add in another order than the CPU and the
    reference, which may round differently. Where the CUDA raster first departs from
    the reference's, the reference's potential lies within float32 rounding of the
    threshold; so it does where it first departs from the CPU's, whenever that is no
    later than the first departure from the reference (after it, the reference's
    potentials no longer describe the CUDA run). Seeds where the decimal grid
    produces such ties."""
    runs = mismatched = 0
    for seed in FLOAT_SEEDS:
        rng = np.random.default_rng(5000 + seed)
        encoding = "direct" if seed % 2 else "poisson"
        net = _floatify(random_network(rng, encoding), rng)
        steps = 30
        x = _decimal(random_input(rng, net))
        cpu, gpu = both(net, steps, encoding, seed, x)
        ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
        runs += 1
        got, n_pops = engine_rasters(gpu), len(ref["pops"])
        first_ref = _first_difference(got, ref["raster"], steps, n_pops)
        first_cpu = _first_difference(got, engine_rasters(cpu), steps, n_pops)
        checks = [("reference", first_ref)]
        if first_cpu is not None and (first_ref is None or first_cpu[:2] <= first_ref[:2]):
            checks.append(("cpu", first_cpu))
        for name, first in checks:
            if first is None:
                continue
            t, p, n = first
            pop = ref["pops"][p]
            assert not pop.gate, "a max-pool gate has no rounding; its inputs must have diverged first"
            thr = np.broadcast_to(np.asarray(pop.layer.neuron.threshold, np.float32), pop.shape).reshape(-1)[n]
            v = ref["v_before_reset"][p][t, n]
            assert abs(float(v) - float(thr)) <= 1e-5 * max(1.0, abs(float(thr))), (name, seed, first, v, thr)
        mismatched += first_ref is not None or first_cpu is not None
    print(f"{mismatched} of {runs} float runs differ, all first at near-ties")
    assert mismatched > 0, "no run reached a near-tie: the check above was vacuous"


@pytest.mark.parametrize("what", ["step", "watch", "break_on_spike", "continuous", "plug"])
def test_cpu_only_features_are_refused_by_name(what):
    net, steps, x = random_case(1, "poisson")
    mode = "continuous" if what == "continuous" else "discrete"
    if what == "continuous":
        for layer in net.layers:
            layer.bias = None
    sim = Simulator(net, timesteps=steps, seed=1, backend="cuda", mode=mode)
    sim.reset(x)
    if what == "step":
        call, name = sim.step, "step()"
    elif what == "watch":
        sim.watch(sim.layer_names[1], 0)
        call, name = sim.run, "membrane tracing"
    elif what == "break_on_spike":
        sim.break_on_spike(sim.layer_names[1])
        call, name = sim.run, "spike breakpoint"
    elif what == "continuous":
        call, name = sim.run, "continuous time"
    else:
        from eventsnn.learn.traces import SpikeTraces
        sim.plug = SpikeTraces.for_simulator(sim, 2.0)
        call, name = sim.run, "plug"
    with pytest.raises(SimulationError, match=name.replace("(", r"\(").replace(")", r"\)")) as info:
        call()
    assert "CPU-only" in str(info.value) and "\n" not in str(info.value)


def test_run_dataset_on_cuda_equals_cpu():
    """The data-set runner (what `eventsnn run --backend cuda` calls): per-sample counts,
    predictions, and predictions at a sweep checkpoint (run(until)) equal the CPU's."""
    from eventsnn.results import run_dataset
    rng = np.random.default_rng(9)
    net = random_network(rng, "poisson")
    xs = np.stack([random_input(rng, net) for _ in range(3)])
    got = {b: run_dataset(net, xs, timesteps=7, backend=b, checkpoints=[3]) for b in ("cpu", "cuda")}
    a, b = got["cpu"], got["cuda"]
    assert b.settings["backend"] == "cuda" and a.settings["backend"] == "cpu"
    for name in ("spikes", "syn_ops", "updates", "analog_macs", "predictions", "checkpoint_predictions",
                 "spikes_per_step", "syn_ops_per_step", "updates_per_step"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    np.testing.assert_array_equal(b.outputs, a.outputs)
    assert a.spikes[:, 1:].sum() > 0
    assert b.settings["batch"] == 3  # the simulator reports unlimited memory: one batch


def test_cuda_shards_and_batches_merge_to_the_cpu_run():
    """A shard (``indices``) run on the device in batches of 2 keeps each sample's own
    Poisson stream (seeded by its index in the whole data set): the merged shards equal
    the CPU's single run."""
    from eventsnn.results import RunResult, run_dataset
    rng = np.random.default_rng(19)
    net = random_network(rng, "poisson")
    xs = np.stack([random_input(rng, net) for _ in range(5)])
    whole = run_dataset(net, xs, timesteps=6, seed=3)
    parts = [run_dataset(net, xs, timesteps=6, seed=3, backend="cuda", batch=2, indices=idx)
             for idx in ([3, 4], [0, 1, 2])]
    assert parts[1].settings["batch"] == 2
    merged = RunResult.merge(parts)
    for name in ("spikes", "syn_ops", "updates", "predictions", "spikes_per_step", "syn_ops_per_step"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(merged.outputs, whole.outputs)


@pytest.mark.slow
def test_wide_layers_match_cpu_and_reference(launch):
    """Units of 16-64 channels (the CPU's vectorised block path): one unit's neurons
    span several thread blocks here, so the flag of a unit is read by threads of
    different blocks while it is being rolled over (the reason roll is a launch of its own)."""
    from test_wide_layers import wide_network
    launch(16, 2)
    seed, encoding, steps = 4, "poisson", 6  # the smallest of test_wide_layers' nets: 64 then 16 channels
    rng = np.random.default_rng(500 + seed)
    net = wide_network(rng, encoding)
    x = dyadic(rng, net.input_shape, 0.0, 1.0)
    cpu, gpu = both(net, steps, encoding, seed, x)
    assert_same_as_cpu(cpu, gpu)
    ref = simulate_discrete(net, x, steps, encoding, input_raster(x, steps, seed) if encoding == "poisson" else None)
    assert_matches_reference(gpu, ref, encoding)
    assert gpu.plan.pop_i[1, P_BLOCK] == 64 and gpu.per_layer()["spikes"][1:3].min() > 0


# -- many samples at once (eventsnn/engine/cuda_batch.py) ------------------------------------

BATCH_FIELDS = ("spikes", "syn_ops", "updates", "analog_macs", "predictions", "checkpoint_predictions",
                "spikes_per_step", "syn_ops_per_step", "updates_per_step", "outputs")


@pytest.mark.parametrize("seed,encoding", [(9, "poisson"), pytest.param(8, "direct", marks=pytest.mark.slow),
                                           (6, "poisson")])
def test_a_batch_equals_each_sample_alone_on_cuda_and_cpu(seed, encoding, launch):
    """Four different samples (one all zeros) in batches of 3 (a full batch, then a
    partial one) or of the default size: every per-sample count, output and prediction, at the end and at a
    checkpoint, equals the CPU's, and each sample's counts equal a CUDA run of it alone."""
    from eventsnn.engine.cuda_batch import run_samples
    from eventsnn.results import run_dataset
    launch(4, 6)  # 2 blocks in x per sample of a batch of 3 (6 for the last batch of one), y over the samples
    rng = np.random.default_rng(seed)
    net = random_network(rng, encoding)
    steps = int(rng.integers(5, 12))
    xs = np.stack([random_input(rng, net) for _ in range(4)])
    xs[2] = 0.0
    sim = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, backend="cuda")
    batch = None if seed == 6 else 3  # None: the default, all four in one batch here
    got = run_samples(sim, xs, checkpoints=[2], batch=batch)
    assert got.batch == (batch or 4)
    cpu = run_dataset(net, xs, timesteps=steps, encoding=encoding, seed=seed, backend="cpu", checkpoints=[2])
    for name in BATCH_FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(cpu, name), err_msg=name)
    assert got.spikes[:, 1:].sum() > 0, "nothing spiked: the comparison is vacuous"
    if encoding == "poisson":
        assert got.spikes[2, 0] == 0 and got.syn_ops[2, 1:].sum() == 0  # the zero sample sends nothing
    for i in (0, 2):
        alone = Simulator(net, timesteps=steps, encoding=encoding, seed=seed, backend="cuda")
        alone.reset(xs[i], sample_index=i)
        alone.run()
        totals = alone.per_layer()
        for name in ("spikes", "syn_ops", "updates", "analog_macs"):
            np.testing.assert_array_equal(getattr(got, name)[i], totals[name], err_msg=name)
        assert got.predictions[i] == alone.prediction()


def test_batch_size_rule_and_bad_batches():
    """The default batch fills 80 % of the free memory after the shared arrays, capped
    by MAX_BATCH and the number of samples; a bad batch size is one clear error."""
    from eventsnn.engine import cuda_batch
    net, steps, x = random_case(1, "poisson")
    sim = Simulator(net, timesteps=steps, seed=1, backend="cuda")
    per = cuda_batch.sample_bytes(sim)
    shared = sum(a.nbytes for g in (sim.topology, sim.params) for a in g if isinstance(a, np.ndarray))
    free = int((shared + 10.5 * per) / cuda_batch.FREE_FRACTION)
    assert cuda_batch.default_batch(sim, 100, free_bytes=free) == 10
    assert cuda_batch.default_batch(sim, 4, free_bytes=free) == 4
    assert cuda_batch.default_batch(sim, 10 ** 6, free_bytes=1 << 50) == cuda_batch.MAX_BATCH
    assert cuda_batch.default_batch(sim, 100, free_bytes=0) == 1
    assert cuda_batch.default_batch(sim, 3) == 3  # the simulator reports infinite free memory
    from eventsnn import limits
    with limits.memory_limit(3 * cuda_batch.host_bytes(sim)):
        assert cuda_batch.default_batch(sim, 100, free_bytes=1 << 50) == 3  # the host's limit binds
    assert per > 4 * sim.plan.n_neurons  # at least the potentials
    xs = x[None]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(SimulationError, match="batch must be a positive integer"):
            cuda_batch.run_samples(sim, xs, batch=bad)
    with pytest.raises(SimulationError, match="checkpoints must lie"):
        cuda_batch.run_samples(sim, xs, checkpoints=[steps + 1], batch=1)


def test_batches_refuse_what_is_cpu_only():
    from eventsnn.engine import cuda_batch
    from eventsnn.learn.traces import SpikeTraces
    net, steps, x = random_case(1, "poisson")
    for layer in net.layers:
        layer.bias = None
    sim = Simulator(net, timesteps=steps, seed=1, backend="cuda", mode="continuous")
    with pytest.raises(SimulationError, match="discrete time"):
        cuda_batch.run_samples(sim, x[None], batch=1)
    sim = Simulator(net, timesteps=steps, seed=1, backend="cuda")
    sim.plug = SpikeTraces.for_simulator(sim, 2.0)
    with pytest.raises(SimulationError, match="plug"):
        cuda_batch.run_samples(sim, x[None], batch=1)


def test_a_batch_too_large_for_the_device_is_one_clear_error(monkeypatch):
    """Out of device memory while allocating a batch: a ResourceError naming the size."""
    from eventsnn.engine import cuda_batch
    from eventsnn.errors import ResourceError
    net, steps, x = random_case(1, "poisson")
    sim = Simulator(net, timesteps=steps, seed=1, backend="cuda")

    def no_memory(*args, **kwargs):
        raise RuntimeError("[2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY")
    monkeypatch.setattr(cuda_backend.Engine, "__init__", no_memory)
    with pytest.raises(ResourceError, match="a batch of 2 samples needs about .* smaller batch") as info:
        cuda_batch.run_samples(sim, np.stack([x, x]), batch=2)
    assert "\n" not in str(info.value)
