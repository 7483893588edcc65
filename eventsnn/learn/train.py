"""The BPTT training loop: loss, epochs, validation-based epoch selection, exact checkpoints.

Loss: softmax cross-entropy on the output, ``logits = out * scale``: the final
membrane potential of a non-spiking output layer divided by T (Lee et al. 2020
read ``U_L(T) / (V_th T)``), or the output spike counts (scale 1)::

    L = -mean_b log softmax(logits_b)[y_b]          dL/dlogits = (softmax - onehot) / B

A held-out split of the *training* data (``val_fraction``, drawn with the
seed) picks the saved epoch: the parameters of the epoch with the best
validation accuracy. The test set is never seen here.

Reproducibility: the split and the order of every epoch are functions of
``(seed, epoch)`` only, so a run resumed from the checkpoint of epoch e
(parameters, optimiser state, best-so-far and history, written atomically
after each epoch) continues bit for bit as if it had not stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DataError, EventsnnError
from ..io.atomic import atomic_path
from .bptt import Model, rate_code
from .optim import Optimizer, learning_rate

CHECKPOINT_FORMAT = "eventsnn-bptt-checkpoint"


@dataclass
class TrainConfig:
    timesteps: int = 8
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_size: int = 10
    gamma: float = 0.1
    surrogate: str = "fast_sigmoid"
    alpha: float | None = None
    val_fraction: float = 0.1
    seed: int = 0
    dropout: float = 0.0
    learn_leak: bool = False
    leak_init: float | None = None


def cross_entropy(logits, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    B = logits.shape[0]
    loss = float(-np.log(np.maximum(p[np.arange(B), y], 1e-30)).mean())
    g = p.copy()
    g[np.arange(B), y] -= 1.0
    return loss, g / B


def input_spikes(model, x, timesteps, key):
    """Rate-coded input spikes of a poisson network (None for direct input), seeded by ``key``."""
    if model.direct:
        return None
    return rate_code(x, timesteps, np.random.default_rng(key))


def dropout_masks(model, batch, config, epoch, step):
    """Inverted dropout on every hidden population's spikes, one mask per sample for all
    steps (Lee et al. 2020), drawn from (seed, epoch, step): resumes reproduce it."""
    if not config.dropout:
        return None
    rng = np.random.default_rng([config.seed, epoch, step, 0xD0])
    keep = np.float32(1.0 - config.dropout)
    return {p.name: (rng.random((batch, p.n)) < keep).astype(np.float32) / keep for p in model.pops[:-1]}


def logit_scale(model: Model, timesteps: int) -> float:
    return 1.0 / timesteps if not model.pops[-1].spiking else 1.0


def split(n: int, val_fraction: float, seed: int):
    """(train indices, validation indices) of n samples."""
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n - n_val < 1:
        raise DataError(f"validation fraction {val_fraction} leaves no training samples out of {n}")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def evaluate(model, x, y, timesteps, batch_size=64, params=None, seed=0):
    """(accuracy, mean loss, spikes per sample) over a data set."""
    correct, loss, spikes = 0, 0.0, 0.0
    scale = logit_scale(model, timesteps)
    for i in range(0, len(x), batch_size):
        trace = model.forward(x[i:i + batch_size], timesteps, params,
                              input_spikes=input_spikes(model, x[i:i + batch_size], timesteps, [seed, 0xE7A1, i]))
        logits = trace.out.astype(np.float64) * scale
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
        loss += cross_entropy(logits, y[i:i + batch_size])[0] * len(logits)
        spikes += sum(float(s.sum()) for s in trace.S.values())
    n = max(len(x), 1)
    return correct / n, loss / n, spikes / n


def _save_checkpoint(path, model, best, opt, meta):
    arrays = {"param:" + k: v for k, v in model.params.items()}
    arrays.update({"best:" + k: v for k, v in best.items()})
    arrays.update({"opt:" + k: v for k, v in opt.state.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _load_checkpoint(path, model, opt, config):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise EventsnnError(f"{path}: not a train-bptt checkpoint")
            params = {k[6:]: z[k].copy() for k in z.files if k.startswith("param:")}
            best = {k[5:]: z[k].copy() for k in z.files if k.startswith("best:")}
            state = {k[4:]: z[k].copy() for k in z.files if k.startswith("opt:")}
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, EventsnnError):
            raise
        raise EventsnnError(f"{path}: cannot read the checkpoint ({exc})") from None
    if set(params) != set(model.params) or any(params[k].shape != model.params[k].shape for k in params):
        raise EventsnnError(f"{path}: the checkpoint's parameters do not fit this network")
    mine = asdict(config)
    theirs = meta["config"]
    changed = [k for k in mine if k != "epochs" and mine[k] != theirs.get(k)]
    if changed:
        raise EventsnnError(f"{path}: resume needs the same settings; changed: {', '.join(changed)}")
    model.params.update(params)
    opt.state = state
    return best, meta


def train(model: Model, x, y, config: TrainConfig, checkpoint=None, resume=False, progress=None, log=None):
    """Train ``model`` in place. Returns a summary dict with the history and the best
    epoch's parameters under ``best_params`` (what should be saved).

    ``progress(epoch, total_batches)`` may return a context manager with ``update(n,
    text)``; ``log(line)`` receives one line per epoch."""
    if len(x) != len(y):
        raise DataError(f"{len(x)} images but {len(y)} labels")
    tr, va = split(len(x), config.val_fraction, config.seed)
    opt = Optimizer(config.optimizer, config.momentum, config.weight_decay)
    best = {k: v.copy() for k, v in model.params.items()}
    meta = {"format": CHECKPOINT_FORMAT, "config": asdict(config), "epoch": -1, "best_epoch": -1,
            "best_val": -1.0, "history": []}
    if resume:
        if not checkpoint or not os.path.exists(checkpoint):
            raise EventsnnError(f"--resume: no checkpoint at {checkpoint}")
        best, meta = _load_checkpoint(checkpoint, model, opt, config)
        meta["config"]["epochs"] = config.epochs
    scale = logit_scale(model, config.timesteps)
    T = config.timesteps
    for epoch in range(meta["epoch"] + 1, config.epochs):
        lr = learning_rate(config.lr, epoch, config.epochs, config.schedule, config.step_size, config.gamma)
        order = tr[np.random.default_rng([config.seed, epoch]).permutation(len(tr))]
        nb = (len(order) + config.batch_size - 1) // config.batch_size
        t0 = time.perf_counter()
        seen = correct = 0
        loss_sum = spikes = nonzero = 0.0
        bar = progress(epoch, nb) if progress else None
        with (bar if bar is not None else _Null()) as p:
            for i in range(nb):
                idx = order[i * config.batch_size:(i + 1) * config.batch_size]
                trace = model.forward(x[idx], T, masks=dropout_masks(model, len(idx), config, epoch, i),
                                      input_spikes=input_spikes(model, x[idx], T, [config.seed, epoch, i, 0x1A]))
                logits = trace.out.astype(np.float64) * scale
                loss, g = cross_entropy(logits, y[idx])
                grads, stats = model.backward(trace, g * scale, config.surrogate, config.alpha)
                opt.step(model.params, grads, lr)
                seen += len(idx)
                correct += int((logits.argmax(axis=1) == y[idx]).sum())
                loss_sum += loss * len(idx)
                spikes += sum(float(s.sum()) for s in trace.S.values())
                nonzero += stats["surrogate_nonzero"] * len(idx)
                if p is not None:
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    p.update(1, f"loss {loss_sum / seen:.4f} acc {100 * correct / seen:.1f} % "
                                f"spikes/sample {spikes / seen:.0f} {rate:.0f} samples/s")
        seconds = time.perf_counter() - t0
        val_acc, val_loss, val_spikes = evaluate(model, x[va], y[va], T) if len(va) else (float("nan"),) * 3
        row = {"epoch": epoch, "lr": lr, "loss": loss_sum / seen, "train_acc": correct / seen,
               "spikes_per_sample": spikes / seen, "val_acc": val_acc, "val_loss": val_loss,
               "val_spikes_per_sample": val_spikes, "seconds": seconds, "samples_per_s": seen / seconds,
               "surrogate_nonzero": nonzero / seen}
        meta["history"].append(row)
        meta["epoch"] = epoch
        if not len(va) or val_acc > meta["best_val"]:
            meta["best_val"], meta["best_epoch"] = val_acc if len(va) else -1.0, epoch
            best = {k: v.copy() for k, v in model.params.items()}
        if log:
            log(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f} train acc {100 * row['train_acc']:.2f} % "
                f"val acc {100 * val_acc:.2f} % spikes/sample {row['spikes_per_sample']:.0f} "
                f"{row['samples_per_s']:.1f} samples/s")
        if checkpoint:
            _save_checkpoint(checkpoint, model, best, opt, meta)
    return {"history": meta["history"], "best_epoch": meta["best_epoch"], "best_val_acc": meta["best_val"],
            "best_params": best, "train_samples": int(len(tr)), "val_samples": int(len(va))}


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def run_training(net_path, data_path, output, config: TrainConfig, samples=None, hybrid=False, resume=False,
                 check_samples=16, progress=True, log=None) -> dict:
    """Load, train, save the best epoch's network to ``output`` (atomically), and re-run
    ``check_samples`` validation samples in the event engine to check spike identity.
    The checkpoint is ``output + '.ckpt.npz'``."""
    from ..datasets import load_dataset
    from ..io import load_network, save_network
    from .bptt import check_engine_identity

    net = load_network(net_path)
    model = Model(net, add_bias=True, snap_thresholds=True, learn_leak=config.learn_leak,
                  leak_init=config.leak_init)
    data = load_dataset(data_path, limit=samples)
    if data.y is None:
        raise DataError(f"{data_path}: training needs labels")
    want = tuple(int(d) for d in net.input_shape)
    x = data.x
    if int(np.prod(x.shape[1:])) != int(np.prod(want)) or (len(want) == 3 and x.shape[1:] != want):
        raise DataError(f"{data_path}: images have shape {x.shape[1:]}, the network expects {want}")
    x = x.reshape((len(x),) + want)
    n_out = model.pops[-1].n
    if data.y.min() < 0 or data.y.max() >= n_out:
        raise DataError(f"{data_path}: labels must be in 0..{n_out - 1} for this network's {n_out} outputs")

    if progress:
        from ..progress import Progress

        class _Bar(Progress):
            def update(self, n=1, text=None):
                if text:
                    self.label = f"{self._base} {text}"
                super().update(n)

        def bar(epoch, total):
            b = _Bar(total, notice=False)
            b._base = f"Epoch {epoch + 1}/{config.epochs}"
            b.label = b._base
            return b
    else:
        bar = None
    result = train(model, x, data.y, config, checkpoint=os.fspath(output) + ".ckpt.npz", resume=resume,
                   progress=bar, log=log)
    trained = model.to_network(result["best_params"])
    trained.provenance["bptt"] = {"config": asdict(config), "data": os.path.abspath(data_path),
                                  "hybrid_from": os.path.abspath(net_path) if hybrid else None,
                                  "best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"]}
    _, va = split(len(x), config.val_fraction, config.seed)
    check = va[:check_samples] if len(va) else np.arange(min(check_samples, len(x)))
    identity = {"samples": 0, "differing_spikes": 0, "samples_differing": []}
    if len(check):
        trace = model.forward(x[check], config.timesteps, result["best_params"],
                              input_spikes=input_spikes(model, x[check], config.timesteps, [config.seed, 0xC4EC]))
        identity = check_engine_identity(trained, trace, config.timesteps)
    save_network(trained, output)
    return {"output": os.fspath(output), "history": result["history"], "best_epoch": result["best_epoch"],
            "best_val_acc": result["best_val_acc"], "train_samples": result["train_samples"],
            "val_samples": result["val_samples"], "engine_identity": identity,
            "exactness_bound": model.exactness_bound(result["best_params"])}
