"""Keras HDF5 import: fixtures written by Keras 3.15.1 (torch backend), read with h5py alone.

The fixtures and their reference outputs come from
tests/fixtures/keras/make_keras_fixtures.py; these tests need only h5py and numpy.
The Keras 2 (tf.keras) layout is checked on files rewritten from the Keras 3
fixtures into that layout: flat ``inbound_nodes`` lists, ``batch_input_shape``,
``name/kernel:0`` weight names, byte-string attributes.
"""

import copy
import re
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from eventsnn.ann import ConversionError, forward  # noqa: E402
from eventsnn.io.keras_import import read_keras_h5  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
MODELS = ["sequential", "functional", "strided_same"]


def reference(name):
    data = np.load(FIXTURES / f"{name}.npz")
    return data["x"], data["y"]


def model_config(path):
    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def with_config(src, dst, config):
    """Copy src to dst and replace its model_config."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    return dst


# --------------------------------------------------------------------------- Keras 3 files

@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_keras(name):
    graph = read_keras_h5(FIXTURES / f"{name}.h5")
    x, y = reference(name)
    assert graph.input_shape == x.shape[1:]
    out = forward(graph, x)
    assert out.shape == y.shape
    np.testing.assert_allclose(out, y, rtol=1e-4, atol=1e-5)


def test_source_and_layers():
    path = FIXTURES / "sequential.h5"
    graph = read_keras_h5(path)
    assert graph.source == {"format": "keras-h5", "path": str(path), "keras_version": "3.15.1",
                            "backend": "torch"}
    ops = [(layer.name, layer.op) for layer in graph.layers]
    assert ops == [("conv_a", "conv2d"), ("conv_a_relu", "relu"), ("bn_a", "batchnorm"),
                   ("avg_a", "avgpool2d"), ("conv_b", "conv2d"), ("relu_b", "relu"),
                   ("max_b", "maxpool2d"), ("flat", "flatten"), ("fc1", "dense"),
                   ("fc1_relu", "relu"), ("drop", "dropout"), ("fc2", "dense")]
    conv_a = graph.layer("conv_a")
    assert conv_a.inputs == ("input",)
    assert conv_a.weight.shape == (3, 3, 1, 8) and conv_a.weight.dtype == np.float32
    assert conv_a.padding == (1, 1) and conv_a.stride == (1, 1)
    conv_b = graph.layer("conv_b")
    assert conv_b.padding == (0, 0) and conv_b.stride == (2, 2)
    assert graph.layer("fc1").weight.shape == (16, 32)
    bn = graph.layer("bn_a").bn
    assert set(bn) == {"gamma", "beta", "mean", "var", "eps"}
    assert bn["eps"] == pytest.approx(1e-3)
    assert not np.allclose(bn["var"], 1.0)  # randomised statistics


def test_functional_graph_structure():
    graph = read_keras_h5(FIXTURES / "functional.h5")
    assert graph.layer("res_add").inputs == ("stem_relu", "res_conv2")
    assert graph.layer("res_conv2").inputs == ("res_bn",)
    # center=False / scale=False batch norms get beta=0 / gamma=1
    np.testing.assert_array_equal(graph.layer("stem_bn").bn["beta"], 0.0)
    np.testing.assert_array_equal(graph.layer("res_bn").bn["gamma"], 1.0)
    assert graph.layer("stem").bias is None
    # Activation('linear') leaves no layer; the GAP is a whole-map avgpool plus flatten
    assert "ident" not in [layer.name for layer in graph.layers]
    gap = graph.layer("gap")
    assert gap.op == "avgpool2d" and gap.kernel == (5, 5) and gap.inputs == ("pool",)
    assert graph.layer("gap_flatten").op == "flatten"
    assert graph.output == "head"


def test_strided_same_padding():
    graph = read_keras_h5(FIXTURES / "strided_same.h5")
    assert graph.layer("conv_s2").padding == (1, 1)
    assert graph.layer("conv_1x3").padding == (0, 1)
    assert graph.layer("gap").kernel == (4, 4)
    assert "gap_flatten" not in [layer.name for layer in graph.layers]  # keepdims=True


def test_asymmetric_same_padding_raises(tmp_path):
    config = model_config(FIXTURES / "strided_same.h5")
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 12, 12, 2]
    path = with_config(FIXTURES / "strided_same.h5", tmp_path / "even.h5", config)
    with pytest.raises(ConversionError, match=r"conv_s2.*Conv2D.*asymmetric"):
        read_keras_h5(path)


def test_unsupported_activation_names_layer_and_class():
    with pytest.raises(ConversionError) as err:
        read_keras_h5(FIXTURES / "unsupported.h5")
    msg = str(err.value)
    assert "conv_sigmoid" in msg and "Conv2D" in msg and "sigmoid" in msg


@pytest.mark.parametrize("cls, extra", [
    ("LayerNormalization", {"axis": -1}),
    ("Conv2DTranspose", {"filters": 4, "kernel_size": [3, 3]}),
])
def test_unsupported_layer_class(tmp_path, cls, extra):
    config = model_config(FIXTURES / "sequential.h5")
    config["config"]["layers"].insert(2, {"class_name": cls, "config": {"name": "odd_one", **extra}})
    path = with_config(FIXTURES / "sequential.h5", tmp_path / "odd.h5", config)
    with pytest.raises(ConversionError, match=rf"'odd_one'.*{cls}"):
        read_keras_h5(path)


def test_unsupported_activation_layer(tmp_path):
    config = model_config(FIXTURES / "functional.h5")
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == "stem_relu":
            layer["config"]["activation"] = "tanh"
    path = with_config(FIXTURES / "functional.h5", tmp_path / "tanh.h5", config)
    with pytest.raises(ConversionError, match=r"stem_relu.*Activation.*tanh"):
        read_keras_h5(path)


def test_channels_first_raises(tmp_path):
    config = model_config(FIXTURES / "sequential.h5")
    config["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    path = with_config(FIXTURES / "sequential.h5", tmp_path / "cf.h5", config)
    with pytest.raises(ConversionError, match=r"conv_a.*channels_first"):
        read_keras_h5(path)


def test_dense_on_unflattened_input_raises(tmp_path):
    config = model_config(FIXTURES / "sequential.h5")
    config["config"]["layers"] = [lay for lay in config["config"]["layers"]
                                  if lay["config"]["name"] != "flat"]
    path = with_config(FIXTURES / "sequential.h5", tmp_path / "noflat.h5", config)
    with pytest.raises(ConversionError, match=r"fc1.*Dense.*Flatten"):
        read_keras_h5(path)


# --------------------------------------------------------------------------- broken files

def test_truncated_file_raises_naming_path(tmp_path):
    data = (FIXTURES / "sequential.h5").read_bytes()
    for cut in (len(data) // 2, 1000, 100):
        path = tmp_path / f"cut{cut}.h5"
        path.write_bytes(data[:cut])
        with pytest.raises(ConversionError, match=re.escape(str(path))):
            read_keras_h5(path)


def test_text_file_raises_naming_path(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("this is not an HDF5 file\n")
    with pytest.raises(ConversionError, match=re.escape(str(path))):
        read_keras_h5(path)


def test_missing_file_raises_naming_path(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(ConversionError, match=re.escape(str(path))):
        read_keras_h5(path)


def test_hdf5_without_model_config(tmp_path):
    path = tmp_path / "weights_only.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ConversionError, match=re.escape(str(path)) + ".*model_config"):
        read_keras_h5(path)


@pytest.mark.parametrize("bogus", [
    "{not json",
    json.dumps([1, 2, 3]),
    json.dumps({"class_name": "Sequential"}),
    json.dumps({"class_name": "Sequential", "config": {"layers": "nope"}}),
    json.dumps({"class_name": "Sequential", "config": {"layers": [{"config": {}}]}}),
    json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}}),  # no input shape
    json.dumps({"class_name": "Functional", "config": {"layers": [], "input_layers": [],
                                                      "output_layers": []}}),
    json.dumps({"class_name": "Pipeline", "config": {}}),
])
def test_bogus_model_config(tmp_path, bogus):
    path = tmp_path / "bogus.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = bogus
        f.create_group("model_weights")
    with pytest.raises(ConversionError, match=re.escape(str(path))):
        read_keras_h5(path)


def test_missing_weights_raises(tmp_path):
    path = tmp_path / "noweights.h5"
    shutil.copyfile(FIXTURES / "sequential.h5", path)
    with h5py.File(path, "r+") as f:
        del f["model_weights/fc1"]
    with pytest.raises(ConversionError, match=r"fc1.*Dense"):
        read_keras_h5(path)


# --------------------------------------------------------------------------- Keras 2 layout

def _keras2_layer(entry, functional):
    cfg = copy.deepcopy(entry["config"])
    cfg["dtype"] = "float32"
    if "batch_shape" in cfg:
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
        cfg.pop("optional", None)
    out = {"class_name": entry["class_name"], "config": cfg}
    if functional:
        out["name"] = cfg["name"]
        nodes = []
        for node in entry["inbound_nodes"]:
            refs = []

            def walk(obj):
                if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
                    name, i, j = obj["config"]["keras_history"]
                    refs.append([name, i, j, {}])
                elif isinstance(obj, list):
                    for item in obj:
                        walk(item)

            walk(node["args"])
            nodes.append(refs)
        out["inbound_nodes"] = nodes
    return out


def write_keras2(src, dst, drop_input_layer=False):
    """Rewrite a Keras 3 legacy .h5 into the tf.keras 2.x layout."""
    config = model_config(src)
    functional = config["class_name"] == "Functional"
    layers = [_keras2_layer(e, functional) for e in config["config"]["layers"]]
    new = {"name": config["config"]["name"], "layers": layers}
    if functional:
        new["input_layers"] = [config["config"]["input_layers"]]
        new["output_layers"] = [config["config"]["output_layers"]]
    elif drop_input_layer:  # Keras <= 2.2: the shape sits on the first real layer
        shape = layers[0]["config"]["batch_input_shape"]
        layers.pop(0)
        layers[0]["config"]["batch_input_shape"] = shape
    top = {"class_name": "Model" if functional else "Sequential", "config": new,
           "keras_version": "2.11.0", "backend": "tensorflow"}
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        fout.attrs["keras_version"] = b"2.11.0"
        fout.attrs["backend"] = b"tensorflow"
        fout.attrs["model_config"] = json.dumps(top).encode("utf8")
        mw_in, mw_out = fin["model_weights"], fout.create_group("model_weights")
        mw_out.attrs["layer_names"] = [n.encode() for n in mw_in.attrs["layer_names"]]
        for lname in mw_in.attrs["layer_names"]:
            g_in, g_out = mw_in[lname], mw_out.create_group(lname)
            names = []
            for wname in g_in.attrs["weight_names"]:
                base = wname.rsplit("/", 1)[-1]
                new_name = f"{lname}/{base}:0"
                g_out.create_dataset(new_name, data=g_in[wname][()])
                names.append(new_name.encode())
            g_out.attrs["weight_names"] = np.array(names, dtype="S") if names else np.array([], "S1")
    return dst


@pytest.mark.parametrize("name", MODELS)
def test_keras2_layout(tmp_path, name):
    path = write_keras2(FIXTURES / f"{name}.h5", tmp_path / f"{name}_k2.h5")
    graph = read_keras_h5(path)
    assert graph.source["keras_version"] == "2.11.0"
    assert graph.source["backend"] == "tensorflow"
    x, y = reference(name)
    np.testing.assert_allclose(forward(graph, x), y, rtol=1e-4, atol=1e-5)


def test_keras2_sequential_without_input_layer(tmp_path):
    path = write_keras2(FIXTURES / "sequential.h5", tmp_path / "old.h5", drop_input_layer=True)
    graph = read_keras_h5(path)
    x, y = reference("sequential")
    np.testing.assert_allclose(forward(graph, x), y, rtol=1e-4, atol=1e-5)


def test_keras2_unsupported_names_layer(tmp_path):
    path = write_keras2(FIXTURES / "unsupported.h5", tmp_path / "unsup_k2.h5")
    with pytest.raises(ConversionError, match=r"conv_sigmoid.*Conv2D.*sigmoid"):
        read_keras_h5(path)
