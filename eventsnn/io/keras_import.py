"""Import a Keras HDF5 model file (``model.save("x.h5")``) as an :class:`AnnGraph`.

Reads the legacy HDF5 format written by Keras 2 (``tf.keras``) and Keras 3 with
h5py alone: no TensorFlow or Keras is imported. The ``model_config`` JSON
attribute gives the architecture (``Sequential`` or ``Functional``/``Model``);
the weights lie under ``model_weights/<layer>/`` in the order of that group's
``weight_names`` attribute.

Keras is channel-last, like :mod:`eventsnn.ann`, so conv kernels (kh, kw, C_in,
C_out) and dense kernels (N_in, N_out) are taken as stored and a Flatten needs
no row permutation. Supported layers: InputLayer, Conv2D, Dense, Activation
('relu', 'linear' or 'softmax'), ReLU, Softmax (last axis), AveragePooling2D,
MaxPooling2D, GlobalAveragePooling2D, Flatten, BatchNormalization, Dropout (and
SpatialDropout2D), Add. A fused ``activation='relu'`` in Conv2D/Dense becomes a
separate ``relu`` layer named ``<layer>_relu``, a fused ``'softmax'`` a
``softmax`` layer named ``<layer>_softmax`` (conversion accepts a softmax only
as the model's output and drops it, see :func:`eventsnn.convert.simplify`;
``Dense(classes, activation='softmax')`` heads such as Keras' VGG16 convert).
Anything else raises
:class:`~eventsnn.ann.ConversionError` naming the path, the layer and its class.

Notes on the mapping:

* GlobalAveragePooling2D becomes an ``avgpool2d`` over the whole map, followed
  (unless ``keepdims=True``) by a ``flatten`` named ``<layer>_flatten``, so the
  shapes match Keras'.
* ``padding='same'`` is accepted where the padding it implies is symmetric
  (always so for an odd kernel with stride 1); pooling must not pad at all.
* A model whose input is a flat vector of F features gets
  ``input_shape = (1, 1, F)``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..ann import AnnGraph, AnnLayer, ConversionError
from ..errors import EventsnnError
from . import json_safe
from .safe_h5 import H5_ERRORS, open_h5

__all__ = ["read_keras_h5"]

_INPUT = "input"  # the name eventsnn.ann.forward gives the graph input
_DROPOUT = ("Dropout", "SpatialDropout2D")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def read_keras_h5(path) -> AnnGraph:
    """Read a Keras HDF5 model file and return its framework-neutral graph.

    The file is opened by :func:`.safe_h5.open_h5` (no external storage, links
    or virtual datasets; declared sizes within the memory limit).
    """
    path = os.fspath(path)
    try:
        with open_h5(path, ConversionError, "Keras model file") as f:
            return _read(f, path)
    except EventsnnError:
        raise
    except (*H5_ERRORS, RecursionError) as exc:
        # h5py raises these for truncated or damaged files.
        raise ConversionError(f"{path}: damaged Keras HDF5 file ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------- file level

def _attr_str(value):
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


def _read(f, path) -> AnnGraph:
    raw = f.attrs.get("model_config")
    if raw is None:
        raise ConversionError(f"{path}: no 'model_config' attribute; not a Keras model file "
                              "(a weights-only file, or not written by model.save)")
    try:
        text = _attr_str(raw)
    except UnicodeDecodeError:
        raise ConversionError(f"{path}: 'model_config' is not UTF-8 text") from None
    config = json_safe.loads(text, f"{path}: 'model_config'", ConversionError)
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ConversionError(f"{path}: 'model_config' is not a Keras model config "
                              "(expected an object with 'class_name' and 'config')")

    weights_root = f["model_weights"] if "model_weights" in f else f
    builder = _Builder(path, weights_root)
    cls = config["class_name"]
    if cls == "Sequential":
        builder.sequential(config["config"])
    elif cls in ("Functional", "Model"):
        builder.functional(config["config"])
    else:
        raise ConversionError(f"{path}: unsupported model class {cls!r} "
                              "(expected Sequential or Functional)")

    source = {
        "format": "keras-h5",
        "path": path,
        "keras_version": _attr_str(f.attrs.get("keras_version")
                                   or weights_root.attrs.get("keras_version")),
        "backend": _attr_str(f.attrs.get("backend") or weights_root.attrs.get("backend")),
    }
    return builder.graph(source)


# --------------------------------------------------------------------------- helpers

def _pair(value, what, where):
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], int):
        return (int(value[0]), int(value[0]))
    raise ConversionError(f"{where}: cannot read {what} {value!r}")


def _activation_name(act):
    """Normalise a serialised activation: a string, or (Keras 3) a dict."""
    if act is None:
        return "linear"
    if isinstance(act, str):
        return act.rsplit(".", 1)[-1]
    if isinstance(act, dict):
        inner = act.get("config")
        if isinstance(inner, str):  # {"class_name": "function", "config": "relu"}
            return inner
        cls = act.get("class_name")
        if cls == "ReLU" and _plain_relu(inner or {}):
            return "relu"
        if isinstance(cls, str):
            return cls
    return repr(act)


def _plain_relu(cfg):
    return (cfg.get("max_value") in (None,)
            and float(cfg.get("negative_slope", 0.0) or 0.0) == 0.0
            and float(cfg.get("threshold", 0.0) or 0.0) == 0.0)


def _same_pads(size, k, s, dilation=1):
    """Keras/TF 'same' padding (before, after) along one axis."""
    k_eff = (k - 1) * dilation + 1
    out = math.ceil(size / s)
    total = max((out - 1) * s + k_eff - size, 0)
    return total // 2, total - total // 2


def _tensor_refs(obj):
    """Keras tensor references [(layer, node, tensor)] found in a Keras 3 call's args."""
    refs = []
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            hist = obj.get("config", {}).get("keras_history")
            refs.append(tuple(hist))
        else:
            for v in obj.values():
                refs.extend(_tensor_refs(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            refs.extend(_tensor_refs(v))
    return refs


def _node_inputs(node):
    """Inbound tensors of one serialised call node, for Keras 2 and Keras 3 layouts."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        refs = _tensor_refs(node.get("args", []))
        return refs or _tensor_refs(node.get("kwargs", {}))
    # Keras 2: [["layer", node_index, tensor_index, {kwargs}], ...]
    refs = []
    for entry in node:
        if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
            refs.append(tuple(entry[:3]))
        elif isinstance(entry, dict):
            refs.extend(_tensor_refs(entry))
    return refs


def _io_refs(value):
    """``input_layers``/``output_layers``: ["x", 0, 0] (Keras 3, single) or [["x", 0, 0], ...]."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return [tuple(value[:3])]
    return [tuple(v[:3]) for v in value or []]


# --------------------------------------------------------------------------- builder

class _Builder:
    def __init__(self, path, weights_root):
        self.path = path
        self.weights_root = weights_root
        self.layers = []
        self.alias = {}      # keras layer name -> ann name holding its output
        self.shapes = {}     # ann name -> per-sample shape
        self.taken = set()   # every Keras layer name in the file
        self.used = set()    # ann names given out
        self.input_shape = None

    # -- naming and errors
    def where(self, name, cls):
        return f"{self.path}: layer {name!r} ({cls})"

    def fail(self, name, cls, why):
        raise ConversionError(f"{self.where(name, cls)}: {why}")

    def unique(self, base, own=True):
        """An unused ann name: the Keras layer's own name, or a derived one (``own=False``)
        that also avoids every Keras layer name in the file."""
        name, i = base, 1
        while name in self.used or name == _INPUT or (not own and name in self.taken):
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    # -- model layouts
    @staticmethod
    def _entries(config):
        if isinstance(config, list):  # very old Keras 2 Sequential: config is the layer list
            return config
        if isinstance(config, dict) and isinstance(config.get("layers"), list):
            return config["layers"]
        raise ConversionError("no layer list")

    def _entry(self, entry):
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            raise ConversionError(f"{self.path}: 'model_config' has a malformed layer entry {entry!r:.200}")
        cfg = entry.get("config")
        if not isinstance(cfg, dict):
            cfg = {}
        name = entry.get("name") or cfg.get("name")
        cls = entry["class_name"]
        registered = entry.get("registered_name")
        if isinstance(registered, str) and registered not in (cls, f"keras.layers.{cls}"):
            cls = registered  # a custom layer that merely shares a built-in's class name
        module = entry.get("module")
        if isinstance(module, str) and not module.startswith("keras"):
            cls = f"{module}.{cls}"
        if not isinstance(name, str):
            raise ConversionError(f"{self.path}: 'model_config' has a {cls} layer without a name")
        return name, cls, cfg

    def _claim_names(self, entries):
        for entry in entries:
            if isinstance(entry, dict):
                cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
                name = entry.get("name") or cfg.get("name")
                if isinstance(name, str):
                    self.taken.add(name)

    def sequential(self, config):
        try:
            entries = self._entries(config)
        except ConversionError:
            raise ConversionError(f"{self.path}: 'model_config' Sequential has no layer list") from None
        self._claim_names(entries)
        parsed = [self._entry(e) for e in entries]
        shape = None
        for name, cls, cfg in parsed:
            if cls == "InputLayer":
                shape = self._shape_from(cfg, name, cls)
                break
        if shape is None and parsed:
            shape = self._shape_from(parsed[0][2], *parsed[0][:2], required=False)
        if shape is None and isinstance(config, dict) and config.get("build_input_shape"):
            shape = self._shape_from({"batch_shape": config["build_input_shape"]}, "<model>", "Sequential")
        if shape is None:
            raise ConversionError(f"{self.path}: cannot determine the input shape of the Sequential model")
        self._set_input(shape)
        current = _INPUT
        seen_input = False
        for name, cls, cfg in parsed:
            if cls == "InputLayer":
                if seen_input:
                    self.fail(name, cls, "a second InputLayer in a Sequential model")
                seen_input = True
                continue
            current = self.layer(name, cls, cfg, [current])
        if not self.layers:
            raise ConversionError(f"{self.path}: the model has no layers to import")

    def functional(self, config):
        try:
            entries = self._entries(config)
        except ConversionError:
            raise ConversionError(f"{self.path}: 'model_config' Functional has no layer list") from None
        self._claim_names(entries)
        parsed = {}
        order = []
        inbound = {}
        for entry in entries:
            name, cls, cfg = self._entry(entry)
            nodes = entry.get("inbound_nodes") or []
            if len(nodes) > 1:
                self.fail(name, cls, f"shared layer called {len(nodes)} times; not supported")
            refs = _node_inputs(nodes[0]) if nodes else []
            for ref in refs:
                if len(ref) < 3 or ref[1] != 0 or ref[2] != 0:
                    self.fail(name, cls, f"input {list(ref)!r} refers to a shared or multi-output layer")
            parsed[name] = (cls, cfg)
            order.append(name)
            inbound[name] = [ref[0] for ref in refs]

        inputs = _io_refs(config.get("input_layers"))
        outputs = _io_refs(config.get("output_layers"))
        if len(inputs) != 1:
            raise ConversionError(f"{self.path}: the model has {len(inputs)} inputs; exactly one is supported")
        if len(outputs) != 1:
            raise ConversionError(f"{self.path}: the model has {len(outputs)} outputs; exactly one is supported")
        in_name, out_name = inputs[0][0], outputs[0][0]
        if in_name not in parsed or parsed[in_name][0] != "InputLayer":
            raise ConversionError(f"{self.path}: model input {in_name!r} is not an InputLayer")
        if out_name not in parsed:
            raise ConversionError(f"{self.path}: model output {out_name!r} is not among the layers")
        for name, srcs in inbound.items():
            for src in srcs:
                if src not in parsed:
                    self.fail(name, parsed[name][0], f"input from unknown layer {src!r}")

        # Layers the output depends on, in a topological order that keeps the file's order.
        needed, stack = set(), [out_name]
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(inbound[name])
        ordered, done = [], set()
        visiting = set()

        def visit(name):
            if name in done:
                return
            if name in visiting:
                self.fail(name, parsed[name][0], "the graph has a cycle")
            visiting.add(name)
            for src in inbound[name]:
                visit(src)
            visiting.discard(name)
            done.add(name)
            ordered.append(name)

        for name in order:
            if name in needed:
                visit(name)

        in_cls, in_cfg = parsed[in_name]
        self._set_input(self._shape_from(in_cfg, in_name, in_cls))
        for name in ordered:
            cls, cfg = parsed[name]
            if cls == "InputLayer":
                if name != in_name:
                    self.fail(name, cls, "a second model input; exactly one is supported")
                self.alias[name] = _INPUT
                continue
            if not inbound[name]:
                self.fail(name, cls, "layer has no inbound node")
            self.layer(name, cls, cfg, [self.alias[src] for src in inbound[name]])
        if not self.layers or self.alias.get(out_name) != self.layers[-1].name:
            # e.g. the output is the input itself or an identity of it
            raise ConversionError(f"{self.path}: the model has no layers to import")

    def _shape_from(self, cfg, name, cls, required=True):
        for key in ("batch_shape", "batch_input_shape"):
            if cfg.get(key) is not None:
                shape = list(cfg[key])[1:]
                break
        else:
            for key in ("shape", "input_shape"):
                if cfg.get(key) is not None:
                    shape = list(cfg[key])
                    break
            else:
                if required:
                    self.fail(name, cls, "no input shape in the config")
                return None
        if any(d is None for d in shape):
            self.fail(name, cls, f"input shape {shape!r} has unknown dimensions; a fixed size is needed")
        if len(shape) not in (1, 3):
            self.fail(name, cls, f"input shape {shape!r}: expected (H, W, C) or (F,)")
        return tuple(int(d) for d in shape)

    def _set_input(self, shape):
        self.input_shape = shape if len(shape) == 3 else (1, 1, shape[0])
        self.shapes[_INPUT] = shape

    def graph(self, source):
        return AnnGraph(input_shape=self.input_shape, layers=self.layers, source=source)

    # -- weights
    def weights(self, name, cls, expected):
        """The layer's arrays keyed by ``expected`` basenames (kernel, bias, gamma, ...)."""
        root = self.weights_root
        if name not in root:
            if not expected:
                return {}
            self.fail(name, cls, f"no weights group 'model_weights/{name}' in the file")
        group = root[name]
        names = [_attr_str(n) for n in np.atleast_1d(group.attrs.get("weight_names", []))]
        arrays = []
        for wname in names:
            if wname not in group:
                self.fail(name, cls, f"weight {wname!r} listed in weight_names is missing")
            try:
                raw = np.asarray(group[wname][()])
            except H5_ERRORS as exc:
                self.fail(name, cls, f"weight {wname!r} cannot be read (damaged file: {type(exc).__name__}: {exc})")
            if raw.dtype.kind not in "fiub":  # complex would silently lose its imaginary part
                self.fail(name, cls, f"weight {wname!r} has dtype {raw.dtype}, not real numbers")
            arrays.append((wname, raw.astype(np.float32)))
        by_base = {}
        for wname, arr in arrays:
            base = wname.rsplit("/", 1)[-1].split(":", 1)[0]
            by_base[base] = arr
        if all(e in by_base for e in expected):
            return {e: by_base[e] for e in expected}
        if len(arrays) == len(expected):  # unfamiliar names: trust weight_names' order
            return {e: arr for e, (_, arr) in zip(expected, arrays)}
        self.fail(name, cls, f"expected weights {expected}, found {names}")

    # -- one layer
    def emit(self, layer, shape):
        self.layers.append(layer)
        self.shapes[layer.name] = shape
        return layer.name

    def layer(self, name, cls, cfg, srcs):
        """Emit the AnnLayers for one Keras layer; return the ann name of its output."""
        where = self.where(name, cls)
        if cfg.get("data_format") == "channels_first":
            self.fail(name, cls, "data_format 'channels_first' is not supported (use channels_last)")
        if cls != "Add" and len(srcs) != 1:
            self.fail(name, cls, f"expected one input, got {len(srcs)}")
        src = srcs[0]
        shape = self.shapes[src]
        out = None

        if cls == "Conv2D":
            out = self._conv(name, cls, cfg, src, shape)
        elif cls == "Dense":
            out = self._dense(name, cls, cfg, src, shape)
        elif cls == "Activation":
            act = _activation_name(cfg.get("activation"))
            if act == "relu":
                out = self.emit(AnnLayer(self.unique(name), "relu", (src,)), shape)
            elif act == "linear":
                out = src
            elif act == "softmax":
                out = self.emit(AnnLayer(self.unique(name), "softmax", (src,)), shape)
            else:
                self.fail(name, cls, f"unsupported activation {act!r} (only 'relu', 'linear' and 'softmax')")
        elif cls == "ReLU":
            if not _plain_relu(cfg):
                self.fail(name, cls, "only a plain ReLU (no max_value, negative_slope or threshold) "
                          "is supported")
            out = self.emit(AnnLayer(self.unique(name), "relu", (src,)), shape)
        elif cls == "Softmax":
            axis = cfg.get("axis", -1)
            axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
            if axis not in (-1, len(shape)):
                self.fail(name, cls, f"softmax over axis {cfg.get('axis')!r}; only the last axis is supported")
            out = self.emit(AnnLayer(self.unique(name), "softmax", (src,)), shape)
        elif cls in ("AveragePooling2D", "MaxPooling2D"):
            out = self._pool(name, cls, cfg, src, shape)
        elif cls == "GlobalAveragePooling2D":
            if len(shape) != 3:
                self.fail(name, cls, f"needs an (H, W, C) input, got {shape}")
            h, w, c = shape
            out = self.emit(AnnLayer(self.unique(name), "avgpool2d", (src,), kernel=(h, w), stride=(h, w)),
                            (1, 1, c))
            if not cfg.get("keepdims", False):
                out = self.emit(AnnLayer(self.unique(f"{name}_flatten", own=False), "flatten", (out,)), (c,))
        elif cls == "Flatten":
            out = self.emit(AnnLayer(self.unique(name), "flatten", (src,)), (int(np.prod(shape)),))
        elif cls == "BatchNormalization":
            out = self._batchnorm(name, cls, cfg, src, shape)
        elif cls in _DROPOUT:
            out = self.emit(AnnLayer(self.unique(name), "dropout", (src,)), shape)
        elif cls == "Add":
            if len(srcs) < 2:
                self.fail(name, cls, f"expected at least two inputs, got {len(srcs)}")
            shapes = [self.shapes[s] for s in srcs]
            if any(s != shapes[0] for s in shapes):
                self.fail(name, cls, f"inputs have different shapes {shapes}; broadcasting is not supported")
            out = self.emit(AnnLayer(self.unique(name), "add", tuple(srcs)), shape)
        elif cls in _MODEL_CLASSES:
            self.fail(name, cls, "nested models are not supported; save a flat model")
        else:
            raise ConversionError(f"{where}: unsupported layer class {cls!r}")
        self.alias[name] = out
        return out

    def _fused_activation(self, name, cls, cfg, out, shape):
        act = _activation_name(cfg.get("activation"))
        if act == "linear":
            return out
        if act == "relu":
            return self.emit(AnnLayer(self.unique(f"{name}_relu", own=False), "relu", (out,)), shape)
        if act == "softmax":
            return self.emit(AnnLayer(self.unique(f"{name}_softmax", own=False), "softmax", (out,)), shape)
        self.fail(name, cls, f"unsupported activation {act!r} (only 'relu', 'linear' and 'softmax')")

    def _conv(self, name, cls, cfg, src, shape):
        if len(shape) != 3:
            self.fail(name, cls, f"needs an (H, W, C) input, got {shape}")
        where = self.where(name, cls)
        kh, kw = _pair(cfg.get("kernel_size"), "kernel_size", where)
        stride = _pair(cfg.get("strides", 1), "strides", where)
        if _pair(cfg.get("dilation_rate", 1), "dilation_rate", where) != (1, 1):
            self.fail(name, cls, f"dilation_rate {cfg.get('dilation_rate')} is not supported")
        if int(cfg.get("groups", 1) or 1) != 1:
            self.fail(name, cls, f"groups={cfg.get('groups')} is not supported")
        use_bias = cfg.get("use_bias", True)
        w = self.weights(name, cls, ["kernel", "bias"] if use_bias else ["kernel"])
        kernel = w["kernel"]
        h, wd, c = shape
        if kernel.ndim != 4 or kernel.shape[:3] != (kh, kw, c):
            self.fail(name, cls, f"kernel shape {kernel.shape} does not fit kernel_size {(kh, kw)} "
                      f"and {c} input channels")
        co = kernel.shape[3]
        bias = w.get("bias")
        padding = str(cfg.get("padding", "valid")).lower()
        if padding == "valid":
            pads = (0, 0)
        elif padding == "same":
            ph, pw = _same_pads(h, kh, stride[0]), _same_pads(wd, kw, stride[1])
            if ph[0] != ph[1] or pw[0] != pw[1]:
                self.fail(name, cls, f"padding='same' with kernel {(kh, kw)}, strides {stride} on a "
                          f"{h}x{wd} input needs asymmetric padding (rows {ph}, cols {pw}); "
                          "not supported")
            pads = (ph[0], pw[0])
        else:
            self.fail(name, cls, f"padding {padding!r} is not supported")
        oh = (h + 2 * pads[0] - kh) // stride[0] + 1
        ow = (wd + 2 * pads[1] - kw) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(name, cls, f"kernel {(kh, kw)} does not fit the {h}x{wd} input")
        out = self.emit(AnnLayer(self.unique(name), "conv2d", (src,), weight=kernel, bias=bias,
                                 kernel=(kh, kw), stride=stride, padding=pads), (oh, ow, co))
        return self._fused_activation(name, cls, cfg, out, (oh, ow, co))

    def _dense(self, name, cls, cfg, src, shape):
        if len(shape) != 1:
            self.fail(name, cls, f"input has shape {shape}; Keras applies Dense to the last axis only, "
                      "so a Flatten must come first")
        use_bias = cfg.get("use_bias", True)
        w = self.weights(name, cls, ["kernel", "bias"] if use_bias else ["kernel"])
        kernel = w["kernel"]
        if kernel.ndim != 2 or kernel.shape[0] != shape[0]:
            self.fail(name, cls, f"kernel shape {kernel.shape} does not fit {shape[0]} inputs")
        out_shape = (kernel.shape[1],)
        out = self.emit(AnnLayer(self.unique(name), "dense", (src,), weight=kernel, bias=w.get("bias")),
                        out_shape)
        return self._fused_activation(name, cls, cfg, out, out_shape)

    def _pool(self, name, cls, cfg, src, shape):
        if len(shape) != 3:
            self.fail(name, cls, f"needs an (H, W, C) input, got {shape}")
        where = self.where(name, cls)
        kernel = _pair(cfg.get("pool_size", 2), "pool_size", where)
        strides = cfg.get("strides")
        stride = kernel if strides is None else _pair(strides, "strides", where)
        h, w, c = shape
        padding = str(cfg.get("padding", "valid")).lower()
        if padding == "same":
            ph, pw = _same_pads(h, kernel[0], stride[0]), _same_pads(w, kernel[1], stride[1])
            if any(ph) or any(pw):
                self.fail(name, cls, f"padding='same' pads this {h}x{w} input (rows {ph}, cols {pw}); "
                          "padded pooling is not supported")
        elif padding != "valid":
            self.fail(name, cls, f"padding {padding!r} is not supported")
        oh = (h - kernel[0]) // stride[0] + 1
        ow = (w - kernel[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(name, cls, f"pool {kernel} does not fit the {h}x{w} input")
        op = "avgpool2d" if cls == "AveragePooling2D" else "maxpool2d"
        return self.emit(AnnLayer(self.unique(name), op, (src,), kernel=kernel, stride=stride), (oh, ow, c))

    def _batchnorm(self, name, cls, cfg, src, shape):
        axis = cfg.get("axis", -1)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                self.fail(name, cls, f"axis {axis} is not supported")
            axis = axis[0]
        if axis not in (-1, len(shape)):
            self.fail(name, cls, f"axis {axis} is not the channel (last) axis")
        scale, center = cfg.get("scale", True), cfg.get("center", True)
        expected = (["gamma"] if scale else []) + (["beta"] if center else []) + ["moving_mean", "moving_variance"]
        w = self.weights(name, cls, expected)
        c = shape[-1]
        mean, var = w["moving_mean"], w["moving_variance"]
        gamma = w["gamma"] if scale else np.ones_like(mean)
        beta = w["beta"] if center else np.zeros_like(mean)
        for key, arr in (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var)):
            if arr.shape != (c,):
                self.fail(name, cls, f"{key} has shape {arr.shape}, expected ({c},)")
        bn = {"gamma": gamma, "beta": beta, "mean": mean, "var": var,
              "eps": float(cfg.get("epsilon", 1e-3))}
        return self.emit(AnnLayer(self.unique(name), "batchnorm", (src,), bn=bn), shape)
