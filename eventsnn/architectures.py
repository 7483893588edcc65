"""Standard network topologies with random weights, for speed and scaling studies.

:func:`vgg16_ann` builds the VGG16 topology (Simonyan & Zisserman 2015,
configuration D) as an :class:`~eventsnn.ann.AnnGraph` with random He-normal
weights, for any input size and channel width; :func:`vgg16` converts it into
a spiking :class:`~eventsnn.network.Network` with :func:`eventsnn.convert`, so
its thresholds come from real data-based normalisation and its spike rates are
those of a converted net, not of hand-picked thresholds.

Layout (``width`` scales every channel count; ``c = round(width * n)``)::

    block 1: conv3x3(c64)  conv3x3(c64)              pool2
    block 2: conv3x3(c128) conv3x3(c128)             pool2
    block 3: conv3x3(c256) conv3x3(c256) conv3x3(c256) pool2
    block 4: conv3x3(c512) conv3x3(c512) conv3x3(c512) pool2
    block 5: conv3x3(c512) conv3x3(c512) conv3x3(c512) pool2
    flatten, dense(d) ReLU, dense(d) ReLU, dense(classes)

every conv with stride 1, padding 1 and a ReLU; pools 2x2 with stride 2
(``avgpool2d``, as the conversion literature uses, or ``maxpool2d``). So the
input's height and width must be at least 32 (five halvings leave >= 1 pixel);
at 32x32 the last pool leaves 1x1. ``d`` defaults to c512 (the CIFAR-style
head; ImageNet's is ``dense=4096, classes=1000``).

Weights: conv ``W ~ N(0, 2 / (9 * C_in))``, dense ``W ~ N(0, 2 / N_in)``
(He et al. 2015), biases ``~ N(0, 0.05)``, drawn from
``numpy.random.default_rng(seed)`` layer by layer (weight, then bias), so a
seed gives the same net on every machine.
"""

from __future__ import annotations

import numpy as np

from .ann import AnnGraph, AnnLayer, ConversionError

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_POOLS = ("avgpool2d", "maxpool2d")


def vgg16_channels(width: float = 1.0) -> list:
    """The 13 conv channel counts per block: ``max(1, round(width * n))``."""
    if not (isinstance(width, (int, float)) and np.isfinite(width) and width > 0):
        raise ConversionError(f"VGG16 width must be a positive number, got {width!r}")
    return [[max(1, int(round(width * n))) for n in block] for block in VGG16_BLOCKS]


def vgg16_ann(input_shape=(32, 32, 3), width: float = 1.0, classes: int = 10, dense: int | None = None,
              pool: str = "avgpool2d", seed: int = 0, bias: bool = True) -> AnnGraph:
    """The VGG16 topology (module doc) as a channel-last ANN graph with random He-normal weights.

    ``input_shape`` is (H, W, C) with H, W >= 32; ``pool`` is ``"avgpool2d"``
    or ``"maxpool2d"``; ``dense`` is the width of the two hidden dense layers
    (default: the last conv block's channel count).
    """
    h, w, c = _check_shape(input_shape)
    if pool not in _POOLS:
        raise ConversionError(f"pool must be one of {', '.join(_POOLS)}, got {pool!r}")
    for what, v in (("classes", classes), ("dense", dense)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ConversionError(f"VGG16 {what} must be a positive integer, got {v!r}")
    blocks = vgg16_channels(width)
    dense = blocks[-1][-1] if dense is None else int(dense)
    rng = np.random.default_rng(seed)
    layers, last = [], "input"

    def add(op, **kw):
        nonlocal last
        name = f"{op}{len(layers)}"
        layers.append(AnnLayer(name, op, (last,), **kw))
        last = name

    for block in blocks:
        for cout in block:
            wgt = rng.normal(0, np.sqrt(2.0 / (9 * c)), (3, 3, c, cout)).astype(np.float32)
            b = rng.normal(0, 0.05, cout).astype(np.float32) if bias else None
            add("conv2d", weight=wgt, bias=b, stride=(1, 1), padding=(1, 1))
            add("relu")
            c = cout
        add(pool, kernel=(2, 2), stride=(2, 2))
        h, w = h // 2, w // 2
    add("flatten")
    n_in = h * w * c
    for n_out, relu in ((dense, True), (dense, True), (int(classes), False)):
        wgt = rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_out)).astype(np.float32)
        b = rng.normal(0, 0.05, n_out).astype(np.float32) if bias else None
        add("dense", weight=wgt, bias=b)
        if relu:
            add("relu")
        n_in = n_out
    source = {"format": "eventsnn.architectures.vgg16_ann", "width": float(width), "seed": int(seed),
              "pool": pool, "weights": "random He-normal"}
    return AnnGraph(tuple(int(d) for d in input_shape), layers, source)


def vgg16(input_shape=(32, 32, 3), width: float = 1.0, classes: int = 10, dense: int | None = None,
          pool: str = "avgpool2d", seed: int = 0, calibration=None, calibration_samples: int = 8,
          percentile: float = 99.9, reset: str = "subtract", v_init: float = 0.0):
    """A spiking VGG16 with random weights: :func:`vgg16_ann` converted by :func:`eventsnn.convert`.

    The thresholds are set by percentile normalisation (``percentile``) on
    ``calibration`` ((N, H, W, C) in [0, 1]); by default on
    ``calibration_samples`` uniform random images from ``seed``. IF neurons,
    direct (analog) input, spike-count readout. Returns the
    :class:`~eventsnn.network.Network`; average pools are folded into the
    next conv, as ``eventsnn convert`` does.
    """
    from .convert import convert

    ann = vgg16_ann(input_shape, width, classes, dense, pool, seed)
    if calibration is None:
        if isinstance(calibration_samples, bool) or not isinstance(calibration_samples, (int, np.integer)) \
                or calibration_samples < 1:
            raise ConversionError(f"calibration_samples must be a positive integer, got {calibration_samples!r}")
        rng = np.random.default_rng([int(seed), 1])
        calibration = rng.random((int(calibration_samples), *ann.input_shape), dtype=np.float32)
    net, _ = convert(ann, calibration, method="percentile", percentile=percentile, reset=reset, v_init=v_init)
    return net


def _check_shape(input_shape) -> tuple:
    try:
        shape = tuple(int(d) for d in input_shape)
        ok = len(shape) == 3 and all(d == v for d, v in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok or min(shape) < 1:
        raise ConversionError(f"VGG16 input_shape must be (H, W, C) positive integers, got {input_shape!r}")
    if shape[0] < 32 or shape[1] < 32:
        raise ConversionError(f"VGG16 needs an input of at least 32x32 (five 2x2 pools), got {shape[0]}x{shape[1]}")
    return shape
