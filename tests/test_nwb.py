"""`mmneuro nwb`: the file reads back with pynwb as what went in, passes nwbinspector, copies an NWB
source without changing it, and bad input exits 2 leaving no file."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import SMALL, planted_dataset

import mmneuro as mm
from mmneuro.cli import main as cli_main
from mmneuro.estimator import load
from mmneuro.io import write_netcdf
from mmneuro.synth.formats import write_nwb

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*posterior collapsed:RuntimeWarning")
UNITS = np.array([3, 5, 8, 13, 21, 34])  # cluster ids, not positions
OFFSET_S, DRIFT = 0.5, 2e-5  # the session's audio -> neural clock


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two sessions of 24 syllables interleaved in dataset.nc, s1's counts.nc (clock, units), its units
    as a spike table and as an NWB file, and two tiny trained models."""
    tmp = tmp_path_factory.mktemp("nwb")
    ds = planted_dataset(n=48, units=len(UNITS), bins=3).assign_coords(unit=UNITS)
    rng = np.random.default_rng(1)
    onset = rng.permutation(np.arange(48) * 0.5 + 1.0)  # not in onset order within a session
    ds = ds.assign_coords(
        session=("syllable", np.where(np.arange(48) % 2 == 0, "s1", "s2").astype(object)),
        onset_s=("syllable", onset), offset_s=("syllable", onset + 0.05), duration_s=("syllable", np.full(48, 0.05)),
        mean_freq_hz=("syllable", rng.uniform(40e3, 90e3, 48)),
        has_audio=("syllable", np.ones(48, np.int8)), has_neural=("syllable", np.ones(48, np.int8)),
        bin_start_s=("bin", [-0.05, 0.0, 0.05]), bin_end_s=("bin", [0.0, 0.05, 0.1]))
    write_netcdf(ds, tmp / "dataset.nc")
    s1 = ds.isel(syllable=np.flatnonzero(ds["session"].values == "s1"))
    counts = s1[["counts", "total_counts"]].assign_attrs(session="s1", clock_offset_s=OFFSET_S, clock_drift=DRIFT)
    write_netcdf(counts, tmp / "counts.nc")
    spikes = {int(u): np.sort(rng.uniform(0, 30, 20)) for u in UNITS}
    pd.DataFrame({"unit": np.repeat(UNITS, 20), "time_s": np.concatenate(list(spikes.values())),
                  "label": "good"}).to_csv(tmp / "spikes.csv", index=False)
    # the NWB source's Units rows in another order than the counts' units
    write_nwb(tmp / "units.nwb", spikes, [{"unit": int(u), "label": "good"} for u in UNITS[::-1]], "s1", 0)
    tiny = SMALL | {"epochs": 2, "patience": 100}
    for cls in (mm.MVAE, mm.MoPoE):
        cls(**tiny).fit(ds).save(tmp / "models" / cls.kind)
    return tmp, ds


def export(tmp, fmt: str, units: str, out, *extra: str) -> int:
    return cli_main(["nwb", str(tmp / "dataset.nc"), "--counts", str(tmp / "counts.nc"), "--units", str(tmp / units),
                     "--format", fmt, "--model", str(tmp / "models" / "mvae"), str(tmp / "models" / "mopoe"),
                     "--out", str(out), *extra])


def read_back(path):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        nwb = io.read()
        binned = nwb.processing["ecephys"]["syllable_aligned_counts"]
        ids = nwb.units["cluster_id"].data[:] if "cluster_id" in nwb.units.colnames else nwb.units.id.data[:]
        return {"syllables": nwb.intervals["syllables"].to_dataframe(), "counts": binned.data[:],
                "events": binned.event_timestamps[:], "bin_ms": (binned.bin_width_in_ms, binned.event_to_bin_offset_in_ms),
                "units": np.asarray(ids)[binned.units_region.data[:]], "unit_ids": np.asarray(ids),
                "spikes": {int(i): nwb.units["spike_times"][k] for k, i in enumerate(ids)}, "subject": nwb.subject}


def problems(path) -> list[str]:
    from nwbinspector import Importance, inspect_nwbfile

    return [f"{m.importance.name} {m.check_function_name}" for m in inspect_nwbfile(nwbfile_path=str(path))
            if m.importance in (Importance.ERROR, Importance.PYNWB_VALIDATION, Importance.CRITICAL,
                                Importance.BEST_PRACTICE_VIOLATION)]


def check_contents(got: dict, ds) -> None:
    """The file holds session s1's syllables in onset order with their counts, times and latents."""
    s1 = ds.isel(syllable=np.flatnonzero(ds["session"].values == "s1"))
    s1 = s1.isel(syllable=np.argsort(s1["onset_s"].values))
    table = got["syllables"]
    assert table["syllable"].tolist() == s1["syllable"].values.tolist()
    np.testing.assert_allclose(table["start_time"], OFFSET_S + (1 + DRIFT) * s1["onset_s"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(table["stop_time"], OFFSET_S + (1 + DRIFT) * s1["offset_s"].values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(table["mean_freq_hz"], s1["mean_freq_hz"].values)
    np.testing.assert_array_equal(got["events"], table["start_time"])
    np.testing.assert_array_equal(got["counts"], s1["counts"].transpose("unit", "syllable", "bin").values)
    np.testing.assert_array_equal(got["units"], UNITS)
    assert got["bin_ms"] == pytest.approx((50.0, -50.0))
    for kind in ("mvae", "mopoe"):
        expected = load(ds.attrs["models"] / kind).transform(s1).values
        np.testing.assert_array_equal(np.stack(table[f"latent_mean_{kind}"]), expected)


def test_new_file_reads_back_and_passes_the_inspector(inputs, tmp_path):
    tmp, ds = inputs
    out = tmp_path / "s1.nwb"
    assert export(tmp, "table", "spikes.csv", out, "--set", "date_of_birth=2023-12-01T00:00:00+00:00", "session_start_time=2024-03-01T09:00:00+01:00") == 0
    got = read_back(out)
    check_contents(got, ds.assign_attrs(models=tmp / "models"))
    assert got["subject"].date_of_birth.year == 2023 and got["subject"].species == "Mus musculus"
    assert sorted(got["unit_ids"]) == sorted(UNITS)
    # no errors; of the best-practice violations only the spike-time resolution, which a spike table does not give
    assert problems(out) == ["BEST_PRACTICE_VIOLATION check_units_resolution_is_set"]
    assert [p.name for p in tmp_path.iterdir()] == ["s1.nwb"]  # no temporary file left


def test_nwb_source_is_copied_and_left_unchanged(inputs, tmp_path):
    tmp, ds = inputs
    source = tmp / "units.nwb"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "s1.nwb"
    assert export(tmp, "nwb", "units.nwb", out) == 0
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    got = read_back(out)
    check_contents(got, ds.assign_attrs(models=tmp / "models"))
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(source), "r") as io:
        units = io.read().units
        spikes = {int(u): units["spike_times"][k] for k, u in enumerate(units["cluster_id"].data[:])}
    assert got["spikes"].keys() == spikes.keys()
    for unit, times in spikes.items():
        np.testing.assert_array_equal(got["spikes"][unit], times)
    # what the inspector finds in the copy it finds in the source (no subject, no spike-time resolution)
    assert problems(out) == problems(source)


@pytest.mark.parametrize("case, where", [
    ("no dataset", "missing.nc"),
    ("session not in the dataset", "dataset.nc"),
    ("unreadable NWB source", "broken.nwb"),
    ("start time without a time zone", "session_start_time"),
])
def test_bad_input_exits_2_and_writes_nothing(inputs, tmp_path, capsys, case, where):
    tmp, ds = inputs
    args = ["nwb", str(tmp / "dataset.nc"), "--counts", str(tmp / "counts.nc"), "--units", str(tmp / "units.nwb"),
            "--format", "nwb", "--model", str(tmp / "models" / "mvae"), "--out", str(tmp_path / "out" / "s1.nwb")]
    if case == "no dataset":
        args[1] = str(tmp / "missing.nc")
    elif case == "session not in the dataset":
        write_netcdf(ds.isel(syllable=[0]).drop_vars("counts").assign_attrs(session="s9"), tmp_path / "counts.nc")
        args[3] = str(tmp_path / "counts.nc")
    elif case == "unreadable NWB source":
        (tmp_path / "broken.nwb").write_bytes(b"not an HDF5 file")
        args[5] = str(tmp_path / "broken.nwb")
    else:
        args += ["--set", "session_start_time=2024-03-01T09:00:00"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmneuro nwb: error: ") and where in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
