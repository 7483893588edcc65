"""Import a PyTorch-style (NCHW) ONNX model as a channel-last :class:`AnnGraph`.

``read_onnx(path)`` walks the ONNX graph node by node, tracks the logical
shape of every tensor (``(C, H, W)`` for feature maps, ``(F,)`` for flat
vectors) with its own shape inference, and emits :class:`AnnLayer` objects in
the layout fixed by :mod:`eventsnn.ann`:

* conv weights OIHW -> (kh, kw, C_in, C_out);
* Gemm / MatMul weights -> (N_in, N_out) (``transB`` and ``alpha``/``beta``
  folded in);
* a Flatten (or a Reshape to 2-D) of a (C, H, W) map yields, in ONNX, a vector
  in CHW order, while :func:`eventsnn.ann.forward` flattens channel-last (HWC).
  The flat tensor remembers the (C, H, W) it came from, and the first dense
  layer (or flat BatchNormalization) that reads it has its rows / parameters
  permuted from CHW into HWC order. A model whose *output* is such a flattened
  map (no dense layer after the flatten) gives its output in HWC order.

Supported ops: Conv (group 1, dilation 1, symmetric padding), Gemm, MatMul
(+ Add of a constant as the bias), Relu, AveragePool, GlobalAveragePool,
MaxPool (no padding), Flatten, Reshape to 2-D, BatchNormalization, Dropout,
Add of two activations, Identity, Constant, Softmax (over the features of a
flat tensor, or the channels of a map with opset >= 13; it becomes a
``softmax`` layer, which conversion accepts only as the model's output and
drops, see :func:`eventsnn.convert.simplify`). Anything else raises
:class:`~eventsnn.ann.ConversionError` naming the file, the node and the op.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .. import limits
from .safe_h5 import require_regular
from ..ann import AnnGraph, AnnLayer, ConversionError, prune

SUPPORTED_OPS = (
    "Conv", "Gemm", "MatMul", "Add", "Relu", "AveragePool", "GlobalAveragePool",
    "MaxPool", "Flatten", "Reshape", "BatchNormalization", "Dropout", "Identity",
    "Constant", "Softmax",
)


@dataclass
class _Tensor:
    """An activation: the layer producing it and its logical shape (no batch)."""

    layer: str             # AnnLayer name, or "input"
    shape: tuple           # (C, H, W) or (F,)
    chw: tuple | None = None  # flat tensor in ONNX CHW order of this (C, H, W) map

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


def _chw_to_hwc_rows(arr: np.ndarray, chw: tuple) -> np.ndarray:
    """Reorder axis 0 of ``arr`` from CHW flatten order into HWC order."""
    c, h, w = chw
    rest = arr.shape[1:]
    return arr.reshape((c, h, w) + rest).transpose((1, 2, 0) + tuple(range(3, 3 + len(rest)))) \
        .reshape((c * h * w,) + rest)


def read_onnx(path) -> AnnGraph:
    """Read the ONNX model at ``path`` into a channel-last :class:`AnnGraph`."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ConversionError(
            "reading ONNX models needs the 'onnx' package: pip install eventsnn[onnx]"
        ) from exc

    path = os.fspath(path)
    require_regular(path, ConversionError, "ONNX model")
    # protobuf parsing holds the file and its parsed copy: refuse what cannot fit
    limits.check_bytes(3 * os.path.getsize(path), f"{path}: reading this ONNX model")
    try:
        # External data (tensors kept in other files) is never followed: a model
        # must not make eventsnn read files it was not given.
        model = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # DecodeError, truncated/garbled protobuf
        raise ConversionError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise ConversionError(f"{path}: initializer {tensor.name!r} keeps its data in another file "
                                  f"({where!r}); eventsnn reads self-contained ONNX models only "
                                  f"(save with save_as_external_data=False)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(f"{path}: invalid ONNX model: {exc}") from exc
    return _Importer(path, model, onnx, numpy_helper).run()


class _Importer:
    def __init__(self, path, model, onnx, numpy_helper):
        self.path = path
        self.model = model
        self.onnx = onnx
        self.nh = numpy_helper
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {}
        self.acts: dict[str, _Tensor] = {}
        self.layers: list[AnnLayer] = []
        self.by_name: dict[str, AnnLayer] = {}
        self.used_names = {"input"}
        self.uses: dict[str, int] = {}
        self.graph_outputs = [o.name for o in self.graph.output]
        self.opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)

    # -- helpers -----------------------------------------------------------
    def fail(self, node, msg):
        raise ConversionError(f"{self.path}: node {node.name!r} (op {node.op_type}): {msg}")

    def attrs(self, node) -> dict:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def unique(self, node) -> str:
        base = node.name or (node.output[0] if node.output else node.op_type)
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def act(self, node, tensor: str) -> _Tensor:
        if tensor in self.acts:
            return self.acts[tensor]
        if tensor in self.consts:
            self.fail(node, f"input {tensor!r} is a constant where an activation is expected")
        self.fail(node, f"input {tensor!r} is not produced by any supported node")

    def const(self, node, tensor: str, what: str) -> np.ndarray:
        if tensor in self.consts:
            return self.consts[tensor]
        self.fail(node, f"{what} {tensor!r} must be a constant (initializer or Constant node)")

    def emit(self, node, op, inp: list, shape, chw=None, **kw) -> _Tensor:
        layer = AnnLayer(name=self.unique(node), op=op, inputs=tuple(t.layer for t in inp), **kw)
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        out = _Tensor(layer.name, tuple(int(s) for s in shape), chw)
        self.acts[node.output[0]] = out
        return out

    def only_first_output(self, node):
        for extra in node.output[1:]:
            if extra and (self.uses.get(extra, 0) or extra in self.graph_outputs):
                self.fail(node, f"secondary output {extra!r} is used; only the first output is supported")

    # -- input -------------------------------------------------------------
    def read_input(self):
        init_names = {t.name for t in self.graph.initializer}
        inputs = [i for i in self.graph.input if i.name not in init_names]
        if len(inputs) != 1:
            raise ConversionError(
                f"{self.path}: expected exactly one graph input, found {len(inputs)} "
                f"({[i.name for i in inputs]})")
        inp = inputs[0]
        ttype = inp.type.tensor_type
        if not ttype.HasField("shape"):
            raise ConversionError(f"{self.path}: graph input {inp.name!r} has no shape")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        bad = f"{self.path}: graph input {inp.name!r} has shape {dims}; expected (N, C, H, W) or (N, F) " \
              f"with fixed C, H, W / F"
        if len(dims) == 4 and all(d is not None and d > 0 for d in dims[1:]):
            c, h, w = dims[1:]
            self.acts[inp.name] = _Tensor("input", (c, h, w))
            return (h, w, c)
        if len(dims) == 2 and dims[1] is not None and dims[1] > 0:
            self.acts[inp.name] = _Tensor("input", (dims[1],))
            return (1, 1, dims[1])
        raise ConversionError(bad)

    def tensor(self, t, where: str) -> np.ndarray:
        """A TensorProto as an array; declared size, decoding and dtype checked (hostile files)."""
        count = 1
        for d in t.dims:
            count *= max(int(d), 0)
        limits.check_bytes(8 * count, f"{self.path}: {where} (dims {list(t.dims)})")
        try:
            arr = self.nh.to_array(t)
        except Exception as exc:  # noqa: BLE001 - onnx raises ValueError, TypeError, KeyError ... for bad tensors
            raise ConversionError(f"{self.path}: {where}: unreadable tensor ({type(exc).__name__}: {exc})") from None
        if arr.dtype.kind not in "fiub":
            raise ConversionError(f"{self.path}: {where}: dtype {arr.dtype} is not a real number type")
        return arr

    # -- main loop ---------------------------------------------------------
    def run(self) -> AnnGraph:
        for init in self.graph.initializer:
            self.consts[init.name] = self.tensor(init, f"initializer {init.name!r}")
        for node in self.graph.node:
            for t in node.input:
                if t:
                    self.uses[t] = self.uses.get(t, 0) + 1
        input_shape = self.read_input()

        for node in self.graph.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            if node.domain not in ("", "ai.onnx") or handler is None:
                raise ConversionError(
                    f"{self.path}: node {node.name!r} (op {node.op_type}) is not supported; "
                    f"supported: {', '.join(SUPPORTED_OPS)}")
            try:
                handler(node, self.attrs(node))
            except ConversionError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
                self.fail(node, f"malformed node ({type(exc).__name__}: {exc})")  # a damaged or hostile file

        if len(self.graph_outputs) != 1:
            raise ConversionError(
                f"{self.path}: expected exactly one graph output, found {len(self.graph_outputs)}")
        out = self.acts.get(self.graph_outputs[0])
        if out is None or out.layer == "input":
            raise ConversionError(
                f"{self.path}: graph output {self.graph_outputs[0]!r} is not produced by any layer")
        layers = self.prune(out.layer)
        return AnnGraph(
            input_shape=tuple(int(s) for s in input_shape),
            layers=layers,
            source={"format": "onnx", "path": self.path, "producer": self.model.producer_name},
        )

    def prune(self, output: str) -> list:
        return prune(self.layers, output)

    # -- ops ---------------------------------------------------------------
    def op_Constant(self, node, a):
        if "value" in a:
            self.consts[node.output[0]] = self.tensor(a["value"], f"node {node.name!r} (op Constant)")
            return
        for key in ("value_float", "value_int"):
            if key in a:
                self.consts[node.output[0]] = np.asarray(a[key])
                return
        for key in ("value_floats", "value_ints"):
            if key in a:
                self.consts[node.output[0]] = np.asarray(list(a[key]))
                return
        self.fail(node, f"unsupported Constant attribute(s) {sorted(a)}")

    def op_Identity(self, node, a):
        src = node.input[0]
        if src in self.consts:
            self.consts[node.output[0]] = self.consts[src]
        else:
            self.acts[node.output[0]] = self.act(node, src)

    def op_Conv(self, node, a):
        x = self.act(node, node.input[0])
        if not x.spatial:
            self.fail(node, f"input has shape {x.shape}; Conv needs a (C, H, W) map")
        w = self.const(node, node.input[1], "weight").astype(np.float32)
        if w.ndim != 4:
            self.fail(node, f"weight has shape {w.shape}; only 2-D convolution is supported")
        if a.get("group", 1) != 1:
            self.fail(node, f"group={a['group']} is unsupported (only group=1)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(node, f"dilations={list(a['dilations'])} are unsupported (only 1)")
        co, ci, kh, kw = w.shape
        c, h, wd = x.shape
        if ci != c:
            self.fail(node, f"weight expects {ci} input channels, input has {c}")
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
            self.fail(node, f"kernel_shape {list(a['kernel_shape'])} disagrees with weight {w.shape}")
        stride = tuple(int(s) for s in a.get("strides", [1, 1]))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID"):
            self.fail(node, f"auto_pad={auto_pad} is unsupported (use NOTSET with explicit pads, or VALID)")
        pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(a.get("pads", [0, 0, 0, 0]))
        t, l_, b, r = pads
        if t != b or l_ != r:
            self.fail(node, f"asymmetric padding pads={pads} is unsupported (need top==bottom, left==right)")
        padding = (int(t), int(l_))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node, node.input[2], "bias").astype(np.float32).reshape(-1)
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(node, f"kernel {(kh, kw)} does not fit the padded {h}x{wd} input")
        self.emit(node, "conv2d", [x], (co, oh, ow), weight=np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
                  bias=bias, kernel=(kh, kw), stride=stride, padding=padding)

    def _dense(self, node, x: _Tensor, weight: np.ndarray, bias):
        if x.spatial:
            self.fail(node, f"input has shape {x.shape}; a dense layer needs a flat (N, F) input "
                            f"(insert a Flatten)")
        if weight.ndim != 2 or weight.shape[0] != x.shape[0]:
            self.fail(node, f"weight of shape {weight.shape} does not fit an input of {x.shape[0]} features")
        if x.chw is not None:
            weight = _chw_to_hwc_rows(weight, x.chw)
        self.emit(node, "dense", [x], (weight.shape[1],),
                  weight=np.ascontiguousarray(weight, np.float32), bias=bias)

    def op_Gemm(self, node, a):
        if a.get("transA", 0):
            self.fail(node, "transA=1 is unsupported")
        x = self.act(node, node.input[0])
        b = self.const(node, node.input[1], "weight B").astype(np.float32)
        if b.ndim != 2:
            self.fail(node, f"weight B has shape {b.shape}; expected 2-D")
        weight = (b.T if a.get("transB", 0) else b) * np.float32(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node, node.input[2], "bias C").astype(np.float32)
            try:
                bias = np.broadcast_to(c, (1, weight.shape[1]))[0] * np.float32(a.get("beta", 1.0))
            except ValueError:
                self.fail(node, f"bias C of shape {c.shape} does not broadcast to ({weight.shape[1]},)")
            bias = np.array(bias, np.float32)
        self._dense(node, x, weight, bias)

    def op_MatMul(self, node, a):
        x = self.act(node, node.input[0])
        w = self.const(node, node.input[1], "weight (second MatMul input)").astype(np.float32)
        self._dense(node, x, w, None)

    def op_Add(self, node, a):
        i0, i1 = node.input[0], node.input[1]
        if i0 in self.consts and i1 in self.consts:
            self.consts[node.output[0]] = self.consts[i0] + self.consts[i1]
            return
        if i0 in self.consts or i1 in self.consts:
            act_name, c = (i1, self.consts[i0]) if i0 in self.consts else (i0, self.consts[i1])
            self._fold_bias(node, act_name, c.astype(np.float32))
            return
        x, y = self.act(node, i0), self.act(node, i1)
        if x.shape != y.shape:
            self.fail(node, f"Add of activations with shapes {x.shape} and {y.shape} (broadcasting unsupported)")
        if x.chw != y.chw:
            self.fail(node, "Add of flat activations with different flatten orders is unsupported")
        self.emit(node, "add", [x, y], x.shape, chw=x.chw)

    def _fold_bias(self, node, act_name, c):
        x = self.act(node, act_name)
        layer = self.by_name.get(x.layer)
        if (layer is None or layer.op not in ("dense", "conv2d") or self.uses.get(act_name, 0) != 1
                or act_name in self.graph_outputs):
            self.fail(node, "Add of an activation and a constant is supported only as the bias of the "
                            "Gemm/MatMul/Conv right before it")
        try:
            if layer.op == "dense":
                b = np.broadcast_to(c, (1,) + x.shape)[0]
            else:
                full = np.broadcast_to(c, (1,) + x.shape)[0]
                if not np.all(full == full[:, :1, :1]):
                    raise ValueError("not per-channel")
                b = full[:, 0, 0]
        except ValueError:
            self.fail(node, f"constant of shape {c.shape} is not a per-{'feature' if layer.op == 'dense' else 'channel'} "
                            f"bias for an activation of shape {x.shape}")
        layer.bias = np.array(b if layer.bias is None else layer.bias + b, np.float32)
        self.acts[node.output[0]] = x

    def op_Relu(self, node, a):
        x = self.act(node, node.input[0])
        self.emit(node, "relu", [x], x.shape, chw=x.chw)

    def op_Softmax(self, node, a):
        x = self.act(node, node.input[0])
        # Opset < 13 softmaxes the input coerced to 2-D at ``axis`` (default 1); opset >= 13 along
        # ``axis`` (default -1). Only the channel axis maps onto the last axis of eventsnn's layout.
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1))
        rank = len(x.shape) + 1
        axis = axis + rank if axis < 0 else axis
        if not x.spatial and axis == 1:
            pass  # (N, F): over the features, any opset
        elif x.spatial and axis == 1 and self.opset >= 13:
            pass  # (N, C, H, W) over C: the channel-last axis
        else:
            self.fail(node, f"softmax over axis {a.get('axis', 'default')} of an input of shape (N, "
                            f"{', '.join(map(str, x.shape))}) at opset {self.opset} is unsupported; only over "
                            f"the features (N, F) or the channels (N, C, H, W; opset >= 13)")
        self.emit(node, "softmax", [x], x.shape, chw=x.chw)

    def op_Dropout(self, node, a):
        self.only_first_output(node)
        if len(node.input) > 2 and node.input[2]:
            mode = self.consts.get(node.input[2])
            if mode is None or bool(np.asarray(mode)):
                self.fail(node, "training_mode must be a constant false")
        x = self.act(node, node.input[0])
        self.emit(node, "dropout", [x], x.shape, chw=x.chw)

    def op_BatchNormalization(self, node, a):
        self.only_first_output(node)
        if a.get("training_mode", 0):
            self.fail(node, "training_mode=1 is unsupported")
        if not a.get("spatial", 1):
            self.fail(node, "spatial=0 is unsupported")
        x = self.act(node, node.input[0])
        names = ("gamma", "beta", "mean", "var")
        bn = {}
        for key, t in zip(names, node.input[1:5]):
            v = self.const(node, t, key).astype(np.float32).reshape(-1)
            if v.shape[0] != x.shape[0]:
                self.fail(node, f"{key} has {v.shape[0]} entries, input has {x.shape[0]} channels")
            bn[key] = _chw_to_hwc_rows(v, x.chw) if x.chw is not None else v
        bn["eps"] = float(a.get("epsilon", 1e-5))
        self.emit(node, "batchnorm", [x], x.shape, chw=x.chw, bn=bn)

    def _pool(self, node, a, op):
        self.only_first_output(node)
        x = self.act(node, node.input[0])
        if not x.spatial:
            self.fail(node, f"input has shape {x.shape}; pooling needs a (C, H, W) map")
        c, h, w = x.shape
        kernel = tuple(int(k) for k in a["kernel_shape"])
        if len(kernel) != 2:
            self.fail(node, f"kernel_shape {list(kernel)} is not 2-D")
        stride = tuple(int(s) for s in a.get("strides", [1, 1]))
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID") or any(p != 0 for p in a.get("pads", [])):
            self.fail(node, "padded pooling is unsupported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.fail(node, "dilated pooling is unsupported")
        oh = (h - kernel[0]) // stride[0] + 1
        ow = (w - kernel[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(node, f"kernel {kernel} does not fit the {h}x{w} input")
        if a.get("ceil_mode", 0):
            if (math.ceil((h - kernel[0]) / stride[0]) + 1, math.ceil((w - kernel[1]) / stride[1]) + 1) != (oh, ow):
                self.fail(node, "ceil_mode=1 changes the output size here; unsupported")
        self.emit(node, op, [x], (c, oh, ow), kernel=kernel, stride=stride)

    def op_AveragePool(self, node, a):
        self._pool(node, a, "avgpool2d")

    def op_MaxPool(self, node, a):
        self._pool(node, a, "maxpool2d")

    def op_GlobalAveragePool(self, node, a):
        x = self.act(node, node.input[0])
        if not x.spatial:
            self.fail(node, f"input has shape {x.shape}; pooling needs a (C, H, W) map")
        c, h, w = x.shape
        self.emit(node, "avgpool2d", [x], (c, 1, 1), kernel=(h, w), stride=(h, w))

    def _flatten(self, node, x: _Tensor):
        if not x.spatial:
            self.acts[node.output[0]] = x  # (N, F) -> (N, F): nothing to do
            return
        c, h, w = x.shape
        self.emit(node, "flatten", [x], (c * h * w,), chw=(c, h, w) if h * w > 1 else None)

    def op_Flatten(self, node, a):
        if a.get("axis", 1) != 1:
            self.fail(node, f"axis={a['axis']} is unsupported (only axis=1)")
        self._flatten(node, self.act(node, node.input[0]))

    def op_Reshape(self, node, a):
        x = self.act(node, node.input[0])
        if len(node.input) > 1 and node.input[1]:
            shape = self.const(node, node.input[1], "shape")
        elif "shape" in a:
            shape = np.asarray(list(a["shape"]))
        else:
            self.fail(node, "no target shape")
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        f = int(np.prod(x.shape))
        ok = len(shape) == 2 and shape[0] in (-1, 0, 1) and (
            shape[1] == f or (shape[1] == -1 and shape[0] != -1))
        if not ok:
            self.fail(node, f"Reshape to {shape} is unsupported; only a flatten to (N, {f}) is")
        self._flatten(node, x)
