"""The README's three lines (sessions -> dataset -> model -> result) run in memory, write nothing, and give
the clusters that the workflow's commands give on the same data and seed."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import xarray as xr

import mmneuro as mm
from mmneuro.analysis import AnalysisSettings
from mmneuro.cli import main
from mmneuro.io import read_netcdf, write_netcdf

AUDIO = {"preset": "mouse", "set": {"n_freq": 16, "n_time": 16}}
MODEL = {"latent_dim": 4, "epochs": 3, "min_steps": 0, "batch_size": 32, "seed": 3,
         "audio": {"channels": [4, 4], "hidden": [16]}, "neural": {"hidden": [16]}}
ANALYSIS = {"n_permutations": 20, "tuning_shifts": 50, "synergy_k": 5, "synergy_max_syllables": 40,
            "pca_components": 5}


@pytest.fixture(scope="module")
def sessions_table(tmp_path_factory):
    from mmneuro.synth import generate_demo

    return generate_demo(tmp_path_factory.mktemp("planted"), n_sessions=2, duration_s=20.0, seed=7)


def _files(folder):
    return sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_three_lines_write_nothing_and_match_the_commands(sessions_table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path) + _files(sessions_table.parent)
    ds = mm.preprocess(mm.load_sessions(sessions_table), audio=AUDIO, progress=False)
    model = mm.MoPoE(**MODEL).fit(ds)
    result = mm.analyse(model, ds, settings=AnalysisSettings(**ANALYSIS), progress=False)
    assert _files(tmp_path) + _files(sessions_table.parent) == before  # nothing written
    assert isinstance(result.clusters, pd.DataFrame) and len(result.clusters) == ds.sizes["unit"]

    # the same data, model and analysis through the commands the workflow's rules run
    out = tmp_path / "results"
    write_netcdf(ds, out / "dataset.nc")
    sets = [f"{k}={v}" for k, v in MODEL.items() if not isinstance(v, dict)]
    sets += [f"{m}.{k}={v}" for m in ("audio", "neural") for k, v in MODEL[m].items()]
    assert main(["train", str(out / "dataset.nc"), "--model", "mopoe", "--out", str(out / "model"), "--quiet",
                 "--set", *sets]) == 0
    assert main(["analyse", str(out / "model"), str(out / "dataset.nc"), "--out", str(out / "analysis"), "--quiet",
                 "--set", *[f"{k}={v}" for k, v in ANALYSIS.items()]]) == 0
    for table in ("clusters", "latent_band", "crosspred"):  # clusters are model-free; the others are not
        written = pd.read_csv(out / "analysis" / f"{table}.csv")
        in_memory = pd.read_csv(io.StringIO(getattr(result, table).to_csv(index=False)))  # the same CSV round trip
        pd.testing.assert_frame_equal(in_memory, written)
    xr.testing.assert_identical(result.latent_neuron, read_netcdf(out / "analysis" / "latent_neuron.nc"))
    clusters = result.clusters["cluster"]
    assert (clusters >= 0).any() and (clusters == -1).any()  # tuned clusters and untuned units
