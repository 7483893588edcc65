"""Shards on a real Dask LocalCluster (2 worker processes on loopback): merged results equal the single run,
also when a worker is killed mid-run, and through the CLI's --scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from eventsnn.data import path as shipped  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.parallel import run_sharded  # noqa: E402
from eventsnn.results import run_dataset  # noqa: E402

from test_parallel_local import same  # noqa: E402

KW = dict(timesteps=20, encoding="poisson", seed=11, checkpoints=[7, 20])


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def net():
    return load_network(shipped("default_net.h5"))


@pytest.fixture(scope="module")
def data():
    return load_dataset(shipped("fashion-mnist-sample.npz"), limit=30)


def test_dask_shards_merge_to_the_single_run(client, net, data):
    single = run_dataset(net, data.x, data.y, **KW)
    got = run_sharded(net, data.x, data.y, client=client, shard_size=4, **KW)
    same(got, single)
    assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_result_is_unchanged(client, net, data):
    kw = dict(KW, timesteps=300)
    single = run_dataset(net, data.x, data.y, **kw)
    killed = []

    def kill_a_busy_worker(a, b):
        if killed:
            return
        busy = [w for w, tasks in client.processing().items() if tasks]
        assert busy, "no shard in flight to lose"
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)  # the worker dies with its shard; the nanny starts a new one
        killed.append((busy[0], pid))

    got = run_sharded(net, data.x, data.y, client=client, shard_size=5, on_shard=kill_a_busy_worker, **kw)
    assert killed
    same(got, single)
    client.wait_for_workers(2, timeout=60)
    assert killed[0][1] not in client.run(os.getpid).values()


@pytest.mark.slow
def test_cli_scheduler_equals_workers_1(client, tmp_path):
    args = [sys.executable, "-m", "eventsnn.cli.main", "run", "--samples", "10", "--timesteps", "15",
            "--encoding", "poisson", "--json", "--no-progress"]
    a = subprocess.run(args + ["--workers", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    b = subprocess.run(args + ["--scheduler", client.scheduler.address, "--shard-size", "3"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    for key in ("accuracy", "syn_ops_per_sample", "spikes_per_sample", "layers", "settings", "samples"):
        assert ja[key] == jb[key], key


@pytest.mark.slow
def test_cli_dask_starts_a_local_cluster_and_equals_workers_1(tmp_path):
    args = [sys.executable, "-m", "eventsnn.cli.main", "run", "--samples", "6", "--timesteps", "10",
            "--encoding", "poisson", "--json", "--no-progress"]
    a = subprocess.run(args + ["--workers", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    b = subprocess.run(args + ["--dask", "--workers", "2", "--shard-size", "2"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    for key in ("accuracy", "syn_ops_per_sample", "spikes_per_sample", "layers", "settings", "samples"):
        assert ja[key] == jb[key], key
