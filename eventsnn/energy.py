"""Energy of inference from exact operation counts, against the ANN, per hardware profile.

Per sample and layer l (Horowitz 2014 constants; the usual comparison of
Sengupta et al. 2019, Lee et al. 2020)::

    E_ANN,l = MACs_l * E_MAC
    E_SNN,l = analog MACs_l * E_MAC * (1, or T with first_layer="per-step")
              + synops_l * E_AC + updates_l * E_update + spikes_l * E_spike

``synops_l`` is the engine's exact count: every delivered spike times its real,
border-clipped fan-out. ``MACs_l`` are those of the *source* ANN: a layer into
which ``eventsnn convert`` folded an average pool counts the pool and the
smaller layer after it, as the ANN computes them. The *rate-based estimate*
other tools print instead is ``rate_in,l * synapses_l * T`` with ``rate_in,l``
the mean spike rate per neuron per step of the layer's input and
``synapses_l`` the layer's own dense synapse count: it ignores borders,
pooling windows and which neurons actually fire, and the report shows both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .errors import EventsnnError
from .results import RunResult

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

REQUIRED = ("mac_pj", "synop_pj")
OPTIONAL = ("neuron_update_pj", "spike_pj")
DEFAULT_PROFILE = "cmos45_fp32"


class ProfileError(EventsnnError):
    """A hardware profile that cannot be used; the message names the file, profile and field."""


@dataclass(frozen=True)
class Profile:
    name: str
    mac_pj: float
    synop_pj: float
    neuron_update_pj: float = 0.0
    spike_pj: float = 0.0
    description: str = ""
    source: str = ""

    def terms(self) -> list:
        """The energy terms this profile prices (non-zero constants)."""
        used = ["ANN MACs", "analog input MACs", "synaptic ops"]
        if self.neuron_update_pj:
            used.append("neuron updates")
        if self.spike_pj:
            used.append("spikes")
        return used


def _validate(name: str, table, where: str) -> Profile:
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: profile '{name}' must be a table of constants")
    values = {}
    for key in REQUIRED + OPTIONAL:
        if key not in table:
            if key in REQUIRED:
                raise ProfileError(f"{where}: profile '{name}': field '{key}' is missing")
            values[key] = 0.0
            continue
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ProfileError(f"{where}: profile '{name}': field '{key}' must be a non-negative number "
                               f"(pJ per operation), got {value!r}")
        values[key] = float(value)
    unknown = set(table) - set(REQUIRED + OPTIONAL + ("description", "source"))
    if unknown:
        raise ProfileError(f"{where}: profile '{name}': unknown field(s) {sorted(unknown)}")
    return Profile(name=name, description=str(table.get("description", "")),
                   source=str(table.get("source", "")), **values)


def read_profiles(path=None) -> dict:
    """All profiles of a TOML file (default: the shipped ``energy_profiles.toml``)."""
    if tomllib is None:  # pragma: no cover
        raise ProfileError("reading profiles needs Python 3.11 (tomllib)")
    if path is None:
        text = (resources.files("eventsnn.data") / "energy_profiles.toml").read_text()
        where = "energy_profiles.toml (shipped)"
    else:
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise ProfileError(f"{where}: no such profile file")
        from .limits import check_bytes
        check_bytes(4 * os.path.getsize(where), f"{where}: reading this profile file")
        with open(where, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ProfileError(f"{where}: not valid TOML: nested too deeply") from None
    if not doc:
        raise ProfileError(f"{where}: no profiles in the file")
    return {name: _validate(name, table, where) for name, table in doc.items()}


def get_profile(spec: str | None) -> Profile:
    """A shipped profile by name, a profile file with one profile, or ``FILE:NAME``."""
    spec = spec or DEFAULT_PROFILE
    shipped = read_profiles()
    if spec in shipped:
        return shipped[spec]
    if os.path.isfile(spec):
        path, name = spec, None
    elif ":" in spec:
        path, name = spec.rsplit(":", 1)
    else:
        raise ProfileError(f"unknown profile {spec!r}: neither a shipped profile ({', '.join(shipped)}) "
                           f"nor a file")
    profiles = read_profiles(path)
    if name is not None:
        if name not in profiles:
            raise ProfileError(f"{path}: no profile named '{name}' (has: {', '.join(profiles)})")
        return profiles[name]
    if len(profiles) > 1:
        raise ProfileError(f"{path}: has several profiles ({', '.join(profiles)}); use {path}:NAME")
    return next(iter(profiles.values()))


@dataclass
class EnergyReport:
    profile: Profile
    first_layer: str
    timesteps: int
    samples: int
    rows: list  # one dict per layer (input excluded)
    totals: dict

    def as_dict(self) -> dict:
        p = self.profile
        return {"profile": {"name": p.name, "description": p.description, "source": p.source,
                            "mac_pj": p.mac_pj, "synop_pj": p.synop_pj,
                            "neuron_update_pj": p.neuron_update_pj, "spike_pj": p.spike_pj,
                            "terms": p.terms()},
                "first_layer": self.first_layer, "timesteps": self.timesteps, "samples": self.samples,
                "per_sample": True, "layers": self.rows, "totals": self.totals}

    def notes(self) -> list:
        """Sentences that explain the table: what the rate estimate covers, and how the first layer is priced.

        The rate estimate exists only for layers fed by spikes through synapses; the
        analog first layer (MACs, priced as such) and max-pool gates (no synapses)
        have none, so the exact count it is compared with leaves them out, and the
        sentence says which, with their ops, so it adds up to the table's total.
        """
        out = []
        t = self.totals
        if t["rate_estimate_syn_ops"]:
            covered = [r for r in self.rows if r.get("rate_estimate_syn_ops")]
            left = [r for r in self.rows if not r.get("rate_estimate_syn_ops") and (r["syn_ops"] or r["analog_macs"])]
            exact = sum(r["syn_ops"] for r in covered)
            out.append(f"A rate-based estimate (input rate x the layers' synapses x T) would say "
                       f"{t['rate_estimate_syn_ops']:,.0f} synaptic ops where the exact count is {exact:,.0f} "
                       f"({t['rate_estimate_syn_ops'] / max(exact, 1):.3f}x), over the {len(covered)} layers "
                       f"fed by spikes through synapses.")
            if left:
                parts = [f"{r['layer']} ({r['syn_ops']:,.0f} syn ops"
                         + (f", {r['analog_macs']:,.0f} analog MACs)" if r["analog_macs"] else ")") for r in left]
                out.append(f"Left out of that comparison (no rate estimate: analog input or max-pool gate), "
                           f"but in the table's total of {t['syn_ops']:,.0f} syn ops: " + "; ".join(parts) + ".")
        for r in self.rows:
            if r["analog_macs"]:
                out.append(f"First layer {r['layer']}: the SNN's {r['analog_macs']:,.0f} analog MACs are those of "
                           f"the non-zero input values only (event-driven, a zero costs nothing"
                           + (", times T" if self.first_layer == "per-step" else "")
                           + f"); the ANN's {r['ann_macs']:,} MACs are dense, zeros included.")
        return out


def energy_report(result: RunResult, profile: Profile, first_layer: str = "once") -> EnergyReport:
    """Per-layer and total energy per sample (picojoules) of a run."""
    if first_layer not in ("once", "per-step"):
        raise ValueError(f"first_layer must be 'once' or 'per-step', got {first_layer!r}")
    if result.ann_macs.size != len(result.layers):
        raise ValueError("the results carry no ANN MAC counts (written by an older eventsnn?)")
    s = max(result.samples, 1)
    T = result.timesteps
    analog_factor = 1 if first_layer == "once" else T
    spikes = result.spikes.sum(axis=0) / s
    synops = result.syn_ops.sum(axis=0) / s
    updates = result.updates.sum(axis=0) / s
    analog = result.analog_macs.sum(axis=0) / s * analog_factor
    rates = spikes / (result.neurons * T)
    sources = result.settings.get("layer_sources") or [[] for _ in result.layers]
    # Synapses per layer for the rate estimate; older results: the ANN MACs.
    synapses = result.settings.get("layer_synapses") or [int(v) for v in result.ann_macs]
    rows = []
    for i in range(1, len(result.layers)):
        snn = (analog[i] * profile.mac_pj + synops[i] * profile.synop_pj
               + updates[i] * profile.neuron_update_pj + spikes[i] * profile.spike_pj)
        ann = float(result.ann_macs[i]) * profile.mac_pj
        src = sources[i] if i < len(sources) else []
        if analog[i] > 0:
            estimate_ops = None  # analog input: MACs, priced as such
        elif src:
            # other tools: input spike rate x the layer's dense synapse count x T
            rate_in = float(np.mean([rates[j] for j in src]))
            estimate_ops = rate_in * float(synapses[i]) * T
        else:
            estimate_ops = None
        rows.append({
            "layer": result.layers[i],
            "neurons": int(result.neurons[i]),
            "spikes": float(spikes[i]),
            "spike_rate": float(rates[i]),
            "syn_ops": float(synops[i]),
            "rate_estimate_syn_ops": estimate_ops,
            "neuron_updates": float(updates[i]),
            "analog_macs": float(analog[i]),
            "ann_macs": int(result.ann_macs[i]),
            "ann_macs_textbook": int(result.ann_macs_textbook[i]),
            "snn_pj": float(snn),
            "ann_pj": float(ann),
            "snn_over_ann": float(snn / ann) if ann else None,
        })
    tot = {k: float(sum(r[k] for r in rows)) for k in ("spikes", "syn_ops", "neuron_updates", "analog_macs",
                                                        "ann_macs", "snn_pj", "ann_pj")}
    tot["rate_estimate_syn_ops"] = float(sum(r["rate_estimate_syn_ops"] or 0.0 for r in rows))
    tot["snn_over_ann"] = tot["snn_pj"] / tot["ann_pj"] if tot["ann_pj"] else None
    return EnergyReport(profile, first_layer, T, result.samples, rows, tot)
