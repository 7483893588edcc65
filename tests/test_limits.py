"""Memory bounds and wide counters (issue 12, items 3 and 5): every request the issue found
asking for gigabytes is refused up front, naming what is too big; counters are int64."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from eventsnn import limits
from eventsnn.datasets import load_dataset
from eventsnn.engine.simulator import Simulator
from eventsnn.errors import DataError, ResourceError
from eventsnn.io import load_network, save_network
from eventsnn.network import Layer, Network, Neuron
from eventsnn.results import run_dataset

from annbuild import AnnBuilder, to_onnx
from cliutil import invoke, one_error






def dense_net(n_in=16, n_out=3, **neuron) -> Network:
    w = np.random.default_rng(0).normal(0, 0.5, (n_in, n_out)).astype(np.float32)
    return Network(input_shape=(n_in,), layers=[Layer("fc", "dense", weight=w, neuron=Neuron(**neuron))])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    save_network(dense_net(), d / "net.h5")
    np.savez(d / "data.npz", x=np.random.default_rng(1).random((2, 4, 4)).astype(np.float32), y=np.array([0, 1]))
    b = AnnBuilder((4, 4, 1))
    b.flatten()
    b.dense(3)
    b.relu()
    to_onnx(b.graph(), d / "model.onnx")
    return d


# -- the limit itself ----------------------------------------------------------------------


def test_default_limit_is_a_fraction_of_machine_memory(monkeypatch):
    monkeypatch.delenv("EVENTSNN_MAX_MEMORY", raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < limits.machine_memory() <= physical
    assert limits.max_memory() == int(limits.DEFAULT_FRACTION * limits.machine_memory())
    monkeypatch.setenv("EVENTSNN_MAX_MEMORY", "3G")
    assert limits.max_memory() == 3 << 30
    with limits.memory_limit("512M"):
        assert limits.max_memory() == 512 << 20
    assert limits.max_memory() == 3 << 30


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "1e3G", "5X"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ResourceError):
        limits.parse_size(text)


def test_bad_max_memory_option_is_one_line(files):
    one_error(invoke(["run", "--net", files / "net.h5", "--data", files / "data.npz", "--max-memory", "lots"]),
              "--max-memory")


# -- timesteps -------------------------------------------------------------------------------


def test_huge_timesteps_refused_before_allocating(files):
    line = one_error(invoke(["run", "--net", files / "net.h5", "--data", files / "data.npz",
                             "--timesteps", 10 ** 12, "--no-progress"]), "per-step traces", "--max-memory")
    assert "TiB" in line


def test_huge_sweep_timesteps_refused(files):
    one_error(invoke(["run", "--net", files / "net.h5", "--data", files / "data.npz", "--no-progress",
                      "--sweep-timesteps", f"5,{10 ** 12}"]), "per-step traces")


def test_huge_norm_timesteps_refused(files, tmp_path):
    out = tmp_path / "c.h5"
    one_error(invoke(["convert", files / "model.onnx", "-o", out, "--calibration", files / "data.npz",
                      "--method", "spike-norm", "--norm-timesteps", 10 ** 12, "--no-progress"]), "per-step traces")
    assert not out.exists()


def test_max_memory_option_applies_and_can_be_raised(files):
    args = ["run", "--net", files / "net.h5", "--data", files / "data.npz", "--timesteps", 2000, "--no-progress"]
    one_error(invoke(args + ["--max-memory", "100K"]), "above the limit of 100.0 KiB")
    assert invoke(args + ["--max-memory", "1G"]).exit_code == 0
    assert invoke(args).exit_code == 0  # the next command starts from the default again


# -- network structures ----------------------------------------------------------------------


def test_quadratic_geometry_table_of_a_65536_wide_input_is_refused(tmp_path):
    """The issue's 65,536-neuron input: axis tables grow with n_in x n_out (32 GiB)."""
    net = Network(input_shape=(1, 65536, 1), layers=[
        Layer("conv", "conv2d", weight=np.ones((1, 3, 1, 1), np.float32), neuron=Neuron()),
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=np.zeros((65534, 2), np.float32), neuron=Neuron()),
    ])
    path = tmp_path / "wide.h5"
    save_network(net, path)
    with limits.memory_limit("8G"):
        with pytest.raises(ResourceError, match="'conv' geometry table") as err:
            load_network(path)
        with pytest.raises(ResourceError, match="geometry table"):
            Simulator(net, timesteps=5)
    assert str(path) in str(err.value)


def test_run_estimate_tracks_samples_and_data():
    net = dense_net()
    small = limits.check_run(net, 100, samples=10)
    big = limits.check_run(net, 100, samples=10_000, data_bytes=10 ** 6)
    assert big > small + 10 ** 6
    with pytest.raises(ResourceError, match=r"results \(10,000,000 samples\)"):
        limits.check_run(net, 100, samples=10_000_000, limit=1 << 30)


# -- data sets: declared and decompressed sizes --------------------------------------------


def idx_header(code, dims):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def test_gzip_idx_declaring_10_gib_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(8, (100_000, 1000, 100)) + b"\0" * 1000))
    with pytest.raises(ResourceError, match="decompressed 10,000,000,000 bytes") as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_gzip_idx_bomb_is_never_inflated(tmp_path):
    """A real bomb: 64 MiB of zeros in about 64 KB; refused with the memory peak far below 64 MiB."""
    dims = (64, 1024, 1024)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(8, dims) + bytes(64 << 20), compresslevel=1))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with limits.memory_limit("32M"):
            with pytest.raises(ResourceError):
                load_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_npz_declaring_15_gb_is_refused_before_reading(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (15_000, 1000, 1000)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + b"\0" * 100)  # the header, then almost no data
    assert path.stat().st_size < 10_000
    tracemalloc.start()
    try:
        with pytest.raises(ResourceError, match=r"x \(15000, 1000, 1000\) uint8") as err:
            load_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and peak < 8 << 20


# -- the event queue -------------------------------------------------------------------------


def test_event_queue_growth_is_bounded():
    """The issue's multi-spike net with a 1e-30 threshold: 1024 spikes per neuron per step."""
    w = np.ones((16, 512), np.float32)
    net = Network(input_shape=(16,), layers=[
        Layer("burst", "dense", weight=w, neuron=Neuron(threshold=1e-30, max_spikes=1024)),
        Layer("out", "dense", weight=np.ones((512, 2), np.float32) * 1e-3, neuron=Neuron()),
    ])
    x = np.ones((1, 16), np.float32)
    with limits.memory_limit("64M"):
        with pytest.raises(ResourceError, match="event queue would grow"):
            run_dataset(net, x, timesteps=50, order="layer")


# -- int64 spike counters ------------------------------------------------------------------


def test_spike_counter_is_int64_at_the_int32_boundary():
    """Counts past 2**31 stay positive and keep the right winner (int32 wrapped to negative)."""
    net = dense_net(4, 2)
    net.layers[0].weight = np.array([[1, 0]] * 4, np.float32)  # neuron 0 fires every step, 1 never
    sim = Simulator(net, timesteps=10)
    sim.reset(np.ones(4, np.float32))
    start = 2 ** 31 - 3
    sim.state.spike_count[sim.plan.pop_slice(1)] = [start, 0]
    sim.run()
    counts = sim.spike_counts(1).reshape(-1)
    assert counts.dtype == np.int64
    assert counts[0] == start + 10 > 2 ** 31
    assert sim.output()[0] > 2 ** 31 and sim.prediction() == 0


def test_gzip_idx_with_a_sample_limit_keeps_only_what_it_needs(tmp_path):
    """The same 64 MiB inflation with limit=2: two images kept, the rest streamed and counted."""
    dims = (64, 1024, 1024)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(8, dims) + bytes(64 << 20), compresslevel=1))
    tracemalloc.start()
    try:
        with limits.memory_limit("32M"):
            data = load_dataset(path, limit=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.x.shape == (2, 1024, 1024, 1)
    assert peak < 24 << 20, peak
    truncated = tmp_path / "t-images-idx3-ubyte.gz"
    truncated.write_bytes(gzip.compress(idx_header(8, dims) + bytes(3 << 20)))
    with pytest.raises(DataError, match="truncated IDX data"):
        load_dataset(truncated, limit=2)


def test_recorded_spike_log_growth_is_bounded():
    net = dense_net(16, 256)
    net.layers[0].weight = np.ones((16, 256), np.float32)  # every neuron fires every step
    sim = Simulator(net, timesteps=400, record_spikes=True)
    sim.reset(np.ones(16, np.float32))
    with limits.memory_limit("2M"):
        with pytest.raises(ResourceError, match="recorded spikes and traces"):
            sim.run()
