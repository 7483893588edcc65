#!/usr/bin/env python
"""How far the event engine is from the peers goals of issue 17 on net B, and what bounds it.

Measures nothing itself: it joins recorded results (all JSON in bench/results/)
into one table per spike rate and prints it as markdown (BENCHMARKS.md §8,
checked by tests/test_benchmark_docs.py):

* ``net_b_layers.json``: the whole net on one core (``bench/net_b_layers.py``);
* ``vgg_layers_session8_rate001/005.json``: each conv layer on its recorded
  input spikes, the engine against the bare scatter kernel (``bench/vgg_layers.py``,
  one sample);
* ``profile_net_b_1pct/5pct.json``: the perf profile of the whole net
  (``bench/profile_engine.py --net-b``): the share of samples in the delivery
  loop's vector instructions;
* ``workers_peers.json``: the default run (every core) against the peers'
  recorded 2-thread times (``bench/workers_peers.py``).

The **bound** is a computed estimate, not a measurement: the time per sample
if net B cost nothing but the bare scatter of its conv layers (no queue, no
neuron updates, no pools, no first layer), shared by two ideal workers.

Usage::

    python bench/net_b_bound.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GOALS = {0.01: 20.0, 0.05: 5.0}  # issue 17: the default run against the fastest 2-thread peer at batch 1
SOURCES = {0.01: ("vgg_layers_session8_rate001.json", "profile_net_b_1pct.json"),
           0.05: ("vgg_layers_session8_rate005.json", "profile_net_b_5pct.json")}


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def rows() -> list:
    """One dict per spike rate with every number the table shows."""
    whole = {r["rate"]: r["rows"][-1]["cumulative"]["seconds_per_sample"] for r in load("net_b_layers.json")["rates"]}
    peers = {r["target_rate"]: r for r in load("workers_peers.json")["rates"]}
    out = []
    for rate, (layers_file, profile_file) in SOURCES.items():
        layers, profile, run = load(layers_file), load(profile_file), peers[rate]
        peer = run["peer_2_threads_batch_1"]
        peer_s = peer["per_sample_median_s"]
        one_core = whole[rate]
        two_workers = run["eventsnn_marginal_s"]
        bound = layers["total"]["bare_s"] / 2
        scaling = one_core / two_workers
        out.append({
            "rate": rate, "one_core_ms": 1000 * one_core,
            "conv_engine_ms": 1000 * layers["total"]["engine_s"], "conv_bare_ms": 1000 * layers["total"]["bare_s"],
            "axpy_share": profile["shares"]["cpu.advance"] * profile["event_loop_vector_share"],
            "loop_rest_share": profile["shares"]["cpu.advance"] * (1 - profile["event_loop_vector_share"]),
            "flush_share": sum(v for k, v in profile["shares"].items() if k.startswith("cpu._flush")),
            "two_workers_ms": 1000 * two_workers, "scaling": scaling, "peer": peer["peer"],
            "peer_ms": 1000 * peer_s, "ratio": peer_s / two_workers, "goal": GOALS[rate],
            "goal_one_core_ms": 1000 * peer_s / GOALS[rate] * scaling,
            "bound_ms": 1000 * bound, "bound_ratio": peer_s / bound})
    return out


def report() -> str:
    lines = ["| | 1 % | 5 % |", "|---|---|---|"]
    r1, r5 = rows()

    def line(label, fmt):
        lines.append(f"| {label} | {fmt(r1)} | {fmt(r5)} |")

    line("whole net, one core (`net_b_layers.py`)", lambda r: f"{r['one_core_ms']:.1f} ms")
    line("its 12 spiking-input conv layers alone, engine (`vgg_layers.py`, sample 0)",
         lambda r: f"{r['conv_engine_ms']:.1f} ms")
    line("the same deliveries on the bare scatter kernel", lambda r: f"{r['conv_bare_ms']:.1f} ms")
    line("engine samples in the delivery loop's vector code (`profile_engine.py --net-b`)",
         lambda r: f"{100 * r['axpy_share']:.0f} %")
    line("… in the rest of the event loop (queue, fan-out decode, touched lists)",
         lambda r: f"{100 * r['loop_rest_share']:.0f} %")
    line("… in the flushes (neuron updates, spike pass, emission)", lambda r: f"{100 * r['flush_share']:.0f} %")
    line("default run, 2 workers, marginal (`workers_peers.py`)",
         lambda r: f"{r['two_workers_ms']:.1f} ms ({r['scaling']:.2f}× one core)")
    line("fastest 2-thread peer at batch 1 (recorded)", lambda r: f"{r['peer']} {r['peer_ms']:.1f} ms")
    line("**ratio now** / goal", lambda r: f"**{r['ratio']:.1f}×** / {r['goal']:g}×")
    line("one-core time the goal needs (at this 2-worker scaling)", lambda r: f"{r['goal_one_core_ms']:.1f} ms")
    line("computed bound: bare scatter only, 2 ideal workers",
         lambda r: f"{r['bound_ms']:.1f} ms → {r['bound_ratio']:.0f}×")
    return "\n".join(lines)


def main(argv=None) -> int:
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
