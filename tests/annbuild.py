"""Build ANN graphs for tests and write them as real ONNX files (channel-first, as PyTorch exports)."""

from __future__ import annotations

import numpy as np

from eventsnn.ann import AnnGraph, AnnLayer


class AnnBuilder:
    """Accumulate a channel-last AnnGraph with He-initialised weights."""

    def __init__(self, input_shape, seed=0):
        self.rng = np.random.default_rng(seed)
        self.shape = tuple(input_shape)
        self.layers = []
        self.input_shape = tuple(input_shape)
        self.last = "input"

    def _add(self, op, name=None, inputs=None, **kw):
        name = name or f"{op}{len(self.layers)}"
        layer = AnnLayer(name, op, tuple(inputs or (self.last,)), **kw)
        self.layers.append(layer)
        self.last = name
        return name

    def conv(self, cout, k=3, stride=1, pad=1, bias=True, inputs=None):
        cin = self.shape[2]
        w = self.rng.normal(0, np.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)).astype(np.float32)
        b = self.rng.normal(0, 0.05, cout).astype(np.float32) if bias else None
        h = (self.shape[0] + 2 * pad - k) // stride + 1
        wd = (self.shape[1] + 2 * pad - k) // stride + 1
        self.shape = (h, wd, cout)
        return self._add("conv2d", weight=w, bias=b, stride=(stride, stride), padding=(pad, pad), inputs=inputs)

    def bn(self):
        c = self.shape[-1]
        r = self.rng
        return self._add("batchnorm", bn={"gamma": r.uniform(0.5, 1.5, c).astype(np.float32),
                                          "beta": r.normal(0, 0.1, c).astype(np.float32),
                                          "mean": r.normal(0, 0.1, c).astype(np.float32),
                                          "var": r.uniform(0.5, 1.5, c).astype(np.float32), "eps": 1e-5})

    def relu(self):
        return self._add("relu")

    def pool(self, op="avgpool2d", k=2):
        h, w, c = self.shape
        self.shape = (h // k, w // k, c)
        return self._add(op, kernel=(k, k), stride=(k, k))

    def flatten(self):
        self.shape = (int(np.prod(self.shape)),)
        return self._add("flatten")

    def dense(self, n, bias=True):
        nin = self.shape[0]
        w = self.rng.normal(0, np.sqrt(2.0 / nin), (nin, n)).astype(np.float32)
        b = self.rng.normal(0, 0.05, n).astype(np.float32) if bias else None
        self.shape = (n,)
        return self._add("dense", weight=w, bias=b)

    def dropout(self):
        return self._add("dropout")

    def graph(self) -> AnnGraph:
        return AnnGraph(self.input_shape, list(self.layers), {"format": "test"})


def to_onnx(graph: AnnGraph, path, opset=17):
    """Write ``graph`` as an ONNX model in NCHW layout (weights OIHW, Gemm rows in CHW order)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w, c = graph.input_shape
    nodes, inits = [], []
    shapes = {"input": (h, w, c)}
    names = {"input": "input"}

    def const(arr, name):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    for layer in graph.layers:
        src = [names[i] for i in layer.inputs]
        out = layer.name
        shape = shapes[layer.inputs[0]]
        if layer.op == "conv2d":
            ins = src + [const(layer.weight.transpose(3, 2, 0, 1), out + ".w")]
            if layer.bias is not None:
                ins.append(const(layer.bias, out + ".b"))
            kh, kw = layer.weight.shape[:2]
            nodes.append(helper.make_node("Conv", ins, [out], name=out, kernel_shape=[kh, kw],
                                          strides=list(layer.stride), pads=list(layer.padding) * 2))
            oh = (shape[0] + 2 * layer.padding[0] - kh) // layer.stride[0] + 1
            ow = (shape[1] + 2 * layer.padding[1] - kw) // layer.stride[1] + 1
            shapes[out] = (oh, ow, layer.weight.shape[3])
        elif layer.op == "dense":
            weight = layer.weight
            prev = layer.inputs[0]
            flat_of = graph.layer(prev).inputs[0] if prev != "input" and graph.layer(prev).op == "flatten" else None
            if flat_of is not None and len(shapes[flat_of]) == 3:
                fh, fw, fc = shapes[flat_of]
                # rows HWC -> CHW: row (y*W + x)*C + c moves to c*H*W + y*W + x
                weight = weight.reshape(fh, fw, fc, -1).transpose(2, 0, 1, 3).reshape(fh * fw * fc, -1)
            b = layer.bias if layer.bias is not None else np.zeros(weight.shape[1], np.float32)
            nodes.append(helper.make_node("Gemm", src + [const(weight.T, out + ".w"), const(b, out + ".b")],
                                          [out], name=out, transB=1))
            shapes[out] = (weight.shape[1],)
        elif layer.op == "relu":
            nodes.append(helper.make_node("Relu", src, [out], name=out))
            shapes[out] = shape
        elif layer.op in ("avgpool2d", "maxpool2d"):
            op = "AveragePool" if layer.op == "avgpool2d" else "MaxPool"
            nodes.append(helper.make_node(op, src, [out], name=out, kernel_shape=list(layer.kernel),
                                          strides=list(layer.stride)))
            shapes[out] = ((shape[0] - layer.kernel[0]) // layer.stride[0] + 1,
                           (shape[1] - layer.kernel[1]) // layer.stride[1] + 1, shape[2])
        elif layer.op == "flatten":
            nodes.append(helper.make_node("Flatten", src, [out], name=out, axis=1))
            shapes[out] = (int(np.prod(shape)),)
        elif layer.op == "batchnorm":
            bn = layer.bn
            ins = src + [const(bn[k], f"{out}.{k}") for k in ("gamma", "beta", "mean", "var")]
            nodes.append(helper.make_node("BatchNormalization", ins, [out], name=out, epsilon=float(bn["eps"])))
            shapes[out] = shape
        elif layer.op == "dropout":
            nodes.append(helper.make_node("Dropout", src, [out], name=out))
            shapes[out] = shape
        elif layer.op == "add":
            nodes.append(helper.make_node("Add", src, [out], name=out))
            shapes[out] = shape
        else:
            raise ValueError(layer.op)
        names[layer.name] = out
    final = shapes[graph.layers[-1].name]
    out_shape = ["N", final[2], final[0], final[1]] if len(final) == 3 else ["N", final[0]]
    g = helper.make_graph(nodes, "ann", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
                          [helper.make_tensor_value_info(graph.layers[-1].name, TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="eventsnn-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
