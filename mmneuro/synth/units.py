"""Planted units: tuning clusters, the rate oracle, and Poisson spike trains with a refractory period."""

from __future__ import annotations

import math

import numpy as np

from mmneuro.synth.config import SynthConfig


def make_clusters(config: SynthConfig) -> list[dict]:
    """The tuning clusters (ground-truth dicts): one per frequency band, one per non-frequency feature in
    ``config.extra_clusters`` (duration, FM slope, peak amplitude; no band), untuned,
    plus the ``mua`` and ``noise`` groups (untuned, excluded downstream by their label)."""
    c = config
    clusters = [
        {"name": f"band_{round(center / 1000)}k", "feature": "mean_freq_hz", "center": center,
         "width": c.band_width_hz, "band_hz": [center - c.band_width_hz, center + c.band_width_hz]}
        for center in c.band_centers_hz
    ]
    extra = {"duration": ("duration_s", c.duration_center_s, c.duration_width_s),
             "fm_slope": ("fm_slope_hz_per_s", c.slope_center_hz_per_s, c.slope_width_hz_per_s),
             "amplitude": ("amplitude", c.amplitude_center, c.amplitude_width)}
    for name in (n for n in extra if n in c.extra_clusters):  # fixed order, whatever the config's
        feature, center, width = extra[name]
        clusters.append({"name": name, "feature": feature, "center": center, "width": width, "band_hz": None})
    for name in ("untuned", "mua", "noise"):
        clusters.append({"name": name, "feature": None, "center": None, "width": None, "band_hz": None})
    return clusters


def make_units(config: SynthConfig) -> list[dict]:
    """Units of the chronic probe, from ``config.probe_seed`` only (identical in every session).

    Each dict has the contract's keys plus ``feature``/``center``/``width`` (copied from its cluster,
    so :func:`planted_rate` needs nothing else), ``refractory_s`` and ``channel`` (template peak).
    Unit ids 0..N-1 are shuffled across clusters so that id order says nothing about tuning.
    """
    c = config
    rng = np.random.default_rng(np.random.SeedSequence([c.probe_seed, 7001]))
    tuned = {cl["name"]: cl for cl in make_clusters(c)}
    plan = [(name, c.units_per_cluster) for name, cl in tuned.items() if cl["feature"]]
    plan += [("untuned", c.n_untuned), ("mua", c.n_mua), ("noise", c.n_noise)]
    members = [name for name, n in plan for _ in range(n)]
    ids = rng.permutation(len(members))
    units = []
    for unit_id, name in zip(ids, members):
        cluster = tuned[name]
        label = name if name in ("mua", "noise") else "good"
        baseline_range = {"mua": c.mua_baseline_hz, "noise": c.noise_baseline_hz}.get(name, c.baseline_hz)
        units.append({
            "unit": int(unit_id), "cluster": name, "label": label,
            "baseline_hz": float(rng.uniform(*baseline_range)),
            "gain_hz": float(rng.uniform(*c.gain_hz)) if cluster["feature"] else 0.0,
            "latency_s": float(rng.uniform(*c.latency_s)),
            "drift_gain": float(rng.uniform(*c.slow_drift_gain)) if name == "untuned" else 0.0,
            "feature": cluster["feature"], "center": cluster["center"], "width": cluster["width"],
            # mua merges several neurons and noise is not a neuron: neither keeps a refractory period.
            "refractory_s": c.refractory_s if label == "good" else 0.0,
            "channel": int(rng.integers(c.n_channels)),
        })
    return sorted(units, key=lambda u: u["unit"])


def planted_rate(unit: dict, syllable: dict) -> float:
    """Firing rate (Hz) of ``unit`` during its response to ``syllable`` (the oracle).

    ``baseline_hz + gain_hz * exp(-0.5 * ((feature - center) / width)^2)`` for tuned units,
    ``baseline_hz`` for untuned ones. The response lasts from onset + latency to offset + latency
    + the config's tail; the slow drift (:func:`slow_drift_factor`) multiplies it for drift units.
    """
    if not unit.get("feature"):
        return float(unit["baseline_hz"])
    z = (syllable[unit["feature"]] - unit["center"]) / unit["width"]
    return float(unit["baseline_hz"] + unit["gain_hz"] * math.exp(-0.5 * z * z))


def slow_drift_factor(unit: dict, factor: dict, t_neural_s):
    """Multiplier of ``unit``'s rate at neural-clock times ``t_neural_s`` (the neural-only factor):
    ``1 + drift_gain * sin(2 pi t / period_s + phase_rad)``."""
    return 1.0 + unit["drift_gain"] * np.sin(2 * np.pi * np.asarray(t_neural_s) / factor["period_s"]
                                             + factor["phase_rad"])


def simulate_spikes(rng: np.random.Generator, unit: dict, syllables: list[dict], to_neural,
                    t_end_s: float, factor: dict, tail_s: float) -> np.ndarray:
    """Spike times (s, neural clock, sorted) of ``unit`` over [0, ``t_end_s``).

    Inhomogeneous Poisson process by thinning (Lewis & Shedler 1979): candidates at the maximal rate,
    each kept with probability rate(t) / max rate; then a dead time of ``refractory_s`` after every
    kept spike. ``to_neural`` maps audio-clock seconds to neural-clock seconds.
    """
    drive = np.array([planted_rate(unit, s) - unit["baseline_hz"] for s in syllables])
    starts = to_neural(np.array([s["onset_s"] for s in syllables])) + unit["latency_s"]
    ends = to_neural(np.array([s["offset_s"] for s in syllables])) + unit["latency_s"] + tail_s
    max_rate = (unit["baseline_hz"] + (drive.max() if len(drive) else 0.0)) * (1 + unit["drift_gain"])
    t = np.sort(rng.uniform(0.0, t_end_s, rng.poisson(max_rate * t_end_s)))
    k = np.searchsorted(starts, t, side="right") - 1
    inside = (k >= 0) & (t < ends[np.maximum(k, 0)]) if len(starts) else np.zeros(len(t), bool)
    rate = (unit["baseline_hz"] + np.where(inside, drive[np.maximum(k, 0)] if len(drive) else 0.0, 0.0))
    rate = rate * slow_drift_factor(unit, factor, t)
    t = t[rng.random(len(t)) * max_rate < rate]
    return _dead_time(t, unit["refractory_s"])


def _dead_time(t: np.ndarray, refractory_s: float) -> np.ndarray:
    """Drop every spike that falls within ``refractory_s`` after the last kept one."""
    if refractory_s <= 0 or len(t) < 2:
        return t
    keep = np.ones(len(t), bool)
    last = -np.inf
    for i, ti in enumerate(t.tolist()):
        if ti - last < refractory_s:
            keep[i] = False
        else:
            last = ti
    return t[keep]
