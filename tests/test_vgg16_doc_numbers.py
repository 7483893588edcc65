"""The per-layer numbers docs/VGG16.md quotes come from the recorded bench/vgg16_layer_correlation.py run."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "VGG16.md"
RESULTS = ROOT / "bench" / "results" / "vgg16_layer_correlation.json"


@pytest.fixture(scope="module")
def layers():
    return json.loads(RESULTS.read_text())["layers"]


@pytest.fixture(scope="module")
def doc():
    return " ".join(DOC.read_text().split())


def stat(layers, t, key):
    return [layer["by_T"][str(t)][key] for layer in layers]


def test_the_run_behind_the_doc_is_the_shipped_vgg16_with_16_spiking_layers(layers):
    assert len(layers) == 16  # 13 conv + 3 dense


def test_t200_claims(layers, doc):
    r = stat(layers, 200, "pearson_r")
    slope = stat(layers, 200, "slope")
    assert f"r ≥ {int(min(r) * 1000) / 1000:.3f}" in doc  # rounded down: a lower bound
    assert f"the slope is {slope[0]:.2f} in conv 1" in doc
    assert f"{min(slope[1:]):.2f}–{max(slope[1:]):.2f} from conv 2" in doc


def test_t50_claims(layers, doc):
    r = stat(layers, 50, "pearson_r")
    slope = stat(layers, 50, "slope")
    assert f"r {r[0]:.3f} in conv 1, {r[4]:.2f} by conv 5" in doc
    lowest = min(range(13), key=lambda i: r[i])
    assert f"{r[lowest]:.3f} at its lowest (conv {lowest + 1}," in doc
    assert f"the slope falls from {slope[0]:.2f} to {min(slope):.2f} at conv {slope.index(min(slope)) + 1}" in doc
    assert f"{r[12]:.3f} at conv 13, {r[15]:.3f} at the output" in doc
    assert f"slope stays low ({slope[15]:.2f} at the output)" in doc


def test_clipping_claim(layers, doc):
    worst = max(layer["ann_above_threshold"] for layer in layers)
    m = re.search(r"at most ([0-9.]+) % of any layer", doc)
    assert m and float(m.group(1)) == pytest.approx(100 * worst, abs=0.005)
