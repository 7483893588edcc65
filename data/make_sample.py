"""Regenerate data/fashion-mnist-sample.npz from the Fashion-MNIST IDX files.

Usage (from the repository root):

    python data/make_sample.py [SOURCE_DIR]

SOURCE_DIR defaults to /usr/share/datasets/fashion-mnist (Debian/Ubuntu
package ``dataset-fashion-mnist``) and must hold t10k-images-idx3-ubyte.gz
and t10k-labels-idx1-ubyte.gz. Deliberately independent of eventsnn, so the
sample can also serve as a check of the package's own IDX reader.
"""

import gzip
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np

N_SAMPLES = 500
OUT = Path(__file__).resolve().parent / "fashion-mnist-sample.npz"


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


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    x = read_idx(src / "t10k-images-idx3-ubyte.gz", 3)[:N_SAMPLES].copy()
    y = read_idx(src / "t10k-labels-idx1-ubyte.gz", 1)[:N_SAMPLES].copy()
    np.savez_compressed(OUT, x=x, y=y)
    # The zip container embeds timestamps, so compare these digests, not the file's.
    print(f"wrote {OUT}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype}")
    print(f"sha256(x bytes) = {hashlib.sha256(x.tobytes()).hexdigest()}")
    print(f"sha256(y bytes) = {hashlib.sha256(y.tobytes()).hexdigest()}")


if __name__ == "__main__":
    main()
