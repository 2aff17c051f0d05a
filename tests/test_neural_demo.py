"""Neural stage on a demo session from mmneuro.synth: formats agree, planted tuning and clock recovered."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mmneuro.neural import BinParams, bin_counts, fit_clock, read_units

DURATION_S = 60.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mmneuro.synth import generate_session, load_ground_truth

    session_dir = generate_session(tmp_path_factory.mktemp("demo"), "demo01", seed=1, duration_s=DURATION_S)
    truth = load_ground_truth(session_dir)
    syllables = pd.DataFrame(
        {
            "syllable": [f"demo01-{s['index']:05d}" for s in truth["syllables"]],
            "onset_s": [s["onset_s"] for s in truth["syllables"]],
            "offset_s": [s["offset_s"] for s in truth["syllables"]],
        }
    )
    clock = fit_clock(np.load(session_dir / "sync_audio_s.npy"), np.load(session_dir / "sync_neural_s.npy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = {
            fmt: bin_counts(read_units(session_dir / path, fmt, labels=None), syllables, BinParams(), clock, session="demo01")
            for fmt, path in (("phy", "phy"), ("nwb", "units.nwb"))
        }
    return truth, clock, counts


def test_sync_pulses_recover_the_planted_clock(demo):
    truth, clock, _ = demo
    assert abs(clock.offset_s - truth["clock"]["offset_s"]) < 1e-3
    assert abs(clock.drift - truth["clock"]["drift"]) < 1e-4
    assert clock.residual_s < 1e-3


def test_phy_and_nwb_give_identical_counts(demo):
    _, _, counts = demo
    phy, nwb = counts["phy"], counts["nwb"]
    assert phy["unit"].values.tolist() == nwb["unit"].values.tolist()
    assert phy["unit_label"].values.tolist() == nwb["unit_label"].values.tolist()
    np.testing.assert_array_equal(phy["counts"].values, nwb["counts"].values)
    np.testing.assert_array_equal(phy["total_counts"].values, nwb["total_counts"].values)
    assert phy["counts"].values.sum() > 1000  # not trivially equal because empty


def test_band_tuned_units_fire_more_for_in_band_syllables(demo):
    truth, _, counts = demo
    total = counts["phy"]["total_counts"]
    mean_freq = np.array([s["mean_freq_hz"] for s in truth["syllables"]])
    tested = 0
    for cluster in truth["clusters"]:
        if cluster["band_hz"] is None:
            continue
        in_band = (mean_freq >= cluster["band_hz"][0]) & (mean_freq <= cluster["band_hz"][1])
        if in_band.sum() < 3 or (~in_band).sum() < 3:
            continue
        for unit in (u["unit"] for u in truth["units"] if u["cluster"] == cluster["name"]):
            per_syllable = total.sel(unit=unit).values
            assert per_syllable[in_band].mean() > per_syllable[~in_band].mean(), (cluster["name"], unit)
            tested += 1
    assert tested >= 2
