"""Shared by the bench scripts: machine information for every result, and plain-text tables."""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> tuple:
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    return model, flags


def _git(*args) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _mem_total_gib():
    """Total memory from /proc/meminfo in GiB (None where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """Date, platform, CPU, library versions, git commit and load average."""
    model, flags = _cpu()
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "avx512f": " avx512f " in f" {flags} ",
        "logical_cpus": os.cpu_count(),
        "git_commit": _git("rev-parse", "HEAD"),
        "eventsnn_dirty": bool(_git("status", "--porcelain", "--", "eventsnn")),
        "loadavg_start": list(os.getloadavg()),
        "mem_total_gib": _mem_total_gib(),
    }
    for name in ("numba", "numpy", "scipy", "torch"):
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    try:
        import llvmlite.binding as ll
        info["llvm_host_cpu"] = ll.get_host_cpu_name()
    except ImportError:
        pass
    try:  # whether eventsnn's kernels were built with 512-bit vectors (eventsnn/engine/jit.py)
        import numba
        if "eventsnn.engine.jit" in sys.modules:
            info["numba_full_width_vectors"] = str(numba.config.CPU_FEATURES or "").endswith("-prefer-256-bit")
    except ImportError:
        pass
    return info


def table(headers, rows, title=None):
    """Print rows as right-aligned columns under ``headers`` (and a ``== title`` line)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if title:
        print(f"\n== {title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
