"""read_nir: NIR graphs written with the real `nir` package must import as the same ReLU network.

Every imported graph is checked against an independent reference written here
directly in NIR's channel-first layout (scipy.signal.correlate2d and explicit
loops), with IF/LIF/CubaLIF/Threshold nodes read as ReLU.
"""

import json
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from scipy.signal import correlate2d  # noqa: E402

from eventsnn.ann import ConversionError, forward  # noqa: E402
from eventsnn.io.nir_import import read_nir  # noqa: E402

RNG = np.random.default_rng(4321)
C, H, W = 2, 6, 5  # non-square input: the flatten order matters


# -- an independent CHW reference -----------------------------------------------------------------
def ref_conv(x, w, b, stride=(1, 1), pad=(0, 0)):
    n, c, h, wd = x.shape
    co, ci, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    full = np.zeros((n, co, xp.shape[2] - kh + 1, xp.shape[3] - kw + 1))
    for i in range(n):
        for o in range(co):
            for k in range(ci):
                full[i, o] += correlate2d(xp[i, k], w[o, k], mode="valid")
    out = full[:, :, ::stride[0], ::stride[1]]
    return out if b is None else out + np.asarray(b, np.float64)[None, :, None, None]


def ref_pool(x, k, s, reduce=np.mean):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for y in range(oh):
        for z in range(ow):
            out[:, :, y, z] = reduce(x[:, :, y * s: y * s + k, z * s: z * s + k], axis=(2, 3))
    return out


def relu(x):
    return np.maximum(x, 0)


def to_nhwc(x_chw):
    return np.ascontiguousarray(x_chw.transpose(0, 2, 3, 1)).astype(np.float32)


def w(*shape, s=0.5):
    return RNG.normal(0, s, shape).astype(np.float32)


def if_node(shape, thr=1.0):
    return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, thr, np.float32))


def lif_node(shape):
    return nir.LIF(tau=np.full(shape, 0.02, np.float32), r=np.ones(shape, np.float32),
                   v_leak=np.zeros(shape, np.float32), v_threshold=np.full(shape, 0.7, np.float32))


def write(tmp_path, nodes, edges, name="net.nir", type_check=True):
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=type_check)
    path = tmp_path / name
    nir.write(str(path), graph)
    return str(path)


def chain(names):
    return [(a, b) for a, b in zip(names, names[1:])]


# -- the main network: conv-IF-avgpool-conv-LIF-flatten-affine-IF ---------------------------------
def main_net():
    p = dict(w1=w(4, C, 3, 3), b1=w(4, s=0.2), w2=w(3, 4, 2, 2), b2=w(3, s=0.2), wa=w(5, 36, s=0.3), ba=w(5, s=0.2))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([C, H, W])}),
        "conv1": nir.Conv2d(input_shape=(H, W), weight=p["w1"], stride=1, padding=1, dilation=1, groups=1,
                            bias=p["b1"]),
        "if1": if_node((4, H, W)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(3, 2), weight=p["w2"], stride=(1, 1), padding=(1, 1), dilation=1,
                            groups=1, bias=p["b2"]),
        "lif2": lif_node((3, 4, 3)),
        "flat": nir.Flatten(input_type={"input": np.array([3, 4, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=p["wa"], bias=p["ba"]),
        "if3": if_node((5,), thr=0.5),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }
    names = ["input", "conv1", "if1", "pool", "conv2", "lif2", "flat", "fc", "if3", "output"]
    return nodes, chain(names), p


def main_ref(x, p):
    a = relu(ref_conv(x, p["w1"], p["b1"], pad=(1, 1)))
    a = ref_pool(a, 2, 2)
    a = relu(ref_conv(a, p["w2"], p["b2"], pad=(1, 1)))
    assert a.shape[1:] == (3, 4, 3)
    a = a.reshape(len(a), -1)  # CHW flatten order
    return relu(a @ p["wa"].T.astype(np.float64) + p["ba"])


def test_chain_matches_chw_reference(tmp_path):
    nodes, edges, p = main_net()
    path = write(tmp_path, nodes, edges)
    g = read_nir(path)
    assert g.input_shape == (H, W, C)
    assert [l.op for l in g.layers] == ["conv2d", "relu", "avgpool2d", "conv2d", "relu", "flatten", "dense", "relu"]
    assert g.layers[0].weight.shape == (3, 3, C, 4)
    assert g.layers[6].weight.shape == (36, 5)
    x = RNG.uniform(0, 1, (7, C, H, W)).astype(np.float32)
    out = forward(g, to_nhwc(x))
    ref = main_ref(x, p)
    assert np.any(ref > 0)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_flatten_rows_are_permuted_chw_to_hwc(tmp_path):
    nodes, edges, p = main_net()
    g = read_nir(write(tmp_path, nodes, edges))
    dense = g.layer("fc")
    c, h, wd = 3, 4, 3
    for ch in range(c):
        for y in range(h):
            for x in range(wd):
                np.testing.assert_array_equal(dense.weight[(y * wd + x) * c + ch],
                                              p["wa"][:, ch * h * wd + y * wd + x])


def test_source_records_nir_neurons(tmp_path):
    nodes, edges, _ = main_net()
    path = write(tmp_path, nodes, edges)
    g = read_nir(path)
    assert g.source["format"] == "nir"
    assert g.source["path"] == path
    assert g.source["nir_version"] == nir.version
    neurons = g.source["nir_neurons"]
    assert set(neurons) == {"if1", "lif2", "if3"}
    assert neurons["if1"]["type"] == "IF" and neurons["if1"]["v_threshold"] == 1.0
    assert neurons["if3"]["v_threshold"] == 0.5
    assert neurons["lif2"]["type"] == "LIF" and neurons["lif2"]["tau"] == pytest.approx(0.02)
    assert neurons["lif2"]["v_threshold"] == pytest.approx(0.7)
    json.dumps(g.source)  # provenance-ready


def test_non_uniform_neuron_params_are_plain_lists(tmp_path):
    thr = RNG.uniform(0.5, 1.5, 3).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "fc": nir.Affine(weight=w(3, 4), bias=w(3)),
        "lif": nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=thr),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    g = read_nir(write(tmp_path, nodes, chain(list(nodes))))
    assert g.input_shape == (1, 1, 4)
    got = g.source["nir_neurons"]["lif"]["v_threshold"]
    assert isinstance(got, list)
    np.testing.assert_allclose(got, thr, rtol=1e-6)


def test_sumpool_scale_same_padding_stride_linear_cubalif(tmp_path):
    p = dict(w1=w(3, C, 3, 3), b1=w(3, s=0.2), s1=RNG.uniform(0.5, 2, 3).astype(np.float32),
             w2=w(4, 3, 3, 3), wl=w(4, 4, s=0.3))
    # conv1 'same' -> (3,6,5), Scale per channel (folded), CubaLIF, SumPool 2x2 s1 -> (3,5,4),
    # conv2 stride 2 pad 0 -> (4,2,1), Threshold, Scale 0.5 (carried), flatten (start_dim 1, the
    # PyTorch convention) -> 8? no: (4,2,1) -> 8 features, then Linear 8 -> 4
    p["wl"] = w(4, 8, s=0.3)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([C, H, W])}),
        "conv1": nir.Conv2d(input_shape=(H, W), weight=p["w1"], stride=1, padding="same", dilation=1, groups=1,
                            bias=p["b1"]),
        "scale1": nir.Scale(scale=np.broadcast_to(p["s1"][:, None, None], (3, H, W)).copy()),
        "cuba": nir.CubaLIF(tau_syn=np.full((3, H, W), 0.01), tau_mem=np.full((3, H, W), 0.02),
                            r=np.ones((3, H, W)), v_leak=np.zeros((3, H, W)), v_threshold=np.ones((3, H, W))),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(5, 4), weight=p["w2"], stride=2, padding=0, dilation=1, groups=1,
                            bias=np.zeros(4, np.float32)),
        "thr": nir.Threshold(threshold=np.zeros((4, 2, 1))),
        "half": nir.Scale(scale=np.full((4, 2, 1), 0.5, np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 2, 1])}, start_dim=0),
        "lin": nir.Linear(weight=p["wl"]),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    g = read_nir(write(tmp_path, nodes, chain(list(nodes))))
    assert [l.op for l in g.layers] == ["conv2d", "relu", "avgpool2d", "conv2d", "relu", "flatten", "dense"]
    assert g.layer("conv2").bias is None  # an all-zero bias is dropped (no constant current)
    x = RNG.uniform(0, 1, (5, C, H, W)).astype(np.float32)
    a = relu(ref_conv(x, p["w1"], p["b1"], pad=(1, 1)) * p["s1"][None, :, None, None])
    a = ref_pool(a, 2, 1, reduce=np.sum)
    a = 0.5 * relu(ref_conv(a, p["w2"], None, stride=(2, 2)))
    assert a.shape[1:] == (4, 2, 1)
    ref = a.reshape(len(a), -1) @ p["wl"].T.astype(np.float64)
    out = forward(g, to_nhwc(x))
    assert np.any(np.abs(ref) > 0.1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def residual_net():
    p = dict(w1=w(3, C, 3, 3), wb=w(3, 3, 3, 1), wc=w(3, 3, 1, 1), bc=w(3, s=0.2), wa=w(4, 90, s=0.2))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([C, H, W])}),
        "conv_a": nir.Conv2d(input_shape=(H, W), weight=p["w1"], stride=1, padding=1, dilation=1, groups=1,
                             bias=np.zeros(3)),
        "if_a": if_node((3, H, W)),
        "conv_b": nir.Conv2d(input_shape=(H, W), weight=p["wb"], stride=1, padding=(1, 0), dilation=1, groups=1,
                             bias=np.zeros(3)),
        "conv_c": nir.Conv2d(input_shape=(H, W), weight=p["wc"], stride=1, padding=0, dilation=1, groups=1,
                             bias=p["bc"]),
        "if_sum": if_node((3, H, W)),
        "flat": nir.Flatten(input_type={"input": np.array([3, H, W])}),  # start_dim=1: the PyTorch convention
        "fc": nir.Affine(weight=p["wa"], bias=np.zeros(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("input", "conv_a"), ("conv_a", "if_a"), ("if_a", "conv_b"), ("if_a", "conv_c"),
             ("conv_b", "if_sum"), ("conv_c", "if_sum"), ("if_sum", "flat"), ("flat", "fc"), ("fc", "output")]
    return nodes, edges, p


def residual_ref(x, p):
    a = relu(ref_conv(x, p["w1"], None, pad=(1, 1)))
    s = relu(ref_conv(a, p["wb"], None, pad=(1, 0)) + ref_conv(a, p["wc"], p["bc"]))
    return s.reshape(len(s), -1) @ p["wa"].T.astype(np.float64)


def test_two_edges_into_a_node_are_summed(tmp_path):
    nodes, edges, p = residual_net()
    # nir 1.0.8's type check rejects the non-square (3, 1) kernel of conv_b (it takes weight.shape[2]
    # as the kernel size of both axes) and this exporter-style start_dim=1 Flatten; write unchecked
    g = read_nir(write(tmp_path, nodes, edges, type_check=False))
    add = [l for l in g.layers if l.op == "add"]
    assert len(add) == 1 and set(add[0].inputs) == {"conv_b", "conv_c"}
    x = RNG.uniform(0, 1, (4, C, H, W)).astype(np.float32)
    np.testing.assert_allclose(forward(g, to_nhwc(x)), residual_ref(x, p), rtol=1e-5, atol=1e-5)


def test_nested_subgraph_is_inlined(tmp_path):
    nodes, edges, p = main_net()
    inner_names = ["conv2", "lif2"]
    inner = nir.NIRGraph(
        nodes={"in": nir.Input(input_type={"input": np.array([4, 3, 2])}),
               **{k: nodes.pop(k) for k in inner_names},
               "out": nir.Output(output_type={"output": np.array([3, 4, 3])})},
        edges=chain(["in"] + inner_names + ["out"]))
    nodes["block"] = inner
    edges = chain(["input", "conv1", "if1", "pool", "block", "flat", "fc", "if3", "output"])
    g = read_nir(write(tmp_path, nodes, edges))
    assert "block.conv2" in [l.name for l in g.layers]
    x = RNG.uniform(0, 1, (3, C, H, W)).astype(np.float32)
    np.testing.assert_allclose(forward(g, to_nhwc(x)), main_ref(x, p), rtol=1e-5, atol=1e-5)


def test_imported_graph_converts(tmp_path):
    from eventsnn.convert import convert

    nodes, edges, _ = main_net()
    g = read_nir(write(tmp_path, nodes, edges))
    x = to_nhwc(RNG.uniform(0, 1, (16, C, H, W)).astype(np.float32))
    net, report = convert(g, x, method="max")
    assert [l.kind for l in net.layers] == ["conv2d", "avgpool2d", "conv2d", "flatten", "dense"]
    assert net.provenance["source"]["nir_neurons"]["if3"]["v_threshold"] == 0.5


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Delay", "I"])
def test_unsupported_node_is_named(tmp_path, kind):
    extra = nir.Delay(delay=np.ones(3)) if kind == "Delay" else nir.I(r=np.ones(3))
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}), "fc": nir.Affine(weight=w(3, 4), bias=w(3)),
             "odd": extra, "output": nir.Output(output_type={"output": np.array([3])})}
    path = write(tmp_path, nodes, chain(list(nodes)))
    with pytest.raises(ConversionError, match=rf"node 'odd' \({kind}\) is not supported; supported: .*Conv2d") as e:
        read_nir(path)
    assert path in str(e.value)


def test_text_file(tmp_path):
    path = tmp_path / "model.nir"
    path.write_text("this is not a NIR graph\n")
    with pytest.raises(ConversionError, match="not a readable NIR file") as e:
        read_nir(path)
    assert str(path) in str(e.value)


def test_truncated_file(tmp_path):
    nodes, edges, _ = main_net()
    good = write(tmp_path, nodes, edges)
    data = open(good, "rb").read()
    bad = tmp_path / "truncated.nir"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="not a readable NIR") as e:
        read_nir(bad)
    assert str(bad) in str(e.value)


def test_hdf5_without_nir_graph(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(ConversionError, match="not a NIR file"):
        read_nir(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConversionError, match="no such NIR file"):
        read_nir(tmp_path / "absent.nir")


def test_cycle_is_rejected(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Affine(weight=w(3, 3), bias=w(3)),
             "lif": lif_node((3,)), "output": nir.Output(output_type={"output": np.array([3])})}
    edges = chain(list(nodes)) + [("lif", "fc")]
    with pytest.raises(ConversionError, match="cycle"):
        read_nir(write(tmp_path, nodes, edges, type_check=False))


@pytest.mark.parametrize("field,value,match", [
    ("dilation", 2, "dilation"),
    ("groups", 2, "groups"),
    ("padding", "same-even", "padding='same'"),
])
def test_bad_conv(tmp_path, field, value, match):
    kwargs = dict(input_shape=(H, W), weight=w(3, C, 3, 3), stride=1, padding=1, dilation=1, groups=1,
                  bias=np.zeros(3))
    if value == "same-even":
        kwargs.update(weight=w(3, C, 2, 2), padding="same")
    elif field == "groups":
        kwargs.update(groups=2, weight=w(4, 1, 3, 3), bias=np.zeros(4))
    else:
        kwargs[field] = value
    nodes = {"input": nir.Input(input_type={"input": np.array([C, H, W])}), "conv": nir.Conv2d(**kwargs),
             "output": nir.Output(output_type={"output": np.array([3, H, W])})}
    with pytest.raises(ConversionError, match=rf"node 'conv' \(Conv2d\).*{match}"):
        read_nir(write(tmp_path, nodes, chain(list(nodes)), type_check=False))


def test_sumpool_into_output_is_rejected(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([C, H, W])}),
             "conv": nir.Conv2d(input_shape=(H, W), weight=w(3, C, 3, 3), stride=1, padding=1, dilation=1,
                                groups=1, bias=np.zeros(3)),
             "if": if_node((3, H, W)),
             "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "output": nir.Output(output_type={"output": np.array([3, 3, 2])})}
    with pytest.raises(ConversionError, match="reaches the graph output"):
        read_nir(write(tmp_path, nodes, chain(list(nodes)), type_check=False))


def test_partial_flatten_is_rejected(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([C, H, W])}),
             "flat": nir.Flatten(input_type={"input": np.array([C, H, W])}, start_dim=2, end_dim=-1),
             "output": nir.Output(output_type={"output": np.array([C, H, W])})}
    with pytest.raises(ConversionError, match=r"node 'flat' \(Flatten\).*full flattens"):
        read_nir(write(tmp_path, nodes, chain(list(nodes)), type_check=False))


def test_without_nir_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ConversionError, match=r"pip install eventsnn\[nir\]"):
        read_nir(tmp_path / "x.nir")
