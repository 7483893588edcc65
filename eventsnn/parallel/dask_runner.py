"""Shards on a Dask distributed cluster: an existing scheduler, or a LocalCluster started here.

Dask is optional (``pip install 'eventsnn[dask]'``); everything here imports it
lazily and says in one line how to install it when it is missing.

What travels: the network once per run as a *task* that returns it
(:func:`_network`; Dask serialises the task), so a worker that dies takes no
irreplaceable data with it:
Dask recomputes the network on another worker and reschedules the shards that
were running on the dead one. Then per shard: its samples (and labels) out,
one :class:`~eventsnn.results.RunResult` back (a few kB: per-sample counts and
outputs, per-step counts). Workers need eventsnn installed (the same version).
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings

import numpy as np

from ..errors import SimulationError
from .shards import RunInterrupted

INSTALL_HINT = "Dask is not installed; pip install 'eventsnn[dask]' (dask[distributed]) to use --dask or --scheduler"


class DaskMissing(SimulationError):
    """dask[distributed] is not installed."""


def require_distributed():
    """The ``distributed`` module, or :class:`DaskMissing` with the install line."""
    try:
        import distributed
    except ImportError:
        raise DaskMissing(INSTALL_HINT) from None
    return distributed


def start_client(workers: int | None = None, scheduler: str | None = None):
    """A Client of the scheduler at ``scheduler`` (tcp://HOST:PORT), or of a new LocalCluster
    with ``workers`` single-threaded worker processes on loopback. Close it with :func:`close_client`."""
    distributed = require_distributed()
    if scheduler is not None:
        try:
            return distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SimulationError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    cluster = distributed.LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
    return distributed.Client(cluster)


def close_client(client) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _network(network):
    """The network, as a task's result (so Dask can recompute it if the worker holding it dies)."""
    return network


_LOCAL = threading.local()  # per worker thread: the last network's Simulator, reused by its shards


def _shard(network, x, y, start: int, run_kwargs: dict):
    """One shard on a worker: samples start..start+len(x)-1 of the data set."""
    from ..results import _run_rows, _sim_key, reusable_simulator

    kw = {k: run_kwargs.get(k, d) for k, d in (("timesteps", 100), ("encoding", None), ("mode", "discrete"),
                                                ("seed", 0), ("poisson_rate", 1.0), ("order", "auto"),
                                                ("backend", "cpu"))}
    kw["order"] = kw["order"] if kw["order"] != "auto" else ("layer" if kw["mode"] == "discrete" else "time")
    sim = getattr(_LOCAL, "sim", None)
    if sim is None or getattr(sim, "_run_key", None) != _sim_key(network, **kw) or sim.network is not network:
        _LOCAL.sim = None  # the old one goes before the new one is built
        sim = reusable_simulator(network, **run_kwargs)
        sim.reset(x[0])
        sim.run(until=0.0)
        _LOCAL.sim = sim
    rows = np.arange(x.shape[0], dtype=np.int64)
    return _run_rows(network, x, y, rows, rows + int(start), simulator=sim, **run_kwargs)


def run_on_client(client, network, x, y, todo, run_kwargs, finished) -> None:
    """Submit every shard in ``todo``; ``finished(a, b, result)`` here as each comes back."""
    distributed = require_distributed()
    from .shards import digest_network

    run = uuid.uuid4().hex[:12]
    with warnings.catch_warnings():
        # a large network travels once, inside its task: Dask's "large graph" advice (scatter it)
        # would make it data that dies with its worker
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        net = client.submit(_network, network, key=f"eventsnn-network-{digest_network(network)[:16]}-{run}")
    futures = {}
    try:
        for a, b in todo:
            fut = client.submit(_shard, net, x[a:b], None if y is None else y[a:b], a, run_kwargs,
                                key=f"eventsnn-shard-{run}-{a}-{b}")
            futures[fut] = (a, b)
        for fut in distributed.as_completed(list(futures)):
            try:
                result = fut.result()
            except distributed.client.FutureCancelledError as exc:
                raise RunInterrupted(f"the Dask cluster cancelled shard {futures[fut]} ({exc})") from None
            except Exception as exc:
                if type(exc).__name__ == "KilledWorker":
                    raise RunInterrupted(f"Dask gave up on shard {futures[fut]}: its workers died "
                                         f"repeatedly ({exc})") from None
                raise
            finished(*futures[fut], result)
    finally:
        client.cancel(list(futures) + [net])
