"""The engine's request for full-width (512-bit) vectors on AVX-512 hosts (engine/jit.py).

Each check runs in a fresh interpreter: numba reads its CPU features once per
process, when it first compiles. The promise is twofold: the request follows
the user's settings, and it changes speed only, never a result (vector width
does not change the arithmetic of an element, and no float sum is reordered).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

FEATURES_OF_THIS_PROCESS = (
    "import eventsnn.engine.jit, numba, json; "
    "from numba.core.codegen import get_host_cpu_features; "
    "print(json.dumps([numba.config.CPU_FEATURES, get_host_cpu_features()]))"
)


def _python(code: str, **env_changes) -> str:
    env = dict(os.environ)
    for key in ("EVENTSNN_WIDE_VECTORS", "NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME"):
        env.pop(key, None)
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_full_width_requested_only_on_avx512_hosts():
    chosen, host = json.loads(_python(FEATURES_OF_THIS_PROCESS))
    if "+avx512f" in host.split(","):
        assert chosen == host + ",-prefer-256-bit"
    else:
        assert chosen is None


def test_opt_out_and_user_settings_are_left_alone():
    chosen, _ = json.loads(_python(FEATURES_OF_THIS_PROCESS, EVENTSNN_WIDE_VECTORS="0"))
    assert chosen is None
    chosen, host = json.loads(_python(FEATURES_OF_THIS_PROCESS, NUMBA_CPU_FEATURES="+sse2"))
    assert chosen == "+sse2"


RUN_WIDE_NETWORK = r"""
import sys
import numpy as np
from eventsnn.engine.simulator import Simulator
from eventsnn.network import Layer, Network, Neuron

out, encoding = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)
# Arbitrary floats (not dyadic): any change of summation order would show.
w = lambda *shape: (rng.standard_normal(shape) * 0.35).astype(np.float32)
net = Network(input_shape=(10, 10, 3), encoding=encoding, layers=[
    Layer("c1", "conv2d", weight=w(3, 3, 3, 32), bias=(rng.random(32) * 0.05).astype(np.float32),
          padding=(1, 1), neuron=Neuron("if", 1.0, "subtract")),
    Layer("p1", "maxpool2d", kernel=(2, 2), stride=(2, 2)),
    Layer("c2", "conv2d", weight=w(3, 3, 32, 48), padding=(1, 1), neuron=Neuron("lif", 0.8, "zero", 0.9)),
    Layer("c3", "conv2d", weight=w(3, 3, 48, 40), stride=(2, 2), neuron=Neuron("if", 0.7, "subtract")),
    Layer("f", "flatten"),
    Layer("d", "dense", weight=w(160, 10) * 0.5, neuron=Neuron("if", 1.0, "subtract")),
])
sim = Simulator(net, timesteps=40, encoding=encoding, seed=3, record_spikes=True, order="layer")
runs = {}
for k in range(3):
    sim.reset(rng.random((10, 10, 3)).astype(np.float32))
    sim.run()
    t, p, i = sim.recorded_spikes()
    runs.update({f"v{k}": sim.state.v.copy(), f"count{k}": sim.state.spike_count.copy(),
                 f"t{k}": t, f"p{k}": p, f"i{k}": i, f"syn{k}": sim.per_layer()["syn_ops"]})
np.savez(out, **runs)
"""


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_results_identical_with_and_without_wide_vectors(tmp_path, encoding):
    results = {}
    for wide in ("1", "0"):
        out = tmp_path / f"wide{wide}.npz"
        _python(RUN_WIDE_NETWORK.replace("sys.argv[1], sys.argv[2]", f"{str(out)!r}, {encoding!r}"),
                EVENTSNN_WIDE_VECTORS=wide)
        results[wide] = dict(np.load(out))
    assert results["1"].keys() == results["0"].keys()
    assert results["1"]["count0"].sum() > 0
    for key, value in results["1"].items():
        np.testing.assert_array_equal(value, results["0"][key], err_msg=key)
