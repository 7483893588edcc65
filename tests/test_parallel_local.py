"""Sharded runs on local threads: merged results equal one single run, resumable shards, the CLI options.

The reference is the plain sequential ``run_dataset`` over all samples; every
sharded variant must equal it in everything but the wall times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from eventsnn.data import path as shipped
from eventsnn.datasets import load_dataset
from eventsnn.errors import OutputError, ResultsError, SimulationError
from eventsnn.io import load_network
from eventsnn.parallel import RunInterrupted, ShardStore, plan_shards, run_sharded
from eventsnn.results import RunResult, load_results, reusable_simulator, run_dataset

from cliutil import invoke, one_error

FIELDS = ("predictions", "labels", "outputs", "spikes", "syn_ops", "updates", "analog_macs", "spikes_per_step",
          "syn_ops_per_step", "updates_per_step", "checkpoints", "checkpoint_predictions", "indices", "neurons",
          "ann_macs", "ann_macs_textbook")
KW = dict(timesteps=20, encoding="poisson", seed=7, checkpoints=[5, 12, 20])


def same(a: RunResult, b: RunResult) -> None:
    for key in FIELDS:
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), key
    assert a.layers == b.layers and a.timesteps == b.timesteps and a.settings == b.settings
    assert a.seconds.shape == b.seconds.shape


@pytest.fixture(scope="module")
def net():
    return load_network(shipped("default_net.h5"))


@pytest.fixture(scope="module")
def data():
    return load_dataset(shipped("fashion-mnist-sample.npz"), limit=23)


@pytest.fixture(scope="module")
def single(net, data):
    return run_dataset(net, data.x, data.y, **KW)


def test_shards_are_contiguous_and_cover_every_sample():
    assert plan_shards(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_shards(3, 8) == [(0, 3)]


@pytest.mark.parametrize("workers,shard_size", [(1, 23), (2, 5), (3, 1)])
def test_threads_merge_to_the_single_run(net, data, single, workers, shard_size):
    same(run_sharded(net, data.x, data.y, workers=workers, shard_size=shard_size, **KW), single)


def test_threads_share_one_compiled_plan(net, data, single, monkeypatch):
    from eventsnn import results

    built = []
    original = results.reusable_simulator

    def spy(*args, **kwargs):
        sim = original(*args, **kwargs)
        built.append(sim)
        return sim

    monkeypatch.setattr(results, "reusable_simulator", spy)
    same(run_sharded(net, data.x, data.y, workers=3, shard_size=2, **KW), single)
    assert len(built) == 3 and all(sim.plan is built[0].plan for sim in built)
    assert len({id(sim.state.v) for sim in built}) == 3  # state is each thread's own


def test_a_shared_plan_must_be_this_networks_and_settings(net, data):
    from eventsnn.engine.simulator import Simulator

    sim = reusable_simulator(net, **KW)
    twin = reusable_simulator(net, plan=sim.plan, **KW)
    assert twin.plan is sim.plan
    same(run_dataset(net, data.x, data.y, simulator=twin, **KW), run_dataset(net, data.x, data.y, **KW))
    other = load_network(shipped("default_net.h5"))
    for bad in (dict(network=other, timesteps=20), dict(network=net, timesteps=21)):
        with pytest.raises(SimulationError, match="plan was not compiled"):
            Simulator(bad["network"], timesteps=bad["timesteps"], encoding="poisson", plan=sim.plan)
    with pytest.raises(SimulationError, match="plug"):
        Simulator(net, timesteps=20, encoding="poisson", plan=sim.plan, plug=object())


def test_indices_seed_each_sample_by_its_index(net, data, single):
    part = run_dataset(net, data.x, data.y, indices=[9, 2, 15], **KW)
    assert part.indices.tolist() == [9, 2, 15]
    for j, i in enumerate([9, 2, 15]):
        assert np.array_equal(part.outputs[j], single.outputs[i])
        assert np.array_equal(part.spikes[j], single.spikes[i])
    with pytest.raises(SimulationError, match="must not repeat"):
        run_dataset(net, data.x, data.y, indices=[1, 1], **KW)
    with pytest.raises(SimulationError, match="must lie in"):
        run_dataset(net, data.x, data.y, indices=[23], **KW)
    sim = reusable_simulator(net, **KW)
    again = [run_dataset(net, data.x, data.y, indices=[i], simulator=sim, **KW) for i in (15, 2, 9)]
    same(RunResult.merge(again), RunResult.merge([part]))
    with pytest.raises(SimulationError, match="not built by reusable_simulator"):
        run_dataset(net, data.x, data.y, indices=[1], simulator=sim, **dict(KW, seed=8))


def test_merge_in_any_order_and_refuses_overlaps_and_other_runs(net, data, single):
    parts = [run_dataset(net, data.x, data.y, indices=np.arange(a, b), **KW) for a, b in plan_shards(23, 6)]
    same(RunResult.merge(parts[::-1]), single)
    merged = RunResult.merge(parts)
    assert merged.accuracy == single.accuracy
    assert merged.summary()["layers"] == single.summary()["layers"]
    assert merged.sweep_table() == single.sweep_table()
    with pytest.raises(ResultsError, match="more than one"):
        RunResult.merge([parts[0], parts[0]])
    other = run_dataset(net, data.x, data.y, indices=[20], **dict(KW, seed=8))
    with pytest.raises(ResultsError, match="seed"):
        RunResult.merge([parts[0], other])


def test_shard_files_keep_their_indices(net, data, tmp_path):
    part = run_dataset(net, data.x, data.y, indices=[4, 5, 6], **KW)
    part.save(tmp_path / "s.h5")
    back = load_results(tmp_path / "s.h5")
    assert back.indices.tolist() == [4, 5, 6]
    same(back, part)


def test_an_interrupted_run_resumes_to_the_same_result(net, data, single, tmp_path):
    manifest = {"run": "test"}
    store = ShardStore(tmp_path / "r.shards", manifest)
    calls = []

    def stop_after_two(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match=r"2 of 5 shards \(10 of 23 samples\) are kept.*redoes the other 3"):
        run_sharded(net, data.x, data.y, workers=2, shard_size=5, store=store, on_shard=stop_after_two, **KW)
    kept = sorted(f for f in os.listdir(tmp_path / "r.shards") if f.startswith("shard-"))
    assert len(kept) == 2 and not any(f.startswith(".tmp") for f in os.listdir(tmp_path / "r.shards"))
    with pytest.raises(OutputError, match="--resume"):
        ShardStore(tmp_path / "r.shards", manifest)
    with pytest.raises(ResultsError, match="differs from the interrupted one in: run"):
        ShardStore(tmp_path / "r.shards", {"run": "another"}, resume=True)
    store = ShardStore(tmp_path / "r.shards", manifest, resume=True)
    redone = []
    done = run_sharded(net, data.x, data.y, workers=2, shard_size=5, store=store,
                       on_shard=lambda a, b: redone.append((a, b)), **KW)
    same(done, single)
    assert len(redone) == 3 and not set(redone) & set(calls)  # the kept shards were not simulated again


def _npz(tmp_path, n=12):
    data = load_dataset(shipped("fashion-mnist-sample.npz"), limit=n)
    p = tmp_path / "d.npz"
    np.savez(p, x=data.x, y=data.y)
    return p


def _h5(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def test_cli_workers_2_equals_workers_1_bit_for_bit(tmp_path):
    results = {}
    for w in (1, 2):
        d = tmp_path / f"w{w}"
        d.mkdir()
        os.chdir(d)
        try:
            r = invoke(["run", "--samples", 9, "--timesteps", 15, "--encoding", "poisson", "--workers", w,
                        "--shard-size", 2, "--output", "r.h5", "--sweep-timesteps", "5,15"])
        finally:
            os.chdir(tmp_path)
        assert r.exit_code == 0, r.output + r.stderr
        assert not (d / "r.h5.shards").exists()  # removed once the merged file is written
        results[w] = _h5(d / "r.h5")
    (a, attrs_a), (b, attrs_b) = results[1], results[2]
    assert attrs_a == attrs_b and sorted(a) == sorted(b)
    for key in a:
        if key != "seconds":
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def test_cli_resume_needs_output_and_dask_says_how_to_install(tmp_path):
    one_error(invoke(["run", "--samples", 2, "--resume"]), "--resume needs --output")
    hide = tmp_path / "nodask"
    hide.mkdir()
    (hide / "distributed.py").write_text("raise ImportError('hidden for this test')\n")
    env = dict(os.environ, PYTHONPATH=str(hide))
    for flag in (["--dask"], ["--scheduler", "tcp://127.0.0.1:9"]):
        proc = subprocess.run([sys.executable, "-m", "eventsnn.cli.main", "run", "--samples", "2", *flag],
                              cwd=tmp_path, env=env, capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1, proc.stderr
        assert "pip install 'eventsnn[dask]'" in lines[0] and "Traceback" not in proc.stderr


def test_cli_progress_shows_samples_per_second(tmp_path):
    os.chdir(tmp_path)
    r = invoke(["run", "--samples", 8, "--timesteps", 10, "--workers", 2, "--shard-size", 2])
    assert r.exit_code == 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Simulating: 8/8 (100 %)") and last.endswith("samples/s (2 threads, 4 shards)"), last


@pytest.mark.slow
def test_cli_ctrl_c_keeps_finished_shards_and_resume_completes_them(tmp_path):
    """A real SIGINT to a running `eventsnn run`: one line says what is kept; --resume gives the same file."""
    args = [sys.executable, "-m", "eventsnn.cli.main", "run", "--samples", "90", "--timesteps", "300",
            "--encoding", "poisson", "--workers", "2", "--shard-size", "3", "--output", "r.h5", "--no-progress"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "r.h5.shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.is_dir() and sum(f.startswith("shard-") for f in os.listdir(shards)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert "--resume redoes the other" in lines[0] and "samples) are kept" in lines[0]
    assert not (tmp_path / "r.h5").exists()
    kept = sum(f.startswith("shard-") for f in os.listdir(shards))
    assert 2 <= kept < 30
    resumed = subprocess.run(args + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {kept} of 30 shards are already done" in resumed.stderr
    assert not shards.exists()
    fresh = subprocess.run(args[:-3] + ["--output", "fresh.h5", "--workers", "1"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    a, _ = _h5(tmp_path / "r.h5")
    b, _ = _h5(tmp_path / "fresh.h5")
    for key in a:
        if key != "seconds":
            assert np.array_equal(a[key], b[key]), key


def test_cli_energy_report_on_two_workers_equals_one(tmp_path):
    os.chdir(tmp_path)
    docs = []
    for w in (1, 2):
        r = invoke(["energy-report", "--samples", 6, "--timesteps", 10, "--workers", w, "--shard-size", 2, "--json"])
        assert r.exit_code == 0, r.stderr
        docs.append(r.stdout)
    assert docs[0] == docs[1]
