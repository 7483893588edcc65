"""Energy report: exact MAC counts, totals = counts x constants, profiles, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from eventsnn.cli.main import main
from eventsnn.energy import ProfileError, energy_report, get_profile, read_profiles
from eventsnn.engine.cpu import fanout_of
from eventsnn.engine.compile import Plan
from eventsnn.network import Layer, Network, Neuron
from eventsnn.opcount import layer_macs
from eventsnn.results import load_results, run_dataset

from netgen import random_input, random_network

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample.npz"


def _one_layer(kind, in_shape, **kw):
    if kind == "conv2d":
        layer = Layer("l", "conv2d", weight=np.ones(kw.pop("w"), np.float32), neuron=Neuron(), **kw)
    elif kind == "dense":
        return Network(in_shape, [Layer("l", "dense", weight=np.ones(kw["w"], np.float32), neuron=Neuron())])
    else:
        layer = Layer("l", kind, neuron=Neuron() if kind == "avgpool2d" else None, **kw)
    return Network(in_shape, [layer], encoding="poisson")


@pytest.mark.parametrize("case,expected", [
    # 5x5 input, 3x3 kernel, padding 1, stride 1: valid taps per axis 2+3+3+3+2 = 13
    (("conv2d", (5, 5, 2), dict(w=(3, 3, 2, 4), padding=(1, 1))), 13 * 13 * 2 * 4),
    # stride 2, padding 1: outputs 0,1,2 read rows (-1,0,1), (1,2,3), (3,4,5) -> 2+3+2 = 7
    (("conv2d", (5, 5, 2), dict(w=(3, 3, 2, 4), padding=(1, 1), stride=(2, 2))), 7 * 7 * 2 * 4),
    # no padding, stride 1: 3 outputs x 3 taps = 9 per axis
    (("conv2d", (5, 5, 1), dict(w=(3, 3, 1, 3))), 9 * 9 * 1 * 3),
    # 6x4 input, kernel (3, 1), padding (1, 0): rows 2+3+3+3+3+2 = 16, cols 4
    (("conv2d", (6, 4, 1), dict(w=(3, 1, 1, 2), padding=(1, 0))), 16 * 4 * 2),
    (("avgpool2d", (4, 4, 3), dict(kernel=(2, 2))), 4 * 4 * 3),
    (("avgpool2d", (5, 5, 1), dict(kernel=(3, 3), stride=(1, 1))), 3 * 3 * 9),
    (("maxpool2d", (4, 4, 3), dict(kernel=(2, 2))), 0),
    (("dense", (12,), dict(w=(12, 5))), 60),
])
def test_ann_macs_hand_computed(case, expected):
    kind, shape, kw = case
    net = _one_layer(kind, shape, **kw)
    exact, textbook = layer_macs(Plan(net, 10, encoding="poisson"))
    assert exact[1] == expected
    assert textbook[1] >= exact[1]


@pytest.mark.parametrize("seed", range(8))
def test_ann_macs_equal_sum_of_fanouts(seed):
    """Exact MACs of a layer = the engine's fan-out summed over every input neuron."""
    net = random_network(np.random.default_rng(seed), "poisson")
    plan = Plan(net, 5, encoding="poisson")
    exact, _ = layer_macs(plan)
    brute = np.zeros_like(exact)
    for c, row in enumerate(plan.conn_i):
        if row[0] == 4:  # max-pool gate: comparisons, no MACs
            continue
        n_src = int(row[3] * row[4] * row[5])
        brute[row[2]] += sum(fanout_of(plan.conn_i, plan.conn_geo, c, i) for i in range(n_src))
    np.testing.assert_array_equal(exact, brute)


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    net = random_network(rng, "direct", decoding="spikes")
    x = np.stack([random_input(rng, net) for _ in range(4)])
    return run_dataset(net, x, timesteps=20)


@pytest.mark.parametrize("name", ["cmos45_fp32", "cmos45_int32", "loihi", "spinnaker2"])
@pytest.mark.parametrize("first_layer", ["once", "per-step"])
def test_energy_equals_counts_times_constants(result, name, first_layer):
    prof = read_profiles()[name]
    report = energy_report(result, prof, first_layer)
    s, T = result.samples, result.timesteps
    factor = T if first_layer == "per-step" else 1
    want_snn = (result.analog_macs[:, 1:].sum() * factor * prof.mac_pj + result.syn_ops[:, 1:].sum() * prof.synop_pj
                + result.updates[:, 1:].sum() * prof.neuron_update_pj
                + result.spikes[:, 1:].sum() * prof.spike_pj) / s
    want_ann = result.ann_macs[1:].sum() * prof.mac_pj
    assert report.totals["snn_pj"] == pytest.approx(want_snn, rel=1e-12)
    assert report.totals["ann_pj"] == pytest.approx(want_ann, rel=1e-12)
    for i, row in enumerate(report.rows, start=1):
        assert row["syn_ops"] == result.syn_ops[:, i].sum() / s


def _profile_file(tmp_path, body):
    path = tmp_path / "p.toml"
    path.write_text(body)
    return str(path)


def test_bad_profiles_are_rejected(tmp_path):
    cases = {
        "[chip]\nmac_pj = 4.6\n": "'synop_pj' is missing",
        "[chip]\nmac_pj = 4.6\nsynop_pj = -1.0\n": "'synop_pj' must be a non-negative",
        "[chip]\nmac_pj = \"big\"\nsynop_pj = 1.0\n": "'mac_pj' must be a non-negative",
        "[chip]\nmac_pj = 4.6\nsynop_pj = 1\nsynapse_pj = 3\n": "unknown field",
        "[chip\n": "not valid TOML",
    }
    for body, words in cases.items():
        path = _profile_file(tmp_path, body)
        with pytest.raises(ProfileError) as err:
            get_profile(path)
        assert words in str(err.value) and "p.toml" in str(err.value)
    ok = _profile_file(tmp_path, "[mine]\nmac_pj = 2.0\nsynop_pj = 0.5\nneuron_update_pj = 1.0\n")
    assert get_profile(ok).neuron_update_pj == 1.0
    with pytest.raises(ProfileError, match="unknown profile"):
        get_profile("no-such-chip")


def test_cli_energy_report_from_results_file(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.h5"
    res = runner.invoke(main, ["run", "--data", str(SAMPLE), "--samples", "3", "--timesteps", "20",
                               "--output", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["energy-report", str(out), "--json", "--profile", "loihi",
                               "--csv", str(tmp_path / "e.csv"), "--plot", str(tmp_path / "e.png")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # where the files went is said on stderr
    loaded = load_results(out)
    assert doc["totals"]["syn_ops"] == pytest.approx(loaded.syn_ops[:, 1:].sum() / 3)
    assert doc["profile"]["name"] == "loihi" and "neuron updates" in doc["profile"]["terms"]
    assert (tmp_path / "e.csv").read_text().count("\n") == len(doc["layers"]) + 2
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(main, ["energy-report", str(out), "--first-layer", "per-step"])
    assert res.exit_code == 0 and "per step" in res.output and "rate-based estimate" in res.output


def test_cli_energy_report_default_and_bad_input(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["energy-report", "--samples", "2", "--timesteps", "10", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "SNN/ANN" in res.output and "cmos45_fp32" in res.output
    bad = _profile_file(tmp_path, "[x]\nmac_pj = -2\nsynop_pj = 1\n")
    res = runner.invoke(main, ["energy-report", "--profile", bad, "--samples", "1"])
    assert res.exit_code != 0 and "mac_pj" in res.output and "Traceback" not in res.output
    notres = tmp_path / "n.h5"
    notres.write_bytes(b"garbage")
    res = runner.invoke(main, ["energy-report", str(notres)])
    assert res.exit_code != 0 and "n.h5" in res.output and "Traceback" not in res.output
