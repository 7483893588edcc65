"""Run shards on a pool of threads in this process (or on a Dask client) and merge them.

Threads, not processes, for local cores: the engine's kernels are compiled
with ``nogil`` (:mod:`eventsnn.engine.jit`), a sample spends ~95 % of its time
inside them, and threads share the network and the data without copying or
pickling and start without loading the kernels again (docs/SCALING.md has the
measurement). Each thread builds its own :class:`~eventsnn.engine.simulator.Simulator`
once and reuses it for its shards, so no state is shared but the read-only
network, data and compiled plan (its tables and weights, compiled once).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np

from ..errors import SimulationError
from .shards import RunInterrupted, default_shard_size, default_workers, plan_shards


class _Stopped(Exception):
    """Raised inside a shard's sample loop when the run is being stopped."""


def run_sharded(network, x, y=None, *, workers: int | None = None, client=None, shard_size: int | None = None,
                store=None, progress=None, on_shard=None, **run_kwargs):
    """Simulate every sample of ``x`` in shards on ``workers`` threads (or a Dask ``client``); merge.

    ``run_kwargs`` are :func:`eventsnn.results.run_dataset`'s (timesteps,
    encoding, mode, seed, poisson_rate, settings, checkpoints, order,
    backend). ``workers`` defaults to every core this process may use;
    ``shard_size`` to about four shards per worker (at most 256 samples).
    ``store`` (a :class:`~eventsnn.parallel.shards.ShardStore`) keeps each
    finished shard on disk and skips the ones it already holds. ``progress(n)``
    is called with each shard's sample count as it finishes (first with the
    samples already finished, via ``progress.skip`` where it has one);
    ``on_shard(start, stop)`` after each shard is kept. Returns the merged
    :class:`~eventsnn.results.RunResult`, equal to ``run_dataset(network, x, y,
    **run_kwargs)`` in everything but the wall times. On Ctrl-C or a lost
    cluster, :class:`RunInterrupted` says which shards are kept.
    """
    from ..results import RunResult

    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SimulationError("no samples to run")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 1 and y.shape[0] > x.shape[0]:
            y = y[: x.shape[0]]
    n = int(x.shape[0])
    if workers is None:
        workers = default_workers() if client is None else _dask_workers(client)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise SimulationError(f"workers must be a positive integer, got {workers!r}")
    shards = plan_shards(n, int(shard_size) if shard_size else default_shard_size(n, int(workers)))
    done = store.finished(shards) if store is not None else {}
    if done and progress is not None:
        skip = getattr(progress, "__self__", None)
        skip = getattr(skip, "skip", None)
        (skip or progress)(sum(b - a for a, b in done))
    todo = [s for s in shards if s not in done]
    results = dict(done)

    def finished(a, b, result):
        if store is not None:
            store.write(a, b, result)
        results[(a, b)] = result
        if progress is not None:
            progress(b - a)
        if on_shard is not None:
            on_shard(a, b)

    if todo:
        try:
            if client is not None:
                from .dask_runner import run_on_client
                run_on_client(client, network, x, y, todo, run_kwargs, finished)
            else:
                workers = _fit_in_memory(network, x, int(workers), shards[0][1] - shards[0][0], run_kwargs)
                _run_threads(network, x, y, todo, workers, run_kwargs, finished)
        except (KeyboardInterrupt, RunInterrupted) as exc:
            raise RunInterrupted(_interrupted(shards, results, store, n, exc)) from None
    return RunResult.merge([results[s] for s in shards])


def _fit_in_memory(network, x, workers: int, shard_size: int, run_kwargs) -> int:
    """At most as many threads as concurrent shards fit in the memory limit (each holds a Simulator)."""
    from .. import limits
    from ..network import Network

    timesteps = run_kwargs.get("timesteps", 100)
    if workers <= 1 or not isinstance(network, Network) or not isinstance(timesteps, (int, np.integer)):
        return workers
    try:
        per = sum(limits.run_items(network, int(timesteps), shard_size, len(run_kwargs.get("checkpoints") or ())).values())
    except Exception:  # a network the engine refuses: the shard itself reports it
        return workers
    room = limits.max_memory() - x.nbytes
    return int(max(1, min(workers, room // max(per, 1))))


def _dask_workers(client) -> int:
    try:
        return max(sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()), 1)
    except Exception:  # a scheduler that does not answer now: shards still cut sensibly
        return 1


def _interrupted(shards, results, store, n, exc) -> str:
    kept = sum(b - a for a, b in results)
    why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
    left = len(shards) - len(results)
    if store is None:
        return (f"{why}: {len(results)} of {len(shards)} shards had finished; nothing is kept without "
                "an output file (`eventsnn run --output R.h5` keeps finished shards for --resume)")
    return (f"{why}: {len(results)} of {len(shards)} shards ({kept} of {n} samples) are kept in "
            f"{store.directory}; --resume redoes the other {left} shards ({n - kept} samples)")


def _run_threads(network, x, y, todo, workers, run_kwargs, finished) -> None:
    """Shards on ``workers`` threads; ``finished(a, b, result)`` in this thread as each completes."""
    from .. import results

    stop = threading.Event()
    local = threading.local()  # one Simulator per thread, reused by its shards
    lock = threading.Lock()
    first = []  # the first thread's Simulator: the others share its compiled plan

    def check(_):
        if stop.is_set():
            raise _Stopped()

    def task(a, b):
        if getattr(local, "sim", None) is None:
            with lock:  # one thread compiles the plan while the others wait for it
                plan = first[0].plan if first else None
                local.sim = results.reusable_simulator(network, plan=plan, **run_kwargs)
                first.append(local.sim)
            local.sim.reset(x[a])  # load the kernels before a shard's clock starts
            local.sim.run(until=0.0)
        return results.run_dataset(network, x, y, indices=np.arange(a, b, dtype=np.int64), progress=check,
                                   simulator=local.sim, **run_kwargs)

    pool = ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="eventsnn-shard")
    futures = {}
    try:
        futures = {pool.submit(task, a, b): (a, b) for a, b in todo}
        pending = set(futures)
        while pending:
            # a timeout, so that Ctrl-C reaches this thread promptly
            ready, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in sorted(ready, key=lambda f: futures[f]):
                finished(*futures[fut], fut.result())
    except BaseException:
        stop.set()  # running shards stop after their current sample; queued ones never start
        for fut in futures:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of ``fn(*args, **kwargs)``: for benchmarks."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
