"""Layer-by-layer STDP training over a data set, with checkpoints that resume exactly.

For each layer to learn, in order (lower layers already learned stay frozen):
the network up to that layer runs every training sample in the event engine
with a :class:`~.stdp.Plasticity` plug on that layer's incoming weights
(k-WTA competition optional) and per-map adaptive thresholds
(:class:`~.competition.AdaptiveThreshold`) updated after each sample.

Everything a run depends on is a pure function of the settings and the
counter of samples seen: sample ``s`` of layer ``l`` is image
``perm(seed, l, epoch)[s mod N]``, rate-coded with ``sample_index = s``, and
the stochastic rule's stream is (key(seed, l), counter). A checkpoint is a
network file whose provenance ``stdp`` entry holds the settings and that
counter state, so ``resume`` continues bit-identically to a run that never
stopped; the finished file records the rule and its parameters the same way.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..engine.layout import C_CO, C_WOFF
from ..engine.simulator import Simulator
from ..errors import DataError, NetworkError, SimulationError
from ..network import Network
from .competition import AdaptiveThreshold
from .stdp import Plasticity, STDPRule

FORMAT = "eventsnn.stdp/1"


@dataclass
class TrainSettings:
    """What defines a training run (recorded in every checkpoint and in the result)."""

    layers: list
    rule: STDPRule
    samples: int  # training samples per layer
    timesteps: int = 30
    kwta: tuple | None = (1, 2)  # (k, inhibition radius) or None: no competition
    theta_plus: float = 0.05  # adaptive threshold increment per spike per position (0: none)
    tau_theta: float = math.inf  # its decay time constant, in time steps
    seed: int = 0
    poisson_rate: float = 1.0
    init: str = "keep"  # keep the network's weights, or "random": seeded, within the rule's range
    normalize: float | None = None  # after each sample, scale each map's incoming weights to this sum
    mode: str = "discrete"  # or "continuous" (timesteps is then the duration per sample)
    once: bool = False  # each map learns at its first spike of a sample only (stdp.py, "once per map")

    def __post_init__(self):
        if not self.layers:
            raise SimulationError("train-stdp: no layer to learn")
        if isinstance(self.samples, bool) or int(self.samples) < 1:
            raise SimulationError(f"train-stdp: samples must be >= 1, got {self.samples!r}")
        if int(self.timesteps) < 1:
            raise SimulationError(f"train-stdp: timesteps must be >= 1, got {self.timesteps!r}")
        if self.init not in ("keep", "random"):
            raise SimulationError(f"train-stdp: init must be 'keep' or 'random', got {self.init!r}")
        if self.kwta is not None and (int(self.kwta[0]) < 1 or int(self.kwta[1]) < 0):
            raise SimulationError(f"train-stdp: k-WTA needs k >= 1 and radius >= 0, got {self.kwta!r}")
        if self.mode not in ("discrete", "continuous"):
            raise SimulationError(f"train-stdp: mode must be 'discrete' or 'continuous', got {self.mode!r}")
        if self.normalize is not None and not self.normalize > 0:
            raise SimulationError(f"train-stdp: normalize must be > 0, got {self.normalize!r}")
        if not (self.theta_plus >= 0 and self.tau_theta > 0):
            raise SimulationError("train-stdp: theta_plus must be >= 0 and tau_theta > 0")

    def as_dict(self) -> dict:
        return {"layers": list(self.layers), "rule": self.rule.as_dict(), "samples": int(self.samples),
                "timesteps": int(self.timesteps), "kwta": None if self.kwta is None else list(map(int, self.kwta)),
                "theta_plus": float(self.theta_plus), "tau_theta": _num(self.tau_theta), "seed": int(self.seed),
                "poisson_rate": float(self.poisson_rate), "init": self.init,
                "normalize": None if self.normalize is None else float(self.normalize), "mode": self.mode,
                "once": bool(self.once)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSettings":
        return cls(layers=list(d["layers"]), rule=STDPRule(**d["rule"]), samples=int(d["samples"]),
                   timesteps=int(d["timesteps"]), kwta=None if d["kwta"] is None else tuple(d["kwta"]),
                   theta_plus=float(d["theta_plus"]), tau_theta=float(d["tau_theta"]), seed=int(d["seed"]),
                   poisson_rate=float(d["poisson_rate"]), init=d["init"], normalize=d.get("normalize"),
                   mode=d.get("mode", "discrete"), once=bool(d.get("once", False)))


def _num(v: float):
    return v if math.isfinite(v) else str(v)  # JSON has no inf


@dataclass
class Progress:
    """Where a run stands: layer ``layer`` (index into settings.layers) has seen ``sample`` samples."""

    layer: int = 0
    sample: int = 0
    rng_counter: int = 0
    theta: dict = field(default_factory=dict)  # layer name -> per-map adaptive threshold (list)
    base: dict = field(default_factory=dict)  # layer name -> its threshold before training (list/float)
    initialised: bool = False  # the "random" init has been applied


def _stdp_record(settings: TrainSettings, progress: Progress, finished: bool) -> dict:
    return {"format": FORMAT, "settings": settings.as_dict(), "finished": finished,
            "progress": {"layer": progress.layer, "sample": progress.sample, "rng_counter": str(progress.rng_counter),
                         "theta": progress.theta, "base": progress.base, "initialised": progress.initialised}}


def read_checkpoint(net: Network, source: str = "checkpoint") -> tuple:
    """(settings, progress, finished) recorded in a network trained (or being trained) by STDP."""
    rec = net.provenance.get("stdp")
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise NetworkError(f"{source}: no STDP training record in this network file (was it written by train-stdp?)")
    try:
        p = rec["progress"]
        progress = Progress(layer=int(p["layer"]), sample=int(p["sample"]), rng_counter=int(p["rng_counter"]),
                            theta={k: list(map(float, v)) for k, v in p["theta"].items()}, base=dict(p["base"]),
                            initialised=bool(p["initialised"]))
        return TrainSettings.from_dict(rec["settings"]), progress, bool(rec["finished"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NetworkError(f"{source}: damaged STDP training record: {exc}") from None


def _prefix(net: Network, layer: str) -> Network:
    """The network up to and including ``layer`` (the layers above it do not take part)."""
    names = [l.name for l in net.layers]
    if layer not in names:
        raise NetworkError(f"no layer named {layer!r} to learn; layers: {names}")
    sub = copy.copy(net)
    sub.layers = [copy.deepcopy(l) for l in net.layers[: names.index(layer) + 1]]
    sub.encoding = "poisson"
    sub.decoding = "spikes"
    sub.provenance = {}
    return sub


def _random_weights(layer, rule: STDPRule, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7919, index])
    if rule.stochastic:
        return rng.choice(rule.levels_values(), size=layer.weight.shape).astype(np.float32)
    return rng.uniform(rule.w_min, rule.w_max, size=layer.weight.shape).astype(np.float32)


def _stream_key(seed: int, index: int) -> int:
    return (int(seed) * 0x9E3779B1 + 0x632BE5AB * (index + 1)) & 0xFFFFFFFFFFFFFFFF


def sample_order(seed: int, layer_index: int, sample: int, n: int) -> int:
    """The data index of training sample ``sample`` of layer ``layer_index`` (one seeded
    permutation of the data set per epoch)."""
    epoch, k = divmod(int(sample), n)
    return int(_permutation(int(seed), int(layer_index), epoch, int(n))[k])


@functools.lru_cache(maxsize=2)
def _permutation(seed: int, layer_index: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed & 0xFFFFFFFF, 104729, layer_index, epoch]).permutation(n)


def train_stdp(net: Network, x: np.ndarray, settings: TrainSettings | None = None, *,
               resume: bool = False, checkpoint=None, checkpoint_every: int = 0, progress=None,
               stop_after: int | None = None) -> Network:
    """Train ``settings.layers`` of ``net`` with STDP on images ``x`` (N, H, W, C); return the
    learned network (its provenance records the settings).

    ``resume``: ``net`` is a checkpoint; its recorded settings and position are used
    (``settings`` must be None or equal). ``checkpoint(net)`` is called with the network
    so far every ``checkpoint_every`` samples and at each layer's end (a writer, e.g.
    an atomic save). ``progress(info)`` gets a dict after every sample. ``stop_after``
    stops after that many samples in this call (the result is then a checkpoint).
    """
    if resume:
        recorded, state, finished = read_checkpoint(net)
        if settings is not None and settings.as_dict() != recorded.as_dict():
            raise SimulationError("resume: the given settings differ from those recorded in the checkpoint")
        settings = recorded
        if finished:
            return net
    else:
        if settings is None:
            raise SimulationError("train_stdp: settings are required unless resuming")
        state = Progress()
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[0] < 1:
        raise DataError(f"train-stdp: expected images (N, H, W, C), got shape {x.shape}")
    if x.min() < 0.0 or x.max() > 1.0:
        raise DataError("train-stdp: rate coding needs pixel values in [0, 1]")
    net = copy.deepcopy(net)
    for name in settings.layers:
        layer = net.layer(name) if name in [l.name for l in net.layers] else None
        if layer is None or layer.kind not in ("conv2d", "dense") or layer.neuron is None:
            raise NetworkError(f"layer {name!r}: STDP learns conv2d or dense layers with neurons; "
                               f"layers: {[l.name for l in net.layers]}")
    if settings.init == "random" and not state.initialised:
        for i, name in enumerate(settings.layers):
            net.layer(name).weight = _random_weights(net.layer(name), settings.rule, settings.seed, i)
        state.initialised = True
    done_here = 0
    n = x.shape[0]
    while state.layer < len(settings.layers):
        li, name = state.layer, settings.layers[state.layer]
        sub = _prefix(net, name)
        sim = Simulator(sub, timesteps=settings.timesteps, mode=settings.mode, seed=settings.seed,
                        poisson_rate=settings.poisson_rate, order="time")
        plug = Plasticity.for_simulator(sim, {name: settings.rule},
                                        kwta=None if settings.kwta is None else {name: settings.kwta},
                                        seed=_stream_key(settings.seed, li), once=(name,) if settings.once else ())
        plug.rng[1] = np.uint64(state.rng_counter)
        sim.plug = plug
        p = sim.layer_index(name)
        sl = sim.plan.pop_slice(p)
        shape = sim.plan.pops[p].shape
        if name not in state.base:
            thr = np.asarray(sub.layer(name).neuron.threshold, np.float32)
            state.base[name] = float(thr) if thr.ndim == 0 else thr.tolist()
            state.theta[name] = [0.0] * shape[-1]
        base = np.broadcast_to(np.asarray(state.base[name], np.float64), shape)
        adapt = AdaptiveThreshold(base, shape, settings.theta_plus, settings.tau_theta, np.array(state.theta[name]))
        thr_compiled = sim.params.thr.copy()
        thr_all = thr_compiled.copy()
        t0 = time.perf_counter()
        first = state.sample
        while state.sample < settings.samples:
            if stop_after is not None and done_here >= stop_after:
                return _finish(net, sim, name, settings, state, adapt, finished=False, compiled_thr=thr_compiled)
            thr_all[sl] = adapt.thresholds()
            plug.begin_sample(sim.params, thr_all)
            before = plug.stats.copy()
            sim.reset(x[sample_order(settings.seed, li, state.sample, n)], sample_index=state.sample)
            sim.run()
            counts = sim.spike_counts(name)
            adapt.update(counts, float(settings.timesteps))
            if settings.normalize is not None:
                normalize_incoming(sim, plug, p, settings.normalize)
            state.sample += 1
            state.rng_counter = int(plug.rng[1])
            done_here += 1
            if progress is not None:
                elapsed = time.perf_counter() - t0
                delta = plug.stats - before
                progress({"layer": name, "layer_index": li, "sample": state.sample, "samples": settings.samples,
                          "samples_per_s": (state.sample - first) / elapsed if elapsed > 0 else float("nan"),
                          "rate": float(counts.sum()) / (counts.size * settings.timesteps),
                          "weight_change": float(delta[0]) if not settings.rule.stochastic
                          else float(delta[2] + delta[3])})
            if checkpoint is not None and checkpoint_every and state.sample % checkpoint_every == 0 \
                    and state.sample < settings.samples:
                checkpoint(_finish(net, sim, name, settings, state, adapt, finished=False, compiled_thr=thr_compiled))
        net = _finish(net, sim, name, settings, state, adapt, finished=False, compiled_thr=thr_compiled)
        state.layer += 1
        state.sample = 0
        state.rng_counter = 0
        net.provenance["stdp"] = _stdp_record(settings, state, state.layer == len(settings.layers))
        if checkpoint is not None and state.layer < len(settings.layers):
            checkpoint(net)
    return net


def normalize_incoming(sim, plug, pop, total):
    """Scale each output map's incoming weights (its kernel, or a dense column) to sum to
    ``total`` (the weight normalisation of Diehl & Cook 2015, per map for shared kernels)."""
    w = sim.params.weights
    for i in range(plug.in_ptr[pop], plug.in_ptr[pop + 1]):
        row = sim.plan.conn_i[plug.in_conn[i]]
        size = sim.plan._conns[plug.in_conn[i]].weight.size
        block = w[row[C_WOFF]: row[C_WOFF] + size].reshape(-1, int(row[C_CO]))  # rows: (C_in, kh, kw) or N_in
        sums = block.sum(axis=0, dtype=np.float64)
        block *= np.where(sums > 0, total / np.where(sums > 0, sums, 1.0), 1.0).astype(np.float32)


def _finish(net, sim, name, settings, state, adapt, finished, compiled_thr):
    """``net`` with the learned weights of ``name`` so far, its adapted thresholds and the record."""
    out = copy.deepcopy(net)
    sim.params.thr[:] = compiled_thr  # shared per map again (k-WTA silences single neurons)
    learned = sim.to_network().layer(name)
    layer = out.layer(name)
    layer.weight = learned.weight
    state.theta[name] = [float(v) for v in adapt.theta]
    thr = np.asarray(state.base[name], np.float64) + adapt.theta  # per map
    layer.neuron.threshold = thr.astype(np.float32) if np.any(adapt.theta) or np.ndim(state.base[name]) \
        else np.float32(state.base[name])
    out.provenance = dict(out.provenance)
    out.provenance["stdp"] = _stdp_record(settings, state, finished)
    return out


def describe(net: Network) -> str:
    """One line: what the STDP record of ``net`` says."""
    settings, progress, finished = read_checkpoint(net)
    return json.dumps({"finished": finished, "layer": progress.layer, "sample": progress.sample,
                       **settings.as_dict()})
