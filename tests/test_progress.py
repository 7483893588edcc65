"""eventsnn.progress: the compile notice, an ETA that starts after the first sample, plain lines when piped."""

import io
import os

import numpy as np
from click.testing import CliRunner

from eventsnn import progress
from eventsnn.progress import NOTICE, Progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_eta_ignores_the_first_sample_and_plain_lines_come_every_interval():
    clock, out = Clock(), io.StringIO()
    with Progress(100, "Simulating", file=out, tty=False, interval=5, notice=True, clock=clock) as p:
        clock.t = 60.0          # the first sample pays a minute of compilation
        p.update()
        assert p.eta() is None
        for _ in range(10):     # then one sample per second
            clock.t += 1.0
            p.update()
        assert p.eta() == 89.0  # 89 left at 1/s; counting the first sample would say ~530 s
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Simulating: {NOTICE}"
    assert "\r" not in out.getvalue()
    # one line at t=60 (60 s after the last), one at t=65, then the final one
    assert lines[1] == "Simulating: 1/100 (1 %), 1:00 elapsed, ETA after the first sample"
    assert lines[2] == "Simulating: 6/100 (6 %), 1:05 elapsed, ETA 1:34"
    assert lines[-1] == "Simulating: 11/100 (11 %), 1:10 elapsed, ETA 1:29"
    assert len(lines) == 4


def test_terminal_redraws_one_line():
    clock, out = Clock(), io.StringIO()
    with Progress(3, "Simulating", file=out, tty=True, notice=False, clock=clock) as p:
        for _ in range(3):
            clock.t += 1.0
            p.update()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" in text
    assert "3/3 (100 %)" in text and NOTICE not in text


def test_kernels_cached_reads_numbas_cache_dir(tmp_path, monkeypatch):
    import numba

    import eventsnn.engine.jit as jit
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "__file__", str(tmp_path / "jit.py"))  # no engine __pycache__ either
    assert progress.kernels_cached() is False
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cpu.run-1.py311.nbi").write_bytes(b"")
    assert progress.kernels_cached() is True


def test_cli_run_piped_prints_plain_progress_lines(tmp_path):
    from eventsnn.cli.main import main

    data = np.load(os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist-sample.npz"))
    np.savez(tmp_path / "three.npz", x=data["x"][:3], y=data["y"][:3])
    res = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "three.npz"), "--timesteps", "5"])
    assert res.exit_code == 0, res.output
    assert "Simulating: 3/3 (100 %)" in res.output
    assert "\r" not in res.output
