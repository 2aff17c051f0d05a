"""Planted recordings with close neighbours, and scores of a segmentation against them.

Checks the segmenter where it is hardest: syllables in clusters separated by 2-20 ms gaps, soft
(raised-cosine) onsets, FM sweeps and frequency jumps, over white noise, low-frequency noise and a
mains hum. Waveforms come from :func:`mmneuro.synth.syllables.syllable_waveform` (the demo's
generator); the timing, contours and noise are drawn here. Used by tests/test_audio_boundaries.py
and benchmarks/bench_audio.py.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mmneuro.synth import SynthConfig
from mmneuro.synth.syllables import syllable_waveform

ON_OWN_TOL_S = 0.010  # a planted syllable is found on its own if both boundaries are within this
ISOLATED_GAP_S = 0.005  # gaps >= this to both neighbours must be split
GAP_BINS_S = (0.002, 0.003, 0.004, 0.005, 0.007, 0.010, 0.020)


@dataclass(frozen=True)
class Family:
    """One kind of planted recording. Times in s, frequencies in Hz, levels as fractions of full scale."""

    name: str = "default"
    sample_rate_hz: int = 250_000
    duration_s: tuple[float, float] = (0.01, 0.2)
    close_gap_s: tuple[float, float] = (0.002, 0.020)  # inside a cluster (uniform)
    far_gap_s: tuple[float, float] = (0.05, 0.3)  # between clusters
    cluster_size: tuple[int, int] = (1, 4)
    freq_hz: tuple[float, float] = (38_000.0, 98_000.0)  # every contour stays inside
    sweep_hz: tuple[float, float] = (0.0, 40_000.0)  # |end - start|
    jump_probability: float = 0.25
    amplitude: tuple[float, float] = (0.03, 0.3)  # peak, log-uniform
    ramp_s: tuple[float, float] = (0.0005, 0.008)  # raised-cosine attack/decay, uniform
    white_rms: float = 0.01
    low_rms: float = 0.03  # white noise low-passed at 8 kHz
    hum_rms: float = 0.0  # 900 Hz hum plus its 2nd-5th harmonics
    poisson_gap_s: float = 0.0  # if > 0: every gap exponential with this mean (no clusters)


FAMILIES = (
    Family("default"),
    Family("quiet", amplitude=(0.02, 0.06)),
    Family("noisy+hum", white_rms=0.02, hum_rms=0.1),
    Family("300kHz", sample_rate_hz=300_000),
    Family("short", duration_s=(0.01, 0.03), ramp_s=(0.0005, 0.003)),
    Family("soft", ramp_s=(0.005, 0.010), duration_s=(0.04, 0.2)),
    Family("jumps", jump_probability=1.0, sweep_hz=(10_000.0, 40_000.0), sample_rate_hz=300_000),
    Family("poisson", poisson_gap_s=0.08, hum_rms=0.05),
)


def plant(family: Family, seed: int, total_s: float) -> pd.DataFrame:
    """Draw the syllables of a ``total_s`` s recording: one row per syllable, onset order."""
    rng = np.random.default_rng([seed, zlib.crc32(family.name.encode())])
    rows, t = [], 0.1
    while True:
        for _ in range(rng.integers(family.cluster_size[0], family.cluster_size[1] + 1)):
            dur = rng.uniform(*family.duration_s)
            if t + dur > total_s - 0.1:
                return pd.DataFrame(rows)
            rows.append({"onset_s": t, "offset_s": t + dur, **_contour(rng, family),
                         "ramp_s": rng.uniform(*family.ramp_s)})
            t += dur + (rng.exponential(family.poisson_gap_s) if family.poisson_gap_s > 0
                        else rng.uniform(*family.close_gap_s))
        if family.poisson_gap_s == 0:
            t += rng.uniform(*family.far_gap_s)


def _contour(rng: np.random.Generator, family: Family) -> dict:
    lo, hi = family.freq_hz
    jump = bool(rng.random() < family.jump_probability)
    bw = min(rng.uniform(*family.sweep_hz), hi - lo)
    start = rng.uniform(lo, hi - bw)
    end = start + bw
    if rng.random() < 0.5:
        start, end = end, start
    return {"shape": "jump" if jump else "up", "start_freq_hz": start, "end_freq_hz": end,
            "jump_fraction": rng.uniform(0.3, 0.7), "harmonic": False,
            "amplitude": float(np.exp(rng.uniform(*np.log(family.amplitude)))),
            "phase_rad": rng.uniform(0, 2 * np.pi)}


def write_planted(path: str | Path, family: Family, seed: int = 0, total_s: float = 30.0) -> pd.DataFrame:
    """Write a mono 16-bit WAV of ``family`` to ``path``; returns the planted syllables (:func:`plant`)."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    truth = plant(family, seed, total_s)
    fs = family.sample_rate_hz
    rng = np.random.default_rng([seed, zlib.crc32(family.name.encode()), 1])
    n = int(total_s * fs)
    x = family.white_rms * rng.standard_normal(n)
    low = sosfilt(butter(4, 8_000, fs=fs, output="sos"), rng.standard_normal(n))
    x += family.low_rms / low.std() * low
    t = np.arange(n) / fs
    for k in range(1, 6):  # a hum's harmonics fall off as 1/k
        x += family.hum_rms * np.sqrt(2) / k * np.sin(2 * np.pi * 900 * k * t + k)
    base = SynthConfig(audio_rate_hz=fs)
    for syllable in truth.to_dict("records"):
        first, wave = syllable_waveform(syllable, fs, replace(base, ramp_s=syllable["ramp_s"]))
        x[first:first + len(wave)] += wave
    sf.write(str(path), np.round(np.clip(x, -1, 1) * 32767).astype(np.int16), fs, subtype="PCM_16")
    return truth


def score(found: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Scores of ``found`` syllables (onset_s, offset_s) against planted ``truth``.

    Matching is one-to-one, greedy in planted order, onsets within ON_OWN_TOL_S (as the demo's F1).
    Returns precision, recall, f1, the matched onset/offset errors (found - planted, s), and per
    planted syllable whether it was found on its own (both boundaries within ON_OWN_TOL_S) with its
    gaps to the previous and next planted syllable, and per planted gap whether it was split.
    """
    on, off = found["onset_s"].to_numpy(), found["offset_s"].to_numpy()
    t_on, t_off = truth["onset_s"].to_numpy(), truth["offset_s"].to_numpy()
    used = np.zeros(len(on), bool)
    match = np.full(len(t_on), -1)
    for k in range(len(t_on)):
        if len(on) == 0:
            break
        err = np.where(used, np.inf, np.abs(on - t_on[k]))
        j = int(err.argmin())
        if err[j] <= ON_OWN_TOL_S:
            used[j], match[k] = True, j
    hit = match >= 0
    precision = hit.sum() / max(len(on), 1)
    recall = hit.sum() / max(len(t_on), 1)
    f1 = 2 * precision * recall / (precision + recall) if hit.any() else 0.0
    onset_err = on[match[hit]] - t_on[hit]
    offset_err = off[match[hit]] - t_off[hit]
    own = hit.copy()
    own[hit] &= np.abs(offset_err) <= ON_OWN_TOL_S
    gaps = t_on[1:] - t_off[:-1]
    middle = (t_on[1:] + t_off[:-1]) / 2
    first_after = np.searchsorted(on, middle)  # found syllables starting before each gap's middle...
    spans = (first_after > 0) & (np.r_[off, 0.0][first_after - 1] > middle)  # ...and ending after it
    last = np.searchsorted(on, t_off) - 1  # a found syllable overlaps planted k: the last one
    detected = (last >= 0) & (np.r_[off, 0.0][last] > t_on)  # starting before k ends, ends after k starts
    return {"gap_split": detected[:-1] & detected[1:] & ~spans,
            "precision": float(precision), "recall": float(recall), "f1": float(f1),
            "onset_err_s": onset_err, "offset_err_s": offset_err, "on_own": own,
            "gap_before_s": np.r_[np.inf, gaps], "gap_after_s": np.r_[gaps, np.inf]}


def split_rate_by_gap(scores: list[dict], outer_gap_s: float = ISOLATED_GAP_S) -> pd.DataFrame:
    """Fraction of planted neighbour pairs split (each overlapped by a found syllable, none spanning the
    middle of their gap), by gap (bins GAP_BINS_S), over the pairs whose gaps to their other
    neighbours are >= ``outer_gap_s`` (so a merge with a third syllable does not count here)."""
    gaps, split, outer = [], [], []
    for s in scores:
        gaps.append(s["gap_after_s"][:-1])
        split.append(s["gap_split"])
        outer.append((s["gap_before_s"][:-1] >= outer_gap_s) & (s["gap_after_s"][1:] >= outer_gap_s))
    keep = np.concatenate(outer)
    bins = pd.cut(np.concatenate(gaps)[keep] * 1e3, np.array(GAP_BINS_S) * 1e3, right=False)
    return (pd.DataFrame({"gap_ms": bins, "split": np.concatenate(split)[keep]})
            .groupby("gap_ms", observed=False)["split"]
            .agg(["size", "mean"]).rename(columns={"size": "pairs", "mean": "split_rate"}))


def summary(scores: list[dict]) -> dict:
    """Medians and worst cases over a list of :func:`score` results."""
    on = np.concatenate([s["onset_err_s"] for s in scores])
    off = np.concatenate([s["offset_err_s"] for s in scores])
    isolated = np.concatenate([(s["gap_before_s"] >= ISOLATED_GAP_S) & (s["gap_after_s"] >= ISOLATED_GAP_S)
                               for s in scores])
    own = np.concatenate([s["on_own"] for s in scores])
    return {"f1_min": min(s["f1"] for s in scores), "f1_median": float(np.median([s["f1"] for s in scores])),
            "onset_abs_median_ms": float(np.median(np.abs(on)) * 1e3),
            "onset_median_ms": float(np.median(on) * 1e3),
            "offset_abs_median_ms": float(np.median(np.abs(off)) * 1e3),
            "offset_median_ms": float(np.median(off) * 1e3),
            "onset_abs_p95_ms": float(np.quantile(np.abs(on), 0.95) * 1e3),
            "offset_abs_p95_ms": float(np.quantile(np.abs(off), 0.95) * 1e3),
            "isolated_on_own": float(own[isolated].mean()), "n_isolated": int(isolated.sum()),
            "n_planted": int(len(own))}
