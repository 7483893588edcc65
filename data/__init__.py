"""Files shipped with eventsnn: the default network, the trained VGG16 and the Fashion-MNIST samples.

They are package data (``eventsnn.data``), so an installed eventsnn finds them
from any folder::

    >>> import eventsnn.data
    >>> eventsnn.data.files()
    ['default_ann.json', 'default_ann.onnx', 'default_net.h5', 'energy_profiles.toml', 'fashion-mnist-sample.npz',
     'fashion-mnist-train-calib.npz', 'vgg16_fashion.json', 'vgg16_fashion.onnx']
    >>> net = eventsnn.load_network(eventsnn.data.path("default_net.h5"))  # doctest: +SKIP

``path(name)`` is a real file-system path (``importlib.resources``; eventsnn
is never installed zipped, so the path stays valid for the whole process).
"""

from __future__ import annotations

import os
from importlib import resources

from eventsnn.errors import DataError

# what is shipped to users (README.md here and the build scripts are not data)
_SUFFIXES = (".h5", ".npz", ".toml", ".onnx", ".json")


def files() -> list:
    """The names of the shipped data files, sorted."""
    root = resources.files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))


def path(name: str) -> str:
    """The file-system path of the shipped file ``name`` (e.g. ``"default_net.h5"``).

    Raises :class:`~eventsnn.errors.DataError` naming the files that are shipped
    when ``name`` is not one of them.
    """
    if not isinstance(name, str) or os.path.basename(name) != name:
        raise DataError(f"eventsnn.data.path: expected a file name such as 'default_net.h5', got {name!r}")
    resource = resources.files(__name__) / name
    if not resource.is_file():
        raise DataError(f"eventsnn.data: no shipped file {name!r}; shipped: {', '.join(files())}")
    return os.fspath(resource)
