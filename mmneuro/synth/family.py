"""A family of planted configurations: ``draw_config(seed)`` varies the tuning structure, firing
statistics, syllable rate and noise, so checks do not depend on the demo's one configuration.

Ranges (issue 15): 2-6 frequency bands with centres anywhere in 35-105 kHz (at least 2.5 tuning
widths apart, so that planted bands are distinguishable), tuning widths 2-10 kHz, 0-2 non-frequency
clusters (duration, FM slope, amplitude), 0-40 % untuned units (all with a slow drift), baselines
0.5-10 Hz, 4-8 units per cluster, syllable gaps x0.6-1.5, background noise x0.5-2.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmneuro.synth.config import EXTRA_CLUSTERS, SynthConfig

FREQ_RANGE_HZ = (35_000.0, 105_000.0)
MIN_SEPARATION_WIDTHS = 2.5


def draw_config(seed: int, base: SynthConfig | None = None) -> SynthConfig:
    """A planted configuration drawn from ``seed`` (same seed, same config); unset knobs from ``base``."""
    base = base or SynthConfig()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 15]))
    n_bands = int(rng.integers(2, 7))
    lo, hi = FREQ_RANGE_HZ
    width = float(rng.uniform(2_000.0, min(10_000.0, (hi - lo) / (MIN_SEPARATION_WIDTHS * (n_bands - 1)))))
    centers = _separated(rng, n_bands, lo, hi, MIN_SEPARATION_WIDTHS * width)
    extra = tuple(sorted(rng.choice(EXTRA_CLUSTERS, int(rng.integers(0, 3)), replace=False).tolist()))
    per_cluster = int(rng.integers(4, 9))
    n_tuned = per_cluster * (n_bands + len(extra))
    untuned_fraction = float(rng.uniform(0.0, 0.4))
    base_lo = float(rng.uniform(0.5, 5.0))
    gain_lo = float(rng.uniform(20.0, 40.0))
    gap = float(rng.uniform(0.6, 1.5))
    noise = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    return replace(
        base, probe_seed=int(rng.integers(2**31)), band_centers_hz=tuple(centers), band_width_hz=width,
        extra_clusters=extra, units_per_cluster=per_cluster,
        n_untuned=int(round(untuned_fraction * n_tuned / (1 - untuned_fraction))),
        baseline_hz=(base_lo, float(rng.uniform(base_lo + 1.0, 10.0))), gain_hz=(gain_lo, gain_lo + 40.0),
        syllable_gap_s=tuple(gap * g for g in base.syllable_gap_s),
        bout_gap_s=tuple(gap * g for g in base.bout_gap_s),
        white_noise_rms=noise * base.white_noise_rms, low_noise_rms=noise * base.low_noise_rms)


def _separated(rng: np.random.Generator, n: int, lo: float, hi: float, min_gap: float) -> list[float]:
    """``n`` sorted values in [lo, hi], consecutive ones at least ``min_gap`` apart (uniform over
    such sets: spacings of sorted uniforms on the shortened interval, then the gaps added back)."""
    u = np.sort(rng.uniform(0.0, (hi - lo) - (n - 1) * min_gap, n))
    return [float(lo + x + i * min_gap) for i, x in enumerate(u)]
