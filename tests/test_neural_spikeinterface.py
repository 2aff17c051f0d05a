"""neural_format spikeinterface: sortings SpikeInterface writes or reads give the same Units as mmneuro's own readers."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.errors import InputError
from mmneuro.io import read_netcdf
from mmneuro.neural.readers import read_units
from test_neural_command import inputs, run  # noqa: F401  (the fixture and the CLI runner)
from test_neural_readers import PLANTED, RATE, write_phy

si = pytest.importorskip("spikeinterface")
from spikeinterface.core import NumpySorting, generate_sorting  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The extractor is not serializable")


def test_a_saved_sorting_reads_with_its_spikes_and_labels(tmp_path):
    sorting = generate_sorting(num_units=4, durations=[5.0], sampling_frequency=RATE, seed=1)
    sorting.set_property("quality", ["good", "mua", "good", "noise"])
    sorting.set_property("depth_um", [10.0, 20.0, 30.0, 40.0])
    sorting.save(folder=tmp_path / "sorting")
    units = read_units(tmp_path / "sorting", "spikeinterface", labels=None)
    assert units.unit_ids.tolist() == [0, 1, 2, 3] and units.labels.tolist() == ["good", "mua", "good", "noise"]
    for i, u in enumerate(sorting.unit_ids):
        np.testing.assert_array_equal(units.spikes(i), sorting.get_unit_spike_train(u) / RATE)
    assert units.metadata["depth_um"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert read_units(tmp_path / "sorting", "spikeinterface").unit_ids.tolist() == [0, 2]  # default labels: good


def test_a_phy_folder_through_spikeinterface_matches_the_phy_reader(tmp_path):
    folder = write_phy(tmp_path / "phy", {u: p for u, p in PLANTED.items() if p[0].size})  # SI drops silent units
    ours, theirs = read_units(folder, "phy", labels=None), read_units(folder, "spikeinterface", labels=None)
    assert theirs.unit_ids.tolist() == ours.unit_ids.tolist() and theirs.labels.tolist() == ours.labels.tolist()
    np.testing.assert_array_equal(theirs.unit_ptr, ours.unit_ptr)
    np.testing.assert_allclose(theirs.spike_times_s, ours.spike_times_s, rtol=0, atol=1e-12)


def test_the_cli_bins_a_spikeinterface_sorting_as_it_bins_the_same_table(inputs):  # noqa: F811
    import pandas as pd

    spikes = pd.read_csv(inputs / "spikes.csv")
    sorting = NumpySorting.from_samples_and_labels([np.round(spikes["time_s"].to_numpy() * RATE).astype(np.int64)],
                                                   [spikes["unit"].to_numpy()], RATE)
    sorting.set_property("quality", ["good", "mua"])
    sorting.save(folder=inputs / "sorting")
    common = ["--syllables", inputs / "syllables.nc", "--offset-s", "0.5", "--labels", "good,mua"]
    assert run([inputs / "spikes.csv", "--format", "table", "--out", inputs / "a.nc", *common]) == 0
    assert run([inputs / "sorting", "--format", "spikeinterface", "--out", inputs / "b.nc", *common]) == 0
    a, b = read_netcdf(inputs / "a.nc"), read_netcdf(inputs / "b.nc")
    for name in ("counts", "total_counts", "unit_label"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert b.attrs["neural_format"] == "spikeinterface"


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "not found"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "SpikeInterface cannot read it"),
])
def test_unreadable_input_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        read_units(make(tmp_path), "spikeinterface", labels=None)
