"""Small API snags of issue 18, item 7: dir(eventsnn), models given as networks, CIFAR by content, --mode help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import eventsnn
from eventsnn.cli.main import main
from eventsnn.datasets import load_dataset
from eventsnn.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def test_dir_lists_the_lazy_names_without_importing_them():
    code = ("import sys, eventsnn; names = dir(eventsnn); "
            "print(all(n in names for n in eventsnn.__all__), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]
    for name in ("Simulator", "load_network", "run_dataset", "write_nir", "read_nir_network"):
        assert name in dir(eventsnn)
        assert getattr(eventsnn, name) is not None


@pytest.mark.parametrize("model, what", [("default_ann.onnx", "an ONNX model")])
def test_run_with_a_model_instead_of_a_network_suggests_convert(model, what):
    path = str(ROOT / "data" / model)
    res = CliRunner().invoke(main, ["run", "--net", path, "--samples", "1", "--no-progress"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert what in res.output and f"eventsnn convert {path} -o NET.h5" in res.output


def test_run_with_a_nir_graph_suggests_convert_and_the_reader(tmp_path):
    pytest.importorskip("nir")
    from eventsnn.io import load_network
    from eventsnn.io.nir_export import write_nir

    path = tmp_path / "net.nir"
    write_nir(load_network(ROOT / "data" / "default_net.h5"), path)
    res = CliRunner().invoke(main, ["export", str(path), "-o", str(tmp_path / "again.nir")])
    assert res.exit_code != 0 and "a NIR graph, not an eventsnn network file" in res.output
    assert "read_nir_network" in res.output


def _cifar_bytes(n, cifar100, rng):
    labels = [rng.integers(0, 20, n), rng.integers(0, 100, n)] if cifar100 else [rng.integers(0, 10, n)]
    pix = rng.integers(0, 256, (n, 3072))
    return np.column_stack(labels + [pix]).astype(np.uint8).tobytes()


@pytest.mark.parametrize("cifar100", [False, True])
def test_cifar_batches_are_recognised_by_content_whatever_their_name(tmp_path, cifar100):
    rng = np.random.default_rng(1)
    raw = _cifar_bytes(5, cifar100, rng)
    path = tmp_path / "calib_batch.bin"
    path.write_bytes(raw)
    d = load_dataset(path)
    rec = np.frombuffer(raw, np.uint8).reshape(5, -1)
    n_label = 2 if cifar100 else 1
    assert d.x.shape == (5, 32, 32, 3)
    assert d.source.startswith("CIFAR-100" if cifar100 else "CIFAR-10 ")
    np.testing.assert_array_equal(d.y, rec[:, n_label - 1])
    # pixel (y=0, x=1) of channel G is byte 1024 + 1 of the pixel block
    assert d.x[2, 0, 1, 1] == pytest.approx(rec[2, n_label + 1024 + 1] / 255.0)


def test_a_file_of_cifar_size_with_bad_labels_is_still_unknown(tmp_path):
    rng = np.random.default_rng(2)
    raw = bytearray(_cifar_bytes(3, False, rng))
    raw[3073] = 200  # the second record's label
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="unknown data set format"):
        load_dataset(path)


def test_mode_help_says_continuous_needs_poisson():
    res = CliRunner().invoke(main, ["run", "--help"])
    assert "--encoding poisson" in " ".join(res.output.split())
