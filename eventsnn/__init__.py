"""eventsnn: an event-driven simulator for deep spiking neural networks.

The main entry points, imported lazily (so ``import eventsnn`` does not load Numba):

- :class:`Simulator` — run, step and debug one network on one input at a time;
- :func:`load_network` / :func:`save_network` — the native HDF5 network file;
- :func:`load_dataset` — IDX, CIFAR binary and ``.npz`` data sets;
- :func:`run_dataset` — simulate a whole data set and keep every count;
- :func:`convert` — ANN-to-SNN conversion; :func:`read_model` — ONNX, Keras HDF5, NIR;
- :func:`write_nir` / :func:`read_nir_network` — a spiking network to and from a NIR graph;
- ``eventsnn.data.path(name)`` — the shipped default network and images, from any folder;
- :class:`Network`, :class:`Layer`, :class:`Neuron` — building networks in code.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Simulator": "eventsnn.engine.simulator",
    "load_network": "eventsnn.io.native",
    "save_network": "eventsnn.io.native",
    "load_dataset": "eventsnn.datasets",
    "run_dataset": "eventsnn.results",
    "load_results": "eventsnn.results",
    "convert": "eventsnn.convert",
    "read_model": "eventsnn.io.models",
    "write_nir": "eventsnn.io.nir_export",
    "read_nir_network": "eventsnn.io.nir_export",
    "energy_report": "eventsnn.energy",
    "Network": "eventsnn.network",
    "Layer": "eventsnn.network",
    "Neuron": "eventsnn.network",
    "EventsnnError": "eventsnn.errors",
    "NetworkError": "eventsnn.errors",
    "DataError": "eventsnn.errors",
    "SimulationError": "eventsnn.errors",
    "ResultsError": "eventsnn.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'eventsnn' has no attribute {name!r}")


def __dir__():
    """The lazily imported names too, so tab completion and dir(eventsnn) show them."""
    return sorted(set(globals()) | set(_EXPORTS))
