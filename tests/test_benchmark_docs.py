"""BENCHMARKS.md's generated tables are what the bench scripts print from the committed results,
and bench/merge_chunks.py joins chunked runs into what one run over all the images gives."""

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = (ROOT / "BENCHMARKS.md").read_text()


def bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def printed(main, argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def report_block(name):
    """The text between <!-- NAME report --> and <!-- end NAME report --> in BENCHMARKS.md."""
    start = BENCHMARKS.index(f"<!-- {name} report -->") + len(f"<!-- {name} report -->")
    return BENCHMARKS[start:BENCHMARKS.index(f"<!-- end {name} report -->")].strip()


@pytest.mark.parametrize("name", ["workers_speed", "net_b_layers", "workers_peers"])
def test_report_block_is_the_committed_json(name):
    doc = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
    assert report_block(name) == bench_module(name).report(doc).strip()


def test_net_b_bound_block_is_the_committed_results():
    """bench/net_b_bound.py joins recorded JSON only; its table in BENCHMARKS.md must be its output."""
    assert report_block("net_b_bound") == printed(bench_module("net_b_bound").main, []).strip()


def test_trained_vgg16_tables_are_the_committed_results():
    text = printed(bench_module("vgg16_tables").main, [])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 20  # accuracy, paired and speed tables
    missing = [row for row in rows if row not in BENCHMARKS]
    assert not missing, missing


# --- bench/merge_chunks.py -------------------------------------------------------------------------------

CPS = [2, 4]


def conversion_chunk(folder, start, preds, labels, ops, seconds):
    """A bench/conversion.py result for one chunk of test images (the fields merge_chunks reads)."""
    n = len(labels)
    hit = preds == labels[:, None]
    doc = {"benchmark": "bench/conversion.py", "machine": {"cpu_model": "x", "git_commit": f"c{start}",
                                                          "total_s": seconds},
           "settings": {"samples": n, "start": start, "checkpoints": CPS, "max_spikes": 4},
           "ann": {"test_10000": {"eventsnn_forward": 0.9}, f"first_{n}": {"eventsnn_forward": 0.5 + start / 100}},
           "configs": [{"method": "percentile", "decoding": "spikes", "samples": n, "scales": {"a": 2.0},
                        "sweep": [{"timesteps": t, "accuracy": float(hit[:, k].mean()),
                                   "accuracy_first_1": float(hit[:1, k].mean()),
                                   "syn_ops_per_sample": ops[k], "spikes_per_sample_by_layer": [ops[k], 1.0]}
                                  for k, t in enumerate(CPS)],
                        "seconds_per_sample_one_core": seconds / n, "seconds_per_sample_p95": 1.0,
                        "wall_s": seconds, "wall_s_per_sample": seconds / n, "share_wall_s": [seconds]}]}
    path = folder / f"chunk_{start}.json"
    path.write_text(json.dumps(doc))
    np.savez(folder / f"chunk_{start}_predictions.npz", labels=labels.astype(np.int8),
             checkpoints=np.array(CPS), start=np.array(start), **{"percentile:spikes": preds.astype(np.int8)})
    return path


def test_merge_chunks_joins_conversion_runs_exactly(tmp_path):
    merge = bench_module("merge_chunks").main
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 10)
    preds = rng.integers(0, 3, (10, 2))
    a = conversion_chunk(tmp_path, 0, preds[:4], labels[:4], [10.0, 20.0], 8.0)
    b = conversion_chunk(tmp_path, 4, preds[4:], labels[4:], [40.0, 50.0], 6.0)
    out = tmp_path / "joined.json"
    printed(merge, ["--out", str(out), "--subsets", "1,5", str(a), str(b)])
    doc = json.loads(out.read_text())
    cfg = doc["configs"][0]
    assert doc["settings"]["samples"] == cfg["samples"] == 10 and doc["settings"]["start"] == 0
    assert cfg["wall_s"] == 14.0 and cfg["share_wall_s"] == [14.0]
    assert cfg["seconds_per_sample_one_core"] == pytest.approx(1.4)
    assert "seconds_per_sample_p95" not in cfg  # not a mean: not joined
    assert cfg["scales"] == {"a": 2.0}
    assert doc["machine"]["git_commit"] == ["c0", "c4"]
    hit = preds == labels[:, None]
    for k, row in enumerate(cfg["sweep"]):
        assert row["accuracy"] == pytest.approx(hit[:, k].mean())
        assert row["accuracy_first_1"] == hit[0, k] and row["accuracy_first_5"] == pytest.approx(hit[:5, k].mean())
        assert row["syn_ops_per_sample"] == pytest.approx((4 * [10.0, 20.0][k] + 6 * [40.0, 50.0][k]) / 10)
        assert row["spikes_per_sample_by_layer"][1] == 1.0
    assert doc["ann"]["first_10"]["eventsnn_forward"] == pytest.approx((4 * 0.5 + 6 * 0.54) / 10)
    joined = np.load(tmp_path / "joined_predictions.npz")
    assert np.array_equal(joined["labels"], labels) and np.array_equal(joined["percentile:spikes"], preds)


def test_merge_chunks_refuses_gaps_and_mismatches(tmp_path):
    merge = bench_module("merge_chunks").main
    labels, preds = np.zeros(4, int), np.zeros((4, 2), int)
    a = conversion_chunk(tmp_path, 0, preds, labels, [1.0, 2.0], 1.0)
    gap = conversion_chunk(tmp_path, 5, preds, labels, [1.0, 2.0], 1.0)
    out = str(tmp_path / "joined.json")
    with pytest.raises(SystemExit, match="expected 4"):
        merge(["--out", out, str(a), str(gap)])
    other = conversion_chunk(tmp_path, 4, preds, labels, [1.0, 2.0], 1.0)
    doc = json.loads(other.read_text())
    doc["configs"][0]["scales"] = {"a": 3.0}
    other.write_text(json.dumps(doc))
    with pytest.raises(SystemExit, match="disagree"):
        merge(["--out", out, str(a), str(other)])
    with pytest.raises(SystemExit, match="must not be one of the chunks"):
        merge(["--out", str(a), str(a)])
    assert not (tmp_path / "joined.json").exists()


def test_readme_vgg16_speed_is_the_committed_run():
    sp = json.loads((ROOT / "bench" / "results" / "vgg16w4_speed.json").read_text())
    s = sp["summary"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"T = {sp['timesteps']} in {1000 * sp['eventsnn']['marginal_s_per_image']:.1f} ms per image" in readme
    best = s["fastest_peer_any_batch"]
    assert f"{s['speedup_vs_best_batch']:.2f}× faster than the fastest peer configuration" in readme
    assert f"batch {best['batch']}, {best['threads']} threads" in readme
    assert f"{s['speedup_vs_batch_1']:.1f}× faster than the fastest peer at batch 1" in readme


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="the Fashion-MNIST IDX files are not installed")
def test_chunked_conversion_runs_join_to_the_single_run(tmp_path):
    """bench/conversion.py on test images 100..109 in one run, and as chunks 100..104 and 105..109
    joined by merge_chunks: the same accuracies and counts at every T, the same predictions."""
    conversion, merge = bench_module("conversion").main, bench_module("merge_chunks").main
    common = ["--methods", "percentile", "--decodings", "spikes", "--workers", "1", "--timesteps", "20",
              "--checkpoints", "10,20", "--subsets", "", "--calibration-samples", "100"]
    runs = {"whole": (100, 10), "a": (100, 5), "b": (105, 5)}
    for name, (start, n) in runs.items():
        printed(conversion, common + ["--start", str(start), "--samples", str(n),
                                      "--out", str(tmp_path / f"{name}.json")])
    printed(merge, ["--out", str(tmp_path / "joined.json"), str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    whole, joined = (json.loads((tmp_path / f"{n}.json").read_text())["configs"][0] for n in ("whole", "joined"))
    assert joined["samples"] == whole["samples"] == 10
    for w, j in zip(whole["sweep"], joined["sweep"]):
        assert w.keys() == j.keys()
        for key in w:
            assert j[key] == pytest.approx(w[key], rel=1e-12), key
    pw, pj = (np.load(tmp_path / f"{n}_predictions.npz") for n in ("whole", "joined"))
    assert np.array_equal(pw["labels"], pj["labels"])
    assert np.array_equal(pw["percentile:spikes"], pj["percentile:spikes"])


def test_readme_vgg16_accuracy_is_the_joined_full_test_set_runs():
    readme = " ".join((ROOT / "README.md").read_text().split())
    k4 = json.loads((ROOT / "bench" / "results" / "vgg16w4_conversion_k4_joined.json").read_text())
    peers = json.loads((ROOT / "bench" / "results" / "vgg16w4_peers_joined.json").read_text())
    assert k4["settings"]["samples"] == peers["settings"]["samples"] == 10000
    ev = " / ".join(f"{100 * r['accuracy']:.2f}" for r in k4["configs"][0]["sweep"])
    sinabs = next(p for p in peers["peers"] if p["peer"] == "sinabs:default")
    # sinabs' better readout at each T (membrane or output spikes), as the paired tests take it
    pe = " / ".join(f"{100 * max(r['accuracy_membrane'], r['accuracy_spikes']):.2f}" for r in sinabs["sweep"])
    assert f"{ev} % at T = 25 / 50 / 100 / 200 / 500" in readme
    assert f"ahead of sinabs ({pe} %)" in readme
    fewer = [1 - e["syn_ops_per_sample"] / s["syn_ops_per_sample"]
             for e, s in zip(k4["configs"][0]["sweep"], sinabs["sweep"])]
    assert f"{round(100 * min(fewer))}–{round(100 * max(fewer))} % fewer synaptic ops" in readme
