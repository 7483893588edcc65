"""A softmax at a model's output (Keras ``activation='softmax'``, ONNX ``Softmax``) imports as a
``softmax`` layer, forwards like the source framework, and is dropped by conversion (the argmax is
unchanged); a softmax anywhere else is refused, naming the node."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from eventsnn.ann import OPS, AnnGraph, AnnLayer, ConversionError, forward
from eventsnn.convert import convert, simplify

sys.path.insert(0, str(Path(__file__).parent))
from annbuild import AnnBuilder, to_onnx  # noqa: E402

KERAS = Path(__file__).parent / "fixtures" / "keras"


def test_softmax_op_over_last_axis():
    assert "softmax" in OPS
    rng = np.random.default_rng(0)
    x = rng.normal(0, 5, (3, 4, 4, 6)).astype(np.float32)
    g = AnnGraph((4, 4, 6), [AnnLayer("sm", "softmax", ("input",))])
    out = forward(g, x)
    ref = np.exp(x - x.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    # Large logits must not overflow.
    big = forward(AnnGraph((1, 1, 3), [AnnLayer("sm", "softmax", ("input",))]),
                  np.array([[[[1000.0, 0.0, -1000.0]]]], np.float32))
    assert np.all(np.isfinite(big)) and big[0, 0, 0, 0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- ONNX

def _small_cnn(seed=0):
    b = AnnBuilder((8, 8, 2), seed)
    b.conv(4)
    b.relu()
    b.pool("maxpool2d")
    b.flatten()
    b.dense(16)
    b.relu()
    b.dropout()
    b.dense(5)
    return b.graph()


def _with_softmax(src, dst, where="end", opset=17, axis=None):
    """Copy an ONNX model and insert a Softmax at its output ("end") or after its first Relu ("middle")."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    g = model.graph
    kw = {} if axis is None else {"axis": axis}
    if where == "end":
        out = g.output[0]
        old = out.name
        g.node.append(helper.make_node("Softmax", [old], ["probs"], name="probs", **kw))
        out.name = "probs"
    else:
        idx, relu = next((i, n) for i, n in enumerate(g.node) if n.op_type == "Relu")
        for n in g.node[idx + 1:]:
            for k, t in enumerate(n.input):
                if t == relu.output[0]:
                    n.input[k] = "mid_softmax"
        g.node.insert(idx + 1, helper.make_node("Softmax", [relu.output[0]], ["mid_softmax"],
                                                name="mid_softmax", **kw))
    model.opset_import[0].version = opset
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return str(dst)


@pytest.fixture
def onnx_pair(tmp_path):
    pytest.importorskip("onnx")
    plain = to_onnx(_small_cnn(), tmp_path / "plain.onnx")
    return plain, _with_softmax(plain, tmp_path / "softmax.onnx")


def _onnxruntime(path, x_nhwc):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x_nhwc.transpose(0, 3, 1, 2).copy()})[0]


def test_onnx_softmax_output_imports_forwards_and_converts(onnx_pair):
    from eventsnn.io.onnx_import import read_onnx

    plain, path = onnx_pair
    graph = read_onnx(path)
    assert graph.layers[-1].op == "softmax" and graph.layers[-1].name == "probs"
    rng = np.random.default_rng(1)
    x = rng.random((6, 8, 8, 2)).astype(np.float32)
    probs = forward(graph, x)
    np.testing.assert_allclose(probs, _onnxruntime(path, x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)

    simple = simplify(graph)
    assert [l.op for l in simple.layers].count("softmax") == 0 and simple.layers[-1].op == "dense"
    logits = forward(simple, x)
    np.testing.assert_allclose(logits, _onnxruntime(plain, x), rtol=1e-4, atol=1e-5)
    assert np.array_equal(np.argmax(logits, 1), np.argmax(probs, 1))

    labels = np.argmax(probs, 1)
    net, report = convert(graph, x, labels=labels, method="max")
    ref, _ = convert(read_onnx(plain), x, labels=labels, method="max")
    assert [l.name for l in net.layers] == [l.name for l in ref.layers]
    assert net.layers[-1].kind == "dense" and net.layers[-1].neuron is not None
    for a, b in zip(net.layers, ref.layers):
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
    assert report.ann_accuracy == 1.0 and report.normalized_ann_accuracy == 1.0


def test_onnx_softmax_in_the_middle_raises_naming_it(tmp_path, onnx_pair):
    from eventsnn.io.onnx_import import read_onnx

    plain, _ = onnx_pair
    path = _with_softmax(plain, tmp_path / "mid.onnx", where="middle", axis=1)
    graph = read_onnx(path)  # imports (forward works) ...
    x = np.random.default_rng(2).random((2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(forward(graph, x), _onnxruntime(path, x), rtol=1e-4, atol=1e-6)
    with pytest.raises(ConversionError, match=r"'mid_softmax'.*softmax"):  # ... but does not convert
        convert(graph, x)
    with pytest.raises(ConversionError, match="mid_softmax"):
        simplify(graph)


def test_onnx_softmax_over_spatial_axis_refused(tmp_path, onnx_pair):
    from eventsnn.io.onnx_import import read_onnx

    plain, _ = onnx_pair
    path = _with_softmax(plain, tmp_path / "mid_w.onnx", where="middle", axis=-1)  # over W
    with pytest.raises(ConversionError, match=r"mid_softmax.*Softmax.*axis"):
        read_onnx(path)


def test_cli_converts_onnx_with_softmax_output(tmp_path, onnx_pair):
    from click.testing import CliRunner

    from eventsnn.cli.main import main
    from eventsnn.io import load_network

    _, path = onnx_pair
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "calib.npz", x=rng.random((4, 8, 8, 2)).astype(np.float32))
    out = tmp_path / "snn.h5"
    res = CliRunner().invoke(main, ["convert", path, "-o", str(out), "--calibration", str(tmp_path / "calib.npz"),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    net = load_network(out)
    assert net.layers[-1].kind == "dense" and "softmax" not in [l.kind for l in net.layers]
    assert net.provenance["source"]["format"] == "onnx"


# --------------------------------------------------------------------------- Keras

def _keras_config(path):
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _keras_copy(dst, config):
    import h5py

    shutil.copyfile(KERAS / "sequential.h5", dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    return dst


def _convertible(config):
    """The fixture has Conv2D(relu) -> BatchNormalization, which cannot be folded; move the ReLU after the BN
    (conv_a linear, a new ReLU layer 'relu_a') so the model converts. Weights are unchanged."""
    config = json.loads(json.dumps(config))
    layers = config["config"]["layers"]
    i = next(k for k, l in enumerate(layers) if l["config"]["name"] == "conv_a")
    layers[i]["config"]["activation"] = "linear"
    layers.insert(i + 2, {"module": "keras.layers", "class_name": "ReLU", "registered_name": None,
                          "config": {"name": "relu_a", "max_value": None, "negative_slope": 0.0, "threshold": 0.0}})
    return config


def _keras_softmax_variants(tmp_path, prepare=lambda c: c):
    """sequential.h5 with (a) its last Dense fused activation 'softmax', (b) an Activation('softmax') layer
    after it, (c) a Keras 3 dict-serialised activation -- all in the Keras 3 layout of the fixture."""
    base = prepare(_keras_config(KERAS / "sequential.h5"))
    fused = json.loads(json.dumps(base))
    assert fused["config"]["layers"][-1]["config"]["name"] == "fc2"
    fused["config"]["layers"][-1]["config"]["activation"] = "softmax"
    separate = json.loads(json.dumps(base))
    separate["config"]["layers"].append({
        "module": "keras.layers", "class_name": "Activation", "registered_name": None,
        "config": {"name": "probs", "trainable": True, "dtype": base["config"]["layers"][-1]["config"]["dtype"],
                   "activation": "softmax"}})
    as_dict = json.loads(json.dumps(base))
    as_dict["config"]["layers"][-1]["config"]["activation"] = {
        "module": "keras.activations", "class_name": "function", "config": "softmax", "registered_name": "function"}
    return {
        "plain": (_keras_copy(tmp_path / "plain.h5", base), "fc2"),
        "fused": (_keras_copy(tmp_path / "fused.h5", fused), "fc2_softmax"),
        "activation_layer": (_keras_copy(tmp_path / "act.h5", separate), "probs"),
        "dict_activation": (_keras_copy(tmp_path / "dict.h5", as_dict), "fc2_softmax"),
    }


VARIANTS = ["fused", "activation_layer", "dict_activation"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_softmax_output_imports_and_forwards(tmp_path, variant):
    pytest.importorskip("h5py")
    from eventsnn.io.keras_import import read_keras_h5

    path, name = _keras_softmax_variants(tmp_path)[variant]
    graph = read_keras_h5(path)
    last = graph.layers[-1]
    assert last.op == "softmax" and last.name == name and last.inputs == ("fc2",)
    ref = np.load(KERAS / "sequential.npz")
    x, logits = ref["x"], ref["y"]  # the fixture's Keras outputs are the logits of fc2
    expect = np.exp(logits - logits.max(1, keepdims=True))
    expect /= expect.sum(1, keepdims=True)
    acts = forward(graph, x, keep=True)
    np.testing.assert_allclose(acts[name], expect, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(acts["fc2"], logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_softmax_output_converts(tmp_path, variant):
    pytest.importorskip("h5py")
    from eventsnn.io.keras_import import read_keras_h5

    files = _keras_softmax_variants(tmp_path, _convertible)
    graph = read_keras_h5(files[variant][0])
    assert graph.layers[-1].op == "softmax"
    x = np.random.default_rng(4).random((16, 12, 12, 1)).astype(np.float32)
    labels = np.argmax(forward(graph, x), 1)
    net, report = convert(graph, x, labels=labels, method="max")
    plain, _ = convert(read_keras_h5(files["plain"][0]), x, method="max")
    assert [l.name for l in net.layers] == [l.name for l in plain.layers]
    assert net.layers[-1].name == "fc2"
    for a, b in zip(net.layers, plain.layers):
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
    assert report.ann_accuracy == 1.0 and report.normalized_ann_accuracy == 1.0


def test_keras_softmax_in_the_middle_raises_naming_it(tmp_path):
    pytest.importorskip("h5py")
    from eventsnn.io.keras_import import read_keras_h5

    config = _convertible(_keras_config(KERAS / "sequential.h5"))
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == "fc1":
            layer["config"]["activation"] = "softmax"
    graph = read_keras_h5(_keras_copy(tmp_path / "mid.h5", config))
    assert "fc1_softmax" in [l.name for l in graph.layers]
    with pytest.raises(ConversionError, match=r"'fc1_softmax'.*softmax"):
        convert(graph, np.load(KERAS / "sequential.npz")["x"])


def test_keras_softmax_layer_class(tmp_path):
    pytest.importorskip("h5py")
    from eventsnn.io.keras_import import read_keras_h5

    config = _keras_config(KERAS / "sequential.h5")
    config["config"]["layers"].append({"module": "keras.layers", "class_name": "Softmax", "registered_name": None,
                                       "config": {"name": "sm", "axis": -1}})
    graph = read_keras_h5(_keras_copy(tmp_path / "sm.h5", config))
    assert graph.layers[-1].op == "softmax" and graph.layers[-1].name == "sm"
    config["config"]["layers"][-1]["config"]["axis"] = 0
    with pytest.raises(ConversionError, match=r"'sm'.*Softmax.*axis"):
        read_keras_h5(_keras_copy(tmp_path / "sm0.h5", config))


def test_only_softmax_leaves_nothing_to_convert():
    g = AnnGraph((1, 1, 4), [AnnLayer("sm", "softmax", ("input",))])
    with pytest.raises(ConversionError, match="'sm'"):
        simplify(g)
