"""Readers (Phy, NWB, tables) against the formats' specs, on tiny fixtures written here."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from mmneuro.errors import InputError
from mmneuro.neural.readers import read_params_py, read_units

RATE = 30000.0
# unit id -> (spike samples, label); unit 9 is listed as good but never fires.
PLANTED = {
    3: (np.array([30, 3000, 30001, 60000]), "good"),
    5: (np.array([15, 45, 90000]), "mua"),
    7: (np.array([1, 2, 3]), "noise"),
    9: (np.array([], dtype=np.int64), "good"),
}


def write_phy(folder, planted=PLANTED, *, params="sample_rate = 30000.0\nn_channels_dat = 4\n", label_file="cluster_group.tsv", label_col="group"):
    """A Phy folder whose spike_times.npy is globally time-sorted, as Kilosort writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = np.concatenate([s for s, _ in planted.values()])
    clusters = np.concatenate([np.full(s.size, u) for u, (s, _) in planted.items()])
    order = np.argsort(samples, kind="stable")
    np.save(folder / "spike_times.npy", samples[order].astype(np.uint64)[:, None])  # Kilosort: (n, 1) uint64
    np.save(folder / "spike_clusters.npy", clusters[order].astype(np.int32))
    (folder / "params.py").write_text(params)
    rows = "".join(f"{u}\t{lab}\n" for u, (_, lab) in planted.items())
    (folder / label_file).write_text(f"cluster_id\t{label_col}\n{rows}")
    return folder


def write_nwb(path, planted=PLANTED, *, obs_end_s=None, with_units=True):
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="test", identifier="t", session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    if with_units:
        nwb.add_unit_column("cluster_id", "sorter cluster id")
        nwb.add_unit_column("quality", "curation label")
        for u, (samples, label) in planted.items():
            extra = {"obs_intervals": [[0.0, obs_end_s]]} if obs_end_s is not None else {}
            nwb.add_unit(spike_times=samples / RATE, cluster_id=u, quality=label, **extra)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def expected_times(u):
    return PLANTED[u][0] / RATE


def test_phy_times_are_samples_over_rate_and_labels_select(tmp_path):
    folder = write_phy(tmp_path / "phy")
    with pytest.warns(UserWarning, match="without spikes: 9"):
        good = read_units(folder, "phy")
    assert good.unit_ids.tolist() == [3, 9]
    np.testing.assert_array_equal(good.spikes(0), expected_times(3))
    assert good.spikes(1).size == 0
    with pytest.warns(UserWarning):
        both = read_units(folder, "phy", labels=("good", "mua"))
    assert both.unit_ids.tolist() == [3, 5, 9]
    assert both.labels.tolist() == ["good", "mua", "good"]
    np.testing.assert_array_equal(both.spikes(1), expected_times(5))
    with pytest.warns(UserWarning):
        everything = read_units(folder, "phy", labels=None)
    assert everything.n_spikes.tolist() == [4, 3, 3, 0]


def test_phy_curated_groups_override_kilosort_labels(tmp_path):
    folder = write_phy(tmp_path / "phy", label_file="cluster_KSLabel.tsv", label_col="KSLabel")
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n5\tgood\n")
    with pytest.warns(UserWarning):
        units = read_units(folder, "phy")
    assert units.unit_ids.tolist() == [3, 5, 9]


def test_phy_falls_back_to_spike_templates(tmp_path):
    folder = write_phy(tmp_path / "phy")
    (folder / "spike_clusters.npy").rename(folder / "spike_templates.npy")
    with pytest.warns(UserWarning):
        units = read_units(folder, "phy", labels=("mua",))
    np.testing.assert_array_equal(units.spikes(0), expected_times(5))


def test_params_py_is_parsed_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "params.py"
    path.write_text(f"import os\nsample_rate = 25000.\nhook = open({str(marker)!r}, 'w')\ndtype = 'int16'\n")
    params = read_params_py(path)
    assert params == {"sample_rate": 25000.0, "dtype": "int16"}
    assert not marker.exists()


@pytest.mark.parametrize(
    "damage, where, message",
    [
        (lambda f: (f / "params.py").unlink(), "params.py", "missing"),
        (lambda f: (f / "params.py").write_text("sample_rate = 'fast'\n"), "params.py", "sample_rate"),
        (lambda f: np.save(f / "spike_clusters.npy", np.zeros(3, np.int32)), "spike_clusters.npy", "do not match"),
        (lambda f: (f / "cluster_group.tsv").write_text("cluster_id\tlabel_v2\n3\tgood\n"), "cluster_group.tsv", "label_v2"),
        (lambda f: (f / "spike_times.npy").write_bytes(b"not numpy"), "spike_times.npy", "readable"),
    ],
)
def test_phy_bad_input_names_the_file(tmp_path, damage, where, message):
    folder = write_phy(tmp_path / "phy")
    damage(folder)
    with pytest.raises(InputError, match=message) as err:
        read_units(folder, "phy")
    assert err.value.where.endswith(where)


def test_unsorted_spikes_are_sorted_with_a_warning(tmp_path):
    folder = write_phy(tmp_path / "phy")
    times = np.load(folder / "spike_times.npy")
    np.save(folder / "spike_times.npy", times[::-1])
    np.save(folder / "spike_clusters.npy", np.load(folder / "spike_clusters.npy")[::-1])
    with pytest.warns(UserWarning, match="not sorted"):
        units = read_units(folder, "phy", labels=None)
    np.testing.assert_array_equal(units.spikes(0), expected_times(3))


def test_spikes_outside_the_recording_are_dropped_and_counted(tmp_path):
    # Raw file of 4 channels x int16 x 60000 samples = 2.0 s: spike 90000 of unit 5 lies beyond it.
    folder = write_phy(tmp_path / "phy", params="sample_rate = 30000.0\nn_channels_dat = 4\ndat_path = 'raw.bin'\ndtype = 'int16'\noffset = 0\n")
    (folder / "raw.bin").write_bytes(bytes(4 * 2 * 60000))
    with pytest.warns(UserWarning, match="1 spikes outside the recording"):
        units = read_units(folder, "phy", labels=("mua",))
    assert units.recording_s == (0.0, 2.0)
    np.testing.assert_array_equal(units.spikes(0), [15 / RATE, 45 / RATE])
    assert units.n_outside.tolist() == [1]


def test_nwb_matches_phy_and_reads_obs_intervals(tmp_path):
    nwb = write_nwb(tmp_path / "units.nwb", obs_end_s=3.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_nwb = read_units(nwb, "nwb", labels=None)
        from_phy = read_units(write_phy(tmp_path / "phy"), "phy", labels=None)
    assert from_nwb.unit_ids.tolist() == from_phy.unit_ids.tolist()
    assert from_nwb.labels.tolist() == from_phy.labels.tolist()
    np.testing.assert_array_equal(from_nwb.spike_times_s, from_phy.spike_times_s)
    np.testing.assert_array_equal(from_nwb.unit_ptr, from_phy.unit_ptr)
    assert from_nwb.recording_s == (0.0, 3.5)


def test_nwb_without_units_is_an_input_error(tmp_path):
    path = write_nwb(tmp_path / "empty.nwb", with_units=False)
    with pytest.raises(InputError, match="no Units table") as err:
        read_units(path, "nwb")
    assert err.value.where == str(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".npz"])
def test_table_formats_round_trip(tmp_path, suffix):
    unit = np.array([4, 2, 4, 2, 4])
    time_s = np.array([0.5, 0.25, 0.125, 3.0, 1.0])
    path = tmp_path / f"spikes{suffix}"
    frame = pd.DataFrame({"unit": unit, "time_s": time_s})
    if suffix == ".npz":
        np.savez(path, unit=unit, time_s=time_s, duration_s=10.0)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    with pytest.warns(UserWarning) as record:  # file order is not time order within unit 4
        units = read_units(path, "table")
    assert any("not sorted" in str(w.message) for w in record)
    assert units.unit_ids.tolist() == [2, 4]
    np.testing.assert_array_equal(units.spikes(1), [0.125, 0.5, 1.0])
    assert units.labels.tolist() == ["unsorted", "unsorted"]
    assert units.recording_s == ((0.0, 10.0) if suffix == ".npz" else None)


def test_table_problems_name_the_file(tmp_path):
    path = tmp_path / "spikes.csv"
    pd.DataFrame({"cluster": [1], "time_s": [0.1]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="missing column.*unit"):
        read_units(path, "table")
    pd.DataFrame({"unit": [1, 2], "time_s": [0.1, 0.2], "label": ["mua", "noise"]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="no units labelled good.*mua, noise"):
        read_units(path, "table")
    with pytest.raises(InputError, match="unknown neural format"):
        read_units(path, "kilosort")


@pytest.mark.parametrize("rows, message", [
    ("unit,time_s\n1,0.1\n1,0.2s\n", r"column time_s: 1 value\(s\) are not finite numbers, first in data row 2 \('0.2s'\)"),
    ("unit,time_s\n1,0.1\n,0.2\n", "column unit: 1 value"),
    ("unit,time_s,label\n1,0.1,good\nnan,0.2,good\n", "column unit: 1 value"),
    ("unit,time_s\n", "no rows"),
])
def test_table_with_bad_values_names_the_file_and_row(tmp_path, rows, message):
    path = tmp_path / "spikes.csv"
    path.write_text(rows)
    with pytest.raises(InputError, match=message) as err:
        read_units(path, "table")
    assert str(path) in str(err.value)
