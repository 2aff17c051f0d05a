"""Planted multi-day recordings (issue 20): one neuron population, a different sort every day.

A chronic probe records a population of frequency-tuned neurons; each day's spike sorting keeps a
random subset of them (30-60 % of the population, so 30-60 % of a day's units are also in another
day's sort) under new, shuffled unit ids. Every neuron has its own preferred frequency (its band's
centre plus a jitter of up to ``jitter_widths`` tuning widths), so a neuron can be followed across
days by its tuning, not only its band. Sessions are built in memory in the layout of the audio and
neural stages (syllables.nc: ``spectrogram`` (syllable, freq, time) in [0, 1]; counts.nc:
``total_counts`` (syllable, unit) and ``counts`` (syllable, unit, bin)), fast enough for tests and
benchmarks/bench_multisession.py.
The ground truth says which neuron and band every (session, unit id) is.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

FREQ_RANGE_HZ = (35_000.0, 105_000.0)
WINDOW_EXTRA_S = 0.05  # spikes are counted over the syllable and this long after it


def multiday_sessions(seed: int, n_sessions: int = 3, n_bands: int = 4, per_band: int = 12,
                      recorded: tuple[float, float] = (0.3, 0.6), n_syllables: int = 500,
                      n_freq: int = 32, n_time: int = 16, jitter_widths: float = 0.8,
                      ) -> tuple[list[tuple[str, xr.Dataset, xr.Dataset]], dict]:
    """Sessions ``day1..dayN`` of one planted population, drawn from ``seed``.

    n_bands bands of per_band neurons; every day records a fraction drawn from ``recorded`` of them.
    Returns ([(session id, syllables Dataset, counts Dataset)], truth) with truth = {"neurons":
    [{"band", "center_hz", "width_hz"}], "units": {session: {unit id: neuron index}}}.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20]))
    lo, hi = FREQ_RANGE_HZ
    width = 5_000.0
    centers = np.linspace(lo + 8_000.0, hi - 8_000.0, n_bands)
    band = np.repeat(np.arange(n_bands), per_band)
    neurons = [{"band": int(b), "center_hz": float(centers[b] + rng.uniform(-1, 1) * jitter_widths * width),
                "width_hz": width, "baseline_hz": float(rng.uniform(2.0, 8.0)),
                "gain_hz": float(rng.uniform(30.0, 70.0))} for b in band]
    freq_hz = np.linspace(lo - 5_000.0, hi + 5_000.0, n_freq)
    sessions, units = [], {}
    for day in range(n_sessions):
        sid = f"day{day + 1}"
        n_rec = int(round(rng.uniform(*recorded) * len(neurons)))
        who = np.sort(rng.choice(len(neurons), n_rec, replace=False))
        ids = rng.choice(1000, n_rec, replace=False)  # the day's sorter numbers units its own way
        order = np.argsort(ids)
        ids, who = ids[order], who[order]
        units[sid] = {int(i): int(n) for i, n in zip(ids, who)}
        sessions.append((sid, *_day(rng, sid, [neurons[n] for n in who], ids, freq_hz, n_syllables, n_time)))
    return sessions, {"neurons": neurons, "units": units}


def planted_rate_hz(neurons: list[dict], mean_freq_hz: np.ndarray) -> np.ndarray:
    """Firing rates (N syllables, U neurons) in Hz: each neuron's baseline plus its gain times a
    Gaussian tuning curve of the syllable's mean frequency."""
    get = {k: np.array([n[k] for n in neurons])[None] for k in ("baseline_hz", "gain_hz", "center_hz", "width_hz")}
    return get["baseline_hz"] + get["gain_hz"] * np.exp(
        -0.5 * ((np.asarray(mean_freq_hz)[:, None] - get["center_hz"]) / get["width_hz"]) ** 2)


def _day(rng, sid, neurons, ids, freq_hz, n_syllables, n_time):
    """One day's syllables.nc and counts.nc: syllables with a random mean frequency and duration,
    a spectral ridge at that frequency (with a small FM sweep) over noise, and Poisson counts over
    the syllable + 50 ms."""
    mean_freq = rng.uniform(*FREQ_RANGE_HZ, n_syllables)
    duration = rng.uniform(0.02, 0.1, n_syllables)
    sweep = rng.uniform(-4_000.0, 4_000.0, n_syllables)
    t = np.linspace(-0.5, 0.5, n_time)
    ridge = mean_freq[:, None] + sweep[:, None] * t[None]  # (N, T)
    spec = np.exp(-0.5 * ((freq_hz[None, :, None] - ridge[:, None, :]) / 3_000.0) ** 2)
    spec = np.clip(0.8 * spec + rng.normal(0.0, 0.05, spec.shape) + 0.1, 0.0, 1.0).astype(np.float32)
    gaps = rng.uniform(0.1, 0.5, n_syllables)
    onset = np.cumsum(gaps + duration) - duration
    syl = xr.Dataset({"spectrogram": (("syllable", "freq", "time"), spec)},
                     coords={"syllable": np.arange(n_syllables), "freq_hz": ("freq", freq_hz),
                             "onset_s": ("syllable", onset), "offset_s": ("syllable", onset + duration),
                             # the planted features, standing in for the audio stage's measurements
                             "duration_s": ("syllable", duration), "mean_freq_hz": ("syllable", mean_freq),
                             "peak_freq_hz": ("syllable", mean_freq), "bandwidth_hz": ("syllable", np.abs(sweep)),
                             "fm_slope_hz_per_s": ("syllable", sweep / duration)})
    counts = rng.poisson(planted_rate_hz(neurons, mean_freq) * (duration + WINDOW_EXTRA_S)[:, None]).astype(np.int32)
    # binned: each syllable's spikes spread evenly over 4 bins of 50 ms from onset (no time course)
    split = rng.spawn(1)[0]  # its own stream: the draws of later days do not depend on it
    binned = np.stack([split.multinomial(c, [0.25] * 4) for c in counts.ravel()]).reshape(*counts.shape, 4)
    cnt = xr.Dataset({"total_counts": (("syllable", "unit"), counts),
                      "counts": (("syllable", "unit", "bin"), binned.astype(np.int32))},
                     coords={"syllable": np.arange(n_syllables), "unit": ids.astype(np.int64),
                             "bin_start_s": ("bin", np.arange(4) * 0.05), "bin_end_s": ("bin", np.arange(1, 5) * 0.05),
                             "onset_s": ("syllable", onset), "offset_s": ("syllable", onset + duration)})
    return syl, cnt
