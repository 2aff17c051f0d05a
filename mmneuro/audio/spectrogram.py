"""Fixed-shape syllable spectrograms (AVA-style images), log power relative to the noise floor.

Each image has ``n_freq`` rows over the band (linear or mel spacing) and ``n_time`` columns. Without
time stretch the columns span a ``max_dur_s`` window centred on the syllable; with it (Goffinet et
al. 2021) the window is sqrt(duration * max_dur_s) wide, i.e. a syllable of duration d is drawn as
if it lasted sqrt(d * max_dur_s) inside a max_dur_s display window, which spreads short calls out.
Each column is the STFT frame centred on its own time (no 2-D interpolation; scipy's interp2d is
gone), and each row is the mean power over its band of FFT bins (or the dB level interpolated
between the two nearest bins): a matrix product, for all of a batch's images at once.
"""

from __future__ import annotations

import numpy as np

from mmneuro.audio.stft import FrameGrid, power_db


# librosa.hz_to_mel / mel_to_hz (htk=True) give the same values bit for bit (test_audio_spectrogram), but
# `import librosa` is lazy: its first conversion loads librosa.core and numba, 0.3 s per process that
# the audio stage otherwise never spends (stft.py avoids librosa for the same reason).
def hz_to_mel(f_hz):
    """HTK mel scale of f_hz (Hz, any shape): 2595 log10(1 + f / 700) (O'Shaughnessy 1987), float64."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of :func:`hz_to_mel`: frequency (Hz, float64) of mel values (any shape)."""
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


def row_interpolation(grid: FrameGrid, params: dict) -> np.ndarray:
    """Weights (band bins, n_freq) float32 of linear interpolation between the two bins nearest each
    image row's centre."""
    n_band = len(grid.freq_hz)
    position = np.interp(image_freq_hz(params), grid.freq_hz, np.arange(n_band))  # fractional bin
    lower = np.clip(np.floor(position).astype(np.int64), 0, max(n_band - 2, 0))
    upper = np.minimum(lower + 1, n_band - 1)
    weight = np.clip(position - lower, 0.0, 1.0)
    weights = np.zeros((n_band, len(position)), np.float32)
    rows = np.arange(len(position))
    np.add.at(weights, (lower, rows), 1.0 - weight)
    np.add.at(weights, (upper, rows), weight)
    return weights


def row_bands(grid: FrameGrid, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) of each image row's band in fractional FFT-bin units, bin k covering
    [k - 0.5, k + 0.5): the rows' bands meet halfway between row centres and tile the band."""
    n_band = len(grid.freq_hz)
    centre = np.interp(image_freq_hz(params), grid.freq_hz, np.arange(n_band))
    edges = np.concatenate([[-0.5], 0.5 * (centre[1:] + centre[:-1]), [n_band - 0.5]])
    return edges[:-1], edges[1:]


def band_mean_weights(bands: tuple[np.ndarray, np.ndarray], n_band: int) -> np.ndarray:
    """Weights (n_band, rows) float32 that average power over each row's band [start, stop) (fractional
    bins, bin k covering [k - 0.5, k + 0.5)): a bin's weight is its overlap with the band over the
    band's width, so a tone anywhere in a row's band adds its whole power to that row: point sampling of
    rows coarser than the FFT's mainlobe (1.3 kHz rows vs a 1 kHz-wide Hann mainlobe at 64 rows) drops
    a sweep whenever it passes between two rows."""
    start, stop = bands
    lo = np.arange(n_band)[:, None] - 0.5
    overlap = np.clip(np.minimum(lo + 1.0, stop) - np.maximum(lo, start), 0.0, None)
    return (overlap / (stop - start)).astype(np.float32)


def image_rows(grid: FrameGrid, params: dict) -> tuple[str, np.ndarray]:
    """What :func:`images_from_power` needs to make the rows (params["image_rows"]): ``("band",
    weights)``, the mean power over each row's band, or ``("interp", weights)``, dB levels linearly
    interpolated between the two nearest bins; weights (band bins, n_freq)."""
    if params["image_rows"] == "band":
        return "band", band_mean_weights(row_bands(grid, params), len(grid.freq_hz))
    return "interp", row_interpolation(grid, params)


def image_centres(onset_s: float, offset_s: float, grid: FrameGrid, params: dict) -> np.ndarray:
    """Absolute sample index (int64) at the centre of each image column's STFT frame."""
    return np.round(column_times_s(onset_s, offset_s, params) * grid.sample_rate_hz).astype(np.int64)


def images_from_power(power: np.ndarray, rows: tuple[str, np.ndarray], params: dict) -> np.ndarray:
    """Images (n, n_freq, n_time) float32 in [0, 1] from their columns' power relative to the noise
    floor (n, n_time, band bins; linear, float32; `interp` overwrites it): rows made as :func:`image_rows` says,
    in dB, clipped to spec_lo/hi_db. One matrix product for all the images' columns."""
    kind, weights = rows
    if kind == "band":
        level = power_db(power @ weights)
    else:
        level = power_db(power) @ weights
    lo, hi = params["spec_lo_db"], params["spec_hi_db"]
    level -= np.float32(lo)
    level *= np.float32(1.0 / (hi - lo))
    return np.clip(level, 0.0, 1.0, out=level).transpose(0, 2, 1)


def image_from_levels(level_db: np.ndarray, rows: tuple[str, np.ndarray], params: dict) -> np.ndarray:
    """One image (n_freq, n_time) from its columns' levels (n_time, band bins; dB above the noise floor)."""
    power = np.power(np.float32(10.0), np.asarray(level_db, np.float32) / np.float32(10.0))
    return images_from_power(power[None], rows, params)[0]
