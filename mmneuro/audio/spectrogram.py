"""Fixed-shape syllable spectrograms (AVA-style images), log power relative to the noise floor.

Each image has ``n_freq`` rows over the band (linear or mel spacing) and ``n_time`` columns. Without
time stretch the columns span a ``max_dur_s`` window centred on the syllable; with it (Goffinet et
al. 2021) the window is sqrt(duration * max_dur_s) wide, i.e. a syllable of duration d is drawn as
if it lasted sqrt(d * max_dur_s) inside a max_dur_s display window, which spreads short calls out.
Each column is the STFT frame centred on its own time (no 2-D interpolation; scipy's interp2d is
gone), and rows are linearly interpolated from the FFT bins.
"""

from __future__ import annotations

import numpy as np

from mmneuro.audio.stft import FrameGrid


def hz_to_mel(f_hz):
    """HTK mel scale: 2595 log10(1 + f / 700) (O'Shaughnessy 1987)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def image_freq_hz(params: dict) -> np.ndarray:
    """Centre frequency (Hz) of each image row, low to high."""
    lo, hi, n = params["min_freq_hz"], params["max_freq_hz"], params["n_freq"]
    if params["freq_scale"] == "mel":
        return mel_to_hz(np.linspace(hz_to_mel(lo), hz_to_mel(hi), n))
    return np.linspace(lo, hi, n)


def image_time_s(params: dict) -> np.ndarray:
    """Display time (s) of each column from the window start; real seconds unless time-stretched."""
    return np.linspace(0.0, params["max_dur_s"], params["n_time"])


def column_times_s(onset_s: float, offset_s: float, params: dict) -> np.ndarray:
    """Absolute times (s, audio clock) of the image columns of one syllable."""
    duration = offset_s - onset_s
    width = np.sqrt(duration * params["max_dur_s"]) if params["time_stretch"] else params["max_dur_s"]
    start = 0.5 * (onset_s + offset_s) - 0.5 * width
    return start + image_time_s(params) * (width / params["max_dur_s"])


def row_interpolation(grid: FrameGrid, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower bin, upper bin, weight of the upper bin) for each image row: linear interpolation.

    Applied by gathering two bins per row rather than a dense matrix product, which avoids
    BLAS thread start-up on every syllable (10 ms per image on a busy 2-core machine).
    """
    n_band = len(grid.freq_hz)
    position = np.interp(image_freq_hz(params), grid.freq_hz, np.arange(n_band))  # fractional bin
    lower = np.clip(np.floor(position).astype(np.int64), 0, max(n_band - 2, 0))
    upper = np.minimum(lower + 1, n_band - 1)
    return lower, upper, np.clip(position - lower, 0.0, 1.0).astype(np.float32)


def image_centres(onset_s: float, offset_s: float, grid: FrameGrid, params: dict) -> np.ndarray:
    """Absolute sample index (int64) at the centre of each image column's STFT frame."""
    return np.round(column_times_s(onset_s, offset_s, params) * grid.sample_rate_hz).astype(np.int64)


def image_from_levels(level_db: np.ndarray, rows: tuple, params: dict) -> np.ndarray:
    """Image (n_freq, n_time) float32 in [0, 1] from the columns' levels (n_time, band bins; dB above
    the noise floor): rows interpolated with :func:`row_interpolation`, clipped to spec_lo/hi_db."""
    lower, upper, weight = rows
    image = (level_db[:, lower] * (1 - weight) + level_db[:, upper] * weight).T
    lo, hi = params["spec_lo_db"], params["spec_hi_db"]
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
