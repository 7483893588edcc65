"""Export an eventsnn :class:`~eventsnn.network.Network` as a NIR graph, and read such a graph back.

NIR (Neuromorphic Intermediate Representation, Pedersen et al. 2024, Nature
Communications 15:8122) is how a spiking model moves between simulators and
chips: Lava (Loihi), sinabs (Speck), Rockpool (Xylo), SpiNNaker2, snnTorch,
Norse, Spyx, Nengo. ``write_nir(net, path)`` writes the file with the real
``nir`` package (``nir.write``); ``read_nir_network(path)`` reads it back as a
spiking :class:`Network` (the ANN importer :func:`eventsnn.io.nir_import.read_nir`
instead turns a NIR graph into a ReLU network for conversion).

Mapping (eventsnn is channel-last, NIR channel-first as PyTorch):

=====================  =====================================================
eventsnn layer         NIR nodes
=====================  =====================================================
input (H, W, C)/(N,)   ``Input`` of shape (C, H, W) / (N,)
conv2d                 ``Conv2d``: weight (kh, kw, C_in, C_out) -> (C_out,
                       C_in, kh, kw), stride, padding, dilation 1, groups 1,
                       bias (zeros when the layer has none)
dense                  ``Affine``: weight (N_in, N_out) -> (N_out, N_in),
                       bias (zeros when none; sinabs 3.1 reads Affine but
                       not Linear). Rows that read a flattened (H, W, C) map
                       are permuted from eventsnn's HWC flatten order into
                       NIR's CHW order.
avgpool2d              ``AvgPool2d`` (``pool="avg"``), or ``SumPool2d`` with
                       the next neuron's threshold times kh*kw (``pool="sum"``:
                       identical spikes, since the potential is then scaled
                       by the same factor; for readers without AvgPool2d)
flatten                ``Flatten`` (start_dim 0, end_dim -1, no batch axis)
add                    several edges into the join's neuron node (NIR sums
                       them); a spiking input with a scale != 1 goes through
                       a ``Scale`` node
neuron IF / LIF        ``IF`` (r = 1) / ``LIF`` (tau = -1/ln(leak) steps,
                       r = 1, v_leak = 0); ``v_threshold`` per neuron;
                       ``v_reset`` = 0 written explicitly
membrane readout       the output layer is ``I`` (IF) or ``LI`` (LIF): it
                       integrates and never spikes
=====================  =====================================================

Time: NIR's nodes are ODEs; eventsnn's discrete time reads them with dt = 1
step, the convention sinabs uses::

    IF:  V[t] = V[t-1] + r * I[t]
    LIF: V[t] = exp(-1/tau) * V[t-1] + r * I[t]

What NIR's equations do not say is kept in the graph's ``metadata`` under
``"eventsnn"``, one JSON string (``{"format": 1, "encoding", "decoding",
"pool", "time", "nodes": {node: {...}}}``; node-level metadata makes nir 1.0.4's
reader fail, and sinabs 3.1 pins nir<=1.0.4), so that
``read_nir_network`` restores the network exactly. Per neuron node:

* ``reset``: ``"zero"`` is NIR's own rule (``v <- v_reset = 0``);
  ``"subtract"`` (``v <- v - v_threshold``, Rueckauer et al. 2017) is what
  sinabs' IAF/LIF and snnTorch's neurons do by default, but NIR's IF/LIF
  equations say reset-to-value, so it is said only here. ``strict=True``
  refuses it instead of writing it;
* ``spike_rule``: ``"v >= v_threshold"`` (NIR writes ``v > v_thr``;
  sinabs fires at ``>=`` as eventsnn does);
* ``v_init`` (initial potential as a fraction of the threshold; NIR
  nodes have no initial state) and ``leak`` (the exact float32
  per-step factor, so tau round-trips without rounding);
* ``layer`` (the eventsnn layer name; NIR node names are sanitised for
  HDF5) and, after a SumPool2d, ``threshold_factor``.

``legacy=True`` (``eventsnn export --legacy``) writes a file that NIR readers
before 1.0.6 accept: without the ``v_reset`` field.

Refused, by name (NIR has no node for them, or they change the spikes):
max-pool gates (``maxpool2d``), multi-spike neurons (``max_spikes > 1``),
synaptic delays (``delay != 0``), and with ``strict=True`` reset by
subtraction, ``v_init != 0`` and Poisson input encoding.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np

from ..errors import NetworkError
from ..network import Layer, Network, Neuron, infer_shapes
from .atomic import atomic_path

#: the NIR node types write_nir writes
EXPORTED_NODES = ("Input", "Output", "Conv2d", "Affine", "AvgPool2d", "SumPool2d", "Flatten", "Scale",
                  "IF", "LIF", "I", "LI")
POOLS = ("avg", "sum")
_META_KEY = "eventsnn"   # graph metadata key of the JSON with what NIR's equations do not say
_META_FORMAT = 1


def _nir():
    try:
        import nir
    except ImportError as exc:
        raise NetworkError("NIR export and import need the 'nir' package: pip install 'eventsnn[nir]'") from exc
    return nir


def _hwc_to_chw_index(h: int, w: int, c: int) -> np.ndarray:
    """idx[k] = the HWC flat index of the element at CHW flat index k."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _nir_shape(shape: tuple, flat: bool) -> tuple:
    h, w, c = shape
    return (h * w * c,) if flat else (c, h, w)


def _to_nir_layout(values: np.ndarray, shape: tuple, flat: bool) -> np.ndarray:
    """An (H, W, C) array in NIR's (C, H, W) layout (or flat (N,), the same order for a flat map)."""
    arr = np.broadcast_to(np.asarray(values, np.float32), shape)
    return np.ascontiguousarray(arr.reshape(-1) if flat else arr.transpose(2, 0, 1))


def to_nir_graph(net: Network, pool: str = "avg", strict: bool = False):
    """The :class:`nir.NIRGraph` of ``net`` (see the module docs). Raises :class:`NetworkError`
    naming the layer for anything NIR cannot carry."""
    nir = _nir()
    if pool not in POOLS:
        raise NetworkError(f"pool must be one of {POOLS}, got {pool!r}")
    shapes = infer_shapes(net)
    flat_in = len(tuple(net.input_shape)) == 1
    if strict and net.encoding != "direct":
        raise NetworkError(f"input encoding {net.encoding!r}: NIR has no input encoder (strict export refuses it; "
                           f"without --strict it is recorded in the graph metadata)")
    nodes: dict = {}
    edges: list = []
    # per eventsnn layer: the NIR node whose output is the layer's output, and whether it is flat
    out_node = {"input": "input"}
    is_flat = {"input": flat_in}
    nodes["input"] = nir.Input(input_type={"input": np.array(_nir_shape(shapes["input"], flat_in))})
    names = {layer.name for layer in net.layers}
    for reserved in ("input", "output"):
        if reserved in names:
            raise NetworkError(f"layer {reserved!r}: the name is reserved for NIR's Input/Output nodes")
    info = {"format": _META_FORMAT, "time": "discrete steps, dt = 1", "nodes": {}}
    users: dict = {}
    for layer in net.layers:
        for src in layer.inputs:
            users.setdefault(src, []).append(layer.name)
    sum_factor: dict = {}   # layer -> kh*kw of a SumPool2d whose neuron threshold is scaled
    last = net.layers[-1].name

    def node_name(base: str) -> str:
        # HDF5 reads '/' as a group separator and NIR's importers read '.' as a subgraph path
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "layer"
        name, k = base, 1
        while name in nodes or (name != base and name in names):
            name, k = f"{base}_{k}", k + 1
        return name

    for layer in net.layers:
        where = f"layer {layer.name!r} ({layer.kind})"
        if layer.kind == "maxpool2d":
            raise NetworkError(f"{where}: max-pool gates cannot be exported: NIR has no max-pool node "
                               f"(convert with --fold-pools or average pooling instead)")
        if layer.delay:
            raise NetworkError(f"{where}: synaptic delay {layer.delay:g} cannot be exported "
                               f"(only delay 0, discrete-time networks)")
        n = layer.neuron
        if n is not None and int(n.max_spikes) > 1:
            raise NetworkError(f"{where}: multi-spike neurons (max_spikes={n.max_spikes}) cannot be exported: "
                               f"NIR's IF/LIF fire at most one spike per step")
        if n is not None and strict:
            if n.reset == "subtract":
                raise NetworkError(f"{where}: reset by subtraction cannot be said by NIR's IF/LIF equations "
                                   f"(they reset to v_reset); strict export refuses it (without --strict it is "
                                   f"written as metadata, which sinabs and snnTorch follow by default)")
            if n.v_init:
                raise NetworkError(f"{where}: v_init={n.v_init:g}: NIR nodes have no initial potential "
                                   f"(strict export refuses it)")
        out_shape = shapes[layer.name]
        in_shape = shapes[layer.inputs[0]] if layer.inputs else None
        src = layer.inputs[0] if layer.inputs else None
        syn = None        # the synapse node of this layer, if any
        lmeta = {"layer": layer.name}
        flat = False
        if layer.kind == "conv2d":
            if is_flat[src]:
                raise NetworkError(f"{where}: a conv2d on a flat input cannot be exported")
            w = np.asarray(layer.weight, np.float32)
            c_out = w.shape[3]
            bias = np.zeros(c_out, np.float32) if layer.bias is None else np.asarray(layer.bias, np.float32)
            syn = node_name(layer.name)
            nodes[syn] = nir.Conv2d(input_shape=(int(in_shape[0]), int(in_shape[1])),
                                    weight=np.ascontiguousarray(w.transpose(3, 2, 0, 1)),
                                    stride=tuple(int(s) for s in layer.stride),
                                    padding=tuple(int(p) for p in layer.padding), dilation=(1, 1), groups=1,
                                    bias=bias)
        elif layer.kind == "dense":
            w = np.asarray(layer.weight, np.float32)
            src_layer = None if src == "input" else net.layer(src)
            if src_layer is not None and src_layer.kind == "flatten":
                h, wd, c = shapes[src_layer.inputs[0]]
                w = w[_hwc_to_chw_index(h, wd, c)]   # rows into NIR's CHW flatten order
            bias = np.zeros(w.shape[1], np.float32) if layer.bias is None else np.asarray(layer.bias, np.float32)
            syn = node_name(layer.name)
            nodes[syn] = nir.Affine(weight=np.ascontiguousarray(w.T), bias=bias)
            flat = True
        elif layer.kind == "avgpool2d":
            k = tuple(int(v) for v in layer.kernel)
            s = tuple(int(v) for v in layer.stride)
            syn = node_name(layer.name)
            cls = nir.AvgPool2d if pool == "avg" else nir.SumPool2d
            nodes[syn] = cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array((0, 0)))
            if pool == "sum":
                if n is None:
                    raise NetworkError(f"{where}: a neuron-less average pool cannot be written as SumPool2d "
                                       f"(use pool='avg')")
                sum_factor[layer.name] = k[0] * k[1]
        elif layer.kind == "flatten":
            h, wd, c = in_shape
            syn = node_name(layer.name)
            nodes[syn] = nir.Flatten(input_type={"input": np.array((c, h, wd))}, start_dim=0, end_dim=-1)
            flat = True
        elif layer.kind == "add":
            pass
        else:
            raise NetworkError(f"{where}: layer kind {layer.kind!r} cannot be exported")
        flat = flat or (layer.kind == "add" and is_flat[src])
        is_flat[layer.name] = flat
        if syn is not None:
            info["nodes"][syn] = lmeta

        # what feeds this layer's synapse node (or, for add, its neuron node)
        target_of_inputs = syn
        if layer.kind == "add":
            if n is None:
                raise NetworkError(f"{where}: an add layer needs a neuron population")
            target_of_inputs = None  # edges go into the neuron node, below
        else:
            edges.append((out_node[src], syn))

        if n is None:
            out_node[layer.name] = syn  # a neuron-less current feeding an add
            continue
        nshape = _nir_shape(out_shape, flat)
        thr = _to_nir_layout(n.threshold, out_shape, flat)
        factor = sum_factor.get(layer.name, 1)
        meta = {"reset": n.reset, "spike_rule": "v >= v_threshold", "v_init": float(n.v_init),
                "leak": float(n.leak), "kind": n.kind, "layer": layer.name}
        if factor != 1:
            meta["threshold_factor"] = float(factor)
        membrane = layer.name == last and net.decoding == "membrane"
        if membrane:  # I / LI carry no threshold, but v_init is a fraction of it
            meta["threshold"] = np.asarray(n.threshold, np.float64).tolist()
        ones = np.ones(nshape, np.float32)
        zeros = np.zeros(nshape, np.float32)
        if n.kind == "if" or n.leak >= 1.0:
            if membrane:
                neuron = nir.I(r=ones)
            else:
                neuron = nir.IF(r=ones, v_threshold=(thr * factor).astype(np.float32), v_reset=zeros)
        else:
            if not 0.0 < n.leak < 1.0:
                raise NetworkError(f"{where}: leak {n.leak!r} has no NIR time constant (need 0 < leak <= 1)")
            tau = np.full(nshape, -1.0 / math.log(float(n.leak)), np.float32)
            if membrane:
                neuron = nir.LI(tau=tau, r=ones, v_leak=zeros)
            else:
                neuron = nir.LIF(tau=tau, r=ones, v_leak=zeros, v_threshold=(thr * factor).astype(np.float32),
                                 v_reset=zeros)
        nname = node_name(f"{layer.name}_{'lif' if n.kind == 'lif' else 'if'}")
        nodes[nname] = neuron
        info["nodes"][nname] = meta
        if target_of_inputs is not None:
            edges.append((syn, nname))
        else:
            scales = None if layer.weight is None else np.asarray(layer.weight, np.float32).reshape(-1)
            for i, s in enumerate(layer.inputs):
                s_layer = net.layer(s)
                scale = 1.0 if scales is None or s_layer.neuron is None else float(scales[i])
                if scale != 1.0:
                    sc = node_name(f"{layer.name}_scale{i}")
                    nodes[sc] = nir.Scale(scale=np.full(nshape, scale, np.float32))
                    edges.append((out_node[s], sc))
                    edges.append((sc, nname))
                else:
                    edges.append((out_node[s], nname))
        out_node[layer.name] = nname

    out_shape = _nir_shape(shapes[last], is_flat[last])
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    edges.append((out_node[last], "output"))
    info["encoding"], info["decoding"], info["pool"] = net.encoding, net.decoding, pool
    # One JSON string in the graph's metadata: nir 1.0.4's reader (sinabs 3.1 pins nir<=1.0.4)
    # fails on any node-level metadata, but accepts the graph's.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={_META_KEY: json.dumps(info, sort_keys=True)})


def write_nir(net: Network, path, pool: str = "avg", strict: bool = False, legacy: bool = False) -> str:
    """Write ``net`` as a NIR file at ``path`` (atomically: nothing is left on failure). Returns the path.

    ``legacy=True`` leaves out the IF/LIF ``v_reset`` field (always 0 here), which NIR readers before
    1.0.6 reject (sinabs 3.1 pins nir<=1.0.4); they reset to 0 anyway.
    """
    _write(to_nir_graph(net, pool=pool, strict=strict), os.fspath(path), legacy)
    return os.fspath(path)


def _write(graph, path: str, legacy: bool = False) -> None:
    nir = _nir()
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
        if legacy:
            import h5py

            with h5py.File(tmp, "r+") as f:
                for node in f["node/nodes"].values():
                    if node["type"][()] in (b"IF", b"LIF") and "v_reset" in node:
                        del node["v_reset"]


# -- reading a spiking NIR graph back ------------------------------------------------------------------
_SYNAPSES = ("Conv2d", "Affine", "Linear", "AvgPool2d", "SumPool2d")
_NEURONS = ("IF", "LIF", "I", "LI")
READ_NODES = ("Input", "Output", "Flatten", "Scale") + _SYNAPSES + _NEURONS


def _meta_value(v):
    """A metadata value as written by nir.write and read by nir.read: bytes -> str, 0-d -> scalar."""
    if isinstance(v, bytes):
        return v.decode("utf8", "replace")
    arr = np.asarray(v)
    if arr.dtype.kind in "SO" and arr.size == 1:
        item = arr.reshape(-1)[0]
        return item.decode("utf8", "replace") if isinstance(item, bytes) else item
    if arr.ndim == 0:
        return arr.item()
    return arr


def _read_info(path, graph) -> dict:
    """The eventsnn JSON in the graph metadata (written by write_nir), or {"nodes": {}} for other files."""
    raw = (getattr(graph, "metadata", None) or {}).get(_META_KEY)
    if raw is None:
        return {"nodes": {}}
    try:
        info = json.loads(_meta_value(raw))
        if not isinstance(info, dict) or not isinstance(info.get("nodes", {}), dict):
            raise ValueError("not a JSON object with a 'nodes' object")
    except ValueError as exc:
        raise NetworkError(f"{path}: the graph metadata {_META_KEY!r} is not eventsnn's JSON ({exc})") from None
    info.setdefault("nodes", {})
    return info


class _Reader:
    """NIR graph -> spiking Network (the inverse of to_nir_graph; see read_nir_network)."""

    def __init__(self, path, graph):
        self.path = path
        self.graph = graph
        self.layers: list = []
        self.names: set = set()
        self.info = _read_info(path, graph)

    def fail(self, name, node, msg):
        raise NetworkError(f"{self.path}: node {name!r} ({type(node).__name__}): {msg}")

    def original(self, name):
        """The eventsnn layer name write_nir recorded for a node, else the node's own name."""
        return str(self.info["nodes"].get(name, {}).get("layer", name))

    def unique(self, base):
        name, k = base, 1
        while name in self.names or name == "input":
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def run(self) -> Network:
        g = self.graph
        nodes = {str(k): v for k, v in g.nodes.items()}
        preds = {k: [] for k in nodes}
        succs = {k: [] for k in nodes}
        for a, b in g.edges:
            a, b = str(a), str(b)
            if a not in nodes or b not in nodes:
                raise NetworkError(f"{self.path}: edge ({a!r}, {b!r}) names no node")
            preds[b].append(a)
            succs[a].append(b)
        for name, node in nodes.items():
            kind = type(node).__name__
            if kind not in READ_NODES:
                raise NetworkError(f"{self.path}: node {name!r} ({kind}) cannot be read as a spiking eventsnn "
                                   f"network; supported: {', '.join(READ_NODES)} (for conversion of other graphs "
                                   f"use `eventsnn convert`)")
        inputs = [n for n in nodes if type(nodes[n]).__name__ == "Input"]
        outputs = [n for n in nodes if type(nodes[n]).__name__ == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise NetworkError(f"{self.path}: expected one Input and one Output node, found {inputs} and {outputs}")
        # topological order
        indeg = {n: len(p) for n, p in preds.items()}
        order, ready = [], [n for n in nodes if indeg[n] == 0]
        while ready:
            n = ready.pop(0)
            order.append(n)
            for s in succs[n]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
        if len(order) != len(nodes):
            raise NetworkError(f"{self.path}: the graph has a cycle (recurrent connections); only feed-forward "
                               f"graphs can be read")
        meta = self.info
        acts: dict = {}
        decoding = "spikes"
        input_shape = None
        out_layer = None
        for name in order:
            node = nodes[name]
            kind = type(node).__name__
            ps = preds[name]
            if kind == "Input":
                shape = [int(d) for d in np.asarray(node.input_type["input"]).reshape(-1)]
                if len(shape) == 4 and shape[0] == 1:
                    shape = shape[1:]
                if len(shape) == 3:
                    c, h, w = shape
                    input_shape = (h, w, c)
                    acts[name] = {"layer": "input", "shape": (h, w, c), "flat": False}
                elif len(shape) == 1:
                    input_shape = (shape[0],)
                    acts[name] = {"layer": "input", "shape": (1, 1, shape[0]), "flat": True}
                else:
                    self.fail(name, node, f"input shape {shape} is not (C, H, W) or (N,)")
                continue
            if not ps:
                self.fail(name, node, "no edge leads into this node")
            if kind == "Output":
                if len(ps) != 1:
                    self.fail(name, node, "several edges lead into the graph output")
                out_layer = acts[ps[0]]
                continue
            if kind in _NEURONS:
                acts[name] = self.neuron(name, node, [acts[p] for p in ps], ps)
                if kind in ("I", "LI"):
                    if any(type(nodes[s]).__name__ != "Output" for s in succs[name]):
                        self.fail(name, node, "an integrator without spikes must be the graph's output")
                    decoding = "membrane"
                continue
            if len(ps) != 1:
                self.fail(name, node, f"several edges ({ps}) lead into a {kind}; only neuron nodes sum inputs")
            x = acts[ps[0]]
            if x.get("pending"):
                self.fail(name, node, f"its input {ps[0]!r} is a synapse without a neuron; eventsnn needs a "
                                      f"neuron (IF/LIF) after every Conv2d/Affine/pool")
            acts[name] = getattr(self, "op_" + kind)(name, node, x)
        if out_layer is None or out_layer["layer"] == "input" or out_layer.get("pending"):
            raise NetworkError(f"{self.path}: the Output must be fed by a neuron node (IF/LIF/I/LI) or a Flatten")
        if self.layers[-1].name != out_layer["layer"]:
            raise NetworkError(f"{self.path}: the Output is not fed by the last layer")
        net = Network(input_shape=input_shape, layers=self.layers,
                      encoding=str(meta.get("encoding", "direct")),
                      decoding=str(meta.get("decoding", decoding)),
                      provenance={"format": "nir", "path": self.path})
        infer_shapes(net)
        return net

    # -- synapses -------------------------------------------------------
    def _pair(self, name, node, v, what):
        arr = np.asarray(v).reshape(-1)
        if arr.size == 1:
            arr = np.repeat(arr, 2)
        if arr.size != 2 or arr.dtype.kind not in "iuf" or np.any(arr != np.round(arr)):
            self.fail(name, node, f"{what}={v!r} is not an int or a pair of ints")
        return int(arr[0]), int(arr[1])

    def _pending(self, name, layer, x, shape, flat, factor=1):
        layer.name = self.unique(self.original(name))
        self.layers.append(layer)
        return {"layer": layer.name, "shape": shape, "flat": flat, "pending": True, "factor": factor}

    def op_Conv2d(self, name, node, x):
        if x["flat"]:
            self.fail(name, node, "a Conv2d needs a (C, H, W) input")
        w = np.asarray(node.weight, np.float32)
        if w.ndim != 4:
            self.fail(name, node, f"weight of shape {w.shape} is not (C_out, C_in, kh, kw)")
        if int(np.asarray(node.groups).reshape(-1)[0]) != 1 or self._pair(name, node, node.dilation, "dilation") != (1, 1):
            self.fail(name, node, "only groups=1 and dilation=1 are supported")
        pad = node.padding
        if isinstance(pad, (str, bytes)) or (isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO"):
            self.fail(name, node, f"padding={pad!r}: only explicit integer padding is supported")
        stride = self._pair(name, node, node.stride, "stride")
        padding = self._pair(name, node, pad, "padding")
        bias = None if node.bias is None else np.asarray(node.bias, np.float32).reshape(-1)
        if bias is not None and not np.any(bias):
            bias = None
        layer = Layer("", "conv2d", (x["layer"],), weight=np.ascontiguousarray(w.transpose(2, 3, 1, 0)), bias=bias,
                      stride=stride, padding=padding)
        h, wd, _ = x["shape"]
        co, _, kh, kw = w.shape
        shape = ((h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // stride[1] + 1, co)
        return self._pending(name, layer, x, shape, False)

    def _dense(self, name, node, x, bias):
        w = np.asarray(node.weight, np.float32)
        if w.ndim != 2:
            self.fail(name, node, f"weight of shape {w.shape} is not (out, in)")
        if not x["flat"]:
            self.fail(name, node, "an Affine/Linear node needs a flat input (insert a Flatten)")
        wt = np.ascontiguousarray(w.T)
        if x.get("chw") is not None:
            h, wd, c = x["chw"]
            rows = np.empty_like(wt)
            rows[_hwc_to_chw_index(h, wd, c)] = wt   # NIR's CHW flatten order back into HWC
            wt = rows
        b = None if bias is None else np.asarray(bias, np.float32).reshape(-1)
        if b is not None and not np.any(b):
            b = None
        layer = Layer("", "dense", (x["layer"],), weight=wt, bias=b)
        return self._pending(name, layer, x, (1, 1, w.shape[0]), True)

    def op_Affine(self, name, node, x):
        return self._dense(name, node, x, node.bias)

    def op_Linear(self, name, node, x):
        return self._dense(name, node, x, None)

    def _pool(self, name, node, x, summed):
        if x["flat"]:
            self.fail(name, node, "pooling needs a (C, H, W) input")
        k = self._pair(name, node, node.kernel_size, "kernel_size")
        s = self._pair(name, node, node.stride if node.stride is not None else node.kernel_size, "stride")
        if self._pair(name, node, node.padding if node.padding is not None else 0, "padding") != (0, 0):
            self.fail(name, node, "padded pooling is not supported")
        h, w, c = x["shape"]
        layer = Layer("", "avgpool2d", (x["layer"],), kernel=k, stride=s)
        shape = ((h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1, c)
        return self._pending(name, layer, x, shape, False, factor=k[0] * k[1] if summed else 1)

    def op_AvgPool2d(self, name, node, x):
        return self._pool(name, node, x, False)

    def op_SumPool2d(self, name, node, x):
        return self._pool(name, node, x, True)

    def op_Flatten(self, name, node, x):
        if x["flat"]:
            return x
        start, end = int(node.start_dim), int(node.end_dim)
        if start not in (0, 1) or end not in (-1, 2, 3):
            self.fail(name, node, f"start_dim={start}, end_dim={end} does not flatten the whole map")
        layer = Layer(self.unique(self.original(name)), "flatten", (x["layer"],))
        self.layers.append(layer)
        h, w, c = x["shape"]
        return {"layer": layer.name, "shape": (1, 1, h * w * c), "flat": True,
                "chw": (h, w, c) if h * w > 1 else None}

    def op_Scale(self, name, node, x):
        s = np.asarray(node.scale, np.float32).reshape(-1)
        if s.size == 0 or not np.all(s == s[0]):
            self.fail(name, node, "only a uniform Scale in front of a summing neuron is supported")
        return dict(x, scale=float(s[0]) * x.get("scale", 1.0))

    # -- neurons --------------------------------------------------------
    def _uniform_channels(self, name, node, arr, x, what):
        """A NIR per-neuron parameter as eventsnn's scalar or per-channel value."""
        h, w, c = x["shape"]
        arr = np.asarray(arr, np.float32)
        try:
            full = np.broadcast_to(arr.reshape(-1) if arr.size == h * w * c else arr, (h * w * c,)) if x["flat"] \
                else np.broadcast_to(arr, (c, h, w)).transpose(1, 2, 0)
        except ValueError:
            self.fail(name, node, f"{what} of shape {arr.shape} does not fit the layer shape")
        full = np.asarray(full).reshape(h, w, c)
        if np.all(full == full.reshape(-1)[0]):
            return float(full.reshape(-1)[0])
        if not np.all(full == full[:1, :1, :]):
            self.fail(name, node, f"{what} differs within a channel; eventsnn has one value per channel")
        return full[0, 0, :].copy()

    def neuron(self, name, node, xs, ps):
        kind = type(node).__name__
        meta = self.info["nodes"].get(name, {})
        if len(xs) == 1 and xs[0].get("pending"):
            x = xs[0]
            layer = self.layers[-1] if self.layers and self.layers[-1].name == x["layer"] else \
                next(lay for lay in self.layers if lay.name == x["layer"])
        else:
            for p, x in zip(ps, xs):
                if x["layer"] == "input" or (not x.get("pending") and x.get("flat") and x.get("chw")):
                    self.fail(name, node, f"input {p!r} cannot be summed here")
            shapes = {tuple(x["shape"]) for x in xs}
            if len(shapes) != 1:
                self.fail(name, node, f"its inputs {ps} are summed but have different shapes {sorted(shapes)}")
            scales = [1.0 if x.get("pending") else x.get("scale", 1.0) for x in xs]
            layer = Layer(self.unique(self.original(name)), "add", tuple(x["layer"] for x in xs),
                          weight=None if all(s == 1.0 for s in scales) else np.asarray(scales, np.float32))
            self.layers.append(layer)
            x = dict(xs[0], factor=1, scale=1.0)
        factor = x.get("factor", 1)
        r = np.asarray(node.r, np.float32)
        if not np.all(r == 1):
            self.fail(name, node, "r != 1 is not supported (fold the resistance into the weights)")
        if kind in ("IF", "LIF"):
            v_reset = getattr(node, "v_reset", None)
            if v_reset is not None and np.any(np.asarray(v_reset) != 0):
                self.fail(name, node, "v_reset != 0 is not supported (eventsnn resets to 0 or by subtraction)")
            thr = self._uniform_channels(name, node, node.v_threshold, x, "v_threshold")
            mfactor = float(meta.get("threshold_factor", factor))
            if factor != 1:
                thr = (np.asarray(thr, np.float64) / mfactor).astype(np.float32)
                thr = float(thr) if thr.ndim == 0 else thr
        else:
            thr = meta.get("threshold", 1.0)
            thr = np.asarray(thr, np.float32).reshape(-1)
            thr = float(thr[0]) if thr.size == 1 else thr
            if factor != 1:
                self.fail(name, node, "a SumPool2d before an integrator output is not supported")
        if kind in ("LIF", "LI"):
            if np.any(np.asarray(node.v_leak) != 0):
                self.fail(name, node, "v_leak != 0 is not supported")
            tau = np.asarray(node.tau, np.float64).reshape(-1)
            if not np.all(tau == tau[0]) or not tau[0] > 0:
                self.fail(name, node, "tau must be positive and the same for every neuron")
            leak = float(meta.get("leak", math.exp(-1.0 / float(tau[0]))))
            nkind = "lif"
        else:
            leak, nkind = 1.0, "if"
        reset = str(meta.get("reset", "zero"))  # NIR's own rule: v <- v_reset (= 0)
        if reset not in ("subtract", "zero"):
            self.fail(name, node, f"metadata reset {reset!r} is not 'subtract' or 'zero'")
        layer.neuron = Neuron(nkind, thr, reset, leak, float(meta.get("v_init", 0.0)))
        return {"layer": layer.name, "shape": x["shape"], "flat": x["flat"]}


def read_nir_network(path) -> Network:
    """Read a spiking NIR graph as a :class:`Network` (the inverse of :func:`write_nir`).

    Nodes: Input, Conv2d / Affine / Linear / AvgPool2d / SumPool2d each followed
    by IF or LIF (or I / LI as a membrane readout at the output), Flatten, and
    several edges (optionally through a uniform Scale) into one neuron node as
    an ``add`` join. eventsnn metadata (written by :func:`write_nir`) restores
    the reset rule, v_init and the exact leak; without it NIR's own rule is
    used: reset to ``v_reset`` (which must be 0), ``leak = exp(-1/tau)`` with
    dt = 1 step, ``r`` must be 1. Anything else raises :class:`NetworkError`
    naming the file and the node.
    """
    nir = _nir()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NetworkError(f"{path}: no such NIR file")
    try:
        graph = nir.read(path)
    except Exception as exc:  # not HDF5, not NIR, truncated
        raise NetworkError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})") from None
    if type(graph).__name__ != "NIRGraph":
        raise NetworkError(f"{path}: the file holds a single {type(graph).__name__} node, not a NIRGraph")
    return _Reader(path, graph).run()


def export_summary(net: Network, path, pool: str = "avg", strict: bool = False, legacy: bool = False) -> str:
    """Write ``net`` to ``path`` (:func:`write_nir`) and return the one-paragraph report the CLI prints:
    the NIR nodes written and what NIR's equations leave to the eventsnn metadata."""
    graph = to_nir_graph(net, pool=pool, strict=strict)
    path = os.fspath(path)
    _write(graph, path, legacy)
    counts: dict = {}
    for node in graph.nodes.values():
        counts[type(node).__name__] = counts.get(type(node).__name__, 0) + 1
    kinds = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items())
    notes = []
    neurons = [layer.neuron for layer in net.layers if layer.neuron is not None]
    if any(n.reset == "subtract" for n in neurons):
        notes.append("reset by subtraction (NIR's IF/LIF reset to v_reset = 0; sinabs and snnTorch subtract)")
    if any(n.v_init for n in neurons):
        notes.append(f"v_init = {sorted({float(n.v_init) for n in neurons if n.v_init})} x threshold")
    if net.encoding != "direct":
        notes.append(f"{net.encoding} input encoding")
    line = f"wrote {path}: NIR graph of {len(graph.nodes)} nodes ({kinds})"
    if notes:
        line += "\nrecorded only in the eventsnn metadata (readers that ignore it will differ): " + "; ".join(notes)
    return line
