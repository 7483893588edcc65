"""eventsnn.architectures: the random-weights VGG16 builder."""

import numpy as np
import pytest

from eventsnn.ann import ConversionError, forward
from eventsnn.architectures import vgg16, vgg16_ann, vgg16_channels
from eventsnn.engine.simulator import Simulator


def test_channels_scale_with_width():
    assert vgg16_channels(1.0) == [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    assert vgg16_channels(0.25) == [[16, 16], [32, 32], [64, 64, 64], [128, 128, 128], [128, 128, 128]]
    assert vgg16_channels(0.001)[0] == [1, 1]


@pytest.mark.parametrize("shape, flat", [((32, 32, 3), 512), ((40, 36, 1), 512), ((64, 64, 3), 4 * 512)])
def test_vgg16_ann_layout_and_shapes(shape, flat):
    g = vgg16_ann(shape)
    ops = [l.op for l in g.layers]
    assert ops.count("conv2d") == 13 and ops.count("dense") == 3 and ops.count("avgpool2d") == 5
    # the block layout: 2, 2, 3, 3, 3 convs between pools
    runs, n = [], 0
    for op in ops:
        if op == "conv2d":
            n += 1
        elif op == "avgpool2d":
            runs.append(n)
            n = 0
    assert runs == [2, 2, 3, 3, 3]
    convs = [l for l in g.layers if l.op == "conv2d"]
    assert [l.weight.shape[3] for l in convs] == [c for b in vgg16_channels(1.0) for c in b]
    assert all(l.weight.shape[:2] == (3, 3) and l.padding == (1, 1) for l in convs)
    dense = [l for l in g.layers if l.op == "dense"]
    assert [l.weight.shape for l in dense] == [(flat, 512), (512, 512), (512, 10)]
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert forward(g, x).shape == (2, 10)


def test_vgg16_ann_is_seeded():
    a, b, c = vgg16_ann(width=0.125, seed=3), vgg16_ann(width=0.125, seed=3), vgg16_ann(width=0.125, seed=4)
    wa = [l.weight for l in a.layers if l.weight is not None]
    wb = [l.weight for l in b.layers if l.weight is not None]
    wc = [l.weight for l in c.layers if l.weight is not None]
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert not np.array_equal(wa[0], wc[0])
    # He-normal: the sample std of a big conv kernel is close to sqrt(2 / fan_in)
    w = vgg16_ann(seed=0).layers[2].weight  # conv 64 -> 64
    assert abs(w.std() / np.sqrt(2 / (9 * 64)) - 1) < 0.02


def test_vgg16_ann_options():
    g = vgg16_ann((224, 224, 3), width=0.0625, classes=1000, dense=64, pool="maxpool2d", bias=False)
    assert sum(l.op == "maxpool2d" for l in g.layers) == 5
    assert all(l.bias is None for l in g.layers if l.weight is not None)
    assert g.layers[-1].weight.shape == (64, 1000)
    assert g.layers[[l.op for l in g.layers].index("dense")].weight.shape == (7 * 7 * 32, 64)


@pytest.mark.parametrize("kw, msg", [
    (dict(input_shape=(28, 28, 1)), "at least 32x32"),
    (dict(input_shape=(32, 32)), "input_shape"),
    (dict(width=0), "width"),
    (dict(width=float("nan")), "width"),
    (dict(pool="sumpool"), "pool"),
    (dict(classes=0), "classes"),
    (dict(dense=2.5), "dense"),
])
def test_vgg16_ann_refuses_bad_arguments(kw, msg):
    with pytest.raises(ConversionError, match=msg):
        vgg16_ann(**kw)


def test_vgg16_spiking_net_runs_and_matches_reference():
    net = vgg16((32, 32, 1), width=0.0625, seed=1)
    assert [l.kind for l in net.layers].count("conv2d") == 13
    assert [l.kind for l in net.layers].count("dense") == 3
    assert net.shapes()[net.layers[-1].name] == (1, 1, 10)
    assert net.provenance["source"]["format"] == "eventsnn.architectures.vgg16_ann"
    # same seed, same net
    again = vgg16((32, 32, 1), width=0.0625, seed=1)
    for a, b in zip(net.layers, again.layers):
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(np.asarray(a.neuron.threshold), np.asarray(b.neuron.threshold))
    # a short run: every spiking layer of the data-normalised random net fires
    x = np.random.default_rng(2).random((32, 32, 1), dtype=np.float32)
    sim = Simulator(net, timesteps=20)
    sim.reset(x)
    sim.run()
    counts = {l.name: int(sim.spike_counts(l.name).sum()) for l in net.layers if l.spiking}
    assert len(counts) == 16 and all(c > 0 for c in counts.values()), counts


def test_vgg16_calibration_argument():
    with pytest.raises(ConversionError, match="calibration_samples"):
        vgg16(width=0.0625, calibration_samples=0)
    cal = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    net = vgg16(width=0.0625, calibration=cal)
    assert net.provenance["calibration_samples"] == 3
