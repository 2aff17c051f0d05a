"""Acoustic features of one syllable from its STFT frames: the dominant-frequency trace.

The dominant frequency of a frame is the band bin with the most power above the noise floor,
refined by parabolic interpolation of the dB spectrum around it (the usual quadratic peak
estimate, e.g. Smith, Spectral Audio Signal Processing, "Quadratic Interpolation of Spectral
Peaks"). Frames whose peak could be the largest of the band's noise bins are treated as silent.
"""

from __future__ import annotations

import numpy as np

from mmneuro.audio.stft import FrameGrid

FEATURES = ("mean_freq_hz", "peak_freq_hz", "bandwidth_hz", "fm_slope_hz_per_s", "amplitude_db")


def noise_peak_db(n_bins: int, false_rate: float = 0.01) -> float:
    """Level (dB above the median floor) that the loudest of ``n_bins`` noise bins exceeds with
    probability ``false_rate``.

    Noise power in a bin is exponential, so P(power > c * median) = 2**-c; over n bins the chance
    that any exceeds it is about n * 2**-c, which equals ``false_rate`` at c = log2(n / false_rate).
    """
    return float(10.0 * np.log10(np.log2(max(n_bins, 1) / false_rate)))


def dominant_frequency(level_db: np.ndarray, freq_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of ``level_db`` (frames, band; dB above floor): (frequency Hz, peak level dB)."""
    k = np.argmax(level_db, axis=1)
    rows = np.arange(len(k))
    peak = level_db[rows, k]
    inner = (k > 0) & (k < level_db.shape[1] - 1)
    left = level_db[rows, np.clip(k - 1, 0, None)]
    right = level_db[rows, np.clip(k + 1, None, level_db.shape[1] - 1)]
    curvature = left - 2 * peak + right
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(inner & (curvature < 0), 0.5 * (left - right) / curvature, 0.0)
    step = freq_hz[1] - freq_hz[0] if len(freq_hz) > 1 else 0.0
    return freq_hz[k] + delta * step, peak


def feature_centres(onset_s: float, offset_s: float, grid: FrameGrid) -> np.ndarray:
    """Absolute sample index (int64) at the centre of each feature frame: every hop from onset to offset."""
    sr = grid.sample_rate_hz
    return np.arange(round(onset_s * sr), round(offset_s * sr) + 1, grid.hop, dtype=np.int64)


def features_from_levels(level_db: np.ndarray, centres: np.ndarray, grid: FrameGrid) -> dict[str, float]:
    """Features (see FEATURES) of one syllable from its frames' levels (frames, band bins; dB above the
    noise floor) centred on samples ``centres`` (:func:`feature_centres`).

    mean: average dominant frequency over voiced frames; peak: dominant frequency at the loudest
    frame; bandwidth: range of the dominant frequency; fm slope: least-squares slope of it over
    time; amplitude: loudest level in dB above the noise floor.
    """
    freq, peak = dominant_frequency(level_db, grid.freq_hz)
    voiced = peak >= noise_peak_db(len(grid.freq_hz))
    if not voiced.any():
        voiced[:] = True
    f, t = freq[voiced], centres[voiced] / grid.sample_rate_hz
    # Least-squares slope in closed form, cov(t, f) / var(t) (no LAPACK call per syllable).
    dt = t - t.mean()
    slope = float(np.dot(dt, f - f.mean()) / np.dot(dt, dt)) if len(f) >= 2 else 0.0
    loudest = int(np.argmax(peak))
    return {
        "mean_freq_hz": float(f.mean()),
        "peak_freq_hz": float(freq[loudest]),
        "bandwidth_hz": float(f.max() - f.min()),
        "fm_slope_hz_per_s": slope,
        "amplitude_db": float(peak[loudest]),
    }
