"""Bits per spike (Neural Latents Benchmark) of the audio -> neural cross-prediction."""

import numpy as np
import pytest
from scipy.stats import poisson

from mmneuro.analysis.crosspred import (MIN_RATE, bits_per_spike, nll_gain, overall_bits_per_spike, overall_table,
                                        score_table)

LN2 = np.log(2)
# 3 windows x 2 units; unit 0 has 3 spikes (mean 1), unit 1 has 6 (mean 2)
Y = np.array([[0, 2], [1, 4], [2, 0]])
MU = np.array([[0.5, 3.0], [1.0, 3.0], [2.0, 1.0]])


def test_hand_computed_two_units():
    # unit 0: NLL_null = 3 x 1 = 3, NLL_model = 0.5 + 1 + (2 - 2 ln 2)
    # unit 1: NLL_null = 6 - 6 ln 2, NLL_model = (3 - 2 ln 3) + (3 - 4 ln 3) + 1
    gain = np.array([2 * LN2 - 0.5, 6 * np.log(1.5) - 1])
    np.testing.assert_allclose(nll_gain(Y, MU), gain, rtol=1e-12)
    np.testing.assert_allclose(bits_per_spike(Y, MU), gain / np.array([3, 6]) / LN2, rtol=1e-12)
    # the log y! terms cancel: the same as full Poisson log-likelihoods
    full = poisson.logpmf(Y, MU).sum(0) - poisson.logpmf(Y, Y.mean(0)).sum(0)
    np.testing.assert_allclose(nll_gain(Y, MU), full, rtol=1e-12)
    overall = overall_bits_per_spike(Y, MU)
    assert overall == pytest.approx(gain.sum() / 9 / LN2, rel=1e-12)
    # spikes weigh: not the mean of the per-unit values (0.372 vs 0.385 here)
    assert abs(overall - bits_per_spike(Y, MU).mean()) > 0.01


def test_perfect_model_positive_null_zero_worse_negative():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.2, 6.0, (3000, 3))
    y = rng.poisson(rates)
    assert (bits_per_spike(y, rates) > 0.1).all() and overall_bits_per_spike(y, rates) > 0.1
    null = np.broadcast_to(y.mean(0), y.shape)
    assert (bits_per_spike(y, null) == 0).all() and overall_bits_per_spike(y, null) == 0
    worse = rates[rng.permutation(len(rates))]  # right marginal, wrong windows
    assert (bits_per_spike(y, worse) < 0).all() and overall_bits_per_spike(y, worse) < 0


def test_silent_unit_and_floor():
    y = np.column_stack([Y, np.zeros(3)])
    mu = np.column_stack([MU, np.full(3, 0.5)])
    bps = bits_per_spike(y, mu)
    assert np.isnan(bps[2]) and np.isfinite(bps[:2]).all()
    # the silent unit still adds its NLL difference (3 x MIN_RATE - 3 x 0.5) to the overall sum
    gain = nll_gain(Y, MU).sum() + 3 * MIN_RATE - 1.5
    assert overall_bits_per_spike(y, mu) == pytest.approx(gain / 9 / LN2, rel=1e-12)
    assert np.isnan(overall_bits_per_spike(np.zeros((3, 2)), MU))
    # a zero prediction where spikes fell is floored at MIN_RATE, as the deviance is: finite, very negative
    assert -1e3 < bits_per_spike(Y, np.where(Y > 0, 0.0, MU))[0] < -5


def test_score_table_column_and_overall_skip_unpredicted_rows():
    pred = MU.copy()
    pred[0] = np.nan  # e.g. an oracle's unmatched syllable
    table = score_table(Y, {"model": MU, "partial": pred}, np.array([7, 8]))
    assert list(table.columns)[-1] == "bits_per_spike"
    s = table.set_index(["method", "unit"])["bits_per_spike"]
    np.testing.assert_allclose(s.loc["model"].to_numpy(), bits_per_spike(Y, MU))
    np.testing.assert_allclose(s.loc["partial"].to_numpy(), bits_per_spike(Y[1:], MU[1:]))
    overall = overall_table(Y, {"model": MU, "partial": pred})
    assert overall == pytest.approx({"model": overall_bits_per_spike(Y, MU),
                                     "partial": overall_bits_per_spike(Y[1:], MU[1:])})


def test_report_shows_all_units_bits_per_spike_next_to_r(tmp_path):
    import json
    import re

    from mmneuro.report.html import _comparison_tables

    folder = tmp_path / "analysis" / "m"
    folder.mkdir(parents=True)
    table = score_table(Y, {"model": MU}, np.array([7, 8]))
    table.to_csv(folder / "crosspred.csv", index=False)
    (folder / "synergy.csv").write_text("\n")  # an empty synergy table
    (folder / "summary.json").write_text(json.dumps({"crosspred": {"bits_per_spike_all_units": overall_table(
        Y, {"model": MU})}}))
    html = str(_comparison_tables([folder])["crosspred"])
    r, bps = table["pearson_r"].mean(), overall_bits_per_spike(Y, MU)
    assert re.search(rf"<td>model</td>\s*<td>{r:.3g}</td>\s*<td>{bps:.3g}</td>", html), html
    assert f"{bps:.3g}" != f"{table['bits_per_spike'].mean():.3g}"  # the overall, not the per-unit mean
    (folder / "summary.json").write_text("{}")  # an analysis from before bits per spike: shown as –
    assert re.search(rf"<td>{r:.3g}</td>\s*<td>–</td>", str(_comparison_tables([folder])["crosspred"]))
