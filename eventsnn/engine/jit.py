"""The one place that sets numba's flags for every kernel of the engine.

``cache=True`` keeps compiled kernels on disk, so only the first run on a
machine pays the compile time (~15 s). ``fastmath`` stays off: it allows
re-association of float32 sums, and the engine promises results identical to a
clock-driven reference for exactly representable inputs.

On x86 CPUs with AVX-512 LLVM prefers 256-bit vectors (a tuning meant for
older Intel parts that clocked down on 512-bit code); the engine's loops are
bound by cache traffic, and full-width vectors make net B (VGG16, 32x32) 5-13 %
faster on an Emerald Rapids core (BENCHMARKS.md §1) with bit-identical results (vector width does
not change an element's arithmetic; fastmath stays off, so no float sum is
reordered). So the engine asks numba for the host's features plus
``-prefer-256-bit``, unless the user chose ``NUMBA_CPU_NAME`` /
``NUMBA_CPU_FEATURES`` or set ``EVENTSNN_WIDE_VECTORS=0``. It applies to code
numba compiles after this module is imported, in this process (numba has one
CPU target per process); the cached kernels record the features they were
built for, so each setting keeps its own.

Numba invalidates a cached kernel only when *its own* source file changes, not
when a kernel it calls (and inlines) from another module does. So the cache
lives in a directory named after a hash of all engine sources and of the
plugs that inline into the event loop (``eventsnn/learn``): any edit to any
kernel starts a fresh cache. Set ``NUMBA_CACHE_DIR`` to choose the place yourself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from numba import njit as _njit


def _prefer_full_width_vectors() -> None:
    """Ask LLVM for 512-bit vectors on AVX-512 hosts (see the module doc)."""
    if os.environ.get("EVENTSNN_WIDE_VECTORS", "1") == "0":
        return
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return
    from numba.core.codegen import get_host_cpu_features
    features = get_host_cpu_features()
    if "+avx512f" in features.split(","):
        numba.config.CPU_FEATURES = features + ",-prefer-256-bit"


_prefer_full_width_vectors()

# boundscheck=None defers to NUMBA_BOUNDSCHECK, so CI can run every kernel with
# bounds checks on (NUMBA_BOUNDSCHECK=1) while normal runs have them off.
JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "boundscheck": None, "_nrt": False}


def _sources_digest() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(os.environ.get("NUMBA_BOUNDSCHECK", "").encode())
    package = Path(__file__).parent.parent
    for path in sorted(package.glob("engine/*.py")) + sorted(package.glob("learn/*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "eventsnn", f"numba-{_sources_digest()}")


if not os.environ.get("NUMBA_CACHE_DIR"):
    try:
        directory = _cache_dir()
        os.makedirs(directory, exist_ok=True)
        numba.config.CACHE_DIR = directory
    except OSError:  # read-only home: fall back to numba's default locations
        pass


def kernel(fn):
    """Compile ``fn`` with the engine's flags."""
    return _njit(**JIT_OPTIONS)(fn)


def inline_kernel(fn):
    """A small per-event helper, inlined into its callers at numba IR level.

    Inlining lets numba prune the reference-count updates that a call with
    array arguments (or arrays taken out of a tuple) costs at every event.
    """
    return _njit(inline="always", **JIT_OPTIONS)(fn)
