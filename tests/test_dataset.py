"""Dataset assembly: join on syllable id, concatenate sessions, reproducible split, missing modalities."""

import numpy as np
import pytest
import xarray as xr

from mmneuro.dataset import assemble
from mmneuro.errors import InputError
from mmneuro.io import read_netcdf, write_netcdf


def fake_session(tmp_path, session, n, units=(1, 2, 3), drop_counts=()):
    rng = np.random.default_rng(abs(hash(session)) % 2**32)
    ids = [f"{session}-{i:05d}" for i in range(n)]
    onset = np.sort(rng.uniform(0, 100, n))
    syl = xr.Dataset(
        {"spectrogram": (("syllable", "freq", "time"), rng.random((n, 4, 5), dtype=np.float32))},
        coords={"syllable": ids, "session": ("syllable", [session] * n), "onset_s": ("syllable", onset),
                "offset_s": ("syllable", onset + 0.05), "mean_freq_hz": ("syllable", rng.uniform(4e4, 9e4, n)),
                "freq_hz": ("freq", np.linspace(3e4, 1.1e5, 4)), "time_s": ("time", np.arange(5) * 0.01)},
        attrs={"params": {"preset": "mouse"}, "session": session},
    )
    keep = [i for i in ids if i not in drop_counts]
    cnt = xr.Dataset(
        {"counts": (("syllable", "unit", "bin"), rng.poisson(2, (len(keep), len(units), 3)).astype(np.int32)),
         "total_counts": (("syllable", "unit"), rng.poisson(5, (len(keep), len(units))).astype(np.int32))},
        coords={"syllable": keep, "session": ("syllable", [session] * len(keep)),
                "onset_s": ("syllable", syl["onset_s"].sel(syllable=keep).values),
                "unit": np.array(units, dtype=np.int64), "firing_rate_hz": ("unit", rng.uniform(1, 9, len(units))),
                "bin_start_s": ("bin", [-0.05, 0.0, 0.05]), "bin_end_s": ("bin", [0.0, 0.05, 0.1])},
        attrs={"params": {"bin_s": 0.05}, "session": session},
    )
    write_netcdf(syl, tmp_path / f"{session}_syl.nc")
    write_netcdf(cnt, tmp_path / f"{session}_cnt.nc")
    return syl, cnt, tmp_path / f"{session}_syl.nc", tmp_path / f"{session}_cnt.nc"


def test_assemble_joins_and_keeps_values(tmp_path):
    syl_a, cnt_a, *paths_a = fake_session(tmp_path, "a", 20, drop_counts=("a-00003",))
    syl_b, cnt_b, *paths_b = fake_session(tmp_path, "b", 30)
    ds = assemble([("a", *paths_a), ("b", *paths_b)], seed=1)
    assert ds.sizes["syllable"] == 19 + 30  # inner join: a-00003 has no counts
    sid = "a-00007"
    np.testing.assert_array_equal(ds["spectrogram"].sel(syllable=sid), syl_a["spectrogram"].sel(syllable=sid))
    np.testing.assert_array_equal(ds["counts"].sel(syllable=sid), cnt_a["counts"].sel(syllable=sid))
    assert ds["mean_freq_hz"].sel(syllable="b-00002") == syl_b["mean_freq_hz"].sel(syllable="b-00002")
    assert set(ds["split"].values) == {"train", "val", "test"}
    assert (ds["session"] == "b").sum() == 30 and ds["has_neural"].all()
    # saved and reloaded, the split is the same; a new seed gives another split
    write_netcdf(ds, tmp_path / "dataset.nc")
    again = read_netcdf(tmp_path / "dataset.nc")
    np.testing.assert_array_equal(again["split"].values, ds["split"].values)
    other = assemble([("a", *paths_a), ("b", *paths_b)], seed=2)
    assert not np.array_equal(other["split"].values, ds["split"].values)


def test_split_fractions_per_session(tmp_path):
    _, _, *paths = fake_session(tmp_path, "a", 100)
    ds = assemble([("a", *paths)], val_fraction=0.2, test_fraction=0.1)
    counts = ds["split"].to_series().value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (70, 20, 10)


def test_audio_only_session_is_nan_masked(tmp_path):
    _, _, *paths_a = fake_session(tmp_path, "a", 10)
    _, _, syl_b, _ = fake_session(tmp_path, "b", 8)
    ds = assemble([("a", *paths_a), ("b", syl_b, None)])
    b = ds.sel(syllable=ds["session"] == "b")
    assert not b["has_neural"].any() and np.isnan(b["counts"].values).all()
    a = ds.sel(syllable=ds["session"] == "a")
    assert a["has_neural"].all() and np.isfinite(a["counts"].values).all()


def test_sessions_with_different_units_are_refused(tmp_path):
    _, _, *paths_a = fake_session(tmp_path, "a", 10, units=(1, 2, 3))
    _, _, *paths_b = fake_session(tmp_path, "b", 10, units=(1, 2, 4))
    with pytest.raises(InputError, match="b: its unit values differ from session a's"):
        assemble([("a", *paths_a), ("b", *paths_b)])


def test_bad_session_lists_and_fractions_are_refused(tmp_path, capsys):
    from mmneuro.cli import main as cli_main

    *_, syl, cnt = fake_session(tmp_path, "a", 20)
    out = tmp_path / "dataset.nc"
    for args, message in [
        (["--session", "a", syl, cnt, "--session", "a", syl, cnt], "session(s) given more than once: a"),
        (["--session", "..", syl, cnt], "'..' is not a valid id"),
        (["--session", "a", syl, cnt, "--val-fraction", "-0.1"], "val_fraction must lie in [0, 1) (got -0.1)"),
    ]:
        assert cli_main(["dataset", *map(str, args), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not out.exists() and not list(tmp_path.glob(".dataset*"))


def test_nan_spectrograms_are_refused_and_a_missing_val_split_warns(tmp_path):
    syl, _, path, cnt = fake_session(tmp_path, "a", 20)
    write_netcdf(syl.assign(spectrogram=syl["spectrogram"] * np.nan), tmp_path / "nan.nc")
    with pytest.raises(InputError, match=r"nan.nc: 20 of 20 spectrograms contain NaN \(first: syllable a-00000\)"):
        assemble([("a", tmp_path / "nan.nc", cnt)])
    *_, tiny_syl, tiny_cnt = fake_session(tmp_path, "t", 3)
    with pytest.warns(UserWarning, match="no validation syllables"):
        assemble([("t", tiny_syl, tiny_cnt)])
