"""The audio stage on demo data (planted truth), its CLI outputs, and bad input."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmneuro.cli import audio as command
from mmneuro.errors import InputError
from mmneuro.io import read_netcdf

ONSET_TOL_S = 0.010
BAND_HZ = (30_000.0, 110_000.0)


def run(argv: list[str]) -> int:
    """`mmneuro audio ...` as mmneuro.cli runs it (InputError -> exit status 2)."""
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    try:
        return command.main(parser.parse_args([*argv, "--no-progress"]))
    except InputError:
        return 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mmneuro.synth import generate_session, load_ground_truth

    out = tmp_path_factory.mktemp("demo")
    session_dir = generate_session(out, "demo01", seed=0, duration_s=90.0)
    nc = out / "res" / "syllables.nc"
    assert run([str(session_dir / "audio.wav"), "--session", "demo01", "--out", str(nc)]) == 0
    return load_ground_truth(session_dir), read_netcdf(nc), nc


def test_demo_segmentation_f1_and_mean_frequency(demo):
    truth, ds, _ = demo
    planted = truth["syllables"]
    onsets = ds.onset_s.values
    # Greedy one-to-one matching of onsets within 10 ms.
    used, pairs = set(), []
    for k, syl in enumerate(planted):
        j = int(np.abs(onsets - syl["onset_s"]).argmin())
        if abs(onsets[j] - syl["onset_s"]) <= ONSET_TOL_S and j not in used:
            used.add(j)
            pairs.append((k, j))
    precision, recall = len(pairs) / len(onsets), len(pairs) / len(planted)
    f1 = 2 * precision * recall / (precision + recall)
    assert len(planted) > 100 and f1 >= 0.95, f1
    # Mean frequency within 2 kHz, for syllables whose whole contour (incl. harmonic) is in band:
    # the generator also plants sweeps that leave the 30-110 kHz band, which no band-limited
    # measurement can follow.
    in_band = [(k, j) for k, j in pairs
               if BAND_HZ[0] <= min(planted[k]["start_freq_hz"], planted[k]["end_freq_hz"])
               and max(planted[k]["start_freq_hz"], planted[k]["end_freq_hz"]) <= BAND_HZ[1]]
    assert len(in_band) >= 0.8 * len(pairs)
    errors = np.array([ds.mean_freq_hz.values[j] - planted[k]["mean_freq_hz"] for k, j in in_band])
    assert np.abs(errors).max() <= 2_000, np.abs(errors).max()


def test_output_follows_the_data_contract(demo):
    _, ds, nc = demo
    n = ds.sizes["syllable"]
    assert ds.spectrogram.dims == ("syllable", "freq", "time") and ds.spectrogram.dtype == np.float32
    assert ds.spectrogram.shape == (n, 128, 128)
    assert float(ds.spectrogram.min()) >= 0 and float(ds.spectrogram.max()) <= 1
    assert ds.syllable.values[0] == "demo01-00000" and ds.syllable.values[-1] == f"demo01-{n - 1:05d}"
    assert set(ds.session.values) == {"demo01"} and np.all(np.diff(ds.onset_s.values) > 0)
    np.testing.assert_allclose(ds.duration_s, ds.offset_s - ds.onset_s)
    assert ds.freq_hz.values[0] == 30_000 and ds.freq_hz.values[-1] == 110_000
    params = json.loads(ds.attrs["params"])
    assert params["min_freq_hz"] == 30_000 and ds.attrs["sample_rate_hz"] == 250_000
    table = pd.read_csv(nc.with_suffix(".csv"))
    assert list(table.syllable) == list(ds.syllable.values)
    np.testing.assert_allclose(table.mean_freq_hz, ds.mean_freq_hz)


def test_same_input_gives_identical_output(demo, tmp_path):
    _, ds, _ = demo
    again = tmp_path / "again.nc"
    assert run([ds.attrs["audio_path"], "--session", "demo01", "--out", str(again)]) == 0
    second = read_netcdf(again)
    np.testing.assert_array_equal(second.spectrogram.values, ds.spectrogram.values)
    np.testing.assert_array_equal(second.onset_s.values, ds.onset_s.values)


def test_annotations_replace_segmentation(demo, tmp_path):
    _, ds, _ = demo
    csv = tmp_path / "ann.csv"
    pd.DataFrame({"onset_s": ds.onset_s.values[:5][::-1], "offset_s": ds.offset_s.values[:5][::-1]}).to_csv(csv)
    out = tmp_path / "ann.nc"
    assert run([ds.attrs["audio_path"], "--session", "demo01", "--out", str(out), "--annotations", str(csv)]) == 0
    got = read_netcdf(out)
    np.testing.assert_array_equal(got.onset_s.values, ds.onset_s.values[:5])  # sorted by onset
    np.testing.assert_array_equal(got.spectrogram.values, ds.spectrogram.values[:5])


def write_bad_inputs(d):
    good = (np.random.default_rng(0).normal(0, 0.01, 50_000) * 32767).astype(np.int16)
    sf.write(d / "good.wav", good, 250_000, subtype="PCM_16")
    raw = (d / "good.wav").read_bytes()
    (d / "truncated.wav").write_bytes(raw[: len(raw) // 2])
    (d / "corrupt.wav").write_bytes(raw[:30])
    (d / "notwav.wav").write_text("onset_s,offset_s\n0.1,0.2\n")
    sf.write(d / "song.flac", good, 250_000 // 2, subtype="PCM_16", format="FLAC")
    sf.write(d / "stereo.wav", np.stack([good, good], 1), 250_000, subtype="PCM_16")
    sf.write(d / "low.wav", good, 96_000, subtype="PCM_16")
    nan = good.astype(np.float32)
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, 250_000, subtype="FLOAT")
    (d / "bad_ann.csv").write_text("onset_s,offset_s\n0.1,0.05\n")
    data = raw.index(b"data")  # a crashed recorder's header: 0 data bytes declared, samples present
    (d / "zero_header.wav").write_bytes(raw[:data + 4] + (0).to_bytes(4, "little") + raw[data + 8:])
    (d / "folder.wav").mkdir()


@pytest.mark.parametrize("name, extra, message", [
    ("truncated.wav", [], "truncated WAV"),
    ("corrupt.wav", [], "not a readable WAV"),
    ("notwav.wav", [], "not a readable WAV"),
    ("song.flac", [], "not a WAV file"),
    ("stereo.wav", [], "--channel"),
    ("low.wav", [], "too low"),
    ("nan.wav", [], "non-finite"),
    ("good.wav", ["--annotations", "bad_ann.csv"], "row 0"),
    ("good.wav", ["--set", "nperseg=512"], "unknown audio parameter"),
    ("good.wav", ["--session", "bad id"], "session ids"),
    ("good.wav", ["--session", ".."], "not a valid id"),
    ("good.wav", ["--session", "."], "not a valid id"),
    ("zero_header.wav", [], "declares 0 data bytes but 100000 bytes follow"),
    ("folder.wav", [], "is a directory, not a WAV file"),
])
def test_bad_input_is_one_clear_error_and_no_output(tmp_path, capsys, name, extra, message):
    write_bad_inputs(tmp_path)
    extra = [str(tmp_path / e) if e.endswith(".csv") else e for e in extra]
    out = tmp_path / "res" / "out.nc"
    args = [str(tmp_path / name), "--session", "s1", "--out", str(out), *extra]
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    with pytest.raises(InputError, match=message) as err:
        command.main(parser.parse_args([*args, "--no-progress"]))
    assert (name in str(err.value)) or ("csv" in str(err.value)) or ("parameter" in str(err.value)) \
        or ("session" in str(err.value))
    leftovers = list(out.parent.glob("*")) if out.parent.exists() else []
    assert leftovers == []


@pytest.mark.parametrize("samples", [np.zeros(0, np.int16), np.zeros(250_000, np.int16)])
def test_empty_or_silent_audio_gives_valid_empty_output_and_a_warning(tmp_path, samples):
    sf.write(tmp_path / "quiet.wav", samples, 250_000, subtype="PCM_16")
    out = tmp_path / "quiet.nc"
    with pytest.warns(UserWarning, match="no syllables"):
        assert run([str(tmp_path / "quiet.wav"), "--session", "q", "--out", str(out)]) == 0
    ds = read_netcdf(out)
    assert ds.sizes["syllable"] == 0 and ds.spectrogram.shape == (0, 128, 128)
    assert len(pd.read_csv(out.with_suffix(".csv"))) == 0


def test_nan_in_a_float_wav_is_reported_where_it_is(tmp_path):
    samples = np.random.default_rng(0).normal(0, 0.01, 625_000).astype(np.float32)  # 2.5 s
    samples[500_000] = np.nan  # 2.0 s at 250 kHz, inside the first chunk read
    sf.write(tmp_path / "nan.wav", samples, 250_000, subtype="FLOAT")
    with pytest.raises(InputError, match=r"nan.wav: non-finite sample \(NaN/inf\) at t=2.000000 s"):
        command.main(argparse.Namespace(wav=tmp_path / "nan.wav", session="s", out=tmp_path / "o.nc", preset="mouse",
                                        set=[], annotations=None, channel=None, no_progress=True))
    assert not (tmp_path / "o.nc").exists()


def test_clipping_recording_warns(tmp_path):
    rng = np.random.default_rng(0)
    clipped = np.clip(rng.normal(0, 2.0, 250_000), -1, 1)  # 62 % of samples at full scale
    sf.write(tmp_path / "loud.wav", (clipped * 32767).astype(np.int16), 250_000, subtype="PCM_16")
    sf.write(tmp_path / "fine.wav", (rng.normal(0, 0.1, 250_000) * 32767).astype(np.int16), 250_000, subtype="PCM_16")
    with pytest.warns(UserWarning, match=r"loud.wav: 6\d\.\d % of samples are at full scale"):
        run([str(tmp_path / "loud.wav"), "--session", "s", "--out", str(tmp_path / "loud.nc")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run([str(tmp_path / "fine.wav"), "--session", "s", "--out", str(tmp_path / "fine.nc")])
    assert not [w for w in caught if "full scale" in str(w.message)]
