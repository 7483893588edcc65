"""`eventsnn run --batch`: the CUDA backend's samples per launch; on the CPU it changes nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from eventsnn.cli.main import main


def test_batch_is_accepted_and_ignored_on_the_cpu():
    base = ["run", "--samples", "3", "--timesteps", "4", "--json", "--no-progress", "--workers", "1"]
    runner = CliRunner()
    plain = runner.invoke(main, base)
    batched = runner.invoke(main, base + ["--batch", "2"])
    assert plain.exit_code == 0 and batched.exit_code == 0, plain.output + batched.output
    a, b = json.loads(plain.output), json.loads(batched.output)
    assert a["layers"] == b["layers"] and a["accuracy"] == b["accuracy"]
    assert b["settings"]["options"]["batch"] == 2 and b["settings"]["backend"] == "cpu"


def test_batch_must_be_positive():
    r = CliRunner().invoke(main, ["run", "--batch", "0", "--samples", "1"])
    assert r.exit_code != 0 and "--batch" in r.output
