"""`mmneuro.preprocess` in memory gives the dataset.nc that the `mmneuro audio/neural/dataset` commands write."""

from __future__ import annotations

import pytest
import xarray as xr

import mmneuro as mm
from mmneuro.cli import main
from mmneuro.errors import InputError
from mmneuro.io import read_netcdf

AUDIO = {"preset": "mouse", "set": {"n_freq": 16, "n_time": 16}}
NEURAL = {"latency_s": 0.03, "warp_bins": 2}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two short planted sessions; the second without its neural data (audio-only)."""
    from mmneuro.synth import generate_demo

    data = tmp_path_factory.mktemp("planted")
    table = generate_demo(data, n_sessions=2, duration_s=20.0, seed=4)
    rows = table.read_text().splitlines()
    rows[2] = "\t".join(rows[2].split("\t")[:2] + [""] * 6)  # demo02: audio only
    table.write_text("\n".join(rows) + "\n")
    return table


def _files(folder):
    return sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_preprocess_equals_the_cli_stages_and_writes_nothing(planted, tmp_path, monkeypatch):
    out = tmp_path / "results"
    for sid in ("demo01", "demo02"):
        assert main(["audio", str(planted.parent / sid / "audio.wav"), "--session", sid, "--out",
                     str(out / sid / "syllables.nc"), "--no-progress", "--set", "n_freq=16", "n_time=16"]) == 0
    d = planted.parent / "demo01"
    assert main(["neural", str(d / "phy"), "--format", "phy", "--syllables", str(out / "demo01" / "syllables.nc"),
                 "--out", str(out / "demo01" / "counts.nc"), "--sync-audio", str(d / "sync_audio_s.npy"),
                 "--sync-neural", str(d / "sync_neural_s.npy"), "--set", "latency_s=0.03", "warp_bins=2"]) == 0
    assert main(["dataset", "--session", "demo01", str(out / "demo01" / "syllables.nc"), str(out / "demo01" / "counts.nc"),
                 "--session", "demo02", str(out / "demo02" / "syllables.nc"), "-", "--out", str(out / "dataset.nc"),
                 "--set", "seed=5", "val_fraction=0.2"]) == 0
    written = read_netcdf(out / "dataset.nc")

    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path) + _files(planted.parent)
    ds = mm.preprocess(mm.load_sessions(planted), audio=AUDIO, neural=NEURAL,
                       dataset={"seed": 5, "val_fraction": 0.2}, progress=False)
    assert _files(tmp_path) + _files(planted.parent) == before  # nothing written
    xr.testing.assert_identical(ds, written)
    assert ds["has_neural"].sum() == (ds["session"] == "demo01").sum() > 0
    assert set(ds["split"].values) == {"train", "val", "test"}


def test_preprocess_defaults_and_sessions_without_audio(planted):
    """No arguments: the config's defaults (the mouse preset's 128 x 128 images); a neural-only
    session is left out with a warning, as the workflow does."""
    from dataclasses import replace

    sessions = mm.load_sessions(planted)
    neural_only = replace(sessions[0], session="ephys", audio=None)
    with pytest.warns(UserWarning, match="sessions without audio are not used .*: ephys"):
        ds = mm.preprocess([sessions[1], neural_only], progress=False)
    assert ds.sizes["freq"] == ds.sizes["time"] == 128 and set(ds["session"].values) == {"demo02"}
    for bad, message in (({"neural": {"bins": 3}}, "neural: unknown neural parameter"),
                         ({"audio": {"set": {"nperseg": 5}}}, "parameter 'nperseg': unknown")):
        with pytest.raises(InputError, match=message):
            mm.preprocess(sessions[:1], **bad, progress=False)
