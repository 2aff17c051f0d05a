"""Planted-truth scoring and cross-prediction baselines against hand-computed answers."""

import numpy as np
import pandas as pd
import pytest

from mmneuro.analysis.crosspred import image_error_rows, mean_rate_baseline, ridge_baseline, score_table, summary
from mmneuro.synth.scoring import (
    band_recovery, cluster_agreement, match_onsets, oracle_counts, planted_syllables, segmentation_scores,
    untuned_recovery)


def test_match_onsets_is_one_to_one_and_closest_first():
    planted = np.array([1.0, 2.0, 3.0])
    detected = np.array([1.004, 1.001, 2.5, 3.009])
    np.testing.assert_array_equal(match_onsets(detected, planted, 0.01), [-1, 0, -1, 2])
    s = segmentation_scores(detected, planted, 0.01)
    assert (s["n_matched"], s["precision"], s["recall"]) == (2, 0.5, 2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


TRUTH = {
    "clusters": [{"name": "band_45k", "band_hz": [40e3, 50e3]}, {"name": "band_90k", "band_hz": [85e3, 95e3]},
                 {"name": "untuned", "band_hz": None}],
    "units": [{"unit": u, "cluster": c} for u, c in
              [(0, "band_45k"), (1, "band_45k"), (2, "band_90k"), (3, "band_90k"), (4, "untuned"), (5, "untuned")]],
    "syllables": [{"onset_s": 1.0}, {"onset_s": 2.0}],
}


def test_cluster_scores():
    units = np.array([0, 1, 2, 3, 4, 5, 99])  # 99: not in the truth, ignored
    assert cluster_agreement(units, np.array([7, 7, 3, 3, 1, 1, 1]), TRUTH) == {"n_units": 6, "ari": 1.0}
    assert cluster_agreement(units, np.array([7, 3, 7, 3, 1, 1, 1]), TRUTH)["ari"] < 0.2
    table = pd.DataFrame({"cluster": [7, 3, 1], "band_center_khz": [46.0, 81.0, 60.0]})
    rec = band_recovery(units, np.array([7, 7, 3, 3, 1, 1, 1]), table, TRUTH).set_index("planted_cluster")
    assert rec.loc["band_45k", "error_khz"] == pytest.approx(1.0) and rec.loc["band_45k", "within_tolerance"]
    assert rec.loc["band_90k", "error_khz"] == pytest.approx(-9.0) and not rec.loc["band_90k", "within_tolerance"]
    assert len(rec) == 2  # the untuned cluster has no band


def test_planted_syllables_per_session():
    out = planted_syllables(np.array(["a", "a", "b"]), np.array([2.001, 1.5, 1.0]), {"a": TRUTH}, 0.01)
    assert out == [TRUTH["syllables"][1], None, None]


def test_oracle_counts_closed_form():
    unit = {"unit": 0, "baseline_hz": 5.0, "gain_hz": 50.0, "latency_s": 0.01, "feature": "mean_freq_hz",
            "center": 60e3, "width": 5e3}
    at_center = {"onset_s": 1.0, "offset_s": 1.1, "mean_freq_hz": 60e3}
    far = {"onset_s": 3.0, "offset_s": 3.05, "mean_freq_hz": 90e3}
    # window [0, 0.12] after the detected onset (1 ms late); response [0.009, 0.009 + 0.1 + 0.02]
    got = oracle_counts([unit], [at_center, far, None], np.array([1.001, 3.0, 5.0]),
                        (np.zeros(3), np.array([0.12, 0.07, 0.07])), tail_s=0.02)
    assert got[0, 0] == pytest.approx(5 * 0.12 + 50 * (0.12 - 0.009))
    assert got[1, 0] == pytest.approx(5 * 0.07 + 50 * np.exp(-18) * (0.07 - 0.01))
    assert np.isnan(got[2, 0])


def test_baselines_and_scores():
    rng = np.random.default_rng(0)
    n, f, t = 400, 6, 5
    images = rng.random((n, f, t))
    exposure = np.full(n, 0.1)
    drive = 3 + 20 * images[:, 2, :].mean(1)  # counts depend linearly on one image row
    counts = rng.poisson(np.column_stack([drive, np.full(n, 4.0)]))
    train, test = slice(0, 300), slice(300, None)
    mean = mean_rate_baseline(counts[train], exposure[train], exposure[test])
    np.testing.assert_allclose(mean[0], counts[train].mean(0))
    ridge = ridge_baseline(images[train], counts[train], images[test], n_components=30, alphas=(0.1, 1, 10))
    table = score_table(counts[test], {"mean_rate": mean, "ridge": ridge, "truth": np.column_stack(
        [drive, np.full(n, 4.0)])[test]}, np.array([10, 11]))
    s = table.set_index(["method", "unit"])
    assert s.loc[("ridge", 10), "pearson_r"] > 0.5 > abs(s.loc[("ridge", 11), "pearson_r"])
    assert s.loc[("ridge", 10), "deviance_explained"] > s.loc[("mean_rate", 10), "deviance_explained"]
    assert s.loc[("truth", 10), "deviance_explained"] >= s.loc[("ridge", 10), "deviance_explained"] - 0.05
    perfect = score_table(counts[test].astype(float) + 0.0, {"self": counts[test] + 1e-12}, np.array([10, 11]))
    assert perfect["pearson_r"].to_list() == pytest.approx([1, 1]) and perfect["deviance_explained"].to_list() == pytest.approx([1, 1])
    img = image_error_rows(images[test], {"self": images[test], "mean": np.broadcast_to(images.mean(0), images[test].shape)})
    assert img.loc[0, "mse"] == 0 and img.loc[0, "pearson_r"] == pytest.approx(1.0)
    assert set(summary(pd.concat([table, img]))["direction"]) == {"audio->neural", "neural->audio"}


def test_planted_factors_follow_the_truth_and_the_neural_clock():
    from mmneuro.synth.scoring import PLANTED_FACTORS, planted_factors

    syl = [{"onset_s": 1.0, "amplitude": 0.1, "harmonic": True, "mean_freq_hz": 50e3, "duration_s": 0.05},
           {"onset_s": 4.0, "amplitude": 0.2, "harmonic": False, "mean_freq_hz": 80e3, "duration_s": 0.1}]
    truth = {"syllables": syl, "clock": {"offset_s": 0.5, "drift": 1e-5},
             "neural_only_factor": {"period_s": 60.0, "phase_rad": 0.3}}
    out = planted_factors(np.array(["a", "a", "a"]), np.array([1.002, 2.5, 4.0]), {"a": truth}, 0.01)
    assert set(out) == set(PLANTED_FACTORS)
    np.testing.assert_allclose(out["log_amplitude"], [np.log(0.1), np.nan, np.log(0.2)])
    np.testing.assert_allclose(out["harmonic"], [1.0, np.nan, 0.0])
    np.testing.assert_allclose(out["duration_s"], [0.05, np.nan, 0.1])
    # the drift is a property of time, so the unmatched syllable at 2.5 s has one too
    t_neural = 0.5 + (1 + 1e-5) * np.array([1.002, 2.5, 4.0])
    np.testing.assert_allclose(out["slow_drift"], np.sin(2 * np.pi * t_neural / 60.0 + 0.3))
    # a session without truth gets NaN everywhere
    none = planted_factors(np.array(["b"]), np.array([1.0]), {"a": truth}, 0.01)
    assert all(np.isnan(v).all() for v in none.values())


def test_untuned_recovery_counts_calls_of_minus_one():
    units = np.array([0, 1, 2, 3, 4, 5])
    # units 4, 5 planted untuned; 5 and the tuned unit 0 called untuned (-1)
    out = untuned_recovery(units, np.array([-1, 1, 2, 2, 3, -1]), TRUTH)
    assert out == {"n_untuned": 2, "n_tuned": 4, "untuned_recall": 0.5, "false_flag_rate": 0.25}
    # the ARI treats -1 as one group: everything right -> 1
    assert cluster_agreement(units, np.array([1, 1, 2, 2, -1, -1]), TRUTH)["ari"] == 1.0


def test_neural_to_audio_baselines_see_the_planted_tuning():
    """Ridge from counts and the planted-feature oracle recover a contour row that units are tuned to;
    counts of other syllables (a wrong split or row order) recover nothing."""
    from mmneuro.analysis.crosspred import ridge_images, syllable_r, tree_images

    rng = np.random.default_rng(1)
    n, f, t = 500, 16, 6
    row = rng.integers(0, f, n)  # the planted feature: the contour's image row
    images = rng.normal(0.05, 0.02, (n, f, t))
    images[np.arange(n), row] = 1.0
    centers = np.linspace(0, f - 1, 8)
    counts = rng.poisson(2 + 30 * np.exp(-0.5 * ((row[:, None] - centers[None]) / 1.5) ** 2))
    train, test = slice(0, 400), slice(400, None)
    kw = dict(n_components=f, alphas=(0.1, 1, 10, 100))
    ridge = ridge_images(counts[train], images[train], counts[test], **kw)
    shuffled = ridge_images(counts[train], images[train], rng.permutation(counts[test]), **kw)
    feature = row[:, None].astype(float)
    feature[450] = np.nan  # a syllable without a planted match gets no oracle prediction
    oracle = tree_images(feature[train], images[train], feature[test])
    mean = np.broadcast_to(images[train].mean(0), images[test].shape)
    table = image_error_rows(images[test], {"mean": mean, "ridge": ridge, "shuffled": shuffled,
                                            "oracle": oracle}).set_index("method")
    assert table.loc["ridge", "pearson_r"] > table.loc["mean", "pearson_r"] + 0.3
    assert table.loc["shuffled", "pearson_r"] < table.loc["mean", "pearson_r"] + 0.1
    assert table.loc["oracle", "pearson_r"] > 0.95 and table.loc["oracle", "n_syllables"] == 99
    assert np.isnan(oracle[50]).all() and table.loc["ridge", "n_syllables"] == 100
    # on the frequency axis: the brightest decoded row is the planted one (chance: 1/16)
    assert (ridge.mean(-1).argmax(1) == row[test]).mean() > 0.6
    np.testing.assert_allclose(syllable_r(images[test], images[test]), 1.0)
