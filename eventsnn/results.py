"""Run a network over a data set and keep every count: per sample, per layer, per step.

``RunResult.save`` writes HDF5 (format ``eventsnn.results`` version 1) through a
temporary file renamed into place::

    /            attrs: format, version, settings (JSON), layers (JSON list)
    neurons      int64[L]            neurons per layer (L: input + spiking layers)
    predictions  int64[S]; labels int64[S] (if known); outputs float64[S, K]
    spikes, syn_ops, updates, analog_macs     int64[S, L]   per sample and layer
    spikes_per_step, syn_ops_per_step, updates_per_step
                                      int64[L, T]   summed over samples
    seconds      float64[S]          wall time of each sample
    ann_macs, ann_macs_textbook  int64[L]  MACs of one ANN pass per layer (see opcount)
    checkpoints  int64[K]; checkpoint_predictions int64[S, K]  (--sweep-timesteps)
    indices      int64[S]            each sample's index in the data set (optional;
                                      absent: 0..S-1). A shard of a run holds its own.

Sharded runs (:mod:`eventsnn.parallel`): ``run_dataset(..., indices=...)`` runs
some samples of a data set, each with the Poisson seed of its index in the
whole set (:func:`eventsnn.encoding.sample_rng`), and :meth:`RunResult.merge`
puts the shards back together: per-sample rows ordered by sample index,
per-step counts added, so the merged result equals a single run of all samples
(everything but the wall times in ``seconds``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from .engine.layout import C_DST, C_SRC
from .engine.simulator import Simulator
from .io.atomic import atomic_path
from .errors import DataError, EventsnnError, ResultsError, SimulationError
from . import limits
from .network import Network
from .opcount import layer_macs, layer_synapses

RESULTS_FORMAT = "eventsnn.results"
RESULTS_VERSION = 1


@dataclass
class RunResult:
    layers: list
    neurons: np.ndarray
    timesteps: int
    predictions: np.ndarray
    labels: np.ndarray | None
    outputs: np.ndarray
    spikes: np.ndarray
    syn_ops: np.ndarray
    updates: np.ndarray
    analog_macs: np.ndarray
    spikes_per_step: np.ndarray
    syn_ops_per_step: np.ndarray
    updates_per_step: np.ndarray
    seconds: np.ndarray
    settings: dict = field(default_factory=dict)
    ann_macs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ann_macs_textbook: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoints: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoint_predictions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    indices: np.ndarray | None = None  # each sample's index in the data set; None: 0..samples-1

    def __post_init__(self):
        if self.indices is None:
            self.indices = np.arange(self.predictions.size, dtype=np.int64)

    @classmethod
    def merge(cls, results) -> "RunResult":
        """One result from shards of the same run (any order): the single-run result.

        Per-sample rows (predictions, labels, outputs, counts, seconds,
        checkpoint predictions) are put in order of sample index; per-step
        counts are added (integer sums: exact in any order). The shards must
        come from the same network and settings and must not share a sample:
        else :class:`~eventsnn.errors.ResultsError`. Accuracy, per-sample means
        and tables are then over all samples.
        """
        results = list(results)
        if not results:
            raise ResultsError("nothing to merge: no results given")
        first = results[0]
        for r in results[1:]:
            for key in ("layers", "timesteps"):
                if getattr(r, key) != getattr(first, key):
                    raise ResultsError(f"cannot merge results with different {key}")
            for key in ("neurons", "checkpoints", "ann_macs", "ann_macs_textbook"):
                a, b = getattr(r, key), getattr(first, key)
                if a.shape != b.shape or not np.array_equal(a, b):
                    raise ResultsError(f"cannot merge results with different {key}")
            if r.outputs.shape[1:] != first.outputs.shape[1:]:
                raise ResultsError("cannot merge results with different output sizes")
            if (r.labels is None) != (first.labels is None):
                raise ResultsError("cannot merge results with and without labels")
            if r.settings != first.settings:
                keys = sorted(k for k in set(r.settings) | set(first.settings)
                              if r.settings.get(k) != first.settings.get(k))
                raise ResultsError(f"cannot merge results of different runs (settings differ in: {', '.join(keys)})")
        indices = np.concatenate([np.asarray(r.indices, np.int64) for r in results])
        order = np.argsort(indices, kind="stable")
        indices = indices[order]
        if indices.size > 1 and np.any(indices[1:] == indices[:-1]):
            dup = int(indices[1:][indices[1:] == indices[:-1]][0])
            raise ResultsError(f"cannot merge: sample {dup} is in more than one result")

        def rows(key):
            return np.concatenate([getattr(r, key) for r in results])[order]

        def added(key):
            total = np.zeros_like(getattr(first, key))
            for r in results:
                total += getattr(r, key)
            return total

        return cls(layers=list(first.layers), neurons=first.neurons.copy(), timesteps=first.timesteps,
                   predictions=rows("predictions"), labels=None if first.labels is None else rows("labels"),
                   outputs=rows("outputs"), spikes=rows("spikes"), syn_ops=rows("syn_ops"),
                   updates=rows("updates"), analog_macs=rows("analog_macs"),
                   spikes_per_step=added("spikes_per_step"), syn_ops_per_step=added("syn_ops_per_step"),
                   updates_per_step=added("updates_per_step"), seconds=rows("seconds"),
                   settings=dict(first.settings), ann_macs=first.ann_macs.copy(),
                   ann_macs_textbook=first.ann_macs_textbook.copy(), checkpoints=first.checkpoints.copy(),
                   checkpoint_predictions=(rows("checkpoint_predictions") if first.checkpoints.size
                                           else np.zeros((indices.size, 0), np.int64)),
                   indices=indices)

    @property
    def samples(self) -> int:
        return int(self.predictions.size)

    @property
    def accuracy(self) -> float | None:
        if self.labels is None or self.samples == 0:
            return None
        return float(np.mean(self.predictions == self.labels))

    def layer_table(self) -> list:
        """Per layer, averaged per sample: neurons, spikes, rate per neuron per step, syn ops."""
        rows = []
        s = max(self.samples, 1)
        for i, name in enumerate(self.layers):
            spikes = self.spikes[:, i].sum() / s
            rows.append({
                "layer": name,
                "neurons": int(self.neurons[i]),
                "spikes_per_sample": float(spikes),
                "spike_rate": float(spikes / (self.neurons[i] * self.timesteps)),
                "syn_ops_per_sample": float(self.syn_ops[:, i].sum() / s),
                "neuron_updates_per_sample": float(self.updates[:, i].sum() / s),
                "analog_macs_per_sample": float(self.analog_macs[:, i].sum() / s),
            })
        return rows

    def sweep_table(self) -> list:
        """Accuracy, spikes and synaptic ops per sample against timesteps, read off one run."""
        rows = []
        s = max(self.samples, 1)
        for k, steps in enumerate(self.checkpoints):
            acc = None
            if self.labels is not None:
                acc = float(np.mean(self.checkpoint_predictions[:, k] == self.labels))
            rows.append({"timesteps": int(steps), "accuracy": acc,
                         "spikes_per_sample": float(self.spikes_per_step[1:, :steps].sum() / s),
                         "syn_ops_per_sample": float(self.syn_ops_per_step[:, :steps].sum() / s)})
        return rows

    def summary(self) -> dict:
        return {
            "settings": self.settings,
            "samples": self.samples,
            "accuracy": self.accuracy,
            "seconds_per_sample": float(np.mean(self.seconds)) if self.samples else None,
            "syn_ops_per_sample": float(self.syn_ops.sum() / max(self.samples, 1)),
            "spikes_per_sample": float(self.spikes[:, 1:].sum() / max(self.samples, 1)),
            "layers": self.layer_table(),
            "sweep": self.sweep_table(),
        }

    def save(self, path, force: bool = False) -> None:
        """Write the results file atomically (``force``: see :func:`eventsnn.io.atomic.atomic_path`)."""
        with atomic_path(path, force) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULTS_FORMAT
                f.attrs["version"] = RESULTS_VERSION
                f.attrs["settings"] = json.dumps(self.settings)
                f.attrs["layers"] = json.dumps(self.layers)
                f.attrs["timesteps"] = self.timesteps
                for key in ("neurons", "predictions", "outputs", "spikes", "syn_ops", "updates",
                            "analog_macs", "spikes_per_step", "syn_ops_per_step",
                            "updates_per_step", "seconds", "checkpoints", "checkpoint_predictions",
                            "ann_macs", "ann_macs_textbook", "indices"):
                    f.create_dataset(key, data=getattr(self, key))
                if self.labels is not None:
                    f.create_dataset("labels", data=self.labels)


def run_dataset(network, x, y=None, timesteps: int = 100, encoding: str | None = None,
                mode: str = "discrete", seed: int = 0, poisson_rate: float = 1.0,
                progress=None, settings: dict | None = None, checkpoints=None, order: str = "auto",
                backend: str = "cpu", indices=None, simulator=None, batch: int | None = None) -> RunResult:
    """Simulate every sample of ``x`` (N, H, W, C); ``progress(n)`` is called after each
    (on the CUDA backend: after each batch, with its size).

    ``checkpoints`` (timesteps <= ``timesteps``) also records each sample's
    prediction after that many steps, from the same simulation. ``order`` is
    the Simulator's event order; ``"auto"`` takes ``"layer"`` in discrete time
    (same results, faster on deep nets) and ``"time"`` in continuous time.
    ``backend`` is the Simulator's (``"cpu"``, ``"cuda"`` or ``"auto"``).

    ``indices`` (a sequence of distinct positions in ``x``) runs only those
    samples: a shard. Sample ``i`` is always encoded with the seed drawn from
    (``seed``, ``i``), so the shards of a data set, merged with
    :meth:`RunResult.merge`, equal one run over all of it. ``simulator`` reuses
    a :class:`Simulator` built for this network with these settings (one per
    thread), so that many small shards do not each build one (on VGG16 that
    takes about a second); :func:`reusable_simulator` builds it.
    """
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SimulationError("no samples to run")
    rows = _check_indices(indices, x.shape[0])
    return _run_rows(network, x, y, rows, rows, timesteps=timesteps, encoding=encoding, mode=mode, seed=seed,
                     poisson_rate=poisson_rate, progress=progress, settings=settings, checkpoints=checkpoints,
                     order=order, backend=backend, simulator=simulator, batch=batch)


def reusable_simulator(network, timesteps: int = 100, encoding: str | None = None, mode: str = "discrete",
                       seed: int = 0, poisson_rate: float = 1.0, order: str = "auto", backend: str = "cpu",
                       plan=None, **_ignored) -> Simulator:
    """The Simulator :func:`run_dataset` would build for these settings, to pass as its ``simulator``
    (takes ``run_dataset``'s keyword arguments; the ones a Simulator does not use are ignored).
    ``plan``: another such Simulator's ``.plan``, shared instead of compiled again."""
    if order == "auto":
        order = "layer" if mode == "discrete" else "time"
    sim = Simulator(network, timesteps=timesteps, mode=mode, encoding=encoding, seed=seed,
                    poisson_rate=poisson_rate, order=order, backend=backend, plan=plan)
    sim._run_key = _sim_key(network, timesteps, encoding, mode, seed, poisson_rate, order, backend)
    return sim


def _sim_key(network, timesteps, encoding, mode, seed, poisson_rate, order, backend) -> tuple:
    return (id(network), int(timesteps), encoding, mode, int(seed), float(poisson_rate), order, backend)


def _check_indices(indices, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not (np.issubdtype(idx.dtype, np.integer)):
        raise SimulationError(f"indices must be a non-empty list of sample positions (got shape {idx.shape}, "
                              f"dtype {idx.dtype})")
    idx = idx.astype(np.int64)
    if idx.min() < 0 or idx.max() >= n:
        raise SimulationError(f"indices must lie in 0..{n - 1} (the data has {n} samples), "
                              f"got {int(idx.min())}..{int(idx.max())}")
    if np.unique(idx).size != idx.size:
        raise SimulationError("indices must not repeat a sample")
    return idx


def _run_rows(network, x, y, rows, ids, timesteps=100, encoding=None, mode="discrete", seed=0,
              poisson_rate=1.0, progress=None, settings=None, checkpoints=None, order="auto",
              backend="cpu", simulator=None, batch=None) -> RunResult:
    """Simulate rows ``rows`` of ``x``; row ``rows[j]`` is sample ``ids[j]`` of the data set (its seed)."""
    if order == "auto":
        order = "layer" if mode == "discrete" else "time"
    n = int(rows.size)
    # the whole run (traces, per-sample results, the data already held) within the memory limit
    if isinstance(network, Network) and isinstance(timesteps, (int, np.integer)) and timesteps >= 1:
        limits.check_run(network, int(timesteps), n, len(checkpoints or ()), data_bytes=x.nbytes)
    if simulator is not None:
        if getattr(simulator, "_run_key", None) != _sim_key(network, timesteps, encoding, mode, seed,
                                                            poisson_rate, order, backend):
            raise SimulationError("simulator was not built by reusable_simulator for this network and settings")
        sim = simulator
    else:
        sim = Simulator(network, timesteps=timesteps, mode=mode, encoding=encoding, seed=seed,
                        poisson_rate=poisson_rate, order=order, backend=backend)
    n_layers = len(sim.layer_names)
    if y is not None:
        _check_labels(np.asarray(y), x.shape[0], int(sim.plan.pops[-1].size))
    checkpoints = np.array(sorted(set(int(c) for c in (checkpoints or ()))), np.int64)
    if checkpoints.size and (checkpoints[0] < 1 or checkpoints[-1] > sim.timesteps):
        raise SimulationError(f"checkpoints must lie in 1..{sim.timesteps}, got {checkpoints.tolist()}")
    if sim.backend_name == "cuda":
        from .engine.cuda_batch import run_samples

        got = run_samples(sim, x[rows], checkpoints=checkpoints, batch=batch, progress=progress, sample_ids=ids)
        per_sample = {"spikes": got.spikes, "syn_ops": got.syn_ops, "updates": got.updates,
                      "analog_macs": got.analog_macs}
        per_step = {"spikes": got.spikes_per_step, "syn_ops": got.syn_ops_per_step,
                    "updates": got.updates_per_step}
        outputs, predictions, seconds = got.outputs, got.predictions, got.seconds
        at_checkpoint = got.checkpoint_predictions
        settings = dict(settings or {}, batch=got.batch)
    else:
        per_sample, per_step, outputs, predictions, seconds, at_checkpoint = _one_by_one(
            sim, x, rows, ids, checkpoints, progress, warm_up=simulator is None)
    labels = None if y is None else np.asarray(y, np.int64)[rows]
    ann_macs, ann_macs_textbook = layer_macs(sim.plan)
    synapses = layer_synapses(sim.plan)
    sources = [sorted({int(r[C_SRC]) for r in sim.plan.conn_i if r[C_DST] == p}) for p in range(n_layers)]
    info = {"layer_sources": sources, "timesteps": sim.timesteps, "mode": mode, "encoding": sim.plan.encoding, "seed": seed,
            "poisson_rate": poisson_rate, "decoding": sim.network.decoding, "order": order,
            "backend": sim.backend_name,
            "layer_synapses": [int(v) for v in synapses]}
    info.update(settings or {})
    return RunResult(layers=list(sim.layer_names), neurons=sim.neurons, timesteps=sim.timesteps,
                     predictions=predictions, labels=labels, outputs=np.asarray(outputs),
                     spikes=per_sample["spikes"], syn_ops=per_sample["syn_ops"],
                     updates=per_sample["updates"], analog_macs=per_sample["analog_macs"],
                     spikes_per_step=per_step["spikes"], syn_ops_per_step=per_step["syn_ops"],
                     updates_per_step=per_step["updates"], seconds=seconds, settings=info,
                     checkpoints=checkpoints, checkpoint_predictions=at_checkpoint,
                     ann_macs=ann_macs, ann_macs_textbook=ann_macs_textbook,
                     indices=np.asarray(ids, np.int64).copy())

def _one_by_one(sim, x, rows, ids, checkpoints, progress, warm_up):
    """Run the samples one after another on ``sim``: the per-sample and per-step counts,
    outputs, predictions, seconds and checkpoint predictions of :func:`_run_rows`."""
    n, n_layers = int(rows.size), len(sim.layer_names)
    per_sample = {k: np.zeros((n, n_layers), np.int64) for k in ("spikes", "syn_ops", "updates", "analog_macs")}
    per_step = {k: np.zeros((n_layers, sim.timesteps), np.int64) for k in ("spikes", "syn_ops", "updates")}
    outputs, predictions, seconds = [], np.zeros(n, np.int64), np.zeros(n, np.float64)
    at_checkpoint = np.zeros((n, checkpoints.size), np.int64)
    if warm_up:
        # Compile (or load) the kernels before the clock starts: seconds[] is simulation time only.
        sim.reset(x[rows[0]])
        sim.run(until=0.0)
    for j in range(n):
        start = time.perf_counter()
        sim.reset(x[rows[j]], sample_index=int(ids[j]))
        for k, steps in enumerate(checkpoints):
            sim.run(until=steps)
            at_checkpoint[j, k] = sim.prediction(at=steps - 1 if not sim.plan.continuous else steps)
        sim.run()
        seconds[j] = time.perf_counter() - start
        predictions[j] = sim.prediction()
        outputs.append(sim.output())
        totals = sim.per_layer()
        for k in per_sample:
            per_sample[k][j] = totals[k]
        per_step["spikes"] += sim.spikes_per_step
        per_step["syn_ops"] += sim.syn_ops
        per_step["updates"] += sim.updates
        if progress is not None:
            progress(1)
    return per_sample, per_step, np.array(outputs), predictions, seconds, at_checkpoint


def _check_labels(y: np.ndarray, n: int, classes: int) -> None:
    """Labels must be integers in 0..classes-1, one per sample: else accuracy is silently 0 %."""
    if y.ndim != 1 or y.shape[0] < n or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise DataError(f"labels must be one integer per sample (got shape {y.shape}, dtype {y.dtype})")
    bad = (y[:n] < 0) | (y[:n] >= classes)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"label {int(y[i])} of sample {i} is outside the network's {classes} classes "
                        f"(0..{classes - 1}); {int(bad.sum())} of {n} labels are")


_ARRAYS = {"neurons": 1, "predictions": 1, "outputs": 2, "spikes": 2, "syn_ops": 2, "updates": 2,
           "analog_macs": 2, "spikes_per_step": 2, "syn_ops_per_step": 2, "updates_per_step": 2,
           "seconds": 1, "ann_macs": 1, "ann_macs_textbook": 1}


def load_results(path) -> RunResult:
    """Read a results file written by :meth:`RunResult.save`; ResultsError names what is wrong.

    Every field is checked against the others (dtypes, shapes, counts that are
    finite and non-negative, neuron counts >= 1), so a corrupt file is refused
    here rather than printing ``inf`` rates or ``nan`` energies later. The file
    is opened by :func:`eventsnn.io.safe_h5.open_h5` (no external storage,
    links or virtual datasets; declared sizes within the memory limit).
    """
    import os

    from .io import json_safe
    from .io.safe_h5 import H5_ERRORS, open_h5

    path = os.fspath(path)
    try:
        with open_h5(path, ResultsError, "results file") as f:
            return _read_results(f, path, json_safe)
    except EventsnnError:
        raise
    except (*H5_ERRORS, RecursionError) as exc:
        raise ResultsError(f"{path}: damaged results file ({type(exc).__name__}: {exc})") from None


def _field(f, key, path, ndim, kind="i", required=True):
    """Dataset ``key`` as an array of ``ndim`` dimensions and dtype kind ``kind`` ('i' or 'f')."""
    if key not in f:
        if required:
            raise ResultsError(f"{path}: field '{key}' is missing")
        return None
    obj = f[key]
    if not isinstance(obj, h5py.Dataset) or obj.ndim != ndim:
        raise ResultsError(f"{path}: field '{key}' must be a {ndim}-D dataset")
    ok = obj.dtype.kind in ("iu" if kind == "i" else "fiu")
    if not ok:
        raise ResultsError(f"{path}: field '{key}' has dtype {obj.dtype}, expected "
                           f"{'integers' if kind == 'i' else 'numbers'}")
    arr = obj[()]
    if kind == "i":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ResultsError(f"{path}: field '{key}' holds values too large for int64")
        return arr.astype(np.int64)
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ResultsError(f"{path}: field '{key}' contains NaN or infinite values")
    return arr


def _read_results(f, path, json_safe) -> RunResult:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != RESULTS_FORMAT:
        raise ResultsError(f"{path}: not an eventsnn results file (format {fmt!r})")
    version = np.asarray(f.attrs.get("version", -1))
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != RESULTS_VERSION:
        raise ResultsError(f"{path}: results version {f.attrs.get('version')!r} is not supported "
                           f"(this eventsnn reads version {RESULTS_VERSION})")
    data = {}
    for key, ndim in _ARRAYS.items():
        data[key] = _field(f, key, path, ndim, "f" if key in ("outputs", "seconds") else "i")
    for key in ("layers", "settings"):
        if key not in f.attrs:
            raise ResultsError(f"{path}: field '{key}' is missing")
    layers = json_safe.loads(f.attrs["layers"], f"{path}: field 'layers'", ResultsError)
    settings = json_safe.loads(f.attrs["settings"], f"{path}: field 'settings'", ResultsError)
    if not isinstance(layers, list) or not layers or not all(isinstance(n, str) for n in layers):
        raise ResultsError(f"{path}: field 'layers' must be a non-empty list of layer names")
    if not isinstance(settings, dict):
        raise ResultsError(f"{path}: field 'settings' must be a JSON object")
    labels = _field(f, "labels", path, 1, required=False)
    checkpoints = _field(f, "checkpoints", path, 1, required=False)
    cp = _field(f, "checkpoint_predictions", path, 2, required=False)
    indices = _field(f, "indices", path, 1, required=False)
    timesteps = np.asarray(f.attrs.get("timesteps", 0))
    if timesteps.shape != () or timesteps.dtype.kind not in "iu" or int(timesteps) < 1:
        raise ResultsError(f"{path}: field 'timesteps' must be a positive integer")
    timesteps = int(timesteps)
    checkpoints = np.zeros(0, np.int64) if checkpoints is None else checkpoints
    cp = np.zeros((0, 0), np.int64) if cp is None else cp
    _check_consistent(path, layers, timesteps, data, labels, checkpoints, cp, settings)
    samples = data["predictions"].shape[0]
    if indices is not None and (indices.shape != (samples,) or (samples and indices.min() < 0)
                                or np.unique(indices).size != samples):
        raise ResultsError(f"{path}: field 'indices' must hold {samples} distinct non-negative sample indices")
    if cp.shape == (0, 0):
        cp = np.zeros((samples, 0), np.int64)
    return RunResult(layers=layers, timesteps=timesteps, labels=labels, settings=settings,
                     checkpoints=checkpoints, checkpoint_predictions=cp, indices=indices, **data)


def _check_consistent(path, layers, timesteps, data, labels, checkpoints, cp, settings) -> None:
    n_layers, samples = len(layers), data["predictions"].shape[0]
    want = {"neurons": (n_layers,), "ann_macs": (n_layers,), "ann_macs_textbook": (n_layers,),
            "predictions": (samples,), "seconds": (samples,)}
    for key in ("spikes", "syn_ops", "updates", "analog_macs"):
        want[key] = (samples, n_layers)
    for key in ("spikes_per_step", "syn_ops_per_step", "updates_per_step"):
        want[key] = (n_layers, timesteps)
    for key, shape in want.items():
        if data[key].shape != shape:
            raise ResultsError(f"{path}: field '{key}' has shape {data[key].shape}, expected {shape} "
                               f"({n_layers} layers, {samples} samples, {timesteps} steps)")
    if samples < 1:
        raise ResultsError(f"{path}: the file holds no samples")
    if data["outputs"].shape[0] != samples or data["outputs"].shape[1] < 1:
        raise ResultsError(f"{path}: field 'outputs' has shape {data['outputs'].shape}, expected ({samples}, K)")
    if np.any(data["neurons"] < 1) or np.any(data["neurons"] >= 1 << 31):
        raise ResultsError(f"{path}: field 'neurons': every layer has 1 to 2**31 - 1 neurons")
    for key in ("spikes", "syn_ops", "updates", "analog_macs", "spikes_per_step", "syn_ops_per_step",
                "updates_per_step", "ann_macs", "ann_macs_textbook"):
        # sums over samples, steps and layers must not wrap int64 (nor lose all float precision)
        if np.abs(data[key].astype(np.float64)).sum() >= 2.0 ** 62:
            raise ResultsError(f"{path}: field '{key}' holds implausibly large counts")
    for key in ("spikes", "syn_ops", "updates", "analog_macs", "spikes_per_step", "syn_ops_per_step",
                "updates_per_step", "ann_macs", "ann_macs_textbook"):
        if data[key].size and data[key].min() < 0:
            raise ResultsError(f"{path}: field '{key}' holds negative counts")
    if np.any(data["seconds"] < 0):
        raise ResultsError(f"{path}: field 'seconds' holds negative times")
    classes = data["outputs"].shape[1]
    if np.any((data["predictions"] < 0) | (data["predictions"] >= classes)):
        raise ResultsError(f"{path}: field 'predictions' holds classes outside 0..{classes - 1}")
    if labels is not None and labels.shape != (samples,):
        raise ResultsError(f"{path}: field 'labels' has shape {labels.shape}, expected ({samples},)")
    if checkpoints.size and (checkpoints.min() < 1 or checkpoints.max() > timesteps
                             or cp.shape != (samples, checkpoints.size)):
        raise ResultsError(f"{path}: fields 'checkpoints'/'checkpoint_predictions' do not match the run")
    for key in ("layer_sources", "layer_synapses"):
        value = settings.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != n_layers):
            raise ResultsError(f"{path}: field 'settings': '{key}' must be a list with one entry per layer")
    sources = settings.get("layer_sources")
    if sources is not None and not all(isinstance(s, list) and all(isinstance(j, int) and 0 <= j < n_layers
                                                                   for j in s) for s in sources):
        raise ResultsError(f"{path}: field 'settings': 'layer_sources' must list layer indices")
    synapses = settings.get("layer_synapses")
    if synapses is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                        and math.isfinite(v) and v >= 0 for v in synapses):
        raise ResultsError(f"{path}: field 'settings': 'layer_synapses' must be non-negative numbers")
