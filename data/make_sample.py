"""Regenerate the shipped Fashion-MNIST samples from the IDX files.

- ``fashion-mnist-sample.npz``: the first 500 **test** images (t10k), for
  examples, tests and the README's runs;
- ``fashion-mnist-train-calib.npz``: the first 1000 **training** images, the
  calibration set of the documented conversions (calibrating on test images
  would leak the test set into the converted network's thresholds).

Usage (from the repository root):

    python data/make_sample.py [SOURCE_DIR]

SOURCE_DIR defaults to /usr/share/datasets/fashion-mnist (Debian/Ubuntu
package ``dataset-fashion-mnist``) and must hold the four IDX files (train-*, t10k-*). Deliberately independent of eventsnn, so the
sample can also serve as a check of the package's own IDX reader.
"""

import gzip
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np

N_SAMPLES = 500
N_CALIB = 1000
OUT = Path(__file__).resolve().parent / "fashion-mnist-sample.npz"
OUT_CALIB = Path(__file__).resolve().parent / "fashion-mnist-train-calib.npz"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    # Header: two zero bytes, type 0x08 (unsigned byte), ndim, big-endian dims.
    if raw[:4] != bytes([0, 0, 0x08, ndim]):
        raise SystemExit(f"{path}: unexpected IDX header {raw[:4].hex()}")
    dims = struct.unpack_from(f">{ndim}I", raw, 4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SystemExit(f"{path}: size does not match dims {dims}")
    return data.reshape(dims)


def write(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez_compressed(out, x=x, y=y)
    # The zip container embeds timestamps, so compare these digests, not the file's.
    print(f"wrote {out}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype}")
    print(f"sha256(x bytes) = {hashlib.sha256(x.tobytes()).hexdigest()}")
    print(f"sha256(y bytes) = {hashlib.sha256(y.tobytes()).hexdigest()}")


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    write(OUT, read_idx(src / "t10k-images-idx3-ubyte.gz", 3)[:N_SAMPLES].copy(),
          read_idx(src / "t10k-labels-idx1-ubyte.gz", 1)[:N_SAMPLES].copy())
    write(OUT_CALIB, read_idx(src / "train-images-idx3-ubyte.gz", 3)[:N_CALIB].copy(),
          read_idx(src / "train-labels-idx1-ubyte.gz", 1)[:N_CALIB].copy())


if __name__ == "__main__":
    main()
