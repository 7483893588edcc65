"""eventsnn.data: the shipped files are reachable from an installed package, from any folder."""

import os
import subprocess
import sys

import pytest

import eventsnn.data
from eventsnn.errors import DataError


def test_files_lists_the_shipped_data():
    names = eventsnn.data.files()
    for name in ("default_net.h5", "fashion-mnist-sample.npz", "energy_profiles.toml", "default_ann.onnx"):
        assert name in names
    assert "__init__.py" not in names and "make_sample.py" not in names


def test_path_is_a_real_file_from_another_folder(tmp_path):
    code = ("import eventsnn, eventsnn.data; "
            "net = eventsnn.load_network(eventsnn.data.path('default_net.h5')); "
            "d = eventsnn.load_dataset(eventsnn.data.path('fashion-mnist-sample.npz')); "
            "print(len(net.layers), len(d.x))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    n_layers, n_images = map(int, out.stdout.split())
    assert n_layers >= 2 and n_images == 500
    assert os.path.isfile(eventsnn.data.path("default_net.h5"))


@pytest.mark.parametrize("name", ["nope.h5", "../README.md", "", "__init__.py.h5"])
def test_unknown_names_raise_data_error_listing_the_files(name):
    with pytest.raises(DataError, match="default_net.h5"):
        eventsnn.data.path(name)


def test_every_shipped_suffix_is_package_data():
    """pyproject's package-data globs must cover every file data.files() lists (else a wheel lacks it)."""
    tomllib = pytest.importorskip("tomllib")
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["eventsnn.data"]
    import fnmatch
    for name in eventsnn.data.files():
        assert any(fnmatch.fnmatch(name, g) for g in globs), name
