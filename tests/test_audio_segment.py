"""Segmentation: AVA's rule in linear time (checked against a direct port), real recordings vs
vocalpy, invariance to chunking, sampling rate, sample format and channel, and parameter errors."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mmneuro.audio import edges, resolve_params, segment_file
from mmneuro.audio.segment import find_segments, merge_and_filter, pooled_amplitude
from mmneuro.errors import InputError

EXAMPLES = files("vocalpy") / "examples"
DEERMOUSE = str(EXAMPLES / "deermouse-go.wav")
BM003 = str(EXAMPLES / "BM003.wav")
TOL_S = 0.010  # onsets/offsets agree within 10 ms (5 STFT hops)


def ava_reference(amp, edge, dip, peak):
    """AVA's get_onsets_offsets loop (as in vocalpy.segment.ava, duplicate fix included)."""
    onsets, offsets = [], []
    maxima = [i for i in range(1, len(amp) - 1) if amp[i] > peak and amp[i] == amp[i - 1:i + 2].max()]
    for m in maxima:
        if offsets and m < offsets[-1]:
            continue
        on = next((i for i in range(m - 1, 0, -1)
                   if amp[i] < edge or (amp[i] < dip and amp[i] == amp[i - 1:i + 2].min())), None)
        off = next((i for i in range(m + 1, len(amp))
                    if amp[i] < edge or (amp[i] < dip and amp[i] == amp[i - 1:i + 2].min())), None)
        if on is not None and off is not None:
            onsets.append(on)
            offsets.append(off)
    return np.array(onsets, int), np.array(offsets, int)


@pytest.mark.parametrize("seed", range(6))
def test_find_segments_equals_ava_loop(seed):
    rng = np.random.default_rng(seed)
    # Smoothed noise with bumps: many peaks, dips and edges; ties made likely by quantising.
    amp = np.convolve(rng.random(3000) ** 3, np.ones(7) / 7, mode="same")
    amp = np.round(amp * 40) / 40
    on, off = find_segments(amp, 0.05, 0.15, 0.3)
    ref_on, ref_off = ava_reference(amp, 0.05, 0.15, 0.3)
    assert len(ref_on) > 10
    np.testing.assert_array_equal(on, ref_on)
    np.testing.assert_array_equal(off, ref_off)


@pytest.mark.parametrize("pooling, temperature", [("softmax", 0.1), ("softmax", 1e-3), ("mean", 0.1)])
def test_pooled_amplitude_equals_its_definition(pooling, temperature):
    # The sparse sums (only bins above level 0 through log and exp) against the dense formula in float64.
    rng = np.random.default_rng(0)
    floor_db = rng.uniform(-90, -70, 40).astype(np.float32)
    power = (10 ** (floor_db / 10) * rng.exponential(1.0, (300, 40))).astype(np.float32)
    power[100:120, 10:14] *= 1e4  # a call: levels above 1 are clipped
    params = resolve_params(None, {"pooling": pooling, "temperature": temperature})
    level = np.clip((10 * np.log10(power.astype(np.float64)) - floor_db - params["level_lo_db"])
                    / (params["level_hi_db"] - params["level_lo_db"]), 0, 1)
    if pooling == "mean":
        expected = level.mean(axis=1)
    else:
        w = np.exp((level - level.max(axis=1, keepdims=True)) / temperature)
        expected = (level * w).sum(axis=1) / w.sum(axis=1)
    got = pooled_amplitude(power, floor_db, params)
    assert got.dtype == np.float32 and 0.05 < expected.max() and expected.min() == 0
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_find_segments_without_boundaries_finds_nothing():
    # A trace that never falls below the thresholds: AVA rescans to the start from every peak.
    amp = 0.5 + 0.4 * np.sin(np.arange(200_000) / 3.0)
    on, off = find_segments(amp, 0.05, 0.1, 0.3)
    assert len(on) == len(off) == 0


def test_merge_then_filter_closed_form():
    params = {"min_gap_s": 0.004, "min_dur_s": 0.01, "max_dur_s": 0.1}
    onset = np.array([0.0, 0.012, 0.5, 1.0, 2.0])
    offset = np.array([0.010, 0.020, 0.505, 1.2, 2.05])
    # 0-0.010 and 0.012-0.020 merge (gap 2 ms); 0.5-0.505 too short; 1.0-1.2 too long.
    on, off = merge_and_filter(onset, offset, params)
    np.testing.assert_allclose(on, [0.0, 2.0])
    np.testing.assert_allclose(off, [0.020, 2.05])


def match(found: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index in ``found`` of the nearest item to each reference time."""
    return np.abs(found[None, :] - reference[:, None]).argmin(axis=1)


def test_deermouse_matches_vocalpy_within_10ms():
    import vocalpy
    from vocalpy.segment.ava import JOURJINEETAL2023

    sound = vocalpy.Sound.read(DEERMOUSE)
    ref = vocalpy.segment.ava(sound, **dict(JOURJINEETAL2023))
    ref_on = ref.start_inds / sound.samplerate
    ref_off = (ref.start_inds + ref.lengths) / sound.samplerate
    assert len(ref_on) == 6
    table = segment_file(DEERMOUSE)
    assert len(table) == len(ref_on)
    np.testing.assert_allclose(table["onset_s"], ref_on, atol=TOL_S)
    np.testing.assert_allclose(table["offset_s"], ref_off, atol=TOL_S)


def test_bm003_loud_background_finds_the_three_calls():
    # vocalpy's presets find 0 here; with its spectrogram floor raised to 5.5 it finds these 3.
    import vocalpy

    sound = vocalpy.Sound.read(BM003)
    ref = vocalpy.segment.ava(sound, nperseg=1024, noverlap=512, min_freq=30e3, max_freq=110e3,
                              spect_min_val=5.5, spect_max_val=8.0, thresh_lowest=0.1, thresh_min=0.2,
                              thresh_max=0.3, min_dur=0.01, max_dur=0.2, use_softmax_amp=False,
                              smoothing_timescale=0.007)
    ref_on = ref.start_inds / sound.samplerate
    ref_off = (ref.start_inds + ref.lengths) / sound.samplerate
    assert len(ref_on) == 3
    table = segment_file(BM003)
    assert len(table) == 3
    # These calls rise slowly out of the background; vocalpy's 7 ms smoothing spreads its boundaries
    # outwards (the coarse trace rises 7 ms after its onsets), so ours lie inside its syllables,
    # within 15 ms (observed: onsets 10.0-10.9 ms later, offsets 9.5-13.1 ms earlier).
    on_late, off_early = table["onset_s"] - ref_on, ref_off - table["offset_s"]
    assert ((on_late >= 0) & (on_late <= 0.015) & (off_early >= 0) & (off_early <= 0.015)).all(), \
        (on_late.to_numpy(), off_early.to_numpy())


def test_chunk_size_does_not_change_segments(monkeypatch):
    whole = segment_file(DEERMOUSE, {"chunk_s": 10.0})
    chunked = segment_file(DEERMOUSE, {"chunk_s": 0.013})  # ~90 chunks, every call crosses edges
    np.testing.assert_array_equal(whole.to_numpy(), chunked.to_numpy())
    # blocks computed by 3 threads, out of order, land in the same frames (and the same noise floor);
    # boundaries refined one per batch on those threads give the same times
    monkeypatch.setattr(edges, "BATCH_REGIONS", 1)
    threaded = segment_file(DEERMOUSE, {"chunk_s": 0.013, "workers": 3})
    np.testing.assert_array_equal(whole.to_numpy(), threaded.to_numpy())


def test_other_rate_float_wav_and_stereo_channel_agree(tmp_path):
    x, sr = sf.read(DEERMOUSE, dtype="float64")
    reference = segment_file(DEERMOUSE)
    # 300 kHz float32 copy: parameters in s/Hz give the same syllables within one hop.
    up = resample_poly(x, 6, 5).astype(np.float32)
    sf.write(tmp_path / "up.wav", up, sr * 6 // 5, subtype="FLOAT")
    at_300k = segment_file(tmp_path / "up.wav")
    np.testing.assert_allclose(at_300k.to_numpy(), reference.to_numpy(), atol=0.0025)
    # Stereo with the calls on channel 1 and noise on channel 0.
    noise = np.random.default_rng(0).normal(0, 1e-3, len(x))
    sf.write(tmp_path / "stereo.wav", np.stack([noise, x], axis=1), sr, subtype="PCM_16")
    np.testing.assert_array_equal(segment_file(tmp_path / "stereo.wav", {"channel": 1}).to_numpy(),
                                  reference.to_numpy())
    assert len(segment_file(tmp_path / "stereo.wav", {"channel": 0})) == 0
    with pytest.raises(InputError, match="'channel' parameter"):
        segment_file(tmp_path / "stereo.wav")
    with pytest.raises(InputError, match="channel 2 requested"):
        segment_file(tmp_path / "stereo.wav", {"channel": 2})


def test_rate_too_low_is_a_clear_error(tmp_path):
    sf.write(tmp_path / "low.wav", np.zeros(1000, np.int16), 192_000, subtype="PCM_16")
    with pytest.raises(InputError, match=r"low\.wav: sampling rate 192000 Hz is too low"):
        segment_file(tmp_path / "low.wav")


def test_resolve_params_presets_and_overrides():
    p = resolve_params("short_quiet", {"peak_threshold": "0.5", "time_stretch": "false", "channel": "1"})
    assert p["peak_threshold"] == 0.5 and p["time_stretch"] is False and p["channel"] == 1
    assert p["min_dur_s"] == 0.004  # from the preset
    # the workflow passes config.yaml's audio.set as JSON: a string arrives quoted
    assert resolve_params(None, {"freq_scale": '"mel"', "image_rows": "band"})["freq_scale"] == "mel"
    with pytest.raises(InputError, match="'max_dur'.*unknown audio parameter"):
        resolve_params(None, {"max_dur": 1})
    with pytest.raises(InputError, match="unknown preset"):
        resolve_params("rat")
    with pytest.raises(InputError, match="edge <= dip <= peak"):
        resolve_params(None, {"dip_threshold": 0.9})
    with pytest.raises(InputError, match="expected a number"):
        resolve_params(None, {"hop_s": "fast"})
