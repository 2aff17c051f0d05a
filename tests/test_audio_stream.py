"""The streamed syllables.nc writer against the in-memory Dataset, and the fast paths under it
(16-bit PCM scaling, frame gathering, batching) against their plain definitions."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import xarray as xr
from test_audio_spectrogram import write_calls

from mmneuro.audio import measure, resolve_params, syllable_dataset, write_syllables
from mmneuro.audio.stft import frame_grid, frames_centred_at, noise_floor_db
from mmneuro.audio.syllables import SyllablePlan, syllable_table
from mmneuro.audio.wav import iter_chunks, open_wav, read_span
from mmneuro.io import read_netcdf, write_netcdf

SR = 250_000
# Seven chirps 40-100 ms long: the default preset finds each as one syllable.
CALLS = [(0.10 + 0.19 * k, 0.14 + 0.19 * k + 0.01 * k, 40_000.0 + 8_000 * k, 60_000.0 + 5_000 * k, 0.05)
         for k in range(7)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return write_calls(tmp_path_factory.mktemp("stream") / "calls.wav", CALLS, duration_s=1.6)


def h5_layout(path) -> dict:
    """Every HDF5 object's dtype, shape, storage and attributes (references by count), as text."""
    layout = {}
    with h5py.File(path) as f:
        def visit(name, obj):
            attrs = {k: len(v) if k in ("DIMENSION_LIST", "REFERENCE_LIST") else repr(v) for k, v in obj.attrs.items()}
            layout[name] = repr((obj.dtype, obj.shape, obj.chunks, obj.fillvalue,
                                 obj.id.get_create_plist().get_layout(), attrs))
        f.visititems(visit)
        layout["/"] = repr({k: v for k, v in f.attrs.items() if k != "_NCProperties"})
    return layout


def test_streamed_file_equals_the_in_memory_dataset(recording, tmp_path, monkeypatch):
    # Batches of 3 syllables: the file is written in several pieces, including a partial last one.
    monkeypatch.setattr(measure, "BATCH_SYLLABLES", 3)
    written = write_syllables(recording, "s1", tmp_path / "stream.nc")
    ds = syllable_dataset(recording, "s1")
    write_netcdf(ds, tmp_path / "memory.nc")
    streamed = read_netcdf(tmp_path / "stream.nc")
    assert streamed.sizes["syllable"] == len(CALLS)
    xr.testing.assert_identical(streamed, read_netcdf(tmp_path / "memory.nc"))
    assert h5_layout(tmp_path / "stream.nc") == h5_layout(tmp_path / "memory.nc")
    pd.testing.assert_frame_equal(written.table, syllable_table(ds))
    assert written.audio_duration_s == pytest.approx(1.6)
    # The planted chirps, in order: mean of a linear sweep is the mid frequency.
    np.testing.assert_allclose(streamed.mean_freq_hz, [(c[2] + c[3]) / 2 for c in CALLS], atol=500)


def test_batch_size_does_not_change_measurements(recording):
    params = resolve_params()
    wav = open_wav(recording, None, params["max_freq_hz"])
    table = pd.DataFrame({"onset_s": [c[0] for c in CALLS], "offset_s": [c[1] for c in CALLS]})
    grid = frame_grid(SR, params)
    floor = noise_floor_db(wav, grid, params)
    args = (wav, table.onset_s.to_numpy(), table.offset_s.to_numpy(), floor, grid, params)
    whole = list(measure.iter_measurements(*args, batch_size=100))
    pieces = list(measure.iter_measurements(*args, batch_size=2))
    # batches measured by 3 threads, each through its own file handle, come back in order, unchanged
    args = (*args[:-1], {**params, "workers": 3})
    threaded = list(measure.iter_measurements(*args, batch_size=2))
    assert len(whole) == 1
    for split in (pieces, threaded):
        assert [b.start for b in split] == [0, 2, 4, 6]
        np.testing.assert_array_equal(np.concatenate([b.images for b in split]), whole[0].images)
        for name in whole[0].features:
            np.testing.assert_array_equal(np.concatenate([b.features[name] for b in split]), whole[0].features[name])


def test_failure_while_streaming_leaves_no_file(recording, tmp_path, monkeypatch):
    real = SyllablePlan.measurements

    def fail_after_first_batch(self, progress=False):
        batches = real(self, progress)
        yield next(batches)
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(measure, "BATCH_SYLLABLES", 2)
    monkeypatch.setattr(SyllablePlan, "measurements", fail_after_first_batch)
    with pytest.raises(RuntimeError, match="mid-write"):
        write_syllables(recording, "s1", tmp_path / "out" / "syllables.nc")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("subtype, channels, layout", [("PCM_16", 1, "WAV"), ("PCM_16", 2, "WAV"), ("PCM_16", 2, "WAVEX"),
                                                      ("PCM_16", 1, "RF64"), ("PCM_24", 1, "WAV"), ("FLOAT", 2, "WAV")])
def test_span_reads_and_chunks_equal_soundfile_float_reads(tmp_path, subtype, channels, layout):
    # 16-bit PCM in a RIFF WAV is read from the file as int16 (no soundfile): span reads scale it
    # themselves, the whole-file chunks leave it int16 (band_power folds 2**-15 into the window)
    x = np.random.default_rng(1).uniform(-1, 1, (5_000, channels))
    x[:3] = [[-1.0] * channels, [1.0 - 2**-15] * channels, [0.0] * channels]  # full-scale extremes
    path = tmp_path / "x.wav"
    sf.write(path, x, SR, subtype=subtype, format=layout)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = expected[:, channels - 1]
    wav = open_wav(path, channels - 1, 100_000)
    assert (wav.pcm16_offset is not None) == (subtype == "PCM_16" and layout != "RF64")
    got = read_span(wav, -7, 5_010)  # zero padding on both sides
    np.testing.assert_array_equal(got[7:-10], expected)
    assert not got[:7].any() and not got[-10:].any()
    chunks = list(iter_chunks(wav, 1_500, 100))
    assert [start for start, _ in chunks] == [0, 1_500, 3_000, 4_500]
    for start, block in chunks:
        scaled = block * np.float32(2**-15) if block.dtype == np.int16 else block
        np.testing.assert_array_equal(scaled, expected[start:start + 1_600])


def test_frames_centred_at_equals_explicit_slices():
    grid = frame_grid(SR, resolve_params())
    samples = np.random.default_rng(2).standard_normal(20_000).astype(np.float32)
    first = 1_000  # samples[0] is absolute sample 1000
    centres = np.array([first + 512, 7_777, 9_000, 9_001, first + 20_000 - 512])
    frames = frames_centred_at(samples, first, centres, grid)
    for frame, c in zip(frames, centres):
        start = c - 512 - first
        np.testing.assert_array_equal(frame, samples[start:start + 1024])


def test_band_power_of_pcm16_frames_equals_that_of_their_floats():
    # 2**-15 folded into the window is exact: the same float32 products, the same power
    from mmneuro.audio.stft import band_power, strided_frames

    grid = frame_grid(SR, resolve_params())
    pcm = np.random.default_rng(3).integers(-2**15, 2**15, 50_000).astype(np.int16)
    frames = strided_frames(pcm, grid)
    np.testing.assert_array_equal(band_power(frames, grid),
                                  band_power(strided_frames(pcm * np.float32(2**-15), grid), grid))
