"""Optimisers and learning-rate schedules for the BPTT trainer (numpy, in place).

- SGD with momentum: ``m <- mu m + g;  w <- w - lr m`` (PyTorch's convention).
- Adam (Kingma & Ba 2015): ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
  w <- w - lr m_hat / (sqrt(v_hat) + eps)``.
- Weight decay: L2, ``g <- g + wd w`` before either update (biases included;
  parameters whose names end in one of ``no_decay`` are left out: a learnable
  leak's logit would otherwise be pulled towards leak 1/2).
- Schedules over epochs: ``cosine``: ``lr_e = lr/2 (1 + cos(pi e / E))``
  (Loshchilov & Hutter 2017, no restarts); ``step``: ``lr_e = lr gamma^floor(e / step)``;
  ``constant``.

State is a dict of named float arrays, so a checkpoint stores and restores it exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EventsnnError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")


def learning_rate(base: float, epoch: int, epochs: int, schedule: str, step_size: int = 10,
                  gamma: float = 0.1) -> float:
    if schedule == "cosine":
        return 0.5 * base * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))
    if schedule == "step":
        return base * gamma ** (epoch // max(step_size, 1))
    if schedule == "constant":
        return base
    raise EventsnnError(f"unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")


class Optimizer:
    def __init__(self, kind="adam", momentum=0.9, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8,
                 no_decay=("/leak_logit",)):
        if kind not in OPTIMIZERS:
            raise EventsnnError(f"unknown optimizer {kind!r} (known: {', '.join(OPTIMIZERS)})")
        self.kind, self.momentum, self.weight_decay = kind, float(momentum), float(weight_decay)
        self.betas, self.eps = betas, float(eps)
        self.no_decay = tuple(no_decay)
        self.state = {"step": np.zeros(1, np.int64)}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        self.state["step"][0] += 1
        k = int(self.state["step"][0])
        for name, w in params.items():
            g = grads[name].astype(np.float32)
            if self.weight_decay and not name.endswith(self.no_decay):
                g = g + np.float32(self.weight_decay) * w
            m = self.state.setdefault("m:" + name, np.zeros_like(w))
            if self.kind == "sgd":
                m *= np.float32(self.momentum)
                m += g
                w -= np.float32(lr) * m
                continue
            b1, b2 = self.betas
            v = self.state.setdefault("v:" + name, np.zeros_like(w))
            m *= np.float32(b1)
            m += np.float32(1 - b1) * g
            v *= np.float32(b2)
            v += np.float32(1 - b2) * g * g
            m_hat = m / np.float32(1 - b1 ** k)
            v_hat = v / np.float32(1 - b2 ** k)
            w -= np.float32(lr) * m_hat / (np.sqrt(v_hat) + np.float32(self.eps))
