"""energy-report says what it does: simulating first, where files go, what the rate comparison covers,
and how the analog first layer is priced (issue 18, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from eventsnn.cli.main import main
from eventsnn.energy import energy_report, get_profile
from eventsnn.io import save_network
from eventsnn.network import Layer, Network, Neuron
from eventsnn.results import run_dataset

from netgen import dyadic

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist-sample.npz"


def _maxpool_net():
    rng = np.random.default_rng(3)
    return Network(input_shape=(28, 28, 1), layers=[
        Layer("conv", "conv2d", ("input",), weight=dyadic(rng, (3, 3, 1, 4), -0.2, 0.8), padding=(1, 1),
              neuron=Neuron("if", 0.5)),
        Layer("mp", "maxpool2d", ("conv",), kernel=(2, 2), stride=(2, 2)),
        Layer("conv2", "conv2d", ("mp",), weight=dyadic(rng, (3, 3, 4, 4), -0.2, 0.6), neuron=Neuron("if", 0.5)),
        Layer("flat", "flatten", ("conv2",)),
        Layer("fc", "dense", ("flat",), weight=dyadic(rng, (12 * 12 * 4, 10), -0.1, 0.2), neuron=Neuron("if", 1.0)),
    ])


def _images(n):
    d = np.load(SAMPLE)
    return d["x"][:n].reshape(n, 28, 28, 1).astype(np.float32) / 255.0, d["y"][:n]


def test_rate_comparison_names_what_it_leaves_out_and_adds_up_to_the_table():
    x, y = _images(2)
    report = energy_report(run_dataset(_maxpool_net(), x, y, timesteps=10), get_profile(None))
    notes = report.notes()
    text = " ".join(notes)
    mp = next(r for r in report.rows if r["layer"] == "mp")
    assert mp["syn_ops"] > 0 and not mp["rate_estimate_syn_ops"]
    assert "mp (" in text and "max-pool" in text
    exact = float(re.search(r"where the exact count is ([\d,]+)", text).group(1).replace(",", ""))
    left = [float(v.replace(",", "")) for v in re.findall(r"\(([\d,]+) syn ops", text)]
    total = float(re.search(r"table's total of ([\d,]+) syn ops", text).group(1).replace(",", ""))
    assert abs(exact + sum(left) - total) <= len(left) + 1      # rounded to whole ops when printed
    assert abs(total - report.totals["syn_ops"]) <= 1


def test_first_layer_note_says_nonzero_pixels_against_dense_macs():
    x, y = _images(2)
    report = energy_report(run_dataset(_maxpool_net(), x, y, timesteps=10), get_profile(None))
    note = next(n for n in report.notes() if n.startswith("First layer"))
    conv = report.rows[0]
    assert f"{conv['analog_macs']:,.0f} analog MACs" in note and f"{conv['ann_macs']:,} MACs are dense" in note
    assert conv["analog_macs"] < conv["ann_macs"]  # the zeros of a real image are skipped


def test_without_results_it_says_it_simulates_first_and_where_csv_and_plot_go(tmp_path):
    csv = tmp_path / "e.csv"
    res = CliRunner().invoke(main, ["energy-report", "--samples", "2", "--timesteps", "5", "--no-progress",
                                    "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    assert "no RESULTS file given, so the network is simulated first" in res.output
    assert "2 samples" in res.output
    assert f"wrote the table as CSV to {csv}" in res.output and csv.is_file()


def test_maxpool_net_report_through_the_cli(tmp_path):
    net_path = tmp_path / "mp.h5"
    save_network(_maxpool_net(), net_path)
    res = CliRunner().invoke(main, ["energy-report", "--net", str(net_path), "--samples", "2", "--timesteps", "5",
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Left out of that comparison" in res.output and "mp (" in res.output
