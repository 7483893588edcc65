"""Loading image data sets into a common in-memory layout.

Supported formats (detected from the path):

* IDX files of the MNIST family (``*-images-idx3-ubyte`` with the matching
  ``*-labels-idx1-ubyte``), plain or gzip-compressed, or a directory holding
  them (the ``t10k-*`` test split is preferred over ``train-*``).
* CIFAR-10 binary batches (``data_batch_N.bin``, ``test_batch.bin``) and
  CIFAR-100 binary files (``train.bin``, ``test.bin``; fine labels), or a
  directory holding ``test_batch.bin`` / ``test.bin``.
* ``.npz`` archives with an array ``x`` of shape (N, H, W) or (N, H, W, C)
  and an optional integer array ``y`` of shape (N,).

Every problem with the input is reported as a :class:`~eventsnn.errors.DataError` (a ``ValueError``) whose message
starts with the offending path.
"""

from __future__ import annotations

import contextlib
import gzip
import operator
import os
import re
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from . import limits
from .errors import DataError, ResourceError

__all__ = ["Dataset", "load_dataset"]

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"

# IDX type codes; all multi-byte values in IDX files are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Preference order when a directory is given: test split first, because the
# simulator is mostly used for evaluating already-trained networks.
_IDX_DIR_PREFIXES = ("t10k", "train")

_CIFAR10_NAME = re.compile(r"^(data_batch_\d+|test_batch)\.bin$")
_CIFAR100_NAMES = ("train.bin", "test.bin")
_CIFAR_SIDE = 32
_CIFAR_PIXELS = 3 * _CIFAR_SIDE * _CIFAR_SIDE


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (float32, (N, H, W, C)), labels ``y`` (int64, (N,)) or None."""

    x: np.ndarray
    y: np.ndarray | None
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.ndim != 4 or self.x.dtype != np.float32:
            raise DataError("Dataset.x must be a float32 array of shape (N, H, W, C)")
        if self.y is not None and (
            not isinstance(self.y, np.ndarray)
            or self.y.dtype != np.int64
            or self.y.shape != (self.x.shape[0],)
        ):
            raise DataError("Dataset.y must be None or an int64 array of shape (N,)")

    def __len__(self) -> int:
        return int(self.x.shape[0])


def load_dataset(path: str | os.PathLike, limit: int | None = None) -> Dataset:
    """Load the data set at ``path`` (file or directory).

    ``limit`` keeps only the first ``limit`` samples. uint8 pixels are
    scaled to [0, 1]; float pixels are kept as they are.
    """
    limit = _check_limit(limit)
    p = Path(path)
    if not p.exists():
        raise _error(p, "no such file or directory")
    if p.is_dir():
        return _load_directory(p, limit)
    if not p.is_file():
        raise _error(p, "not a regular file or directory")

    name = p.name
    if name.lower().endswith(".npz"):
        return _load_npz(p, limit)
    if _CIFAR10_NAME.match(name):
        return _load_cifar(p, limit, cifar100=False)
    if name in _CIFAR100_NAMES:
        return _load_cifar(p, limit, cifar100=True)
    if "idx" in name.lower():
        return _load_idx(p, limit)

    # Unrecognised name: fall back to the content, so renamed files still load.
    head = _read_bytes(p, 4)
    if head.startswith(_ZIP_MAGIC):
        return _load_npz(p, limit)
    if head.startswith(_GZIP_MAGIC) or (
        len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES and head[3] > 0
    ):
        return _load_idx(p, limit)
    cifar100 = _sniff_cifar(p)
    if cifar100 is not None:
        return _load_cifar(p, limit, cifar100=cifar100)
    raise _error(
        p,
        "unknown data set format (expected IDX '*-idx*-ubyte[.gz]', CIFAR "
        "'data_batch_N.bin'/'test_batch.bin'/'train.bin'/'test.bin', or '.npz')",
    )


# --------------------------------------------------------------------------
# helpers


def _error(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}")


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    # bool is an int subclass, but limit=True is certainly a mistake.
    if isinstance(limit, bool):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    try:
        value = operator.index(limit)
    except TypeError:
        raise DataError(f"limit must be a positive integer or None, got {limit!r}") from None
    if value <= 0:
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    return value


def _read_bytes(path: Path, size: int = -1) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as exc:
        raise _error(path, f"cannot read file ({exc.strerror or exc})") from None


def _take(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, limit)


def _images_to_float(path: Path, x: np.ndarray) -> np.ndarray:
    """(N, H, W[, C]) uint8/float array -> float32 (N, H, W, C)."""
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.dtype == np.uint8:
        out = x.astype(np.float32)
        out /= np.float32(255.0)
        return out
    if np.issubdtype(x.dtype, np.floating):
        # Checked after the cast: float64 values beyond float32 range become inf
        # (reported below, so numpy's overflow warning is redundant).
        with np.errstate(over="ignore"):
            out = x.astype(np.float32)
        if not np.isfinite(out).all():
            raise _error(path, "image data contains NaN or inf values")
        return out
    raise _error(
        path,
        f"unsupported image dtype {x.dtype} (expected uint8, scaled to [0, 1], "
        "or a float type, kept as is)",
    )


def _check_image_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) not in (3, 4):
        raise _error(
            path,
            f"wrong ndim for images: expected 3 (N, H, W) or 4 (N, H, W, C), "
            f"got {len(shape)} with shape {tuple(shape)}",
        )
    if shape[0] == 0:
        raise _error(path, "empty data set (0 samples)")
    if 0 in shape:
        raise _error(path, f"empty images: shape {tuple(shape)}")


def _labels_to_int64(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise _error(path, f"wrong ndim for labels: expected 1 (N,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise _error(path, f"labels must be integers, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise _error(path, f"label count {y.shape[0]} != image count {n}")
    if y.size and y.min() < 0:
        raise _error(path, f"labels must be non-negative, found {int(y.min())}")
    if y.size and y.dtype == np.uint64 and y.max() > np.iinfo(np.int64).max:
        raise _error(path, "label values too large for int64")
    return y.astype(np.int64)


# --------------------------------------------------------------------------
# directories


def _load_directory(path: Path, limit: int | None) -> Dataset:
    for prefix in _IDX_DIR_PREFIXES:
        for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"):
            candidate = path / name
            if candidate.is_file():
                return _load_idx(candidate, limit)
    if (path / "test_batch.bin").is_file():
        return _load_cifar(path / "test_batch.bin", limit, cifar100=False)
    if (path / "test.bin").is_file():
        return _load_cifar(path / "test.bin", limit, cifar100=True)
    raise _error(
        path,
        "directory holds no known data set (looked for t10k-/train-images-idx3-ubyte[.gz], "
        "test_batch.bin, test.bin)",
    )


# --------------------------------------------------------------------------
# IDX


def _read_idx(path: Path, limit: int | None) -> tuple[np.ndarray, int]:
    """Parse one IDX file: (first ``limit`` items in native byte order, total items).

    The header is read first and the size it declares checked against the
    memory limit (:mod:`eventsnn.limits`) before the data is read or
    decompressed: a 10 MB gzip file can inflate to 10 GB.
    """
    with _open_stream(path) as (stream, compressed):
        head = _read_some(path, stream, 4)
        if len(head) < 4:
            raise _error(path, f"truncated IDX header: {len(head)} bytes, need at least 4")
        if head[0] != 0 or head[1] != 0:
            raise _error(path, f"bad IDX magic: first two bytes are {head[:2].hex()}, expected 0000")
        code, ndim = head[2], head[3]
        if code not in _IDX_DTYPES:
            raise _error(path, f"bad IDX magic: unknown data type code 0x{code:02x}")
        if ndim == 0:
            raise _error(path, "bad IDX magic: zero dimensions")
        header = 4 + 4 * ndim
        dims_raw = _read_some(path, stream, 4 * ndim)
        if len(dims_raw) < 4 * ndim:
            raise _error(path, f"truncated IDX header: {4 + len(dims_raw)} bytes, need {header} for {ndim} dimensions")
        dims = struct.unpack(f">{ndim}I", dims_raw)
        dtype = _IDX_DTYPES[code]
        nbytes = prod(dims) * dtype.itemsize
        n = _take(dims[0], limit)
        item = prod(dims[1:])
        need = n * item * dtype.itemsize
        # what is kept: the raw bytes of the first n items and their float32 copy
        limits.check_bytes(need + 4 * n * item, f"{path}: {n:,} items of this IDX file (dims {dims}, "
                           f"{'decompressed ' if compressed else ''}{nbytes:,} bytes)", error=ResourceError)
        raw = _read_some(path, stream, need)
        # the rest is only counted (in bounded chunks), so a lying header is still caught
        size = len(raw)
        while size <= nbytes:
            chunk = _read_some(path, stream, min(1 << 20, nbytes + 1 - size))
            if not chunk:
                break
            size += len(chunk)
    if size < nbytes:
        raise _error(
            path, f"truncated IDX data: dims {dims} need {header + nbytes} bytes, file has {header + size}"
        )
    if size > nbytes:
        raise _error(path, f"IDX size mismatch: dims {dims} need {header + nbytes} bytes, file has more")
    arr = np.frombuffer(raw, dtype=dtype, count=n * item)
    return arr.reshape((n, *dims[1:])).astype(dtype.newbyteorder("=")), dims[0]


@contextlib.contextmanager
def _open_stream(path: Path):
    """The file as a byte stream, decompressed on the fly if it is gzip (detected by content)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise _error(path, f"cannot read file ({exc.strerror or exc})") from None
    with fh:
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        if compressed:
            with gzip.GzipFile(fileobj=fh) as gz:
                yield gz, True
        else:
            yield fh, False


def _read_some(path: Path, stream, n: int) -> bytes:
    try:
        return stream.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise _error(path, f"corrupt or truncated gzip data ({exc})") from None


def _idx_label_path(images: Path) -> Path | None:
    if "images-idx3" not in images.name:
        return None
    base = images.name.replace("images-idx3", "labels-idx1")
    stem = base[:-3] if base.endswith(".gz") else base
    for name in (base, stem, stem + ".gz"):
        candidate = images.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def _load_idx(path: Path, limit: int | None) -> Dataset:
    raw_x, n_images = _read_idx(path, limit)
    _check_image_shape(path, (n_images, *raw_x.shape[1:]))
    x = _images_to_float(path, raw_x)

    label_path = _idx_label_path(path)
    if label_path is None:
        return Dataset(x=x, y=None, source=f"IDX {path} (no labels)")
    raw_y, n_labels = _read_idx(label_path, limit)
    # Compare full counts, so a mismatch is caught even when only a prefix is loaded.
    if raw_y.ndim == 1 and n_labels != n_images:
        raise _error(label_path, f"label count {n_labels} != image count {n_images} in {path}")
    y = _labels_to_int64(label_path, raw_y, x.shape[0])
    return Dataset(x=x, y=y, source=f"IDX {path} (labels: {label_path})")


# --------------------------------------------------------------------------
# CIFAR


def _sniff_cifar(path: Path) -> bool | None:
    """CIFAR binary batches recognised by content, whatever their name (e.g. ``calib_batch.bin``).

    CIFAR-10 records are 1 label byte + 3072 pixel bytes, CIFAR-100 records a
    coarse (< 20) and a fine (< 100) label byte + 3072 (the format of
    https://www.cs.toronto.edu/~kriz/cifar.html). A file is taken as one when
    its size is a whole number of records and every record's label bytes are
    in range; returns ``cifar100`` (False / True), or None when neither fits or
    both do.
    """
    size = path.stat().st_size
    fits = []
    for cifar100, n_label, label_limits in ((False, 1, (10,)), (True, 2, (20, 100))):
        record = n_label + _CIFAR_PIXELS
        if size == 0 or size % record:
            continue
        raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, record)
        if all(int(raw[:, k].max()) < lim for k, lim in enumerate(label_limits)):
            fits.append(cifar100)
    return fits[0] if len(fits) == 1 else None


def _load_cifar(path: Path, limit: int | None, *, cifar100: bool) -> Dataset:
    # CIFAR-100 records carry a coarse and a fine label byte; we use the fine one.
    n_label_bytes, n_classes, kind = (2, 100, "CIFAR-100") if cifar100 else (1, 10, "CIFAR-10")
    record = n_label_bytes + _CIFAR_PIXELS
    size = path.stat().st_size
    if size == 0:
        raise _error(path, "empty data set (0 samples)")
    if size % record:
        raise _error(
            path,
            f"size {size} bytes is not a multiple of the {record}-byte {kind} record "
            "(truncated file, or CIFAR-10/100 file named like the other)",
        )
    n = _take(size // record, limit)
    # what is kept: the records read and their float32 images
    limits.check_bytes(n * record + 4 * n * _CIFAR_PIXELS, f"{path}: {n:,} records of this {kind} file",
                       error=ResourceError)
    raw = _read_bytes(path, n * record)
    if len(raw) < n * record:
        raise _error(path, "the file shrank while it was read")
    data = np.frombuffer(raw, dtype=np.uint8, count=n * record).reshape(n, record)
    labels = data[:, n_label_bytes - 1]
    if labels.max() >= n_classes:
        raise _error(
            path, f"label {int(labels.max())} out of range for {kind} (0..{n_classes - 1})"
        )
    # Records store planes (R, G, B) of 32x32 row-major pixels: CHW -> HWC.
    chw = data[:, n_label_bytes:].reshape(n, 3, _CIFAR_SIDE, _CIFAR_SIDE)
    x = _images_to_float(path, chw.transpose(0, 2, 3, 1))
    return Dataset(x=x, y=labels.astype(np.int64), source=f"{kind} binary {path}")


# --------------------------------------------------------------------------
# npz


# What reading a damaged or hostile .npz raises: zip and zlib errors, numpy's .npy
# header parser (tokenize and ast.literal_eval underneath: TokenError, SyntaxError,
# RecursionError), unsupported zip features (NotImplementedError, RuntimeError).
_NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, RuntimeError,
               NotImplementedError, struct.error, SyntaxError, tokenize.TokenError, TypeError,
               OverflowError)


def _check_npz_sizes(path: Path) -> None:
    """Read the .npy headers of ``x`` and ``y`` (not their data) and check their declared sizes.

    An archive a few KB long can declare a 15 GB array; ``np.load`` would
    allocate it before finding the data missing.
    """
    total, parts = 0, []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in ("x.npy", "y.npy"):
                if name not in archive.namelist():
                    continue
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                nbytes = prod(shape) * dtype.itemsize
                total += nbytes + (4 * prod(shape) if name == "x.npy" else 0)  # + the float32 copy
                parts.append(f"{name[0]} {tuple(shape)} {dtype}")
    except _NPZ_ERRORS as exc:
        raise _error(path, f"cannot read npz: {type(exc).__name__}: {exc}") from None
    limits.check_bytes(total, f"{path}: this npz ({', '.join(parts)})", error=ResourceError)


def _load_npz(path: Path, limit: int | None) -> Dataset:
    # np.load falls back to unpickling for unknown content; check the zip
    # signature first so a non-npz file gets a clear message.
    if not _read_bytes(path, 2).startswith(b"PK"):
        raise _error(path, "not an .npz (zip) archive")
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            x_raw = archive["x"] if "x" in names else None
            y_raw = archive["y"] if "y" in names else None
    except _NPZ_ERRORS as exc:
        # ValueError: object (pickled) arrays or malformed .npy headers inside;
        # RuntimeError, NotImplementedError: zip features (encryption, methods) we do not read.
        raise _error(path, f"cannot read npz: {exc}") from None
    if x_raw is None:
        raise _error(path, f"npz has no array 'x' (arrays: {', '.join(names) or 'none'})")

    _check_image_shape(path, x_raw.shape)
    if (
        x_raw.ndim == 4
        and x_raw.shape[1] in (1, 3)
        and x_raw.shape[2] == x_raw.shape[3] > 4
    ):
        # (N, 3, 32, 32) would otherwise silently load as 3x32 images with 32 channels.
        raise _error(
            path, f"x of shape {x_raw.shape} looks channel-first; expected (N, H, W, C)"
        )
    n_total = x_raw.shape[0]
    n = _take(n_total, limit)
    x = _images_to_float(path, x_raw[:n])
    if y_raw is None:
        return Dataset(x=x, y=None, source=f"npz {path} (no labels)")
    if y_raw.ndim == 1 and y_raw.shape[0] != n_total:
        raise _error(path, f"label count {y_raw.shape[0]} != image count {n_total}")
    y = _labels_to_int64(path, y_raw[:n] if y_raw.ndim == 1 else y_raw, n)
    return Dataset(x=x, y=y, source=f"npz {path}")
