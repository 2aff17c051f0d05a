"""`mmneuro neural` end to end on small files: contract layout, QC line, bad input leaves no output."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.io import json_attr, read_netcdf, write_netcdf
from mmneuro.cli import neural as command


def run(argv: list[str]) -> int:
    """The subcommand as mmneuro.cli runs it (InputError -> status 2), without importing other stages."""
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    try:
        return command.main(parser.parse_args([str(a) for a in argv]))
    except InputError:
        return 2


@pytest.fixture
def inputs(tmp_path):
    # Unit 1 fires 5 ms after each onset (neural clock = audio + 0.5 s); unit 2 fires once, at 1.0 s.
    onset = np.array([1.0, 2.0, 3.0])
    spikes = pd.DataFrame({"unit": [1, 1, 1, 2], "time_s": np.r_[onset + 0.505, 1.0], "label": ["good"] * 3 + ["mua"]})
    spikes.to_csv(tmp_path / "spikes.csv", index=False)
    syllables = xr.Dataset(
        {"spectrogram": (("syllable", "freq", "time"), np.zeros((3, 2, 2), np.float32))},
        coords={
            "syllable": [f"s1-{i:05d}" for i in range(3)],
            "session": ("syllable", ["s1"] * 3),
            "onset_s": ("syllable", onset),
            "offset_s": ("syllable", onset + 0.05),
        },
        attrs={"session": "s1"},
    )
    write_netcdf(syllables, tmp_path / "syllables.nc")
    rng = np.random.default_rng(0)
    pulses = np.cumsum(rng.uniform(0.5, 1.5, 40))
    np.save(tmp_path / "sync_audio_s.npy", pulses)
    np.save(tmp_path / "sync_neural_s.npy", pulses[2:] + 0.5)
    return tmp_path


def test_writes_the_counts_contract(inputs, capsys):
    out = inputs / "results" / "counts.nc"
    rc = run([inputs / "spikes.csv", "--format", "table", "--syllables", inputs / "syllables.nc", "--out", out,
              "--labels", "good,mua", "--sync-audio", inputs / "sync_audio_s.npy", "--sync-neural", inputs / "sync_neural_s.npy",
              "--warp-bins", "2"])
    assert rc == 0
    line = capsys.readouterr().out
    assert "2 units, 4 spikes" in line and "over 38 pulses" in line
    ds = read_netcdf(out)
    assert ds["counts"].dims == ("syllable", "unit", "bin") and ds["counts"].dtype == np.int32
    assert ds["total_counts"].dims == ("syllable", "unit") and ds["total_counts"].dtype == np.int32
    assert ds["unit"].values.tolist() == [1, 2] and ds["unit_label"].values.tolist() == ["good", "mua"]
    assert ds["syllable"].values.tolist() == ["s1-00000", "s1-00001", "s1-00002"]
    # Unit 1's spike lands 5 ms after onset: bin 5 of the default window, in every syllable.
    np.testing.assert_array_equal(ds["counts"].sel(unit=1).values.argmax(-1), [5, 5, 5])
    assert ds["total_counts"].sel(unit=1).values.tolist() == [1, 1, 1]
    assert ds["warped_counts"].sel(unit=1).values.tolist() == [[1, 0]] * 3
    assert abs(ds.attrs["clock_offset_s"] - 0.5) < 1e-9 and ds.attrs["sync_residual_s"] < 1e-9
    assert ds.attrs["session"] == "s1" and ds.attrs["neural_format"] == "table"
    assert json_attr(ds, "params")["bin_s"] == 0.01


def test_same_inputs_same_output(inputs):
    args = [inputs / "spikes.csv", "--format", "table", "--syllables", inputs / "syllables.nc", "--offset-s", "0.5"]
    assert run(args + ["--out", inputs / "a.nc"]) == 0 and run(args + ["--out", inputs / "b.nc", "--workers", "2"]) == 0
    xr.testing.assert_identical(read_netcdf(inputs / "a.nc"), read_netcdf(inputs / "b.nc"))  # threads: same counts


@pytest.mark.parametrize(
    "extra",
    [
        ["--labels", "noise"],  # no unit has it
        ["--bin-s", "0.03"],  # 0.25 s window is not a whole number of bins
        ["--sync-audio", "sync_audio_s.npy"],  # one pulse file without the other
        ["--sync-audio", "spikes.csv", "--sync-neural", "sync_neural_s.npy"],  # not an .npy
    ],
)
def test_bad_input_fails_cleanly_without_output(inputs, extra, monkeypatch):
    monkeypatch.chdir(inputs)
    out = inputs / "counts.nc"
    assert run(["spikes.csv", "--format", "table", "--syllables", "syllables.nc", "--out", out, *extra]) == 2
    assert not out.exists() and not list(inputs.glob(".counts.nc*"))


@pytest.mark.parametrize("extra, where, message", [
    (["--offset-s", "nan"], "--offset-s", "must be finite"),
    (["--drift", "5"], "--drift", "not a plausible clock drift"),
    (["--offset-s", "10000"], "spikes.csv", "3 of 3 syllable windows fall outside the spikes' time span"),
    (["--sync-audio", "sync_audio_s.npy", "--sync-neural", "shifted.npy"], "spikes.csv", "outside the spikes' time span"),
    (["--session", ".."], "--session", "not a valid id"),
])
def test_wrong_clock_or_id_is_one_clear_error(inputs, capsys, monkeypatch, extra, where, message):
    """A clock that puts every syllable outside the spikes would give all-zero counts with exit 0."""
    from mmneuro.cli import main as cli_main

    monkeypatch.chdir(inputs)
    np.save(inputs / "shifted.npy", np.load(inputs / "sync_neural_s.npy") + 10_000)
    out = inputs / "counts.nc"
    rc = cli_main(["neural", "spikes.csv", "--format", "table", "--syllables", "syllables.nc", "--out", str(out),
                   "--labels", "good,mua", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and where in err and message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(inputs.glob(".counts.nc*"))


def test_spike_times_in_ms_warn(inputs, monkeypatch):
    """Spike times in ms put the syllables at the first few ms of the recording: near-zero counts."""
    monkeypatch.chdir(inputs)
    rng = np.random.default_rng(0)
    spikes_s = np.sort(np.r_[0.001, rng.uniform(0, 60, 600)])  # 10 Hz over a 60 s recording
    pd.DataFrame({"unit": 1, "time_s": spikes_s * 1000, "label": "good"}).to_csv(inputs / "ms.csv", index=False)
    pd.DataFrame({"unit": 1, "time_s": spikes_s, "label": "good"}).to_csv(inputs / "s.csv", index=False)
    args = ["--format", "table", "--syllables", "syllables.nc", "--offset-s", "0.5"]
    with pytest.warns(UserWarning, match=r"ms.csv: the spikes span .* if spike times are not in seconds"):
        assert run(["ms.csv", *args, "--out", inputs / "ms.nc"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(["s.csv", *args, "--out", inputs / "s.nc"]) == 0
