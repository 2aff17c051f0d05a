"""Syllable images and features against planted tones and chirps, and on the real recordings."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mmneuro.audio import resolve_params, syllable_dataset
from mmneuro.audio.spectrogram import column_times_s, hz_to_mel, image_freq_hz, mel_to_hz

SR = 250_000
EXAMPLES = files("vocalpy") / "examples"


def write_calls(path, calls, duration_s=1.0, sr=SR, noise=0.003, seed=0):
    """WAV of linear chirps ``(onset_s, offset_s, f_start_hz, f_end_hz, amplitude)`` over white noise."""
    t = np.arange(int(duration_s * sr)) / sr
    x = np.random.default_rng(seed).normal(0, noise, len(t))
    for on, off, f0, f1, amp in calls:
        inside = (t >= on) & (t < off)
        u = t[inside] - on
        x[inside] += amp * np.sin(2 * np.pi * (f0 * u + 0.5 * (f1 - f0) / (off - on) * u**2))
    sf.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    return path


def test_features_of_planted_chirps(tmp_path):
    calls = [(0.1, 0.2, 50_000.0, 50_000.0, 0.05),   # flat tone
             (0.4, 0.5, 60_000.0, 80_000.0, 0.05),   # up-sweep, 200 kHz/s
             (0.6, 0.66, 90_000.0, 75_000.0, 0.1),   # down-sweep, -250 kHz/s
             (0.8, 0.9, 50_000.0, 50_000.0, 0.1)]    # the flat tone, twice as loud
    path = write_calls(tmp_path / "calls.wav", calls)
    ds = syllable_dataset(path, "t", annotations=pd.DataFrame({"onset_s": [c[0] for c in calls],
                                                               "offset_s": [c[1] for c in calls]}))
    means = [(c[2] + c[3]) / 2 for c in calls]
    slopes = [(c[3] - c[2]) / (c[1] - c[0]) for c in calls]
    np.testing.assert_allclose(ds.mean_freq_hz, means, atol=300)
    np.testing.assert_allclose(ds.fm_slope_hz_per_s, slopes, atol=0.03 * 250_000)
    np.testing.assert_allclose(ds.bandwidth_hz, [0, 20_000, 15_000, 0], atol=1_000)
    # Amplitude x2 -> +20 log10(2) = 6.02 dB (both far above the noise).
    assert ds.amplitude_db.values[3] - ds.amplitude_db.values[0] == pytest.approx(6.02, abs=0.3)


@pytest.mark.parametrize("stretch", [False, True])
def test_image_rows_and_columns_of_a_planted_tone(tmp_path, stretch):
    path = write_calls(tmp_path / "tone.wav", [(0.3, 0.34, 70_000.0, 70_000.0, 0.05)])
    params = resolve_params("mouse", {"time_stretch": stretch})
    ds = syllable_dataset(path, "t", params, annotations=pd.DataFrame({"onset_s": [0.3], "offset_s": [0.34]}))
    image = ds.spectrogram.values[0]
    row = int(image.max(axis=1).argmax())
    row_step = float(ds.freq_hz[1] - ds.freq_hz[0])
    assert abs(float(ds.freq_hz[row]) - 70_000) <= row_step
    # The tone fills the fraction of columns its duration takes of the window:
    # d / max_dur without stretch, sqrt(d / max_dur) with it (window sqrt(d * max_dur) wide).
    fraction = np.sqrt(0.04 / 0.3) if stretch else 0.04 / 0.3
    lit = (image[row] > 0.5).sum()
    assert abs(lit - fraction * 128) <= 4
    columns = column_times_s(0.3, 0.34, params)
    assert columns.mean() == pytest.approx(0.32) and len(columns) == 128


def test_mel_scale_round_trip_and_reference_point():
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # the mel scale's anchor
    f = np.array([30_000.0, 55_000.0, 110_000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f)
    rows = image_freq_hz(resolve_params(None, {"freq_scale": "mel"}))
    assert rows[0] == pytest.approx(30_000) and rows[-1] == pytest.approx(110_000)
    assert np.all(np.diff(rows) > 0) and np.diff(rows)[-1] > np.diff(rows)[0]  # mel: wider at the top


@pytest.mark.parametrize("preset", ["mouse", "pup"])
def test_mel_scale_equals_librosas_htk_scale(preset):
    """The hand-written pair is kept for start-up time (spectrogram.py); it must stay librosa's."""
    librosa = pytest.importorskip("librosa")
    f = np.linspace(0.0, 200_000.0, 20_001)
    np.testing.assert_array_equal(hz_to_mel(f), librosa.hz_to_mel(f, htk=True))
    np.testing.assert_array_equal(mel_to_hz(hz_to_mel(f)), librosa.mel_to_hz(librosa.hz_to_mel(f, htk=True), htk=True))
    p = resolve_params(preset, {"freq_scale": "mel"})
    edges = librosa.hz_to_mel([p["min_freq_hz"], p["max_freq_hz"]], htk=True)
    np.testing.assert_array_equal(image_freq_hz(p), librosa.mel_to_hz(np.linspace(*edges, p["n_freq"]), htk=True))


@pytest.mark.parametrize("name, n_calls", [("deermouse-go.wav", 6), ("BM003.wav", 3)])
def test_real_recordings_give_finite_in_range_images(name, n_calls):
    ds = syllable_dataset(str(EXAMPLES / name), "real")
    images = ds.spectrogram.values
    assert images.shape == (n_calls, 128, 128) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    # Non-empty: every image has a call ≥ 20 dB above the noise floor against a mostly dark background.
    p = json.loads(ds.attrs["params"])
    level_db = p["spec_lo_db"] + (p["spec_hi_db"] - p["spec_lo_db"]) * images
    assert (level_db.max(axis=(1, 2)) > 20).all()
    assert (np.median(level_db, axis=(1, 2)) < 8).all()
    assert ((ds.mean_freq_hz > 30_000) & (ds.mean_freq_hz < 110_000)).all()


def test_spectrograms_agree_across_sampling_rates(tmp_path):
    x, sr = sf.read(str(EXAMPLES / "deermouse-go.wav"), dtype="float64")
    sf.write(tmp_path / "up.wav", resample_poly(x, 6, 5).astype(np.float32), sr * 6 // 5, subtype="FLOAT")
    annotations = pd.DataFrame({"onset_s": [0.3, 0.51], "offset_s": [0.41, 0.62]})
    a = syllable_dataset(str(EXAMPLES / "deermouse-go.wav"), "a", annotations=annotations)
    b = syllable_dataset(tmp_path / "up.wav", "b", annotations=annotations)
    diff = np.abs(a.spectrogram.values - b.spectrogram.values)
    assert diff.mean() < 0.03, diff.mean()
    # The deer mouse fundamental sits at the band edge (~31 kHz), where frames switch to a harmonic.
    np.testing.assert_allclose(a.mean_freq_hz, b.mean_freq_hz, atol=1000)


def test_band_rows_keep_a_sweeps_level_where_interpolated_rows_lose_it(tmp_path):
    # A 50 -> 70 kHz sweep on 64 rows (1.27 kHz apart; the Hann mainlobe is ~1 kHz wide): point
    # sampled rows see it only while it passes near a row centre, band rows see all its power.
    path = write_calls(tmp_path / "sweep.wav", [(0.3, 0.5, 50_000.0, 70_000.0, 0.05),
                                                (0.6, 0.8, 50_000.0, 70_000.0, 0.1)])
    annotations = pd.DataFrame({"onset_s": [0.3, 0.6], "offset_s": [0.5, 0.8]})
    level = {}
    for rows in ("interp", "band"):
        params = resolve_params("mouse", {"n_freq": 64, "n_time": 64, "image_rows": rows, "spec_lo_db": 0.0,
                                          "spec_hi_db": 60.0, "time_stretch": False})
        images = syllable_dataset(path, "t", params, annotations=annotations).spectrogram.values * 60.0
        level[rows] = images[:, :, 26:38].max(axis=1)  # contour level (dB) in the syllable's columns
    assert np.ptp(level["interp"][0]) > 15 and np.ptp(level["band"][0]) < 4
    # Twice the amplitude is +6.02 dB in every column: the image keeps the call's level.
    np.testing.assert_allclose(level["band"][1] - level["band"][0], 6.02, atol=0.3)


def test_band_mean_of_flat_and_single_bin_power():
    from mmneuro.audio.spectrogram import band_mean_weights

    weights = band_mean_weights((np.array([-0.5, 1.5]), np.array([1.5, 5.5])), 6)  # rows of 2 and 4 bins over 6
    np.testing.assert_allclose(np.full((3, 6), 7.0, np.float32) @ weights, 7.0, rtol=1e-6)
    power = np.zeros((1, 6), np.float32)
    power[0, 3] = 100.0  # in one bin of the 4-bin row: mean 25
    np.testing.assert_allclose((power @ weights)[0], [0.0, 25.0], rtol=1e-6)
    # a row's band edge inside a bin takes that bin's overlapping fraction
    np.testing.assert_allclose(band_mean_weights((np.array([0.0]), np.array([1.0])), 3)[:, 0], [0.5, 0.5, 0.0])

def test_band_rows_beside_a_loud_bin_keep_their_level():
    # One bin 60 dB above the rest: every other row's mean stays 0 dB (a float32 cumulative sum along
    # the bins lost up to 16 dB in such rows of the deer mouse recording; now 1e-4 of the float64 image).
    from mmneuro.audio.spectrogram import band_mean_weights, images_from_power

    n_bins, n_rows = 328, 128
    edges = np.linspace(-0.5, n_bins - 0.5, n_rows + 1)
    weights = band_mean_weights((edges[:-1], edges[1:]), n_bins)
    power = np.ones((1, 4, n_bins), np.float32)
    power[..., 5] = 1e6
    params = {"spec_lo_db": -10.0, "spec_hi_db": 70.0}
    image = images_from_power(power, ("band", weights), params)[0] * 80.0 - 10.0  # dB
    far = np.arange(n_rows) > 5
    np.testing.assert_allclose(image[far], 0.0, atol=1e-3)
