"""Mutation fuzzing of every file format eventsnn reads (issue 12).

One valid *seed* file per format is built with the real tools (h5py via
``save_network``/``RunResult.save``, ``onnx``, Keras' own HDF5 fixture, ``nir``,
IDX/CIFAR bytes as the formats define them, ``np.savez``). A *mutation* turns
it into a hostile variant: byte-level (truncation, flips, overwritten runs,
inserted or duplicated bytes) or structural (an object deleted, a dataset of
the wrong dtype or shape, NaN/inf values, a huge declared size, an attribute
replaced by nested JSON or a wrong type, an external link or external storage,
a pickled array, an IDX header declaring gigabytes ...). The loader for the
format must then return a legitimate result or raise eventsnn's own error
(:class:`~eventsnn.errors.EventsnnError`), within bounded time and under a
memory limit; anything else is a finding.

Mutations draw their choices through a ``draw(lo, hi)`` callable, so the same
code runs under hypothesis (tests/test_fuzz.py, small and shrinking) and from a
seeded RNG (bench/fuzz_formats.py, long runs with counts).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

from eventsnn import limits
from eventsnn.errors import EventsnnError

HERE = Path(__file__).resolve().parent
KERAS_SEED = HERE / "fixtures" / "keras" / "sequential.h5"
FORMATS = ("network", "results", "onnx", "keras", "nir", "idx", "cifar", "npz")
HDF5_FORMATS = ("network", "results", "keras", "nir")
FUZZ_MEMORY = "256M"  # huge declared sizes must be refused, never allocated
TIME_LIMIT = 20.0  # seconds per case (the HDF5 probe's own limit is 10 s)


# -- seeds ----------------------------------------------------------------------------------


def make_seeds(directory) -> dict:
    """Write one valid file per format into ``directory``; return ``{format: path}``."""
    from eventsnn.io import save_network
    from eventsnn.network import Layer, Network, Neuron
    from eventsnn.results import run_dataset

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    net = Network(input_shape=(6, 6, 1), provenance={"note": "seed", "folded_pools": {}}, layers=[
        Layer("conv", "conv2d", weight=rng.normal(0, 0.5, (3, 3, 1, 2)).astype(np.float32),
              bias=np.zeros(2, np.float32), neuron=Neuron(threshold=np.array([1.0, 0.5], np.float32))),
        Layer("pool", "avgpool2d", kernel=(2, 2), neuron=Neuron("lif", 0.5, "zero", 0.5)),
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=rng.normal(0, 0.5, (8, 3)).astype(np.float32), neuron=Neuron()),
    ])
    seeds = {"network": d / "net.h5"}
    save_network(net, seeds["network"])
    x = rng.random((3, 6, 6, 1)).astype(np.float32)
    seeds["results"] = d / "results.h5"
    run_dataset(net, x, np.array([0, 1, 2]), timesteps=4, checkpoints=[2]).save(seeds["results"])

    seeds["keras"] = d / "keras.h5"
    shutil.copy(KERAS_SEED, seeds["keras"])

    import sys
    sys.path.insert(0, str(HERE))
    from annbuild import AnnBuilder, to_onnx
    b = AnnBuilder((6, 6, 1))
    b.conv(2, k=3, pad=1)
    b.relu()
    b.pool("avgpool2d", 2)
    b.flatten()
    b.dense(3)
    b.relu()
    seeds["onnx"] = d / "model.onnx"
    to_onnx(b.graph(), seeds["onnx"])

    import nir
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 0.5, (2, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(2)),
        "if1": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.ones((2, 6, 6)), v_reset=np.zeros((2, 6, 6))),
        "flat": nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0, 0.5, (3, 72)), bias=np.zeros(3)),
        "if2": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "if2"),
              ("if2", "output")], type_check=False)
    seeds["nir"] = d / "model.nir"
    nir.write(str(seeds["nir"]), graph)

    images = (rng.random((4, 5, 5)) * 255).astype(np.uint8)
    seeds["idx"] = d / "t10k-images-idx3-ubyte.gz"
    seeds["idx"].write_bytes(gzip.compress(_idx(8, images.shape) + images.tobytes()))
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(8, (4,)) + bytes([0, 1, 2, 3]))

    cifar = bytearray()
    for label in (0, 3, 9):
        cifar += bytes([label]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
    seeds["cifar"] = d / "test_batch.bin"
    seeds["cifar"].write_bytes(bytes(cifar))

    seeds["npz"] = d / "data.npz"
    np.savez(seeds["npz"], x=rng.random((3, 4, 4)).astype(np.float32), y=np.array([0, 1, 2]))
    return seeds


def _idx(code: int, dims) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


# -- loading ----------------------------------------------------------------------------------


def load(fmt: str, path) -> str:
    """Load ``path`` as ``fmt`` the way the CLI does; return what came out (for the counts)."""
    if fmt == "network":
        from eventsnn.io import load_network
        net = load_network(path)
        limits.check_run(net, 10)
        return "network"
    if fmt == "results":
        from eventsnn.energy import energy_report, get_profile
        from eventsnn.results import load_results
        report = energy_report(load_results(path), get_profile(None))
        values = [v for row in report.rows for v in row.values() if isinstance(v, float)]
        assert all(np.isfinite(values)), "energy report with inf/nan from an accepted file"
        return "results"
    if fmt in ("onnx", "keras", "nir"):
        from eventsnn.io.models import read_model
        graph = read_model(path, fmt)
        return f"{fmt} graph of {len(graph.layers)} layers"
    from eventsnn.datasets import load_dataset
    data = load_dataset(path)
    assert data.x.dtype == np.float32 and np.all(np.isfinite(data.x))
    return "dataset"


def check_case(fmt: str, path) -> str:
    """Load one mutated file: ``"ok"`` or ``"refused:<ErrorClass>"``; anything else raises."""
    start = time.monotonic()
    try:
        with limits.memory_limit(FUZZ_MEMORY):
            load(fmt, path)
        outcome = "ok"
    except EventsnnError as exc:
        outcome = f"refused:{type(exc).__name__}"
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT, f"{fmt}: took {elapsed:.1f} s"
    return outcome


# -- mutations ----------------------------------------------------------------------------------


def mutate(fmt: str, seed: Path, out: Path, draw) -> str:
    """Write a mutation of ``seed`` to ``out``; ``draw(lo, hi)`` picks integers; return its name."""
    shutil.copy(seed, out)
    kinds = ["bytes"] * 2 + ["structure"] * 3
    if draw(0, len(kinds) - 1) < 2:
        return _bytes(out, draw, metadata=fmt in HDF5_FORMATS)
    if fmt in HDF5_FORMATS:
        return _hdf5(out, draw)
    return {"onnx": _onnx, "idx": _idx_mutation, "cifar": _cifar, "npz": _npz}[fmt](out, draw)


def _bytes(path: Path, draw, metadata: bool) -> str:
    raw = bytearray(path.read_bytes())
    n = len(raw)
    # HDF5 metadata sits mostly in the first few KB; aim there most of the time
    span = min(n, 4096) if metadata and draw(0, 3) else n
    kind = draw(0, 4)
    if kind == 0:
        cut = draw(0, n - 1)
        del raw[cut:]
        name = "truncate"
    elif kind == 1:
        for _ in range(draw(1, 8)):
            raw[draw(0, span - 1)] ^= draw(1, 255)
        name = "flip bytes"
    elif kind == 2:
        at, length = draw(0, span - 1), draw(1, 64)
        raw[at:at + length] = bytes([draw(0, 255)]) * len(raw[at:at + length])
        name = "overwrite run"
    elif kind == 3:
        at = draw(0, span)
        raw[at:at] = bytes(draw(0, 255) for _ in range(draw(1, 32)))
        name = "insert bytes"
    else:
        at, length = draw(0, n - 1), draw(1, 256)
        raw[at:at] = raw[at:at + length]
        name = "duplicate chunk"
    path.write_bytes(bytes(raw))
    return name


def _objects(f: h5py.File) -> list:
    names = []
    f.visit(names.append)
    return names


_NESTED = "[" * 5000 + "]" * 5000


def _bad_values(draw, shape):
    choices = [
        lambda: np.full(shape, np.nan, np.float32),
        lambda: np.full(shape, np.inf, np.float64),
        lambda: np.array([b"text"] * max(int(np.prod(shape)), 1)),
        lambda: np.zeros(shape, np.complex64),
        lambda: np.ones(shape, bool),
        lambda: np.zeros((draw(0, 5), draw(0, 5)), np.float32),
        lambda: np.float32(draw(-3, 3)),
        lambda: np.full(shape, -1, np.int64),
        lambda: np.full(shape, 2 ** 62, np.int64),
        lambda: np.zeros((0,), np.float32),
    ]
    return choices[draw(0, len(choices) - 1)]()


def _attr_values(draw):
    choices = [_NESTED, '{"a": ' + _NESTED + "}", "[1, 2]", "", "not json", 1.99, float("nan"), -1, 2 ** 62,
               np.array([1, 2, 3]), np.array([], np.int64), b"\xff\xfe", '{"folded_pools": {"x": [2, 2]}}',
               "9" * 400, True, np.float32(np.inf)]
    return choices[draw(0, len(choices) - 1)]


def _hdf5(path: Path, draw) -> str:
    with h5py.File(path, "r+") as f:
        names = _objects(f)
        datasets = [n for n in names if isinstance(f[n], h5py.Dataset)]
        holders = ["/"] + [n for n in names]
        kind = draw(0, 6)
        if kind == 0 and names:
            victim = names[draw(0, len(names) - 1)]
            del f[victim]
            return "delete object"
        if kind == 1 and datasets:
            victim = datasets[draw(0, len(datasets) - 1)]
            shape = f[victim].shape or ()
            del f[victim]
            f[victim] = _bad_values(draw, shape)
            return "bad dataset values/dtype/shape"
        if kind == 2 and datasets:
            victim = datasets[draw(0, len(datasets) - 1)]
            del f[victim]
            f.create_dataset(victim, shape=(draw(1, 1000), 10 ** draw(5, 9)), dtype="<f4", chunks=(1, 1000),
                             compression="gzip")
            return "huge declared size"
        if kind == 3:
            holder = f[holders[draw(0, len(holders) - 1)]]
            keys = list(holder.attrs.keys())
            key = keys[draw(0, len(keys) - 1)] if keys and draw(0, 3) else "count"
            holder.attrs[key] = _attr_values(draw)
            return "bad attribute"
        if kind == 4 and datasets:
            victim = datasets[draw(0, len(datasets) - 1)]
            del f[victim]
            if draw(0, 1):
                f[victim] = h5py.ExternalLink("/etc/hostname", "/x")
                return "external link"
            f.create_dataset(victim, shape=(4,), dtype="<f4", external=[("/etc/hostname", 0, 16)])
            return "external storage"
        if kind == 5:
            holder = f[holders[draw(0, len(holders) - 1)]]
            keys = list(holder.attrs.keys())
            if keys:
                del holder.attrs[keys[draw(0, len(keys) - 1)]]
                return "delete attribute"
        if len(names) >= 2:
            a, b = names[draw(0, len(names) - 1)], names[draw(0, len(names) - 1)]
            if a != b and not b.startswith(a + "/") and not a.startswith(b + "/"):
                tmp = a + "_moved"
                f.move(a, tmp)
                del f[b]
                f.move(tmp, b)
                return "swap objects"
    return "no-op"


def _onnx(path: Path, draw) -> str:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    g = model.graph
    kind = draw(0, 5)
    name = "no-op"
    if kind == 0 and g.initializer:
        t = g.initializer[draw(0, len(g.initializer) - 1)]
        arr = numpy_helper.to_array(t)
        bad = [np.full(arr.shape, np.nan, np.float32), np.zeros((draw(0, 4), draw(0, 4)), np.float32),
               np.zeros(arr.shape, np.float64), np.ones(arr.shape, np.int64)][draw(0, 3)]
        t.CopyFrom(numpy_helper.from_array(bad, t.name))
        name = "bad initializer"
    elif kind == 1 and g.initializer:
        t = g.initializer[draw(0, len(g.initializer) - 1)]
        del t.dims[:]
        t.dims.extend([10 ** draw(3, 9), draw(1, 10)])
        name = "lying initializer dims"
    elif kind == 2 and g.node:
        del g.node[draw(0, len(g.node) - 1)]
        name = "delete node"
    elif kind == 3 and g.node:
        node = g.node[draw(0, len(g.node) - 1)]
        node.op_type = ["Conv", "Gemm", "Relu", "Softmax", "Loop", "Nonsense", "AveragePool"][draw(0, 6)]
        name = "change op"
    elif kind == 4 and g.node:
        node = g.node[draw(0, len(g.node) - 1)]
        for a in node.attribute:
            if a.ints:
                a.ints[draw(0, len(a.ints) - 1)] = [0, -1, 10 ** 6, 2 ** 40][draw(0, 3)]
                name = "bad attribute"
    elif g.initializer:
        t = g.initializer[draw(0, len(g.initializer) - 1)]
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", ["../../etc/hostname", "data.bin", "/etc/passwd"][draw(0, 2)]
        name = "external data"
    path.write_bytes(model.SerializeToString())
    return name


def _idx_mutation(path: Path, draw) -> str:
    raw = gzip.decompress(path.read_bytes())
    kind = draw(0, 3)
    if kind == 0:
        dims = [draw(0, 2 ** 32 - 1) if draw(0, 1) else draw(0, 70000) for _ in range(3)]
        raw = _idx(8, dims) + raw[16:]
        name = "header dims"
    elif kind == 1:
        raw = bytes([0, 0, draw(0, 255), draw(0, 255)]) + raw[4:]
        name = "header type/ndim"
    elif kind == 2:
        raw = _idx(0x0D, (4, 5, 5)) + np.full(100, np.nan, ">f4").tobytes()
        name = "float NaN images"
    else:
        label_path = path.with_name("t10k-labels-idx1-ubyte")
        label_path.write_bytes(_idx(8, (draw(0, 9),)) + bytes(draw(0, 255) for _ in range(draw(0, 9))))
        name = "labels mismatch"
    path.write_bytes(gzip.compress(raw) if draw(0, 3) else raw)
    return name


def _cifar(path: Path, draw) -> str:
    raw = bytearray(path.read_bytes())
    if draw(0, 1):
        raw[3073 * draw(0, 2)] = draw(10, 255)
        name = "label out of range"
    else:
        del raw[len(raw) - draw(1, 3072):]
        name = "partial record"
    path.write_bytes(bytes(raw))
    return name


def _npz(path: Path, draw) -> str:
    kind = draw(0, 5)
    arrays = {"x": np.random.default_rng(1).random((3, 4, 4)).astype(np.float32), "y": np.array([0, 1, 2])}
    if kind == 0:
        arrays["x"] = [np.full((3, 4, 4), np.nan), np.zeros((3, 4, 4), np.complex64), np.zeros((3,), np.float32),
                       np.zeros((3, 4, 4, 5, 6), np.float32), np.array(["a", "b", "c"]),
                       np.zeros((0, 4, 4), np.float32), np.zeros((3, 3, 32, 32), np.uint8)][draw(0, 6)]
        name = "bad x"
    elif kind == 1:
        arrays["y"] = [np.array([0.5, 1, 2]), np.array([-1, 0, 1]), np.array([0, 1]), np.zeros((3, 2), np.int64),
                       np.array([2 ** 63], np.uint64).repeat(3), np.array(["a", "b", "c"])][draw(0, 5)]
        name = "bad y"
    elif kind == 2:
        del arrays["x"]
        name = "no x"
    elif kind == 3:
        arrays["x"] = np.array([{"pickled": 1}] * 3, dtype=object)
        buf = io.BytesIO()
        np.save(buf, arrays["x"], allow_pickle=True)  # the hostile file itself holds a pickle
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", buf.getvalue())
        return "pickled object array"
    elif kind == 4:
        header = io.BytesIO()
        shape = (10 ** draw(6, 10), draw(1, 100), draw(1, 100))
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", header.getvalue() + b"\0" * draw(0, 1000))
        return "huge declared header"
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", b"\x93NUMPY\x01\x00" + bytes(draw(0, 255) for _ in range(draw(0, 200))))
        return "garbage header"
    np.savez(path, **arrays)
    return name


def run_one(fmt: str, seeds: dict, workdir: Path, draw, before=None) -> tuple:
    """Mutate the seed of ``fmt`` in ``workdir`` and load it: (mutation name, outcome).

    ``before(workdir)``, if given, is called between mutating and loading.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / Path(seeds[fmt]).name
    for extra in Path(seeds[fmt]).parent.glob("t10k-labels*"):
        if fmt == "idx":
            shutil.copy(extra, workdir / extra.name)
    name = mutate(fmt, Path(seeds[fmt]), out, draw)
    if before is not None:
        before(workdir)
    return name, check_case(fmt, out)


def cleanup(workdir: Path) -> None:
    for p in Path(workdir).glob("*"):
        if p.is_file():
            os.unlink(p)

