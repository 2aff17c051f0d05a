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


def row_bands(grid: FrameGrid, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) of each image row's band in fractional FFT-bin units, bin k covering
    [k - 0.5, k + 0.5): the rows' bands meet halfway between row centres and tile the band."""
    n_band = len(grid.freq_hz)
    centre = np.interp(image_freq_hz(params), grid.freq_hz, np.arange(n_band))
    edges = np.concatenate([[-0.5], 0.5 * (centre[1:] + centre[:-1]), [n_band - 0.5]])
    return edges[:-1], edges[1:]


def image_rows(grid: FrameGrid, params: dict) -> tuple:
    """What :func:`image_from_levels` needs to make the rows: ``("interp", row_interpolation)`` or
    ``("band", row_bands)`` (params["image_rows"])."""
    if params["image_rows"] == "band":
        return "band", row_bands(grid, params)
    return "interp", row_interpolation(grid, params)


def band_mean_db(level_db: np.ndarray, bands: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Mean power (dB) over each row's band of the columns' levels (n_time, n_bins) -> (n_freq, n_time).

    The integral of the piecewise-constant power over [start, stop) is read off its cumulative sum
    (linear between bin edges), so a tone anywhere in a row's band adds its whole power to that row:
    point sampling of rows coarser than the FFT's mainlobe (1.3 kHz rows vs a 1 kHz-wide Hann
    mainlobe at 64 rows) drops a sweep whenever it passes between two rows.
    """
    start, stop = bands
    power = np.power(np.float32(10.0), level_db / np.float32(10.0))
    cum = np.concatenate([np.zeros((len(power), 1), np.float32), np.cumsum(power, axis=1)], axis=1)

    def integral(x):  # power integrated from -0.5 to x (fractional bins)
        u = np.clip(x + 0.5, 0.0, cum.shape[1] - 1)
        k = np.minimum(np.floor(u).astype(np.int64), cum.shape[1] - 2)
        w = (u - k).astype(np.float32)
        return cum[:, k] * (1 - w) + cum[:, k + 1] * w

    mean = (integral(stop) - integral(start)) / (stop - start).astype(np.float32)
    return (np.float32(10.0) * np.log10(np.maximum(mean, np.float32(1e-20)))).T


def image_centres(onset_s: float, offset_s: float, grid: FrameGrid, params: dict) -> np.ndarray:
    """Absolute sample index (int64) at the centre of each image column's STFT frame."""
    return np.round(column_times_s(onset_s, offset_s, params) * grid.sample_rate_hz).astype(np.int64)


def image_from_levels(level_db: np.ndarray, rows: tuple, params: dict) -> np.ndarray:
    """Image (n_freq, n_time) float32 in [0, 1] from the columns' levels (n_time, band bins; dB above
    the noise floor): rows made as :func:`image_rows` says, clipped to spec_lo/hi_db."""
    kind, how = rows
    if kind == "band":
        image = band_mean_db(level_db, how)
    else:
        lower, upper, weight = how
        image = (level_db[:, lower] * (1 - weight) + level_db[:, upper] * weight).T
    lo, hi = params["spec_lo_db"], params["spec_hi_db"]
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
