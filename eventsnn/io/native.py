"""The native network file: HDF5, format ``eventsnn.network`` version 1.

Layout (documented in docs/FORMAT.md)::

    /                attrs: format="eventsnn.network", version=1,
                            input_shape (int64[3] or [1]), encoding, decoding,
                            provenance (JSON text)
    /layers          attrs: count
    /layers/NNNN     attrs: name, kind, inputs (JSON list of names),
                            kernel, stride, padding (int64[2]; absent if unused),
                            delay (float64)
                     datasets: weight (float32) or, for a tensor of exactly two
                               values, weight_bits (uint8, packed bits, attrs
                               shape and levels[2]), bias (float32, optional)
    /layers/NNNN/neuron   attrs: kind ("if"|"lif"), reset ("subtract"|"zero"),
                                 leak (float64), v_init (float64, optional,
                                 default 0), max_spikes (int64, optional,
                                 default 1); dataset: threshold (float32,
                                 scalar or per channel)

Weights are channel-last: conv (kh, kw, C_in, C_out), dense (N_in, N_out) with
rows in HWC flatten order. Nothing is pickled; every load is validated and a
bad file raises :class:`NetworkError` naming the file, the layer and the field.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from .. import limits
from ..errors import ResourceError
from ..network import Layer, Network, NetworkError, Neuron
from . import json_safe
from .atomic import atomic_path
from .safe_h5 import H5_ERRORS, open_h5

FORMAT = "eventsnn.network"
VERSION = 1


def save_network(net: Network, path, force: bool = False) -> None:
    """Validate ``net`` and write it to ``path`` (atomically; ``force``: see :func:`.atomic.atomic_path`)."""
    net.shapes()
    with atomic_path(path, force) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["input_shape"] = np.asarray(net.input_shape, np.int64)
            f.attrs["encoding"] = net.encoding
            f.attrs["decoding"] = net.decoding
            f.attrs["provenance"] = json.dumps(net.provenance, default=_json_default)
            group = f.create_group("layers")
            group.attrs["count"] = len(net.layers)
            for i, layer in enumerate(net.layers):
                g = group.create_group(f"{i:04d}")
                g.attrs["name"] = layer.name
                g.attrs["kind"] = layer.kind
                g.attrs["inputs"] = json.dumps(list(layer.inputs))
                g.attrs["delay"] = float(layer.delay)
                if layer.kind in ("conv2d", "avgpool2d", "maxpool2d"):
                    g.attrs["stride"] = np.asarray(layer.stride, np.int64)
                    g.attrs["padding"] = np.asarray(layer.padding, np.int64)
                if layer.kind in ("avgpool2d", "maxpool2d"):
                    g.attrs["kernel"] = np.asarray(layer.kernel, np.int64)
                if layer.weight is not None:
                    _write_weight(g, np.asarray(layer.weight, np.float32))
                if layer.bias is not None:
                    g.create_dataset("bias", data=np.asarray(layer.bias, np.float32))
                if layer.neuron is not None:
                    n = g.create_group("neuron")
                    n.attrs["kind"] = layer.neuron.kind
                    n.attrs["reset"] = layer.neuron.reset
                    n.attrs["leak"] = float(layer.neuron.leak)
                    n.attrs["v_init"] = float(layer.neuron.v_init)
                    n.attrs["max_spikes"] = int(layer.neuron.max_spikes)
                    n.create_dataset("threshold", data=np.asarray(layer.neuron.threshold, np.float32))


# A weight tensor with exactly two values (binary kernels, e.g. of the stochastic STDP
# rule) is stored as one bit per weight: 32x smaller than float32.
BINARY_MIN_SIZE = 64


def _write_weight(g, w: np.ndarray) -> None:
    levels = np.unique(w) if w.size >= BINARY_MIN_SIZE else ()
    if len(levels) != 2:
        g.create_dataset("weight", data=w)
        return
    d = g.create_dataset("weight_bits", data=np.packbits((w == levels[1]).reshape(-1)))
    d.attrs["shape"] = np.asarray(w.shape, np.int64)
    d.attrs["levels"] = levels.astype(np.float32)


def _read_weight(g, where, required):
    """``weight`` (float32), or ``weight_bits`` (packed bits, attrs ``shape`` and the two
    ``levels``) unpacked to float32; never both."""
    if "weight_bits" not in g:
        return _dataset(g, "weight", where, required)
    if "weight" in g:
        raise NetworkError(f"{where}: both 'weight' and 'weight_bits' are present")
    try:
        d = g["weight_bits"]
        if not isinstance(d, h5py.Dataset) or d.dtype != np.uint8 or d.ndim != 1:
            raise NetworkError(f"{where}: field 'weight_bits' must be a 1-d uint8 dataset")
        shape = _attr(d, "shape", f"{where}: weight_bits", "ints")
        try:
            levels = np.asarray(d.attrs["levels"] if "levels" in d.attrs else (), np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise NetworkError(f"{where}: weight_bits: field 'levels' must hold two finite numbers") from None
        if not shape or len(shape) > 4 or min(shape) < 1:
            raise NetworkError(f"{where}: weight_bits: field 'shape' must be 1 to 4 positive sizes, got {shape}")
        if levels.size != 2 or not np.all(np.isfinite(levels)):
            raise NetworkError(f"{where}: weight_bits: field 'levels' must hold two finite numbers")
        n = int(np.prod(shape, dtype=object))
        if d.shape[0] != (n + 7) // 8:
            raise NetworkError(f"{where}: weight_bits holds {d.shape[0]} bytes; shape {shape} needs {(n + 7) // 8}")
        limits.check_bytes(4 * n, f"{where}: the unpacked weights")
        bits = np.unpackbits(np.asarray(d[()], np.uint8), count=n)
    except H5_ERRORS as exc:
        raise NetworkError(f"{where}: field 'weight_bits' cannot be read (damaged file: {type(exc).__name__}: "
                           f"{exc})") from None
    return np.where(bits.astype(bool), np.float32(levels[1]), np.float32(levels[0])).reshape(shape)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def load_network(path) -> Network:
    """Read and validate a network file; raise NetworkError naming the file, layer and field.

    The file is opened by :func:`.safe_h5.open_h5`: external storage, external
    links and virtual datasets are refused before any data is read, and so is
    a file declaring more data than the memory limit. A network whose engine
    structures would exceed the limit is refused too (:mod:`eventsnn.limits`).
    """
    path = os.fspath(path)
    try:
        with open_h5(path, NetworkError, "network file") as f:
            net = _read(f, path)
        net.shapes()
        limits.check_network(net, f"{path}: this network")
    except ResourceError:
        raise
    except NetworkError as exc:
        msg = str(exc)
        raise NetworkError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except (RecursionError, *H5_ERRORS) as exc:
        raise NetworkError(f"{path}: damaged network file: {type(exc).__name__}: {exc}") from None
    return net


def _attr(obj, key, where, kind=str, required=True, default=None):
    try:
        if key not in obj.attrs:
            if required:
                raise NetworkError(f"{where}: field '{key}' is missing")
            return default
        value = obj.attrs[key]
    except H5_ERRORS as exc:
        raise NetworkError(f"{where}: field '{key}' cannot be read (damaged file: {type(exc).__name__}: {exc})") from None
    if kind is str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            raise NetworkError(f"{where}: field '{key}' must be text, got {type(value).__name__}")
        return value
    try:
        arr = np.asarray(value)
        if kind is float:
            return float(arr.reshape(()))
        if kind is int:
            if not np.issubdtype(arr.dtype, np.integer) or arr.size != 1:
                raise TypeError
            return int(arr.reshape(()))
        if kind == "ints":
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError
            return tuple(int(v) for v in arr.reshape(-1))
    except (TypeError, ValueError):
        raise NetworkError(f"{where}: field '{key}' has the wrong type ({value!r})") from None
    raise AssertionError(kind)  # unreachable: programming error, not user input


def _dataset(g, key, where, required):
    try:
        if key not in g:
            if required:
                raise NetworkError(f"{where}: field '{key}' is missing")
            return None
        obj = g[key]
        if not isinstance(obj, h5py.Dataset):
            raise NetworkError(f"{where}: field '{key}' must be a dataset")
        if obj.dtype.kind not in "fiu":
            raise NetworkError(f"{where}: field '{key}' must be numeric, got dtype {obj.dtype}")
        if obj.size > (1 << 31):
            raise NetworkError(f"{where}: field '{key}' is absurdly large ({obj.shape})")
        return np.asarray(obj[()], dtype=np.float32)
    except H5_ERRORS as exc:
        raise NetworkError(f"{where}: field '{key}' cannot be read (damaged file: {type(exc).__name__}: {exc})") from None


def _read(f: h5py.File, path: str) -> Network:
    where = "file"
    fmt = _attr(f, "format", where)
    if fmt != FORMAT:
        raise NetworkError(f"{where}: field 'format' is {fmt!r}, not {FORMAT!r}")
    if "version" not in f.attrs:
        raise NetworkError(f"{where}: field 'version' is missing")
    version = _attr(f, "version", where, int)  # an integer: 1.99 is not version 1
    if version != VERSION:
        raise NetworkError(f"{where}: format version {version} is not supported (this eventsnn reads version {VERSION})")
    input_shape = _attr(f, "input_shape", where, "ints")
    encoding = _attr(f, "encoding", where)
    decoding = _attr(f, "decoding", where)
    provenance = json_safe.loads(_attr(f, "provenance", where, required=False, default="{}"),
                                 f"{where}: field 'provenance'", NetworkError)
    if "layers" not in f or not isinstance(f["layers"], h5py.Group):
        raise NetworkError(f"{where}: group 'layers' is missing")
    group = f["layers"]
    count = _attr(group, "count", "layers", int)
    if count < 1 or count > 100000:
        raise NetworkError(f"layers: field 'count' is invalid ({count})")
    expected = [f"{i:04d}" for i in range(count)]
    for i, key in enumerate(expected):
        if key not in group:
            raise NetworkError(f"layer {i}: group 'layers/{key}' is missing (layers: field 'count' is {count})")
    extra = sorted(set(group.keys()) - set(expected))
    if extra:  # a count that is too small would silently drop layers (the output layer, say)
        raise NetworkError(f"layers: field 'count' is {count}, but the group also holds "
                           f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    layers = []
    for i, key in enumerate(expected):
        if not isinstance(group[key], h5py.Group):
            raise NetworkError(f"layer {i}: 'layers/{key}' is not a group")
        layers.append(_read_layer(group[key], i))
    return Network(input_shape=input_shape, layers=layers, encoding=encoding,
                   decoding=decoding, provenance=provenance)


def _read_layer(g, i: int) -> Layer:
    where = f"layer {i}"
    name = _attr(g, "name", where)
    where = f"layer {i} ({name!r})"
    kind = _attr(g, "kind", where)
    inputs = json_safe.loads(_attr(g, "inputs", where), f"{where}: field 'inputs'", NetworkError)
    if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
        raise NetworkError(f"{where}: field 'inputs' must be a list of layer names")
    layer = Layer(name=name, kind=kind, inputs=tuple(inputs))
    layer.delay = _attr(g, "delay", where, float, required=False, default=0.0)
    layer.stride = _attr(g, "stride", where, "ints", required=False, default=None)
    layer.padding = _attr(g, "padding", where, "ints", required=False, default=(0, 0))
    layer.kernel = _attr(g, "kernel", where, "ints", required=False, default=())
    layer.weight = _read_weight(g, where, required=kind in ("conv2d", "dense"))
    layer.bias = _dataset(g, "bias", where, required=False)
    if "neuron" in g:
        n = g["neuron"]
        nwhere = f"{where}: neuron"
        threshold = _dataset(n, "threshold", nwhere, required=True)
        layer.neuron = Neuron(kind=_attr(n, "kind", nwhere), threshold=threshold,
                              reset=_attr(n, "reset", nwhere),
                              leak=_attr(n, "leak", nwhere, float),
                              v_init=_attr(n, "v_init", nwhere, float, required=False, default=0.0),
                              max_spikes=_attr(n, "max_spikes", nwhere, int, required=False, default=1))
    return layer
