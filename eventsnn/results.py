"""Run a network over a data set and keep every count: per sample, per layer, per step.

``RunResult.save`` writes HDF5 (format ``eventsnn.results`` version 1) through a
temporary file renamed into place:

    /            attrs: format, version, settings (JSON), layers (JSON list)
    neurons      int64[L]            neurons per layer (L: input + spiking layers)
    predictions  int64[S]; labels int64[S] (if known); outputs float64[S, K]
    spikes, syn_ops, updates, analog_macs     int64[S, L]   per sample and layer
    spikes_per_step, syn_ops_per_step, updates_per_step
                                      int64[L, T]   summed over samples
    seconds      float64[S]          wall time of each sample
    ann_macs, ann_macs_textbook  int64[L]  MACs of one ANN pass per layer (see opcount)
    checkpoints  int64[K]; checkpoint_predictions int64[S, K]  (--sweep-timesteps)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from .engine.layout import C_DST, C_SRC
from .engine.simulator import Simulator
from .io.atomic import atomic_path
from .errors import ResultsError, SimulationError
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

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = RESULTS_FORMAT
                f.attrs["version"] = RESULTS_VERSION
                f.attrs["settings"] = json.dumps(self.settings)
                f.attrs["layers"] = json.dumps(self.layers)
                f.attrs["timesteps"] = self.timesteps
                for key in ("neurons", "predictions", "outputs", "spikes", "syn_ops", "updates",
                            "analog_macs", "spikes_per_step", "syn_ops_per_step",
                            "updates_per_step", "seconds", "checkpoints", "checkpoint_predictions",
                            "ann_macs", "ann_macs_textbook"):
                    f.create_dataset(key, data=getattr(self, key))
                if self.labels is not None:
                    f.create_dataset("labels", data=self.labels)


def run_dataset(network, x, y=None, timesteps: int = 100, encoding: str | None = None,
                mode: str = "discrete", seed: int = 0, poisson_rate: float = 1.0,
                progress=None, settings: dict | None = None, checkpoints=None, order: str = "auto",
                backend: str = "cpu") -> RunResult:
    """Simulate every sample of ``x`` (N, H, W, C); ``progress(n)`` is called after each.

    ``checkpoints`` (timesteps <= ``timesteps``) also records each sample's
    prediction after that many steps, from the same simulation. ``order`` is
    the Simulator's event order; ``"auto"`` takes ``"layer"`` in discrete time
    (same results, faster on deep nets) and ``"time"`` in continuous time.
    ``backend`` is the Simulator's (``"cpu"``, ``"cuda"`` or ``"auto"``).
    """
    if order == "auto":
        order = "layer" if mode == "discrete" else "time"
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SimulationError("no samples to run")
    sim = Simulator(network, timesteps=timesteps, mode=mode, encoding=encoding, seed=seed,
                    poisson_rate=poisson_rate, order=order, backend=backend)
    n, n_layers = x.shape[0], len(sim.layer_names)
    per_sample = {k: np.zeros((n, n_layers), np.int64) for k in ("spikes", "syn_ops", "updates", "analog_macs")}
    per_step = {k: np.zeros((n_layers, sim.timesteps), np.int64) for k in ("spikes", "syn_ops", "updates")}
    outputs, predictions, seconds = [], np.zeros(n, np.int64), np.zeros(n, np.float64)
    checkpoints = np.array(sorted(set(int(c) for c in (checkpoints or ()))), np.int64)
    if checkpoints.size and (checkpoints[0] < 1 or checkpoints[-1] > sim.timesteps):
        raise SimulationError(f"checkpoints must lie in 1..{sim.timesteps}, got {checkpoints.tolist()}")
    at_checkpoint = np.zeros((n, checkpoints.size), np.int64)
    # Compile (or load) the kernels before the clock starts: seconds[] is simulation time only.
    sim.reset(x[0])
    sim.run(until=0.0)
    for i in range(n):
        start = time.perf_counter()
        sim.reset(x[i], sample_index=i)
        for k, steps in enumerate(checkpoints):
            sim.run(until=steps)
            at_checkpoint[i, k] = sim.prediction(at=steps - 1 if not sim.plan.continuous else steps)
        sim.run()
        seconds[i] = time.perf_counter() - start
        predictions[i] = sim.prediction()
        outputs.append(sim.output())
        totals = sim.totals()
        for k in per_sample:
            per_sample[k][i] = totals[k]
        per_step["spikes"] += sim.spikes_per_step
        per_step["syn_ops"] += sim.syn_ops
        per_step["updates"] += sim.updates
        if progress is not None:
            progress(1)
    labels = None if y is None else np.asarray(y, np.int64)[:n]
    ann_macs, ann_macs_textbook = layer_macs(sim.plan)
    synapses = layer_synapses(sim.plan)
    sources = [sorted({int(r[C_SRC]) for r in sim.plan.conn_i if r[C_DST] == p}) for p in range(n_layers)]
    info = {"layer_sources": sources, "timesteps": sim.timesteps, "mode": mode, "encoding": sim.plan.encoding, "seed": seed,
            "poisson_rate": poisson_rate, "decoding": sim.network.decoding, "order": order,
            "backend": sim.backend_name,
            "layer_synapses": [int(v) for v in synapses]}
    info.update(settings or {})
    return RunResult(layers=list(sim.layer_names), neurons=sim.neurons, timesteps=sim.timesteps,
                     predictions=predictions, labels=labels, outputs=np.array(outputs),
                     spikes=per_sample["spikes"], syn_ops=per_sample["syn_ops"],
                     updates=per_sample["updates"], analog_macs=per_sample["analog_macs"],
                     spikes_per_step=per_step["spikes"], syn_ops_per_step=per_step["syn_ops"],
                     updates_per_step=per_step["updates"], seconds=seconds, settings=info,
                     checkpoints=checkpoints, checkpoint_predictions=at_checkpoint,
                     ann_macs=ann_macs, ann_macs_textbook=ann_macs_textbook)


_ARRAYS = {"neurons": 1, "predictions": 1, "outputs": 2, "spikes": 2, "syn_ops": 2, "updates": 2,
           "analog_macs": 2, "spikes_per_step": 2, "syn_ops_per_step": 2, "updates_per_step": 2,
           "seconds": 1, "ann_macs": 1, "ann_macs_textbook": 1}


def load_results(path) -> RunResult:
    """Read a results file written by :meth:`RunResult.save`; ValueError names what is wrong."""
    import os
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ResultsError(f"{path}: no such results file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ResultsError(f"{path}: not a readable HDF5 file: {exc}") from None
    with f:
        if f.attrs.get("format") != RESULTS_FORMAT:
            raise ResultsError(f"{path}: not an eventsnn results file (format {f.attrs.get('format')!r})")
        if int(f.attrs.get("version", -1)) != RESULTS_VERSION:
            raise ResultsError(f"{path}: results version {f.attrs.get('version')} is not supported")
        data = {}
        for key, ndim in _ARRAYS.items():
            if key not in f or f[key].ndim != ndim:
                raise ResultsError(f"{path}: field '{key}' is missing or has the wrong shape")
            data[key] = f[key][()]
        try:
            layers = json.loads(f.attrs["layers"])
            settings = json.loads(f.attrs["settings"])
        except (KeyError, json.JSONDecodeError):
            raise ResultsError(f"{path}: field 'layers' or 'settings' is missing or not JSON") from None
        labels = f["labels"][()] if "labels" in f else None
        checkpoints = f["checkpoints"][()] if "checkpoints" in f else np.zeros(0, np.int64)
        cp = f["checkpoint_predictions"][()] if "checkpoint_predictions" in f else np.zeros((0, 0), np.int64)
        timesteps = int(f.attrs.get("timesteps", 0))
    n_layers = len(layers)
    if data["neurons"].shape != (n_layers,) or data["syn_ops"].shape[1:] != (n_layers,) or timesteps < 1:
        raise ResultsError(f"{path}: inconsistent layer counts")
    return RunResult(layers=layers, timesteps=timesteps, labels=labels, settings=settings,
                     checkpoints=checkpoints, checkpoint_predictions=cp, **data)
