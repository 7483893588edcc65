"""Every CLI command with every kind of bad option (issue 12): a non-zero exit, exactly one
``Error:`` line on stderr, nothing on stdout, no traceback; the traceback only with --debug.

The cases are generated from the commands' own parameter declarations, so a new
option is walked without editing this file.
"""

from __future__ import annotations

import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner

from eventsnn.cli.main import main
from eventsnn.io import save_network
from eventsnn.network import Layer, Network, Neuron

from annbuild import AnnBuilder, to_onnx

MISSING = "/nonexistent/eventsnn/no-such-file"
# Free-text options and values that are wrong for them.
TEXT_BAD = {"sweep": ["0,5", "a,b", ",", "-3"], "max_memory": ["lots", "-1G", "0"],
            "profile": ["no-such-profile", "/nonexistent.toml:x"]}


def bad_values(param: click.Parameter) -> list:
    t = param.type
    if isinstance(t, click.Choice):
        return ["no-such-choice"]
    if isinstance(t, click.IntRange):
        out = ["abc", "1.5"]
        if t.min is not None:
            out.append(str(t.min - 1))
        if t.max is not None:
            out.append(str(t.max + 1))
        return out
    if isinstance(t, click.FloatRange):
        out = ["abc", "nan"]
        if t.min is not None:
            out.append(str(t.min - 1))
        if t.max is not None:
            out.append(str(t.max + 1))
        return out
    if t is click.INT:
        return ["abc", "1e99"]
    if isinstance(t, click.Path):
        return [MISSING + "/dir/"] if not t.exists else [MISSING]
    return TEXT_BAD.get(param.name, [])


def cases():
    out = []
    for name, cmd in sorted(main.commands.items()):
        out.append((name, "unknown option", ["--no-such-option"]))
        out.append((name, "stray argument", ["a", "b", "c", "d"]))
        for param in cmd.params:
            if isinstance(param, click.Option) and (param.is_flag or param.count):
                continue
            flag = param.opts[0] if isinstance(param, click.Option) else None
            for value in bad_values(param):
                args = [flag, value] if flag else [value]
                out.append((name, f"{param.name}={value}", args))
            if flag:
                out.append((name, f"{param.name} without value", [flag]))
    return out


CASES = cases()


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid files for every required argument, so each case has exactly one thing wrong."""
    d = tmp_path_factory.mktemp("badopts")
    net = Network(input_shape=(4, 4, 1), layers=[
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=np.full((16, 3), 0.2, np.float32), neuron=Neuron())])
    save_network(net, d / "net.h5")
    b = AnnBuilder((4, 4, 1))
    b.flatten()
    b.dense(3)
    b.relu()
    to_onnx(b.graph(), d / "model.onnx")
    np.savez(d / "data.npz", x=np.random.default_rng(0).random((2, 4, 4)).astype(np.float32), y=np.array([0, 1]))
    return d


def base_args(name, good, case_args):
    """The command's required arguments (unless the case replaces them) and a small run."""
    d = good
    flags = set(a for a in case_args if isinstance(a, str) and a.startswith("-"))
    if name == "convert":
        args = [str(d / "model.onnx")] if case_args[0].startswith("-") else []  # else: the case is MODEL
        for opt, value in (("-o", str(d / "out.h5")), ("--calibration", str(d / "data.npz"))):
            if opt not in flags and not (opt == "-o" and "--output" in flags):
                args += [opt, value]
        return args + ["--no-progress"]
    if name in ("run", "energy-report"):
        args = ["--no-progress"]
        if "--net" not in flags and not (name == "energy-report" and case_args and not case_args[0].startswith("-")):
            args += ["--net", str(d / "net.h5")]
        if "--data" not in flags and not (name == "energy-report" and case_args and not case_args[0].startswith("-")):
            args += ["--data", str(d / "data.npz")]
        if "--timesteps" not in flags and "--sweep-timesteps" not in flags:
            args += ["--timesteps", "3"]
        return args
    return []


def invoke(args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("name,label,case_args", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_bad_option_is_one_error_line(good, name, label, case_args):
    if label.endswith("without value"):  # last, or the next option would be taken as its value
        args = [name, *base_args(name, good, case_args), *case_args]
    else:
        args = [name, *case_args, *base_args(name, good, case_args)]
    result = invoke(args)
    assert result.exit_code not in (0, 3), (args, result.stdout, result.stderr)  # 3: an internal error
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), (args, result.stderr)
    assert result.stdout == ""
    assert not (good / "out.h5").exists()


def test_walk_covers_every_command_and_option():
    assert set(main.commands) >= {"run", "convert", "energy-report"}
    assert len(CASES) > 80
    covered = {(c[0], c[1].split("=")[0].split(" ")[0]) for c in CASES}
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if not (isinstance(p, click.Option) and p.is_flag):
                assert (name, p.name) in covered, (name, p.name)


def test_bare_group_and_unknown_command(good):
    r = invoke(["no-such-command"])
    assert r.exit_code != 0 and r.stderr.strip().startswith("Error:") and len(r.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback_of_an_internal_error(good, tmp_path):
    """Fault injection (the one place this suite injects): a MemoryError cannot be caused for
    real on a shared machine, so the library call raises it; the CLI must report it in one
    line without --debug and as a traceback with it."""
    code = ("import sys, numpy as np\n"
            "import eventsnn.results as r\n"
            "def boom(*a, **k): raise MemoryError()\n"
            "r.run_dataset = boom\n"
            "from eventsnn.cli.main import main\n"
            "main(sys.argv[1:])\n")
    args = ["run", "--net", str(good / "net.h5"), "--data", str(good / "data.npz"), "--no-progress",
            "--timesteps", "3"]
    # cwd: away from the checkout, so the installed package is imported (as by the console script)
    plain = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
    assert plain.returncode == 3 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [plain.stderr.strip()] and "out of memory" in plain.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug", *args], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "MemoryError" in debug.stderr
