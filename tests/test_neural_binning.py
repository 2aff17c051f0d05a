"""Binning against a slow reference (hypothesis) and closed-form cases; QC closed forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmneuro.errors import InputError
from mmneuro.io import read_netcdf, write_netcdf
from mmneuro.neural.binning import BinParams, _EdgeLookup, bin_counts, bin_edges, count_bin_sets, count_uniform_bins
from mmneuro.neural.qc import unit_qc
from mmneuro.neural.readers import build_units
from mmneuro.neural.sync import ClockFit

# The random spike lists are unsorted and may be empty: the reader's warnings are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:memory:UserWarning")


def make_units(spikes_by_unit: dict[int, list[float]], recording_s=None):
    unit = np.concatenate([np.full(len(t), u) for u, t in spikes_by_unit.items()] or [np.empty(0, int)])
    times = np.concatenate([np.asarray(t, float) for t in spikes_by_unit.values()] or [np.empty(0)])
    return build_units(Path("memory"), "table", unit.astype(int), times, unit_ids=np.array(list(spikes_by_unit), int), recording_s=recording_s)


def slow_counts(units, edges):
    """Reference: loop over syllables, units, spikes and bins; a spike counts in [edge_k, edge_k+1)."""
    out = np.zeros((edges.shape[0], len(units), edges.shape[1] - 1), dtype=int)
    for s, row in enumerate(edges):
        for u in range(len(units)):
            for t in units.spikes(u):
                for k in range(row.size - 1):
                    if row[k] <= t < row[k + 1]:
                        out[s, u, k] += 1
    return out


# Spike times either anywhere or on a 5 ms grid, so that many fall exactly on bin edges.
spike_time = st.one_of(st.floats(0.0, 3.0), st.integers(0, 600).map(lambda k: k * 0.005))
grid_bins = st.sampled_from([0.005, 0.01, 0.025])


@settings(max_examples=60, deadline=None)
@given(
    spikes=st.lists(st.lists(spike_time, max_size=25), min_size=1, max_size=4),
    onsets=st.lists(st.integers(0, 500).map(lambda k: k * 0.005), max_size=6),
    durations=st.lists(st.floats(0.0, 0.3), min_size=6, max_size=6),
    bin_s=grid_bins,
    n_pre=st.integers(0, 6),
    n_post=st.integers(1, 12),
    latency_s=st.sampled_from([0.0, 0.02]),
    warp_bins=st.integers(0, 4),
    offset_s=st.sampled_from([0.0, 0.0375, -0.2]),
    drift=st.sampled_from([0.0, 2e-5, -1e-4]),
    on_edges=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 20)), max_size=12),
)
def test_bin_counts_match_slow_reference(spikes, onsets, durations, bin_s, n_pre, n_post, latency_s, warp_bins, offset_s, drift, on_edges):
    onset = np.sort(np.array(onsets, float))
    params = BinParams(pre_s=n_pre * bin_s, post_s=n_post * bin_s, bin_s=bin_s, latency_s=latency_s, warp_bins=warp_bins)
    clock = ClockFit(offset_s, drift)
    # the window starts where bin_counts defines it: onset + the first relative edge (rounded to
    # 1e-12 s), not onset - n_pre * bin_s, which can differ by one ulp
    window_start = clock.to_neural(onset + params.relative_edges_s()[0])
    if onset.size:  # extra spikes exactly on window edges (syllable i, edge k), where rounding bites
        edges = bin_edges(window_start, np.full(onset.size, bin_s * (1 + drift)), 20)
        spikes[0] = spikes[0] + [float(edges[i % onset.size, k]) for i, k in on_edges]
    units = make_units({10 + i: t for i, t in enumerate(spikes)})
    offset = onset + np.array(durations[: onset.size])
    table = pd.DataFrame({"onset_s": onset, "offset_s": offset})
    ds = bin_counts(units, table, params, clock, session="s1", require_overlap=False)

    scale = 1 + drift
    window = bin_edges(window_start, np.full(onset.size, bin_s * scale), params.n_bins)
    np.testing.assert_array_equal(ds["counts"].values, slow_counts(units, window))
    # The edges are the audio-clock window mapped through the clock.
    np.testing.assert_allclose(window, clock.to_neural(onset[:, None] + params.relative_edges_s()[None, :]), atol=1e-12)
    span = (offset - onset + latency_s) * scale
    total = slow_counts(units, bin_edges(clock.to_neural(onset), span, 1))[:, :, 0]
    np.testing.assert_array_equal(ds["total_counts"].values, total)
    if warp_bins:
        warped = slow_counts(units, bin_edges(clock.to_neural(onset), span / warp_bins, warp_bins))
        np.testing.assert_array_equal(ds["warped_counts"].values, warped)
        # Warped bins tile the same interval as the total (up to a spike on the rounded last edge).
        assert np.abs(ds["warped_counts"].values.sum(-1) - total).max(initial=0) <= 1
    assert ds["counts"].dtype == np.int32 and ds["total_counts"].dtype == np.int32


def test_closed_form_bins_and_total():
    # Onset 1.0 s, offset 1.08 s; identity clock; default window -50 ms .. +200 ms in 10 ms bins.
    units = make_units({1: [0.949, 0.951, 1.0, 1.013, 1.0999, 1.11, 1.2, 1.3]})
    ds = bin_counts(units, pd.DataFrame({"onset_s": [1.0], "offset_s": [1.08]}), BinParams(), session="d")
    # Window [0.95, 1.2): 0.949 is before it and 1.2 (its end) and 1.3 after it.
    expected = np.zeros(25, int)
    expected[[0, 5, 6, 14, 16]] = 1  # 0.951, 1.0, 1.013, 1.0999, 1.11
    np.testing.assert_array_equal(ds["counts"].values[0, 0], expected)
    assert ds["total_counts"].item() == 3  # onset .. offset + 20 ms latency = [1.0, 1.1)
    np.testing.assert_allclose(ds["bin_start_s"].values, np.arange(-5, 20) * 0.01, atol=1e-12)
    np.testing.assert_allclose(ds["bin_end_s"].values, np.arange(-4, 21) * 0.01, atol=1e-12)
    assert ds["syllable"].values.tolist() == ["d-00000"]


def test_clock_moves_spikes_into_the_right_bins():
    clock = ClockFit(offset_s=2.0, drift=1e-3)
    onset = np.array([10.0, 20.0])
    # One spike 5 ms after each onset in the neural clock -> bin 5 (0..10 ms) for both syllables.
    units = make_units({1: clock.to_neural(onset + 0.005).tolist()})
    ds = bin_counts(units, pd.DataFrame({"onset_s": onset, "offset_s": onset + 0.05}), BinParams(), clock, session="c")
    assert np.flatnonzero(ds["counts"].values[0, 0]).tolist() == [5]
    assert np.flatnonzero(ds["counts"].values[1, 0]).tolist() == [5]
    without = bin_counts(units, pd.DataFrame({"onset_s": onset, "offset_s": onset + 0.05}), BinParams(), session="c")
    assert without["counts"].values.sum() == 0


def test_syllable_ids_follow_onset_order_and_zero_syllables_round_trip(tmp_path):
    units = make_units({1: [0.5], 2: []})
    ds = bin_counts(units, pd.DataFrame({"onset_s": [2.0, 0.45], "offset_s": [2.1, 0.5]}), BinParams(warp_bins=3), session="m")
    assert ds["syllable"].values.tolist() == ["m-00000", "m-00001"]
    assert ds["onset_s"].values.tolist() == [0.45, 2.0]
    assert ds["total_counts"].values.tolist() == [[1, 0], [0, 0]]
    empty = bin_counts(units, pd.DataFrame({"onset_s": [], "offset_s": []}), BinParams(warp_bins=3), session="m")
    assert empty["counts"].shape == (0, 2, 25)
    back = read_netcdf(write_netcdf(empty, tmp_path / "counts.nc"))
    assert back["counts"].shape == (0, 2, 25) and back.attrs["session"] == "m"


def test_bad_bin_parameters_and_syllables():
    with pytest.raises(InputError, match="whole number"):
        BinParams(pre_s=0.05, post_s=0.2, bin_s=0.015)
    with pytest.raises(InputError, match="bin_s"):
        BinParams(bin_s=0.0)
    units = make_units({1: [0.5]})
    with pytest.raises(InputError, match="before onset"):
        bin_counts(units, pd.DataFrame({"onset_s": [1.0], "offset_s": [0.9]}), session="x")
    with pytest.raises(InputError, match="offset_s"):
        bin_counts(units, pd.DataFrame({"onset_s": [1.0]}), session="x")


def test_count_uniform_bins_handles_many_overlapping_windows():
    # 200 windows 1 ms apart, each 250 ms long: every spike lies in up to 200 windows at once.
    rng = np.random.default_rng(0)
    units = make_units({u: np.sort(rng.uniform(0, 1, 300)).tolist() for u in range(3)})
    start = np.arange(200) * 0.001
    width = np.full(200, 0.01)
    fast = count_uniform_bins(units, start, width, 25)
    edges = bin_edges(start, width, 25)
    for u in range(3):
        ref = np.diff(np.searchsorted(units.spikes(u), edges.ravel()).reshape(edges.shape), axis=1)
        np.testing.assert_array_equal(fast[:, u], ref)


def test_edge_lookup_matches_binary_search():
    # Clustered edges with ties, spikes on, between, before and after them; one edge; all edges equal.
    rng = np.random.default_rng(1)
    clustered = np.concatenate([rng.uniform(0, 1, 50), 3 + rng.uniform(0, 1e-6, 40), [2.0] * 5, [1e3]])
    for edges in (rng.permutation(clustered), np.array([2.0]), np.full(7, 0.5), np.array([0.0, 5e-324, 1e-323])):
        spikes = np.sort(np.concatenate([rng.uniform(-1, 1.1 * edges.max() + 1, 500), edges, np.nextafter(edges, np.inf)]))
        expected = np.searchsorted(spikes, edges, side="left")  # spikes strictly before each edge
        np.testing.assert_array_equal(_EdgeLookup(edges).spikes_before(spikes), expected)


def test_threads_give_the_same_counts():
    rng = np.random.default_rng(2)
    units = make_units({u: np.sort(rng.uniform(0, 10, 500)).tolist() for u in range(7)})
    start = np.sort(rng.uniform(0, 10, 300))
    sets = [(start, np.full(300, 0.01), 25), (start, rng.uniform(0.01, 0.2, 300), 1), (start, rng.uniform(0.001, 0.02, 300), 4)]
    for one, two in zip(count_bin_sets(units, sets), count_bin_sets(units, sets, workers=2)):
        np.testing.assert_array_equal(one, two)
        assert one.sum() > 0


def test_qc_closed_forms():
    # ISIs 1, 9, 1, 89 ms -> 2 of 4 below 1.5 ms; 5 spikes over a 10 s recording -> 0.5 Hz.
    units = make_units({1: [0.0, 0.001, 0.010, 0.011, 0.1], 2: [5.0], 3: [1.0, 2.0]}, recording_s=(0.0, 10.0))
    qc = unit_qc(units)
    np.testing.assert_allclose(qc["firing_rate_hz"].values, [0.5, 0.1, 0.2])
    assert qc["isi_violation_fraction"].iloc[0] == 0.5
    assert np.isnan(qc["isi_violation_fraction"].iloc[1])
    assert qc["isi_violation_fraction"].iloc[2] == 0.0
