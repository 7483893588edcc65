"""Output paths (issue 12, items 1 and 8): the real CLI never replaces a FIFO, device or
symlink unless told to, checks its outputs before any work starts, names the user's path in
its errors and leaves no temporary file behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from eventsnn.errors import OutputError
from eventsnn.io import save_network
from eventsnn.io.atomic import atomic_path, check_output_path, clean_stale
from eventsnn.network import Layer, Network, Neuron

from annbuild import AnnBuilder, to_onnx
from cliutil import invoke, one_error as assert_one_error

SMALL = ["--samples", "2", "--timesteps", "5", "--no-progress"]




def tiny_net() -> Network:
    rng = np.random.default_rng(3)
    return Network(input_shape=(4, 4, 1), layers=[
        Layer("flat", "flatten"),
        Layer("fc", "dense", weight=rng.normal(0, 0.5, (16, 3)).astype(np.float32), neuron=Neuron()),
    ])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    save_network(tiny_net(), d / "net.h5")
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x=rng.random((3, 4, 4)).astype(np.float32), y=np.array([0, 1, 2]))
    b = AnnBuilder((4, 4, 1))
    b.flatten()
    b.dense(3)
    b.relu()
    to_onnx(b.graph(), d / "model.onnx")
    (d / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    results = d / "results.h5"
    r = invoke(["run", "--net", d / "net.h5", "--data", d / "data.npz", *SMALL, "--output", results])
    assert r.exit_code == 0, r.output
    return d


def commands(files, target, net="net.h5"):
    """Every CLI option that writes a file, pointed at ``target``."""
    d = files
    return {
        "run --output": ["run", "--net", d / net, "--data", d / "data.npz", *SMALL, "--output", target],
        "convert -o": ["convert", d / net if net != "net.h5" else d / "model.onnx", "-o", target,
                       "--calibration", d / "data.npz", "--no-progress"],
        "energy-report --csv": ["energy-report", d / "results.h5", "--csv", target],
        "energy-report --plot": ["energy-report", d / "results.h5", "--plot", target],
    }




def no_temp_files(directory):
    return not [p for p in Path(directory).iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("which", ["run --output", "convert -o", "energy-report --csv", "energy-report --plot"])
def test_fifo_is_refused_and_kept(files, tmp_path, which):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    line = assert_one_error(invoke(commands(files, fifo)[which]), str(fifo), "FIFO", "--force")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), line
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("which", ["run --output", "convert -o", "energy-report --csv", "energy-report --plot"])
def test_symlink_is_refused_and_its_target_kept(files, tmp_path, which):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert_one_error(invoke(commands(files, link)[which]), str(link), "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me"
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("which", ["run --output", "energy-report --csv"])
def test_char_device_is_refused(files, which):
    # /dev/null only: refusal is asserted, and that it is still the device afterwards.
    assert_one_error(invoke(commands(files, "/dev/null")[which]), "/dev/null", "character device")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_force_writes_into_dev_null_without_replacing_it(files):
    r = invoke(commands(files, "/dev/null")["energy-report --csv"] + ["--force"])
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_force_follows_a_symlink_and_keeps_it(files, tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = invoke(commands(files, link)["energy-report --csv"] + ["--force"])
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and target.read_text().startswith("layer,")
    assert no_temp_files(tmp_path)


def test_force_streams_into_a_fifo(files, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    r = invoke(commands(files, fifo)["energy-report --csv"] + ["--force"])
    reader.join(timeout=30)
    assert r.exit_code == 0, r.output
    assert got and got[0].startswith(b"layer,")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_forced_fifo_without_reader_fails_instead_of_hanging(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="no process is reading"):
        with atomic_path(fifo, force=True) as tmp:
            Path(tmp).write_text("x")


def test_directory_is_always_refused(files, tmp_path):
    assert_one_error(invoke(commands(files, tmp_path)["energy-report --csv"] + ["--force"]), "directory")


# -- item 8: output errors come before the work and name the user's path ----------------------


@pytest.mark.parametrize("which", ["run --output", "convert -o"])
def test_output_checked_before_loading_anything(files, tmp_path, which):
    """A broken network/model would fail at load; the output error comes first, so no work ran."""
    long_name = tmp_path / ("x" * 300 + ".h5")
    args = commands(files, long_name, net="broken.h5")[which]
    line = assert_one_error(invoke(args), "x" * 300)
    assert ".tmp-" not in line and "too long" in line.lower()


def test_read_only_directory_is_refused_before_the_run(files):
    # /proc refuses new files even for root (chmod would not stop root).
    args = commands(files, "/proc/eventsnn-out.h5", net="broken.h5")["run --output"]
    assert_one_error(invoke(args), "/proc/eventsnn-out.h5", "cannot create files")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_by_mode(files, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_one_error(invoke(commands(files, ro / "o.h5", net="broken.h5")["run --output"]), str(ro / "o.h5"))
    finally:
        ro.chmod(0o755)


def test_empty_name_is_refused(files):
    assert_one_error(invoke(commands(files, "", net="broken.h5")["run --output"]))
    with pytest.raises(OutputError, match="empty"):
        check_output_path("")


# -- temporary files ------------------------------------------------------------------------


def test_failure_inside_the_write_leaves_nothing(tmp_path):
    out = tmp_path / "o.h5"
    out.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("disk on fire")
    assert out.read_text() == "previous"
    assert no_temp_files(tmp_path)


def test_stale_temp_of_a_killed_writer_is_cleaned_by_the_next_write(tmp_path):
    out = tmp_path / "o.h5"
    # A real writer killed with SIGKILL in the middle of its write.
    code = ("import sys, time; from eventsnn.io.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    open(tmp, 'w').write('partial'); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(stale) == 1 and not out.exists()
    other = tmp_path / ".tmp-eventsnn-000000000000-1-foreign"  # not this target's: left alone
    other.write_text("x")
    with atomic_path(out) as tmp:
        Path(tmp).write_text("done")
    assert out.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o.h5", other.name])
    assert clean_stale(out) == []


def test_write_error_names_the_users_path_not_the_temporary_file(tmp_path):
    """A full disk, for real: /dev/full fails every write with ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = tmp_path / "o.csv"
    with pytest.raises(OutputError) as err:
        with atomic_path(out) as tmp:
            with open("/dev/full", "w") as full:
                full.write("x" * 100_000)
                full.flush()
    assert str(out) in str(err.value) and ".tmp-" not in str(err.value) and "space" in str(err.value).lower()
    assert no_temp_files(tmp_path) and not out.exists()


def test_symlink_loop_is_refused_even_with_force(files, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    assert_one_error(invoke(commands(files, a)["energy-report --csv"] + ["--force"]), str(a), "loops")
