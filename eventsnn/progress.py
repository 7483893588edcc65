"""Progress of long jobs on stderr: a first-run notice, an ETA that ignores compile time, plain lines when piped.

The first simulation in a process runs Numba's kernels, which are compiled on
a machine's first run (about a minute, cached on disk afterwards; see
:mod:`eventsnn.engine.jit`) and loaded from that cache later (a few seconds).
Counting that time into the rate gives a wrong ETA, so :class:`Progress`:

* prints one line, ``compiling kernels (once, about a minute)``, before the
  first item when numba's cache for the engine holds no compiled kernel yet
  (:func:`kernels_cached`);
* starts its rate, and so its ETA, after the first update (of n_first items):
  ``ETA = (total - done) * (t_now - t_first) / (done - n_first)``; a sharded
  run updates once per finished shard, and ``skip(n)`` counts items done
  before the job started (a resumed run's finished shards) without timing them;
* with ``rate=True`` also shows items per second on that same basis
  (``unit`` names them, default ``samples``), and ``note`` at the end of each line;
* on a terminal redraws one line (``\\r``) at most every 0.2 s; otherwise
  (a pipe, a log file, CI) prints a plain line every ``interval`` seconds
  (default 5) and one at the end, never a carriage return.
"""

from __future__ import annotations

import glob
import os
import sys
import time

NOTICE = "compiling kernels (once, about a minute; later runs load them from numba's cache)"


def kernels_cached() -> bool:
    """Whether numba's on-disk cache for the engine already holds compiled kernels (``*.nbi`` index files).

    Looks where :mod:`eventsnn.engine.jit` points numba (``NUMBA_CACHE_DIR`` or
    ``~/.cache/eventsnn/numba-<hash of the engine sources>``) and, as numba may
    fall back to it, in the engine's own ``__pycache__``. Any failure counts as
    not cached: a notice too many is harmless, a silent minute is not.
    """
    try:
        import numba

        from .engine import jit  # noqa: F401  (sets numba.config.CACHE_DIR)

        places = [numba.config.CACHE_DIR] if numba.config.CACHE_DIR else []
        places.append(os.path.join(os.path.dirname(jit.__file__), "__pycache__"))
        return any(glob.glob(os.path.join(p, "**", "*.nbi"), recursive=True) for p in places if p)
    except Exception:
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``with Progress(n, "Simulating") as p: ... p.update(1)`` (see the module docs).

    ``file`` (default ``sys.stderr``), ``tty`` (default ``file.isatty()``),
    ``interval`` (seconds between plain lines), ``notice`` (None: print the
    compile notice when :func:`kernels_cached` is false; True/False: always/never)
    and ``clock`` (for tests) may be given.
    """

    def __init__(self, total: int, label: str = "Simulating", file=None, tty: bool | None = None,
                 interval: float = 5.0, notice: bool | None = None, clock=time.monotonic,
                 rate: bool = False, unit: str = "samples", note: str = ""):
        self.total = int(total)
        self.label = label
        self.file = file if file is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.file, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval = float(interval)
        self.notice = notice
        self.clock = clock
        self.done = 0
        self.n_first = 0
        self.show_rate = bool(rate)
        self.unit = unit
        self.note = note
        self.t_start = self.t_first = None
        self.last_draw = None
        self._width = 0
        self._last_text = None

    def __enter__(self):
        notice = (not kernels_cached()) if self.notice is None else self.notice
        if notice:
            self._write_line(f"{self.label}: {NOTICE}")
        self.t_start = self.last_draw = self.clock()
        if self.tty:
            self._draw()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self._draw(final=True)
        elif self.tty and self._width:
            self.file.write("\n")
            self.file.flush()
        return False

    def skip(self, n: int) -> None:
        """Count ``n`` items as done before this job (no rate is taken from them)."""
        self.done += int(n)

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        now = self.clock()
        if self.t_first is None:
            self.t_first = now  # the rate (and ETA) starts here: the first item paid the compilation
            self.n_first = self.done
        if self.tty:
            if now - self.last_draw >= 0.2 or self.done >= self.total:
                self._draw()
        elif now - self.last_draw >= self.interval and self.done < self.total:
            self._draw()

    def rate(self) -> float | None:
        """Items per second after the first update; None until a second update."""
        if self.t_first is None or self.done <= self.n_first:
            return None
        return (self.done - self.n_first) / max(self.clock() - self.t_first, 1e-9)

    def eta(self) -> float | None:
        """Seconds left, from the items done after the first update; None until that is known."""
        rate = self.rate()
        if rate is None:
            return None
        return (self.total - self.done) / rate

    def status(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        elapsed = self.clock() - self.t_start
        text = f"{self.label}: {self.done}/{self.total} ({pct:.0f} %), {_duration(elapsed)} elapsed"
        if self.show_rate and self.rate() is not None:
            text += f", {self.rate():.1f} {self.unit}/s"
        if self.done >= self.total:
            return text + (f" ({self.note})" if self.note else "")
        eta = self.eta()
        text += ", ETA after the first sample" if eta is None else f", ETA {_duration(eta)}"
        return text + (f" ({self.note})" if self.note else "")

    def _write_line(self, text):
        self.file.write(text + "\n")
        self.file.flush()

    def _draw(self, final: bool = False):
        self.last_draw = self.clock()
        text = self.status()
        if self.tty:
            pad = max(self._width - len(text), 0)
            self.file.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.file.flush()
            self._width = len(text)
        elif text != self._last_text:  # the closing line may repeat the last periodic one
            self._write_line(text)
        self._last_text = text
