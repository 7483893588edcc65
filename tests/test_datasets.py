"""Tests for eventsnn.datasets, built from real bytes written to tmp_path."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from eventsnn.datasets import Dataset, load_dataset

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "fashion-mnist-sample.npz"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

_IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as an IDX file (big-endian, as the format requires)."""
    code = _IDX_CODES[arr.dtype.str[1:]]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_images(n=5, h=4, w=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)


def make_idx_pair(tmp_path, prefix="t10k", n=5, compress=False, labels=True):
    x = make_images(n)
    y = (np.arange(n) % 10).astype(np.uint8)
    gz = ".gz" if compress else ""
    img = write(tmp_path / f"{prefix}-images-idx3-ubyte{gz}", idx_bytes(x), compress)
    if labels:
        write(tmp_path / f"{prefix}-labels-idx1-ubyte{gz}", idx_bytes(y), compress)
    return img, x, y


def cifar10_record(label: int, rgb: tuple[int, int, int]) -> bytes:
    # One solid-colour image: planes R, G, B of 1024 bytes each.
    return bytes([label]) + b"".join(bytes([c]) * 1024 for c in rgb)


def cifar100_record(coarse: int, fine: int, rgb: tuple[int, int, int]) -> bytes:
    return bytes([coarse, fine]) + b"".join(bytes([c]) * 1024 for c in rgb)


# ---------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("compress", [False, True])
def test_idx_file_with_labels(tmp_path, compress):
    img, x, y = make_idx_pair(tmp_path, compress=compress)
    ds = load_dataset(img)
    assert isinstance(ds, Dataset)
    assert ds.x.dtype == np.float32 and ds.x.shape == (5, 4, 3, 1)
    np.testing.assert_array_equal(ds.x[..., 0], x.astype(np.float32) / 255)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)
    assert str(img) in ds.source
    assert len(ds) == 5


def test_idx_gzip_detected_by_magic_not_name(tmp_path):
    x = make_images(3)
    path = write(tmp_path / "custom-images-idx3-ubyte", idx_bytes(x), compress=True)
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.x[..., 0], x / np.float32(255))
    assert ds.y is None


@pytest.mark.parametrize("labels_gz", [False, True])
def test_idx_labels_found_with_or_without_gz(tmp_path, labels_gz):
    x = make_images(4)
    y = np.array([3, 1, 4, 1], dtype=np.uint8)
    img = write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(x), compress=True)
    suffix = ".gz" if labels_gz else ""
    write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(y), compress=labels_gz)
    np.testing.assert_array_equal(load_dataset(img).y, y)


def test_idx_directory_prefers_test_split(tmp_path):
    make_idx_pair(tmp_path, prefix="train", n=7)
    _, x_test, _ = make_idx_pair(tmp_path, prefix="t10k", n=5, compress=True)
    ds = load_dataset(tmp_path)
    assert ds.x.shape[0] == 5
    np.testing.assert_array_equal(ds.x[..., 0], x_test / np.float32(255))


def test_idx_directory_falls_back_to_train(tmp_path):
    make_idx_pair(tmp_path, prefix="train", n=7)
    ds = load_dataset(str(tmp_path))
    assert ds.x.shape == (7, 4, 3, 1) and ds.y.shape == (7,)


def test_idx_float_images_kept_as_is(tmp_path):
    x = np.array([[[0.5, -2.0]], [[3.25, 1e-3]]], dtype=">f8")
    path = write(tmp_path / "f-images-idx3-ubyte", idx_bytes(x))
    ds = load_dataset(path)
    np.testing.assert_allclose(ds.x[..., 0], x.astype(np.float32))


def test_idx_wide_integer_labels(tmp_path):
    x = make_images(3)
    y = np.array([0, 70000, 2], dtype=">i4")
    img = write(tmp_path / "a-images-idx3-ubyte", idx_bytes(x))
    write(tmp_path / "a-labels-idx1-ubyte", idx_bytes(y))
    np.testing.assert_array_equal(load_dataset(img).y, [0, 70000, 2])


def test_limit(tmp_path):
    img, x, y = make_idx_pair(tmp_path, n=6, compress=True)
    ds = load_dataset(img, limit=2)
    assert ds.x.shape == (2, 4, 3, 1)
    np.testing.assert_array_equal(ds.y, y[:2])
    assert load_dataset(img, limit=100).x.shape[0] == 6


@pytest.mark.parametrize("limit", [0, -1, 1.5, "3", True])
def test_bad_limit(tmp_path, limit):
    img, _, _ = make_idx_pair(tmp_path)
    with pytest.raises(ValueError, match="limit"):
        load_dataset(img, limit=limit)


# ---------------------------------------------------------------------------
# CIFAR


def test_cifar10_channels_and_labels(tmp_path):
    data = cifar10_record(7, (200, 10, 0)) + cifar10_record(2, (0, 0, 255))
    path = write(tmp_path / "data_batch_1.bin", data)
    ds = load_dataset(path)
    assert ds.x.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(ds.y, [7, 2])
    np.testing.assert_allclose(ds.x[0, ..., 0], 200 / 255)  # red plane -> channel 0
    np.testing.assert_allclose(ds.x[0, ..., 1], 10 / 255)
    np.testing.assert_allclose(ds.x[0, ..., 2], 0.0)
    np.testing.assert_allclose(ds.x[1, ..., 2], 1.0)
    assert "CIFAR-10" in ds.source


def test_cifar10_pixel_order_chw_to_hwc(tmp_path):
    # Distinct values per (channel, row, col) to pin down the transpose.
    chw = (np.arange(3 * 32 * 32) % 251).astype(np.uint8).reshape(3, 32, 32)
    path = write(tmp_path / "test_batch.bin", bytes([4]) + chw.tobytes())
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.x[0], chw.transpose(1, 2, 0) / np.float32(255))
    assert ds.x[0, 0, 1, 0] == np.float32(1 / 255)  # R plane, row 0, col 1
    assert ds.x[0, 1, 0, 2] == np.float32(((2048 + 32) % 251) / 255)  # B plane, row 1


def test_cifar10_directory(tmp_path):
    write(tmp_path / "data_batch_1.bin", cifar10_record(1, (1, 1, 1)) * 3)
    write(tmp_path / "test_batch.bin", cifar10_record(9, (5, 6, 7)) * 2)
    ds = load_dataset(tmp_path)
    np.testing.assert_array_equal(ds.y, [9, 9])


def test_cifar100_uses_fine_label(tmp_path):
    data = cifar100_record(3, 42, (9, 8, 7)) + cifar100_record(19, 99, (0, 128, 255))
    write(tmp_path / "test.bin", data)
    for ds in (load_dataset(tmp_path / "test.bin"), load_dataset(tmp_path)):
        np.testing.assert_array_equal(ds.y, [42, 99])
        np.testing.assert_allclose(ds.x[0, 5, 5], np.array([9, 8, 7]) / 255, rtol=1e-6)
        assert "CIFAR-100" in ds.source


def test_cifar_limit(tmp_path):
    path = write(tmp_path / "train.bin", cifar100_record(0, 1, (1, 2, 3)) * 4)
    assert load_dataset(path, limit=3).x.shape == (3, 32, 32, 3)


# ---------------------------------------------------------------------------
# npz


def test_npz_uint8_3d(tmp_path):
    x = make_images(4)
    y = np.array([1, 2, 3, 0], dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.x.shape == (4, 4, 3, 1)
    np.testing.assert_array_equal(ds.x[..., 0], x / np.float32(255))
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)


def test_npz_float_channel_last_without_labels(tmp_path):
    x = np.random.default_rng(1).normal(size=(3, 5, 6, 2))
    np.savez_compressed(tmp_path / "f.npz", x=x)
    ds = load_dataset(tmp_path / "f.npz", limit=2)
    assert ds.y is None
    np.testing.assert_allclose(ds.x, x[:2].astype(np.float32))


# ---------------------------------------------------------------------------
# shipped sample and system Fashion-MNIST


def test_shipped_sample():
    ds = load_dataset(SAMPLE)
    assert ds.x.shape == (500, 28, 28, 1) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    assert ds.y.shape == (500,)
    assert set(np.unique(ds.y)) <= set(range(10))
    with np.load(SAMPLE, allow_pickle=False) as raw:
        assert raw["x"].dtype == np.uint8 and raw["x"].shape == (500, 28, 28)
        # Digests recorded in data/README.md.
        assert hashlib.sha256(raw["x"].tobytes()).hexdigest().startswith("00cc52584679")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_system_fashion_mnist_test_split():
    ds = load_dataset(FASHION_DIR)
    assert ds.x.shape == (10000, 28, 28, 1)
    assert ds.y.shape == (10000,) and ds.y.min() == 0 and ds.y.max() == 9
    assert "t10k" in ds.source
    sample = load_dataset(SAMPLE)
    np.testing.assert_array_equal(ds.x[:500], sample.x)
    np.testing.assert_array_equal(ds.y[:500], sample.y)


# ---------------------------------------------------------------------------
# bad inputs: always ValueError naming the path


def expect_error(path, match, **kwargs):
    with pytest.raises(ValueError) as info:
        load_dataset(path, **kwargs)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert match.lower() in msg.lower(), msg
    return msg


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope.npz", "no such file")


def test_unknown_format(tmp_path):
    expect_error(write(tmp_path / "data.csv", b"1,2,3\n"), "unknown data set format")


def test_directory_without_data(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    expect_error(tmp_path, "no known data set")


@pytest.mark.parametrize("compress", [False, True])
def test_idx_truncated_data(tmp_path, compress):
    data = idx_bytes(make_images(3))[:-5]
    path = write(tmp_path / "t-images-idx3-ubyte", data, compress)
    expect_error(path, "truncated")


def test_idx_truncated_header(tmp_path):
    data = idx_bytes(make_images(3))[:9]
    expect_error(write(tmp_path / "t-images-idx3-ubyte", data), "truncated IDX header")


def test_idx_trailing_bytes(tmp_path):
    data = idx_bytes(make_images(3)) + b"\0\0"
    expect_error(write(tmp_path / "t-images-idx3-ubyte", data), "size mismatch")


def test_idx_truncated_gzip_stream(tmp_path):
    data = gzip.compress(idx_bytes(make_images(3)))[:-20]
    expect_error(write(tmp_path / "t-images-idx3-ubyte.gz", data), "gzip")


@pytest.mark.parametrize(
    "header", [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00"]
)
def test_idx_bad_magic(tmp_path, header):
    data = header + idx_bytes(make_images(2))[4:]
    expect_error(write(tmp_path / "t-images-idx3-ubyte", data), "bad IDX magic")


def test_idx_label_count_mismatch(tmp_path):
    img, _, _ = make_idx_pair(tmp_path, n=5)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    msg = expect_error(img, "label count 4 != image count 5", limit=2)
    assert "t10k-labels-idx1-ubyte" in msg


def test_idx_wrong_ndim(tmp_path):
    path = write(tmp_path / "t-images-idx3-ubyte", idx_bytes(np.zeros((2, 3), np.uint8)))
    expect_error(path, "wrong ndim")


def test_idx_empty(tmp_path):
    path = write(tmp_path / "t-images-idx3-ubyte", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    expect_error(path, "empty data set")


def test_idx_float_nan(tmp_path):
    x = np.zeros((2, 2, 2), np.float32)
    x[1, 0, 1] = np.nan
    expect_error(write(tmp_path / "t-images-idx3-ubyte", idx_bytes(x)), "NaN or inf")


def test_idx_unsupported_image_dtype(tmp_path):
    x = np.zeros((2, 2, 2), np.int16)
    expect_error(write(tmp_path / "t-images-idx3-ubyte", idx_bytes(x)), "unsupported image dtype")


def test_cifar_not_multiple_of_record(tmp_path):
    path = write(tmp_path / "test_batch.bin", cifar10_record(1, (1, 2, 3)) + b"\0" * 10)
    expect_error(path, "not a multiple of the 3073-byte")


def test_cifar100_size_for_cifar10_file(tmp_path):
    # A CIFAR-100 file under a CIFAR-10 name: sizes disagree.
    path = write(tmp_path / "test_batch.bin", cifar100_record(1, 2, (0, 0, 0)) * 2)
    expect_error(path, "not a multiple")


def test_cifar_label_out_of_range(tmp_path):
    path = write(tmp_path / "test_batch.bin", cifar10_record(12, (0, 0, 0)))
    expect_error(path, "out of range")


def test_cifar_empty(tmp_path):
    expect_error(write(tmp_path / "test.bin", b""), "empty data set")


def test_npz_without_x(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 3, 3), np.uint8))
    expect_error(tmp_path / "d.npz", "no array 'x'")


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2, 2), np.uint8), y=np.zeros(2, np.int64))
    expect_error(tmp_path / "d.npz", "label count 2 != image count 3")


def test_npz_wrong_ndim(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4), np.uint8))
    expect_error(tmp_path / "d.npz", "wrong ndim")


def test_npz_channel_first(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 8, 8), np.uint8))
    expect_error(tmp_path / "d.npz", "channel-first")


def test_npz_non_integer_labels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 2, 2), np.uint8), y=np.array([0.0, 1.0]))
    expect_error(tmp_path / "d.npz", "labels must be integers")


def test_npz_nan(tmp_path):
    x = np.zeros((2, 2, 2))
    x[0, 0, 0] = np.inf
    np.savez(tmp_path / "d.npz", x=x)
    expect_error(tmp_path / "d.npz", "NaN or inf")


def test_npz_float64_overflowing_float32(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.full((1, 2, 2), 1e300))
    expect_error(tmp_path / "d.npz", "NaN or inf")


def test_npz_empty(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((0, 28, 28), np.uint8))
    expect_error(tmp_path / "d.npz", "empty data set")


def test_npz_object_array_refused_without_pickle(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([None, 1], dtype=object))
    expect_error(tmp_path / "d.npz", "cannot read npz")


def test_npz_corrupt_zip(tmp_path):
    raw = (tmp_path / "ok.npz")
    np.savez(raw, x=np.zeros((2, 2, 2), np.uint8))
    path = write(tmp_path / "d.npz", raw.read_bytes()[:40])
    expect_error(path, "cannot read npz")


def test_npz_not_a_zip(tmp_path):
    expect_error(write(tmp_path / "d.npz", b"hello world"), "not an .npz")
