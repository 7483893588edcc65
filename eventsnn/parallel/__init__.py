"""Running one data set on many cores or machines: shards, a local thread pool, Dask.

A run over N samples is cut into contiguous shards (:mod:`.shards`). Each shard
is simulated by :func:`eventsnn.results.run_dataset` with ``indices=`` (every
sample seeded from the run seed and its own index, never from the worker that
runs it), comes back as a :class:`~eventsnn.results.RunResult`, and
:meth:`RunResult.merge <eventsnn.results.RunResult.merge>` puts the shards
together: the merged result equals a single-process run bit for bit (all but
the wall times). Where shards run:

- :func:`run_sharded` with ``workers=N`` — N threads in this process
  (:mod:`.local`; the engine's kernels release the GIL, docs/SCALING.md
  says why threads rather than processes);
- ``client=`` a ``distributed.Client`` — any Dask cluster (:mod:`.dask_runner`,
  ``pip install 'eventsnn[dask]'``).

With a ``store`` (:class:`.shards.ShardStore`) every finished shard is written
atomically as it completes and a later call with the same store skips it:
``eventsnn run --output R.h5 --resume``.
"""

from .shards import RunInterrupted, ShardStore, default_workers, plan_shards  # noqa: F401
from .local import run_sharded  # noqa: F401

__all__ = ["RunInterrupted", "ShardStore", "default_workers", "plan_shards", "run_sharded"]
