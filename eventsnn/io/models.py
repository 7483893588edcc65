"""Read a trained ANN from ONNX, Keras HDF5 or NIR into an :class:`~eventsnn.ann.AnnGraph`."""

from __future__ import annotations

import os

from ..ann import AnnGraph, ConversionError

FORMATS = ("auto", "onnx", "keras", "nir")


def detect_format(path) -> str:
    """``onnx``, ``keras`` or ``nir`` from the file's content (HDF5 layout) or name."""
    path = os.fspath(path)
    from .safe_h5 import require_regular
    require_regular(path, ConversionError, "model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        from .safe_h5 import open_h5
        with open_h5(path, ConversionError, "model file") as f:
            if "model_config" in f.attrs:
                return "keras"
            if "node" in f:
                return "nir"
        raise ConversionError(f"{path}: an HDF5 file that is neither a Keras model (no model_config) "
                              f"nor a NIR graph (no 'node' group)")
    if path.lower().endswith(".onnx") or head[:1] == b"\x08":
        return "onnx"
    raise ConversionError(f"{path}: unknown model format (expected ONNX, Keras HDF5 or NIR)")


def read_model(path, fmt: str = "auto") -> AnnGraph:
    """Import a model; ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ConversionError(f"unknown model format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "auto":
        fmt = detect_format(path)
    elif not os.path.isfile(os.fspath(path)):
        raise ConversionError(f"{os.fspath(path)}: no such model file")
    if fmt == "onnx":
        from .onnx_import import read_onnx
        graph = read_onnx(path)
    elif fmt == "keras":
        from .keras_import import read_keras_h5
        graph = read_keras_h5(path)
    else:
        from .nir_import import read_nir
        graph = read_nir(path)
    graph.source.setdefault("format", fmt)
    return graph


def not_a_network(path) -> None:
    """Raise :class:`~eventsnn.errors.NetworkError` with the command to use when ``path`` is a model file
    (ONNX, Keras HDF5, NIR) given where an eventsnn network file is expected; otherwise do nothing."""
    from ..errors import NetworkError

    path = os.fspath(path)
    if not os.path.isfile(path):
        return
    try:
        fmt = detect_format(path)
    except ConversionError:
        return  # not a model either: the network loader gives its own message
    what = {"onnx": "an ONNX model", "keras": "a Keras HDF5 model", "nir": "a NIR graph"}[fmt]
    hint = (f"convert it first: eventsnn convert {path} -o NET.h5 --calibration DATA"
            + ("; a spiking NIR graph written by `eventsnn export` reads back with "
               "eventsnn.io.nir_export.read_nir_network" if fmt == "nir" else ""))
    raise NetworkError(f"{path}: {what}, not an eventsnn network file; {hint}")
