"""Shards of a run: how samples are cut, and where finished shards are kept for ``--resume``.

A run of N samples with shard size s has shards [0, s), [s, 2s), ...: the cut
depends on N and s only (never on the number of workers), and s is recorded in
the store's manifest, so a resumed run cuts exactly as the interrupted one.

:class:`ShardStore` is a folder (``R.h5.shards/`` next to ``--output R.h5``)::

    manifest.json                 the run: settings, sample count, shard size,
                                  SHA-256 of the network and of the data
    shard-000000000-000000064.h5  one finished shard: samples [0, 64), a
                                  results file (eventsnn.results) with its indices

Each shard file is written through :func:`eventsnn.io.atomic.atomic_path`, so a
shard file is either whole or absent: an interrupted run (Ctrl-C, a killed
worker or machine) loses at most the shards in flight.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil

import numpy as np

from ..errors import EventsnnError, OutputError, ResultsError
from ..io.atomic import atomic_path

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "eventsnn.shards"
MAX_SHARD = 256  # samples per shard at most by default: a lost shard costs little
_NAME = re.compile(r"^shard-(\d{9})-(\d{9})\.h5$")


class RunInterrupted(EventsnnError):
    """A sharded run stopped early (Ctrl-C, a failed shard); the message says what is kept and what a resume redoes."""


def default_workers() -> int:
    """The cores this process may run on (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def default_shard_size(samples: int, workers: int) -> int:
    """About four shards per worker (the last ones balance the load), at most :data:`MAX_SHARD` samples."""
    return int(max(1, min(MAX_SHARD, math.ceil(samples / (4 * max(workers, 1))))))


def plan_shards(samples: int, shard_size: int) -> list:
    """Contiguous (start, stop) ranges of ``shard_size`` samples covering 0..samples-1."""
    if samples < 1 or shard_size < 1:
        raise ValueError(f"need samples >= 1 and shard_size >= 1, got {samples}, {shard_size}")
    return [(a, min(a + shard_size, samples)) for a in range(0, samples, shard_size)]


def digest_arrays(*arrays) -> str:
    """SHA-256 of arrays (dtype, shape and bytes; None counts as absent)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digest_network(network) -> str:
    """SHA-256 of a :class:`~eventsnn.network.Network`: every field of it and of its layers and
    neurons, arrays by dtype, shape and bytes (no pickling: eventsnn never pickles)."""
    import dataclasses

    h = hashlib.sha256()

    def walk(obj):
        if isinstance(obj, np.ndarray):
            h.update(digest_arrays(obj).encode())
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            h.update(type(obj).__name__.encode())
            for f in dataclasses.fields(obj):
                h.update(f.name.encode())
                walk(getattr(obj, f.name))
        elif isinstance(obj, (list, tuple)):
            h.update(f"{type(obj).__name__}{len(obj)}".encode())
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            h.update(f"dict{len(obj)}".encode())
            for key in sorted(obj, key=repr):
                h.update(repr(key).encode())
                walk(obj[key])
        else:
            h.update(f"{type(obj).__name__}:{obj!r}".encode())

    walk(network)
    return h.hexdigest()


def shard_name(start: int, stop: int) -> str:
    return f"shard-{start:09d}-{stop:09d}.h5"


class ShardStore:
    """The folder of one run's finished shards (see the module doc).

    ``manifest`` describes the run (JSON-serialisable). A folder that already
    holds a manifest is refused unless ``resume``; with ``resume`` its
    manifest must equal ``manifest`` (else :class:`ResultsError` names the
    keys that differ). ``resume`` on a missing folder starts afresh.
    """

    def __init__(self, directory, manifest: dict, resume: bool = False):
        self.directory = os.fspath(directory)
        self.manifest = {"format": MANIFEST_FORMAT, **json.loads(json.dumps(manifest))}
        path = os.path.join(self.directory, MANIFEST)
        self.resumed = False
        if os.path.lexists(self.directory) and not os.path.isdir(self.directory):
            raise OutputError(f"{self.directory}: exists and is not a folder (it would hold the run's shards)")
        if os.path.exists(path):
            if not resume:
                raise OutputError(f"{self.directory} holds the shards of an earlier run of this output; "
                                  "pass --resume to continue it, or remove the folder")
            old = self._read_manifest(path)
            if old != self.manifest:
                keys = sorted(k for k in set(old) | set(self.manifest) if old.get(k) != self.manifest.get(k))
                raise ResultsError(f"{self.directory}: cannot resume, this run differs from the interrupted "
                                   f"one in: {', '.join(keys)} (remove the folder to start afresh)")
            self.resumed = True
            return
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.directory}: cannot create the shard folder ({exc.strerror or exc})") from None
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                json.dump(self.manifest, f, indent=1, sort_keys=True)

    def _read_manifest(self, path) -> dict:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: unreadable shard manifest ({exc}); remove {self.directory} "
                               "to start afresh") from None
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ResultsError(f"{path}: not an eventsnn shard manifest")
        return doc

    def path(self, start: int, stop: int) -> str:
        return os.path.join(self.directory, shard_name(start, stop))

    def finished(self, shards) -> dict:
        """{(start, stop): RunResult} of the shards in ``shards`` already written (and readable)."""
        from ..results import load_results

        want = set(map(tuple, shards))
        done = {}
        for name in sorted(os.listdir(self.directory)):
            m = _NAME.match(name)
            if not m:
                continue
            key = (int(m.group(1)), int(m.group(2)))
            if key not in want:
                continue
            result = load_results(os.path.join(self.directory, name))
            if result.samples != key[1] - key[0] or not np.array_equal(result.indices,
                                                                       np.arange(key[0], key[1])):
                raise ResultsError(f"{self.directory}/{name}: holds other samples than its name says")
            done[key] = result
        return done

    def write(self, start: int, stop: int, result) -> None:
        result.save(self.path(start, stop))

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def existing_shard_size(directory) -> int | None:
    """The shard size recorded by an interrupted run in ``directory`` (None if there is none)."""
    try:
        with open(os.path.join(os.fspath(directory), MANIFEST)) as f:
            size = json.load(f).get("shard_size")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else None
