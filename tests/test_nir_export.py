"""NIR export: eventsnn -> NIR (written by the real ``nir`` package) -> eventsnn gives identical spikes.

Every network is run on the engine before and after the round trip, on
several inputs, and the spike count of every neuron of every layer must be
identical. The random networks (tests/netgen.py) use 2^-8-grid weights,
thresholds and inputs, so any difference is a bug, not rounding. The file's
layout is checked independently through the ANN importer
(:func:`eventsnn.io.nir_import.read_nir`, written separately for NIR files
from other tools), which must see the same weights.
"""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

nir = pytest.importorskip("nir")

from eventsnn import Simulator  # noqa: E402
from eventsnn.cli.main import main  # noqa: E402
from eventsnn.errors import NetworkError  # noqa: E402
from eventsnn.io import load_network  # noqa: E402
from eventsnn.io.nir_export import read_nir_network, to_nir_graph, write_nir  # noqa: E402
from eventsnn.io.nir_import import read_nir  # noqa: E402
from eventsnn.network import Layer, Network, Neuron  # noqa: E402

from netgen import dyadic, random_input, random_network  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_NET = os.path.join(HERE, "..", "data", "default_net.h5")


def spike_counts(net, xs, timesteps=20, seed=0):
    """{sample: {layer: spike counts}} from the engine."""
    out = []
    for i, x in enumerate(xs):
        sim = Simulator(net, timesteps=timesteps, seed=seed)
        sim.reset(x, sample_index=i)
        sim.run()
        out.append({name: sim.spike_counts(name) for name in sim.layer_names}
                   | {"__output__": sim.output()})
    return out


def assert_same_spikes(a, b, net_a, net_b):
    names_a = [layer.name for layer in net_a.spiking_layers()]
    names_b = [layer.name for layer in net_b.spiking_layers()]
    assert names_a == names_b
    for sa, sb in zip(a, b):
        for name in names_a:
            np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
        np.testing.assert_array_equal(sa["__output__"], sb["__output__"])


def roundtrip(net, tmp_path, **kw):
    path = tmp_path / "net.nir"
    write_nir(net, path, **kw)
    return read_nir_network(path)


def test_default_net_round_trip_gives_identical_spikes(tmp_path):
    net = load_network(DEFAULT_NET)
    back = roundtrip(net, tmp_path)
    for a, b in zip(net.layers, back.layers):
        assert (a.name, a.kind, a.inputs) == (b.name, b.kind, b.inputs)
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
        assert (a.neuron is None) == (b.neuron is None)
        if a.neuron is not None:
            assert (a.neuron.kind, a.neuron.reset, a.neuron.v_init) == (b.neuron.kind, b.neuron.reset, b.neuron.v_init)
    data = np.load(os.path.join(HERE, "..", "data", "fashion-mnist-sample.npz"))
    xs = data["x"][:4].astype(np.float32) / 255.0
    xs = xs.reshape((4,) + tuple(net.shapes()["input"]))
    a, b = spike_counts(net, xs, timesteps=30), spike_counts(back, xs, timesteps=30)
    assert sum(int(s["__output__"].sum()) for s in a) > 0  # the comparison is not vacuous
    assert_same_spikes(a, b, net, back)


def _exportable(seed):
    rng = np.random.default_rng(seed)
    enc = "direct" if seed % 2 else "poisson"
    net = random_network(rng, encoding=enc)
    return rng, net


@pytest.mark.parametrize("seed", range(24))
def test_random_nets_round_trip_or_refuse_by_name(seed, tmp_path):
    rng, net = _exportable(seed)
    if any(layer.kind == "maxpool2d" for layer in net.layers):
        with pytest.raises(NetworkError, match=r"'pool' \(maxpool2d\).*max-pool"):
            write_nir(net, tmp_path / "x.nir")
        assert not os.listdir(tmp_path)  # nothing partly written
        return
    back = roundtrip(net, tmp_path)
    assert (back.encoding, back.decoding) == (net.encoding, net.decoding)
    xs = [random_input(rng, net) for _ in range(3)]
    assert_same_spikes(spike_counts(net, xs, seed=seed), spike_counts(back, xs, seed=seed), net, back)


def test_residual_lif_membrane_net_round_trips(tmp_path):
    """A hand-built net with every exportable feature at once: add with scales, LIF, per-channel
    thresholds, v_init, bias, stride/padding, avg pool, flatten of a non-square map, membrane readout."""
    rng = np.random.default_rng(7)
    h, w, c = 7, 6, 2
    layers = [
        Layer("c1", "conv2d", ("input",), weight=dyadic(rng, (3, 3, c, 3), -0.3, 0.6),
              bias=dyadic(rng, (3,), -0.05, 0.1), padding=(1, 1),
              neuron=Neuron("lif", np.array([0.5, 0.75, 1.0], np.float32), "zero", 0.5, 0.5)),
        Layer("res", "conv2d", ("c1",), weight=dyadic(rng, (3, 3, 3, 3), -0.3, 0.5), padding=(1, 1)),
        Layer("join", "add", ("res", "c1"), weight=np.array([1.0, 0.75], np.float32),
              neuron=Neuron("if", 0.75, "subtract", 1.0, 0.0)),
        Layer("pool", "avgpool2d", ("join",), kernel=(2, 2), stride=(2, 2), neuron=Neuron("if", 0.5)),
        Layer("flat", "flatten", ("pool",)),
        Layer("fc", "dense", ("flat",), weight=dyadic(rng, (3 * 3 * 3, 4), -0.4, 0.6),
              neuron=Neuron("lif", 1.0, "subtract", 0.5, 0.0)),
    ]
    net = Network(input_shape=(h, w, c), layers=layers, encoding="direct", decoding="membrane")
    graph = to_nir_graph(net)
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())
    assert kinds.count("Scale") == 1 and "LI" in kinds and "AvgPool2d" in kinds
    back = roundtrip(net, tmp_path)
    xs = [random_input(rng, net, density=0.8) for _ in range(3)]
    a, b = spike_counts(net, xs), spike_counts(back, xs)
    assert sum(int(s["c1"].sum()) for s in a) > 0
    assert_same_spikes(a, b, net, back)


def _avgpool_seeds(n=4):
    """The first n seeds whose random net has a spiking average pool and no max pool."""
    seeds = []
    for seed in range(200):
        kinds = {layer.kind for layer in _exportable(seed)[1].layers}
        if "avgpool2d" in kinds and "maxpool2d" not in kinds:
            seeds.append(seed)
        if len(seeds) == n:
            return seeds
    raise AssertionError("netgen no longer makes average pools")


@pytest.mark.parametrize("seed", _avgpool_seeds())
def test_sum_pool_export_gives_identical_spikes(seed, tmp_path):
    rng, net = _exportable(seed)
    graph = to_nir_graph(net, pool="sum")
    assert any(type(n).__name__ == "SumPool2d" for n in graph.nodes.values())
    back = roundtrip(net, tmp_path, pool="sum")
    xs = [random_input(rng, net) for _ in range(3)]
    assert_same_spikes(spike_counts(net, xs), spike_counts(back, xs), net, back)


def test_layout_agrees_with_the_independent_nir_importer(tmp_path):
    """The ANN importer (written for other tools' NIR files) must read the same weights back."""
    net = load_network(DEFAULT_NET)
    path = tmp_path / "net.nir"
    write_nir(net, path)
    ann = read_nir(path)
    weighted = [layer for layer in net.layers if layer.weight is not None]
    ann_weighted = [layer for layer in ann.layers if layer.op in ("conv2d", "dense")]
    assert len(weighted) == len(ann_weighted)
    for a, b in zip(weighted, ann_weighted):
        np.testing.assert_array_equal(a.weight, b.weight)
    g = nir.read(path)
    conv = next(n for n in g.nodes.values() if type(n).__name__ == "Conv2d")
    np.testing.assert_array_equal(conv.weight, weighted[0].weight.transpose(3, 2, 0, 1))
    ifs = [n for n in g.nodes.values() if type(n).__name__ == "IF"]
    assert ifs and all(np.all(n.v_reset == 0) for n in ifs)  # v_reset is written explicitly
    info = json.loads(g.metadata["eventsnn"])
    resets = [v["reset"] for k, v in info["nodes"].items() if type(g.nodes[k]).__name__ == "IF"]
    assert resets == ["subtract"] * len(ifs)


def test_legacy_file_has_no_v_reset_and_still_round_trips(tmp_path):
    import h5py

    net = load_network(DEFAULT_NET)
    write_nir(net, tmp_path / "a.nir", legacy=True)
    with h5py.File(tmp_path / "a.nir") as f:
        kinds = {k: n["type"][()] for k, n in f["node/nodes"].items()}
        assert b"IF" in kinds.values()
        assert not any("v_reset" in f["node/nodes"][k] for k, t in kinds.items() if t == b"IF")
        assert not any("metadata" in n for n in f["node/nodes"].values())  # nir 1.0.4 rejects node metadata
    back = read_nir_network(tmp_path / "a.nir")
    assert [lay.neuron.reset for lay in back.layers if lay.neuron] == [lay.neuron.reset for lay in net.layers
                                                                       if lay.neuron]


def _tiny(neuron=None, **layer_kw):
    rng = np.random.default_rng(0)
    return Network(input_shape=(4, 4, 1), layers=[
        Layer("c", "conv2d", ("input",), weight=dyadic(rng, (3, 3, 1, 2), -0.3, 0.6),
              neuron=neuron or Neuron("if", 1.0), **layer_kw),
        Layer("f", "flatten", ("c",)),
        Layer("d", "dense", ("f",), weight=dyadic(rng, (8, 3), -0.3, 0.6), neuron=Neuron("if", 1.0)),
    ])


@pytest.mark.parametrize("net, strict, match", [
    (_tiny(Neuron("if", 1.0, max_spikes=4)), False, r"layer 'c' \(conv2d\): multi-spike neurons \(max_spikes=4\)"),
    (_tiny(delay=0.5), False, r"layer 'c' \(conv2d\): synaptic delay 0.5"),
    (_tiny(Neuron("if", 1.0, "subtract")), True, r"layer 'c' \(conv2d\): reset by subtraction"),
    (_tiny(Neuron("if", 1.0, "zero", v_init=0.5)), True, r"layer 'c' \(conv2d\): v_init=0.5"),
])
def test_unsupported_features_are_refused_by_name(net, strict, match, tmp_path):
    with pytest.raises(NetworkError, match=match):
        write_nir(net, tmp_path / "x.nir", strict=strict)
    assert not os.listdir(tmp_path)


def test_strict_export_of_a_zero_reset_net_is_plain_nir(tmp_path):
    net = _tiny(Neuron("if", 1.0, "zero"))
    net.layers[-1].neuron = Neuron("if", 1.0, "zero")
    write_nir(net, tmp_path / "x.nir", strict=True)
    back = read_nir_network(tmp_path / "x.nir")
    assert [layer.neuron.reset for layer in back.layers if layer.neuron] == ["zero", "zero"]


def test_foreign_nir_without_metadata_uses_nirs_own_reset(tmp_path):
    """A graph built directly with nir (as another tool writes it): reset to v_reset = 0, dt = 1 step."""
    w = np.array([[0.5, -0.25], [0.75, 0.5], [0.25, 0.25]], np.float32)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(weight=w),
        "lif": nir.LIF(tau=np.full(3, 2.0, np.float32), r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32),
                       v_threshold=np.full(3, 1.0, np.float32)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")])
    nir.write(tmp_path / "f.nir", graph)
    net = read_nir_network(tmp_path / "f.nir")
    n = net.layers[0].neuron
    assert (n.kind, n.reset, n.v_init) == ("lif", "zero", 0.0)
    assert n.leak == pytest.approx(np.exp(-0.5))
    np.testing.assert_array_equal(net.layers[0].weight, w.T)


@pytest.mark.parametrize("node, match", [
    (lambda: nir.IF(r=np.ones(3, np.float32), v_threshold=np.ones(3, np.float32),
                    v_reset=np.full(3, -0.5, np.float32)), "v_reset != 0"),
    (lambda: nir.IF(r=np.full(3, 2.0, np.float32), v_threshold=np.ones(3, np.float32)), "r != 1"),
    (lambda: nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3),
                         v_threshold=np.ones(3)), r"'n' \(CubaLIF\) cannot be read"),
])
def test_foreign_nir_that_eventsnn_cannot_run_is_refused(node, match, tmp_path):
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Affine(weight=np.ones((3, 2), np.float32), bias=np.zeros(3, np.float32)),
        "n": node(),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("in", "fc"), ("fc", "n"), ("n", "out")])
    nir.write(tmp_path / "f.nir", graph)
    with pytest.raises(NetworkError, match=match):
        read_nir_network(tmp_path / "f.nir")


def test_cli_export_writes_a_nir_file_and_reports_metadata(tmp_path):
    out = tmp_path / "net.nir"
    res = CliRunner().invoke(main, ["export", DEFAULT_NET, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Conv2d x2" in res.output and "reset by subtraction" in res.output
    assert type(nir.read(out)).__name__ == "NIRGraph"


def test_cli_export_refusal_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "net.nir"
    res = CliRunner().invoke(main, ["export", DEFAULT_NET, "-o", str(out), "--strict"])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and res.output.count("Error:") == 1
    assert "reset by subtraction" in res.output
    assert not out.exists() and not os.listdir(tmp_path)


def test_cli_export_of_a_file_that_is_not_a_network(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    res = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "x.nir")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert not (tmp_path / "x.nir").exists()
