"""The CUDA backend (eventsnn/engine/cuda.py, cuda_kernels.py): its kernels under numba's
CUDA simulator (test_cuda_sim.py, in a subprocess), their compilation for a real device
(PTX; needs numba-cuda and NVVM, skipped without), and the wiring: registration,
``auto``, and one clear line where no GPU is present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eventsnn
from eventsnn.engine import backends
from eventsnn.engine.simulator import Simulator
from eventsnn.errors import SimulationError

from netgen import random_input, random_network

TESTS = Path(__file__).resolve().parent


def _simulator_importable() -> str | None:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", "from numba import cuda; cuda.to_device([1.0])"], env=env,
                          capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1:]


def _gpu_here() -> bool:
    from eventsnn.engine import cuda as cuda_backend
    return cuda_backend.device_present()


def _run_simulated(marker: str) -> None:
    """Runs the tests of tests/test_cuda_sim.py selected by ``-m marker`` with
    NUMBA_ENABLE_CUDASIM=1 (it must be set before numba is imported, so not in this
    process); every selected test there must pass, none may skip."""
    problem = _simulator_importable()
    if problem:
        pytest.skip(f"numba's CUDA simulator does not run here: {problem}")
    package_root = str(Path(eventsnn.__file__).resolve().parent.parent)  # the eventsnn this suite tests
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join([package_root, str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-m", marker,
                           str(TESTS / "test_cuda_sim.py")], env=env, cwd=str(TESTS.parent),
                          capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout and "failed" not in proc.stdout, tail


def test_kernels_match_cpu_and_reference_under_the_cuda_simulator():
    """The kernels against the CPU backend and the reference (the quicker half)."""
    _run_simulated("not slow")


@pytest.mark.slow
def test_kernels_match_cpu_and_reference_under_the_cuda_simulator_slow_cases():
    """The slower half: larger random nets, arbitrary floats, batches of samples."""
    _run_simulated("slow")


def test_cuda_is_registered_and_auto_is_a_choice():
    assert backends.BACKENDS["cuda"] == "eventsnn.engine.cuda"
    assert "cuda" not in backends.PLANNED
    assert set(backends.CHOICES) == {"cpu", "cuda", "auto"}


def test_without_a_gpu_cuda_says_so_in_one_line_and_auto_picks_cpu():
    if _gpu_here():
        pytest.skip("a GPU is present: the CUDA backend runs (bench/gpu_speed.py checks it)")
    from numba import config
    if config.ENABLE_CUDASIM:
        pytest.skip("this process runs numba's CUDA simulator, which the backend accepts")
    net = random_network(np.random.default_rng(0), "poisson")
    with pytest.raises(SimulationError, match="backend 'cuda': no .*GPU") as info:
        Simulator(net, timesteps=3, backend="cuda")
    assert "\n" not in str(info.value)
    sim = Simulator(net, timesteps=3, backend="auto")
    assert sim.backend_name == "cpu" and sim.backend is backends.get_backend("cpu")
    sim.reset(random_input(np.random.default_rng(0), net))
    assert sim.run() == "done"


def test_without_numba_cuda_the_reason_names_the_extra(monkeypatch):
    """Where numba has no CUDA target at all (the package is built without it)."""
    import numba
    from eventsnn.engine import cuda as cuda_backend
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    monkeypatch.delattr(numba, "cuda", raising=False)
    reason = cuda_backend.unavailable()
    assert reason is not None and "eventsnn[cuda]" in reason
    assert not cuda_backend.device_present()
    with pytest.raises(SimulationError, match="eventsnn\\[cuda\\]"):
        backends.get_backend("cuda")
    assert backends.resolve_backend("auto") == "cpu"


def test_cli_backend_cuda_without_gpu_fails_in_one_line_and_auto_runs(tmp_path):
    if _gpu_here():
        pytest.skip("a GPU is present")
    from click.testing import CliRunner
    from eventsnn.cli.main import main
    from eventsnn.io import save_network
    net_path = tmp_path / "net.h5"
    save_network(random_network(np.random.default_rng(3), "poisson"), net_path)
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    shape = random_network(np.random.default_rng(3), "poisson").input_shape
    np.savez(data, x=rng.random((2, *shape)).astype(np.float32), y=np.array([0, 1]))
    runner = CliRunner()
    bad = runner.invoke(main, ["run", "--net", str(net_path), "--data", str(data), "--timesteps", "5",
                               "--backend", "cuda", "--no-progress"])
    assert bad.exit_code != 0
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "backend 'cuda'" in lines[0] and "GPU" in lines[0], bad.output
    good = runner.invoke(main, ["run", "--net", str(net_path), "--data", str(data), "--timesteps", "5",
                                "--backend", "auto", "--no-progress", "--json"])
    assert good.exit_code == 0, good.output


# -- PTX: every kernel compiles for a real device ------------------------------------------

def _cuda_compiler_or_skip():
    import importlib.util
    from numba import config
    if config.ENABLE_CUDASIM:
        pytest.skip("the CUDA simulator has no compiler")
    if importlib.util.find_spec("numba_cuda") is None:
        # numba's deprecated built-in CUDA target needs a device to compile some device
        # functions; the backend is built for numba-cuda, the 'cuda' extra.
        pytest.skip("needs numba-cuda (pip install 'eventsnn[cuda]')")
    try:
        from numba import cuda
        cuda.compile_ptx(lambda a: None, "void(float32[:])", cc=(8, 0))
    except Exception as exc:
        pytest.skip(f"no CUDA compiler here (pip install 'eventsnn[cuda]'): {type(exc).__name__}: {exc}")
    return cuda


@pytest.mark.parametrize("name", ["deliver", "update", "roll", "gate", "fill"])
def test_every_kernel_compiles_to_ptx(name):
    """Each kernel, typed with the batched device tuples of a real compiled network,
    compiles for an sm_80 device; the physics it calls is inlined as device code."""
    cuda = _cuda_compiler_or_skip()
    from numba import typeof
    from eventsnn.engine import cuda_kernels
    from eventsnn.engine.cuda import DevCounts, DevState, InputSpikes, Spikes
    net = random_network(np.random.default_rng(1), "poisson")
    sim = Simulator(net, timesteps=4)
    B, T, n_pops = 2, 4, len(sim.layer_names)
    i32, f32, f64, i64, u8 = (np.zeros((B, 4), d) for d in (np.int32, np.float32, np.float64, np.int64, np.uint8))
    st = DevState(v=f32, inp=f32, const=f32, last_t=f64, tflag=u8, gate_cnt=i64, gate_last=f64, spike_count=i64)
    cnt = DevCounts(*(np.zeros((B, n_pops, T), np.int64) for _ in range(3)))
    spk = Spikes(idx=i32, mult=i32, n=np.zeros((B, T, n_pops), np.int32), tkeep=u8,
                 kept=np.zeros((B, n_pops, T), np.int32), log_t=np.zeros(4), log_pop=np.zeros(4, np.int32),
                 log_neuron=np.zeros(4, np.int32), log_n=np.zeros(1, np.int64))
    src_in = InputSpikes(idx=np.zeros(4, np.int32), start=np.zeros((B, T + 1), np.int64))
    topo, params, st, spk, src_in, cnt = (typeof(g) for g in (sim.topology, sim.params, st, spk, src_in, cnt))
    i, b = typeof(1), typeof(True)
    sigs = {"deliver": (topo, params, st, spk, src_in, cnt, i, i, i),
            "update": (topo, params, st, spk, cnt, i, i, b),
            "roll": (topo, st, spk, i, i),
            "gate": (topo, st, spk, cnt, i, i, b),
            "fill": (typeof(np.zeros(4, np.float32)), typeof(1.0))}
    kernel = cuda_kernels.KERNELS[name]
    ptx, _ = cuda.compile_ptx(kernel.py_func, sigs[name], cc=(8, 0))
    assert ".entry" in ptx and "ret;" in ptx
    if name in ("deliver", "update"):
        assert "atom" in ptx or "red." in ptx  # the float/int atomics survived
    if name == "update":
        assert ".shared" not in ptx  # counts go through atomics and barrier counts only (see cuda_kernels)


# -- bench/gpu_speed.py without a GPU --------------------------------------------------------

BENCH = TESTS.parent / "bench" / "gpu_speed.py"


def test_gpu_benchmark_without_a_gpu_stops_in_one_line():
    if _gpu_here():
        pytest.skip("a GPU is present: run the benchmark itself")
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-cpu"], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, NUMBA_ENABLE_CUDASIM="0"))
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "no GPU" in lines[0], proc.stdout + proc.stderr


def test_gpu_benchmark_arguments_and_host_parts():
    """Its argument parsing and what it builds on the host (images, VGG16 at 32x32 with a
    batch size of 'auto' resolved from given free memory) work without a GPU."""
    code = f"""
import sys, runpy
import numpy as np
m = runpy.run_path({str(BENCH)!r}, run_name="gpu_speed")
assert m["parse_batches"]("1,4,auto") == [1, 4, "auto"]
for bad in ("0", "x", "-2"):
    try:
        m["parse_batches"](bad)
    except Exception as exc:
        assert "positive integers or 'auto'" in str(exc)
    else:
        raise AssertionError(bad)
xs = m["images"]((32, 32, 3), 2)
assert xs.shape == (2, 32, 32, 3) and xs.dtype == np.float32 and xs.max() <= 1
base = m["vgg16_base"]((32, 32, 3))
net = m["vgg16"]((32, 32, 3), [1.0] * m["n_weighted"](), base)
from eventsnn.engine.simulator import Simulator
from eventsnn.engine import cuda_batch
sim = Simulator(net, timesteps=100, encoding="direct")
b = cuda_batch.default_batch(sim, 10 ** 6, free_bytes=140 * 2 ** 30)
assert 1 <= b <= cuda_batch.MAX_BATCH
print("ok", len(sim.layer_names), cuda_batch.sample_bytes(sim), b)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(TESTS.parent))
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
