"""ANN-to-SNN conversion: normalisation, the rate model, layout, VGG16, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402

from eventsnn.ann import ConversionError, forward  # noqa: E402
from eventsnn.cli.main import main  # noqa: E402
from eventsnn.convert import convert, rate_model  # noqa: E402
from eventsnn.datasets import load_dataset  # noqa: E402
from eventsnn.engine.simulator import Simulator  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.io.onnx_import import read_onnx  # noqa: E402

from annbuild import AnnBuilder, to_onnx  # noqa: E402
from eventsnn.architectures import vgg16_ann  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample.npz"


def small_cnn(pool="avgpool2d", seed=0):
    b = AnnBuilder((28, 28, 1), seed)
    b.conv(6)
    b.bn()
    b.relu()
    b.pool(pool)
    b.conv(8)
    b.relu()
    b.pool(pool)
    b.flatten()
    b.dense(24)
    b.relu()
    b.dropout()
    b.dense(10)
    return b.graph()


@pytest.fixture(scope="module")
def data():
    return load_dataset(SAMPLE, limit=48)


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "cnn.onnx"
    return to_onnx(small_cnn(), path)


def test_onnx_file_is_real_and_matches_onnxruntime(onnx_cnn, data):
    sess = ort.InferenceSession(onnx_cnn, providers=["CPUExecutionProvider"])
    want = sess.run(None, {"input": data.x.transpose(0, 3, 1, 2)})[0]
    np.testing.assert_allclose(forward(read_onnx(onnx_cnn), data.x), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["max", "percentile"])
def test_normalised_ann_keeps_the_ann_decisions(onnx_cnn, data, method):
    ann = read_onnx(onnx_cnn)
    ann_pred = np.argmax(forward(ann, data.x), axis=1)
    net, report = convert(ann, data.x, labels=ann_pred, method=method)
    assert report.ann_accuracy == 1.0
    assert report.normalized_ann_accuracy == 1.0
    assert all(t == 1.0 for t in report.thresholds.values())
    if method == "max":
        # Data-based max norm: every spiking layer's rate-model activation is <= 1 on calibration data.
        acts = rate_model(net, data.x)
        for layer in net.layers[:-1]:
            if layer.neuron is not None:
                assert acts[layer.name].max() <= 1.0 + 1e-5, layer.name


def rate_errors(net, x, steps_list, k=1):
    """Per T: mean |spikes per step - rate model clipped to [0, k]| / k over the spiking layers."""
    acts = rate_model(net, x)
    errors = {}
    for steps in steps_list:
        sim = Simulator(net, timesteps=steps)
        err = []
        for i in range(len(x)):
            sim.reset(x[i], sample_index=i)
            sim.run()
            for layer in net.layers:
                if layer.neuron is not None:
                    rate = sim.spike_counts(layer.name) / steps
                    want = np.clip(acts[layer.name][i].reshape(rate.shape), 0, k)
                    err.append(np.abs(rate - want).mean() / k)
        errors[steps] = float(np.mean(err))
    return errors


def test_rates_approach_relu_activations(onnx_cnn, data):
    """SNN spike rates -> normalised ReLU activations (clipped to 1) as T grows (fixed seed)."""
    ann = read_onnx(onnx_cnn)
    net, _ = convert(ann, data.x, method="max")
    errors = rate_errors(net, data.x[:4], (20, 100, 400))
    assert errors[20] > errors[100] > errors[400]
    assert errors[400] < 0.01, errors


def test_spike_norm_sets_thresholds_from_snn_input(onnx_cnn, data):
    ann = read_onnx(onnx_cnn)
    net, report = convert(ann, data.x[:8], method="spike-norm", norm_timesteps=30)
    spiking = [l for l in net.layers if l.neuron is not None]
    assert set(report.thresholds) == {l.name for l in spiking}
    assert all(np.isfinite(t) and t > 0 for t in report.thresholds.values())
    # The first layer sees the analog input: its threshold is the ANN's largest pre-activation.
    first = spiking[0].name
    pre = forward(read_onnx(onnx_cnn), data.x[:8], keep=True)
    ann_first = [l for l in read_onnx(onnx_cnn).layers if l.op == "batchnorm"][0].name
    assert report.thresholds[first] == pytest.approx(float(pre[ann_first].max()), rel=1e-4)


def test_same_weights_from_onnx_and_keras_give_identical_snns(tmp_path, data):
    """CHW (ONNX) and HWC (Keras) sources of one trained net convert to the same SNN."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "keras"
    h5 = sorted(fixture.glob("*sequential*.h5")) or sorted(fixture.glob("*.h5"))
    if not h5:
        pytest.skip("no Keras fixture")
    from eventsnn.io.keras_import import read_keras_h5
    keras_ann = read_keras_h5(h5[0])
    # The fixture has a BatchNormalization after a ReLU, which cannot be folded
    # exactly (zero padding); this test is about layout, so drop it on both sides.
    keras_ann.layers = [l for l in keras_ann.layers if l.op != "batchnorm"]
    for l in keras_ann.layers:
        l.inputs = tuple("conv_a_relu" if i == "bn_a" else i for i in l.inputs)
    onnx_path = to_onnx(keras_ann, tmp_path / "same.onnx")
    onnx_ann = read_onnx(onnx_path)
    rng = np.random.default_rng(0)
    x = rng.random((16,) + tuple(keras_ann.input_shape)).astype(np.float32)
    np.testing.assert_allclose(forward(keras_ann, x), forward(onnx_ann, x), rtol=1e-5, atol=1e-5)
    nets = [convert(a, x, method="max")[0] for a in (keras_ann, onnx_ann)]
    outs = []
    for net in nets:
        sim = Simulator(net, timesteps=40)
        sim.reset(x[0])
        sim.run()
        outs.append([sim.spike_counts(l.name) for l in net.layers if l.spiking])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_vgg16_topology_converts_and_runs_from_cli(tmp_path):
    ann = vgg16_ann((32, 32, 3))
    assert sum(l.op == "conv2d" for l in ann.layers) == 13 and sum(l.op == "dense" for l in ann.layers) == 3
    model = to_onnx(ann, tmp_path / "vgg16.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.random((6, 32, 32, 3)).astype(np.float32), y=rng.integers(0, 10, 6))
    runner = CliRunner()
    out = tmp_path / "converted_vgg16.h5"
    res = runner.invoke(main, ["convert", model, "-o", str(out), "--calibration", str(tmp_path / "calib.npz"),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    net = load_network(out)
    assert sum(l.kind == "conv2d" for l in net.layers) == 13
    assert net.provenance["source"]["sha256"] and net.provenance["method"] == "percentile"
    res = runner.invoke(main, ["run", "--net", str(out), "--data", str(tmp_path / "calib.npz"),
                               "--timesteps", "8", "--samples", "1", "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    import json
    summary = json.loads(res.output)
    assert summary["syn_ops_per_sample"] > 0 and summary["seconds_per_sample"] > 0


def test_cli_convert_and_sweep(tmp_path, onnx_cnn):
    runner = CliRunner()
    out = tmp_path / "snn.h5"
    res = runner.invoke(main, ["convert", onnx_cnn, "-o", str(out), "--calibration", str(SAMPLE),
                               "--calibration-samples", "64", "--method", "max", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "normalised" in res.output
    prov = load_network(out).provenance
    assert prov["calibration_samples"] == 64 and prov["scales"]
    res = runner.invoke(main, ["run", "--net", str(out), "--data", str(SAMPLE), "--samples", "4",
                               "--sweep-timesteps", "5,10,20", "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    import json
    sweep = json.loads(res.output)["sweep"]
    assert [r["timesteps"] for r in sweep] == [5, 10, 20]
    ops = [r["syn_ops_per_sample"] for r in sweep]
    assert ops[0] <= ops[1] <= ops[2]
    # The last sweep point is the full run.
    assert ops[-1] == pytest.approx(json.loads(res.output)["syn_ops_per_sample"])


def _unsupported_onnx(path):
    from onnx import TensorProto, helper
    node = helper.make_node("Sigmoid", ["input"], ["out"], name="squash")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1, 28, 28])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_cli_convert_bad_input(tmp_path, onnx_cnn):
    runner = CliRunner()
    out = tmp_path / "never.h5"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wrong.npz", x=rng.random((4, 20, 20, 1)).astype(np.float32))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 28, 28, 1), np.float32))
    nan_model = small_cnn()
    nan_model.layers[0].weight[:] = np.nan
    cases = [
        [_unsupported_onnx(tmp_path / "sig.onnx"), "--calibration", str(SAMPLE)],
        [onnx_cnn, "--calibration", str(tmp_path / "wrong.npz")],
        [onnx_cnn, "--calibration", str(tmp_path / "empty.npz")],
        [to_onnx(nan_model, tmp_path / "nan.onnx"), "--calibration", str(SAMPLE)],
        [onnx_cnn, "--calibration", str(tmp_path / "absent.npz")],
    ]
    expect = ["Sigmoid", "shape", "empty", "NaN", "absent.npz"]
    for args, word in zip(cases, expect):
        res = runner.invoke(main, ["convert", *args, "-o", str(out), "--no-progress", "--calibration-samples", "8"])
        assert res.exit_code != 0, args
        assert "Traceback" not in res.output
        assert word in res.output, (word, res.output)
        assert not out.exists()
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_convert_rejects_non_relu_output_use():
    b = AnnBuilder((8, 8, 1))
    b.conv(2)
    b.pool("avgpool2d")  # conv output pooled without a ReLU
    b.flatten()
    b.dense(3)
    with pytest.raises(ConversionError, match="without a ReLU"):
        convert(b.graph(), np.random.default_rng(0).random((4, 8, 8, 1)))


def residual_cnn(seed=0):
    b = AnnBuilder((12, 12, 1), seed)
    b.conv(4)
    stem = b.relu()
    b.conv(4)
    b.relu()
    branch = b.conv(4)
    b._add("add", inputs=(stem, branch))
    b.relu()
    b.pool("avgpool2d")
    b.flatten()
    b.dense(5)
    return b.graph()


def agreement_with_ann(ann, x, method, steps, **convert_kw):
    """Convert ``ann`` (membrane readout) and return (the fraction of ``x`` on which the SNN
    after ``steps`` decides like the ANN, the conversion report). Membrane readout: on
    random inputs the logits lie close together, and the analog readout resolves them
    where output spike counts would tie."""
    ann_pred = np.argmax(forward(ann, x), axis=1)
    net, report = convert(ann, x, labels=ann_pred, method=method, norm_timesteps=60, decoding="membrane",
                          **convert_kw)
    sim = Simulator(net, timesteps=steps)
    hits = 0
    for i in range(len(x)):
        sim.reset(x[i], sample_index=i)
        sim.run()
        hits += sim.prediction() == ann_pred[i]
    return hits / len(x), report


@pytest.mark.parametrize("method", ["max", "percentile", "spike-norm"])
@pytest.mark.parametrize("graph", ["cnn", "residual"])
def test_snn_follows_the_ann_at_long_latency(graph, method):
    """Every method (biases, BN and residual adds included) ends up deciding like the ANN."""
    rng = np.random.default_rng(7)
    ann = small_cnn() if graph == "cnn" else residual_cnn()
    x = rng.random((24,) + tuple(ann.input_shape)).astype(np.float32)
    if graph == "cnn":
        x = load_dataset(SAMPLE, limit=24).x
    agreement, report = agreement_with_ann(ann, x, method, 400)
    if method != "spike-norm":
        assert report.normalized_ann_accuracy == 1.0
    assert agreement >= 0.85


@pytest.mark.parametrize("pool", ["avgpool2d", "maxpool2d"])
def test_fold_average_pools_is_exact(pool):
    """avgpool -> conv and avgpool -> flatten -> dense fold into one layer with the same outputs."""
    from eventsnn.convert import _ann_shapes, fold_average_pools, simplify
    ann = simplify(small_cnn(pool))
    folded, absorbed = fold_average_pools(ann, _ann_shapes(ann))
    assert all(v == [2, 2] for v in absorbed.values())
    assert bool(absorbed) == (pool == "avgpool2d")
    x = load_dataset(SAMPLE, limit=16).x
    np.testing.assert_allclose(forward(folded, x), forward(ann, x), rtol=1e-4, atol=1e-5)
    kinds = [l.op for l in folded.layers]
    assert "avgpool2d" not in kinds  # every average pool folded
    assert ("maxpool2d" in kinds) == (pool == "maxpool2d")  # max pools stay


@pytest.mark.parametrize("flag, folded", [(None, True), ("--fold-pools", True), ("--spiking-pools", False)])
def test_cli_convert_pools(tmp_path, onnx_cnn, flag, folded):
    """Average pools are folded by default; --spiking-pools keeps them as spiking layers."""
    out = tmp_path / "converted.h5"
    args = ["convert", onnx_cnn, "-o", str(out), "--calibration", str(SAMPLE),
            "--calibration-samples", "32", "--method", "max", "--no-progress"] + ([flag] if flag else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    net = load_network(out)
    assert any(l.kind == "avgpool2d" for l in net.layers) != folded
    assert net.provenance["fold_pools"] is folded


def test_folded_pools_are_priced_as_the_source_ann(data):
    """Energy baseline: a layer that absorbed a pool counts the ANN's pool + smaller layer.

    Layer by layer, the folded conversion's ANN MACs equal those of the
    spiking-pools conversion's pool plus the layer after it, while the folded
    layers' own synapse counts (for rate estimates) are s^2 = 4 times larger.
    """
    from eventsnn.engine.compile import Plan
    from eventsnn.opcount import layer_macs, layer_synapses

    ann = small_cnn()
    folded, _ = convert(ann, data.x[:16], method="max")
    spiking, _ = convert(ann, data.x[:16], method="max", fold_pools=False)
    absorbed = folded.provenance["folded_pools"]
    assert len(absorbed) == 2 and all(v == [2, 2] for v in absorbed.values())
    pf, ps = Plan(folded, 10), Plan(spiking, 10)
    macs_f = dict(zip([p.name for p in pf.pops], layer_macs(pf)[0]))
    macs_s = dict(zip([p.name for p in ps.pops], layer_macs(ps)[0]))
    syn_f = dict(zip([p.name for p in pf.pops], layer_synapses(pf)))
    syn_s = dict(zip([p.name for p in ps.pops], layer_synapses(ps)))
    for name in absorbed:
        pool = ps.pops[ps.pop_index[name] - 1]
        assert pool.layer.kind == "avgpool2d"
        assert macs_f[name] == macs_s[pool.name] + macs_s[name]
        assert syn_f[name] > 3 * syn_s[name]
    assert sum(macs_f.values()) == sum(macs_s.values())


def test_bad_folded_pools_provenance_is_a_clear_error(data):
    from eventsnn.engine.compile import Plan
    from eventsnn.network import NetworkError
    from eventsnn.opcount import layer_macs

    net, _ = convert(small_cnn(), data.x[:8], method="max")
    name = next(iter(net.provenance["folded_pools"]))
    for bad in ([0, 2], [5, 5], "2x2"):
        net.provenance["folded_pools"] = {name: bad}
        with pytest.raises(NetworkError, match="folded_pools"):
            layer_macs(Plan(net, 10))
