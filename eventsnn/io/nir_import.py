"""Import a NIR graph (Neuromorphic Intermediate Representation) as a channel-last :class:`AnnGraph`.

NIR files (HDF5, written by ``nir.write``) usually describe a *spiking*
network: Conv2d / Affine / Linear layers followed by IF, LIF or CubaLIF
neurons, in PyTorch's channel-first layout. ``read_nir(path)`` maps such a
graph onto the ReLU network that :func:`eventsnn.convert.convert` takes, in
the layout fixed by :mod:`eventsnn.ann`:

* ``Input`` of shape (C, H, W) or (F,) -> ``input_shape`` (H, W, C) or
  (1, 1, F) (a leading batch axis of 1 is tolerated);
* ``Conv2d`` (group 1, dilation 1; padding int, pair, ``'valid'``, or
  ``'same'`` with stride 1 and odd kernels) -> ``conv2d``, weight OIHW ->
  (kh, kw, C_in, C_out);
* ``Affine`` / ``Linear`` -> ``dense``, weight (out, in) -> (in, out). A
  dense layer that reads a flattened (C, H, W) map has its rows permuted from
  NIR's CHW flatten order into the HWC order of :func:`eventsnn.ann.forward`;
* ``Flatten`` -> ``flatten`` when it flattens the whole map: ``end_dim`` the
  last axis and ``start_dim`` 0, or 1 in the batch-including PyTorch
  convention some exporters write (a Flatten of an already flat vector is
  dropped);
* ``AvgPool2d`` -> ``avgpool2d`` (no padding);
* ``SumPool2d`` -> ``avgpool2d`` times the kernel area: the factor is carried
  forward (through neurons, pools and flattens, which commute with a positive
  factor) and multiplied into the weights of the next conv/dense layer, so the
  imported network computes exactly the sum-pooled one. A SumPool2d whose
  factor reaches the graph output without meeting a conv/dense layer, or
  meets a sum with an unscaled branch, raises :class:`ConversionError`;
* ``IF`` / ``LIF`` / ``CubaLIF`` / ``Threshold`` -> ``relu``: the converter
  re-introduces IF neurons and sets their thresholds by its own
  normalisation. The NIR neuron parameters (``v_threshold``, ``r``, ``tau``,
  ``v_leak``, ... ) are *not* folded into the weights; they are kept in
  ``AnnGraph.source["nir_neurons"][node]`` (JSON-ready: a float where the
  parameter is uniform, else a nested list) so the converted network's
  provenance records them;
* ``Scale`` -> folded into the conv/dense layer right before it (scalar or
  per-channel) when that layer feeds nothing else; otherwise a positive
  scalar is carried forward like a SumPool2d factor; anything else raises;
* several edges into one node are summed (NIR semantics): an ``add`` layer
  precedes the node;
* nested ``NIRGraph`` nodes are inlined (their inner Input/Output nodes become
  pass-throughs; edges may name them as ``sub`` or ``sub.inner``).

The graph must be acyclic (recurrent NIR graphs are rejected) with one Input
and one Output node. Anything else raises :class:`~eventsnn.ann.ConversionError`
naming the file and the node.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import numpy as np

from ..ann import AnnGraph, AnnLayer, ConversionError, prune
from ..errors import EventsnnError

SUPPORTED_NODES = (
    "Input", "Output", "Conv2d", "Affine", "Linear", "Flatten", "AvgPool2d", "SumPool2d",
    "IF", "LIF", "CubaLIF", "Threshold", "Scale", "NIRGraph",
)
_NEURONS = ("IF", "LIF", "CubaLIF", "Threshold")
_NEURON_PARAMS = ("v_threshold", "threshold", "r", "tau", "tau_mem", "tau_syn", "v_leak", "v_reset", "w_in")


@dataclass
class _Tensor:
    """An activation: the AnnLayer producing it, its NIR shape (no batch) and bookkeeping."""

    layer: str                 # AnnLayer name, or "input"
    shape: tuple               # (C, H, W) or (F,)
    chw: tuple | None = None   # flat tensor in NIR's CHW order of this (C, H, W) map
    scale: float = 1.0         # the NIR value is scale * the AnnGraph value (SumPool2d, Scale)

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


class _Pass:
    """An inlined subgraph's Input or Output node: passes its input through."""

    def __init__(self, what: str):
        self.what = what


def _chw_to_hwc_rows(arr: np.ndarray, chw: tuple) -> np.ndarray:
    """Reorder axis 0 of ``arr`` from CHW flatten order (row c*H*W + y*W + x) to HWC ((y*W + x)*C + c)."""
    c, h, w = chw
    rest = arr.shape[1:]
    return arr.reshape((c, h, w) + rest).transpose((1, 2, 0) + tuple(range(3, 3 + len(rest)))) \
        .reshape((c * h * w,) + rest)


def _plain(value):
    """A JSON-ready copy of a neuron parameter: a float if uniform, else a nested list."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        return str(value)
    if arr.size == 0:
        return []
    flat = arr.reshape(-1)
    if np.all(flat == flat[0]):
        return float(flat[0])
    return arr.astype(np.float64).tolist()


def _read_version(path: str):
    """Open ``path`` as HDF5, check it holds a NIR graph, return the stored NIR version (or None)."""
    from .safe_h5 import open_h5

    try:
        with open_h5(path, ConversionError, "NIR file") as f:
            if "node" not in f:
                raise ConversionError(f"{path}: not a NIR file (an HDF5 file without a 'node' group)")
            if "version" not in f:
                return None
            version = f["version"][()]
            return version.decode("utf8", "replace") if isinstance(version, bytes) else str(version)
    except EventsnnError:
        raise
    except Exception as exc:  # not HDF5, truncated, unreadable
        raise ConversionError(f"{path}: not a readable NIR file ({type(exc).__name__}: {exc})") from None


def read_nir(path) -> AnnGraph:
    """Read the NIR graph at ``path`` into a channel-last :class:`AnnGraph` (see the module docs)."""
    try:
        import nir
    except ImportError as exc:
        raise ConversionError("reading NIR graphs needs the 'nir' package: pip install eventsnn[nir]") from exc

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such NIR file")
    version = _read_version(path)
    try:
        if "type_check" in inspect.signature(nir.read).parameters:
            graph = nir.read(path, type_check=False)  # shapes are tracked (and checked) here
        else:  # pragma: no cover - older nir
            graph = nir.read(path)
    except Exception as exc:
        raise ConversionError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})") from None
    if type(graph).__name__ != "NIRGraph":
        raise ConversionError(f"{path}: the file holds a single {type(graph).__name__} node, not a NIRGraph")
    return _Importer(path, graph, version, getattr(nir, "version", None)).run()


def _check_values(graph, path: str, depth: int = 0) -> None:
    """Refuse node parameters that are not real numbers (complex, text, objects) before any cast.

    Casting complex weights to float would silently drop their imaginary part.
    """
    if depth > 32:
        raise ConversionError(f"{path}: NIR subgraphs nested more than 32 deep")
    for name, node in getattr(graph, "nodes", {}).items():
        if type(node).__name__ == "NIRGraph":
            _check_values(node, path, depth + 1)
            continue
        for key, value in vars(node).items():
            values = value.values() if isinstance(value, dict) else [value]
            for v in values:
                if isinstance(v, np.ndarray) and v.dtype.kind not in "fiub":
                    raise ConversionError(f"{path}: node {name!r}: field {key!r} has dtype {v.dtype}, "
                                          f"not real numbers")


class _Importer:
    def __init__(self, path, graph, version, reader_version):
        self.path = path
        self.version = version
        self.reader_version = reader_version
        self.nodes: dict = {}
        self.edges: list = []
        self.layers: list = []
        self.by_name: dict = {}
        self.used = {"input"}
        self.acts: dict = {}
        self.neurons: dict = {}
        _check_values(graph, path)
        self._inline(graph, "")

    # -- helpers -----------------------------------------------------------
    def fail(self, name, node, msg):
        raise ConversionError(f"{self.path}: node {name!r} ({self.kind(node)}): {msg}")

    @staticmethod
    def kind(node) -> str:
        if isinstance(node, _Pass):
            return f"subgraph {node.what}"
        return type(node).__name__

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def emit(self, name, op, inputs: list, shape, chw=None, scale=1.0, **kw) -> _Tensor:
        layer = AnnLayer(name=self.unique(name), op=op, inputs=tuple(t.layer for t in inputs), **kw)
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        return _Tensor(layer.name, tuple(int(s) for s in shape), chw, scale)

    def pair(self, name, node, value, what) -> tuple:
        if value is None:
            self.fail(name, node, f"{what} is missing")
        arr = np.asarray(value).reshape(-1)
        if arr.dtype.kind not in "biuf" or arr.size not in (1, 2) or np.any(arr != np.round(arr)):
            self.fail(name, node, f"{what}={value!r} is not an int or a pair of ints")
        arr = np.broadcast_to(arr, (2,))
        return int(arr[0]), int(arr[1])

    # -- structure ---------------------------------------------------------
    def _inline(self, graph, prefix: str):
        """Collect nodes and edges, inlining nested NIRGraphs under ``prefix``."""
        sub_io: dict = {}
        for key, node in graph.nodes.items():
            name = prefix + str(key)
            if type(node).__name__ == "NIRGraph":
                inner = self._inline(node, name + ".")
                sub_io[str(key)] = inner
            elif prefix and type(node).__name__ in ("Input", "Output"):
                self.nodes[name] = _Pass(type(node).__name__)
            else:
                self.nodes[name] = node

        def resolve(end: str, side: str) -> str:
            end = str(end)
            if end in sub_io:
                ins, outs = sub_io[end]
                choices = ins if side == "in" else outs
                if len(choices) != 1:
                    raise ConversionError(
                        f"{self.path}: edge endpoint {prefix + end!r} is a subgraph with {len(choices)} "
                        f"{'Input' if side == 'in' else 'Output'} nodes; name one of them ({choices})")
                return choices[0]
            return prefix + end

        for edge in graph.edges:
            if len(edge) != 2:
                raise ConversionError(f"{self.path}: malformed edge {edge!r}")
            self.edges.append((resolve(edge[0], "out"), resolve(edge[1], "in")))
        ins = [prefix + str(k) for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
        outs = [prefix + str(k) for k, n in graph.nodes.items() if type(n).__name__ == "Output"]
        return ins, outs

    def order(self) -> list:
        """Node names in a topological order (stable: file order among ready nodes)."""
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise ConversionError(f"{self.path}: edge ({a!r}, {b!r}) names no node {end!r}")
        if len(set(self.edges)) != len(self.edges):
            dup = next(e for e in self.edges if self.edges.count(e) > 1)
            raise ConversionError(f"{self.path}: duplicate edge {dup!r}")
        self.preds = {n: [] for n in self.nodes}
        self.succs = {n: [] for n in self.nodes}
        for a, b in self.edges:
            self.preds[b].append(a)
            self.succs[a].append(b)
        indeg = {n: len(p) for n, p in self.preds.items()}
        rank = {n: i for i, n in enumerate(self.nodes)}
        ready = sorted((n for n, d in indeg.items() if d == 0), key=rank.get)
        out = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for s in self.succs[n]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
                    ready.sort(key=rank.get)
        if len(out) != len(self.nodes):
            cyc = sorted(n for n, d in indeg.items() if d > 0)
            raise ConversionError(f"{self.path}: the graph has a cycle (recurrent connections) through nodes "
                                  f"{cyc}; only feed-forward NIR graphs are supported")
        return out

    # -- main loop ---------------------------------------------------------
    def run(self) -> AnnGraph:
        order = self.order()
        inputs = [n for n in order if type(self.nodes[n]).__name__ == "Input"]
        outputs = [n for n in order if type(self.nodes[n]).__name__ == "Output"]
        if len(inputs) != 1:
            raise ConversionError(f"{self.path}: expected exactly one Input node, found {len(inputs)} ({inputs})")
        if len(outputs) != 1:
            raise ConversionError(f"{self.path}: expected exactly one Output node, found {len(outputs)} ({outputs})")
        input_shape = None
        for name in order:
            node = self.nodes[name]
            kind = self.kind(node)
            preds = self.preds[name]
            if kind == "Input":
                if preds:
                    self.fail(name, node, f"the graph Input has incoming edges from {preds}")
                try:
                    input_shape = self.op_Input(name, node)
                except EventsnnError:
                    raise
                except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
                    self.fail(name, node, f"malformed input shape ({type(exc).__name__}: {exc})")
                continue
            if not preds:
                self.fail(name, node, "no edge leads into this node (it is not fed by the Input)")
            if kind == "Output":
                out = self.gather(name, node, preds)
                continue
            handler = self.op_Pass if isinstance(node, _Pass) else getattr(self, f"op_{kind}", None)
            if handler is None:
                raise ConversionError(
                    f"{self.path}: node {name!r} ({kind}) is not supported; supported: {', '.join(SUPPORTED_NODES)}")
            try:
                self.acts[name] = handler(name, node, self.gather(name, node, preds))
            except EventsnnError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
                # a hostile or damaged file: parameters of the wrong type or shape
                self.fail(name, node, f"malformed parameters ({type(exc).__name__}: {exc})")

        if out.layer == "input":
            raise ConversionError(f"{self.path}: the Output node is fed by the Input directly; nothing to convert")
        if out.scale != 1.0:
            raise ConversionError(f"{self.path}: a SumPool2d or Scale factor ({out.scale:g}) reaches the graph "
                                  f"output without a following conv/dense layer to fold it into")
        layers = self.prune(out.layer)
        return AnnGraph(
            input_shape=tuple(int(s) for s in input_shape),
            layers=layers,
            source={"format": "nir", "path": self.path, "nir_version": self.version or self.reader_version,
                    "nir_reader_version": self.reader_version, "nir_neurons": self.neurons},
        )

    def gather(self, name, node, preds) -> _Tensor:
        """The node's input: its single predecessor's tensor, or their sum (an ``add`` layer)."""
        ts = [self.acts[p] for p in preds]
        if len(ts) == 1:
            return ts[0]
        if self.kind(node) in ("Output",):
            self.fail(name, node, f"several edges lead into the graph output ({preds}); unsupported")
        first = ts[0]
        for p, t in zip(preds[1:], ts[1:]):
            if t.shape != first.shape:
                self.fail(name, node, f"its inputs {preds} are summed but have shapes {first.shape} and {t.shape}")
            if t.chw != first.chw:
                self.fail(name, node, f"its inputs {preds} are summed but are flattened differently")
            if t.scale != first.scale:
                self.fail(name, node, f"its inputs {preds} are summed but carry different SumPool2d/Scale "
                                      f"factors ({first.scale:g}, {t.scale:g})")
        if len({t.layer for t in ts}) != len(ts):
            self.fail(name, node, f"its inputs {preds} are the same activation; unsupported")
        return self.emit(f"{name}_sum", "add", ts, first.shape, chw=first.chw, scale=first.scale)

    def prune(self, output: str) -> list:
        return prune(self.layers, output)

    # -- nodes -------------------------------------------------------------
    def op_Input(self, name, node):
        shape = (getattr(node, "input_type", None) or {}).get("input")
        if shape is not None and np.asarray(shape).size > 8:  # a shape, not data (a hostile file)
            self.fail(name, node, f"input shape has {np.asarray(shape).size} entries")
        if shape is None:
            self.fail(name, node, "the Input node has no shape")
        dims = [int(d) for d in np.asarray(shape).reshape(-1)]
        if len(dims) in (2, 4) and dims[0] == 1:
            dims = dims[1:]  # a batch axis of 1
        if any(d < 1 for d in dims) or len(dims) not in (1, 3):
            self.fail(name, node, f"input shape {list(np.asarray(shape).reshape(-1))} is not (C, H, W) or (F,)")
        self.acts[name] = _Tensor("input", tuple(dims))
        if len(dims) == 3:
            c, h, w = dims
            return (h, w, c)
        return (1, 1, dims[0])

    def op_Pass(self, name, node, x):
        return x

    def op_Conv2d(self, name, node, x):
        if not x.spatial:
            self.fail(name, node, f"input has shape {x.shape}; Conv2d needs a (C, H, W) map")
        w = np.asarray(node.weight, np.float32)
        if w.ndim != 4:
            self.fail(name, node, f"weight has shape {w.shape}; expected (C_out, C_in, kh, kw)")
        groups = int(np.asarray(node.groups).reshape(-1)[0]) if node.groups is not None else 1
        if groups != 1:
            self.fail(name, node, f"groups={groups} is unsupported (only 1)")
        dil = self.pair(name, node, node.dilation if node.dilation is not None else 1, "dilation")
        if dil != (1, 1):
            self.fail(name, node, f"dilation={dil} is unsupported (only 1)")
        co, ci, kh, kw = w.shape
        c, h, wd = x.shape
        if ci != c:
            self.fail(name, node, f"weight expects {ci} input channels, the input has {c}")
        stride = self.pair(name, node, node.stride if node.stride is not None else 1, "stride")
        if min(stride) < 1:
            self.fail(name, node, f"stride={stride} must be positive")
        pad = node.padding
        if isinstance(pad, bytes):
            pad = pad.decode()
        if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO":
            pad = str(pad.reshape(-1)[0].decode() if isinstance(pad.reshape(-1)[0], bytes) else pad.reshape(-1)[0])
        if isinstance(pad, str):
            if pad == "valid":
                padding = (0, 0)
            elif pad == "same":
                if stride != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                    self.fail(name, node, f"padding='same' needs stride 1 and odd kernels (got stride {stride}, "
                                          f"kernel {(kh, kw)}): it would pad asymmetrically")
                padding = ((kh - 1) // 2, (kw - 1) // 2)
            else:
                self.fail(name, node, f"padding={pad!r} is unsupported (int, pair, 'same' or 'valid')")
        else:
            padding = self.pair(name, node, pad if pad is not None else 0, "padding")
            if min(padding) < 0:
                self.fail(name, node, f"padding={padding} must be non-negative")
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(name, node, f"kernel {(kh, kw)} does not fit the padded {h}x{wd} input")
        bias = self.bias(name, node, getattr(node, "bias", None), co)
        weight = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        if x.scale != 1.0:
            weight = (weight * np.float32(x.scale)).astype(np.float32)
        return self.emit(name, "conv2d", [x], (co, oh, ow), weight=weight, bias=bias,
                         kernel=(kh, kw), stride=stride, padding=padding)

    def bias(self, name, node, b, n):
        """A (n,) float32 bias, or None when absent or all zero (no constant input current)."""
        if b is None:
            return None
        arr = np.asarray(b, np.float32)
        try:
            arr = np.array(np.broadcast_to(arr.reshape(-1) if arr.size == n else arr, (n,)), np.float32)
        except ValueError:
            self.fail(name, node, f"bias of shape {arr.shape} does not fit {n} outputs")
        return None if not np.any(arr) else arr

    def _dense(self, name, node, x, b):
        w = np.asarray(node.weight, np.float32)
        if w.ndim != 2:
            self.fail(name, node, f"weight has shape {w.shape}; expected (out, in)")
        n_out, n_in = w.shape
        if x.spatial:
            c, h, wd = x.shape
            if h * wd != 1:
                self.fail(name, node, f"input has shape {x.shape}; a dense layer needs a flat input "
                                      f"(insert a Flatten)")
            feat = c
        else:
            feat = x.shape[0]
        if n_in != feat:
            self.fail(name, node, f"weight of shape {w.shape} expects {n_in} inputs, the input has {feat}")
        weight = np.ascontiguousarray(w.T)
        if x.chw is not None:
            weight = np.ascontiguousarray(_chw_to_hwc_rows(weight, x.chw))
        if x.scale != 1.0:
            weight = (weight * np.float32(x.scale)).astype(np.float32)
        return self.emit(name, "dense", [x], (n_out,), weight=weight, bias=self.bias(name, node, b, n_out))

    def op_Affine(self, name, node, x):
        return self._dense(name, node, x, node.bias)

    def op_Linear(self, name, node, x):
        return self._dense(name, node, x, None)

    def op_Flatten(self, name, node, x):
        declared = (getattr(node, "input_type", None) or {}).get("input")
        if declared is not None and np.asarray(declared).size > 8:  # a shape, not data (a hostile file)
            self.fail(name, node, f"declared input shape has {np.asarray(declared).size} entries")
        if declared is not None and int(np.prod(np.asarray(declared))) != int(np.prod(x.shape)):
            self.fail(name, node, f"declared input shape {list(np.asarray(declared).reshape(-1))} does not match "
                                  f"the incoming {x.shape}")
        if not x.spatial:
            return x  # flat -> flat: nothing to do
        rank = len(np.asarray(declared).reshape(-1)) if declared is not None else 3
        start, end = int(node.start_dim), int(node.end_dim)
        if rank == 4:  # declared with a batch axis
            start, end = start - 1, (end - 1 if end > 0 else end)
            rank = 3
        if end < 0:
            end += rank
        if end != rank - 1 or start not in (0, 1):
            self.fail(name, node, f"start_dim={node.start_dim}, end_dim={node.end_dim} does not flatten the "
                                  f"whole {x.shape} map; only full flattens are supported")
        c, h, w = x.shape
        return self.emit(name, "flatten", [x], (c * h * w,), chw=(c, h, w) if h * w > 1 else None,
                         scale=x.scale)

    def _pool(self, name, node, x, summed: bool):
        if not x.spatial:
            self.fail(name, node, f"input has shape {x.shape}; pooling needs a (C, H, W) map")
        kernel = self.pair(name, node, node.kernel_size, "kernel_size")
        stride = self.pair(name, node, node.stride if node.stride is not None else node.kernel_size, "stride")
        padding = self.pair(name, node, node.padding if node.padding is not None else 0, "padding")
        if padding != (0, 0):
            self.fail(name, node, f"padding={padding} is unsupported (only unpadded pooling)")
        if min(kernel) < 1 or min(stride) < 1:
            self.fail(name, node, f"kernel_size={kernel}, stride={stride} must be positive")
        c, h, w = x.shape
        oh = (h - kernel[0]) // stride[0] + 1
        ow = (w - kernel[1]) // stride[1] + 1
        if oh < 1 or ow < 1:
            self.fail(name, node, f"kernel {kernel} does not fit the {h}x{w} input")
        scale = x.scale * (kernel[0] * kernel[1] if summed else 1)
        return self.emit(name, "avgpool2d", [x], (c, oh, ow), scale=scale, kernel=kernel, stride=stride)

    def op_AvgPool2d(self, name, node, x):
        return self._pool(name, node, x, False)

    def op_SumPool2d(self, name, node, x):
        return self._pool(name, node, x, True)

    def _neuron(self, name, node, x):
        params = {"type": type(node).__name__}
        for key in _NEURON_PARAMS:
            if getattr(node, key, None) is not None:
                params[key] = _plain(getattr(node, key))
        self.neurons[name] = params
        return self.emit(name, "relu", [x], x.shape, chw=x.chw, scale=x.scale)

    op_IF = op_LIF = op_CubaLIF = op_Threshold = _neuron

    def op_Scale(self, name, node, x):
        s = np.asarray(node.scale, np.float64)
        prev = self.by_name.get(x.layer)
        # every NIR edge that carries prev's output (through pass-through aliases) must lead here
        alias = {n for n, t in self.acts.items() if t.layer == x.layer}
        carriers = sum(1 for a, b in self.edges if a in alias and b not in alias)
        if prev is not None and prev.op in ("conv2d", "dense") and carriers == 1 and x.scale == 1.0 \
                and not self.consumers(prev.name):
            n = prev.weight.shape[-1]
            per = self._per_channel(s, x.shape)
            if per is not None:
                per = np.broadcast_to(per, (n,))
                prev.weight = (prev.weight.astype(np.float64) * per).astype(np.float32)
                if prev.bias is not None:
                    prev.bias = (prev.bias.astype(np.float64) * per).astype(np.float32)
                return x
        if s.size >= 1 and np.all(s.reshape(-1) == s.reshape(-1)[0]) and s.reshape(-1)[0] > 0:
            return _Tensor(x.layer, x.shape, x.chw, x.scale * float(s.reshape(-1)[0]))
        self.fail(name, node, f"scale of shape {s.shape} can be folded only into a conv/dense layer right before "
                              f"it (scalar or per channel), or carried forward as a positive scalar")

    def consumers(self, layer_name):
        return [layer for layer in self.layers if layer_name in layer.inputs]

    @staticmethod
    def _per_channel(s: np.ndarray, shape: tuple):
        """The per-output-channel factors of a Scale on a tensor of ``shape``, or None."""
        if s.size == 1:
            return s.reshape(1)
        n = shape[0]
        if len(shape) == 3:
            c, h, w = shape
            try:
                full = np.broadcast_to(s, shape) if s.ndim == 3 else np.broadcast_to(s.reshape(c, 1, 1), shape)
            except ValueError:
                return None
            if not np.all(full == full[:, :1, :1]):
                return None
            return full[:, 0, 0]
        if s.size == n:
            return s.reshape(n)
        return None
