"""read_onnx: ONNX models built with onnx.helper must match onnxruntime after import."""

import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from eventsnn.ann import ConversionError, forward  # noqa: E402
from eventsnn.io.onnx_import import read_onnx  # noqa: E402

RNG = np.random.default_rng(1234)


class Builder:
    """Tiny helper: accumulate nodes and initializers, then write a checked model."""

    def __init__(self, input_shape):
        self.input_shape = list(input_shape)
        self.nodes, self.inits, self.n = [], [], 0
        self.last = "x"

    def const(self, arr, name=None):
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def node(self, op, inputs, name=None, **attrs):
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name or f"{op.lower()}{self.n}", **attrs))
        self.last = out
        return out

    def conv(self, x, ci, co, k, stride=1, pad=0, bias=True):
        w = self.const(RNG.normal(0, 0.4, (co, ci, k, k)))
        ins = [x, w] + ([self.const(RNG.normal(0, 0.2, co))] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def gemm(self, x, fi, fo, trans_b=True):
        w = RNG.normal(0, 0.3, (fo, fi) if trans_b else (fi, fo))
        return self.node("Gemm", [x, self.const(w), self.const(RNG.normal(0, 0.2, fo))], transB=int(trans_b))

    def save(self, path, rank=2):
        out = self.last
        graph = helper.make_graph(
            self.nodes, "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [f"d{i}" for i in range(rank)])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return str(path)


def check_matches(path, shape, n=3):
    x = RNG.normal(0, 1, (n,) + tuple(shape)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    graph = read_onnx(path)
    xin = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.reshape(n, 1, 1, -1)
    got = forward(graph, xin)
    if want.ndim == 4:  # compare feature maps channel-last
        want = want.transpose(0, 2, 3, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    return graph


def test_cnn_conv_bn_pools_flatten_gemm(tmp_path):
    b = Builder(["N", 3, 16, 14])
    t = b.conv("x", 3, 4, 3, stride=1, pad=1)
    gamma, beta = RNG.uniform(0.5, 1.5, 4), RNG.normal(0, 0.2, 4)
    mean, var = RNG.normal(0, 0.3, 4), RNG.uniform(0.5, 2.0, 4)
    t = b.node("BatchNormalization", [t] + [b.const(v) for v in (gamma, beta, mean, var)], epsilon=1e-3)
    t = b.node("Relu", [t])
    t = b.node("AveragePool", [t], kernel_shape=[2, 2], strides=[2, 2])       # 8x7
    t = b.conv(t, 4, 6, 3, stride=2, pad=0)                                   # 3x3
    t = b.node("Relu", [t])
    t = b.node("MaxPool", [t], kernel_shape=[2, 2], strides=[1, 1])           # 2x2
    t = b.node("Flatten", [t])                                                # 24
    t = b.gemm(t, 24, 10, trans_b=True)
    t = b.node("Relu", [t])
    t = b.node("Dropout", [t])
    b.gemm(t, 10, 5, trans_b=False)
    graph = check_matches(b.save(tmp_path / "cnn.onnx"), (3, 16, 14))
    assert graph.input_shape == (16, 14, 3)
    assert [layer.op for layer in graph.layers] == [
        "conv2d", "batchnorm", "relu", "avgpool2d", "conv2d", "relu", "maxpool2d", "flatten",
        "dense", "relu", "dropout", "dense"]
    assert graph.layers[0].weight.shape == (3, 3, 3, 4)
    assert graph.layers[0].padding == (1, 1) and graph.layers[4].stride == (2, 2)
    assert graph.source == {"format": "onnx", "path": str(tmp_path / "cnn.onnx"), "producer": "test"}
    assert graph.layers[0].inputs == ("input",)
    assert len({layer.name for layer in graph.layers}) == len(graph.layers)


def test_matmul_add_dense_and_constant_reshape(tmp_path):
    b = Builder([1, 2, 3, 4])
    shape = b.node("Constant", [], value=numpy_helper.from_array(np.array([1, -1], np.int64)))
    t = b.node("Reshape", ["x", shape])                                       # 24, CHW order
    t = b.node("MatMul", [t, b.const(RNG.normal(0, 0.3, (24, 7)))])
    t = b.node("Add", [t, b.const(RNG.normal(0, 0.2, 7))])
    t = b.node("Relu", [t])
    t = b.node("MatMul", [t, b.const(RNG.normal(0, 0.3, (7, 3)))])
    b.node("Add", [b.const(RNG.normal(0, 0.2, (1, 3))), t])                   # bias on the left
    graph = check_matches(b.save(tmp_path / "mm.onnx"), (2, 3, 4), n=1)
    assert [layer.op for layer in graph.layers] == ["flatten", "dense", "relu", "dense"]
    assert graph.layers[1].bias.shape == (7,) and graph.layers[3].bias.shape == (3,)


def test_residual_block(tmp_path):
    b = Builder(["N", 4, 6, 5])
    skip = b.node("Relu", [b.conv("x", 4, 4, 1)])
    t = b.node("Relu", [b.conv(skip, 4, 4, 3, pad=1)])
    t = b.conv(t, 4, 4, 3, pad=1, bias=False)
    t = b.node("Add", [t, b.const(RNG.normal(0, 0.2, (1, 4, 1, 1)))])         # folded conv bias
    t = b.node("Add", [t, skip])
    b.node("Relu", [t])
    graph = check_matches(b.save(tmp_path / "res.onnx", rank=4), (4, 6, 5))
    add = [layer for layer in graph.layers if layer.op == "add"][0]
    assert len(add.inputs) == 2 and graph.layers[1].name in add.inputs


def test_global_average_pool(tmp_path):
    b = Builder(["N", 3, 5, 7])
    t = b.node("Relu", [b.conv("x", 3, 6, 3, pad=1)])
    t = b.node("GlobalAveragePool", [t])
    t = b.node("Flatten", [t])
    b.gemm(t, 6, 4)
    graph = check_matches(b.save(tmp_path / "gap.onnx"), (3, 5, 7))
    pool = [layer for layer in graph.layers if layer.op == "avgpool2d"][0]
    assert pool.kernel == (5, 7)


@pytest.mark.parametrize("with_bn", [False, True])
def test_flatten_order_non_square(tmp_path, with_bn):
    """Dense rows must be permuted from CHW (PyTorch) into HWC flatten order."""
    b = Builder(["N", 3, 4, 5])
    t = b.node("Flatten", ["x"])
    if with_bn:  # per-feature BN on the CHW-ordered flat vector: parameters permuted too
        params = [RNG.uniform(0.5, 1.5, 60), RNG.normal(0, 0.5, 60), RNG.normal(0, 0.5, 60), RNG.uniform(0.5, 2, 60)]
        t = b.node("BatchNormalization", [t] + [b.const(p) for p in params])
        t = b.node("Relu", [t])
    b.gemm(t, 60, 6)
    path = b.save(tmp_path / "flat.onnx")
    graph = check_matches(path, (3, 4, 5))
    # The check is meaningful: the unpermuted ONNX weight gives a different answer.
    w_onnx = numpy_helper.to_array(b.inits[-2]).T
    dense = graph.layers[-1]
    assert not np.allclose(dense.weight, w_onnx)
    np.testing.assert_array_equal(dense.weight, w_onnx.reshape(3, 4, 5, 6).transpose(1, 2, 0, 3).reshape(60, 6))


def test_flat_input(tmp_path):
    b = Builder(["N", 8])
    b.node("Relu", [b.gemm("x", 8, 4)])
    graph = check_matches(b.save(tmp_path / "flatin.onnx"), (8,))
    assert graph.input_shape == (1, 1, 8)


# -- bad input ---------------------------------------------------------------

def test_unsupported_op_names_node_and_op(tmp_path):
    b = Builder(["N", 2, 3, 3])
    b.node("Sigmoid", ["x"], name="squash")
    path = b.save(tmp_path / "sig.onnx", rank=4)
    with pytest.raises(ConversionError, match=r"node 'squash' \(op Sigmoid\) is not supported") as exc:
        read_onnx(path)
    assert path in str(exc.value) and "Conv" in str(exc.value)


def test_asymmetric_pads(tmp_path):
    b = Builder(["N", 2, 5, 5])
    b.node("Conv", ["x", b.const(RNG.normal(size=(3, 2, 3, 3)))], name="c_asym", pads=[0, 0, 1, 1])
    with pytest.raises(ConversionError, match="c_asym.*asymmetric padding"):
        read_onnx(b.save(tmp_path / "asym.onnx", rank=4))


def test_truncated_file(tmp_path):
    b = Builder(["N", 3, 4, 5])
    b.gemm(b.node("Flatten", ["x"]), 60, 6)
    data = open(b.save(tmp_path / "ok.onnx"), "rb").read()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="trunc.onnx"):
        read_onnx(bad)


def test_text_file(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not an ONNX model\njust some text\n")
    with pytest.raises(ConversionError, match="notes.onnx"):
        read_onnx(bad)


def test_missing_onnx_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConversionError, match=r"pip install eventsnn\[onnx\]"):
        read_onnx(tmp_path / "whatever.onnx")
