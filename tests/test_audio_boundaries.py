"""Boundaries below the frame hop and close neighbours split, on planted close-neighbour recordings
(mmneuro.audio.planted: gaps 2-20 ms, soft onsets, FM sweeps, jumps, noise with a hum, 250/300 kHz)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mmneuro.audio import segment_file
from mmneuro.audio.planted import FAMILIES, ISOLATED_GAP_S, Family, score, split_rate_by_gap, summary, write_planted

FAMILY = {f.name: f for f in FAMILIES}


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    """Scores of the default preset on three families, 20 s each (different seeds)."""
    out = tmp_path_factory.mktemp("planted")
    result = []
    for seed, name in enumerate(("noisy+hum", "jumps", "short")):
        truth = write_planted(out / f"{name}.wav", FAMILY[name], seed=seed + 10, total_s=20.0)
        result.append(score(segment_file(out / f"{name}.wav"), truth))
    return result


def test_boundaries_within_a_millisecond(scores):
    s = summary(scores)
    # The frame-level boundaries were 4-5 ms outside (median), the bound is 1 / 1.5 ms.
    assert s["onset_abs_median_ms"] <= 1.0 and s["offset_abs_median_ms"] <= 1.5, s
    assert s["onset_abs_p95_ms"] <= 3.0 and s["offset_abs_p95_ms"] <= 3.0, s


def test_neighbours_5ms_apart_are_split(scores):
    s = summary(scores)
    assert s["n_isolated"] > 300 and s["isolated_on_own"] >= 0.99, s
    rates = split_rate_by_gap(scores)
    wide = rates[[interval.left >= ISOLATED_GAP_S * 1e3 for interval in rates.index]]
    assert wide["pairs"].sum() > 150
    assert (wide["pairs"] * wide["split_rate"]).sum() >= 0.99 * wide["pairs"].sum(), rates
    assert min(x["precision"] for x in scores) >= 0.99


def test_frequency_jump_without_gap_does_not_split(tmp_path):
    # Every syllable jumps by 20-40 kHz half-way (phase-continuous), none closer than 30 ms.
    family = Family("jump-only", jump_probability=1.0, sweep_hz=(20_000.0, 40_000.0),
                    duration_s=(0.03, 0.2), close_gap_s=(0.03, 0.1), cluster_size=(1, 1))
    truth = write_planted(tmp_path / "jumps.wav", family, seed=3, total_s=15.0)
    s = score(segment_file(tmp_path / "jumps.wav"), truth)
    assert len(truth) > 40 and s["on_own"].all() and s["precision"] == 1.0


def test_same_boundaries_at_250_and_300_khz(tmp_path):
    family = replace(FAMILY["default"], close_gap_s=(0.006, 0.02))  # none near min_gap_s
    truth = write_planted(tmp_path / "a.wav", family, seed=5, total_s=10.0)
    write_planted(tmp_path / "b.wav", replace(family, sample_rate_hz=300_000), seed=5, total_s=10.0)
    a, b = segment_file(tmp_path / "a.wav"), segment_file(tmp_path / "b.wav")
    # Same syllables, other noise and rate: boundaries agree to a fraction of the 2 ms frame hop.
    nearest = np.abs(a["onset_s"].to_numpy()[:, None] - b["onset_s"].to_numpy()[None, :]).argmin(axis=1)
    diff = np.abs(a.to_numpy() - b.to_numpy()[nearest])
    close = (diff < 0.010).all(axis=1)
    assert len(a) == len(b) == len(truth) and close.all()
    assert np.median(diff[close]) <= 0.0005, np.median(diff[close])
